"""Satisfaction scores as the support world defines them. Pure functions over plain data.

- CSAT (1-5): share of 4-5 answers, in percent.
- NPS (0-10): percent of promoters (9-10) minus percent of detractors (0-6), from -100 to 100.
- CES (1-7, 7 = very easy): share of 5-7 answers, in percent.

Every function returns ``None`` when there is nothing to compute from (no answers, nothing sent),
so a report never shows a made-up 0.
"""

from __future__ import annotations

from collections.abc import Sequence

SCALES: dict[str, tuple[int, int]] = {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}
# Answers at or under these scores ask for a follow-up (someone answers every bad rating).
LOW_SCORE_AT_MOST: dict[str, int] = {"csat": 2, "nps": 6, "ces": 3}


def on_scale(kind: str, score: int) -> bool:
    low, high = SCALES[kind]
    return low <= score <= high


def is_low(kind: str, score: int) -> bool:
    return score <= LOW_SCORE_AT_MOST[kind]


def _percent(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(100.0 * part / whole, 2)


def _valid(kind: str, scores: Sequence[int]) -> list[int]:
    return [s for s in scores if on_scale(kind, s)]


def csat_percent(scores: Sequence[int]) -> float | None:
    valid = _valid("csat", scores)
    return _percent(sum(1 for s in valid if s >= 4), len(valid))


def nps(scores: Sequence[int]) -> float | None:
    valid = _valid("nps", scores)
    if not valid:
        return None
    promoters = sum(1 for s in valid if s >= 9)
    detractors = sum(1 for s in valid if s <= 6)
    return round(100.0 * (promoters - detractors) / len(valid), 2)


def ces_percent(scores: Sequence[int]) -> float | None:
    valid = _valid("ces", scores)
    return _percent(sum(1 for s in valid if s >= 5), len(valid))


def average(scores: Sequence[int]) -> float | None:
    return None if not scores else round(sum(scores) / len(scores), 2)


def response_rate(answered: int, sent: int) -> float | None:
    """Answered / sent, in percent."""
    return _percent(answered, sent)


def score_for(kind: str, scores: Sequence[int]) -> float | None:
    """The headline score of a kind: CSAT %, NPS or CES %."""
    if kind == "csat":
        return csat_percent(scores)
    if kind == "nps":
        return nps(scores)
    return ces_percent(scores)
