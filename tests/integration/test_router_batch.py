"""router's consumer batch: one read finds the batch's new tickets, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.router import repository
from services.router.app import create_app
from services.router.models import Ticket
from shared import events as ev
from shared.bus import MemoryBus, Message
from shared.migrate import upgrade_all
from shared.runtime import ServiceRuntime
from tests.conftest import make_settings, running

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
async def router(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fresh_database: Callable[[], Awaitable[str]],
) -> AsyncIterator[ServiceRuntime]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'batch.db'}"
        await upgrade_all(url)
    else:
        url = await fresh_database()
    bus = MemoryBus(partitions=1, max_retries=1, retry_base_seconds=0.01)
    await bus.start()
    # The api role subscribes to nothing: the test hands the batches over itself.
    app = create_app(make_settings(url, process_role="api"), bus=bus)
    async with running(app):
        yield app.state.runtime
    await bus.stop()


def _upsert(external_id: str, subject: str, minutes: int) -> ev.TicketUpsert:
    return ev.TicketUpsert(
        source="batch",
        external_id=external_id,
        occurred_at=T0 + timedelta(minutes=minutes),
        ticket=ev.InboundTicket(
            subject=subject, channel="email", requester=ev.Requester(id=f"r-{external_id}")
        ),
    )


def _messages(runtime: ServiceRuntime, events: list[ev.TicketUpsert], first: int) -> list[Message]:
    topic = runtime.settings.topic("inbound")
    messages = []
    for offset, event in enumerate(events, start=first):
        key, value, headers = ev.encode(event, source="test")
        messages.append(Message(topic, 0, offset, key, value, headers))
    return messages


async def test_a_batch_reads_its_new_tickets_once(
    router: ServiceRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    await router.handle_batch(_messages(router, [_upsert("old", "before", 0)], first=0))
    reads: list[set[str]] = []
    locked: list[str] = []
    existing_ticket_ids, get_ticket = repository.existing_ticket_ids, repository.get_ticket

    async def counted_existing(session: Any, ticket_ids: Any) -> set[str]:
        reads.append(set(ticket_ids))
        return await existing_ticket_ids(session, ticket_ids)

    async def counted_get(session: Any, ticket_id: str, **options: Any) -> Ticket | None:
        if options.get("for_update"):
            locked.append(ticket_id)
        return await get_ticket(session, ticket_id, **options)

    monkeypatch.setattr(repository, "existing_ticket_ids", counted_existing)
    monkeypatch.setattr(repository, "get_ticket", counted_get)

    # Two new tickets, the second reported twice in the batch, and an existing one.
    batch = [
        _upsert("a", "first", 1),
        _upsert("b", "created", 2),
        _upsert("old", "after", 3),
        _upsert("b", "changed", 4),
    ]
    await router.handle_batch(_messages(router, batch, first=1))

    assert reads == [{"batch:a", "batch:b", "batch:old"}]
    # The new tickets' first events lock nothing; b's second event and the old ticket do.
    assert locked == ["batch:old", "batch:b"]
    async with router.sessionmaker() as session:
        subjects = dict(
            (await session.execute(select(Ticket.id, Ticket.subject).order_by(Ticket.id))).all()
        )
    assert subjects == {"batch:a": "first", "batch:b": "changed", "batch:old": "after"}
