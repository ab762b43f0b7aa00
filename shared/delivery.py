"""Durable outbound delivery: signed webhooks and e-mails, at least once, with a log.

A service that sends something out (sla's webhook subscriptions and escalation e-mails, survey's
links) writes one *delivery row* per message and destination in the same transaction as the
state change that causes it (an outbox of its own), in a table of its schema built from
``DeliveryMixin``. A background ``Deliverer`` claims due rows (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; on SQLite the write lock taken at ``BEGIN IMMEDIATE`` serializes claims), leases them
for ``LEASE_SECONDS``, sends, and records the outcome:

- 2xx (or the SMTP server accepting the mail): ``delivered``;
- anything else: retried after an exponential backoff with jitter (``RetryPolicy``), every
  attempt appended to ``attempt_log``; after ``max_attempts`` (about 8 hours) or a permanent
  error (an unusable URL, SMTP 5xx, no SMTP server configured) the row is ``failed`` (given up).

A crash between sending and recording leaves the lease to expire, so the message is sent again
with the same ``webhook-id`` (the row id): receivers drop repeats. Nothing is lost.

Webhooks follow Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature: v1,<base64 HMAC-SHA256>`` signed with the destination's ``whsec_`` secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, Literal

import aiosmtplib
import httpx
from pydantic import BaseModel
from sqlalchemy import Index, Integer, String, Text, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, declared_attr, mapped_column
from standardwebhooks.webhooks import Webhook

from shared.clock import Clock, utcnow, wait_for_wake
from shared.db import JSONType, UTCDateTime, is_postgres
from shared.settings import Settings

log = logging.getLogger(__name__)

Channel = Literal["webhook", "email"]
LEASE_SECONDS = 120.0  # a claimed delivery is not tried again by anyone for this long
TIMEOUT_SECONDS = 10.0
CONCURRENCY = 50
POLL_SECONDS = 1.0


# --- the table --------------------------------------------------------------------------------


class DeliveryMixin:
    """Columns of a service's delivery table; the service adds who the delivery belongs to."""

    # Also the ``webhook-id`` (and the e-mail's Message-ID): the same on every attempt.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    # The URL of a webhook or the address of an e-mail.
    target: Mapped[str] = mapped_column(String(2000))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[str | None] = mapped_column(String(255))
    # The exact body sent (webhook), or {"subject", "text"} as JSON (e-mail).
    payload: Mapped[str] = mapped_column(Text)
    # pending -> delivered | failed (gave up)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    # One entry per attempt: {attempt, at, status_code, error, next_attempt_at}.
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        name = cls.__tablename__  # type: ignore[attr-defined]
        return (Index(f"ix_{name}_status_next_attempt_at", "status", "next_attempt_at"),)


def new_delivery(
    model: type[Any],
    *,
    channel: Channel,
    target: str,
    payload: str,
    event_id: str,
    event_type: str,
    ticket_id: str | None,
    now: datetime,
    **owner: Any,
) -> Any:
    """A pending delivery row, due now; add it to the session of the causing state change."""
    return model(
        id=f"msg_{uuid.uuid4().hex}",
        channel=channel,
        target=target,
        payload=payload,
        event_id=event_id,
        event_type=event_type,
        ticket_id=ticket_id,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        attempt_log=[],
        created_at=now,
        **owner,
    )


def webhook_body(event_type: str, data: dict[str, Any], now: datetime) -> str:
    """The JSON body of a webhook: ``{"type", "timestamp", "data"}`` (Standard Webhooks)."""
    body = {"type": event_type, "timestamp": now.isoformat(), "data": data}
    return json.dumps(body, separators=(",", ":"))


def email_body(subject: str, text: str) -> str:
    return json.dumps({"subject": subject[:200], "text": text})


class DeliveryRead(BaseModel):
    """One delivery and the log of its attempts, as the APIs show it."""

    id: str
    webhook_id: str
    channel: str
    target: str
    event_id: str
    event_type: str
    ticket_id: str | None
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    attempt_log: list[dict[str, Any]]


def delivery_read(row: Any) -> dict[str, Any]:
    """A delivery row as the fields of ``DeliveryRead``."""
    fields = {
        name: getattr(row, name) for name in DeliveryRead.model_fields if name != "webhook_id"
    }
    return {**fields, "webhook_id": row.id, "attempt_log": list(row.attempt_log or [])}


# --- retries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: ``first * 2**(n-1)`` capped at ``cap``, times a random
    factor in ``[1 - jitter, 1 + jitter]``; give up after ``max_attempts`` attempts.

    The defaults wait about 5 s, 10 s, 20 s, ... 1 h, 1 h: 16 attempts over about 8 hours.
    """

    first_seconds: float = 5.0
    cap_seconds: float = 3600.0
    jitter: float = 0.2
    max_attempts: int = 16

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        base = min(self.cap_seconds, self.first_seconds * 2 ** max(0, attempts - 1))
        factor = 1.0 + (rng or random).uniform(-self.jitter, self.jitter)
        return base * factor

    def gives_up(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: delivered, or an error that may (or may not) pass on retry."""

    status_code: int | None = None
    error: str | None = None
    permanent: bool = False

    @property
    def delivered(self) -> bool:
        return self.error is None


