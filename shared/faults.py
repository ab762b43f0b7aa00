"""Telling an outage from a bug.

An *infrastructure* error means a dependency is down or unreachable right now (the database
refused or lost the connection, a timeout, SQLite's write lock, the broker unreachable): the
work itself is fine and succeeds once the dependency is back. Everything else is the work's own
failure (bad data, a bug). The difference decides what happens next: an HTTP request answers
503 with ``Retry-After`` instead of 500, and a consumer waits and retries a message for as long
as the outage lasts instead of dead-lettering it.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterator
from typing import Literal

import asyncpg
from aiokafka import errors as kafka_errors
from sqlalchemy import exc as sa_exc

Dependency = Literal["database", "bus"]

# PostgreSQL SQLSTATE classes and codes that say "try again later", not "your request is wrong".
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57P")  # connection, resources, operator intervention
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock n/a
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ETIMEDOUT,
    errno.EPIPE,
}
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "unable to open database")


class DependencyUnavailable(Exception):
    """Raised where code itself finds a dependency down (e.g. a publish with the bus stopped)."""

    def __init__(self, dependency: Dependency, message: str) -> None:
        super().__init__(message)
        self.dependency = dependency


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what SQLAlchemy wraps (``orig``), and its explicit causes."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        # Only explicit causes: an error raised while handling an outage is still its own.
        todo.extend([orig if isinstance(orig, BaseException) else None, current.__cause__])


def _classify_one(exc: BaseException) -> Dependency | None:
    if isinstance(exc, DependencyUnavailable):
        return exc.dependency
    if isinstance(exc, kafka_errors.KafkaError):
        # aiokafka marks what a retry may fix (connection, timeouts, leader/coordinator moves).
        if exc.retriable or isinstance(
            exc, kafka_errors.KafkaConnectionError | kafka_errors.KafkaTimeoutError
        ):
            return "bus"
        return None
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return "database"
        message = str(exc.orig or exc).lower()
        if any(text in message for text in _SQLITE_TRANSIENT):
            return "database"
        return None
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return "database"  # pool checkout timed out / connection found dead
    if isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.InterfaceError,
    ):
        return "database"
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = str(getattr(exc, "sqlstate", "") or "")
        if sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith(_TRANSIENT_SQLSTATE_CLASSES):
            return "database"
        return None
    if isinstance(exc, ConnectionError | TimeoutError | asyncio.TimeoutError):
        return "database"
    if isinstance(exc, socket.gaierror) or (
        isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS
    ):
        return "database"  # e.g. EHOSTUNREACH, ENETUNREACH raised while connecting
    return None


def unavailable_dependency(exc: BaseException) -> Dependency | None:
    """Which dependency is down if ``exc`` is an infrastructure error, else None.

    Looks through SQLAlchemy's wrapper and the exception's causes, so a driver error re-raised
    by a repository still counts. A bare connection error or timeout counts as the database's,
    unless something in the chain names the bus.
    """
    found: Dependency | None = None
    for item in _chain(exc):
        dependency = _classify_one(item)
        if dependency == "bus" or (dependency is not None and found is None):
            found = dependency
        if found == "bus":
            break
    return found


def is_infrastructure_error(exc: BaseException) -> bool:
    """True when ``exc`` means a dependency is down: retry later, never blame the input."""
    return unavailable_dependency(exc) is not None
