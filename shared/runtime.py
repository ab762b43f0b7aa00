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
from typing import Any, ClassVar, Self, TypeVar

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from shared.bus import EventBus, KafkaBus, MemoryBus, Message, PermanentError, Subscription
from shared.clock import Clock, SystemClock
from shared.db import (
    MAX_OVERFLOW,
    POOL_SIZE,
    READ_ONLY_OPTION,
    DriverPool,
    create_engine,
    make_sessionmaker,
    ping,
    writes_at_end,
)
from shared.events import (
    EVENT_TYPES,
    Envelope,
    Event,
    EventDecodeError,
    decode,
    parse_event,
    peek_type,
)
from shared.faults import DependencyUnavailable, is_infrastructure_error, unavailable_dependency
from shared.metrics import EVENTS_CONSUMED, count_statements, statement_counter
from shared.outbox import Inbox, Outbox, OutboxRelay
from shared.settings import Settings
from shared.telemetry import current_traceparent, handler_span, instrument_engine

log = logging.getLogger(__name__)

CONTRACT_TOPICS = ("inbound", "tickets", "sla", "surveys")
# Inbox rows older than this are deleted: Kafka keeps topics 7 days by default, so no redelivery
# can be older. Raise it with the topics' retention.
INBOX_RETENTION = timedelta(days=8)
HOUSEKEEPING_SECONDS = 3600.0
# On stop, how long the outbox relay may keep publishing what is left.
RELAY_FLUSH_SECONDS = 5.0
# How long services sharing an in-process bus may take to hand over the events in flight.
DRAIN_SECONDS = 30.0
# How long a starting service waits for an unreachable broker before it gives up.
STARTUP_WAIT_SECONDS = 120.0
# ``session.info`` key of a consumer batch's transaction: all the events it handles, so that a
# handler can read what the whole batch needs in one statement (``batch_events``).
BATCH_EVENTS = "ticketflow.batch_events"
# ``session.info`` key: set while a consumer batch keeps its session between events.
BATCH_KEEPS_SESSION = "ticketflow.batch_keeps_session"
# Connections of ``ServiceRuntime.driver_pool`` at most: as many as the engine's pool holds.
DRIVER_POOL_SIZE = POOL_SIZE + MAX_OVERFLOW


@dataclass
class HandlerContext:
    """What an event handler gets: its transaction, the outbox, the clock and the envelope."""

    session: AsyncSession
    outbox: Outbox
    clock: Clock
    envelope: Envelope
    runtime: ServiceRuntime
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    # The unit of work ``UnitOfWork.for_event`` made for this event, for its next caller (an
    # add-on's handler chained after the service's).
    unit: Any = field(default=None, repr=False)


@dataclass
class UnitOfWork:
    """One transaction's business context: its session, the outbox, the clock and the trace.

    Services subclass it (``RouterContext``, ``SlaContext``, ``SurveyContext``) and pass it to
    their business functions, which change state and ``emit`` events but never commit. Whoever
    opened the transaction commits it, in one place each: ``ServiceRuntime.unit_of_work`` (an
    HTTP request through ``shared.app``'s dependency, a background task) or the runtime's
    consumer (an event handler, ``for_event``). ``after_commit`` callbacks run once it has
    committed (to wake a background loop, say), never after a rollback.
    """

    session: AsyncSession
    outbox: Outbox
    clock: Clock
    traceparent: str | None = None
    runtime: ServiceRuntime | None = field(default=None, repr=False)
    after_commit: list[Callable[[], None]] = field(default_factory=list, repr=False)

    _batch: list[dict[str, Any]] | None = field(default=None, init=False, repr=False)

    # In a consumer batch (``ServiceRuntime.handle_batch``), whether the session keeps its
    # objects from one event to the next instead of flushing and emptying itself after each:
    # then the rows the batch adds are written together (router: one INSERT for the batch's
    # new tickets), by the next query's autoflush or the batch's last flush. A service opts in
    # only if its handlers read every row they change with ``populate_existing`` (a locked
    # read), so no handler acts on an object another event left stale.
    batch_keeps_session: ClassVar[bool] = False

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
        """For a consumed event: its transaction (committed by the consumer); its events continue
        the handler's trace. One per event: a second call gives the first one's."""
        if type(ctx.unit) is cls:
            found: Self = ctx.unit
            return found
        unit = cls(
            ctx.session,
            ctx.outbox,
            ctx.clock,
            current_traceparent(fallback=ctx.envelope.traceparent),
            runtime=ctx.runtime,
            after_commit=ctx.after_commit,
        )
        ctx.unit = unit
        return unit

    @classmethod
    def for_session(cls, session: AsyncSession, runtime: ServiceRuntime) -> Self:
        """Around a session its opener commits; prefer ``ServiceRuntime.unit_of_work``."""
        return cls(session, runtime.outbox, runtime.clock, runtime=runtime)


