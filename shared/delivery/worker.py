"""The background worker: claims due deliveries, sends them, records the outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import Clock, utcnow, wait_for_wake
from shared.db import is_postgres
from shared.delivery.retry import Outcome, RetryPolicy, next_state
from shared.delivery.send import send_email, send_webhook
from shared.runtime import BackgroundTask, ServiceRuntime
from shared.settings import Settings

log = logging.getLogger(__name__)

LEASE_SECONDS = 120.0  # a claimed delivery is not tried again by anyone for this long
CONCURRENCY = 50
POLL_SECONDS = 1.0

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
    policy: RetryPolicy = field(default_factory=RetryPolicy)


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


def background(spec: DeliverySpec) -> BackgroundTask:
    """A ``ServiceRuntime`` background task running a ``Deliverer`` over ``spec``'s table."""

    async def run_deliverer(runtime: ServiceRuntime) -> None:
        deliverer = Deliverer(spec, runtime.sessionmaker, runtime.clock, runtime.settings)
        await deliverer.run()

    return run_deliverer
