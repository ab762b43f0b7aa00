"""``shared.pagination.paginate`` on both databases: keyset order with ties on the first key,
descending and ascending, filtered; every row exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.survey import repository
from services.survey.models import Survey, SurveyPolicy
from shared.db import create_engine, make_sessionmaker
from shared.migrate import upgrade_all

SURVEY = {
    "kind": "csat",
    "question": "?",
    "status": "scheduled",
    "requester_id": "r",
    "channel": "email",
    "priority": "normal",
}


async def _database(
    backend: str, tmp_path: Path, fresh_database: Callable[[], Awaitable[str]]
) -> str:
    if backend == "postgresql":
        return await fresh_database()
    url = f"sqlite+aiosqlite:///{tmp_path / 'pages.db'}"
    await upgrade_all(url)
    return url


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_paginate_returns_each_row_once_in_order(
    backend: str, tmp_path: Path, fresh_database: Callable[[], Awaitable[str]]
) -> None:
    engine = create_engine(await _database(backend, tmp_path, fresh_database), "survey")
    sessionmaker = make_sessionmaker(engine)
    ticket_id = f"pages-{uuid.uuid4().hex[:8]}"
    start = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    try:
        inserted: list[tuple[datetime, str]] = []
        async with sessionmaker.begin() as session:
            for n in range(11):
                # Three surveys share each creation instant: the id breaks the tie.
                created_at = start + timedelta(seconds=n // 3)
                survey_id = f"s-{uuid.uuid4().hex[:6]}"
                if n != 5:
                    inserted.append((created_at, survey_id))
                other = f"other-{ticket_id}"
                session.add(
                    Survey(
                        id=survey_id,
                        ticket_id=ticket_id if n != 5 else other,
                        policy_id=f"p{n}",
                        created_at=created_at,
                        send_at=created_at,
                        **SURVEY,
                    )
                )
                session.add(
                    SurveyPolicy(
                        id=f"p-{n:02d}",
                        name=f"p{n}",
                        kind="csat",
                        position=n % 2,
                        conditions={},
                        delay_minutes=0,
                        cooldown_days=0,
                        sample_rate=1.0,
                        expires_after_hours=1,
                        question="?",
                        delivery={},
                        created_at=start,
                        updated_at=start,
                    )
                )
        async with sessionmaker() as session:
            everything = await repository.page_surveys(
                session, ticket_id=ticket_id, status=None, limit=100, cursor=None
            )
            expected = [survey_id for _, survey_id in sorted(inserted, reverse=True)]
            assert len(expected) == 10
            assert [s.id for s in everything.rows] == expected
            assert everything.next_cursor is None
            for limit in (1, 2, 3, 4):
                seen: list[str] = []
                cursor: str | None = None
                while True:
                    page = await repository.page_surveys(
                        session, ticket_id=ticket_id, status=None, limit=limit, cursor=cursor
                    )
                    seen.extend(s.id for s in page.rows)
                    cursor = page.next_cursor
                    if cursor is None:
                        break
                assert seen == expected, limit

            policies: list[str] = []
            cursor = None
            while True:
                policy_page = await repository.page_policies(session, limit=3, cursor=cursor)
                policies.extend(p.id for p in policy_page.rows)
                cursor = policy_page.next_cursor
                if cursor is None:
                    break
            by_position = [f"p-{n:02d}" for n in range(0, 11, 2)]
            by_position += [f"p-{n:02d}" for n in range(1, 11, 2)]
            assert policies == by_position
    finally:
        await engine.dispose()
