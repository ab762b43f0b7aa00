"""Satisfaction reports: surveys grouped by agent, group or channel, scored by ``scoring``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from services.survey import scoring
from services.survey.models import Survey
from services.survey.schemas import SatisfactionRow

GROUP_COLUMNS = {"agent": "assignee_id", "group": "group", "channel": "channel"}


def satisfaction_rows(surveys: Iterable[Survey], group_by: str | None) -> list[SatisfactionRow]:
    """One row per (group, kind); the agent and group are those of the ticket when solved."""
    buckets: dict[tuple[str | None, str], list[Survey]] = defaultdict(list)
    for survey in surveys:
        key = getattr(survey, GROUP_COLUMNS[group_by]) if group_by else None
        buckets[(key, survey.kind)].append(survey)
    rows = []
    for (key, kind), members in sorted(buckets.items(), key=lambda i: (i[0][0] or "", i[0][1])):
        scores = [s.score for s in members if s.status == "answered" and s.score is not None]
        row = SatisfactionRow(
            group=key,
            kind=kind,
            sent=len(members),
            answered=len(scores),
            response_rate=scoring.response_rate(len(scores), len(members)),
            average_score=scoring.average(scores),
        )
        if kind == "csat":
            row.csat_percent = scoring.csat_percent(scores)
        elif kind == "nps":
            row.nps = scoring.nps(scores)
            row.promoters = sum(1 for s in scores if s >= 9)
            row.passives = sum(1 for s in scores if 7 <= s <= 8)
            row.detractors = sum(1 for s in scores if s <= 6)
        else:
            row.ces_percent = scoring.ces_percent(scores)
        rows.append(row)
    return rows
