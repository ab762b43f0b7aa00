"""Getting a sent survey's link to the requester: a signed webhook or an email.

Runs off the event pipeline: the sender commits ``survey.sent`` first, then delivery happens in
its own task with retries, and its outcome is recorded on the survey (``delivery_status``).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
from standardwebhooks.webhooks import Webhook
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from services.survey.models import Survey
from shared.settings import Settings

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


class DeliveryError(Exception):
    """A delivery failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def valid_webhook_secret(secret: str) -> bool:
    try:
        Webhook(secret)
    except Exception:
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


def signed_headers(secret: str, message_id: str, body: str, now: datetime) -> dict[str, str]:
    """Standard Webhooks headers: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
        "content-type": "application/json",
    }


async def send_webhook(
    client: httpx.AsyncClient, url: str, secret: str, survey: Survey, link: str
) -> None:
    body = json.dumps(payload(survey, link), separators=(",", ":"))
    # The same id on every retry, so the receiver can drop duplicates.
    headers = signed_headers(secret, f"survey_{survey.id}", body, datetime.now(UTC))
    try:
        response = await client.post(url, content=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook {url}: {exc!r}", retryable=True) from exc
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise DeliveryError(f"webhook {url}: HTTP {response.status_code}", retryable=True)
    if response.status_code >= 300:
        raise DeliveryError(f"webhook {url}: HTTP {response.status_code}", retryable=False)


async def send_email(settings: Settings, survey: Survey, link: str) -> None:
    if not settings.smtp_host:
        raise DeliveryError("email delivery needs TICKETFLOW_SMTP_HOST", retryable=False)
    if not survey.requester_email:
        raise DeliveryError("the requester has no email address", retryable=False)
    message = EmailMessage()
    message["From"] = settings.smtp_sender
    message["To"] = survey.requester_email
    message["Subject"] = f"How did we do? {survey.subject or survey.ticket_id}"[:200]
    greeting = f"Hello {survey.requester_name}," if survey.requester_name else "Hello,"
    message.set_content(
        f"{greeting}\n\n{survey.question}\n\nAnswer here (one click, no login): {link}\n\n"
        f"Ticket: {survey.ticket_id}\n"
    )
    try:
        await aiosmtplib.send(
            message, hostname=settings.smtp_host, port=settings.smtp_port, timeout=10
        )
    except aiosmtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP: {exc.code} {exc.message}", retryable=exc.code < 500) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP: {exc!r}", retryable=True) from exc


async def deliver(settings: Settings, client: httpx.AsyncClient, survey: Survey, link: str) -> None:
    """Deliver through every channel of the survey's policy, retrying with backoff."""
    delivery = survey.delivery or {}
    retrying = AsyncRetrying(
        stop=stop_after_attempt(MAX_ATTEMPTS),
        wait=wait_exponential(multiplier=0.5, max=60),
        retry=retry_if_exception(lambda e: isinstance(e, DeliveryError) and e.retryable),
        reraise=True,
    )
    if delivery.get("webhook_url"):
        async for attempt in retrying:
            with attempt:
                await send_webhook(
                    client,
                    str(delivery["webhook_url"]),
                    str(delivery.get("webhook_secret") or ""),
                    survey,
                    link,
                )
    if delivery.get("email"):
        async for attempt in retrying.copy():
            with attempt:
                await send_email(settings, survey, link)
