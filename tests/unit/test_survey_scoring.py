"""Survey scores against hand-computed examples."""

from __future__ import annotations

from services.survey import scoring


def test_nps_with_50_promoters_and_20_detractors_is_30() -> None:
    scores = [10] * 30 + [9] * 20 + [8] * 20 + [7] * 10 + [6] * 10 + [0] * 10
    assert len(scores) == 100
    # 50 % promoters - 20 % detractors
    assert scoring.nps(scores) == 30.0


def test_nps_bounds() -> None:
    assert scoring.nps([10, 9, 9]) == 100.0
    assert scoring.nps([0, 6, 3]) == -100.0
    assert scoring.nps([7, 8]) == 0.0
    assert scoring.nps([]) is None


def test_csat_80_of_100_at_4_or_5_is_80_percent() -> None:
    scores = [5] * 50 + [4] * 30 + [3] * 10 + [2] * 5 + [1] * 5
    assert scoring.csat_percent(scores) == 80.0
    # (250 + 120 + 30 + 10 + 5) / 100
    assert scoring.average(scores) == 4.15


def test_csat_rounds_to_two_decimals() -> None:
    assert scoring.csat_percent([5, 4, 1]) == 66.67
    assert scoring.csat_percent([]) is None


def test_ces_is_share_of_5_to_7() -> None:
    # 3 of 8 answers are 5, 6 or 7
    assert scoring.ces_percent([7, 6, 5, 4, 3, 2, 1, 4]) == 37.5
    assert scoring.average([7, 6, 5, 4, 3, 2, 1, 4]) == 4.0


def test_answers_off_the_scale_are_ignored() -> None:
    assert scoring.csat_percent([5, 0, 6]) == 100.0
    assert scoring.ces_percent([8, 1]) == 0.0


def test_response_rate() -> None:
    assert scoring.response_rate(25, 100) == 25.0
    assert scoring.response_rate(0, 0) is None


def test_low_scores_ask_for_follow_up() -> None:
    assert [s for s in range(1, 6) if scoring.is_low("csat", s)] == [1, 2]
    assert [s for s in range(0, 11) if scoring.is_low("nps", s)] == list(range(7))
    assert [s for s in range(1, 8) if scoring.is_low("ces", s)] == [1, 2, 3]


def test_score_for_dispatches_by_kind() -> None:
    assert scoring.score_for("csat", [5, 1]) == 50.0
    assert scoring.score_for("nps", [10, 0]) == 0.0
    assert scoring.score_for("ces", [7]) == 100.0
