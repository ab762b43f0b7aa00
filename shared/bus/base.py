"""The bus interface and the retry / dead-letter behaviour both implementations share."""

from __future__ import annotations

import logging
import zlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from tenacity import (
    AsyncRetrying,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

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
# Handles consecutive messages of one partition at once (e.g. in one database transaction).
# Optional: if it fails, the messages are delivered one by one to the handler instead.
BatchHandler = Callable[[list[Message]], Awaitable[None]]
MAX_BATCH = 100


class Subscription(ABC):
    """A member of a consumer group; ``close`` leaves the group after the message in hand."""

    @abstractmethod
    async def close(self) -> None: ...


class PermanentError(Exception):
    """Raised by a handler for a message that can never succeed: it goes to the DLQ at once."""


def partition_for(key: str | None, partitions: int) -> int:
    """A stable partition for a key (the in-memory bus; Kafka uses its own murmur2)."""
    if key is None:
        return 0
    return zlib.crc32(key.encode()) % partitions


class EventBus(ABC):
    """Publish raw messages and run consumer-group subscriptions."""

    def __init__(self, *, max_retries: int = 5, retry_base_seconds: float = 0.1) -> None:
        self.max_retries = max_retries
        self.retry_base_seconds = retry_base_seconds

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

        With ``batch_handler``, consecutive messages of a partition (up to ``MAX_BATCH``) go to
        it at once; if it raises, they are delivered one by one to ``handler``, with retries and
        the DLQ as usual. Either way each message's effects happen once.
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
    ) -> int:
        """Deliver consecutive messages of one partition in order; returns how many may be
        committed (fewer than all only when a dead-letter publish failed)."""
        if batch_handler is not None and len(messages) > 1:
            try:
                await batch_handler(messages)
                return len(messages)
            except Exception as exc:
                log.warning(
                    "batch of %d from %s[%d] failed (%r); delivering one by one",
                    len(messages),
                    messages[0].topic,
                    messages[0].partition,
                    exc,
                )
        for done, message in enumerate(messages):
            try:
                await self.deliver(message, group_id, handler)
            except Exception:
                log.exception(
                    "could not deliver or dead-letter %s[%d]@%d",
                    message.topic,
                    message.partition,
                    message.offset,
                )
                return done
        return len(messages)

    async def deliver(self, message: Message, group_id: str, handler: Handler) -> None:
        """Run the handler with bounded retries; past them, or on a permanent error, dead-letter.

        Returns once the message may be committed. Raises only if even the DLQ publish failed,
        in which case the caller must not commit and redelivers later.
        """
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.max_retries + 1),
                wait=wait_exponential(multiplier=self.retry_base_seconds, max=5),
                retry=retry_if_not_exception_type(PermanentError),
                reraise=True,
            ):
                with attempt:
                    await handler(message)
            return
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
            }
        )
        await self.publish_batch(
            [OutgoingMessage(message.topic + DLQ_SUFFIX, message.key, message.value, headers)]
        )
