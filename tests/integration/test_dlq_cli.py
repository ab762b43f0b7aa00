"""``ticketflow dlq list|replay`` against the real broker and a real service runtime.

A consumer whose handler keeps failing for one event (a bug, not an outage) dead-letters it;
the bug is "fixed"; the operator lists the dead letters and replays them. The event takes
effect once, however often it is replayed: the CLI skips what it replayed before, and a forced
replay is absorbed by the runtime's inbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from services.router.models import metadata
from shared import events as ev
from shared.app import create_service_app
from shared.bus import KafkaBus
from shared.runtime import HandlerContext
from tests.conftest import eventually, make_settings, running


def ticket_created(n: int, prefix: str) -> ev.TicketCreated:
    now = datetime.now(UTC)
    return ev.TicketCreated(
        ticket=ev.TicketSnapshot(
            id=f"dlq:{prefix}-{n}",
            source="dlq",
            external_id=f"{prefix}-{n}",
            subject="s",
            status="new",
            priority="normal",
            channel="email",
            requester=ev.Requester(id="r"),
            created_at=now,
            updated_at=now,
        )
    )


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "dlq", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_list_and_replay_dead_letters_idempotently(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap_servers=kafka_bootstrap)
    prefix = settings.topic_prefix.rstrip(".")
    broken = {f"dlq:{prefix}-1"}
    applied: list[str] = []

    async def on_created(ctx: HandlerContext, event: ev.TicketCreated) -> None:
        if event.ticket.id in broken:
            raise ValueError(f"cannot route {event.ticket.id}: unknown group")
        # Counted once its transaction commits (a failed batch rolls back what it did).
        ctx.after_commit.append(lambda: applied.append(event.ticket.id))

    app = create_service_app(
        service="router",
        description="a consumer with a handler bug",
        settings=settings,
        metadata=metadata,
        handlers={ev.TicketCreated: on_created},
        consumes=("tickets",),
        routers=[],
    )
    env = {
        "TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TICKETFLOW_TOPIC_PREFIX": settings.topic_prefix,
    }
    publisher = KafkaBus(kafka_bootstrap)
    await publisher.start()
    try:
        async with running(app):
            events = [ticket_created(n, prefix) for n in range(3)]
            ids = []
            for event in events:
                key, value, headers = ev.encode(event, source="/test")
                ids.append(ev.decode(value).id)
                await publisher.publish(settings.topic("tickets"), key, value, headers)

            async def two_applied() -> bool:
                return len(applied) == 2

            await eventually(two_applied, within=60)

            async def dead_lettered() -> str:
                listing = await asyncio.to_thread(cli, env, "list", "tickets")
                return listing.stdout if ids[1] in listing.stdout else ""

            listing = await eventually(dead_lettered, within=60, interval=1.0)
            assert "1 dead letter(s)" in listing
            assert "ticket.created" in listing and f"dlq:{prefix}-1" in listing
            assert (
                "ValueError: cannot route" in listing
                and f"group={settings.consumer_group('router')}" in listing
            )
            as_json = await asyncio.to_thread(cli, env, "list", settings.topic("tickets"), "--json")
            rows = [json.loads(line) for line in as_json.stdout.splitlines()]
            assert [(r["event_id"], r["replayed"]) for r in rows] == [(ids[1], False)]
            assert rows[0]["original_topic"] == settings.topic("tickets")

            unknown = await asyncio.to_thread(cli, env, "replay", "tickets", "--id", "nope")
            assert unknown.returncode == 1 and "nope" in unknown.stderr

            broken.clear()  # the bug is fixed
            replay = await asyncio.to_thread(cli, env, "replay", "tickets", "--id", ids[1])
            assert replay.returncode == 0, replay.stderr
            assert "replayed 1 event(s)" in replay.stdout

            async def all_applied() -> bool:
                return len(applied) == 3

            await eventually(all_applied, within=60)
            duplicates_before = _duplicates()
            again = await asyncio.to_thread(cli, env, "replay", "tickets")
            assert "replayed 0 event(s)" in again.stdout and "skipped 1" in again.stdout
            forced = await asyncio.to_thread(cli, env, "replay", "tickets.dlq", "--force")
            assert "replayed 1 event(s)" in forced.stdout
            listed = await asyncio.to_thread(cli, env, "list", "tickets")
            assert "(replayed)" in listed.stdout
            # The forced copy reaches the consumer, whose inbox knows the event id.
            await eventually(lambda: _duplicates_above(duplicates_before), within=60)
            assert sorted(applied) == sorted(e.ticket.id for e in events)
    finally:
        await publisher.stop()


def _duplicates() -> float:
    labels = {"service": "router", "type": "ticket.created", "outcome": "duplicate"}
    return REGISTRY.get_sample_value("ticketflow_events_consumed_total", labels) or 0.0


async def _duplicates_above(before: float) -> bool:
    return _duplicates() > before
