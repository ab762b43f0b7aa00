"""The webhook door's group commit on PostgreSQL: concurrent requests share statements, and each
still learns whether its own delivery was new, with its events written once and in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select

from services.router import providers, repository
from services.router.app import create_app
from services.router.intake import door_writes
from services.router.models import WebhookDelivery, outbox
from shared.events import decode
from shared.runtime import ServiceRuntime
from tests.conftest import statements_from, without_consumers
from tests.intake_support import SECRET_SETTINGS, encode, fixture, signed, unique_id, with_ticket

ROUTE = "/v1/webhooks/generic"


@pytest.fixture
async def door(postgres_url: str) -> AsyncIterator[tuple[ServiceRuntime, httpx.AsyncClient]]:
    async with without_consumers(create_app, postgres_url, **SECRET_SETTINGS) as door:
        # These tests read what the door queued in the outbox, which the relay would publish
        # and take off the table.
        await door[0].relay.stop()
        yield door


def generic(external_id: str, subject: str = "Order never arrived") -> dict[str, Any]:
    data = with_ticket("generic", fixture("generic_upsert"), external_id)
    data["data"]["ticket"]["subject"] = subject
    return data


def delivery_with_events(
    runtime: ServiceRuntime, data: dict[str, Any], delivery_key: str, *, ticket_id: str = ""
) -> repository.DeliveryWithEvents:
    """What the door writes for a generic ``data`` with ``delivery_key`` (``ticket_id``, when
    given, replaces the parsed one: a value the column refuses)."""
    parsed = providers.parse_generic(data, delivery_key)
    delivery = repository.Delivery(
        provider="generic",
        delivery_key=delivery_key,
        ticket_ids=[ticket_id] if ticket_id else parsed.ticket_ids,
        event_types=[event.type for event in parsed.events],
        body=encode(data).decode(),
        received_at=datetime.now(UTC),
    )
    return repository.DeliveryWithEvents(
        delivery, [runtime.outbox.row(event) for event in parsed.events]
    )


async def stored(runtime: ServiceRuntime, keys: list[str]) -> dict[str, int]:
    """How many delivery rows each of ``keys`` has."""
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            select(WebhookDelivery.delivery_key, func.count())
            .where(WebhookDelivery.delivery_key.in_(keys))
            .group_by(WebhookDelivery.delivery_key)
        )
    return {key: count for key, count in rows.all()}


async def outbox_subjects(runtime: ServiceRuntime, ticket_ids: list[str]) -> list[str]:
    """The subjects of the events queued for ``ticket_ids``, in outbox order."""
    async with runtime.sessionmaker() as session:
        values = await session.scalars(
            select(outbox.c.value).where(outbox.c.key.in_(ticket_ids)).order_by(outbox.c.id)
        )
        return [decode(value).data["ticket"]["subject"] for value in values]


async def test_concurrent_deliveries_share_statements_and_each_is_written_once(
    door: tuple[ServiceRuntime, httpx.AsyncClient],
) -> None:
    runtime, http = door
    external_ids = [unique_id("G") for _ in range(40)]
    bodies = [encode(generic(external_id)) for external_id in external_ids]
    requests = [(body, signed("generic", body)) for body in bodies]
    before = await statements_from(http, ROUTE)
    answers = await asyncio.gather(
        *(http.post(ROUTE, content=body, headers=headers) for body, headers in requests)
    )
    assert [a.status_code for a in answers] == [202] * 40, answers[0].text
    assert [a.json()["accepted"] for a in answers] == [1] * 40
    statements = await statements_from(http, ROUTE) - before
    assert 1 <= statements < 40  # concurrent requests went together
    keys = [headers["webhook-id"] for _, headers in requests]
    assert await stored(runtime, keys) == dict.fromkeys(keys, 1)
    ticket_ids = [f"acme:{external_id}" for external_id in external_ids]
    async with runtime.sessionmaker() as session:
        queued = await session.scalars(select(outbox.c.key).where(outbox.c.key.in_(ticket_ids)))
        assert sorted(queued.all()) == sorted(ticket_ids)  # one event each, none twice

    # Sent again, all at once: every one is a duplicate and nothing more is written.
    again = await asyncio.gather(
        *(http.post(ROUTE, content=body, headers=headers) for body, headers in requests)
    )
    assert [a.json()["duplicates"] for a in again] == [1] * 40
    assert await stored(runtime, keys) == dict.fromkeys(keys, 1)
    async with runtime.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.key.in_(ticket_ids))
        )
    assert count == 40


async def test_concurrent_duplicates_of_one_key_make_one_new_delivery(
    door: tuple[ServiceRuntime, httpx.AsyncClient],
) -> None:
    runtime, _ = door
    external_id, key = unique_id("D"), unique_id("msg_")
    write = delivery_with_events(runtime, generic(external_id), key)
    # The first goes alone; the other seven queue behind it and share the next statement.
    answers = await asyncio.gather(*(door_writes(runtime).write(write) for _ in range(8)))
    assert sorted(answers) == [False] * 7 + [True]
    assert answers[0] is True  # the first to arrive is the new one
    assert await stored(runtime, [key]) == {key: 1}
    assert len(await outbox_subjects(runtime, [f"acme:{external_id}"])) == 1


async def test_a_group_with_one_key_twice_writes_it_once(
    door: tuple[ServiceRuntime, httpx.AsyncClient],
) -> None:
    """Within one statement the later of two deliveries with the same key is the duplicate,
    and only the earlier one's events are written; a key stored before is a duplicate too."""
    runtime, _ = door
    ids = [unique_id("K") for _ in range(3)]
    keys = [unique_id("msg_") for _ in range(3)]
    pool = runtime.driver_pool
    async with pool.connection() as conn:
        writes = [
            delivery_with_events(runtime, generic(ids[0], "first"), keys[0]),
            delivery_with_events(runtime, generic(ids[0], "same key"), keys[0]),
            delivery_with_events(runtime, generic(ids[1], "other"), keys[1]),
        ]
        answers = await repository.add_webhook_deliveries_with_events(pool, conn, outbox, writes)
        assert answers == [True, False, True]
        stored_before = delivery_with_events(runtime, generic(ids[1], "stored before"), keys[1])
        new = delivery_with_events(runtime, generic(ids[2], "new"), keys[2])
        answers = await repository.add_webhook_deliveries_with_events(
            pool, conn, outbox, [stored_before, new]
        )
        assert answers == [False, True]
    assert await stored(runtime, keys) == dict.fromkeys(keys, 1)
    assert await outbox_subjects(runtime, [f"acme:{i}" for i in ids]) == ["first", "other", "new"]


