"""Cursor pagination: ``?limit=&cursor=`` → ``{"items": [...], "next_cursor": ...}``.

The cursor is an opaque url-safe token holding the sort key of the last item returned.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from shared.errors import Unprocessable
from shared.types import INT32, json_problem

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


Limit = Annotated[int, Query(ge=1, le=500, description="Items per page")]
Cursor = Annotated[
    str | None, Query(max_length=500, description="next_cursor of the previous page")
]


def encode_cursor(*values: Any) -> str:
    raw = json.dumps(list(values), default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """The sort key inside ``cursor``; a 422 naming ``cursor`` if it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unprocessable(
            "cursor: not a cursor returned by this API", details=[{"field": "cursor"}]
        ) from exc
    if not isinstance(values, list) or len(values) != size or not _storable(values):
        raise Unprocessable(
            "cursor: not a cursor returned by this API", details=[{"field": "cursor"}]
        )
    return values


def _storable(values: list[Any]) -> bool:
    """Whether a cursor's values can be compared in a query (no NUL, integers within 32 bits)."""
    if json_problem(values):
        return False
    return all(abs(v) <= INT32 for v in values if isinstance(v, int) and not isinstance(v, bool))
