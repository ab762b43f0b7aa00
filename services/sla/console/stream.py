"""The live stream behind ``GET /v1/stream``: deltas of sla.*, goal.* and queue/load changes.

Every sla instance runs its own feed: a consumer group of its own (``sla-stream-<instance>``) on
the ``sla`` and ``tickets`` topics, so each instance sees every event whichever instance emitted
it, on the in-memory bus and on Kafka alike. The feed changes no state: it turns each event into
a small delta, numbers it and hands it to the open streams of this instance. A fresh group starts
at the topics' beginning, so events older than the feed's start are skipped (the console loads a
snapshot first); redeliveries are dropped by event id.

Ids are ``<epoch>.<seq>`` with a random epoch per process: a client reconnecting with
``Last-Event-ID`` from this process gets what it missed from a ring buffer; from another process
(or too far behind) it gets a ``reset`` event, meaning "load a snapshot again".

Nobody watching, the feed does no work: it turns events into deltas only while a stream is
open, or for ``WATCHED_SECONDS`` after the last one closed or the last snapshot was served
(a page reconnecting after a blip resumes from the ring). Once it has skipped an event, the
ring and the per-ticket memory are dropped and the sequence moves on, so a client resuming
from before gets a ``reset``; a page always loads a snapshot (which marks the hub watched,
before it reads the position) ahead of the deltas, so it misses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.bus import Message
from shared.events import EventDecodeError, decode
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

RING = 5000
SEEN = 20_000
SUBSCRIBER_QUEUE = 5000
# Events this much older than the feed's start are history the snapshot already holds.
HISTORY_SLACK = timedelta(seconds=5)
# How long after the last stream closed, or the last snapshot, the hub keeps making deltas.
WATCHED_SECONDS = 60.0
DONE = ("solved", "closed")
TICKET_FIELDS = ("status", "priority", "channel", "group", "assignee_id")


@dataclass(frozen=True)
class Delta:
    seq: int
    event: str  # "sla" | "goal" | "ticket"
    data: str  # JSON


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[Delta] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE))
    overflowed: bool = False


class StreamHub:
    """This process's numbered deltas and the streams waiting for them."""

    def __init__(self, started_at: datetime) -> None:
        self.epoch = uuid.uuid4().hex[:8]
        self.started_at = started_at
        self.seq = 0
        self.ring: deque[Delta] = deque(maxlen=RING)
        self.subscribers: set[Subscriber] = set()
        self._seen: OrderedDict[str, None] = OrderedDict()
        # Last queue-relevant fields per open ticket, to send a ticket delta only on a change.
        self._tickets: dict[str, tuple[Any, ...]] = {}
        self._watched_until = float("-inf")  # ``time.monotonic()``; nobody has watched yet
        self._skipping = False

    def watched(self) -> None:
        """A snapshot was served or a stream opened or closed: make deltas for a while."""
        self._watched_until = time.monotonic() + WATCHED_SECONDS

    def _skip(self) -> bool:
        """Whether to skip the next event, nobody watching; forgets what skipping makes stale."""
        if self.subscribers or time.monotonic() < self._watched_until:
            self._skipping = False
            return False
        if not self._skipping:
            self._skipping = True
            self.seq += 1  # no delta has this number: a client from before resumes with a reset
            self.ring.clear()
            self._tickets.clear()
        return True

    def position(self) -> str:
        return f"{self.epoch}.{self.seq}"

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self.subscribers.add(subscriber)
        self.watched()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        self.watched()

    def replay_after(self, last_event_id: str | None) -> list[Delta] | None:
        """Deltas after ``last_event_id``; None when they cannot be told (send a reset)."""
        if not last_event_id:
            return []
        epoch, _, seq_text = last_event_id.partition(".")
        if epoch != self.epoch or not seq_text.isdigit():
            return None
        seq = int(seq_text)
        if seq > self.seq:
            return None
        if seq == self.seq:
            return []
        if not self.ring or self.ring[0].seq > seq + 1:
            return None
        return [d for d in self.ring if d.seq > seq]

    def publish(self, event: str, data: dict[str, Any]) -> None:
        self.seq += 1
        delta = Delta(self.seq, event, json.dumps(data, separators=(",", ":")))
        self.ring.append(delta)
        for subscriber in list(self.subscribers):
            try:
                subscriber.queue.put_nowait(delta)
            except asyncio.QueueFull:
                # A client this far behind gets a reset and reloads a snapshot.
                subscriber.overflowed = True
                self.unsubscribe(subscriber)

    def _first_time(self, event_id: str) -> bool:
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        if len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        return True

    def accept(self, value: bytes, key: str | None) -> None:
        """Turn one consumed event into a delta (or nothing)."""
        if self._skip():
            return
        try:
            envelope = decode(value, key)
        except EventDecodeError:
            return
        if envelope.time is not None and envelope.time < self.started_at - HISTORY_SLACK:
            return
        if not self._first_time(envelope.id):
            return
        kind, _, _ = envelope.type.partition(".")
        data = envelope.data
        at = envelope.time.isoformat() if envelope.time else None
        if kind == "sla":
            self.publish("sla", {"type": envelope.type, "at": at, **data})
        elif kind == "goal":
            self.publish(
                "goal", {"type": envelope.type, "goal_id": envelope.subject, "at": at, **data}
            )
        elif kind == "ticket" and isinstance(data.get("ticket"), dict):
            self._ticket(envelope.type, data["ticket"])

    def _ticket(self, type_: str, ticket: dict[str, Any]) -> None:
        ticket_id = str(ticket.get("id"))
        values = tuple(ticket.get(name) for name in TICKET_FIELDS)
        if self._tickets.get(ticket_id) == values:
            return
        if ticket.get("status") in DONE:
            self._tickets.pop(ticket_id, None)
        else:
            self._tickets[ticket_id] = values
        self.publish(
            "ticket",
            {
                "type": type_,
                "id": ticket_id,
                **dict(zip(TICKET_FIELDS, values, strict=True)),
                "subject": str(ticket.get("subject") or "")[:140],
                "created_at": ticket.get("created_at"),
                "version": ticket.get("version"),
            },
        )


@dataclass
class ConsoleState:
    """This process's stream hub, made on first use."""

    hub: StreamHub | None = None


def hub_of(runtime: ServiceRuntime) -> StreamHub:
    state = runtime.state_of(ConsoleState)
    if state.hub is None:
        # Producers stamp events with their wall clock; a test clock set in the past still works.
        state.hub = StreamHub(min(datetime.now(UTC), runtime.clock.now()))
    return state.hub


def instance_group(service: str) -> str:
    """A consumer group of this process alone, so it receives every event."""
    return f"{service}-stream-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def run_stream_feed(runtime: ServiceRuntime) -> None:
    """Background task of sla: feed this process's hub from the bus until cancelled."""
    hub = hub_of(runtime)

    async def handle(message: Message) -> None:
        hub.accept(message.value, message.key)

    topics = [runtime.settings.topic("sla"), runtime.settings.topic("tickets")]
    subscription = await runtime.bus.subscribe(topics, instance_group(runtime.name), handle)
    try:
        await asyncio.Event().wait()  # until cancelled at shutdown
    finally:
        with contextlib.suppress(Exception):
            await subscription.close()