U = TypeVar("U", bound=UnitOfWork)
S = TypeVar("S")

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
        unit_of_work: type[UnitOfWork] = UnitOfWork,
    ) -> None:
        self.name = name
        self.settings = settings
        self.metadata = metadata
        self.handlers = dict(handlers or {})
        self.consumes = consumes
        self.clock = clock or SystemClock()
        self.background = background
        self.unit_of_work_class = unit_of_work
        self._bus = bus
        self._owns_bus = bus is None
        self.outbox = Outbox(
            metadata.tables[f"{name}.outbox"], name, settings.topic_prefix, self.clock
        )
        self.inbox = Inbox(metadata.tables[f"{name}.inbox"], self.clock)
        self._engine: AsyncEngine | None = None
        self._driver_pool: DriverPool | None = None
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self._relay: OutboxRelay | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: Subscription | None = None
        self._typed_state: dict[type, Any] = {}
        # True from the start of ``stop``: /readyz answers 503 so a balancer sends no more.
        self.stopping = False

    def state_of(self, kind: type[S]) -> S:
        """This process's one instance of ``kind`` (a dataclass a module declares for what its
        background loop shares with the rest of the service), made on first use."""
        if kind not in self._typed_state:
            self._typed_state[kind] = kind()
        state: S = self._typed_state[kind]
        return state

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
    def driver_pool(self) -> DriverPool:
        """asyncpg's own pool for a hot path's fixed statement (PostgreSQL only; see
        ``shared.db.DriverPool``), opened on first use."""
        if self._driver_pool is None:
            counter = statement_counter(self.name)
            self._driver_pool = DriverPool(
                self.settings.database_url,
                max_size=DRIVER_POOL_SIZE,
                on_statement=lambda: counter().inc(),
            )
        return self._driver_pool

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
        count_statements(self._engine, self.name)
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
            await _while_unavailable(self.name, self._bus.start)
        topics = [self.settings.topic(t) for t in CONTRACT_TOPICS]
        await _while_unavailable(self.name, lambda: self.bus.ensure_topics(topics))
        self._relay = OutboxRelay(
            self.name,
            self._sessionmaker,
            self.outbox.table,
            self.bus,
            poll_seconds=self.settings.outbox_poll_seconds,
            clock=self.clock,
        )
        self._relay.start()
        if self.settings.process_role == "api":
            # HTTP only: the worker processes consume and run the background loops.
            log.info("%s started (api role)", self.name)
            return
        if self.handlers:
            topics = [self.settings.topic(t) for t in self.consumes]
            self._subscription = await self.bus.subscribe(
                topics,
                self.settings.consumer_group(self.name),
                self.handle_message,
                batch_handler=self.handle_batch,
            )
        loop = asyncio.get_running_loop()
        for task in (*self.background, _housekeeping):
            self._tasks.append(loop.create_task(self._supervise(task), name=f"{self.name} {task}"))
        log.info("%s started", self.name)

    async def stop(self) -> None:
        """Graceful stop (after the HTTP server drained its requests): finish the events in
        hand and commit their offsets, stop the background tasks, publish what the outbox
        still holds (briefly; the rest waits in the table for the next start), then close."""
        self.stopping = True
        if self._subscription is not None:
            # Leave the group first (a shared in-process bus outlives this service).
            await self._subscription.close()
            self._subscription = None
        await self.stop_background()
        if self._relay is not None:
            await self._relay.stop(flush_seconds=RELAY_FLUSH_SECONDS)
        if self._owns_bus and self._bus is not None:
            await self._bus.stop()
            self._bus = None
        if self._driver_pool is not None:
            await self._driver_pool.close()
        if self._engine is not None:
            await self._engine.dispose()
        log.info("%s stopped", self.name)

    async def stop_background(self) -> None:
        """Stop the service's own loops (scheduler, sender, housekeeping): no new work."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _supervise(self, task: BackgroundTask) -> None:
        """Run a background loop; if it crashes, log and restart it after a pause."""
        while True:
            try:
                await task(self)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                dependency = unavailable_dependency(exc)
                if dependency is None:
                    log.exception("%s background task %s crashed; restarting", self.name, task)
                else:
                    log.warning("%s %s waits for the %s: %r", self.name, task, dependency, exc)
                await asyncio.sleep(1.0)

    async def check_ready(self) -> None:
        """Raise ``DependencyUnavailable`` naming the database or the bus when one is down."""
        try:
            async with asyncio.timeout(3):
                await ping(self.engine)
        except Exception as exc:
            raise DependencyUnavailable("database", f"database unreachable: {exc!r}") from exc
        try:
            await self.bus.ping()
        except Exception as exc:
            raise DependencyUnavailable("bus", f"event bus unreachable: {exc!r}") from exc

    # --- transactions --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def unit_of_work(self, kind: type[U], *, read_only: bool = False) -> AsyncIterator[U]:
        """The one way to open and commit a unit of work outside the consumer: yields a ``kind``
        (the service's ``UnitOfWork`` subclass) on a new transaction that commits when the block
        ends (rolls back if it raises); then wakes the relay and runs ``after_commit``.
        ``read_only`` (HTTP reads) lets SQLite read without queueing behind a writer; a rare
        write inside it still works, taking the write lock when it comes."""
        async with self.sessionmaker.begin() as session:
            if read_only:
                await session.connection(execution_options={READ_ONLY_OPTION: True})
            work = kind.for_session(session, self)
            yield work
        self.relay.notify()
        for callback in work.after_commit:
            callback()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """``unit_of_work`` for code that needs only the session."""
        async with self.unit_of_work(self.unit_of_work_class) as work:
            yield work.session

    # --- consuming -----------------------------------------------------------------------------

    def _prepare(self, message: Message) -> tuple[Envelope, Event, EventHandler] | None:
        """Decode a message; None when this service has no handler for its type."""
        kind = peek_type(message.value)
        if kind is not None:
            model = EVENT_TYPES.get(kind)
            if model is None or model not in self.handlers:
                EVENTS_CONSUMED.labels(self.name, kind, "ignored").inc()
                return None
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
        self,
        session: AsyncSession,
        envelope: Envelope,
        event: Event,
        handler: EventHandler,
        first_time: bool | None = None,
    ) -> HandlerContext | None:
        """Inside the caller's transaction: the inbox check (``first_time`` when the caller
        already did it for a batch), then the handler's effects."""
        with handler_span(self.name, envelope):
            if first_time is None:
                first_time = await self.inbox.first_time(session, self.name, envelope.id)
            if not first_time:
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
        async with self.sessionmaker.begin() as session, writes_at_end(session):
            context = await self._apply(session, *prepared)
        self._committed([context] if context else [])

    async def handle_batch(self, messages: list[Message]) -> None:
        """Consecutive messages (of one partition or several, each partition's in order, so a
        ticket's events in their order) in ONE transaction: one commit instead of one per event,
        the inbox rows of all of them in one statement, their outbox rows in another (in the
        order emitted). Between messages the session is flushed and emptied so every handler
        reads fresh rows, unless the unit of work keeps it (``batch_keeps_session``). If
        anything fails, the bus falls back to ``handle_message`` one by one, so a bad message
        cannot hold back its neighbours."""
        prepared = [p for p in map(self._prepare, messages) if p is not None]
        if not prepared:
            return
        contexts: list[HandlerContext] = []
        keep = self.unit_of_work_class.batch_keeps_session
        async with self.sessionmaker.begin() as session:
            session.info[BATCH_EVENTS] = tuple(event for _, event, _ in prepared)
            if keep:
                session.info[BATCH_KEEPS_SESSION] = True
            fresh = await self.inbox.first_times(
                session, self.name, [envelope.id for envelope, _, _ in prepared]
            )
            async with writes_at_end(session):
                for envelope, event, handler in prepared:
                    # A message repeated inside the batch is handled at its first occurrence.
                    first_time = envelope.id in fresh
                    fresh.discard(envelope.id)
                    context = await self._apply(session, envelope, event, handler, first_time)
                    if context is not None:
                        contexts.append(context)
                    if not keep:
                        await session.flush()
                        session.expunge_all()
        self._committed(contexts)


