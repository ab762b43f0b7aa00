"""One contract for both buses: the in-memory bus may not drift from Kafka.

Each test runs against ``MemoryBus`` and against ``KafkaBus`` on the real Tansu broker.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.exc import OperationalError

from shared.bus import (
    EventBus,
    Handler,
    KafkaBus,
    MemoryBus,
    Message,
    OutgoingMessage,
    PermanentError,
)
from tests.conftest import eventually


@pytest.fixture(params=["memory", "kafka"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    instance: EventBus
    if request.param == "memory":
        instance = MemoryBus(
            partitions=4, max_retries=2, retry_base_seconds=0.01, outage_backoff_max_seconds=0.3
        )
    else:
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        instance = KafkaBus(
            bootstrap,
            partitions=4,
            max_retries=2,
            retry_base_seconds=0.01,
            outage_backoff_max_seconds=0.3,
        )
    await instance.start()
    yield instance
    await instance.stop()


def topic_name() -> str:
    return f"contract-{uuid.uuid4().hex[:10]}"


async def test_per_key_order_is_kept(bus: EventBus) -> None:
    topic = topic_name()
    await bus.ensure_topics([topic])
    seen: dict[str, list[int]] = defaultdict(list)

    async def handler(message: Message) -> None:
        assert message.key is not None
        seen[message.key].append(int(message.value))

    await bus.subscribe([topic], "order-group", handler)
    keys = [f"ticket-{i}" for i in range(6)]
    await bus.publish_batch(
        [OutgoingMessage(topic, keys[n % 6], str(n).encode()) for n in range(120)]
    )
    await eventually(lambda: _count(seen, 120))
    for key, values in seen.items():
        assert values == sorted(values), f"{key} out of order: {values}"


async def _count(seen: dict[str, list[int]], expected: int) -> bool:
    return sum(len(v) for v in seen.values()) >= expected


async def test_each_group_gets_every_message_once(bus: EventBus) -> None:
    topic = topic_name()
    await bus.ensure_topics([topic])
    received: dict[str, list[bytes]] = defaultdict(list)

    def collector(name: str) -> Handler:
        async def handler(message: Message) -> None:
            received[name].append(message.value)

        return handler

    # Two members of group A share the partitions; group B has one member.
    await bus.subscribe([topic], "group-a", collector("a"))
    await bus.subscribe([topic], "group-a", collector("a"))
    await bus.subscribe([topic], "group-b", collector("b"))
    values = [f"m{n}".encode() for n in range(40)]
    await bus.publish_batch([OutgoingMessage(topic, f"k{n}", v) for n, v in enumerate(values)])

    async def both_done() -> bool:
        return len(received["a"]) >= 40 and len(received["b"]) >= 40

    await eventually(both_done, within=40)
    await asyncio.sleep(0.5)  # nothing more may arrive
    assert sorted(received["a"]) == sorted(values)
    assert sorted(received["b"]) == sorted(values)


async def test_failing_handler_is_retried_then_dead_lettered(bus: EventBus) -> None:
    topic = topic_name()
    await bus.ensure_topics([topic])
    attempts: dict[bytes, int] = defaultdict(int)
    handled: list[bytes] = []
    dead: list[Message] = []

    async def handler(message: Message) -> None:
        attempts[message.value] += 1
        if message.value == b"poison":
            raise ValueError("cannot handle poison")
        if message.value == b"flaky" and attempts[message.value] < 2:
            raise ConnectionError("transient")
        handled.append(message.value)

    async def dlq_handler(message: Message) -> None:
        dead.append(message)

    await bus.subscribe([topic], "retry-group", handler)
    await bus.subscribe([topic + ".dlq"], "dlq-reader", dlq_handler)
    await bus.publish_batch(
        [
            OutgoingMessage(topic, "k", b"flaky"),
            OutgoingMessage(topic, "k", b"poison"),
            OutgoingMessage(topic, "k", b"after"),
        ]
    )
    await eventually(lambda: _has(handled, b"after"))
    await eventually(lambda: _has([m.value for m in dead], b"poison"))
    assert handled == [b"flaky", b"after"], "order kept and the poison message skipped"
    assert attempts[b"poison"] == 3, "one try and max_retries=2 retries"
    assert attempts[b"flaky"] == 2
    assert dead[0].headers["x-error"].startswith(b"ValueError: cannot handle poison")
    assert dead[0].headers["x-original-topic"] == topic.encode()
    assert dead[0].headers["x-consumer-group"] == b"retry-group"


async def test_permanent_error_goes_to_dlq_without_retries(bus: EventBus) -> None:
    topic = topic_name()
    await bus.ensure_topics([topic])
    attempts = 0
    dead: list[Message] = []

    async def handler(message: Message) -> None:
        nonlocal attempts
        attempts += 1
        raise PermanentError("not a CloudEvent")

    async def dlq_handler(message: Message) -> None:
        dead.append(message)

    await bus.subscribe([topic], "permanent-group", handler)
    await bus.subscribe([topic + ".dlq"], "permanent-dlq", dlq_handler)
    await bus.publish(topic, "k", b"garbage")
    await eventually(lambda: _nonempty(dead))
    assert attempts == 1


async def test_committed_messages_are_not_redelivered_to_a_new_member(bus: EventBus) -> None:
    topic = topic_name()
    await bus.ensure_topics([topic])
    first: list[bytes] = []

    async def handler(message: Message) -> None:
        first.append(message.value)

    await bus.subscribe([topic], "resume-group", handler)
    await bus.publish_batch([OutgoingMessage(topic, f"k{n}", f"v{n}".encode()) for n in range(10)])
    await eventually(lambda: _count_list(first, 10))
    # After a restart the group resumes from its committed offsets: only new messages arrive.
    assert await _after_a_restart(bus, topic, "resume-group") == [b"new"]


async def _after_a_restart(bus: EventBus, topic: str, group: str) -> list[bytes]:
    """Restart ``bus``, join ``group`` again, publish one new message: what the group gets."""
    await bus.stop()
    await bus.start()
    received: list[bytes] = []

    async def handler(message: Message) -> None:
        received.append(message.value)

    await bus.subscribe([topic], group, handler)
    await bus.publish(topic, "k-new", b"new")
    await eventually(lambda: _has(received, b"new"), within=30)
    await asyncio.sleep(0.5)
    return received


async def _has(items: list[bytes], value: bytes) -> bool:
    return value in items


async def _nonempty(items: list[Message]) -> bool:
    return bool(items)


async def _count_list(items: list[bytes], n: int) -> bool:
    return len(items) >= n


async def test_a_closed_member_gets_nothing_more_and_the_group_goes_on(bus: EventBus) -> None:
    topic = topic_name()
    await bus.ensure_topics([topic])
    leaving: list[bytes] = []
    staying: list[bytes] = []

    async def leaving_handler(message: Message) -> None:
        leaving.append(message.value)

    async def staying_handler(message: Message) -> None:
        staying.append(message.value)

    member = await bus.subscribe([topic], "close-group", leaving_handler)
    await bus.subscribe([topic], "close-group", staying_handler)
    await bus.publish_batch([OutgoingMessage(topic, f"k{n}", b"before") for n in range(8)])
    await eventually(lambda: _count_list(leaving + staying, 8), within=30)
    await member.close()
    seen_by_leaving = len(leaving)
    await bus.publish_batch([OutgoingMessage(topic, f"k{n}", b"after") for n in range(8)])
    await eventually(lambda: _count_list([v for v in staying if v == b"after"], 8), within=40)
    assert len(leaving) == seen_by_leaving


async def test_batches_keep_order_and_fall_back_one_by_one(bus: EventBus) -> None:
    topic = topic_name()
    await bus.ensure_topics([topic])
    batch_sizes: list[int] = []
    handled: list[bytes] = []
    dead: list[bytes] = []

    async def batch_handler(messages: list[Message]) -> None:
        if any(m.value == b"poison" for m in messages):
            raise ValueError("a poison message in the batch")  # nothing applied: all or nothing
        batch_sizes.append(len(messages))
        handled.extend(m.value for m in messages)

    async def handler(message: Message) -> None:
        if message.value == b"poison":
            raise PermanentError("poison")
        handled.append(message.value)

    async def dlq_handler(message: Message) -> None:
        dead.append(message.value)

    await bus.subscribe([topic + ".dlq"], "batch-dlq", dlq_handler)
    # Publish before subscribing, so that the first fetch sees a backlog to batch.
    values = [f"{n:03d}".encode() for n in range(60)]
    await bus.publish_batch([OutgoingMessage(topic, "one-key", v) for v in values])
    await bus.subscribe([topic], "batch-group", handler, batch_handler=batch_handler)
    await eventually(lambda: _count_list(handled, 60), within=30)
    assert handled == values, "one key: order kept across batches"
    assert max(batch_sizes) > 1, "a backlog is delivered in batches"

    more = [b"a", b"poison", b"b"]
    await bus.publish_batch([OutgoingMessage(topic, "one-key", v) for v in more])
    await eventually(lambda: _has(dead, b"poison"), within=30)
    await eventually(lambda: _has(handled, b"b"))
    assert handled[60:] == [b"a", b"b"], "the failed batch was redone one by one, once each"


async def test_a_batch_of_several_partitions_keeps_each_in_order_and_commits_them_all(
    bus: EventBus,
) -> None:
    """Kafka hands a fetch's partitions to one batch (one transaction for all of them); the
    memory bus, one partition's. Either way each partition's messages stay in order, each is
    handled once, and every partition's offset is committed."""
    topic = topic_name()
    await bus.ensure_topics([topic])
    batches: list[list[Message]] = []
    handled: list[bytes] = []

    async def batch_handler(messages: list[Message]) -> None:
        batches.append(messages)
        handled.extend(m.value for m in messages)

    async def handler(message: Message) -> None:
        handled.append(message.value)

    keys = [f"ticket-{i}" for i in range(8)]
    await bus.publish_batch(
        [OutgoingMessage(topic, keys[n % 8], f"{n:03d}".encode()) for n in range(80)]
    )
    await bus.subscribe([topic], "fetch-group", handler, batch_handler=batch_handler)
    await eventually(lambda: _count_list(handled, 80), within=30)
    assert sorted(handled) == sorted(f"{n:03d}".encode() for n in range(80))  # once each
    for batch in batches:
        offsets: dict[int, list[int]] = defaultdict(list)
        for message in batch:
            offsets[message.partition].append(message.offset)
        assert all(o == sorted(o) for o in offsets.values()), "a partition out of order"
    if isinstance(bus, KafkaBus):
        assert any(len({m.partition for m in b}) > 1 for b in batches), "one fetch, one batch"

    again = await _after_a_restart(bus, topic, "fetch-group")
    assert again == [b"new"], "every partition's offset was committed"


