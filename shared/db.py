"""Database helpers shared by the services: metadata per schema, UTC datetimes, engines.

Each service owns one schema (``router``, ``sla``, ``survey``). On PostgreSQL that is a real
schema; on SQLite (the embedded default) each service gets its own file and the schema name is
translated away, so the same models and queries run on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import asyncpg
import orjson
from sqlalchemy import (
    ARRAY,
    JSON,
    DateTime,
    MetaData,
    String,
    any_,
    bindparam,
    event,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from shared.faults import is_infrastructure_error
from shared.telemetry import sql_span

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CONNECT_TIMEOUT_SECONDS = 10
# A PostgreSQL engine's pool: connections kept, and opened beyond them under load.
POOL_SIZE = 10
MAX_OVERFLOW = 10

JSONType = JSON().with_variant(JSONB(), "postgresql")


def json_dumps(value: Any) -> str:
    """The JSON columns' serializer: orjson (the standard library's encoder was 2 % of sla's
    CPU under load), with ``json.dumps``'s behaviour where orjson has none (an integer beyond
    64 bits, as a vendor's custom field may hold)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value)


# Both dialects write JSON columns through it (reading stays the standard library's: orjson
# reads an integer beyond 64 bits as a float).
_JSON_CODECS = {"json_serializer": json_dumps}


def make_metadata(schema: str) -> MetaData:
    """A ``MetaData`` for one service's schema, with the constraint naming convention."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC; SQLite's naive values come back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def is_sqlite_url(url: str) -> bool:
    return url.startswith("sqlite")


def service_database_url(url: str, service: str) -> str:
    """The URL a service connects to: on SQLite, a file of its own beside the given one."""
    if not is_sqlite_url(url):
        return url
    parsed = make_url(url)
    database = parsed.database or ""
    if database in ("", ":memory:"):
        raise ValueError("SQLite needs a file path: in-memory databases are not shared")
    path = Path(database)
    own = path.with_name(f"{path.stem}-{service}{path.suffix or '.db'}")
    return parsed.set(database=str(own)).render_as_string(hide_password=False)


def create_engine(url: str, schema: str, **kwargs: Any) -> AsyncEngine:
    """An engine for one service's schema (see the module docstring for SQLite)."""
    url = service_database_url(url, schema)
    if is_sqlite_url(url):
        database = make_url(url).database
        assert database is not None
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **_JSON_CODECS, **kwargs)
        _configure_sqlite(engine)
        return engine.execution_options(schema_translate_map={schema: None})
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", MAX_OVERFLOW)
    # No pre-ping (a round trip per checkout). A connection the server dropped fails its
    # transaction (a 503 for a request, a retry for a consumer) and SQLAlchemy's disconnect
    # detection (asyncpg: the connection is closed) invalidates the whole pool, so every older
    # connection is replaced on its next checkout; tests/integration/test_postgres_outage.py
    # checks this against a real PostgreSQL restart.
    kwargs.setdefault("pool_recycle", 1800)
    # asyncpg waits 60 s for a connection by default; fail fast while the server is away.
    kwargs.setdefault("connect_args", {"timeout": CONNECT_TIMEOUT_SECONDS})
    return create_async_engine(url, **_JSON_CODECS, **kwargs)


# Execution option of a connection whose transaction only reads (see ``_configure_sqlite``).
READ_ONLY_OPTION = "ticketflow_read_only"


def _configure_sqlite(engine: AsyncEngine) -> None:
    # SQLite allows one writer. Taking the write lock at BEGIN (IMMEDIATE) makes concurrent
    # transactions wait on busy_timeout instead of failing when a reader upgrades to a writer.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A read (an HTTP GET) begins deferred: with WAL it reads its snapshot without waiting
        # for a writer, so a long write never makes a page time out on the lock.
        read = conn.get_execution_options().get(READ_ONLY_OPTION, False)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def dialect_name(session_or_engine: AsyncSession | AsyncEngine) -> str:
    if isinstance(session_or_engine, AsyncSession):
        return session_or_engine.get_bind().dialect.name
    return session_or_engine.dialect.name


def is_postgres(session_or_engine: AsyncSession | AsyncEngine) -> bool:
    return dialect_name(session_or_engine) == "postgresql"


