"""Group commit (``shared.db.GroupCommit``): who goes with whom, and what each caller is told.

The statement is a fake here, so the groups are exact; tests/integration/test_intake_group_commit.py
runs the webhook door's real statement on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import pytest

from shared.db import GroupCommit


class FakeStatement:
    """Answers each item with its double, after the test lets the statement complete; an item
    given in ``bad`` fails any statement it is in, with a data error; once ``outage_after``
    statements were sent, the next ones lose their connection."""

    def __init__(self, bad: frozenset[int] = frozenset()) -> None:
        self.bad = bad
        self.groups: list[list[int]] = []
        self.release: asyncio.Event = asyncio.Event()
        self.outage_after: int | None = None

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.groups.append(list(items))
        await self.release.wait()
        if self.outage_after is not None and len(self.groups) > self.outage_after:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")
        if self.bad & set(items):
            raise asyncpg.StringDataRightTruncationError("value too long")
        return [2 * item for item in items]


async def settle() -> None:
    """Let the event loop run the calls started so far up to their first wait."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_an_idle_call_goes_alone_and_calls_in_flight_share_the_next_statement() -> None:
    statement = FakeStatement()
    writes = GroupCommit(statement, max_group=64)
    first = asyncio.ensure_future(writes.write(1))
    await settle()
    assert statement.groups == [[1]]  # at once, without waiting for company
    queued = [asyncio.ensure_future(writes.write(n)) for n in range(2, 7)]
    await settle()
    assert statement.groups == [[1]]  # they wait for the statement in flight
    statement.release.set()
    assert await asyncio.gather(first, *queued) == [2, 4, 6, 8, 10, 12]
    assert statement.groups == [[1], [2, 3, 4, 5, 6]]


async def test_a_group_is_bounded_and_keeps_arrival_order() -> None:
    statement = FakeStatement()
    sizes: list[int] = []
    writes = GroupCommit(statement, max_group=3, on_group=sizes.append)
    calls = [asyncio.ensure_future(writes.write(n)) for n in range(1, 9)]
    await settle()
    statement.release.set()
    assert await asyncio.gather(*calls) == [2 * n for n in range(1, 9)]
    assert statement.groups == [[1], [2, 3, 4], [5, 6, 7], [8]]
    assert sizes == [1, 3, 3, 1]


async def test_a_group_is_bounded_by_bytes_and_a_big_item_still_goes() -> None:
    statement = FakeStatement()
    writes = GroupCommit(statement, max_group=64, max_bytes=10, size_of=lambda item: item)
    calls = [asyncio.ensure_future(writes.write(n)) for n in (1, 4, 5, 2, 30, 3)]
    await settle()
    statement.release.set()
    assert await asyncio.gather(*calls) == [2, 8, 10, 4, 60, 6]
    assert statement.groups == [[1], [4, 5], [2], [30], [3]]


async def test_a_data_error_is_retried_alone_and_fails_only_its_own_call() -> None:
    statement = FakeStatement(bad=frozenset({4}))
    writes = GroupCommit(statement, max_group=64)
    calls = [asyncio.ensure_future(writes.write(n)) for n in range(1, 6)]
    await settle()
    statement.release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[:3] == [2, 4, 6] and results[4] == 10
    assert isinstance(results[3], asyncpg.StringDataRightTruncationError)
    assert statement.groups == [[1], [2, 3, 4, 5], [2], [3], [4], [5]]


async def test_an_outage_fails_every_call_of_the_group_and_the_next_group_goes() -> None:
    statement = FakeStatement()
    writes = GroupCommit(statement, max_group=64)
    calls = [asyncio.ensure_future(writes.write(n)) for n in range(1, 4)]
    await settle()
    statement.outage_after = 0
    statement.release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, asyncpg.ConnectionDoesNotExistError) for r in results)
    assert statement.groups == [[1], [2, 3]]  # not retried one by one: each would fail alike
    statement.outage_after = None
    assert await writes.write(7) == 14  # the door works again once the database is back


async def test_a_cancelled_caller_leaves_the_others_their_answers() -> None:
    statement = FakeStatement()
    writes = GroupCommit(statement, max_group=64)
    leader = asyncio.ensure_future(writes.write(1))
    waiting = asyncio.ensure_future(writes.write(2))
    later = asyncio.ensure_future(writes.write(3))
    await settle()
    leader.cancel()  # its statement is in flight: it still answers the rest of its group
    waiting.cancel()  # queued: left out of the next group
    statement.release.set()
    assert await later == 6
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert statement.groups == [[1], [3]]


async def test_an_outage_while_retrying_alone_fails_the_rest_without_trying_them() -> None:
    statement = FakeStatement(bad=frozenset({3}))
    writes = GroupCommit(statement, max_group=64)
    statement.outage_after = 2  # [1], then [2, 3, 4] fails on 3's data; then the outage
    calls = [asyncio.ensure_future(writes.write(n)) for n in range(1, 5)]
    await settle()
    statement.release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[0] == 2
    assert all(isinstance(r, asyncpg.ConnectionDoesNotExistError) for r in results[1:])
    assert statement.groups == [[1], [2, 3, 4], [2]]
