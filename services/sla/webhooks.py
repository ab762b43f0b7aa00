"""Outbound webhooks: sla events delivered to subscribers, signed per Standard Webhooks.

Each sla event is written, in the transaction that emits it, as one delivery row per matching
subscription (``event_types`` entries are exact types like ``sla.breached`` or a prefix wildcard
like ``sla.*``). A background deliverer sends due rows with bounded concurrency, apart from the
event pipeline, so a slow or dead subscriber never delays timers or the bus. A failed attempt
(network error, timeout, any non-2xx) is retried with exponential backoff: 5 s, 10 s, 20 s, ...
capped at 1 h per wait, for ``MAX_ATTEMPTS`` attempts (about 8 hours) before it is marked
``failed``. Each attempt's outcome is kept on the row (``attempts``, ``last_status_code``,
``last_error``) and logged.

Body: ``{"type", "timestamp", "data"}``; headers ``webhook-id`` (the event id, stable across
retries so receivers can dedupe), ``webhook-timestamp``, ``webhook-signature: v1,<base64>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from services.sla.models import WebhookDelivery, WebhookSubscription
from shared import events as ev
from shared.clock import utcnow
from shared.db import is_postgres
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 16
FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 3600.0
LEASE_SECONDS = 120.0  # a claimed delivery is not retried by another instance for this long
TIMEOUT_SECONDS = 10.0
CONCURRENCY = 50
POLL_SECONDS = 1.0


def backoff_seconds(attempts: int) -> float:
    """Wait after the ``attempts``-th failed attempt."""
    return float(min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** max(0, attempts - 1)))


def check_secret(secret: str) -> None:
    """Raise ``ValueError`` unless ``secret`` is a Standard Webhooks secret (``whsec_<base64>``)."""
    try:
        Webhook(secret)
    except Exception as exc:
        raise ValueError("must be whsec_ followed by base64 (at least 16 bytes)") from exc
    raw = secret.removeprefix("whsec_")
    if len(raw) < 22:
        raise ValueError("must be whsec_ followed by base64 (at least 16 bytes)")


def wants(subscription: WebhookSubscription, event_type: str) -> bool:
    for pattern in subscription.event_types:
        if pattern in (event_type, "*") or (
            pattern.endswith(".*") and event_type.startswith(pattern[:-1])
        ):
            return True
    return False


def signed_request(secret: str, event_id: str, payload: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt."""
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, at, payload),
    }


async def enqueue(
    session: AsyncSession,
    subscriptions: Sequence[WebhookSubscription],
    event: ev.Event,
    event_id: str,
    now: datetime,
) -> None:
    """Record deliveries of ``event`` for the subscriptions that want it (caller's transaction)."""
    payload: str | None = None
    for subscription in subscriptions:
        if not wants(subscription, event.type):
            continue
        if payload is None:
            payload = json.dumps(
                {
                    "type": event.type,
                    "timestamp": now.isoformat(),
                    "data": event.model_dump(mode="json"),
                },
                separators=(",", ":"),
            )
        session.add(
            WebhookDelivery(
                id=str(uuid.uuid4()),
                subscription_id=subscription.id,
                event_id=event_id,
                event_type=event.type,
                ticket_id=event.subject,
                payload=payload,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )


async def subscriptions(session: AsyncSession) -> Sequence[WebhookSubscription]:
    return (await session.execute(select(WebhookSubscription))).scalars().all()


async def _claim(runtime: ServiceRuntime, limit: int) -> list[tuple[str, str, str, str, str]]:
    """Lease due deliveries; returns (delivery id, url, secret, event id, payload).

    Within a process claims are serialized (SQLite has no ``SKIP LOCKED``); across processes
    the row locks keep two instances from taking the same delivery.
    """
    lock: asyncio.Lock = runtime.state.setdefault("webhook_claim_lock", asyncio.Lock())
    async with lock, runtime.transaction() as session:
        now = runtime.clock.now()
        statement = (
            select(WebhookDelivery)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        )
        if is_postgres(session):
            statement = statement.with_for_update(skip_locked=True)
        rows = (await session.execute(statement)).scalars().all()
        claimed = []
        for row in rows:
            subscription = await session.get(WebhookSubscription, row.subscription_id)
            if subscription is None:
                row.status = "failed"
                row.last_error = "subscription deleted"
                row.next_attempt_at = None
                continue
            row.next_attempt_at = now + timedelta(seconds=LEASE_SECONDS)
            claimed.append(
                (row.id, subscription.url, subscription.secret, row.event_id, row.payload)
            )
    return claimed


async def _attempt(
    runtime: ServiceRuntime, http: httpx.AsyncClient, claimed: tuple[str, str, str, str, str]
) -> None:
    delivery_id, url, secret, event_id, payload = claimed
    status_code: int | None = None
    error: str | None = None
    try:
        response = await http.post(
            url,
            content=payload.encode(),
            headers=signed_request(secret, event_id, payload, utcnow()),
            timeout=TIMEOUT_SECONDS,
        )
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
    async with runtime.transaction() as session:
        row = await session.get(WebhookDelivery, delivery_id)
        if row is None:
            return
        now = runtime.clock.now()
        row.attempts += 1
        row.last_attempt_at = now
        row.last_status_code = status_code
        row.last_error = error
        if error is None:
            row.status = "delivered"
            row.delivered_at = now
            row.next_attempt_at = None
        elif row.attempts >= MAX_ATTEMPTS:
            row.status = "failed"
            row.next_attempt_at = None
        else:
            row.next_attempt_at = now + timedelta(seconds=backoff_seconds(row.attempts))
    log.info(
        "webhook delivery %s of event %s to %s: attempt %s %s",
        delivery_id,
        event_id,
        url,
        row.attempts,
        "delivered" if error is None else f"failed ({error})",
    )


def _http(runtime: ServiceRuntime) -> httpx.AsyncClient:
    client: httpx.AsyncClient | None = runtime.state.get("webhook_http")
    if client is None:
        client = httpx.AsyncClient(follow_redirects=False)
        runtime.state["webhook_http"] = client
    return client


async def run_webhook_deliverer(runtime: ServiceRuntime) -> None:
    """Background loop: keeps up to ``CONCURRENCY`` attempts in flight, never blocking others."""
    in_flight: set[asyncio.Task[None]] = set()
    try:
        while True:
            free = CONCURRENCY - len(in_flight)
            claimed = await _claim(runtime, free) if free > 0 else []
            http = _http(runtime)
            for item in claimed:
                task = asyncio.create_task(_attempt(runtime, http, item))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if not claimed:
                await asyncio.sleep(POLL_SECONDS)
    finally:
        for task in in_flight:
            task.cancel()
        for task in list(in_flight):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        client: httpx.AsyncClient | None = runtime.state.pop("webhook_http", None)
        if client is not None:
            await client.aclose()


def delivery_log(row: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "ticket_id": row.ticket_id,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at,
        "last_attempt_at": row.last_attempt_at,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "delivered_at": row.delivered_at,
    }
