"""The ``ticket_samples`` migration moves each ticket's goal samples into one row and back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from shared.db import create_engine
from shared.migrate import alembic_config, upgrade
from tests.conftest import database_of_its_own

BEFORE = "5e0c4b1d9a27"
GOAL = "g-1"
ROWS = [  # goal_samples rows before: two ticket samples of one ticket, one survey sample
    (GOAL, "t-1", "first_response", "2026-11-30", 1, 0, 20.0),
    (GOAL, "t-1", "resolution", "2026-12-01", 0, 0, 9000.0),
    (GOAL, "t-2", "survey:s-1", "2026-12-01", 1, 0, 5.0),
]


async def _sql(url: str, statement: str, **params: Any) -> list[Any]:
    engine = create_engine(url, "sla")
    sqlite = url.startswith("sqlite")
    try:
        async with engine.begin() as connection:
            if sqlite:
                statement = statement.replace("sla.", "")
            result = await connection.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        await engine.dispose()


async def _goal_samples(url: str) -> list[tuple[Any, ...]]:
    rows = await _sql(
        url,
        "SELECT goal_id, ticket_id, key, CAST(day AS VARCHAR(10)), good, bad, value"
        " FROM sla.goal_samples ORDER BY ticket_id, key",
    )
    return [tuple(row) for row in rows]


@pytest.fixture(params=["postgresql", "sqlite"])
async def database(
    request: pytest.FixtureRequest, fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> str:
    return await database_of_its_own(request.param, fresh_database, tmp_path, "sla")


async def test_samples_move_to_one_row_per_ticket_and_back(database: str) -> None:
    config = alembic_config("sla", database)
    await asyncio.to_thread(command.downgrade, config, BEFORE)
    await _sql(
        database,
        "INSERT INTO sla.goals (id, name, metric, scope, target, period_kind, timezone, demo,"
        " created_at, updated_at) VALUES (:id, 'g', 'first_response_time', '{}', 80, 'week',"
        " 'UTC', false, '2026-12-01 00:00:00', '2026-12-01 00:00:00')",
        id=GOAL,
    )
    for row in ROWS:
        await _sql(
            database,
            "INSERT INTO sla.goal_samples (goal_id, ticket_id, key, day, good, bad, value)"
            " VALUES (:g, :t, :k, :d, :good, :bad, :v)",
            g=row[0], t=row[1], k=row[2], d=date.fromisoformat(row[3]), good=row[4], bad=row[5],
            v=row[6],
        )  # fmt: skip

    await asyncio.to_thread(upgrade, "sla", database)

    (sample_set,) = (await _sql(database, "SELECT sample_set FROM sla.goals"))[0]
    assert sample_set == GOAL  # existing goals keep their id as their sample set
    moved = await _sql(database, "SELECT ticket_id, samples FROM sla.ticket_samples")
    assert len(moved) == 1 and moved[0][0] == "t-1"
    samples = moved[0][1]
    if isinstance(samples, str):  # SQLite's JSON as text through a plain text() query
        samples = json.loads(samples)
    assert samples == {
        GOAL: [
            ["first_response", "2026-11-30", 1, 0, 20.0],
            ["resolution", "2026-12-01", 0, 0, 9000.0],
        ]
    }
    assert await _goal_samples(database) == [ROWS[2]]  # survey samples stay rows

    await asyncio.to_thread(command.downgrade, config, BEFORE)
    assert await _goal_samples(database) == ROWS
