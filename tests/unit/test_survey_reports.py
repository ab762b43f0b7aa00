"""Satisfaction report rows from plain surveys, checked by hand."""

from __future__ import annotations

from services.survey.models import Survey
from services.survey.reports import satisfaction_rows


def survey(kind: str, status: str, score: int | None, agent: str, channel: str = "email") -> Survey:
    return Survey(kind=kind, status=status, score=score, assignee_id=agent, channel=channel)


def test_rows_per_agent_and_kind() -> None:
    surveys = [
        survey("csat", "answered", 5, "ann"),
        survey("csat", "answered", 4, "ann"),
        survey("csat", "answered", 1, "ann"),
        survey("csat", "sent", None, "ann"),
        survey("csat", "expired", None, "bob"),
        survey("nps", "answered", 10, "bob"),
        survey("nps", "answered", 8, "bob"),
        survey("nps", "answered", 3, "bob"),
        survey("nps", "answered", 9, "bob"),
    ]
    rows = {(r.group, r.kind): r for r in satisfaction_rows(surveys, "agent")}
    ann = rows[("ann", "csat")]
    assert (ann.sent, ann.answered) == (4, 3)
    assert ann.response_rate == 75.0
    assert ann.csat_percent == 66.67  # 2 of 3 at 4-5
    assert ann.average_score == 3.33
    bob_csat = rows[("bob", "csat")]
    assert bob_csat.answered == 0 and bob_csat.csat_percent is None
    bob_nps = rows[("bob", "nps")]
    # 2 promoters, 1 passive, 1 detractor of 4: 50 - 25
    assert bob_nps.nps == 25.0
    assert (bob_nps.promoters, bob_nps.passives, bob_nps.detractors) == (2, 1, 1)


def test_ungrouped_report_has_one_row_per_kind() -> None:
    surveys = [
        survey("ces", "answered", s, "a", channel) for s, channel in [(7, "chat"), (2, "email")]
    ]
    (row,) = satisfaction_rows(surveys, None)
    assert row.group is None and row.ces_percent == 50.0 and row.average_score == 4.5
    by_channel = {r.group: r.ces_percent for r in satisfaction_rows(surveys, "channel")}
    assert by_channel == {"chat": 100.0, "email": 0.0}
