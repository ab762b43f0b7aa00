"""Fires SLA warnings and breaches at their instant.

Not a periodic sweep: the scheduler sleeps until the earliest ``next_fire_at`` (or until a new
timer wakes it), claims due timers with ``FOR UPDATE SKIP LOCKED`` so several sla instances
fire each timer once, and fires in the same transaction that records it. After a restart it
fires whatever came due while it was down, flagged ``late``.
"""

from __future__ import annotations

import asyncio
import logging

from services.sla import repository, service
from shared.clock import wait_for_wake
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

BATCH = 500
MAX_SLEEP_SECONDS = 1.0


def wake_scheduler(runtime: ServiceRuntime) -> None:
    wake: asyncio.Event | None = runtime.state.get("scheduler_wake")
    if wake is not None:
        wake.set()


async def run_scheduler(runtime: ServiceRuntime) -> None:
    wake = runtime.state.setdefault("scheduler_wake", asyncio.Event())
    while True:
        fired = await fire_once(runtime)
        if fired >= BATCH:
            continue
        async with runtime.sessionmaker() as session:
            upcoming = await repository.next_fire_at(session)
        delay = MAX_SLEEP_SECONDS
        if upcoming is not None:
            delay = min(delay, max(0.0, (upcoming - runtime.clock.now()).total_seconds()))
        wake.clear()
        await wait_for_wake(wake, delay)


async def fire_once(runtime: ServiceRuntime) -> int:
    """Claim and fire one batch of due timers; returns how many were claimed.

    Safe to call from tests next to the running loop: within a process firing is serialized
    (SQLite has no ``SKIP LOCKED``); across processes the row locks do it.
    """
    lock: asyncio.Lock = runtime.state.setdefault("scheduler_lock", asyncio.Lock())
    async with lock, runtime.transaction() as session:
        now = runtime.clock.now()
        timers = await repository.claim_due(session, now, BATCH)
        ctx = service.SlaContext.for_session(session, runtime)
        async with ctx.batched_events():  # one outbox insert for the whole batch
            for timer in timers:
                await service.fire_due(ctx, timer, now)
    return len(timers)
