"""FHIR R4 ExplanationOfBenefit, one resource or a Bundle of them, read leniently.

The models below ignore unknown fields and make almost everything optional: real EOBs (CMS Blue
Button, payer APIs) miss elements that R4 marks required. What R4 requires is checked only when
asked (``check_profile``), as warnings. STU3 (and older) EOBs are refused with the reason: their
shape differs in ways that would be misread silently (``totalCost``/``totalBenefit`` instead of
``total``, ``item.service`` instead of ``item.productOrService``, ``organization`` next to
``insurer``, ``information`` instead of ``supportingInfo``, a single ``insurance`` object, a coded
``outcome``).
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .model import ParsedClaim, ParseError, ParseResult, ParseWarning, ServiceLine
from .remarks import NSA_REMARK_CODES

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
TIN_SYSTEMS = ("urn:oid:2.16.840.1.113883.4.4", "http://hl7.org/fhir/sid/us-tin")
STU3_FIELDS = ("totalCost", "totalBenefit", "unallocDeductable", "organization", "information")
COST_SHARING = ("copay", "coinsurance", "deductible")
R4_REQUIRED = ("status", "type", "use", "patient", "created", "insurer", "provider", "outcome", "insurance")


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Coding(_Lenient):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class Concept(_Lenient):
    coding: list[Coding] = []
    text: str | None = None

    def codes(self) -> list[str]:
        return [c.code for c in self.coding if c.code]


class Money(_Lenient):
    value: Decimal | None = None
    currency: str | None = None


class Identifier(_Lenient):
    system: str | None = None
    value: str | None = None
    type: Concept | None = None


class Reference(_Lenient):
    reference: str | None = None
    display: str | None = None
    identifier: Identifier | None = None


class Period(_Lenient):
    start: str | None = None
    end: str | None = None


class Adjudication(_Lenient):
    category: Concept | None = None
    reason: Concept | None = None
    amount: Money | None = None


class Quantity(_Lenient):
    value: Decimal | None = None


class Item(_Lenient):
    sequence: int | None = None
    revenue: Concept | None = None
    productOrService: Concept | None = None
    modifier: list[Concept] = []
    servicedDate: str | None = None
    servicedPeriod: Period | None = None
    quantity: Quantity | None = None
    net: Money | None = None
    adjudication: list[Adjudication] = []


class Total(_Lenient):
    category: Concept | None = None
    amount: Money | None = None


class Payment(_Lenient):
    date: str | None = None
    amount: Money | None = None
    identifier: Identifier | None = None


class SupportingInfo(_Lenient):
    category: Concept | None = None
    timingDate: str | None = None


class ExplanationOfBenefit(_Lenient):
    resourceType: str
    id: str | None = None
    identifier: list[Identifier] = []
    status: str | None = None
    insurer: Reference | None = None
    provider: Reference | None = None
    billablePeriod: Period | None = None
    item: list[Item] = []
    adjudication: list[Adjudication] = []
    total: list[Total] = []
    payment: Payment | None = None
    supportingInfo: list[SupportingInfo] = []


def stu3_reason(resource: dict[str, Any]) -> str | None:
    """Why this EOB looks like STU3 or older, or None when it looks like R4."""
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    for profile in profiles if isinstance(profiles, list) else []:
        if isinstance(profile, str) and any(m in profile.lower() for m in ("stu3", "dstu3", "dstu2", "/r3/")):
            return f"meta.profile {profile!r} is an STU3 (or older) profile"
    version = resource.get("fhirVersion") or (meta.get("fhirVersion") if isinstance(meta, dict) else None)
    if isinstance(version, str) and not version.startswith("4."):
        return f"fhirVersion {version!r}: only FHIR R4 (4.0.x) is read"
    for name in STU3_FIELDS:
        if name in resource:
            return f"{name!r} is an STU3 element (R4 EOBs have no {name!r})"
    if isinstance(resource.get("insurance"), dict):
        return "'insurance' is one object (STU3); R4 has a list"
    if isinstance(resource.get("outcome"), dict):
        return "'outcome' is a CodeableConcept (STU3); R4 has a code"
    items = resource.get("item")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and "service" in item and "productOrService" not in item:
            return "'item.service' is STU3; R4 has 'item.productOrService'"
    return None


def _day(value: str | None, where: str, warnings: list[ParseWarning]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        warnings.append(ParseWarning("invalid_date", f"{value[:30]!r} is not a date", where))
        return None


def _by_category(adjudications: list[Adjudication]) -> tuple[dict[str, Decimal], list[str]]:
    """Amounts by category code (summed), and RARC reason codes."""
    amounts: dict[str, Decimal] = {}
    remarks: list[str] = []
    for a in adjudications:
        if a.reason is not None:
            for c in a.reason.coding:
                if c.code and c.system and "remark" in c.system:
                    remarks.append(c.code)
        if a.category is None or a.amount is None or a.amount.value is None:
            continue
        for code in a.category.codes():
            amounts[code] = amounts.get(code, Decimal(0)) + a.amount.value
    return amounts, remarks


def _paid(amounts: dict[str, Decimal]) -> Decimal | None:
    return amounts.get("paidtoprovider", amounts.get("benefit"))


def _cost_sharing(amounts: dict[str, Decimal]) -> Decimal | None:
    shares = [amounts[k] for k in COST_SHARING if k in amounts]
    if shares:
        return sum(shares, Decimal(0))
    return amounts.get("memberliability")


def _net_reversals(lines: list[ServiceLine], where: str, warnings: list[ParseWarning]) -> list[ServiceLine]:
    """A line with negative amounts reverses an earlier line of the same code and date: they net."""
    out: list[ServiceLine] = []
    for line in lines:
        negative = any(a is not None and a < 0 for a in (line.charge_amount, line.paid_amount))
        match = next(
            (o for o in reversed(out)
             if negative and o.procedure_code == line.procedure_code and o.service_date == line.service_date),
            None,
        )  # fmt: skip
        if match is None:
            out.append(line)
            continue
        for name in ("charge_amount", "paid_amount", "allowed_amount", "cost_sharing"):
            a, b = getattr(match, name), getattr(line, name)
            if a is not None or b is not None:
                setattr(match, name, (a or Decimal(0)) + (b or Decimal(0)))
        warnings.append(
            ParseWarning(
                "reversal_netted", f"item {line.line_number} reverses item {match.line_number}", where
            )
        )
        if not match.charge_amount and not match.paid_amount:
            out.remove(match)
    return out


class _Resolver:
    """Finds referenced resources: contained ones and, in a Bundle, the other entries."""

    def __init__(self, resources: dict[str, dict[str, Any]]) -> None:
        self.resources = resources

    def identifiers(self, ref: Reference | None, contained: dict[str, dict[str, Any]]) -> list[Identifier]:
        if ref is None:
            return []
        found = [ref.identifier] if ref.identifier else []
        target = ref.reference or ""
        resource = contained.get(target.lstrip("#")) if target.startswith("#") else self.resources.get(target)
        if resource is None and "/" in target:
            resource = self.resources.get("/".join(target.rsplit("/", 2)[-2:]))
        if isinstance(resource, dict) and isinstance(resource.get("identifier"), list):
            for raw in resource["identifier"]:
                try:
                    found.append(Identifier.model_validate(raw))
                except ValidationError:
                    continue
        return found

    def name(self, ref: Reference | None, contained: dict[str, dict[str, Any]]) -> str | None:
        if ref is None:
            return None
        if ref.display:
            return ref.display
        target = ref.reference or ""
        resource = contained.get(target.lstrip("#")) if target.startswith("#") else self.resources.get(target)
        name = resource.get("name") if isinstance(resource, dict) else None
        return name if isinstance(name, str) else None


def _claim(
    raw: dict[str, Any], where: str, resolver: _Resolver, warnings: list[ParseWarning], check_profile: bool
) -> ParsedClaim:
    try:
        eob = ExplanationOfBenefit.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ParseError(f"{err['msg']}", f"{where}.{field}") from None
    if check_profile:
        for name in R4_REQUIRED:
            if not raw.get(name):
                warnings.append(ParseWarning("profile", f"R4 requires {name!r}", f"{where}.{name}"))
    contained = {
        c["id"]: c for c in raw.get("contained") or [] if isinstance(c, dict) and isinstance(c.get("id"), str)
    }
    claim_id = eob.id or next((i.value for i in eob.identifier if i.value), None) or ""
    if not claim_id:
        warnings.append(ParseWarning("no_claim_id", "the EOB has neither an id nor an identifier", where))
    payer_ccn = next(
        (i.value for i in eob.identifier if i.type is not None and "uc" in i.type.codes() and i.value), None
    ) or next((i.value for i in eob.identifier if i.value), None)
    provider_ids = resolver.identifiers(eob.provider, contained)
    npi = next((i.value for i in provider_ids if i.system == NPI_SYSTEM and i.value), None)
    tin = next((i.value for i in provider_ids if i.system in TIN_SYSTEMS and i.value), None)
    insurer_ids = resolver.identifiers(eob.insurer, contained)
    totals: dict[str, Decimal] = {}
    for t in eob.total:
        if t.category is not None and t.amount is not None and t.amount.value is not None:
            for code in t.category.codes():
                totals[code] = totals.get(code, Decimal(0)) + t.amount.value
    header, remarks = _by_category(eob.adjudication)
    lines: list[ServiceLine] = []
    item_sums: dict[str, Decimal] = {}
    for k, item in enumerate(eob.item):
        amounts, line_remarks = _by_category(item.adjudication)
        for code, value in amounts.items():
            item_sums[code] = item_sums.get(code, Decimal(0)) + value
        codes = item.productOrService.codes() if item.productOrService else []
        period = item.servicedPeriod
        lines.append(
            ServiceLine(
                line_number=item.sequence or k + 1,
                procedure_code=codes[0] if codes else None,
                modifiers=[c for m in item.modifier for c in m.codes()],
                revenue_code=next(iter(item.revenue.codes()), None) if item.revenue else None,
                charge_amount=amounts.get("submitted", item.net.value if item.net else None),
                paid_amount=_paid(amounts),
                allowed_amount=amounts.get("eligible"),
                units=item.quantity.value if item.quantity else None,
                service_date=_day(
                    item.servicedDate or (period.start if period else None), f"{where}.item[{k}]", warnings
                ),
                service_date_end=_day(period.end if period else None, f"{where}.item[{k}]", warnings),
                cost_sharing=_cost_sharing(amounts),
                remark_codes=line_remarks,
            )
        )
        remarks.extend(line_remarks)
    lines = _net_reversals(lines, where, warnings)
    for code, value in header.items():
        totals.setdefault(code, value)
    for code, value in item_sums.items():
        totals.setdefault(code, value)
    payment = eob.payment
    received = next(
        (s.timingDate for s in eob.supportingInfo if s.category and "clmrecvddate" in s.category.codes()),
        None,
    )
    period = eob.billablePeriod
    return ParsedClaim(
        claim_id=claim_id,
        payer_claim_control_number=payer_ccn,
        status=eob.status,
        reversal=eob.status in ("cancelled", "entered-in-error"),
        payer_name=resolver.name(eob.insurer, contained),
        payer_id=next((i.value for i in insurer_ids if i.value), None),
        payee_npi=npi,
        payee_tin=tin,
        payee_id=npi or tin,
        payee_id_qualifier="XX" if npi else ("FI" if tin else None),
        charge_amount=totals.get("submitted"),
        paid_amount=_paid(totals)
        if _paid(totals) is not None
        else (payment.amount.value if payment and payment.amount else None),
        cost_sharing=_cost_sharing(totals),
        allowed_amount=totals.get("eligible"),
        payment_date=_day(payment.date if payment else None, f"{where}.payment.date", warnings),
        payment_trace_number=payment.identifier.value if payment and payment.identifier else None,
        received_date=_day(received, f"{where}.supportingInfo", warnings),
        statement_from=_day(period.start if period else None, f"{where}.billablePeriod", warnings),
        statement_to=_day(period.end if period else None, f"{where}.billablePeriod", warnings),
        remark_codes=remarks,
        nsa_remark_codes=list(dict.fromkeys(c for c in remarks if c in NSA_REMARK_CODES)),
        service_lines=lines,
    )


_NAMED = 10  # entries or resource types named one by one in a warning; the rest counted


def parse_fhir(doc: dict[str, Any], *, check_profile: bool = False) -> ParseResult:
    result = ParseResult(format="fhir-eob", version="R4")
    kind = doc.get("resourceType")
    if kind == "ExplanationOfBenefit":
        reason = stu3_reason(doc)
        if reason:
            raise ParseError(f"not a FHIR R4 ExplanationOfBenefit: {reason}", "$")
        result.claims.append(_claim(doc, "$", _Resolver({}), result.warnings, check_profile))
        return result
    if kind != "Bundle":
        raise ParseError(
            f"FHIR resourceType {str(kind)[:40]!r} is not an ExplanationOfBenefit or a Bundle", "$"
        )
    entries = doc.get("entry")
    if not isinstance(entries, list):
        if entries is not None:
            result.warnings.append(
                ParseWarning("entry_not_list", "the Bundle's entry is not a list", "$.entry")
            )
        entries = []
    resources: dict[str, dict[str, Any]] = {}
    others: Counter[str] = Counter()
    unreadable: list[int] = []
    for k, e in enumerate(entries):
        r = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(r, dict):
            unreadable.append(k)
            continue
        if r.get("resourceType") != "ExplanationOfBenefit":
            others[str(r.get("resourceType"))[:40]] += 1
        if isinstance(r.get("id"), str):
            resources[f"{r.get('resourceType')}/{r['id']}"] = r
        if isinstance(e.get("fullUrl"), str):
            resources[e["fullUrl"]] = r
    resolver = _Resolver(resources)
    rejected: list[str] = []
    for k, e in enumerate(entries):
        r = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(r, dict) or r.get("resourceType") != "ExplanationOfBenefit":
            continue
        where = f"$.entry[{k}].resource"
        reason = stu3_reason(r)
        if reason:
            rejected.append(reason)
            result.warnings.append(ParseWarning("not_r4", f"EOB skipped, not FHIR R4: {reason}", where))
            continue
        result.claims.append(_claim(r, where, resolver, result.warnings, check_profile))
    for k in unreadable[:_NAMED]:  # the first few by path, then how many more
        result.warnings.append(
            ParseWarning("entry_unreadable", "an entry without a resource object", f"$.entry[{k}]")
        )
    if len(unreadable) > _NAMED:
        more = f"{len(unreadable) - _NAMED} more entries without a resource object"
        result.warnings.append(ParseWarning("entry_unreadable", more, "$.entry"))
    if others:
        n = others.total()
        named = sorted(others.items(), key=lambda kc: (-kc[1], kc[0]))
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(named[:_NAMED]))
        if len(named) > _NAMED:
            kinds += f" and {len(named) - _NAMED} other types"
        what = (
            "1 entry is not an ExplanationOfBenefit"
            if n == 1
            else f"{n} entries are not ExplanationOfBenefit"
        )
        message = f"{what}, read only where an EOB refers to it: {kinds}"
        result.warnings.append(ParseWarning("other_resources", message, "$.entry"))
    if not result.claims:
        if rejected:
            raise ParseError(f"no FHIR R4 ExplanationOfBenefit in the Bundle: {rejected[0]}", "$.entry")
        result.warnings.append(
            ParseWarning("no_claims", "the Bundle has no ExplanationOfBenefit entries", "$.entry")
        )
    return result