def batch_events(session: AsyncSession) -> tuple[Event, ...]:
    """The events ``session``'s consumer batch handles (``handle_batch``), in order; empty
    outside one (one message, an HTTP request)."""
    events: tuple[Event, ...] = session.info.get(BATCH_EVENTS, ())
    return events


def batch_keeps_session(session: AsyncSession) -> bool:
    """Whether ``session`` is a consumer batch's that keeps its objects from one event to the
    next (``UnitOfWork.batch_keeps_session``): an object one event loaded or added is still
    the session's in the next."""
    return bool(session.info.get(BATCH_KEEPS_SESSION))


def batch_subjects(session: AsyncSession) -> frozenset[str]:
    """The subjects (ticket ids) of ``batch_events``."""
    return frozenset(event.subject for event in batch_events(session))


async def _while_unavailable(service: str, action: Callable[[], Awaitable[None]]) -> None:
    """Run ``action`` at start-up, retrying while the broker (or database) is unreachable, so
    a service restarted during an outage waits for it instead of exiting; gives up after
    ``STARTUP_WAIT_SECONDS``."""

    def waiting(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        dependency = unavailable_dependency(exc) if exc else None
        log.warning("%s start-up waits for the %s: %r", service, dependency, exc)

    async for attempt in AsyncRetrying(
        retry=retry_if_exception(is_infrastructure_error),
        stop=stop_after_delay(STARTUP_WAIT_SECONDS),
        wait=wait_exponential(multiplier=0.5, max=5),
        before_sleep=waiting,
        reraise=True,
    ):
        with attempt:
            await action()


async def _housekeeping(runtime: ServiceRuntime) -> None:
    """Every service: keep the inbox bounded (the relay already purges the outbox)."""
    while True:
        async with runtime.transaction() as session:
            purged = await runtime.inbox.purge(session, INBOX_RETENTION)
        if purged:
            log.info("%s purged %d inbox rows older than %s", runtime.name, purged, INBOX_RETENTION)
        await asyncio.sleep(HOUSEKEEPING_SECONDS)  # wall-clock chore, not business time


async def stop_together(
    runtimes: list[ServiceRuntime], bus: MemoryBus, drain_seconds: float = DRAIN_SECONDS
) -> None:
    """Stop services that share one in-process bus without losing the events in flight.

    The in-process bus forgets its messages when the process exits, and an outbox row is
    marked sent once it is on that bus: so before anyone leaves, every service stops its
    background loops and all of them keep consuming until every outbox is empty and every
    consumer group has handled everything (twice in a row, so nothing is mid-flight), or
    ``drain_seconds`` pass. Then each stops as usual.
    """
    for runtime in runtimes:
        runtime.stopping = True
    await asyncio.gather(*(runtime.stop_background() for runtime in runtimes))
    try:
        async with asyncio.timeout(drain_seconds):
            quiet = 0
            while quiet < 2:
                for runtime in runtimes:
                    runtime.relay.notify()
                pending = [await runtime.relay.pending() for runtime in runtimes]
                quiet = quiet + 1 if not any(pending) and bus.caught_up() else 0
                await asyncio.sleep(0.1)
    except TimeoutError:
        log.warning(
            "stopping with events still in flight after %.0fs; they are lost", drain_seconds
        )
    except Exception as exc:
        log.warning("could not drain the in-process bus before stopping: %r", exc)
    for runtime in runtimes:
        await runtime.stop()
