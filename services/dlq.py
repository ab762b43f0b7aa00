"""``ticketflow dlq list|replay <topic> [--id ID ...]``: look at and replay dead letters.

A consumer dead-letters a message that failed for its own sake (bad data, a handler error that
kept repeating) to ``<topic>.dlq``, with the error and the original topic in its headers
(``shared.bus.base``). ``list`` reads that topic from the start; ``replay`` publishes the
original messages again, unchanged (same event id, key and value), to their original topic.

Replaying is idempotent twice over: every consumer records handled event ids in its inbox, so
an event that already took effect changes nothing; and ``replay`` records each replayed event
id on ``<topic>.dlq.replayed`` and skips those next time (``--force`` replays them anyway).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.bus import KafkaBus, OutgoingMessage
from shared.bus.base import DLQ_SUFFIX
from shared.events import EventDecodeError, decode
from shared.settings import Settings

REPLAYED_SUFFIX = ".replayed"
# Headers the DLQ adds; a replay sends the message as it was first published, without them.
_DLQ_HEADERS = {
    "x-error",
    "x-original-topic",
    "x-original-partition",
    "x-original-offset",
    "x-consumer-group",
    "x-failed-at",
}


@dataclass(frozen=True)
class DeadLetter:
    """One message on a DLQ topic, with what the consumer recorded about its failure."""

    event_id: str
    type: str | None
    subject: str | None
    error: str
    failed_at: str
    consumer_group: str
    original_topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: dict[str, bytes]


def add_parser(commands: Any) -> None:
    dlq = commands.add_parser(
        "dlq",
        help="look at and replay dead letters (messages a consumer could not process)",
        description="TOPIC is a contract topic with or without the prefix (tickets or "
        "ticketflow.tickets); its dead letters are on TOPIC.dlq. Needs "
        "TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS.",
    )
    actions = dlq.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="show the dead letters of a topic")
    listing.add_argument("topic")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    replay = actions.add_parser(
        "replay", help="publish dead letters again to their original topic (all, or --id)"
    )
    replay.add_argument("topic")
    replay.add_argument(
        "--id", dest="ids", action="append", default=[], metavar="ID", help="event id (repeat)"
    )
    replay.add_argument("--force", action="store_true", help="replay ids replayed before, too")


def topic_names(settings: Settings, topic: str) -> tuple[str, str]:
    """``(topic, dlq topic)`` with the prefix, from ``tickets``, ``ticketflow.tickets`` or
    ``ticketflow.tickets.dlq``."""
    topic = topic.strip()
    if topic.endswith(DLQ_SUFFIX):
        topic = topic[: -len(DLQ_SUFFIX)]
    if not topic.startswith(settings.topic_prefix):
        topic = settings.topic(topic)
    return topic, topic + DLQ_SUFFIX


def run_dlq(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.kafka_bootstrap_servers:
        print(
            "ticketflow dlq: TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS is required (dead letters live "
            "on the broker; ticketflow dev's in-process bus keeps none after it stops)",
            file=sys.stderr,
        )
        return 2
    topic, dlq_topic = topic_names(settings, args.topic)
    try:
        if args.action == "list":
            return asyncio.run(_list(settings.kafka_bootstrap_servers, dlq_topic, args.json))
        return asyncio.run(
            _replay(settings.kafka_bootstrap_servers, topic, dlq_topic, args.ids, args.force)
        )
    except UnknownTopic as exc:
        print(f"ticketflow dlq: {exc}", file=sys.stderr)
        return 1


class UnknownTopic(Exception):
    pass


async def read_topic(bootstrap: str, topic: str) -> list[tuple[int, int, Any]]:
    """Every record of ``topic`` from the beginning to its current end, as
    ``(partition, offset, record)``; no consumer group, nothing committed."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="ticketflow-dlq"
    )
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            raise UnknownTopic(f"no topic {topic} on {bootstrap}")
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > await consumer.position(tp)}
        records: list[tuple[int, int, Any]] = []
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, items in batch.items():
                records.extend((r.partition, r.offset, r) for r in items if r.offset < ends[tp])
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return sorted(records, key=lambda item: (item[2].timestamp, item[0], item[1]))
    finally:
        await consumer.stop()