def among(column: Any, name: str, postgres: bool) -> ColumnElement[bool]:
    """``column`` is one of the strings in the list parameter ``name``: ``= ANY(array)`` on
    PostgreSQL, one statement text whatever the list's length (prepared once, where an
    expanded ``IN`` is a new text for each length); an expanding ``IN`` on SQLite."""
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, type_=String, expanding=True))


# ``existing_ids``' statements, by column and dialect.
_EXISTING: dict[tuple[Any, bool], Any] = {}


async def existing_ids(session: AsyncSession, column: Any, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` are values of ``column`` (a key): one statement for all of them, its
    text the same whatever their number (``among``)."""
    wanted = list(ids)
    if not wanted:
        return set()
    key = (column, is_postgres(session))
    query = _EXISTING.get(key)
    if query is None:
        query = _EXISTING[key] = select(column).where(among(column, "ids", key[1]))
    return set((await session.scalars(query, {"ids": wanted})).all())


def insert_ignoring_conflicts(table: Any, dialect_name: str, **values: Any) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` for PostgreSQL and SQLite alike."""
    if dialect_name == "postgresql":
        return postgresql.insert(table).values(**values).on_conflict_do_nothing()
    return sqlite.insert(table).values(**values).on_conflict_do_nothing()


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


T = TypeVar("T")
R = TypeVar("R")


async def read_once(session: AsyncSession, key: str, load: Callable[[], Awaitable[T]]) -> T:
    """``load()``'s result, kept in ``session.info[key]`` for the rest of the session's
    transaction (a consumer batch reads its policies or rules once, not once per event); whoever
    changes that data in the transaction pops ``key``."""
    if key not in session.info:
        session.info[key] = await load()
    value: T = session.info[key]
    return value


# ``session.info`` key of the writes ``queue_at_end`` collects inside ``writes_at_end``.
_AT_END = "ticketflow_writes_at_end"

BatchWrite = Callable[[list[Any]], Awaitable[None]]


@contextlib.asynccontextmanager
async def writes_at_end(session: AsyncSession) -> AsyncIterator[None]:
    """Inside the block, ``queue_at_end`` collects writes nobody reads back in the same
    transaction (an audit row, a "last assigned" time); at its end (not after an error) each
    kind is written once, with every item queued, instead of once per item."""
    if _AT_END in session.info:  # an outer block writes them
        yield
        return
    queued: dict[str, tuple[BatchWrite, list[Any]]] = {}
    session.info[_AT_END] = queued
    try:
        yield
    finally:
        del session.info[_AT_END]
    if queued:
        await session.flush()  # a queued row may refer to one the session holds back
    for write, items in queued.values():
        await write(items)


def queue_at_end(session: AsyncSession, key: str, item: Any, write: BatchWrite) -> bool:
    """Queue ``item`` for ``write`` at the end of the enclosing ``writes_at_end`` (the first
    ``write`` given for ``key`` is the one used); False outside one: write it now yourself."""
    queued: dict[str, tuple[BatchWrite, list[Any]]] | None = session.info.get(_AT_END)
    if queued is None:
        return False
    queued.setdefault(key, (write, []))[1].append(item)
    return True


class DriverPool:
    """asyncpg's own connection pool beside a service's engine, for a hot path that sends one
    fixed statement per request (router's webhook intake).

    The engine stays the way to the database for everything else. On this path SQLAlchemy's
    per-statement work (connection wrapper, compile cache lookup, parameter and result
    processing, greenlet switch) costs more CPU than the statement itself. The statement text
    and its ``$n`` parameters are the caller's, written once. Connections are autocommit, opened
    on first use, kept while the process runs (no churn under load) and replaced after a
    disconnect; released without a reset query (``_keep_session``). ``on_statement`` is called
    for each statement sent (the statement counter).
    """

    def __init__(self, url: str, *, max_size: int, on_statement: Callable[[], None]) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.max_size = max_size
        self.on_statement = on_statement
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool or await self._open()
        async with pool.acquire() as conn:
            yield conn

    async def fetchrow(self, conn: asyncpg.Connection, sql: str, *args: Any) -> Any:
        """``sql``'s first row on ``conn``, counted and (when tracing is on) traced."""
        self.on_statement()
        with sql_span(sql):
            return await conn.fetchrow(sql, *args)

    async def fetch(self, conn: asyncpg.Connection, sql: str, *args: Any) -> list[Any]:
        """``sql``'s rows on ``conn``, counted and (when tracing is on) traced."""
        self.on_statement()
        with sql_span(sql):
            rows: list[Any] = await conn.fetch(sql, *args)
            return rows

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=1,
                    max_size=self.max_size,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                    reset=_keep_session,
                )
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """A released connection keeps its session: a ``DriverPool``'s users send single autocommit
    statements and change no session state (settings, LISTEN, advisory locks), so asyncpg's
    default reset query would be one more round trip per request for nothing. An open
    transaction is still rolled back by the pool before this is called."""


class GroupCommit(Generic[T, R]):
    """Group commit: concurrent callers of ``write`` share statements.

    A call made while no statement is in flight goes at once, in a group of its own (no timer,
    so no added latency when idle). Calls made while one is in flight queue up; when it
    completes, the queued ones go together in the next one, in arrival order: up to
    ``max_group`` of them, and no more than ``max_bytes`` by ``size_of`` (the first always
    goes). ``write_group(items)`` sends one statement for ``items`` and returns one result per
    item, in their order; each caller gets its own result once that statement has returned (on
    an autocommit connection: committed).

    If a group fails with an error of its data (not an outage: ``is_infrastructure_error``), each
    of its items is sent again alone, so that one bad item fails only its own caller. An outage
    fails every caller of the group, as it would have failed each of them alone.

    A group is sent by a task of its own, in the context (``contextvars``) of its first caller,
    so that the statement is counted and traced under that caller's request; a caller cancelled
    while its group is in flight does not cancel the others'. ``on_group`` is told each group's
    size.
    """

    def __init__(
        self,
        write_group: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_group: int,
        max_bytes: int | None = None,
        size_of: Callable[[T], int] = lambda _item: 0,
        on_group: Callable[[int], None] = lambda _size: None,
    ) -> None:
        self.write_group = write_group
        self.max_group = max_group
        self.max_bytes = max_bytes
        self.size_of = size_of
        self.on_group = on_group
        self._queued: deque[_Queued[T, R]] = deque()
        self._in_flight: asyncio.Task[None] | None = None

    async def write(self, item: T) -> R:
        """``item`` written in a group statement; its own result, once that statement returned."""
        result: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        queued = _Queued(item, result)
        self._queued.append(queued)
        if self._in_flight is None:
            self._send_next()
        return await queued.result

    def _send_next(self) -> None:
        group: list[_Queued[T, R]] = []
        size = 0
        while self._queued and len(group) < self.max_group:
            queued = self._queued[0]
            if queued.result.done():  # a caller cancelled while queued is left out
                self._queued.popleft()
                continue
            size += self.size_of(queued.item)
            if group and self.max_bytes is not None and size > self.max_bytes:
                break
            group.append(self._queued.popleft())
        if not group:
            self._in_flight = None
            return
        self._in_flight = asyncio.create_task(self._send(group), context=group[0].context)

    async def _send(self, group: list[_Queued[T, R]]) -> None:
        try:
            self.on_group(len(group))
            try:
                results = await self.write_group([queued.item for queued in group])
            except Exception as exc:
                if len(group) == 1 or is_infrastructure_error(exc):
                    raise
                await self._send_alone(group)
            else:
                for queued, result in zip(group, results, strict=True):
                    queued.answer(result)
        except BaseException as exc:
            for queued in group:
                queued.fail(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._send_next()

    async def _send_alone(self, group: list[_Queued[T, R]]) -> None:
        for number, queued in enumerate(group):
            self.on_group(1)
            try:
                (result,) = await self.write_group([queued.item])
            except Exception as exc:
                if is_infrastructure_error(exc):  # the rest would wait for the outage in turn
                    for rest in group[number:]:
                        rest.fail(exc)
                    return
                queued.fail(exc)
            else:
                queued.answer(result)


class _Queued(Generic[T, R]):
    """One caller of ``GroupCommit.write``: its item, its future result, its context."""

    __slots__ = ("context", "item", "result")

    def __init__(self, item: T, result: asyncio.Future[R]) -> None:
        self.item = item
        self.result = result
        self.context = contextvars.copy_context()

    def answer(self, result: R) -> None:
        if not self.result.done():
            self.result.set_result(result)

    def fail(self, exc: BaseException) -> None:
        if not self.result.done():
            if isinstance(exc, asyncio.CancelledError):
                self.result.cancel()
            else:
                self.result.set_exception(exc)
