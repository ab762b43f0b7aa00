"""The bus interface and the retry / dead-letter behaviour both implementations share."""

from __future__ import annotations

import asyncio
import logging
import math
import zlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_not_exception_type,
    wait_exponential,
)

from shared.faults import is_infrastructure_error, unavailable_dependency

log = logging.getLogger(__name__)

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class Message:
    """A message as a consumer receives it."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    key: str | None
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)


Handler = Callable[[Message], Awaitable[None]]
# Handles messages at once (e.g. in one database transaction): consecutive messages of one or
# more partitions, each partition's in order (the Kafka bus gives a fetch's partitions together).
# Optional: if it fails, the messages are delivered one by one to the handler instead.
BatchHandler = Callable[[list[Message]], Awaitable[None]]
# A batch's upper bound: a Kafka fetch's worth (the consumer's ``max_poll_records``). Batches are
# as large as the backlog, so they grow only when a consumer falls behind, and then the fixed
# cost of a transaction (commit, inbox, once-per-batch reads, the relay's pass, the offset
# commit) is spread over more events. ``bench pipeline`` at 500 tickets/s on 2 cores: 100 gave
# 0.88 of the door's rate and 1.2 s p50 to assignment, 500 gave 0.97 and 0.6 s.
MAX_BATCH = 500


class Subscription(ABC):
    """A member of a consumer group; ``close`` leaves the group after the message in hand."""

    @abstractmethod
    async def close(self) -> None: ...


class PermanentError(Exception):
    """Raised by a handler for a message that can never succeed: it goes to the DLQ at once."""


class DeliveryAbandoned(Exception):
    """The consumer stopped while a message waited out an outage; it is not committed."""


# Whether a consumer still owns the partition in hand (false once closing or revoked).
Active = Callable[[], bool]


def _always() -> bool:
    return True


def partition_for(key: str | None, partitions: int) -> int:
    """A stable partition for a key (the in-memory bus; Kafka uses its own murmur2)."""
    if key is None:
        return 0
    return zlib.crc32(key.encode()) % partitions


class EventBus(ABC):
    """Publish raw messages and run consumer-group subscriptions."""

    def __init__(
        self,
        *,
        max_retries: int = 5,
        retry_base_seconds: float = 0.1,
        outage_backoff_max_seconds: float = 5.0,
    ) -> None:
        self.max_retries = max_retries
        self.retry_base_seconds = retry_base_seconds
        # The longest pause between two tries while a dependency is down.
        self.outage_backoff_max_seconds = outage_backoff_max_seconds

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def ensure_topics(self, topics: Iterable[str]) -> None:
        """Create the topics (and their DLQ topics) if they do not exist."""

    @abstractmethod
    async def publish_batch(self, messages: list[OutgoingMessage]) -> None:
        """Publish and wait until every message is durably acknowledged."""

    async def publish(
        self, topic: str, key: str | None, value: bytes, headers: dict[str, bytes] | None = None
    ) -> None:
        await self.publish_batch([OutgoingMessage(topic, key, value, headers or {})])

    @abstractmethod
    async def subscribe(
        self,
        topics: list[str],
        group_id: str,
        handler: Handler,
        *,
        batch_handler: BatchHandler | None = None,
    ) -> Subscription:
        """Join ``group_id`` and deliver messages of ``topics`` to ``handler`` until closed.

        With ``batch_handler``, consecutive messages (up to ``MAX_BATCH``, of one partition or
        of several, each partition's in order) go to it at once; if it raises, they are
        delivered one by one to ``handler``, with retries and the DLQ as usual. Either way each
        message's effects happen once.
        """

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the bus cannot be reached."""

    async def deliver_many(
        self,
        messages: list[Message],
        group_id: str,
        handler: Handler,
        batch_handler: BatchHandler | None,
        active: Active = _always,
    ) -> int:
        """Deliver consecutive messages (each partition's in order); returns how many may be
        committed: fewer than all when a dead-letter publish failed or the consumer stopped
        (``active()`` turned false) while waiting out an outage. The caller redelivers the rest
        later, from the first one not counted."""
        done = 0
        if not active():
            return done
        while batch_handler is not None and len(messages) - done > 1:
            rest = messages[done:]
            try:
                await batch_handler(rest)
                return len(messages)
            except Exception as exc:
                outage = is_infrastructure_error(exc)
                log.warning(
                    "batch of %d from %s[%d] failed (%r); %s",
                    len(rest),
                    rest[0].topic,
                    rest[0].partition,
                    exc,
                    "waiting out the outage on its first message"
                    if outage
                    else "delivering one by one",
                )
                if not outage:
                    break
            # An outage: wait it out on the first message alone, then batch the rest again.
            if not await self._deliver_counted(messages[done], group_id, handler, active):
                return done
            done += 1
        for message in messages[done:]:
            if not await self._deliver_counted(message, group_id, handler, active):
                return done
            done += 1
        return done

    async def _deliver_counted(
        self, message: Message, group_id: str, handler: Handler, active: Active
    ) -> bool:
        """``deliver``; False when the message may not be committed (see ``deliver_many``)."""
        try:
            await self.deliver(message, group_id, handler, active)
            return True
        except DeliveryAbandoned:
            return False
        except Exception:
            log.exception(
                "could not deliver or dead-letter %s[%d]@%d",
                message.topic,
                message.partition,
                message.offset,
            )
            return False

    async def deliver(
        self, message: Message, group_id: str, handler: Handler, active: Active = _always
    ) -> None:
        """Run the handler until it succeeds; dead-letter only a message that fails by itself.

        - An infrastructure error (``shared.faults``: database or broker down, a timeout) is
          retried with capped exponential backoff for as long as it lasts; it never counts
          against the message. Raises ``DeliveryAbandoned`` if ``active()`` turns false
          meanwhile (the consumer is closing or lost the partition): nothing is committed.
        - Any other error is retried ``max_retries`` times, then the message goes to
          ``<topic>.dlq`` with the error; a ``PermanentError`` goes there at once.

        Returns once the message may be committed. Raises if even the DLQ publish failed, in
        which case the caller must not commit and redelivers later.
        """
        if not active():
            raise DeliveryAbandoned(message.topic, message.partition, message.offset)
        try:
            # The common case, a first attempt that succeeds, without the retry machinery: at
            # a low rate, when most fetches hold one message, building and stepping tenacity's
            # loop cost sla more CPU than some of its handlers.
            await handler(message)
            return
        except Exception as exc:
            first_failure: Exception | None = exc
        own_failures = _OwnFailures(self.max_retries + 1)

        async def sleep(seconds: float) -> None:
            # In steps, so a consumer that closes stops waiting within a fraction of a second.
            step = min(0.2, seconds)
            for _ in range(max(1, math.ceil(seconds / step)) if step > 0 else 1):
                if not active():
                    return
                await asyncio.sleep(step)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            dependency = unavailable_dependency(exc) if exc else None
            attempt = state.attempt_number
            if dependency is not None and (attempt in (1, 5) or attempt % 20 == 0):
                log.warning(
                    "%s[%d]@%d for group %s waits for the %s (attempt %d): %r",
                    message.topic,
                    message.partition,
                    message.offset,
                    group_id,
                    dependency,
                    attempt,
                    exc,
                )

        try:
            async for attempt in AsyncRetrying(
                stop=own_failures,
                wait=wait_exponential(
                    multiplier=self.retry_base_seconds, max=self.outage_backoff_max_seconds
                ),
                retry=retry_if_not_exception_type((PermanentError, DeliveryAbandoned)),
                sleep=sleep,
                before_sleep=before_sleep,
                reraise=True,
            ):
                with attempt:
                    if first_failure is not None:
                        # Attempt 1 is the one made above: its failure goes through the same
                        # stop, wait and retry decisions as any other.
                        failure, first_failure = first_failure, None
                        raise failure
                    if not active():
                        raise DeliveryAbandoned(message.topic, message.partition, message.offset)
                    await handler(message)
            return
        except DeliveryAbandoned:
            raise
        except Exception as exc:
            error = exc
        log.error(
            "dead-lettering %s[%d]@%d for group %s: %r",
            message.topic,
            message.partition,
            message.offset,
            group_id,
            error,
        )
        headers = dict(message.headers)
        headers.update(
            {
                "x-error": f"{type(error).__name__}: {error}"[:2000].encode(),
                "x-original-topic": message.topic.encode(),
                "x-original-partition": str(message.partition).encode(),
                "x-original-offset": str(message.offset).encode(),
                "x-consumer-group": group_id.encode(),
                "x-failed-at": datetime.now(UTC).isoformat().encode(),
            }
        )
        await self.publish_batch(
            [OutgoingMessage(message.topic + DLQ_SUFFIX, message.key, message.value, headers)]
        )


class _OwnFailures:
    """A tenacity stop condition counting only the message's own failures, not outages."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def __call__(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if exc is None or is_infrastructure_error(exc):
            return False
        self.count += 1
        return self.count >= self.limit
