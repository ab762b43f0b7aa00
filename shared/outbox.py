"""Transactional outbox and inbox.

Outbox: a service writes each event into its ``outbox`` table in the same transaction as the
state change that caused it; ``OutboxRelay`` publishes committed rows in id order and deletes
them in the transaction that read them. A crash between publish and delete republishes, which
consumers absorb.

Deleting, not marking each row sent: on PostgreSQL an update of ``sent_at`` writes a new version
of the row and a new entry in each of the table's three indexes (``sent_at`` is indexed, so the
update is never HOT); in ``bench pipeline`` router's mark was the most expensive statement on
the server (36 buffers per row, 4.0 of the run's 10 s of statement time). A delete only stamps
the row; vacuum takes it.

Inbox: a consumer records each event id it handled in ``inbox`` in the same transaction as the
handler's effects; a redelivered event finds its id and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import EventBus, OutgoingMessage
from shared.clock import Clock, SystemClock, wait_for_wake
from shared.db import (
    UTCDateTime,
    dialect_name,
    insert_ignoring_conflicts,
    is_postgres,
    queue_at_end,
)
from shared.events import Event, encode, new_event_id
from shared.faults import unavailable_dependency
from shared.metrics import OUTBOX_PUBLISHED, OUTBOX_RELAY_ERRORS

log = logging.getLogger(__name__)

# The longest pause between two relay attempts while the database or the broker is down.
RELAY_BACKOFF_MAX_SECONDS = 5.0
# How soon a relay tries again while another process's relay of the service holds the lock.
LOCKED_OUT_RETRY_SECONDS = 0.05

# ``queue_at_end`` key of the outbox rows a transaction adds.
_OUTBOX_ROWS = "outbox"

_ID = BigInteger().with_variant(Integer(), "sqlite")


def outbox_table(metadata: MetaData) -> Table:
    table = Table(
        "outbox",
        metadata,
        Column("id", _ID, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("topic", String(255), nullable=False),
        Column("key", String(255)),
        Column("value", LargeBinary, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("sent_at", UTCDateTime),
    )
    Index("ix_outbox_sent_at_id", table.c.sent_at, table.c.id)
    return table


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(255), primary_key=True),
        Column("processed_at", UTCDateTime, nullable=False, index=True),
    )


@dataclass
class Outbox:
    """Writes events into a service's outbox table inside the caller's transaction."""

    table: Table
    service: str
    topic_prefix: str
    clock: Clock

    @property
    def source(self) -> str:
        return f"/ticketflow/{self.service}"

    def row(self, event: Event, *, traceparent: str | None = None) -> dict[str, Any]:
        """The outbox row of ``event`` (its ``event_id`` included), not yet written."""
        event_id = new_event_id()
        now = self.clock.now()
        key, value, _ = encode(
            event, source=self.source, event_id=event_id, time=now, traceparent=traceparent
        )
        return {
            "event_id": event_id,
            "topic": self.topic_prefix + event.topic,
            "key": key,
            "value": value,
            "created_at": now,
        }

    async def add(
        self, session: AsyncSession, event: Event, *, traceparent: str | None = None
    ) -> str:
        """Queue ``event`` for publication when the session's transaction commits; returns its id."""
        row = self.row(event, traceparent=traceparent)
        await self.add_rows(session, [row])
        return str(row["event_id"])

    async def add_rows(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        """Write prepared rows in one statement (they keep their order in the table). Inside
        ``shared.db.writes_at_end`` (a consumer's transaction) they are queued instead and all
        of the transaction's rows go in one statement at its end, in the order added."""

        async def insert(batches: list[list[dict[str, Any]]]) -> None:
            await session.execute(self.table.insert(), [row for batch in batches for row in batch])

        if rows and not queue_at_end(session, _OUTBOX_ROWS, rows, insert):
            await insert([rows])


class Inbox:
    """Records handled event ids per consumer, in the handler's transaction."""

    def __init__(self, table: Table, clock: Clock) -> None:
        self.table = table
        self.clock = clock
        # ``first_times`` on PostgreSQL: the ids as one array, so the statement's text is the
        # same for any number of them (compiled and prepared once, where a multi-row VALUES
        # was compiled anew for each batch size).
        self._first_times_postgres = (
            pg_insert(table)
            .from_select(
                ["consumer", "event_id", "processed_at"],
                select(
                    bindparam("consumer", type_=table.c.consumer.type),
                    func.unnest(bindparam("ids", type_=ARRAY(String))),
                    bindparam("now", type_=table.c.processed_at.type),
                ),
            )
            .on_conflict_do_nothing()
            .returning(table.c.event_id)
        )

    async def first_time(self, session: AsyncSession, consumer: str, event_id: str) -> bool:
        """True the first time ``(consumer, event_id)`` is seen; False for a redelivery.

        Concurrent duplicates on PostgreSQL: the second insert waits for the first transaction
        and then does nothing, so exactly one of them proceeds.
        """
        statement = insert_ignoring_conflicts(
            self.table,
            dialect_name(session),
            consumer=consumer,
            event_id=event_id,
            processed_at=self.clock.now(),
        )
        result: Any = await session.execute(statement)
        return bool(result.rowcount)

    async def first_times(
        self, session: AsyncSession, consumer: str, event_ids: Sequence[str]
    ) -> set[str]:
        """``first_time`` for many events in one statement: the ids seen for the first time."""
        unique = list(dict.fromkeys(event_ids))
        if not unique:
            return set()
        now = self.clock.now()
        if dialect_name(session) == "postgresql":
            parameters = {"consumer": consumer, "ids": unique, "now": now}
            found = await session.execute(self._first_times_postgres, parameters)
            return set(found.scalars().all())
        rows = [{"consumer": consumer, "event_id": e, "processed_at": now} for e in unique]
        statement = (
            sqlite_insert(self.table)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(self.table.c.event_id)
        )
        return set((await session.execute(statement)).scalars().all())

    async def purge(self, session: AsyncSession, older_than: timedelta) -> int:
        result: Any = await session.execute(
            delete(self.table).where(self.table.c.processed_at < self.clock.now() - older_than)
        )
        return int(result.rowcount or 0)


# Rows the relay takes between two ``VACUUM``s of its outbox (``OutboxRelay.vacuum``).
VACUUM_AFTER_ROWS = 10_000
# How long stopping waits for the batch the relay is publishing.
STOP_WAIT_SECONDS = 10.0


class OutboxRelay:
    """Publishes committed outbox rows in order; one relay per service at a time."""

    def __init__(
        self,
        service: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        table: Table,
        bus: EventBus,
        *,
        poll_seconds: float = 0.5,
        batch_size: int = 500,
        clock: Clock | None = None,
    ) -> None:
        self.service = service
        self.sessionmaker = sessionmaker
        self.table = table
        self.bus = bus
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.clock = clock or SystemClock()
        self._wake = asyncio.Event()
        self._locked_out = False
        self._task: asyncio.Task[None] | None = None
        # Held while a batch is published and deleted: stopping waits for it, so a batch
        # already on the broker is not left in the table (and published again after the restart).
        self._busy = asyncio.Lock()
        # Serializes relays of one service across processes, so per-key order is kept.
        self._lock_key = zlib.crc32(f"ticketflow-outbox-{service}".encode())
        # PostgreSQL: the lock, and the plan for taking a batch, in this transaction alone
        # (``set_config(..., true)`` is ``SET LOCAL``). The outbox is a queue: analyzed, it is
        # nearly empty, and until the next vacuum it also holds every row deleted since. Planned
        # from those statistics, taking a batch read every row: a sequential scan, or all the
        # index entries then a sort (in a fresh ``bench pipeline`` database 2-5 ms a pass,
        # growing through the run). It wants the first rows by id: with sequential scans and
        # sorts off, it walks the primary key from the start and stops at the batch's size.
        self._lock_and_plan = select(
            func.pg_try_advisory_xact_lock(self._lock_key),
            func.set_config("enable_seqscan", "off", True),
            func.set_config("enable_sort", "off", True),
        )
        self._postgres = False
        self._taken_since_vacuum = 0
        columns = (table.c.id, table.c.topic, table.c.key, table.c.value)
        self._read = (
            select(*columns).where(table.c.sent_at.is_(None)).order_by(table.c.id).limit(batch_size)
        )
        self._take = (
            delete(table)
            .where(table.c.id.in_(self._read.with_only_columns(table.c.id)))
            .returning(*columns)
        )

    def notify(self) -> None:
        """Wake the relay now (called after a commit that added outbox rows)."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"outbox-relay {self.service}"
        )

    async def stop(self, flush_seconds: float = 0.0) -> None:
        """Stop relaying; with ``flush_seconds``, first publish what is left for up to that
        long (a shutdown does not leave events waiting for the next start if it can help it;
        whatever is left stays in the table and goes out after the restart)."""
        if self._task is not None:
            # Let the batch in hand finish (bounded: a batch stuck on an outage is cancelled and
            # its rows, still in the table, go out after the restart).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_WAIT_SECONDS), self._busy:
                    self._task.cancel()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if flush_seconds > 0:
            try:
                async with asyncio.timeout(flush_seconds):
                    while await self.relay_once() >= self.batch_size:
                        pass
            except Exception as exc:  # TimeoutError included: the rows wait for the restart
                log.warning("outbox relay for %s left events unsent at stop: %r", self.service, exc)

    async def _run(self) -> None:
        backoff = self.poll_seconds
        last_purge = self.clock.now()
        while True:
            # Cleared before reading, so a commit that lands while a batch is being published
            # wakes the next round at once instead of waiting for the poll.
            self._wake.clear()
            try:
                async with self._busy:
                    published = await self.relay_once()
                backoff = self.poll_seconds
                self._taken_since_vacuum += published
                if self._postgres and self._taken_since_vacuum >= VACUUM_AFTER_ROWS:
                    await self.vacuum()
                if self.clock.now() - last_purge > timedelta(minutes=1):
                    await self.purge()
                    last_purge = self.clock.now()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Never drops a row: whatever failed, the rows stay unsent and are retried with
                # backoff. An outage (database or broker down) is expected and only waited out;
                # anything else is a bug worth a traceback.
                OUTBOX_RELAY_ERRORS.labels(self.service).inc()
                dependency = unavailable_dependency(exc)
                if dependency is not None:
                    log.warning(
                        "outbox relay for %s waits for the %s: %r", self.service, dependency, exc
                    )
                else:
                    log.exception("outbox relay for %s failed, retrying", self.service)
                published = 0
                backoff = min(backoff * 2, RELAY_BACKOFF_MAX_SECONDS)
            if published >= self.batch_size:
                continue
            if self._locked_out:
                # Another process's relay of this service is publishing: its rows and ours go
                # out in one order, so try again shortly rather than after a whole poll.
                await wait_for_wake(self._wake, min(backoff, LOCKED_OUT_RETRY_SECONDS))
                continue
            await wait_for_wake(self._wake, backoff)

    async def relay_once(self) -> int:
        """Publish one batch of unsent rows; returns how many were published.

        The batch is taken off the table in the transaction that publishes it, which commits
        only once the broker has acknowledged every message: a failure or a crash in between
        rolls the delete back, and the rows go out again. PostgreSQL: one ``DELETE … RETURNING``
        before publishing. SQLite: read, publish, then delete (deleting first would hold
        SQLite's one write lock while the in-process bus hands the events to consumers, which
        write too)."""
        async with self.sessionmaker.begin() as session:
            self._postgres = is_postgres(session)
            if self._postgres:
                locked = (await session.execute(self._lock_and_plan)).scalar()
                self._locked_out = not locked
                if not locked:
                    return 0
                rows = sorted((await session.execute(self._take)).all(), key=lambda row: row.id)
            else:
                rows = list((await session.execute(self._read)).all())
            if not rows:
                return 0
            await self.bus.publish_batch(
                [
                    OutgoingMessage(
                        row.topic,
                        row.key,
                        row.value,
                        {"content-type": b"application/cloudevents+json"},
                    )
                    for row in rows
                ]
            )
            if not self._postgres:
                taken = [row.id for row in rows]
                await session.execute(delete(self.table).where(self.table.c.id.in_(taken)))
        OUTBOX_PUBLISHED.labels(self.service).inc(len(rows))
        return len(rows)

    async def vacuum(self) -> None:
        """PostgreSQL: ``VACUUM`` the outbox. The rows taken since the last vacuum leave their
        index entries at the start of the primary key, which every batch's scan walks past
        before it reaches the rows still to publish; autovacuum comes at most once a minute
        (the relay of a busy router takes 90,000 rows in that time). Only the table's owner may
        vacuum it (the user that ran the migrations); for any other, PostgreSQL skips it with a
        warning and autovacuum alone keeps the table."""
        self._taken_since_vacuum = 0
        engine = self.sessionmaker.kw["bind"]
        try:
            async with engine.connect() as conn:
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                name = autocommit.dialect.identifier_preparer.format_table(self.table)
                await autocommit.execute(text(f"VACUUM (INDEX_CLEANUP ON) {name}"))
        except Exception as exc:  # only slower batches until the next one or autovacuum's
            log.warning("vacuum of the outbox of %s failed: %r", self.service, exc)

    async def purge(self) -> None:
        """Delete the rows an earlier version marked sent (``sent_at``) and kept for an hour;
        rows are deleted once published now, and ``sent_at`` stays empty."""
        async with self.sessionmaker.begin() as session:
            await session.execute(delete(self.table).where(self.table.c.sent_at.is_not(None)))

    async def pending(self) -> int:
        async with self.sessionmaker() as session:
            count = await session.scalar(
                select(func.count()).select_from(self.table).where(self.table.c.sent_at.is_(None))
            )
            return int(count or 0)
