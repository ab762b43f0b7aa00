"""What a service process runs besides its HTTP API: engine, bus, outbox relay, consumers.

A service builds one ``ServiceRuntime`` with its metadata, its ``EVENT_HANDLERS`` table and the
background tasks that are its own (sla's scheduler, survey's sender), and the app's lifespan
starts and stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Self

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.bus import EventBus, KafkaBus, Message, PermanentError, Subscription
from shared.clock import Clock, SystemClock
from shared.db import create_engine, make_sessionmaker, ping
from shared.events import EVENT_TYPES, Envelope, Event, EventDecodeError, decode, parse_event
from shared.metrics import EVENTS_CONSUMED
from shared.outbox import Inbox, Outbox, OutboxRelay
from shared.settings import Settings
from shared.telemetry import current_traceparent, handler_span, instrument_engine

log = logging.getLogger(__name__)

CONTRACT_TOPICS = ("inbound", "tickets", "sla", "surveys")
# Inbox rows older than this are deleted: Kafka keeps topics 7 days by default, so no redelivery
# can be older. Raise it with the topics' retention.
INBOX_RETENTION = timedelta(days=8)
HOUSEKEEPING_SECONDS = 3600.0


@dataclass
class HandlerContext:
    """What an event handler gets: its transaction, the outbox, the clock and the envelope."""

    session: AsyncSession
    outbox: Outbox
    clock: Clock
    envelope: Envelope
    runtime: ServiceRuntime
    after_commit: list[Callable[[], None]] = field(default_factory=list)


@dataclass
class UnitOfWork:
    """One transaction's business context: its session, the outbox, the clock and the trace.

    Services subclass it (``RouterContext``, ``SlaContext``, ``SurveyContext``) and pass it to
    their business functions, which change state and ``emit`` events but never commit.
    """

    session: AsyncSession
    outbox: Outbox
    clock: Clock
    traceparent: str | None = None

    _batch: list[dict[str, Any]] | None = field(default=None, init=False, repr=False)

    async def emit(self, event: Event) -> str:
        """Queue ``event`` in the outbox of this transaction; returns its event id."""
        if self.traceparent is None:  # one trace context for every event of this unit of work
            self.traceparent = current_traceparent()
        row = self.outbox.row(event, traceparent=self.traceparent)
        if self._batch is not None:
            self._batch.append(row)
        else:
            await self.outbox.add_rows(self.session, [row])
        return str(row["event_id"])

    @contextlib.asynccontextmanager
    async def batched_events(self) -> AsyncIterator[None]:
        """Collect the events emitted inside the block and write them in one statement at its
        end (for loops that emit many, like the SLA scheduler firing a storm of timers)."""
        self._batch = []
        try:
            yield
            await self.outbox.add_rows(self.session, self._batch)
        finally:
            self._batch = None

    @classmethod
    def for_event(cls, ctx: HandlerContext) -> Self:
        """For a consumed event: its transaction; its events continue the handler's trace."""
        traceparent = current_traceparent(fallback=ctx.envelope.traceparent)
        return cls(ctx.session, ctx.outbox, ctx.clock, traceparent)

    @classmethod
    def for_session(cls, session: AsyncSession, runtime: ServiceRuntime) -> Self:
        """For a request or a background task's own transaction."""
        return cls(session, runtime.outbox, runtime.clock)


EventHandler = Callable[[HandlerContext, Any], Awaitable[None]]
BackgroundTask = Callable[["ServiceRuntime"], Awaitable[None]]


