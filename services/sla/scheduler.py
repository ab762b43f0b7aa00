"""Fires SLA warnings and breaches at their instant.

Not a periodic sweep: the scheduler sleeps until the earliest ``next_fire_at`` (or until a new
timer wakes it), claims due timers with ``FOR UPDATE SKIP LOCKED`` so several sla instances
fire each timer once, and fires in the same transaction that records it. After a restart it
fires whatever came due while it was down, flagged ``late``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.sla import repository, service
from shared.clock import wait_for_wake
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

BATCH = 500
MAX_SLEEP_SECONDS = 1.0


@dataclass
class SchedulerState:
    """What the scheduler loop shares with the rest of the process (``runtime.state_of``)."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # When the sleeping loop looks again by itself (None while it is awake): a timer due later
    # needs no wake-up.
    next_look: datetime | None = None
    # Serializes firing within a process (SQLite has no ``SKIP LOCKED``).
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def wake_scheduler(runtime: ServiceRuntime, due: datetime | None = None) -> None:
    """Have the loop look at the timers now; with ``due`` (the earliest instant something of
    the changed timers fires), only if the loop would otherwise look later than that. Every
    batch of new tickets starts timers, and a look costs a transaction and three statements."""
    state = runtime.state_of(SchedulerState)
    if due is not None and state.next_look is not None and due >= state.next_look:
        return
    state.wake.set()


def wake_after_commit(ctx: service.SlaContext) -> None:
    """Timers changed in this unit of work: look at them again once it has committed."""
    runtime = ctx.runtime
    if runtime is not None:
        ctx.after_commit.append(lambda: wake_scheduler(runtime))


async def run_scheduler(runtime: ServiceRuntime) -> None:
    state = runtime.state_of(SchedulerState)
    while True:
        state.next_look = None
        fired = await fire_once(runtime)
        if fired >= BATCH:
            continue
        # Cleared before the read: a timer committed after it wakes the loop (its wake-up is
        # kept), one committed before it is in what the read returns.
        state.wake.clear()
        async with runtime.sessionmaker() as session:
            upcoming = await repository.next_fire_at(session)
        now = runtime.clock.now()
        delay = MAX_SLEEP_SECONDS
        if upcoming is not None:
            delay = min(delay, max(0.0, (upcoming - now).total_seconds()))
        state.next_look = now + timedelta(seconds=delay)
        await wait_for_wake(state.wake, delay)


async def fire_once(runtime: ServiceRuntime) -> int:
    """Claim and fire one batch of due timers; returns how many were claimed.

    Safe to call from tests next to the running loop: within a process firing is serialized
    (SQLite has no ``SKIP LOCKED``); across processes the row locks do it.
    """
    lock = runtime.state_of(SchedulerState).lock
    async with lock, runtime.unit_of_work(service.SlaContext) as ctx:
        now = ctx.clock.now()
        timers = await repository.claim_due(ctx.session, now, BATCH)
        async with ctx.batched_events():  # one outbox insert for the whole batch
            for timer in timers:
                await service.fire_due(ctx, timer, now)
    return len(timers)