async def test_a_delivery_the_database_refuses_fails_alone(
    door: tuple[ServiceRuntime, httpx.AsyncClient],
) -> None:
    runtime, _ = door
    ids = [unique_id("B") for _ in range(4)]
    keys = [unique_id("msg_") for _ in range(4)]
    writes = [delivery_with_events(runtime, generic(i), k) for i, k in zip(ids, keys, strict=True)]
    # A ticket id longer than its column: the statement of its group fails as a whole.
    writes[2] = delivery_with_events(runtime, generic(ids[2]), keys[2], ticket_id="x" * 300)
    answers = await asyncio.gather(
        *(door_writes(runtime).write(write) for write in writes), return_exceptions=True
    )
    assert answers[:2] == [True, True] and answers[3] is True
    assert isinstance(answers[2], asyncpg.StringDataRightTruncationError)
    assert await stored(runtime, keys) == {keys[0]: 1, keys[1]: 1, keys[3]: 1}
    subjects = await outbox_subjects(runtime, [f"acme:{i}" for i in ids])
    assert len(subjects) == 3


async def test_the_outbox_follows_the_order_of_arrival_within_a_group(
    door: tuple[ServiceRuntime, httpx.AsyncClient],
) -> None:
    """Several deliveries about one ticket, arriving together: their events are queued in the
    order the requests arrived, so the ticket's events are applied in that order."""
    runtime, _ = door
    external_id = unique_id("O")
    subjects = [f"update {n}" for n in range(10)]
    writes = [
        delivery_with_events(runtime, generic(external_id, subject), unique_id("msg_"))
        for subject in subjects
    ]
    answers = await asyncio.gather(*(door_writes(runtime).write(write) for write in writes))
    assert answers == [True] * 10
    assert await outbox_subjects(runtime, [f"acme:{external_id}"]) == subjects
