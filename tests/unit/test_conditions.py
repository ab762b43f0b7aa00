"""The shared condition language."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.conditions import Condition, Conditions, matches, unknown_fields

TICKET: dict[str, Any] = {
    "subject": "Refund for INVOICE 42",
    "channel": "email",
    "priority": "high",
    "tags": ["billing", "VIP"],
    "requester": {"tier": "premium", "email": "a@b.example"},
    "custom_fields": {"plan": "enterprise", "seats": 40},
}


def cond(field: str, op: str, value: Any) -> Conditions:
    return Conditions(all=[Condition(field=field, op=op, value=value)])


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("channel", "eq", "EMAIL", True),
        ("channel", "ne", "chat", True),
        ("channel", "in", ["chat", "email"], True),
        ("channel", "not_in", ["chat", "email"], False),
        ("tags", "contains", "vip", True),
        ("tags", "eq", "billing", True),
        ("subject", "contains", "invoice", True),
        ("subject", "matches", r"(?i)refund|chargeback", True),
        ("subject", "matches", r"^chargeback", False),
        ("priority", "gte", "high", True),
        ("priority", "gte", "urgent", False),
        ("requester.tier", "lte", "premium", True),
        ("custom_fields.seats", "gte", 40, True),
        ("custom_fields.seats", "lte", 10, False),
        ("custom_fields.missing", "eq", "x", False),
        ("custom_fields.missing", "ne", "x", True),
    ],
)
def test_operators(field: str, op: str, value: Any, expected: bool) -> None:
    assert matches(cond(field, op, value), TICKET) is expected


def test_all_and_any() -> None:
    conditions = Conditions(
        all=[Condition(field="channel", op="eq", value="email")],
        any=[
            Condition(field="priority", op="eq", value="urgent"),
            Condition(field="tags", op="contains", value="billing"),
        ],
    )
    assert matches(conditions, TICKET)
    assert not matches(conditions, {**TICKET, "tags": []})
    assert matches(Conditions(), TICKET), "no conditions match every ticket"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"field": "subject", "op": "matches", "value": "(unclosed"}, "invalid regex"),
        ({"field": "channel", "op": "in", "value": "email"}, "non-empty list"),
        ({"field": "priority", "op": "gte", "value": "huge"}, "priority gte needs one of"),
        ({"field": "channel", "op": "like", "value": "x"}, "op"),
    ],
)
def test_invalid_conditions_are_rejected_when_saved(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Condition.model_validate(payload)


def test_unknown_fields_are_reported() -> None:
    conditions = Conditions(
        all=[
            Condition(field="requester.tier", op="eq", value="vip"),
            Condition(field="requestor.tier", op="eq", value="vip"),
            Condition(field="custom_fields.anything", op="eq", value=1),
        ]
    )
    assert unknown_fields(conditions) == ["requestor.tier"]


texts = st.text(max_size=20)


@given(value=texts, other=texts)
def test_ne_is_the_negation_of_eq(value: str, other: str) -> None:
    ticket = {"subject": value}
    eq = matches(cond("subject", "eq", other), ticket)
    ne = matches(cond("subject", "ne", other), ticket)
    assert eq != ne


@given(options=st.lists(texts, min_size=1, max_size=5), value=texts)
def test_not_in_is_the_negation_of_in(options: list[str], value: str) -> None:
    ticket = {"channel": value}
    assert matches(cond("channel", "in", options), ticket) != matches(
        cond("channel", "not_in", options), ticket
    )


@given(needle=texts, haystack=texts)
def test_contains_agrees_with_casefolded_substring(needle: str, haystack: str) -> None:
    expected = needle.casefold() in haystack.casefold()
    assert matches(cond("subject", "contains", needle), {"subject": haystack}) is expected
