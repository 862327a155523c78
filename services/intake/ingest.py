"""Files from integrations: an 835, an 837, a FHIR EOB (or Bundle) or a canonical JSON batch.

One transaction per file: the raw bytes (compressed, for audit), each claim's result, the claims
accepted, the remittance claims matched or kept for review and their events. The same file posted
again (same tenant, same SHA-256) answers the first answer, each claim marked ``duplicate``; the
same remittance claim in another file (a re-sent ERA) is a ``duplicate`` too.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.intake.batch import ClaimResult, accept_many
from services.intake.conversion import Profile, Unusable, claim_from_837
from services.intake.formats import Format, ParsedClaim, ParseResult, parse, to_jsonable
from services.intake.matching import apply, find, money_fits, natural_key
from services.intake.models import intake_files, remittance_claims
from shared.db import unit_of_work
from shared.settings import get_settings

PARSE_IN_THREAD_BYTES = 64 * 1024


@dataclass
class FileAnswer:
    file_id: int
    sha256: str
    format: Format
    received_on: date
    duplicate_file: bool
    summary: dict[str, int]
    results: list[dict[str, Any]]
    warnings: list[dict[str, Any]]

    def body(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "sha256": self.sha256,
            "format": self.format,
            "received_on": self.received_on.isoformat(),
            "duplicate_file": self.duplicate_file,
            "summary": self.summary,
            "results": self.results,
            "warnings": self.warnings,
        }


class WrongFormat(ValueError):
    def __init__(self, found: Format, expected: tuple[Format, ...]) -> None:
        self.found = found
        self.expected = expected
        super().__init__(f"this endpoint takes {' or '.join(expected)}; the body is {found}")


async def read(data: bytes, filename: str | None = None) -> ParseResult:
    """Parse (in a thread when large: the event loop keeps answering). ``ParseError`` passes through."""
    if len(data) > PARSE_IN_THREAD_BYTES:
        return await asyncio.to_thread(parse, data, filename=filename)
    return parse(data, filename=filename)


def _claim_result(r: ClaimResult) -> dict[str, Any]:
    out: dict[str, Any] = {"index": r.index, "claim_id": r.claim_id, "result": r.result}
    if r.result == "rejected":
        out["reason"] = r.reason
        out["problem"] = r.problem
    else:
        out["event_id"] = r.body.get("event_id")
        out["event_sequence"] = r.event_sequence
    return out


def business_day_of(moment: datetime) -> date:
    return moment.astimezone(ZoneInfo(get_settings().business_timezone)).date()


async def _previous(session: AsyncSession, tenant_id: str, sha: str) -> FileAnswer | None:
    row = (
        await session.execute(
            select(intake_files).where(intake_files.c.tenant_id == tenant_id, intake_files.c.sha256 == sha)
        )
    ).first()
    if row is None:
        return None
    results = [{**r, "result": "duplicate", "first_result": r["result"]} for r in row.results]
    return FileAnswer(
        row.id,
        sha,
        row.format,
        row.received_on,
        True,
        {"duplicate": len(results)},
        results,
        list(row.warnings),
    )


async def ingest(
    tenant_id: str,
    data: bytes,
    result: ParseResult,
    *,
    expected: tuple[Format, ...],
    profile: Profile,
    content_type: str | None = None,
    filename: str | None = None,
    engine: AsyncEngine | None = None,
    now: datetime | None = None,
) -> FileAnswer:
    """Record the file and act on each claim in it; one answer per claim, in file order."""
    if result.format not in expected:
        raise WrongFormat(result.format, expected)
    sha = hashlib.sha256(data).hexdigest()
    arrived = now or datetime.now(UTC)
    received_on = business_day_of(arrived)
    warnings = scrub([to_jsonable(w) for w in result.warnings])
    async with unit_of_work(engine) as session:
        before = await _previous(session, tenant_id, sha)
        if before is not None:
            return before
        file_id = (
            await session.execute(
                insert(intake_files)
                .values(
                    tenant_id=tenant_id,
                    sha256=sha,
                    format=result.format,
                    content_type=scrub(content_type or "")[:200] or None,
                    filename=scrub(filename or "")[:300] or None,
                    size_bytes=len(data),
                    body_gz=gzip.compress(data, 6),
                    received_at=arrived,
                    received_on=received_on,
                    summary={},
                    results=[],
                    warnings=warnings,
                )
                .on_conflict_do_nothing()
                .returning(intake_files.c.id)
            )
        ).scalar()
        if file_id is None:  # the same file, posted concurrently, committed first
            again = await _previous(session, tenant_id, sha)
            assert again is not None
            return again
        if result.format in ("x12-835", "fhir-eob"):
            results = await _remittances(session, tenant_id, file_id, result, received_on)
        else:
            results = await _claims(session, tenant_id, result, profile)
        results = scrub(results)
        summary = dict(Counter(r["result"] for r in results))
        if not result.claims:
            summary["claims"] = 0
        await session.execute(
            update(intake_files).where(intake_files.c.id == file_id).values(summary=summary, results=results)
        )
    return FileAnswer(file_id, sha, result.format, received_on, False, summary, results, warnings)


async def _claims(
    session: AsyncSession, tenant_id: str, result: ParseResult, profile: Profile
) -> list[dict[str, Any]]:
    """An 837 or a canonical JSON batch: each claim accepted as its next event, or rejected."""
    answers: dict[int, dict[str, Any]] = {}
    batch: list[tuple[Any, str | None]] = []
    where: list[int] = []
    if result.format == "json":
        batch = [(claim, None) for claim in result.canonical]
        where = list(range(len(batch)))
    else:
        for index, parsed in enumerate(result.claims):
            try:
                batch.append((claim_from_837(parsed, profile), None))
                where.append(index)
            except Unusable as exc:
                answers[index] = _rejected(index, parsed.claim_id, exc.errors)
    total = len(result.claims)
    if batch:
        for position, r in zip(where, await accept_many(tenant_id, batch, session=session), strict=True):
            answers[position] = {**_claim_result(r), "index": position}
    return [answers[i] for i in range(total)]


def _rejected(index: int, claim_id: str, errors: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "index": index,
        "claim_id": claim_id,
        "result": "rejected",
        "reason": "; ".join(f"{e['field']}: {e['reason']}" for e in errors),
        "errors": errors,
    }


async def _remittances(
    session: AsyncSession, tenant_id: str, file_id: int, result: ParseResult, received_on: date
) -> list[dict[str, Any]]:
    source = "fhir-eob" if result.format == "fhir-eob" else "835"
    answers = []
    applied: set[str] = set()  # a second claim of one file for the same tracked claim goes to review
    for index, c in enumerate(result.claims):
        answer = await record_remittance(session, tenant_id, file_id, index, c, source, received_on, applied)
        if answer.get("applied_as") and answer.get("matched_claim_id"):
            applied.add(str(answer["matched_claim_id"]))
        answers.append(answer)
    return answers


TEXT_FIELDS = (
    "claim_id",
    "payer_claim_control_number",
    "payer_name",
    "payer_id",
    "payee_name",
    "payee_npi",
    "payee_tin",
    "payee_id",
    "payment_trace_number",
    "status",
    "claim_filing_indicator",
)


def clean_claim(c: ParsedClaim) -> ParsedClaim:
    """No NUL in what is looked up or stored (PostgreSQL refuses it in text): removed in place."""
    for name in TEXT_FIELDS:
        setattr(c, name, scrub(getattr(c, name)))
    return c


def scrub(value: Any) -> Any:
    """No NUL in what PostgreSQL stores (a text column or JSONB refuses it; the raw file keeps it)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    return value


