"""Fixtures of the integration tests (the shared ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from shared.migrate import upgrade_all


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(params=["sqlite", "postgresql"])
async def either_database(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fresh_database: Callable[[], Awaitable[str]],
) -> str:
    """A new, migrated database of each kind in turn: a SQLite file (the embedded default),
    then a PostgreSQL database of this run."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'either.db'}"
        await upgrade_all(url)
        return url
    return await fresh_database()
