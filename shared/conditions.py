"""The condition language shared by routing rules, SLA policies and survey policies.

``{"all": [cond, ...], "any": [cond, ...]}`` with ``cond = {"field", "op", "value"}``; a ticket
matches when every ``all`` condition holds and, if ``any`` is not empty, at least one of it does.
``field`` is a dotted path into the ticket (``requester.tier``, ``custom_fields.plan``).

Text comparisons (``eq ne in not_in contains``) ignore case, as helpdesk agents expect;
``matches`` is a regular expression taken as written (``(?i)`` makes it ignore case). ``gte`` / ``lte`` order priorities
(low < normal < high < urgent) and tiers (standard < premium < vip) by rank, numbers by value.
Conditions are validated when saved (unknown field, bad regex, wrong value type → 422), so a
saved rule can never fail at routing time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Op = Literal["eq", "ne", "in", "not_in", "contains", "matches", "gte", "lte"]

RANKS: dict[str, dict[str, int]] = {
    "priority": {"low": 0, "normal": 1, "high": 2, "urgent": 3},
    "requester.tier": {"standard": 0, "premium": 1, "vip": 2},
}

# Fields every policy can see; services may add their own (e.g. survey's ``assignee_id``).
TICKET_FIELDS = frozenset(
    {
        "source",
        "subject",
        "description",
        "status",
        "priority",
        "channel",
        "tags",
        "group",
        "assignee_id",
        "requester.id",
        "requester.email",
        "requester.name",
        "requester.tier",
    }
)
OPEN_PREFIXES = ("custom_fields.",)
MAX_REGEX_LENGTH = 500

_MISSING = object()


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(min_length=1, max_length=200)
    op: Op
    value: Any = None

    @model_validator(mode="after")
    def _check_value(self) -> Condition:
        if self.op in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"{self.op} needs a non-empty list value")
        elif self.op == "matches":
            if not isinstance(self.value, str) or len(self.value) > MAX_REGEX_LENGTH:
                raise ValueError(
                    f"matches needs a regex string of at most {MAX_REGEX_LENGTH} chars"
                )
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"invalid regex {self.value!r}: {exc}") from exc
        elif self.op in ("gte", "lte"):
            ranks = RANKS.get(self.field)
            if ranks is not None:
                if self.value not in ranks:
                    raise ValueError(f"{self.field} {self.op} needs one of {sorted(ranks)}")
            elif isinstance(self.value, bool) or not isinstance(self.value, int | float | str):
                raise ValueError(f"{self.op} needs a number or a string")
        elif self.op == "contains" and (
            not isinstance(self.value, str | int | float) or isinstance(self.value, bool)
        ):
            raise ValueError("contains needs a string or a number")
        return self


class Conditions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    all: list[Condition] = Field(default_factory=list, max_length=100)
    any: list[Condition] = Field(default_factory=list, max_length=100)

    def fields(self) -> Iterable[str]:
        for condition in (*self.all, *self.any):
            yield condition.field


def unknown_fields(conditions: Conditions, allowed: Iterable[str] = TICKET_FIELDS) -> list[str]:
    """The fields a set of conditions uses that no ticket has (for a 422 at save time)."""
    allowed_set = set(allowed)
    return [
        field
        for field in conditions.fields()
        if field not in allowed_set and not field.startswith(OPEN_PREFIXES)
    ]


def resolve(document: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or ``_MISSING``."""
    current: Any = document
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            return _MISSING
    return current


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _equals(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list):
        return any(_fold(item) == _fold(expected) for item in actual)
    return _fold(actual) == _fold(expected)


def _compare(field: str, actual: Any, expected: Any) -> int | None:
    """-1/0/1 comparing actual to expected, or None when they cannot be ordered."""
    ranks = RANKS.get(field)
    a: Any
    b: Any
    if ranks is not None:
        if actual not in ranks or expected not in ranks:
            return None
        a, b = ranks[actual], ranks[expected]
    elif (isinstance(actual, int | float) and isinstance(expected, int | float)) or (
        isinstance(actual, str) and isinstance(expected, str)
    ):
        a, b = actual, expected
    else:
        return None
    return (a > b) - (a < b)


def condition_holds(condition: Condition, document: Mapping[str, Any]) -> bool:
    actual = resolve(document, condition.field)
    op, expected = condition.op, condition.value
    if actual is _MISSING or actual is None:
        # A missing field equals nothing; "ne" and "not_in" therefore hold.
        return op in ("ne", "not_in")
    if op == "eq":
        return _equals(actual, expected)
    if op == "ne":
        return not _equals(actual, expected)
    if op == "in":
        return any(_equals(actual, option) for option in expected)
    if op == "not_in":
        return not any(_equals(actual, option) for option in expected)
    if op == "contains":
        if isinstance(actual, list):
            return _equals(actual, expected)
        return str(expected).casefold() in str(actual).casefold()
    if op == "matches":
        texts = actual if isinstance(actual, list) else [actual]
        return any(_regex(expected).search(str(text)) is not None for text in texts)
    order = _compare(condition.field, actual, expected)
    if order is None:
        return False
    return order >= 0 if op == "gte" else order <= 0


def matches(conditions: Conditions, document: Mapping[str, Any]) -> bool:
    """Whether a ticket (as a plain dict) satisfies the conditions."""
    if not all(condition_holds(c, document) for c in conditions.all):
        return False
    return not conditions.any or any(condition_holds(c, document) for c in conditions.any)
