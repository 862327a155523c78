"""HTTP routes for what integrations send: 835 remittances, 837 claims, FHIR EOBs, canonical batches,
and the review list of remittance claims that matched no tracked claim."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from services.intake.batch import accept_many
from services.intake.conversion import Profile, errors_of
from services.intake.formats import Format, ParsedClaim, ParseError, ServiceLine
from services.intake.ingest import WrongFormat, ingest, read
from services.intake.ingest_schemas import (
    EXAMPLE_835,
    EXAMPLE_837,
    EXAMPLE_EOB,
    ApplyIn,
    BatchAccepted,
    BatchIn,
    DismissIn,
    FileAccepted,
    RemittanceOut,
)
from services.intake.matching import REVIEW_STATES, apply
from services.intake.models import remittance_claims
from services.intake.schemas import ClaimIn
from shared.db import get_engine, unit_of_work
from shared.http import FastJSONRoute, Problem
from shared.openapi import v1_problems
from shared.rules.eligibility import PlanType, ServiceCategory
from shared.tenants import CurrentTenant

router = APIRouter(prefix="/v1", tags=["integrations"], route_class=FastJSONRoute)


FILE_PROBLEMS = v1_problems(
    400,
    415,
    _400="A multipart upload that cannot be read",
    _413="The file is larger than IDRFLOW_MAX_FILE_BYTES",
    _415="The file is not the format this endpoint takes",
    _422="The file cannot be read (the segment or field is named), or a query parameter is not valid",
)
REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {"description": "The same file was posted before: its first answer, each claim 'duplicate'"}
}


def _binary(example: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/edi-x12": {"schema": {"type": "string"}, "example": example},
                "text/plain": {"schema": {"type": "string"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            },
        }
    }


def profile(
    source_system: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")] = None,
    plan_type: PlanType | None = None,
    service_category: ServiceCategory | None = None,
    state: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$", description="USPS code")] = None,
) -> Profile:
    """What a file does not say, for each claim in it (837 only)."""
    return Profile(source_system, plan_type, service_category, state)


async def _file(request: Request) -> tuple[bytes, str | None, str | None]:
    """The body, or the ``file`` part of a multipart upload; with its content type and file name."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise Problem(
                422, "validation-error", "No file", "file: send the file in a part named 'file'", field="file"
            )
        return await upload.read(), upload.content_type, upload.filename
    return await request.body(), content_type or None, request.headers.get("x-filename")


async def _ingest(
    request: Request, tenant_id: str, expected: tuple[Format, ...], where: Profile | None = None
) -> JSONResponse:
    data, content_type, filename = await _file(request)
    if not data.strip():
        raise Problem(422, "unreadable-file", "The file is empty", "body: the file is empty", field="body")
    try:
        parsed = await read(data, filename)
        answer = await ingest(
            tenant_id,
            data,
            parsed,
            expected=expected,
            profile=where or Profile(),
            content_type=content_type,
            filename=filename,
        )
    except ParseError as exc:
        raise Problem(
            422, "unreadable-file", "The file cannot be read", str(exc), field=exc.location or "body"
        ) from None
    except WrongFormat as exc:
        raise Problem(
            415, "wrong-format", "Not the format this endpoint takes", str(exc), field="body"
        ) from None
    return JSONResponse(answer.body(), status_code=200 if answer.duplicate_file else 202)


@router.post(
    "/remittances",
    status_code=202,
    response_model=FileAccepted,
    responses={**FILE_PROBLEMS, **REPLAYED},
    openapi_extra=_binary(EXAMPLE_835),
)
async def post_remittance(request: Request, tenant: CurrentTenant) -> JSONResponse:
    """An X12 835 (5010; 4010 read leniently), as the body or a multipart ``file``. Each claim in it
    is matched to a tracked claim and applied (its initial payment or denial, received today: the
    open negotiation clock starts; or a payment toward an award or settlement), or kept in the
    review list (``GET /v1/remittances/unmatched``) with its candidates. Idempotent by the file's
    SHA-256 and each remittance claim's natural key; the raw file is kept compressed."""
    return await _ingest(request, tenant.tenant_id, ("x12-835",))


@router.post(
    "/claims/x12",
    status_code=202,
    response_model=FileAccepted,
    responses={**FILE_PROBLEMS, **REPLAYED},
    openapi_extra=_binary(EXAMPLE_837),
)
async def post_837(
    request: Request, tenant: CurrentTenant, where: Annotated[Profile, Depends(profile)]
) -> JSONResponse:
    """An X12 837P or 837I: each claim becomes a tracked claim awaiting its initial payment (the
    plan's 30-day clock runs from the bill date: BHT04, see the formats' docs). What an 837 cannot
    say comes from the query: ``plan_type`` (unless SBR09 says Medicare, Medicaid or FEHB),
    ``service_category`` (unless place of service 23/41/42 or an ER revenue code says it),
    ``state``; a claim missing one is rejected naming it."""
    return await _ingest(request, tenant.tenant_id, ("x12-837",), where)


