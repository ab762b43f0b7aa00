"""Durable acceptance of inbound tickets: webhook dedupe + outbox, idempotency keys, rate limit.

A webhook delivery is recorded and its canonical events written to the outbox (topic
``inbound``) together, in one transaction; router's own ``ticketflow.inbound`` consumer applies
them to the ticket, exactly as it does for integrators who produce to that topic directly.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.router import repository
from services.router.models import IdempotencyKey
from services.router.providers import NO_MAPPINGS, Mappings, Parsed, body_digest
from shared.clock import Clock
from shared.db import GroupCommit, is_postgres
from shared.errors import TooManyRequests, Unprocessable
from shared.metrics import DB_GROUP_SIZE
from shared.runtime import ServiceRuntime


@dataclass
class Acceptance:
    accepted: int = 0
    duplicates: int = 0
    ticket_ids: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, parsed: Parsed, first_time: bool) -> Acceptance:
        count = len(parsed.events)
        if first_time:
            return cls(accepted=count, ticket_ids=parsed.ticket_ids)
        return cls(duplicates=count, ticket_ids=parsed.ticket_ids)

    def body(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "ticket_ids": self.ticket_ids,
        }


def delivery_key(parsed: Parsed, body: bytes) -> str:
    return parsed.delivery_id or f"sha256:{body_digest(body)}"


async def accept_delivery(
    runtime: ServiceRuntime,
    *,
    provider: str,
    parse: Callable[[Mappings], Parsed],
    body: bytes,
    mapped: bool = True,
) -> Acceptance:
    """Parse with the provider's current mappings (``mapped``), then store the delivery once
    with its events in the outbox; a redelivery changes nothing. Returns once committed.

    PostgreSQL: one autocommit statement (``repository.add_webhook_deliveries_with_events``) on
    asyncpg directly (``runtime.driver_pool``), shared with the requests that arrive while the
    previous one is in flight (``door_writes``); a concurrent duplicate waits for the first and
    then writes nothing. SQLite: one transaction, which SQLite runs one writer at a time.
    """
    if not is_postgres(runtime.engine):
        return await _accept_in_transaction(runtime, provider, parse, body, mapped)
    maps = None
    if mapped:
        pool = runtime.driver_pool
        async with pool.connection() as conn:
            maps = await repository.provider_mapping_maps(pool, conn, provider)
    parsed = parse(Mappings.of(*maps) if maps else NO_MAPPINGS)
    outbox = runtime.outbox
    write = repository.DeliveryWithEvents(
        _delivery(provider, parsed, body, runtime.clock),
        [outbox.row(event) for event in parsed.events],
    )
    first_time = await door_writes(runtime).write(write)
    if first_time:
        runtime.relay.notify()
    return Acceptance.of(parsed, first_time)


# Deliveries written in one statement at most (32 concurrent requests make groups up to 32),
# and their bodies' bytes at most (a body may be 1 MiB; the events add about as much again).
MAX_GROUP = 64
MAX_GROUP_BYTES = 4 * 1024 * 1024


@dataclass
class DoorWrites:
    """The webhook door's group commit on PostgreSQL (one per process), made on first use."""

    writes: GroupCommit[repository.DeliveryWithEvents, bool] | None = None


def door_writes(runtime: ServiceRuntime) -> GroupCommit[repository.DeliveryWithEvents, bool]:
    """The process's group commit of webhook deliveries (``shared.db.GroupCommit``)."""
    door = runtime.state_of(DoorWrites)
    if door.writes is None:
        pool, outbox = runtime.driver_pool, runtime.outbox.table
        sizes = DB_GROUP_SIZE.labels(runtime.name, "webhook_deliveries")

        async def write_group(writes: Sequence[repository.DeliveryWithEvents]) -> list[bool]:
            async with pool.connection() as conn:
                return await repository.add_webhook_deliveries_with_events(
                    pool, conn, outbox, writes
                )

        door.writes = GroupCommit(
            write_group,
            max_group=MAX_GROUP,
            max_bytes=MAX_GROUP_BYTES,
            size_of=lambda write: len(write.delivery.body),
            on_group=sizes.observe,
        )
    return door.writes


async def _accept_in_transaction(
    runtime: ServiceRuntime,
    provider: str,
    parse: Callable[[Mappings], Parsed],
    body: bytes,
    mapped: bool,
) -> Acceptance:
    async with runtime.transaction() as session:
        row = await repository.get_provider_mapping(session, provider) if mapped else None
        parsed = parse(Mappings.of(row.status, row.priority) if row else NO_MAPPINGS)
        delivery = _delivery(provider, parsed, body, runtime.clock)
        first_time = await repository.add_webhook_delivery(session, delivery)
        if first_time:
            await runtime.outbox.add_rows(
                session, [runtime.outbox.row(event) for event in parsed.events]
            )
    return Acceptance.of(parsed, first_time)


def _delivery(provider: str, parsed: Parsed, body: bytes, clock: Clock) -> repository.Delivery:
    return repository.Delivery(
        provider=provider,
        delivery_key=delivery_key(parsed, body)[:255],
        ticket_ids=parsed.ticket_ids,
        event_types=[e.type for e in parsed.events],
        body=body.decode("utf-8"),
        received_at=clock.now(),
    )


# --- Idempotency-Key (Stripe's model) -----------------------------------------------------------


def request_hash(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim_idempotency_key(
    session: AsyncSession, clock: Clock, key: str, fingerprint: str
) -> IdempotencyKey | None:
    """Claim ``key`` for this request; returns the earlier record when the key was used.

    The claim lives in the request's transaction: if the request fails, the key is free again.
    Same key with another body → 422, as Stripe answers.
    """
    if await repository.add_idempotency_key(session, key, fingerprint, clock.now()):
        return None
    earlier = await repository.get_idempotency_key(session, key, reload=True)
    assert earlier is not None
    if earlier.request_hash != fingerprint:
        raise Unprocessable(
            "Idempotency-Key was already used with a different request body",
            details=[{"field": "Idempotency-Key", "location": "header"}],
        )
    return earlier


async def store_idempotent_response(
    session: AsyncSession, key: str, status_code: int, response: dict[str, Any]
) -> None:
    record = await repository.get_idempotency_key(session, key)
    assert record is not None
    record.status_code = status_code
    record.response = response
    await session.flush()


# --- rate limit -------------------------------------------------------------------------------


class RateLimiter:
    """In-process token bucket per source: ``rate`` requests a second, bursts up to ``burst``.

    Per process, not shared between replicas: each router process admits ``rate`` per source.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, source: str, now: float | None = None) -> None:
        """Spend one token for ``source`` or raise 429 with ``Retry-After`` in whole seconds."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(source, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[source] = (tokens, now)
            retry_after = max(1, math.ceil((1.0 - tokens) / self.rate))
            raise TooManyRequests(
                f"rate limit for {source} exceeded; retry later",
                headers={"Retry-After": str(retry_after)},
            )
        self._buckets[source] = (tokens - 1.0, now)
        if len(self._buckets) > 10_000:  # forget idle sources so the table stays small
            full = [k for k, (t, seen) in self._buckets.items() if now - seen > 60]
            for k in full:
                del self._buckets[k]
