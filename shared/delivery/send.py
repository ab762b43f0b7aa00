"""One attempt: a signed webhook or an e-mail."""

from __future__ import annotations

import json
from datetime import datetime
from email.message import EmailMessage

import aiosmtplib
import httpx
from standardwebhooks.webhooks import Webhook

from shared.delivery.retry import Outcome
from shared.settings import Settings

TIMEOUT_SECONDS = 10.0


def check_secret(secret: str) -> None:
    """Raise ``ValueError`` unless ``secret`` is a Standard Webhooks secret (``whsec_<base64>``,
    at least 16 bytes)."""
    try:
        Webhook(secret)
    except Exception as exc:
        raise ValueError("must be whsec_ followed by base64 (at least 16 bytes)") from exc
    if len(secret.removeprefix("whsec_")) < 22:
        raise ValueError("must be whsec_ followed by base64 (at least 16 bytes)")


def signed_headers(secret: str, webhook_id: str, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body),
    }


async def send_webhook(
    http: httpx.AsyncClient, url: str, secret: str, webhook_id: str, body: str, at: datetime
) -> Outcome:
    try:
        headers = signed_headers(secret, webhook_id, body, at)
        response = await http.post(
            url, content=body.encode(), headers=headers, timeout=TIMEOUT_SECONDS
        )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        return Outcome(error=f"{type(exc).__name__}: {exc}", permanent=True)
    except httpx.HTTPError as exc:
        return Outcome(error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    if 200 <= response.status_code < 300:
        return Outcome(status_code=response.status_code)
    return Outcome(status_code=response.status_code, error=f"HTTP {response.status_code}")


async def send_email(settings: Settings, address: str, webhook_id: str, body: str) -> Outcome:
    if not settings.smtp_host:
        return Outcome(error="e-mail delivery needs TICKETFLOW_SMTP_HOST", permanent=True)
    content = json.loads(body)
    message = EmailMessage()
    message["From"] = settings.smtp_sender
    message["To"] = address
    message["Subject"] = content["subject"]
    message["Message-ID"] = f"<{webhook_id}@ticketflow>"  # the same on a repeat
    message.set_content(content["text"])
    try:
        await aiosmtplib.send(
            message, hostname=settings.smtp_host, port=settings.smtp_port, timeout=TIMEOUT_SECONDS
        )
    except aiosmtplib.SMTPResponseException as exc:
        return Outcome(error=f"SMTP {exc.code} {exc.message}"[:1000], permanent=exc.code >= 500)
    except (aiosmtplib.SMTPException, OSError) as exc:
        return Outcome(error=f"SMTP: {exc!r}"[:1000])
    return Outcome()