@router.post(
    "/fhir/ExplanationOfBenefit",
    status_code=202,
    response_model=FileAccepted,
    responses={**FILE_PROBLEMS, **REPLAYED},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/fhir+json": {"schema": {"type": "object"}, "example": EXAMPLE_EOB},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
async def post_eob(request: Request, tenant: CurrentTenant) -> JSONResponse:
    """A FHIR R4 ExplanationOfBenefit, or a Bundle of them: matched and applied like an 835's claims
    (STU3 shapes are refused with the reason)."""
    return await _ingest(request, tenant.tenant_id, ("fhir-eob",))


@router.post(
    "/claims:batch",
    status_code=202,
    response_model=BatchAccepted,
    responses=v1_problems(400, _422="Not a batch of 1 to 1,000 objects"),
)
async def post_batch(batch: BatchIn, tenant: CurrentTenant) -> Response:
    """Up to 1,000 canonical claims (each the body of ``POST /v1/claims``) in one transaction; each
    is validated and accepted on its own (``accepted``, ``duplicate`` by its natural key
    ``source_system:claim_id:event_sequence``, or ``rejected`` naming each field and reason)."""
    results: dict[int, dict[str, Any]] = {}
    valid: list[tuple[ClaimIn, str | None]] = []
    where: list[int] = []
    for index, raw in enumerate(batch.claims):
        if not isinstance(raw, dict):
            results[index] = {
                "index": index,
                "claim_id": "",
                "result": "rejected",
                "problem": "validation-error",
                "reason": f"claims[{index}]: a claim is a JSON object",
                "errors": [{"field": f"claims[{index}]", "reason": "a claim is a JSON object"}],
            }
            continue
        try:
            valid.append((ClaimIn.model_validate(raw), None))
            where.append(index)
        except ValidationError as exc:
            errors = errors_of(exc)
            results[index] = {
                "index": index,
                "claim_id": str(raw.get("claim_id", ""))[:64].replace("\x00", ""),
                "result": "rejected",
                "problem": "validation-error",
                "reason": "; ".join(f"{e['field']}: {e['reason']}" for e in errors),
                "errors": errors,
            }
    if valid:
        for index, r in zip(where, await accept_many(tenant.tenant_id, valid), strict=True):
            results[index] = {
                "index": index,
                "claim_id": r.claim_id,
                "result": r.result,
                "event_sequence": r.event_sequence,
                "event_id": r.body.get("event_id"),
                "problem": r.problem,
                "reason": r.reason,
            }
    ordered = [results[i] for i in range(len(batch.claims))]
    body = {"summary": dict(Counter(r["result"] for r in ordered)), "results": ordered}
    return Response(orjson.dumps(body), status_code=202, media_type="application/json")


def _out(row: Any) -> dict[str, Any]:
    return RemittanceOut.model_validate(row, from_attributes=True).model_dump(mode="json")


@router.get(
    "/remittances/unmatched",
    response_model=list[RemittanceOut],
    responses=v1_problems(),
)
async def unmatched(
    tenant: CurrentTenant,
    after: Annotated[int, Query(ge=0, le=2**62, description="the last id of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Remittance claims that matched no tracked claim, or several, or need a person (a reversal, a
    payee that differs): oldest first, each with its candidates. Apply one with
    ``POST /v1/remittances/{id}/apply``."""
    async with get_engine().connect() as conn:
        rows = (
            await conn.execute(
                select(remittance_claims)
                .where(
                    remittance_claims.c.tenant_id == tenant.tenant_id,
                    remittance_claims.c.state.in_(REVIEW_STATES),
                    remittance_claims.c.id > after,
                )
                .order_by(remittance_claims.c.id)
                .limit(limit)
            )
        ).all()
    return [_out(r) for r in rows]


RemittanceId = Annotated[int, Path(ge=1, le=2**62, description="a remittance claim of the review list")]


async def _locked(session: Any, tenant_id: str, remittance_id: int) -> Any:
    """The tenant's remittance claim, locked for this transaction; another tenant's is a 404."""
    r = remittance_claims.c
    mine = select(remittance_claims).where(r.tenant_id == tenant_id, r.id == remittance_id)
    row = (await session.execute(mine.with_for_update())).first()
    if row is None:
        raise Problem(
            404, "not-found", "No such remittance claim", f"remittance {remittance_id}", field="remittance_id"
        )
    return row


async def _fresh(session: Any, remittance_id: int) -> dict[str, Any]:
    row = (
        await session.execute(select(remittance_claims).where(remittance_claims.c.id == remittance_id))
    ).one()
    return _out(row)


@router.post(
    "/remittances/{remittance_id}/apply",
    response_model=RemittanceOut,
    responses=v1_problems(
        400,
        404,
        409,
        _404="No such remittance claim for this tenant",
        _409="Already applied to another claim, or cannot be applied (the reason is named)",
    ),
)
async def apply_remittance(
    remittance_id: RemittanceId,
    body: ApplyIn,
    tenant: CurrentTenant,
) -> dict[str, Any]:
    """A person matched a remittance claim from the review list to a tracked claim: apply it as the
    matcher would have (initial payment or denial, or a payment). Applying it again to the same
    claim answers the same; to another claim is a 409."""
    async with unit_of_work() as session:
        row = await _locked(session, tenant.tenant_id, remittance_id)
        if row.state == "matched":
            if row.claim_id == body.claim_id:
                return _out(row)
            raise Problem(
                409,
                "already-applied",
                "Already applied",
                f"remittance {remittance_id} was applied to claim {row.claim_id}",
                field="claim_id",
            )
        parsed = ParsedClaim(**_parsed_fields(row.facts))
        done = await apply(
            session, tenant.tenant_id, remittance_id, parsed, body.claim_id, row.received_on, row.source
        )
        if done.state != "matched":
            raise Problem(
                409, "cannot-apply", "The remittance cannot be applied", done.reason or "", field="claim_id"
            )
        await session.execute(
            remittance_claims.update()
            .where(remittance_claims.c.id == remittance_id)
            .values(
                state="matched",
                claim_id=body.claim_id,
                applied_as=done.applied_as,
                event_id=done.event_id,
                reason=f"applied by a person; {done.reason}",
            )
        )
        return await _fresh(session, remittance_id)


@router.post(
    "/remittances/{remittance_id}/dismiss",
    response_model=RemittanceOut,
    responses=v1_problems(
        400,
        404,
        409,
        _404="No such remittance claim for this tenant",
        _409="Already applied to a claim: it cannot be dismissed",
    ),
)
async def dismiss_remittance(
    remittance_id: RemittanceId,
    body: DismissIn,
    tenant: CurrentTenant,
) -> dict[str, Any]:
    """A person dealt with a remittance claim of the review list another way (a reversal recorded
    as a correction, a take-back, a remit for a claim idrflow does not track): it leaves the list,
    kept with the reason. Dismissing it again answers the same."""
    async with unit_of_work() as session:
        row = await _locked(session, tenant.tenant_id, remittance_id)
        if row.state == "matched":
            raise Problem(
                409,
                "already-applied",
                "Already applied",
                f"remittance {remittance_id} was applied to claim {row.claim_id}",
                field="remittance_id",
            )
        if row.state != "dismissed":
            await session.execute(
                remittance_claims.update()
                .where(remittance_claims.c.id == remittance_id)
                .values(state="dismissed", reason=f"dismissed: {body.reason}")
            )
        return await _fresh(session, remittance_id)


def _parsed_fields(facts: dict[str, Any]) -> dict[str, Any]:
    """The stored parse of a remittance claim, back into ``ParsedClaim`` fields that apply() reads."""

    def money(v: Any) -> Decimal | None:
        return Decimal(v) if v is not None else None

    def day(v: Any) -> date | None:
        return date.fromisoformat(v) if v else None

    lines = [
        ServiceLine(
            line_number=s.get("line_number", n + 1),
            procedure_code=s.get("procedure_code"),
            charge_amount=money(s.get("charge_amount")),
            paid_amount=money(s.get("paid_amount")),
            service_date=day(s.get("service_date")),
            cost_sharing=money(s.get("cost_sharing")),
        )
        for n, s in enumerate(facts.get("service_lines") or [])
    ]
    return {
        "claim_id": facts["claim_id"],
        "payer_claim_control_number": facts.get("payer_claim_control_number"),
        "status": facts.get("status"),
        "reversal": bool(facts.get("reversal")),
        "paid_amount": money(facts.get("paid_amount")),
        "charge_amount": money(facts.get("charge_amount")),
        "cost_sharing": money(facts.get("cost_sharing")),
        "payment_date": day(facts.get("payment_date")),
        "payment_trace_number": facts.get("payment_trace_number"),
        "service_lines": lines,
    }