class _Outage:
    """A dependency that is down until ``end()``: handlers fail with real driver errors."""

    def __init__(self) -> None:
        self.down = True

    def check(self) -> None:
        if self.down:
            # What SQLAlchemy raises when PostgreSQL refuses connections.
            raise OperationalError(
                "SELECT 1", {}, ConnectionRefusedError(111, "Connection refused")
            ) from ConnectionRefusedError(111, "Connection refused")

    def end(self) -> None:
        self.down = False


async def test_an_outage_never_dead_letters_and_the_partition_waits(bus: EventBus) -> None:
    """An infrastructure error is retried for as long as it lasts (far past max_retries=2);
    the partition stops at that message and goes on in order once the outage ends."""
    topic = topic_name()
    await bus.ensure_topics([topic])
    outage = _Outage()
    attempts: dict[bytes, int] = defaultdict(int)
    handled: list[bytes] = []
    dead: list[Message] = []

    async def handler(message: Message) -> None:
        attempts[message.value] += 1
        outage.check()
        handled.append(message.value)

    async def dlq_handler(message: Message) -> None:
        dead.append(message)

    await bus.subscribe([topic + ".dlq"], "outage-dlq", dlq_handler)
    await bus.subscribe([topic], "outage-group", handler)
    await bus.publish_batch([OutgoingMessage(topic, "one-key", f"{n}".encode()) for n in range(5)])

    async def waited_long() -> bool:
        return attempts[b"0"] >= 8

    await eventually(waited_long, within=60)
    assert handled == [] and attempts[b"1"] == 0, "the partition waits at the first message"
    outage.end()
    await eventually(lambda: _count_list(handled, 5), within=30)
    assert handled == [f"{n}".encode() for n in range(5)]
    await asyncio.sleep(0.5)
    assert dead == [], "an outage dead-letters nothing"