async def record_remittance(
    session: AsyncSession,
    tenant_id: str,
    file_id: int,
    index: int,
    c: ParsedClaim,
    source: str,
    received_on: date,
    applied_in_file: set[str] | None = None,
) -> dict[str, Any]:
    c = clean_claim(c)
    key = natural_key(source, c)
    row: dict[str, Any] = {
        "tenant_id": tenant_id,
        "file_id": file_id,
        "natural_key": key,
        "source": source,
        "claim_ref": c.claim_id[:100],
        "payer_claim_control_number": (c.payer_claim_control_number or "")[:100] or None,
        "status_code": ((c.status or "")[:4] or None) if source == "835" else None,  # CLP02
        "reversal": c.reversal,
        "claim_filing_indicator": (c.claim_filing_indicator or "")[:4] or None,
        "payer_name": (c.payer_name or "")[:200] or None,
        "payee_npi": c.payee_npi if c.payee_npi and len(c.payee_npi) == 10 else None,
        "payee_tin": (c.payee_tin or "")[:20] or None,
        "charge_amount": c.charge_amount
        if money_fits(c.charge_amount)
        else None,  # the file's value stays in facts
        "paid_amount": c.paid_amount
        if money_fits(c.paid_amount)
        else None,  # the file's value stays in facts
        "cost_sharing": c.cost_sharing
        if money_fits(c.cost_sharing)
        else None,  # the file's value stays in facts
        "payment_date": c.payment_date,
        "trace_number": (c.payment_trace_number or "")[:100] or None,
        "received_on": received_on,
        "nsa_remark_codes": list(c.nsa_remark_codes),
        "facts": to_jsonable(c),
        "state": "unmatched",
        "candidates": [],
    }
    row = scrub(row)
    remittance_id = (
        await session.execute(
            insert(remittance_claims).values(row).on_conflict_do_nothing().returning(remittance_claims.c.id)
        )
    ).scalar()
    base = {
        "index": index,
        "claim_id": c.claim_id,
        "payer_claim_control_number": c.payer_claim_control_number,
        "nsa_remark_codes": list(c.nsa_remark_codes),
    }
    if remittance_id is None:
        first = (
            await session.execute(
                select(remittance_claims.c.id, remittance_claims.c.state, remittance_claims.c.claim_id).where(
                    remittance_claims.c.tenant_id == tenant_id, remittance_claims.c.natural_key == key
                )
            )
        ).one()
        return {**base, "result": "duplicate", "remittance_id": first.id, "matched_claim_id": first.claim_id}
    match = await find(session, tenant_id, c)
    state, reason, applied_as, event_id = match.state, match.reason, None, None
    if match.state == "matched" and match.claim_id is not None:
        done = await apply(
            session,
            tenant_id,
            remittance_id,
            c,
            match.claim_id,
            received_on,
            source,
            applied_in_file,
            certain=match.certain,
        )
        state, applied_as, event_id = done.state, done.applied_as, done.event_id
        reason = f"matched by {match.reason}; {done.reason}"
    await session.execute(
        update(remittance_claims)
        .where(remittance_claims.c.id == remittance_id)
        .values(
            state=state,
            claim_id=match.claim_id if state == "matched" else None,
            candidates=match.candidates,
            reason=reason,
            applied_as=applied_as,
            event_id=event_id,
        )
    )
    return {
        **base,
        "result": state,
        "remittance_id": remittance_id,
        "matched_claim_id": match.claim_id if state == "matched" else None,
        "applied_as": applied_as,
        "reason": reason,
        "candidates": match.candidates,
    }
