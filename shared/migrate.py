"""Alembic upgrades for the services' schemas, from the CLI, ``dev`` and tests.

One ``alembic.ini`` with a section per service; each ``migrations/<service>/env.py`` calls
``run_env`` with its metadata. On PostgreSQL the schema is created and holds its own
``alembic_version`` table; on SQLite each service has its own file and the schema is translated away.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from shared.db import create_engine, is_sqlite_url, service_database_url
from shared.settings import SERVICES

ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = ROOT / "alembic.ini"


def alembic_config(service: str, database_url: str) -> Config:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    # From a checkout, alembic.ini is used (so `alembic -n <service> ...` agrees); an installed
    # package carries its migrations as package data and needs no ini file.
    if ALEMBIC_INI.exists():
        config = Config(str(ALEMBIC_INI), ini_section=service)
    else:
        config = Config(ini_section=service)
    config.set_main_option("script_location", str(ROOT / "migrations" / service))
    config.attributes["database_url"] = database_url
    return config


def upgrade(service: str, database_url: str, revision: str = "head") -> None:
    """Upgrade one service's schema (blocking; call from a thread inside an event loop)."""
    command.upgrade(alembic_config(service, database_url), revision)


async def upgrade_all(database_url: str, services: tuple[str, ...] = SERVICES) -> None:
    for service in services:
        await asyncio.to_thread(upgrade, service, database_url)


def run_env(service: str, metadata: MetaData) -> None:
    """The body of ``migrations/<service>/env.py``."""
    config = context.config
    url = config.attributes.get("database_url")
    if url is None:
        from shared.settings import load_settings

        url = load_settings().database_url
    sqlite = is_sqlite_url(url)
    options: dict[str, Any] = {
        "target_metadata": metadata,
        "version_table_schema": None if sqlite else service,
        "include_schemas": not sqlite,
        "include_name": _only_schema(service),
        "compare_type": True,
        "render_as_batch": sqlite,
    }
    if context.is_offline_mode():
        context.configure(url=service_database_url(url, service), literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(service, url, options))


def _only_schema(service: str) -> Any:
    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        if type_ == "schema":
            return name in (service, None)
        return True

    return include_name


async def _run_online(service: str, url: str, options: dict[str, Any]) -> None:
    engine = create_engine(url, service)
    try:
        async with engine.connect() as connection:
            if not is_sqlite_url(url):
                await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{service}"'))
                await connection.commit()
            await connection.run_sync(_migrate, options)
            await connection.commit()
    finally:
        await engine.dispose()


def _migrate(connection: Connection, options: dict[str, Any]) -> None:
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        context.run_migrations()
