"""The Kafka bus on aiokafka.

Producer: ``acks="all"``, key = ticket id (Kafka's murmur2 partitioner keeps a ticket on one
partition). Consumers: one ``AIOKafkaConsumer`` per subscription, ``enable_auto_commit=False``;
the offsets of a partition are committed only after every record before them was handled (the
handler's own transaction commits first). The records of one fetch are handled partition after
partition, each partition's in order, in chunks of up to ``MAX_BATCH`` across partitions (one
transaction, one offset commit per chunk). Rebalances run in aiokafka's background task, so the
``ConsumerRebalanceListener`` waits for the batch in hand to finish and commits before the
partitions are given away (aiokafka issues #929, #933).

Idempotent producers and transactions are deliberately not used: correctness comes from the
outbox, the inbox and idempotent handlers, so any Kafka-protocol broker will do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    TopicAlreadyExistsError,
)

from shared.bus.base import (
    DLQ_SUFFIX,
    MAX_BATCH,
    BatchHandler,
    EventBus,
    Handler,
    Message,
    OutgoingMessage,
    Subscription,
)

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno
# How long closing a subscription waits for the batch in hand before cancelling it.
CLOSE_TIMEOUT_SECONDS = 20.0


class KafkaBus(EventBus):
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "ticketflow",
        partitions: int = 8,
        max_retries: int = 5,
        retry_base_seconds: float = 0.1,
        outage_backoff_max_seconds: float = 5.0,
    ) -> None:
        super().__init__(
            max_retries=max_retries,
            retry_base_seconds=retry_base_seconds,
            outage_backoff_max_seconds=outage_backoff_max_seconds,
        )
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.partitions = partitions
        self._producer: AIOKafkaProducer | None = None
        self._subscriptions: list[_Subscription] = []

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            acks="all",
            linger_ms=2,
            request_timeout_ms=15000,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()  # release its connections; the caller may try again
            raise
        self._producer = producer

    async def stop(self) -> None:
        for subscription in list(self._subscriptions):
            await subscription.close()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def ping(self) -> None:
        if self._producer is None:
            raise ConnectionError("Kafka producer is not started")
        async with asyncio.timeout(3):
            await self._producer.client.fetch_all_metadata()

    async def ensure_topics(self, topics: Iterable[str]) -> None:
        await self.create_topics({t for topic in topics for t in (topic, topic + DLQ_SUFFIX)})

    async def create_topics(self, topics: Iterable[str]) -> None:
        """Create exactly these topics (no DLQ topics) if they do not exist."""
        wanted = sorted(set(topics))
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, client_id=self.client_id
        )
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t not in existing]
            if missing:
                response = await admin.create_topics(
                    [
                        NewTopic(t, num_partitions=self.partitions, replication_factor=1)
                        for t in missing
                    ]
                )
                for topic, code, message in _topic_errors(response):
                    if code not in (0, _TOPIC_ALREADY_EXISTS):
                        raise KafkaError(f"cannot create topic {topic}: {code} {message}")
        finally:
            await admin.close()

    async def publish_batch(self, messages: list[OutgoingMessage]) -> None:
        if self._producer is None:
            raise ConnectionError("Kafka producer is not started")
        futures = [
            await self._producer.send(
                m.topic,
                value=m.value,
                key=m.key.encode() if m.key is not None else None,
                headers=list(m.headers.items()),
            )
            for m in messages
        ]
        await asyncio.gather(*futures)

    async def subscribe(
        self,
        topics: list[str],
        group_id: str,
        handler: Handler,
        *,
        batch_handler: BatchHandler | None = None,
    ) -> Subscription:
        subscription = _Subscription(self, topics, group_id, handler, batch_handler)
        await subscription.start()
        self._subscriptions.append(subscription)
        return subscription


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    errors = []
    for entry in getattr(response, "topic_errors", []):
        topic, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        errors.append((topic, code, message))
    return errors


class _Subscription(Subscription, ConsumerRebalanceListener):
    def __init__(
        self,
        bus: KafkaBus,
        topics: list[str],
        group_id: str,
        handler: Handler,
        batch_handler: BatchHandler | None,
    ) -> None:
        self.bus = bus
        self.topics = topics
        self.group_id = group_id
        self.handler = handler
        self.batch_handler = batch_handler
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bus.bootstrap_servers,
            client_id=f"{bus.client_id}-{group_id}",
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=MAX_BATCH,  # a fetch is at most one batch
            # How long the broker may hold a fetch that finds nothing new. Apache Kafka answers
            # as soon as there is data; Tansu holds every fetch for the whole wait, so there it
            # also sets how often a consumer asks and how much each fetch brings. 250 ms (was
            # 100): in ``bench pipeline`` machine CPU per ticket 3.93 → 3.74 ms (fewer, larger
            # batches), webhook → assigned unchanged, sla's own events ~60 ms later.
            fetch_max_wait_ms=250,
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
        )
        self._batch_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        # Set while closing or giving partitions away: a message waiting out an outage stops
        # waiting (uncommitted, so whoever owns its partition next gets it again).
        self._closing = False
        self._revoking = False

    def _active(self) -> bool:
        return not (self._closing or self._revoking)

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe(self.topics, listener=self)
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"kafka-consumer {self.group_id}"
        )

    async def close(self) -> None:
        if self._task is not None:
            self._closing = True
            # Let the batch in hand finish and commit, then stop fetching. A handler stuck on
            # a dead connection is bounded by its own timeouts; past CLOSE_TIMEOUT_SECONDS the
            # batch is cancelled uncommitted (it is redelivered, and the inbox dedupes it).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS), self._batch_lock:
                    self._task.cancel()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self.consumer.stop()
        if self in self.bus._subscriptions:
            self.bus._subscriptions.remove(self)

    # ConsumerRebalanceListener: called from aiokafka's coordinator task.
    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._revoking = True
        try:
            async with self._batch_lock:
                pass  # the batch in hand has finished and committed its offsets
        finally:
            self._revoking = False

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("group %s assigned %d partitions", self.group_id, len(assigned))

    async def _run(self) -> None:
        while True:
            try:
                batch = await self.consumer.getmany(timeout_ms=500)
            except KafkaError as exc:
                log.warning("fetch failed for group %s, retrying: %r", self.group_id, exc)
                await asyncio.sleep(1.0)
                continue
            if not batch:
                continue
            async with self._batch_lock:
                try:
                    await self._handle_fetch(batch)
                except Exception:
                    # Never let the consumer die quietly: go back to the last commit (the
                    # fetch already moved the position past these records) and carry on.
                    log.exception(
                        "consumer of group %s failed; resuming from commits", self.group_id
                    )
                    with contextlib.suppress(Exception):
                        owned = [tp for tp in batch if tp in self.consumer.assignment()]
                        if owned:
                            await self.consumer.seek_to_committed(*owned)
                    await asyncio.sleep(1.0)

    async def _handle_fetch(self, fetched: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """The fetch's messages, partition after partition (each in its order), in chunks of up
        to ``MAX_BATCH`` across partitions: one transaction and one offset commit per chunk,
        not one per partition. At the rates where batching matters a fetch holds a few messages
        of each partition, and the fixed cost of a transaction (its commit, the inbox, the
        reads done once per batch, the relay's pass) was paid once per partition."""
        messages = [
            Message(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key.decode() if record.key is not None else None,
                value=record.value or b"",
                headers={k: bytes(v) for k, v in (record.headers or ())},
            )
            for records in fetched.values()
            for record in records
        ]
        for start in range(0, len(messages), MAX_BATCH):
            chunk = messages[start : start + MAX_BATCH]
            done = await self.bus.deliver_many(
                chunk, self.group_id, self.handler, self.batch_handler, self._active
            )
            # The next offset of each partition, from the messages handled (in order).
            handled = {TopicPartition(m.topic, m.partition): m.offset + 1 for m in chunk[:done]}
            if handled and not await self._commit(handled):
                return  # a partition is no longer ours: its new owner goes on from its commit
            if done < len(chunk):
                # Redeliver each partition from its first message not handled on the next fetch
                # (the rest of this fetch was already taken off the consumer's positions).
                unhandled: dict[TopicPartition, int] = {}
                for m in messages[start + done :]:
                    unhandled.setdefault(TopicPartition(m.topic, m.partition), m.offset)
                owned = self.consumer.assignment()
                for tp, offset in unhandled.items():
                    if tp in owned:
                        self.consumer.seek(tp, offset)
                if self._active():
                    await asyncio.sleep(1.0)
                return

    async def _commit(self, offsets: dict[TopicPartition, int]) -> bool:
        """Commit ``offsets`` (in one request); wait out a broker outage. False once one of the
        partitions is not ours.

        Giving up on a retriable error would skip nothing (the next commit covers this one),
        but retrying keeps the committed offset close behind what was handled.
        """
        delay = 0.2
        named = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in offsets)
        while True:
            try:
                await self.consumer.commit(offsets)
                return True
            except (CommitFailedError, IllegalStateError) as exc:
                # The group rebalanced: a partition moved to another member, which redelivers
                # from the last commit (the inbox dedupes what was handled here).
                log.warning("commit of %s failed: %r", named, exc)
                return False
            except KafkaError as exc:
                if not exc.retriable or not self._active():
                    log.warning("commit of %s failed: %r", named, exc)
                    owned = self.consumer.assignment()
                    return all(tp in owned for tp in offsets) and self._active()
                log.warning("commit of %s waits for the broker: %r", named, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
