"""Outbox and inbox on real PostgreSQL and a real broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select, text

from services.router.models import inbox, outbox
from shared import events as ev
from shared.bus import KafkaBus, MemoryBus, OutgoingMessage
from shared.clock import SystemClock
from shared.db import create_engine, make_sessionmaker
from shared.outbox import Inbox, Outbox, OutboxRelay
from tests.conftest import Broker, eventually


def _ticket(n: int) -> ev.TicketSnapshot:
    now = datetime.now(UTC)
    return ev.TicketSnapshot(
        id=f"outbox:{n}",
        source="outbox",
        external_id=str(n),
        subject="s",
        status="new",
        priority="normal",
        channel="email",
        requester=ev.Requester(id="r"),
        created_at=now,
        updated_at=now,
        version=n,
    )


async def _consume(bootstrap: str, topic: str, expected: int) -> list[ev.Envelope]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    envelopes: list[ev.Envelope] = []
    try:
        async with asyncio.timeout(30):
            while len(envelopes) < expected:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    envelopes.extend(ev.decode(r.value or b"", r.key) for r in records)
    finally:
        await consumer.stop()
    return envelopes


async def test_relay_survives_a_broker_outage_and_keeps_order(postgres_url: str) -> None:
    broker = Broker()
    broker.start()
    engine = create_engine(postgres_url, "router")
    sessionmaker = make_sessionmaker(engine)
    topic_prefix = "outage."
    writer = Outbox(outbox, "router", topic_prefix, SystemClock())
    bus = KafkaBus(broker.bootstrap, partitions=2, max_retries=0)
    await bus.start()
    await bus.ensure_topics([topic_prefix + "tickets"])
    relay = OutboxRelay("router-outage-test", sessionmaker, outbox, bus, poll_seconds=0.1)
    try:
        broker.stop()  # the broker goes down; writes are still accepted
        async with sessionmaker.begin() as session:
            for n in range(1, 6):
                await writer.add(session, ev.TicketUpdated(ticket=_ticket(n)))
        relay.start()
        await asyncio.sleep(1.0)
        async with sessionmaker() as session:
            unsent = await session.scalar(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.sent_at.is_(None), outbox.c.topic == topic_prefix + "tickets")
            )
        assert unsent == 5, "nothing is lost or marked sent while the broker is down"

        broker.start()  # same port; memory storage starts empty
        await bus.ensure_topics([topic_prefix + "tickets"])
        envelopes = await _consume(broker.bootstrap, topic_prefix + "tickets", 5)
        versions = [ev.parse_event(e).ticket.version for e in envelopes]  # type: ignore[attr-defined]
        assert sorted(versions) == [1, 2, 3, 4, 5]
        by_key = [v for e, v in zip(envelopes, versions, strict=True) if e.subject == "outbox:1"]
        assert by_key == sorted(by_key)

        async def all_sent() -> bool:
            async with sessionmaker() as session:
                left = await session.scalar(
                    select(func.count())
                    .select_from(outbox)
                    .where(outbox.c.sent_at.is_(None), outbox.c.topic == topic_prefix + "tickets")
                )
            return left == 0

        await eventually(all_sent)
    finally:
        await relay.stop()
        await bus.stop()
        await engine.dispose()
        broker.stop()


async def test_inbox_lets_one_of_concurrent_duplicates_through(postgres_url: str) -> None:
    engine = create_engine(postgres_url, "router")
    sessionmaker = make_sessionmaker(engine)
    box = Inbox(inbox, SystemClock())
    event_id = "dup-" + datetime.now(UTC).isoformat()
    try:
        first = sessionmaker()
        second = sessionmaker()
        async with first, second:
            await first.begin()
            await second.begin()
            assert await box.first_time(first, "test-consumer", event_id)
            # The second insert waits for the first transaction, then finds the row.
            pending = asyncio.create_task(box.first_time(second, "test-consumer", event_id))
            await asyncio.sleep(0.3)
            assert not pending.done(), "the duplicate waits on the first transaction"
            await first.commit()
            assert await pending is False
            await second.rollback()
        async with sessionmaker.begin() as session:
            assert not await box.first_time(session, "test-consumer", event_id)
            assert await box.first_time(session, "other-consumer", event_id)
    finally:
        await engine.dispose()


async def test_inbox_purge_keeps_recent_rows(postgres_url: str) -> None:
    from datetime import timedelta

    from sqlalchemy import insert

    engine = create_engine(postgres_url, "router")
    sessionmaker = make_sessionmaker(engine)
    box = Inbox(inbox, SystemClock())
    now = datetime.now(UTC)
    try:
        async with sessionmaker.begin() as session:
            await session.execute(
                insert(inbox),
                [
                    {
                        "consumer": "purge-test",
                        "event_id": "old",
                        "processed_at": now - timedelta(days=9),
                    },
                    {"consumer": "purge-test", "event_id": "new", "processed_at": now},
                ],
            )
        async with sessionmaker.begin() as session:
            assert await box.purge(session, timedelta(days=8)) >= 1
            assert await box.first_time(session, "purge-test", "old"), "purged: seen as new"
            assert not await box.first_time(session, "purge-test", "new"), "kept: still a duplicate"
    finally:
        await engine.dispose()


async def test_inbox_batch_dedupe_in_one_statement(postgres_url: str) -> None:
    """``first_times``: the ids of a batch seen for the first time, duplicates inside the batch
    and ids already recorded left out; a concurrent batch waits, then gets only what is new."""
    engine = create_engine(postgres_url, "router")
    sessionmaker = make_sessionmaker(engine)
    box = Inbox(inbox, SystemClock())
    stamp = datetime.now(UTC).isoformat()
    a, b, c = (f"batch-{name}-{stamp}" for name in "abc")
    try:
        async with sessionmaker.begin() as session:
            assert await box.first_time(session, "batch-consumer", a)
        first = sessionmaker()
        second = sessionmaker()
        async with first, second:
            await first.begin()
            await second.begin()
            assert await box.first_times(first, "batch-consumer", [a, b, b]) == {b}
            pending = asyncio.create_task(box.first_times(second, "batch-consumer", [b, c]))
            await asyncio.sleep(0.3)
            assert not pending.done(), "the overlapping batch waits on the first transaction"
            await first.commit()
            assert await pending == {c}
            await second.commit()
        async with sessionmaker.begin() as session:
            assert await box.first_times(session, "batch-consumer", [a, b, c]) == set()
            assert await box.first_times(session, "other-consumer", [a]) == {a}
            assert await box.first_times(session, "batch-consumer", []) == set()
    finally:
        await engine.dispose()


class _HeldBus(MemoryBus):
    """An in-process bus whose publishing waits until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.publishing = asyncio.Event()
        self.release = asyncio.Event()

    async def publish_batch(self, messages: list[OutgoingMessage]) -> None:
        self.publishing.set()
        await self.release.wait()
        await super().publish_batch(messages)