def _dead_letter(dlq_topic: str, record: Any) -> DeadLetter:
    headers = {k: bytes(v) for k, v in (record.headers or ())}
    key = record.key.decode() if record.key is not None else None
    value = record.value or b""
    try:
        envelope = decode(value, key)
        event_id, event_type, subject = envelope.id, envelope.type, envelope.subject
    except EventDecodeError:
        # Not a CloudEvent: identify it by where it sits on the DLQ.
        event_id, event_type, subject = f"dlq-{record.partition}-{record.offset}", None, key
    failed_at = headers.get("x-failed-at", b"").decode() or datetime.fromtimestamp(
        record.timestamp / 1000, UTC
    ).isoformat(timespec="seconds")
    return DeadLetter(
        event_id=event_id,
        type=event_type,
        subject=subject,
        error=headers.get("x-error", b"").decode(errors="replace"),
        failed_at=failed_at,
        consumer_group=headers.get("x-consumer-group", b"").decode(),
        original_topic=headers.get("x-original-topic", b"").decode()
        or dlq_topic[: -len(DLQ_SUFFIX)],
        partition=record.partition,
        offset=record.offset,
        key=key,
        value=value,
        headers={k: v for k, v in headers.items() if k not in _DLQ_HEADERS},
    )


async def dead_letters(bootstrap: str, dlq_topic: str) -> list[DeadLetter]:
    return [_dead_letter(dlq_topic, r) for _, _, r in await read_topic(bootstrap, dlq_topic)]


async def replayed_ids(bootstrap: str, dlq_topic: str) -> set[str]:
    """Event ids replayed from ``dlq_topic`` before (recorded on ``<dlq>.replayed``)."""
    try:
        records = await read_topic(bootstrap, dlq_topic + REPLAYED_SUFFIX)
    except UnknownTopic:
        return set()
    return {r.key.decode() for _, _, r in records if r.key is not None}


async def _list(bootstrap: str, dlq_topic: str, as_json: bool) -> int:
    letters = await dead_letters(bootstrap, dlq_topic)
    replayed = await replayed_ids(bootstrap, dlq_topic)
    if as_json:
        for letter in letters:
            row = asdict(letter)
            for name in ("value", "headers", "key"):
                row.pop(name)
            row["replayed"] = letter.event_id in replayed
            print(json.dumps(row))
        return 0
    print(f"{len(letters)} dead letter(s) on {dlq_topic}")
    for letter in letters:
        mark = " (replayed)" if letter.event_id in replayed else ""
        print(
            f"{letter.event_id}  {letter.type or '-'}  {letter.subject or '-'}  "
            f"{letter.failed_at}  group={letter.consumer_group or '-'}{mark}\n"
            f"    error: {letter.error or '-'}"
        )
    return 0


async def _replay(bootstrap: str, topic: str, dlq_topic: str, ids: list[str], force: bool) -> int:
    letters = await dead_letters(bootstrap, dlq_topic)
    if ids:
        unknown = sorted(set(ids) - {letter.event_id for letter in letters})
        if unknown:
            print(f"ticketflow dlq: not on {dlq_topic}: {', '.join(unknown)}", file=sys.stderr)
            return 1
        letters = [letter for letter in letters if letter.event_id in ids]
    done = set() if force else await replayed_ids(bootstrap, dlq_topic)
    chosen: dict[str, DeadLetter] = {}
    for letter in letters:
        # One event dead-lettered by several groups is published once: every group gets it.
        if letter.event_id not in done:
            chosen.setdefault(letter.event_id, letter)
    skipped = len({letter.event_id for letter in letters}) - len(chosen)
    bus = KafkaBus(bootstrap, client_id="ticketflow-dlq")
    await bus.start()
    try:
        if chosen:
            await bus.create_topics([dlq_topic + REPLAYED_SUFFIX])
        for letter in chosen.values():
            await bus.publish_batch(
                [OutgoingMessage(letter.original_topic, letter.key, letter.value, letter.headers)]
            )
            # Recorded after the publish: a crash in between replays it again next time,
            # which the consumers' inboxes absorb.
            marker = {
                "event_id": letter.event_id,
                "topic": letter.original_topic,
                "dlq_partition": letter.partition,
                "dlq_offset": letter.offset,
                "replayed_at": datetime.now(UTC).isoformat(),
            }
            await bus.publish(
                dlq_topic + REPLAYED_SUFFIX, letter.event_id, json.dumps(marker).encode()
            )
            print(f"replayed {letter.event_id} to {letter.original_topic}")
    finally:
        await bus.stop()
    print(
        f"replayed {len(chosen)} event(s) to {topic}"
        + (f"; skipped {skipped} replayed before (--force to replay again)" if skipped else "")
    )
    return 0
