"""Value, projection, ``needed`` and status of a goal's period. Pure functions.

Every metric is reduced to a *quality*: ``100 * (good - bad) / samples`` (``bad`` is non-zero
for NPS detractors only). The goal's value is the quality, except for ``reopen_rate`` where it
is ``100 - quality`` (the share reopened) and the target is the most allowed.

Projection. The samples still to come this period are estimated from the same days of the
previous periods (same weekdays for weeks, same day of the month for months): for each of up to
``HISTORY`` previous periods with data, the samples completed on the rest of today (pro rata)
and on the days after it; the estimate ``R`` is their mean. Without history, the current pace
is extrapolated to the period's end. The remaining samples are assumed to be good at rate ``p``
(and bad at ``q``), the current period's rates shrunk towards the previous periods' with the
weight of ``PRIOR_WEIGHT`` samples. Projected quality = ``(G + R (p - q)) / (n + R)``; the 95 %
interval is ``± 1.96 sd / (n + R)`` with ``sd² = R v + R² v / (n + PRIOR_WEIGHT)`` and
``v = p + q - (p - q)²`` (outcome noise of the remaining samples plus uncertainty of the rate).

``needed``: the quality the remaining ``R`` samples must reach for the period to end on target,
i.e. the % of them that must be good (for NPS, the NPS they must reach; for ``reopen_rate``,
the % that must *not* be reopened). ``None`` when the period is over or nothing more is expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

HISTORY = 4
PRIOR_WEIGHT = 20.0
Z95 = 1.96
EPSILON = 1e-9


@dataclass
class Totals:
    samples: int = 0
    good: int = 0
    bad: int = 0
    value_sum: float = 0.0

    def add(self, other: Totals) -> None:
        self.samples += other.samples
        self.good += other.good
        self.bad += other.bad
        self.value_sum += other.value_sum

    @property
    def quality(self) -> float | None:
        return None if self.samples == 0 else 100.0 * (self.good - self.bad) / self.samples


def lower_is_better(metric: str) -> bool:
    return metric == "reopen_rate"


def quality_bounds(metric: str) -> tuple[float, float]:
    return (-100.0, 100.0) if metric == "nps" else (0.0, 100.0)


def to_value(metric: str, quality: float | None) -> float | None:
    if quality is None:
        return None
    return round(100.0 - quality if lower_is_better(metric) else quality, 2)


def quality_target(metric: str, target: float) -> float:
    return 100.0 - target if lower_is_better(metric) else target


def value_of(metric: str, totals: Totals) -> float | None:
    return to_value(metric, totals.quality)


def is_met(metric: str, quality: float, target: float) -> bool:
    return quality + EPSILON >= quality_target(metric, target)


def expected_remaining(
    day_index: int,
    fraction_left: float,
    length: int,
    history: Sequence[Sequence[int]],
    current_samples: int,
) -> float:
    """Samples still expected: mean over previous periods' same days, else the current pace.

    ``history`` holds, per previous period with data, its sample counts by day offset.
    """
    if history:
        totals = [
            fraction_left * (counts[day_index] if day_index < len(counts) else 0)
            + sum(counts[day_index + 1 :])
            for counts in history
        ]
        return sum(totals) / len(totals)
    elapsed = day_index + (1.0 - fraction_left)
    remaining = max(0.0, length - elapsed)
    if elapsed <= 0:
        return 0.0
    return current_samples * remaining / elapsed


@dataclass(frozen=True)
class Projection:
    value: float | None
    low: float | None
    high: float | None
    needed: float | None


def project(
    metric: str, target: float, current: Totals, prior: Totals, remaining: float
) -> Projection:
    low_q, high_q = quality_bounds(metric)
    n = current.samples
    if n + remaining <= 0:
        return Projection(None, None, None, None)
    p_prior = prior.good / prior.samples if prior.samples else None
    q_prior = prior.bad / prior.samples if prior.samples else None
    if n == 0 and p_prior is None:
        return Projection(None, None, None, None)
    weight = PRIOR_WEIGHT if p_prior is not None else 0.0
    p = (current.good + weight * (p_prior or 0.0)) / (n + weight)
    q = (current.bad + weight * (q_prior or 0.0)) / (n + weight)
    mean = p - q
    variance = max(0.0, p + q - mean * mean)
    sd = math.sqrt(remaining * variance + remaining**2 * variance / (n + PRIOR_WEIGHT))
    total = n + remaining
    center = 100.0 * (current.good - current.bad + remaining * mean) / total
    spread = 100.0 * Z95 * sd / total

    def clip(x: float) -> float:
        return min(high_q, max(low_q, x))

    needed: float | None = None
    if remaining > EPSILON:
        raw = quality_target(metric, target) * total / 100.0 - (current.good - current.bad)
        needed = round(min(max(100.0 * raw / remaining, low_q), 1e6), 2)
    values = [to_value(metric, clip(center - spread)), to_value(metric, clip(center + spread))]
    known = sorted(v for v in values if v is not None)
    return Projection(to_value(metric, clip(center)), known[0], known[-1], needed)


def status_of(
    metric: str, target: float, current: Totals, ended: bool, projection: Projection
) -> str:
    """``no_data``, ``met``/``missed`` once the period is over, else ``on_track``/``at_risk``/
    ``missed`` (the target can no longer be reached with the samples expected)."""
    quality = current.quality
    if quality is None:
        return "no_data"
    if ended:
        return "met" if is_met(metric, quality, target) else "missed"
    _, high_q = quality_bounds(metric)
    if projection.needed is not None and projection.needed > high_q + EPSILON:
        return "missed"
    projected = projection.value
    if projected is None:
        return "on_track" if is_met(metric, quality, target) else "at_risk"
    projected_quality = 100.0 - projected if lower_is_better(metric) else projected
    return "on_track" if is_met(metric, projected_quality, target) else "at_risk"