async def test_stopping_the_relay_lets_the_batch_in_hand_be_taken_off(postgres_url: str) -> None:
    engine = create_engine(postgres_url, "router")
    sessionmaker = make_sessionmaker(engine)
    writer = Outbox(outbox, "router", "stop.", SystemClock())
    bus = _HeldBus()
    await bus.start()
    relay = OutboxRelay("router-stop-test", sessionmaker, outbox, bus, poll_seconds=0.1)
    try:
        async with sessionmaker.begin() as session:
            await session.execute(outbox.delete())
            await writer.add(session, ev.TicketCreated(ticket=_ticket(1)))
        relay.start()
        await asyncio.wait_for(bus.publishing.wait(), 10)
        stopping = asyncio.create_task(relay.stop())
        await asyncio.sleep(0.2)
        assert not stopping.done()  # it waits for the batch on its way to the broker
        bus.release.set()
        await asyncio.wait_for(stopping, 10)
        # Published and taken off the outbox: a restart does not publish it again.
        assert await relay.pending() == 0
    finally:
        await bus.stop()
        await engine.dispose()


async def test_the_relay_walks_the_primary_key_and_vacuums_what_it_took(postgres_url: str) -> None:
    """However the outbox's statistics read (a queue's say empty), taking a batch is planned as
    a walk of the primary key that stops at the batch's size, not a read of every row; and the
    relay's vacuum clears the entries of the rows it took."""
    engine = create_engine(postgres_url, "router")
    sessionmaker = make_sessionmaker(engine)
    bus = MemoryBus()
    relay = OutboxRelay("router-plan-test", sessionmaker, outbox, bus)
    try:
        async with sessionmaker.begin() as session:
            await session.execute(relay._lock_and_plan)
            compiled = relay._take.compile(
                engine.sync_engine, compile_kwargs={"literal_binds": True}
            )
            plan = "\n".join((await session.execute(text(f"EXPLAIN {compiled}"))).scalars())
        assert "Index Scan using pk_outbox on outbox" in plan, plan
        assert "Seq Scan" not in plan and "Sort" not in plan, plan

        await relay.vacuum()

        async def vacuumed() -> bool:
            async with sessionmaker() as session:
                when = await session.scalar(
                    text(
                        "SELECT last_vacuum FROM pg_stat_all_tables "
                        "WHERE schemaname = 'router' AND relname = 'outbox'"
                    )
                )
            return when is not None

        await eventually(vacuumed)
    finally:
        await engine.dispose()
