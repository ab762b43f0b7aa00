"""Constrained input types shared by the services' request models.

What a client sends must fit what the database stores, or the write fails as a 500. So:

- ``StrictInput`` is the base of every request body: unknown fields are refused, and anywhere in
  the body a NUL character (PostgreSQL text and JSONB cannot hold it), a non-finite number
  (JSONB cannot hold NaN or Infinity), a JSON nesting deeper than ``MAX_JSON_DEPTH`` or an
  integer beyond 64 bits is a 422 naming where it is.
- ``WebhookUrl`` is an http(s) URL that still fits ``MAX_URL_LENGTH`` once normalized
  (percent-encoding and punycode can make it several times longer than what was sent).
- ``Int32`` / ``Int64`` and ``FiniteFloat`` bound numbers to their column types.
- ``QueryTime`` is an instant with a UTC offset that is representable in UTC.
- ``Text`` is any string without NUL; give it a ``max_length`` fitting its column at the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    UrlConstraints,
    ValidatorFunctionWrapHandler,
    field_validator,
)

MAX_JSON_DEPTH = 16
MAX_URL_LENGTH = 2000
INT32 = 2**31 - 1
INT64 = 2**63 - 1


def json_problem(value: Any, path: str = "", depth: int = 0) -> str | None:
    """What makes ``value`` unfit to store as text or JSONB, with where it is; None if fit."""
    where = path or "value"
    if depth > MAX_JSON_DEPTH:
        return f"{where}: nested deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, str):
        return f"{where}: must not contain NUL characters" if "\x00" in value else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where}: must be a finite number"
    if isinstance(value, int):
        return None if -INT64 - 1 <= value <= INT64 else f"{where}: integer out of range"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                return f"{where}: keys must not contain NUL characters"
            found = json_problem(item, f"{path}.{key}" if path else str(key), depth + 1)
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = json_problem(item, f"{path}[{index}]" if path else f"[{index}]", depth + 1)
            if found:
                return found
    return None


class StrictInput(BaseModel):
    """Base of request bodies: no unknown fields; nothing the database cannot store.

    Every field is checked after its own validation (so a nested model reports its own fields
    first); the error names the field, and the place inside it for a JSON value.
    """

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="wrap")
    @classmethod
    def _storable(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        validated = handler(value)
        problem = json_problem(value)
        if problem:
            raise ValueError(problem.removeprefix("value: "))
        return validated


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _fits(url: HttpUrl) -> HttpUrl:
    if len(str(url)) > MAX_URL_LENGTH:
        raise ValueError(f"URL is over {MAX_URL_LENGTH} characters once encoded")
    return url


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a UTC offset (RFC 3339)")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("out of range") from exc


Text = Annotated[str, AfterValidator(_no_nul)]
WebhookUrl = Annotated[
    HttpUrl,
    UrlConstraints(max_length=MAX_URL_LENGTH, allowed_schemes=["http", "https"]),
    AfterValidator(_fits),
]
Int32 = Annotated[int, Field(ge=-INT32 - 1, le=INT32)]
Int64 = Annotated[int, Field(ge=-INT64 - 1, le=INT64)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
QueryTime = Annotated[datetime, AfterValidator(_utc)]
