"""Turning an alert event into messages: the wording of every channel, free of patient data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from shared.events import (
    ClaimCorrectionRejected,
    DeadLetter,
    DeadlineApproaching,
    DeadlineMissed,
    Envelope,
    PaymentOverdue,
)
from shared.settings import Settings

ALERT_TYPES = (
    DeadlineApproaching.event_type,
    DeadlineMissed.event_type,
    PaymentOverdue.event_type,
    ClaimCorrectionRejected.event_type,
    DeadLetter.event_type,
)

DEADLINE_LABELS = {
    "open_negotiation_initiation_deadline": "Open negotiation must start",
    "idr_initiation_deadline": "Federal IDR must be initiated",
    "post_cooling_off_initiation_deadline": "Federal IDR must be initiated after the cooling-off",
    "offer_and_fee_deadline": "Offer and fees are due",
    "departments_idre_selection_deadline": "The Departments' IDR entity selection",
    "determination_deadline": "The IDR entity's determination",
    "payment_deadline": "The plan's payment",
    "provider_refund_deadline": "Your refund of the plan's overpayment",
    "improper_batch_resubmission_deadline": "Resubmitting the improperly batched dispute",
    "joint_selection_notice_deadline": "Telling the Departments of the joint selection",
    "idre_fee_refund_deadline": "The IDR entity fee refund",
}

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html", "html.j2"]),
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class AlertMessage:
    event_id: str
    subject: str
    text: str
    html: str
    slack_text: str
    slack_blocks: list[dict[str, Any]]


def _slack(text: str) -> str:
    """Slack mrkdwn control characters, escaped as Slack documents."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_alert(env: Envelope, settings: Settings) -> AlertMessage:
    payload = env.parse_payload()
    if isinstance(payload, ClaimCorrectionRejected):
        return _render(
            env,
            settings,
            {
                "headline": f"CORRECTION REJECTED: claim event {payload.event_sequence}",
                "payer_name": payload.payer_name,
                "deadline_label": "Claim correction",
                "deadline_name": ", ".join(payload.fields) or "claim",
                "due_on": "-",
                "business_days_left": None,
                "stage": payload.stage,
                "action": (
                    "Fix the claim in the source system and send a corrected claim event; until then the "
                    "claim keeps its previous facts and deadlines."
                ),
                "explanation": payload.reason,
                "missed": True,
            },
        )
    if isinstance(payload, DeadLetter):
        what = payload.original_event_type or "an unreadable message"
        dl = payload.dead_letter_id
        return _render(
            env,
            settings,
            {
                "headline": f"NOT APPLIED: {what} for this claim is in the dead-letter queue",
                "payer_name": "-",
                "deadline_label": "Operations",
                "deadline_name": payload.consumer,
                "due_on": "-",
                "business_days_left": None,
                "stage": f"{payload.topic} [{payload.partition}] offset {payload.offset}",
                "action": (
                    f"An operator inspects it with `idrflow dlq show {dl}`, fixes the cause and replays it "
                    f"with `idrflow dlq replay {dl}`; until then the claim does not reflect this event and "
                    "its deadlines may be missing."
                ),
                "explanation": f"The {payload.consumer} consumer could never apply it "
                f"({payload.error_type}).",
                "missed": True,
            },
        )
    if not isinstance(payload, DeadlineApproaching | DeadlineMissed | PaymentOverdue):
        raise ValueError(f"{env.event_type} is not an alert")
    label = DEADLINE_LABELS.get(payload.deadline_name, payload.deadline_name.replace("_", " ").capitalize())
    missed = isinstance(payload, DeadlineMissed | PaymentOverdue)
    if isinstance(payload, PaymentOverdue):
        left = None
        headline = (
            f"PAYMENT OVERDUE: ${payload.amount_outstanding:,.2f} unpaid, {payload.days_overdue} days late "
            f"(notice {payload.escalation_level})"
        )
        action = payload.action
        explanation = (
            f"The plan had to pay ${payload.amount_owed:,.2f} within 30 calendar days of the determination "
            f"(by {payload.due_on.isoformat()}); ${payload.amount_received:,.2f} has been received."
        )
    elif isinstance(payload, DeadlineMissed):
        left = None
        headline = f"MISSED: {label} by {payload.due_on.isoformat()}"
        action = payload.consequence
        explanation = "The deadline's cut-off passed with no record of the action."
    else:
        left = payload.business_days_left
        when = "today" if left == 0 else f"in {left} business day{'' if left == 1 else 's'}"
        headline = f"{label} {when} ({payload.due_on.isoformat()})"
        action = payload.action
        explanation = payload.explanation
    return _render(
        env,
        settings,
        {
            "headline": headline,
            "payer_name": payload.payer_name,
            "deadline_label": label,
            "deadline_name": payload.deadline_name,
            "due_on": payload.due_on.isoformat(),
            "business_days_left": left,
            "stage": payload.stage,
            "action": action,
            "explanation": explanation,
            "missed": missed,
        },
    )


def _render(env: Envelope, settings: Settings, fields: dict[str, Any]) -> AlertMessage:
    """Every channel's wording from one context (email text and HTML, Slack blocks)."""
    context = {
        **fields,
        "claim_id": env.claim_id,
        "event_id": str(env.event_id),
        "status_url": f"{settings.dashboard_base_url}/v1/claims/{env.claim_id}",
    }
    headline, missed, action, explanation = (
        context["headline"],
        context["missed"],
        context["action"],
        context["explanation"],
    )
    subject = f"[idrflow] {headline}: claim {env.claim_id}, {context['payer_name']}"
    icon = ":red_circle:" if missed else ":alarm_clock:"
    payer = _slack(context["payer_name"])
    slack_text = f"{icon} *{_slack(headline)}*: claim `{env.claim_id}`, {payer}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": slack_text}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Claim*\n{env.claim_id}"},
                {"type": "mrkdwn", "text": f"*Payer*\n{payer}"},
                {"type": "mrkdwn", "text": f"*Due*\n{context['due_on']}"},
                {"type": "mrkdwn", "text": f"*Stage*\n{context['stage']}"},
            ],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*What to do:* {_slack(action)}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack(explanation)}]},
    ]
    return AlertMessage(
        event_id=str(env.event_id),
        subject=subject,
        text=_templates.get_template("alert.txt.j2").render(context),
        html=_templates.get_template("alert.html.j2").render(context),
        slack_text=slack_text,
        slack_blocks=blocks,
    )
