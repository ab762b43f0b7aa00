"""The webhook endpoints' request headers, as the OpenAPI document states them.

The signatures are checked in ``webhooks.py``; this says what a sender must put where, so
``/docs`` and generated clients show it.
"""

from __future__ import annotations

from typing import Any


def _header(name: str, description: str, *, required: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


SIGNATURE_HEADERS: dict[str, list[dict[str, Any]]] = {
    "zendesk": [
        _header(
            "X-Zendesk-Webhook-Signature",
            "base64(HMAC-SHA256(secret, timestamp + raw body)), secret = "
            "TICKETFLOW_WEBHOOK_SECRET_ZENDESK (the webhook's signing secret in Zendesk).",
        ),
        _header(
            "X-Zendesk-Webhook-Signature-Timestamp",
            "The signed timestamp (RFC 3339); older than 5 minutes is refused.",
        ),
    ],
    "freshdesk": [
        _header(
            "Authorization",
            "Freshdesk does not sign: send TICKETFLOW_WEBHOOK_SECRET_FRESHDESK as the HTTP Basic "
            "password (any user name) — or use X-Ticketflow-Token.",
            required=False,
        ),
        _header(
            "X-Ticketflow-Token",
            "TICKETFLOW_WEBHOOK_SECRET_FRESHDESK, when Basic authentication is not used.",
            required=False,
        ),
    ],
    "jira": [
        _header(
            "X-Hub-Signature",
            "sha256=<hex HMAC-SHA256(secret, raw body)>, secret = TICKETFLOW_WEBHOOK_SECRET_JIRA.",
        ),
        _header(
            "X-Atlassian-Webhook-Identifier",
            "Jira's delivery id: a redelivery with the same id changes nothing.",
            required=False,
        ),
    ],
    "generic": [
        _header("webhook-id", "Standard Webhooks message id (redeliveries keep it)."),
        _header("webhook-timestamp", "Unix seconds; older than 5 minutes is refused."),
        _header(
            "webhook-signature",
            "v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>; secret = "
            "TICKETFLOW_WEBHOOK_SECRET_GENERIC (whsec_<base64>). Several space-separated "
            "signatures are accepted during a key rotation.",
        ),
    ],
}


def openapi_extra(provider: str, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` (the request body's description) plus ``provider``'s signature headers."""
    return {**base, "parameters": SIGNATURE_HEADERS[provider]}
