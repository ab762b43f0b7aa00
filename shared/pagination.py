"""Keyset pagination: ``?limit=&cursor=`` → ``{"items": [...], "next_cursor": ...}``.

Every list endpoint pages the same way: its repository builds the filtered ``select`` and hands
it to ``paginate`` with the columns it is ordered by (the last one unique, usually the id). The
cursor is an opaque url-safe token holding the sort key of the last item returned, so a page
starts right after it: no item is skipped or repeated while the list does not change, however
many rows are inserted before it. A cursor that is not one of ours is a 400 naming ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, literal, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from shared.errors import DomainError
from shared.types import INT32, json_problem

T = TypeVar("T")
R = TypeVar("R")

MAX_CURSOR_LENGTH = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


Limit = Annotated[int, Query(ge=1, le=500, description="Items per page")]
# No max_length here: a cursor too long is one of the bad cursors ``decode_cursor`` answers 400.
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]


class BadCursor(DomainError):
    """A 400 naming ``cursor``: the token was not returned by this list."""

    status_code = 400
    code = "bad_request"

    def __init__(self) -> None:
        message = "not a cursor returned by this list"
        super().__init__(f"cursor: {message}", details=[{"field": "cursor", "message": message}])


def encode_cursor(*values: Any) -> str:
    """The opaque token of a sort key (datetimes as RFC 3339)."""
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = json.dumps(plain, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _python_type(column: InstrumentedAttribute[Any]) -> type:
    sql_type = column.type
    impl = getattr(sql_type, "impl_instance", sql_type)  # a TypeDecorator's stored type
    return impl.python_type


def _value(kind: type, value: Any) -> Any:
    if kind is datetime and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive datetime")
        return parsed
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    raise ValueError(f"{value!r} is not a {kind.__name__}")


def decode_cursor(cursor: str, keys: Sequence[InstrumentedAttribute[Any]]) -> list[Any]:
    """The sort key inside ``cursor``, typed like ``keys``; ``BadCursor`` if it is not ours."""
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(keys) or not _storable(values):
            raise ValueError("not a sort key")
        return [_value(_python_type(key), value) for key, value in zip(keys, values, strict=True)]
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error) as exc:
        raise BadCursor() from exc


def _storable(values: list[Any]) -> bool:
    """Whether a cursor's values can be compared in a query (no NUL, integers within 32 bits)."""
    if json_problem(values):
        return False
    return all(abs(v) <= INT32 for v in values if isinstance(v, int) and not isinstance(v, bool))


@dataclass(frozen=True)
class Slice(Generic[R]):
    """One page of rows and the cursor of the next page (None on the last)."""

    rows: list[R]
    next_cursor: str | None

    def page(self, read: Callable[[R], T]) -> Page[T]:
        """The response: each row shaped by ``read``."""
        return Page(items=[read(row) for row in self.rows], next_cursor=self.next_cursor)


async def paginate(
    session: AsyncSession,
    statement: Select[R],
    *,
    keys: Sequence[InstrumentedAttribute[Any]],
    limit: int,
    cursor: str | None,
    descending: bool = False,
) -> Slice[R]:
    """One page of ``statement``'s rows ordered by ``keys`` (ascending, or all descending),
    starting after the row ``cursor`` points at (an empty cursor is the first page). The last
    key must be unique."""
    if cursor:
        after = decode_cursor(cursor, keys)
        row_key = tuple_(*keys)
        bound = tuple_(*(literal(v, type_=k.type) for k, v in zip(keys, after, strict=True)))
        statement = statement.where(row_key < bound if descending else row_key > bound)
    order = [key.desc() for key in keys] if descending else list(keys)
    result = await session.execute(statement.order_by(*order).limit(limit + 1))
    rows = list(result.scalars().all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(*(getattr(rows[-1], key.key) for key in keys))
    return Slice(rows, next_cursor)
