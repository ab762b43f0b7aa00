"""The in-process bus for ``ticketflow dev`` and unit tests, with Kafka's semantics.

Each topic is a list of partitions (append-only logs). Each consumer group keeps a committed
offset per partition and one worker per partition, which hands records in order to one member
of the group; members share the partitions round-robin, like Kafka's range of assignors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.bus.base import (
    DLQ_SUFFIX,
    MAX_BATCH,
    BatchHandler,
    EventBus,
    Handler,
    Message,
    OutgoingMessage,
    Subscription,
    partition_for,
)

log = logging.getLogger(__name__)


class _Member(Subscription):
    def __init__(
        self, bus: MemoryBus, group: _Group, handler: Handler, batch: BatchHandler | None
    ) -> None:
        self.bus = bus
        self.group = group
        self.handler = handler
        self.batch = batch
        self.idle = asyncio.Event()
        self.idle.set()

    async def close(self) -> None:
        await self.bus._leave(self)

    async def handle(self, message: Message) -> None:
        self.idle.clear()
        try:
            await self.handler(message)
        finally:
            self.idle.set()

    async def handle_batch(self, messages: list[Message]) -> None:
        assert self.batch is not None
        self.idle.clear()
        try:
            await self.batch(messages)
        finally:
            self.idle.set()


@dataclass
class _Group:
    topics: set[str] = field(default_factory=set)
    members: list[_Member] = field(default_factory=list)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    workers: dict[tuple[str, int], asyncio.Task[None]] = field(default_factory=dict)

    def owner(self, topic: str, partition: int, partitions: int) -> _Member | None:
        if not self.members:
            return None
        index = sorted(self.topics).index(topic) * partitions + partition
        return self.members[index % len(self.members)]


class MemoryBus(EventBus):
    def __init__(
        self,
        *,
        partitions: int = 8,
        max_retries: int = 5,
        retry_base_seconds: float = 0.1,
        outage_backoff_max_seconds: float = 5.0,
    ):
        super().__init__(
            max_retries=max_retries,
            retry_base_seconds=retry_base_seconds,
            outage_backoff_max_seconds=outage_backoff_max_seconds,
        )
        self.partitions = partitions
        self._logs: dict[str, list[list[Message]]] = {}
        self._groups: dict[str, _Group] = {}
        self._changed = asyncio.Condition()
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        self._running = False
        workers = [w for g in self._groups.values() for w in g.workers.values()]
        for worker in workers:
            worker.cancel()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        # Like a broker, the bus keeps its logs and committed offsets; only members leave.
        for group in self._groups.values():
            group.members.clear()
            group.workers.clear()

    def caught_up(self) -> bool:
        """True when every consumer group with members has handled every message."""
        for group in self._groups.values():
            if not group.members:
                continue
            for topic in group.topics:
                for partition, records in enumerate(self._log(topic)):
                    if group.committed.get((topic, partition), 0) < len(records):
                        return False
        return True

    async def ping(self) -> None:
        if not self._running:
            raise ConnectionError("in-memory bus is not running")

    async def ensure_topics(self, topics: Iterable[str]) -> None:
        for topic in topics:
            self._log(topic)
            self._log(topic + DLQ_SUFFIX)

    def _log(self, topic: str) -> list[list[Message]]:
        if topic not in self._logs:
            self._logs[topic] = [[] for _ in range(self.partitions)]
        return self._logs[topic]

    async def publish_batch(self, messages: list[OutgoingMessage]) -> None:
        if not self._running:
            raise ConnectionError("in-memory bus is not running")
        for out in messages:
            partitions = self._log(out.topic)
            partition = partition_for(out.key, self.partitions)
            log_ = partitions[partition]
            log_.append(
                Message(out.topic, partition, len(log_), out.key, out.value, dict(out.headers))
            )
            for group in self._groups.values():
                if out.topic in group.topics:
                    self._ensure_worker(group, out.topic, partition)
        async with self._changed:
            self._changed.notify_all()

    async def subscribe(
        self,
        topics: list[str],
        group_id: str,
        handler: Handler,
        *,
        batch_handler: BatchHandler | None = None,
    ) -> Subscription:
        group = self._groups.setdefault(group_id, _Group())
        group.topics.update(topics)
        member = _Member(self, group, handler, batch_handler)
        group.members.append(member)
        for topic in topics:
            for partition, records in enumerate(self._log(topic)):
                if records:
                    self._ensure_worker(group, topic, partition)
        async with self._changed:
            self._changed.notify_all()
        return member

    async def _leave(self, member: _Member) -> None:
        """The member's partitions move to the others (a rebalance) once its message is done."""
        if member in member.group.members:
            member.group.members.remove(member)
        async with self._changed:
            self._changed.notify_all()
        await member.idle.wait()

    def _ensure_worker(self, group: _Group, topic: str, partition: int) -> None:
        key = (topic, partition)
        if key not in group.workers or group.workers[key].done():
            group.workers[key] = asyncio.get_running_loop().create_task(
                self._work(group, topic, partition), name=f"memory-bus {topic}[{partition}]"
            )

    async def _work(self, group: _Group, topic: str, partition: int) -> None:
        group_id = next(gid for gid, g in self._groups.items() if g is group)
        records = self._log(topic)[partition]
        while self._running:
            offset = group.committed.get((topic, partition), 0)
            member = group.owner(topic, partition, self.partitions)
            if offset >= len(records) or member is None:
                async with self._changed:
                    await self._changed.wait_for(
                        lambda: (
                            not self._running
                            or (
                                group.committed.get((topic, partition), 0) < len(records)
                                and group.owner(topic, partition, self.partitions) is not None
                            )
                        )
                    )
                continue
            chunk = records[offset : offset + MAX_BATCH]

            def active(member: _Member = member) -> bool:
                # False once the member left (or the bus stopped): stop waiting out an outage.
                return self._running and member in group.members

            done = await self.deliver_many(
                chunk,
                group_id,
                member.handle,
                member.handle_batch if member.batch else None,
                active,
            )
            group.committed[(topic, partition)] = offset + done
            if done < len(chunk) and active():
                await asyncio.sleep(1.0)  # a dead-letter publish failed: retry from there
