"""The deliverer's pure parts: backoff with jitter, give-up, the attempt log, signatures."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.delivery import (
    Outcome,
    RetryPolicy,
    check_secret,
    next_state,
    signed_headers,
    webhook_body,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()


@dataclass
class Row:
    """The columns ``next_state`` touches, without a database."""

    attempts: int = 0
    status: str = "pending"
    next_attempt_at: datetime | None = NOW
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    attempt_log: list[dict[str, Any]] = field(default_factory=list)


def test_backoff_doubles_from_five_seconds_up_to_an_hour_without_jitter() -> None:
    policy = RetryPolicy(jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == [5.0, 10.0, 20.0, 40.0, 80.0]
    assert policy.delay(11) == 3600.0  # 5 * 2**10 = 5120, capped
    assert policy.delay(15) == 3600.0


@given(attempts=st.integers(min_value=1, max_value=40), seed=st.integers(0, 2**32))
def test_jitter_stays_within_its_band(attempts: int, seed: int) -> None:
    policy = RetryPolicy()
    base = RetryPolicy(jitter=0.0).delay(attempts)
    delay = policy.delay(attempts, random.Random(seed))
    assert base * 0.8 <= delay <= base * 1.2


def test_jitter_spreads_retries_apart() -> None:
    rng = random.Random(7)
    delays = {round(RetryPolicy().delay(3, rng), 6) for _ in range(50)}
    assert len(delays) > 40, "receivers that failed together must not be retried together"


def test_the_default_retry_window_is_hours_not_forever() -> None:
    policy = RetryPolicy(jitter=0.0)
    waits = [policy.delay(n) for n in range(1, policy.max_attempts)]
    assert 6 * 3600 < sum(waits) < 10 * 3600
    assert not policy.gives_up(policy.max_attempts - 1)
    assert policy.gives_up(policy.max_attempts)


def test_failures_are_retried_then_given_up_with_a_log_entry_each() -> None:
    policy = RetryPolicy(max_attempts=3, jitter=0.0)
    row = Row()
    next_state(row, Outcome(status_code=503, error="HTTP 503"), NOW, policy)
    assert row.status == "pending" and row.next_attempt_at == NOW + timedelta(seconds=5)
    later = NOW + timedelta(seconds=5)
    next_state(row, Outcome(error="ConnectError: refused"), later, policy)
    assert row.status == "pending" and row.next_attempt_at == later + timedelta(seconds=10)
    last = later + timedelta(seconds=10)
    next_state(row, Outcome(status_code=500, error="HTTP 500"), last, policy)
    assert row.status == "failed" and row.next_attempt_at is None
    assert row.attempts == 3 and row.last_status_code == 500
    assert [(e["attempt"], e["status_code"], e["error"]) for e in row.attempt_log] == [
        (1, 503, "HTTP 503"),
        (2, None, "ConnectError: refused"),
        (3, 500, "HTTP 500"),
    ]
    assert row.attempt_log[0]["next_attempt_at"] == (NOW + timedelta(seconds=5)).isoformat()
    assert row.attempt_log[-1]["next_attempt_at"] is None


def test_a_permanent_error_gives_up_at_once_and_success_ends_retries() -> None:
    row = Row()
    next_state(row, Outcome(error="InvalidURL", permanent=True), NOW, RetryPolicy())
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 1, None)

    row = Row()
    next_state(row, Outcome(status_code=500, error="HTTP 500"), NOW, RetryPolicy())
    next_state(row, Outcome(status_code=204), NOW + timedelta(seconds=6), RetryPolicy())
    assert row.status == "delivered" and row.delivered_at == NOW + timedelta(seconds=6)
    assert row.next_attempt_at is None and row.last_error is None


def test_signed_headers_verify_with_standardwebhooks() -> None:
    body = webhook_body("sla.breached", {"ticket_id": "api:1"}, NOW)
    now = datetime.now(UTC)
    headers = signed_headers(SECRET, "msg_1", body, now)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert Webhook(SECRET).verify(body, headers) == {
        "type": "sla.breached",
        "timestamp": NOW.isoformat(),
        "data": {"ticket_id": "api:1"},
    }
    other = "whsec_" + base64.b64encode(b"another secret of 24 b").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace("api:1", "api:2"), headers)


@pytest.mark.parametrize("secret", ["not base64!!", "whsec_c2hvcnQ=", "", "whsec_"])
def test_bad_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError):
        check_secret(secret)
    check_secret(SECRET)
