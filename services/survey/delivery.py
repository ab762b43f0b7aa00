"""Getting a sent survey's link to the requester: a signed webhook and/or an e-mail.

When the sender marks a survey sent, it records here, in the same transaction, one delivery row
per channel of the survey's policy (``delivery.webhook_url``, ``delivery.email``).
``shared.delivery`` sends them durably (retries with backoff, a stable ``webhook-id``, a log
of every attempt) and each outcome updates the survey's ``delivery_status``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.survey import repository
from services.survey.models import Survey, SurveyDelivery
from shared.delivery import DeliverySpec, background, email_body, new_delivery
from shared.delivery import check_secret as _check_secret

TOKEN_IN_LINK = re.compile(r"/s/[A-Za-z0-9_\-]+")


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def valid_webhook_secret(secret: str) -> bool:
    try:
        _check_secret(secret)
    except ValueError:
        return False
    return True


def payload(survey: Survey, link: str) -> dict[str, Any]:
    return {
        "type": "survey.sent",
        "survey": {
            "id": survey.id,
            "kind": survey.kind,
            "question": survey.question,
            "url": link,
            "expires_at": survey.expires_at.isoformat() if survey.expires_at else None,
        },
        "ticket": {
            "id": survey.ticket_id,
            "subject": survey.subject,
            "channel": survey.channel,
            "priority": survey.priority,
            "group": survey.group,
            "assignee_id": survey.assignee_id,
        },
        "requester": {
            "id": survey.requester_id,
            "email": survey.requester_email,
            "name": survey.requester_name,
            "tier": survey.requester_tier,
        },
    }


def _mail(survey: Survey, link: str) -> str:
    greeting = f"Hello {survey.requester_name}," if survey.requester_name else "Hello,"
    return email_body(
        f"How did we do? {survey.subject or survey.ticket_id}",
        f"{greeting}\n\n{survey.question}\n\nAnswer here (one click, no login): {link}\n\n"
        f"Ticket: {survey.ticket_id}\n",
    )


def enqueue(
    session: AsyncSession, survey: Survey, link: str, event_id: str, now: datetime
) -> list[SurveyDelivery]:
    """Record the deliveries of a survey just sent (the sender's transaction)."""
    channels = survey.delivery or {}
    common: dict[str, Any] = {
        "event_id": event_id,
        "event_type": "survey.sent",
        "ticket_id": survey.ticket_id,
        "now": now,
        "survey_id": survey.id,
    }
    rows: list[SurveyDelivery] = []
    if channels.get("webhook_url"):
        # The body keeps the ``{"type", "survey", "ticket", "requester"}`` shape integrators
        # already parse.
        body = json.dumps(payload(survey, link), separators=(",", ":"))
        rows.append(
            new_delivery(
                SurveyDelivery,
                channel="webhook",
                target=str(channels["webhook_url"]),
                payload=body,
                **common,
            )
        )
    if channels.get("email"):
        row = new_delivery(
            SurveyDelivery,
            channel="email",
            target=survey.requester_email or "",
            payload=_mail(survey, link),
            **common,
        )
        if not survey.requester_email:
            row.status, row.next_attempt_at = "failed", None
            row.last_error = "the requester has no e-mail address"
            row.payload = _redact(row.payload)
        rows.append(row)
    session.add_all(rows)
    survey.delivery_status = _status([r.status for r in rows])
    return rows


def _status(statuses: list[str]) -> str:
    if not statuses:
        return "none"
    if "pending" in statuses:
        return "pending"
    return "failed" if "failed" in statuses else "delivered"


async def _secret_for(session: AsyncSession, row: SurveyDelivery) -> str | None:
    survey = await repository.get_survey(session, row.survey_id)
    if survey is None or not survey.delivery:
        return None
    secret = survey.delivery.get("webhook_secret")
    return str(secret) if secret else None


def _redact(payload: str) -> str:
    """The payload without the link's token: only its hash is kept once nothing will resend it."""
    return TOKEN_IN_LINK.sub("/s/<redacted>", payload)


async def _on_outcome(session: AsyncSession, row: SurveyDelivery) -> None:
    """Keep the survey's ``delivery_status`` in step with its deliveries."""
    if row.status != "pending":
        row.payload = _redact(row.payload)
    survey = await repository.get_survey(session, row.survey_id)
    if survey is None:
        return
    rows = await repository.deliveries_of(session, [survey.id])
    survey.delivery_status = _status([r.status for r in rows.get(survey.id, [])])


DELIVERIES = DeliverySpec(model=SurveyDelivery, secret_for=_secret_for, on_outcome=_on_outcome)
run_deliverer = background(DELIVERIES)
