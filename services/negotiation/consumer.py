"""The negotiation consumer: proof of a notice's delivery (from the notifier, on ``idr.notices.v1``)
is stored with the notice, and the claim's workflow learns the notice was sent."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowUpdateFailedError

from services.negotiation.service import record_delivery
from shared.events import Envelope, OpenNegotiationNoticeDelivered
from shared.lifecycle import NoticeSent
from shared.settings import Settings
from shared.temporal import claim_workflow_id

log = logging.getLogger(__name__)

CONSUMER = "negotiation-notices"


class DeliveryHandler:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def __call__(self, session: AsyncSession, env: Envelope) -> None:
        if env.event_type != OpenNegotiationNoticeDelivered.event_type:
            return
        proof = OpenNegotiationNoticeDelivered.model_validate(env.payload)
        await record_delivery(session, env.tenant_id, proof)
        if proof.status != "sent" or proof.sent_at is None:
            log.warning(
                "notice %s for claim %s was not delivered: %s", proof.notice_id, env.claim_id, proof.detail
            )
            return
        sent_on = proof.sent_at.astimezone(ZoneInfo(self.settings.business_timezone)).date()
        action = NoticeSent(
            sent_on=sent_on, recipient=proof.recipient, channel="email", actor="idrflow notifier"
        )
        try:
            await self.client.get_workflow_handle(
                claim_workflow_id(env.tenant_id, env.claim_id)
            ).execute_update("open_negotiation_notice_sent", action)
        except WorkflowUpdateFailedError as exc:
            # e.g. the notice was already recorded by hand: the proof is kept, the clock is unchanged
            log.warning("claim %s did not take the notice: %s", env.claim_id, exc.cause)
