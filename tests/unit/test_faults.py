"""Telling an outage from a bug (``shared.faults``)."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest
from aiokafka import errors as kafka_errors
from sqlalchemy import exc as sa_exc

from shared.faults import DependencyUnavailable, is_infrastructure_error, unavailable_dependency


def wrapped(
    cls: type[sa_exc.DBAPIError], orig: Exception, *, connection_invalidated: bool = False
) -> sa_exc.DBAPIError:
    try:
        raise cls("SELECT 1", {}, orig, connection_invalidated=connection_invalidated) from orig
    except sa_exc.DBAPIError as exc:
        return exc


def postgres_error(sqlstate: str) -> asyncpg.PostgresError:
    error_class = asyncpg.PostgresError.get_message_class_for_sqlstate(sqlstate)
    return error_class("server says no")


@pytest.mark.parametrize(
    ("error", "dependency"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "database"),
        (TimeoutError(), "database"),
        (OSError(113, "No route to host"), "database"),
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), "database"),
        (asyncpg.CannotConnectNowError("the database system is starting up"), "database"),
        (postgres_error("57P01"), "database"),  # admin shutdown
        (postgres_error("40P01"), "database"),  # deadlock
        (postgres_error("08006"), "database"),  # connection failure
        (
            wrapped(sa_exc.OperationalError, sqlite3.OperationalError("database is locked")),
            "database",
        ),
        (
            wrapped(sa_exc.DBAPIError, Exception("terminated"), connection_invalidated=True),
            "database",
        ),
        (
            wrapped(sa_exc.InterfaceError, ConnectionResetError(104, "reset")),
            "database",
        ),
        (sa_exc.TimeoutError("QueuePool limit reached"), "database"),
        (kafka_errors.KafkaConnectionError("no broker"), "bus"),
        (kafka_errors.KafkaTimeoutError(), "bus"),
        (kafka_errors.NotLeaderForPartitionError(), "bus"),
        (DependencyUnavailable("bus", "stopped"), "bus"),
    ],
)
def test_outages_are_infrastructure_errors(error: Exception, dependency: str) -> None:
    assert unavailable_dependency(error) == dependency


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad data"),
        KeyError("missing"),
        FileNotFoundError(2, "No such file"),
        postgres_error("23505"),  # unique violation
        postgres_error("22001"),  # string too long: the request's fault
        wrapped(sa_exc.IntegrityError, postgres_error("23505")),
        wrapped(sa_exc.OperationalError, sqlite3.OperationalError("no such table: router.x")),
        wrapped(sa_exc.ProgrammingError, Exception("syntax error")),
        kafka_errors.MessageSizeTooLargeError(),
    ],
)
def test_own_failures_are_not(error: Exception) -> None:
    assert not is_infrastructure_error(error)


def test_a_cause_counts_but_an_error_raised_while_handling_one_does_not() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise RuntimeError("repository failed") from exc
    except RuntimeError as caused:
        assert unavailable_dependency(caused) == "database"
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError:
            raise ValueError("a bug in the fallback") from None
    except ValueError as unrelated:
        assert not is_infrastructure_error(unrelated)
