"""When to try a delivery again, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: ``first * 2**(n-1)`` capped at ``cap``, times a random
    factor in ``[1 - jitter, 1 + jitter]``; give up after ``max_attempts`` attempts.

    The defaults wait about 5 s, 10 s, 20 s, ... 1 h, 1 h: 16 attempts over about 8 hours.
    """

    first_seconds: float = 5.0
    cap_seconds: float = 3600.0
    jitter: float = 0.2
    max_attempts: int = 16

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        base = min(self.cap_seconds, self.first_seconds * 2 ** max(0, attempts - 1))
        factor = 1.0 + (rng or random).uniform(-self.jitter, self.jitter)
        return base * factor

    def gives_up(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: delivered, or an error that may (or may not) pass on retry."""

    status_code: int | None = None
    error: str | None = None
    permanent: bool = False

    @property
    def delivered(self) -> bool:
        return self.error is None


def next_state(
    row: Any, outcome: Outcome, now: datetime, policy: RetryPolicy, rng: random.Random | None = None
) -> None:
    """Record an attempt's outcome on ``row``: delivered, retried later, or given up."""
    row.attempts += 1
    row.last_attempt_at = now
    row.last_status_code = outcome.status_code
    row.last_error = outcome.error[:1000] if outcome.error else None
    if outcome.delivered:
        row.status, row.delivered_at, row.next_attempt_at = "delivered", now, None
    elif outcome.permanent or policy.gives_up(row.attempts):
        row.status, row.next_attempt_at = "failed", None
    else:
        row.next_attempt_at = now + timedelta(seconds=policy.delay(row.attempts, rng))
    entry = {
        "attempt": row.attempts,
        "at": now.isoformat(),
        "status_code": outcome.status_code,
        "error": row.last_error,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
    }
    row.attempt_log = [*(row.attempt_log or []), entry]
