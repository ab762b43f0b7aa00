"""Models and migrations agree: autogenerate finds no drift, on PostgreSQL and on SQLite."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import BLANK_SCHEMA, MetaData
from sqlalchemy.engine import Connection

from services.router.models import metadata as router_metadata
from services.sla.models import metadata as sla_metadata
from services.survey.models import metadata as survey_metadata
from shared.db import create_engine
from shared.migrate import upgrade_all

METADATA = {"router": router_metadata, "sla": sla_metadata, "survey": survey_metadata}


def _diff(connection: Connection, service: str, metadata: MetaData, sqlite: bool) -> list[Any]:
    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        return name in (service, None) if type_ == "schema" else True

    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": not sqlite,
            "include_name": include_name,
            "compare_type": True,
            "version_table_schema": None if sqlite else service,
        },
    )
    return list(compare_metadata(context, metadata))


@pytest.mark.parametrize("service", sorted(METADATA))
async def test_no_drift_on_postgres(postgres_url: str, service: str) -> None:
    engine = create_engine(postgres_url, service)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(_diff, service, METADATA[service], False)
    finally:
        await engine.dispose()
    assert diff == [], f"{service}: models and migrations differ: {diff}"


async def test_no_drift_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'drift.db'}"
    await upgrade_all(url)
    for service, metadata in METADATA.items():
        # On SQLite the schema is translated away: compare with schema-less copies.
        plain = MetaData(naming_convention=metadata.naming_convention)
        for table in metadata.sorted_tables:
            # None and BLANK_SCHEMA are documented values that SQLAlchemy's stubs leave out.
            table.to_metadata(plain, schema=None, referred_schema_fn=lambda *_: BLANK_SCHEMA)  # type: ignore[arg-type]
        engine = create_engine(url, service)
        try:
            async with engine.connect() as connection:
                diff = await connection.run_sync(_diff, service, plain, True)
        finally:
            await engine.dispose()
        assert _without_renamed_indexes(diff) == [], f"{service}: differs on SQLite: {diff}"


def _without_renamed_indexes(diff: list[Any]) -> list[Any]:
    """Drop remove/add pairs of the same index under another name: the naming convention's
    ``column_0_label`` includes the schema, which the schema-less copy does not have."""

    def shape(index: Any) -> tuple[str, tuple[str, ...], bool]:
        return (index.table.name, tuple(c.name for c in index.columns), bool(index.unique))

    removed = {shape(entry[1]) for entry in diff if entry[0] == "remove_index"}
    added = {shape(entry[1]) for entry in diff if entry[0] == "add_index"}
    renamed = removed & added
    return [
        entry
        for entry in diff
        if not (entry[0] in ("remove_index", "add_index") and shape(entry[1]) in renamed)
    ]


async def test_migrations_run_twice_without_change(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database()
    await upgrade_all(url)  # already at head: a no-op, not an error