class ServiceRuntime:
    def __init__(
        self,
        *,
        name: str,
        settings: Settings,
        metadata: MetaData,
        handlers: Mapping[type[Event], EventHandler] | None = None,
        consumes: tuple[str, ...] = (),
        bus: EventBus | None = None,
        clock: Clock | None = None,
        background: tuple[BackgroundTask, ...] = (),
    ) -> None:
        self.name = name
        self.settings = settings
        self.metadata = metadata
        self.handlers = dict(handlers or {})
        self.consumes = consumes
        self.clock = clock or SystemClock()
        self.background = background
        self._bus = bus
        self._owns_bus = bus is None
        self.outbox = Outbox(
            metadata.tables[f"{name}.outbox"], name, settings.topic_prefix, self.clock
        )
        self.inbox = Inbox(metadata.tables[f"{name}.inbox"], self.clock)
        self._engine: AsyncEngine | None = None
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self._relay: OutboxRelay | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: Subscription | None = None
        self.state: dict[str, Any] = {}

    # --- accessors (valid after start) ---------------------------------------------------------

    @property
    def bus(self) -> EventBus:
        assert self._bus is not None, "runtime not started"
        return self._bus

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "runtime not started"
        return self._engine

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        assert self._sessionmaker is not None, "runtime not started"
        return self._sessionmaker

    @property
    def relay(self) -> OutboxRelay:
        assert self._relay is not None, "runtime not started"
        return self._relay

    # --- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._engine = create_engine(self.settings.database_url, self.name)
        instrument_engine(self._engine)
        self._sessionmaker = make_sessionmaker(self._engine)
        if self._bus is None:
            if not self.settings.kafka_bootstrap_servers:
                raise RuntimeError("TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS is required to serve")
            self._bus = KafkaBus(
                self.settings.kafka_bootstrap_servers,
                client_id=f"ticketflow-{self.name}",
                partitions=self.settings.topic_partitions,
                max_retries=self.settings.consumer_max_retries,
            )
            await self._bus.start()
        await self.bus.ensure_topics(self.settings.topic(t) for t in CONTRACT_TOPICS)
        self._relay = OutboxRelay(
            self.name,
            self._sessionmaker,
            self.outbox.table,
            self.bus,
            poll_seconds=self.settings.outbox_poll_seconds,
            clock=self.clock,
        )
        self._relay.start()
        if self.handlers:
            topics = [self.settings.topic(t) for t in self.consumes]
            self._subscription = await self.bus.subscribe(
                topics, self.name, self.handle_message, batch_handler=self.handle_batch
            )
        loop = asyncio.get_running_loop()
        for task in (*self.background, _housekeeping):
            self._tasks.append(loop.create_task(self._supervise(task), name=f"{self.name} {task}"))
        log.info("%s started", self.name)

    async def stop(self) -> None:
        if self._subscription is not None:
            # Leave the group first (a shared in-process bus outlives this service).
            await self._subscription.close()
            self._subscription = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._owns_bus and self._bus is not None:
            await self._bus.stop()
            self._bus = None
        if self._relay is not None:
            await self._relay.stop()
        if self._engine is not None:
            await self._engine.dispose()

    async def _supervise(self, task: BackgroundTask) -> None:
        """Run a background loop; if it crashes, log and restart it after a pause."""
        while True:
            try:
                await task(self)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s background task %s crashed; restarting", self.name, task)
                await asyncio.sleep(1.0)

    async def check_ready(self) -> None:
        """Raise with the reason when the database or the bus cannot be reached."""
        try:
            async with asyncio.timeout(3):
                await ping(self.engine)
        except Exception as exc:
            raise RuntimeError(f"database unreachable: {exc!r}") from exc
        try:
            await self.bus.ping()
        except Exception as exc:
            raise RuntimeError(f"event bus unreachable: {exc!r}") from exc

    # --- transactions --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits on success, rolls back on error, then wakes the relay."""
        async with self.sessionmaker.begin() as session:
            yield session
        self.relay.notify()

    # --- consuming -----------------------------------------------------------------------------

    def _prepare(self, message: Message) -> tuple[Envelope, Event, EventHandler] | None:
        """Decode a message; None when this service has no handler for its type."""
        try:
            envelope = decode(message.value, message.key)
        except EventDecodeError as exc:
            EVENTS_CONSUMED.labels(self.name, "undecodable", "dead_lettered").inc()
            raise PermanentError(str(exc)) from exc
        model = EVENT_TYPES.get(envelope.type)
        handler = self.handlers.get(model) if model is not None else None
        if handler is None:
            EVENTS_CONSUMED.labels(self.name, envelope.type, "ignored").inc()
            return None
        try:
            event = parse_event(envelope)
        except EventDecodeError as exc:
            EVENTS_CONSUMED.labels(self.name, envelope.type, "dead_lettered").inc()
            raise PermanentError(str(exc)) from exc
        return envelope, event, handler

    async def _apply(
        self, session: AsyncSession, envelope: Envelope, event: Event, handler: EventHandler
    ) -> HandlerContext | None:
        """Inside the caller's transaction: the inbox check, then the handler's effects."""
        with handler_span(self.name, envelope):
            if not await self.inbox.first_time(session, self.name, envelope.id):
                EVENTS_CONSUMED.labels(self.name, envelope.type, "duplicate").inc()
                return None
            context = HandlerContext(session, self.outbox, self.clock, envelope, self)
            await handler(context, event)
            return context

    def _committed(self, contexts: list[HandlerContext]) -> None:
        self.relay.notify()
        for context in contexts:
            for callback in context.after_commit:
                callback()
            EVENTS_CONSUMED.labels(self.name, context.envelope.type, "handled").inc()

    async def handle_message(self, message: Message) -> None:
        """Decode, dedupe through the inbox, run the handler and its effects in one transaction."""
        prepared = self._prepare(message)
        if prepared is None:
            return
        async with self.sessionmaker.begin() as session:
            context = await self._apply(session, *prepared)
        self._committed([context] if context else [])

    async def handle_batch(self, messages: list[Message]) -> None:
        """Consecutive messages of one partition in ONE transaction: one commit instead of one
        per event. Each still has its inbox row; between messages the session is flushed and
        emptied so every handler reads fresh rows. If anything fails, the bus falls back to
        ``handle_message`` one by one, so a bad message cannot hold back its neighbours."""
        prepared = [p for p in map(self._prepare, messages) if p is not None]
        if not prepared:
            return
        contexts: list[HandlerContext] = []
        async with self.sessionmaker.begin() as session:
            for envelope, event, handler in prepared:
                context = await self._apply(session, envelope, event, handler)
                if context is not None:
                    contexts.append(context)
                await session.flush()
                session.expunge_all()
        self._committed(contexts)


async def _housekeeping(runtime: ServiceRuntime) -> None:
    """Every service: keep the inbox bounded (the relay already purges the outbox)."""
    while True:
        async with runtime.transaction() as session:
            purged = await runtime.inbox.purge(session, INBOX_RETENTION)
        if purged:
            log.info("%s purged %d inbox rows older than %s", runtime.name, purged, INBOX_RETENTION)
        await asyncio.sleep(HOUSEKEEPING_SECONDS)  # wall-clock chore, not business time