def next_state(
    row: Any, outcome: Outcome, now: datetime, policy: RetryPolicy, rng: random.Random | None = None
) -> None:
    """Record an attempt's outcome on ``row``: delivered, retried later, or given up."""
    row.attempts += 1
    row.last_attempt_at = now
    row.last_status_code = outcome.status_code
    row.last_error = outcome.error[:1000] if outcome.error else None
    if outcome.delivered:
        row.status, row.delivered_at, row.next_attempt_at = "delivered", now, None
    elif outcome.permanent or policy.gives_up(row.attempts):
        row.status, row.next_attempt_at = "failed", None
    else:
        row.next_attempt_at = now + timedelta(seconds=policy.delay(row.attempts, rng))
    entry = {
        "attempt": row.attempts,
        "at": now.isoformat(),
        "status_code": outcome.status_code,
        "error": row.last_error,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
    }
    row.attempt_log = [*(row.attempt_log or []), entry]


# --- sending ----------------------------------------------------------------------------------


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


# --- the worker -------------------------------------------------------------------------------

SecretFor = Callable[[AsyncSession, Any], Awaitable[str | None]]
OnOutcome = Callable[[AsyncSession, Any], Awaitable[None]]


@dataclass(frozen=True)
class Claimed:
    id: str
    channel: str
    target: str
    payload: str
    secret: str | None


@dataclass(frozen=True)
class DeliverySpec:
    """What a service tells the deliverer: its table, where a webhook's secret is, and an
    optional hook run in the transaction that records each outcome."""

    model: type[Any]
    secret_for: SecretFor
    on_outcome: OnOutcome | None = None
    policy: RetryPolicy = RetryPolicy()


class Deliverer:
    """Claims, sends and records the due deliveries of one service's table."""

    def __init__(
        self,
        spec: DeliverySpec,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.spec = spec
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.settings = settings
        self.http = http or httpx.AsyncClient(follow_redirects=False)
        self.poll_seconds = poll_seconds
        self.wake = asyncio.Event()
        self._claim_lock = asyncio.Lock()

    async def claim(self, limit: int) -> list[Claimed]:
        """Lease up to ``limit`` due deliveries (another instance skips them until the lease
        ends); a webhook whose destination is gone is given up here."""
        model = self.spec.model
        async with self._claim_lock, self.sessionmaker.begin() as session:
            now = self.clock.now()
            statement = (
                select(model)
                .where(model.status == "pending", model.next_attempt_at <= now)
                .order_by(model.next_attempt_at)
                .limit(limit)
            )
            if is_postgres(session):
                statement = statement.with_for_update(skip_locked=True)
            claimed: list[Claimed] = []
            for row in (await session.execute(statement)).scalars().all():
                secret = None
                if row.channel == "webhook":
                    secret = await self.spec.secret_for(session, row)
                    if secret is None:
                        outcome = Outcome(error="the destination was deleted", permanent=True)
                        await self._record(session, row, outcome, now)
                        continue
                row.next_attempt_at = now + timedelta(seconds=LEASE_SECONDS)
                claimed.append(Claimed(row.id, row.channel, row.target, row.payload, secret))
        return claimed

    async def attempt(self, claimed: Claimed) -> Outcome:
        """Send one claimed delivery and record what happened."""
        if claimed.channel == "webhook":
            assert claimed.secret is not None
            outcome = await send_webhook(
                self.http,
                claimed.target,
                claimed.secret,
                claimed.id,
                claimed.payload,
                utcnow(),  # receivers check it against their wall clock, whatever ours says
            )
        else:
            outcome = await send_email(self.settings, claimed.target, claimed.id, claimed.payload)
        async with self.sessionmaker.begin() as session:
            row = await session.get(self.spec.model, claimed.id, with_for_update=True)
            if row is not None and row.status == "pending":
                await self._record(session, row, outcome, self.clock.now())
        log.info(
            "delivery %s (%s to %s): %s",
            claimed.id,
            claimed.channel,
            claimed.target,
            "delivered" if outcome.delivered else f"failed ({outcome.error})",
        )
        return outcome

    async def _record(
        self, session: AsyncSession, row: Any, outcome: Outcome, now: datetime
    ) -> None:
        next_state(row, outcome, now, self.spec.policy)
        if self.spec.on_outcome is not None:
            await self.spec.on_outcome(session, row)

    async def run_once(self) -> int:
        """Claim and send everything due now, one batch at a time; returns how many were sent."""
        total = 0
        while claimed := await self.claim(CONCURRENCY):
            await asyncio.gather(*(self.attempt(c) for c in claimed))
            total += len(claimed)
        return total

    async def run(self) -> None:
        """Keep up to ``CONCURRENCY`` attempts in flight, apart from the event pipeline."""
        in_flight: set[asyncio.Task[Outcome]] = set()
        try:
            while True:
                free = CONCURRENCY - len(in_flight)
                claimed = await self.claim(free) if free > 0 else []
                for item in claimed:
                    task = asyncio.create_task(self.attempt(item))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if not claimed:
                    self.wake.clear()
                    await wait_for_wake(self.wake, self.poll_seconds)
        finally:
            for task in in_flight:
                task.cancel()
            for task in list(in_flight):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.http.aclose()


async def pending_count(session: AsyncSession, model: type[Any]) -> int:
    """How many deliveries still wait to be sent."""
    statement = select(func.count()).select_from(model).where(model.status == "pending")
    return int(await session.scalar(statement) or 0)


def background(spec: DeliverySpec) -> Callable[[Any], Awaitable[None]]:
    """A ``ServiceRuntime`` background task running a ``Deliverer`` over ``spec``'s table."""

    async def run_deliverer(runtime: Any) -> None:
        deliverer = Deliverer(spec, runtime.sessionmaker, runtime.clock, runtime.settings)
        await deliverer.run()

    return run_deliverer