async def test_a_batch_in_an_outage_waits_too(bus: EventBus) -> None:
    topic = topic_name()
    await bus.ensure_topics([topic])
    outage = _Outage()
    handled: list[bytes] = []
    dead: list[Message] = []
    calls = 0

    async def batch_handler(messages: list[Message]) -> None:
        nonlocal calls
        calls += 1
        outage.check()
        handled.extend(m.value for m in messages)

    async def handler(message: Message) -> None:
        nonlocal calls
        calls += 1
        outage.check()
        handled.append(message.value)

    async def dlq_handler(message: Message) -> None:
        dead.append(message)

    await bus.subscribe([topic + ".dlq"], "outage-batch-dlq", dlq_handler)
    values = [f"{n:02d}".encode() for n in range(20)]
    await bus.publish_batch([OutgoingMessage(topic, "one-key", v) for v in values])
    await bus.subscribe([topic], "outage-batch", handler, batch_handler=batch_handler)

    async def many_calls() -> bool:
        return calls >= 8

    await eventually(many_calls, within=60)
    outage.end()
    await eventually(lambda: _count_list(handled, 20), within=30)
    assert handled == values
    await asyncio.sleep(0.5)
    assert dead == []


async def test_closing_during_an_outage_commits_nothing_and_the_next_member_resumes(
    bus: EventBus,
) -> None:
    topic = topic_name()
    await bus.ensure_topics([topic])
    outage = _Outage()
    first_attempts = 0
    handled: list[bytes] = []

    async def failing(message: Message) -> None:
        nonlocal first_attempts
        first_attempts += 1
        outage.check()

    member = await bus.subscribe([topic], "outage-close", failing)
    await bus.publish_batch([OutgoingMessage(topic, "k", b"a"), OutgoingMessage(topic, "k", b"b")])

    async def tried() -> bool:
        return first_attempts >= 3

    await eventually(tried, within=60)
    async with asyncio.timeout(30):  # closing does not wait for the outage to end
        await member.close()

    async def working(message: Message) -> None:
        handled.append(message.value)

    await bus.subscribe([topic], "outage-close", working)
    await eventually(lambda: _count_list(handled, 2), within=40)
    assert handled == [b"a", b"b"]
