"""Helpers for the intake tests: fixtures from disk and correctly signed webhook requests."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.router.signatures import jira_signature, standard_webhook, zendesk_signature

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
SECRETS = {
    "zendesk": "zd-signing-secret",
    "freshdesk": "fd-shared-secret",
    "jira": "jira-webhook-secret",
    "generic": "whsec_" + base64.b64encode(b"generic-signing-key-0123456789ab").decode(),
}
SECRET_SETTINGS = {f"webhook_secret_{k}": v for k, v in SECRETS.items()}


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def with_ticket(provider: str, data: dict[str, Any], external_id: str) -> dict[str, Any]:
    """A copy of a fixture about another ticket, so tests sharing a database never collide."""
    data = json.loads(json.dumps(data))
    if provider == "zendesk":
        if "detail" in data:
            data["detail"]["id"] = external_id
            data["subject"] = f"zen:ticket:{external_id}"
            data["id"] = f"{data['id']}-{external_id}"
        else:
            data["ticket"]["id"] = external_id
    elif provider == "freshdesk":
        data["freshdesk_webhook"]["ticket_id"] = external_id
    elif provider == "jira":
        data["issue"]["key"] = external_id
    else:
        data["data"]["external_id"] = external_id
    return data


def unique_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def signed(
    provider: str,
    body: bytes,
    *,
    secret: str | None = None,
    at: datetime | None = None,
    delivery_id: str | None = None,
) -> dict[str, str]:
    """Headers the provider would send for ``body`` at time ``at`` (default now)."""
    secret = secret or SECRETS[provider]
    at = at or datetime.now(UTC)
    headers = {"content-type": "application/json"}
    if provider == "zendesk":
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        headers["x-zendesk-webhook-signature-timestamp"] = stamp
        headers["x-zendesk-webhook-signature"] = zendesk_signature(secret, stamp, body)
    elif provider == "freshdesk":
        headers["authorization"] = (
            "Basic " + base64.b64encode(f"ticketflow:{secret}".encode()).decode()
        )
    elif provider == "jira":
        headers["x-hub-signature"] = jira_signature(secret, body)
        if delivery_id:
            headers["x-atlassian-webhook-identifier"] = delivery_id
    else:
        msg_id = delivery_id or f"msg_{uuid.uuid4().hex}"
        headers["webhook-id"] = msg_id
        headers["webhook-timestamp"] = str(int(at.timestamp()))
        headers["webhook-signature"] = standard_webhook(secret).sign(msg_id, at, body.decode())
    return headers


def jira_now(data: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
    """Jira's signed ``timestamp`` must fall in the replay window."""
    data = dict(data)
    data["timestamp"] = int((at or datetime.now(UTC)).timestamp() * 1000)
    return data


def encode(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def monotonic_ms() -> int:
    return int(time.time() * 1000)
