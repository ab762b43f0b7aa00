"""The shared deliverer on PostgreSQL (sla's ``deliveries`` table) against a real HTTP receiver:
retries with a stable ``webhook-id``, signatures, give-up, two workers sharing the work, and a
worker killed mid-way losing nothing."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from services.sla.models import Delivery, WebhookSubscription
from services.sla.webhooks import DELIVERIES
from shared.db import create_engine, make_sessionmaker
from shared.delivery import LEASE_SECONDS, Deliverer, RetryPolicy, new_delivery, webhook_body
from tests.conftest import eventually, make_settings
from tests.delivery_support import WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()


class Clock:
    def __init__(self) -> None:
        self.current = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
async def database(fresh_database: Callable[[], Awaitable[str]]) -> str:
    return await fresh_database()


@pytest.fixture
async def sessions(database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database, "sla")
    yield make_sessionmaker(engine)
    await engine.dispose()


async def enqueue(
    sessions: async_sessionmaker[AsyncSession], url: str, count: int, clock: Clock
) -> list[str]:
    """A subscription and ``count`` deliveries to it, as a state change would write them."""
    subscription = WebhookSubscription(
        id=str(uuid.uuid4()),
        url=url,
        event_types=["sla.*"],
        secret=SECRET,
        created_at=clock.now(),
    )
    rows = [
        new_delivery(
            Delivery,
            channel="webhook",
            target=url,
            payload=webhook_body("sla.breached", {"n": n}, clock.now()),
            event_id=str(uuid.uuid4()),
            event_type="sla.breached",
            ticket_id=f"api:{n}",
            now=clock.now(),
            subscription_id=subscription.id,
        )
        for n in range(count)
    ]
    async with sessions.begin() as session:
        session.add(subscription)
        session.add_all(rows)
    return [row.id for row in rows]


async def rows_of(sessions: async_sessionmaker[AsyncSession], ids: list[str]) -> list[Delivery]:
    async with sessions() as session:
        statement = select(Delivery).where(Delivery.id.in_(ids)).order_by(Delivery.id)
        return list((await session.execute(statement)).scalars().all())


def deliverer(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, policy: RetryPolicy | None = None
) -> Deliverer:
    spec = replace(DELIVERIES, policy=policy) if policy else DELIVERIES
    return Deliverer(spec, sessions, clock, make_settings("sqlite+aiosqlite:///unused.db"))


async def test_retries_keep_the_webhook_id_and_every_attempt_is_signed_and_logged(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    async with WebhookReceiver(responses=[503, 500]).serving() as receiver:
        [delivery_id] = await enqueue(sessions, receiver.url, 1, clock)
        worker = deliverer(sessions, clock)
        try:
            assert await worker.run_once() == 1
            assert await worker.run_once() == 0, "not due again before its backoff"
            clock.advance(6.1)
            assert await worker.run_once() == 1
            clock.advance(12.1)
            assert await worker.run_once() == 1
        finally:
            await worker.http.aclose()
    [row] = await rows_of(sessions, [delivery_id])
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 3, 204)
    assert [a["status_code"] for a in row.attempt_log] == [503, 500, 204]
    assert receiver.ids == [delivery_id] * 3
    for headers, body in receiver.received:
        assert Webhook(SECRET).verify(body, headers)["data"] == {"n": 0}


async def test_gives_up_after_the_retry_window(sessions: async_sessionmaker[AsyncSession]) -> None:
    clock = Clock()
    async with WebhookReceiver(default=500).serving() as receiver:
        [delivery_id] = await enqueue(sessions, receiver.url, 1, clock)
        worker = deliverer(sessions, clock, RetryPolicy(max_attempts=3))
        try:
            for _ in range(5):
                await worker.run_once()
                clock.advance(3600)
        finally:
            await worker.http.aclose()
    [row] = await rows_of(sessions, [delivery_id])
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 3, None)
    assert len(receiver.received) == 3 and len(row.attempt_log) == 3


async def test_two_workers_share_the_work_without_sending_twice(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    async with WebhookReceiver().serving() as receiver:
        ids = await enqueue(sessions, receiver.url, 120, clock)
        first, second = deliverer(sessions, clock), deliverer(sessions, clock)
        try:
            sent = await asyncio.gather(first.run_once(), second.run_once())
        finally:
            await first.http.aclose()
            await second.http.aclose()
    assert sum(sent) == 120
    assert sorted(receiver.ids) == sorted(ids), "each once: SKIP LOCKED kept the claims apart"
    assert {row.status for row in await rows_of(sessions, ids)} == {"delivered"}


async def test_a_worker_killed_between_send_and_record_loses_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    async with WebhookReceiver().serving() as receiver:
        ids = await enqueue(sessions, receiver.url, 30, clock)
        receiver.held.clear()  # requests arrive but are not answered: sent, not recorded
        crashed = deliverer(sessions, clock)
        task = asyncio.create_task(crashed.run())
        await eventually(lambda: asyncio.sleep(0, len(receiver.received) == 30))
        task.cancel()  # the process dies with 30 deliveries sent and none recorded
        await asyncio.gather(task, return_exceptions=True)
        receiver.held.set()
        assert {row.status for row in await rows_of(sessions, ids)} == {"pending"}

        restarted = deliverer(sessions, clock)
        try:
            assert await restarted.run_once() == 0, "leased: not sent again before the lease ends"
            clock.advance(LEASE_SECONDS + 1)
            assert await restarted.run_once() == 30
        finally:
            await restarted.http.aclose()
    rows = await rows_of(sessions, ids)
    assert {row.status for row in rows} == {"delivered"}
    # At least once: each delivery reached the receiver twice, with the same webhook-id.
    assert sorted(receiver.ids) == sorted(ids * 2)
