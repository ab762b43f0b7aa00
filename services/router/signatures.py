"""Webhook signature checks per provider: constant-time, over the raw body, 5-minute window.

Every check raises ``Unauthorized`` with a reason; a provider without a configured secret
refuses everything rather than accepting unsigned deliveries.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.errors import Unauthorized

REPLAY_WINDOW = timedelta(minutes=5)
PROVIDERS = ("zendesk", "freshdesk", "jira", "generic")


def require_secret(provider: str, secret: str | None) -> str:
    if not secret:
        raise Unauthorized(
            f"{provider} webhooks are disabled: set TICKETFLOW_WEBHOOK_SECRET_{provider.upper()}"
        )
    return secret


def check_window(sent_at: datetime, now: datetime, what: str) -> None:
    """Refuse a delivery stamped more than five minutes away from now (either way)."""
    if abs(now - sent_at) > REPLAY_WINDOW:
        raise Unauthorized(f"{what} is outside the 5-minute replay window")


def _hmac_sha256(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def zendesk_signature(secret: str, timestamp: str, body: bytes) -> str:
    return base64.b64encode(_hmac_sha256(secret, timestamp.encode() + body)).decode()


def verify_zendesk(secret: str, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
    signature = headers.get("x-zendesk-webhook-signature")
    timestamp = headers.get("x-zendesk-webhook-signature-timestamp")
    if not signature or not timestamp:
        raise Unauthorized(
            "missing X-Zendesk-Webhook-Signature or X-Zendesk-Webhook-Signature-Timestamp"
        )
    expected = zendesk_signature(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise Unauthorized("invalid X-Zendesk-Webhook-Signature")
    try:
        sent_at = datetime.fromisoformat(timestamp.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Unauthorized("X-Zendesk-Webhook-Signature-Timestamp is not a timestamp") from None
    if sent_at.tzinfo is None:
        sent_at = sent_at.replace(tzinfo=UTC)
    check_window(sent_at, now, "X-Zendesk-Webhook-Signature-Timestamp")


def verify_freshdesk(secret: str, headers: Mapping[str, str]) -> None:
    """Freshdesk cannot sign: the secret comes as the Basic password or ``X-Ticketflow-Token``."""
    offered: str | None = headers.get("x-ticketflow-token")
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if offered is None and scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed Basic credentials") from None
        offered = decoded.partition(":")[2]
    if not offered:
        raise Unauthorized(
            "missing credentials: send the secret as Basic password or X-Ticketflow-Token"
        )
    if not hmac.compare_digest(offered.encode(), secret.encode()):
        raise Unauthorized("invalid Freshdesk credentials")


def jira_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_jira(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """``X-Hub-Signature: sha256=<hex>``; the body's ``timestamp`` is checked after parsing."""
    signature = headers.get("x-hub-signature")
    if not signature:
        raise Unauthorized("missing X-Hub-Signature")
    if not hmac.compare_digest(jira_signature(secret, body).encode(), signature.strip().encode()):
        raise Unauthorized("invalid X-Hub-Signature")


@functools.lru_cache(maxsize=16)
def standard_webhook(secret: str) -> Webhook:
    """A ``whsec_<base64>`` secret is decoded as Standard Webhooks says; any other string is
    used as raw key bytes."""
    if secret.startswith("whsec_"):
        try:
            return Webhook(secret)
        except (binascii.Error, ValueError):
            pass
    return Webhook(secret.encode())


def verify_generic(secret: str, headers: Mapping[str, str], body: bytes) -> str:
    """Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``);
    returns the ``webhook-id``, which names the delivery."""
    plain = {k.lower(): v for k, v in headers.items()}
    try:
        standard_webhook(secret).verify(body, plain, json_parse=False)
    except WebhookVerificationError as exc:
        raise Unauthorized(f"invalid Standard Webhooks signature: {exc}") from None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed webhook-signature") from None
    return plain["webhook-id"]
