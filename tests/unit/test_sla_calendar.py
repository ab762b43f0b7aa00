"""Business-time arithmetic: properties (hypothesis) and hand-checked cases across DST and holidays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.sla.calendar import (
    BusinessCalendar,
    CalendarError,
    add_business_seconds,
    business_seconds_between,
    is_open,
    parse_calendar,
)

LONDON = parse_calendar(
    "Europe/London",
    {day: [["09:00", "12:00"], ["13:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    ["2026-12-25", "2026-12-28", "2027-01-01", "2026-03-30"],
)
NEW_YORK = parse_calendar(
    "America/New_York",
    {
        "mon": [["00:00", "03:00"], ["08:00", "20:00"]],
        "tue": [["01:30", "02:30"], ["08:00", "20:00"]],
        "sun": [["00:00", "24:00"]],
    },
    ["2026-11-26"],
)
# Opens through the small hours, where the clocks change.
LONDON_NIGHT = parse_calendar(
    "Europe/London", {"sun": [["00:30", "03:30"]], "sat": [["22:00", "24:00"]]}, []
)
CALENDARS = [None, LONDON, NEW_YORK, LONDON_NIGHT]

# Instants around the 2026 DST switches (London 29 Mar / 25 Oct, New York 8 Mar / 1 Nov) and
# the holidays, plus anywhere in 2026-2027.
switches = [
    datetime(2026, 3, 7, tzinfo=UTC),
    datetime(2026, 3, 28, tzinfo=UTC),
    datetime(2026, 10, 24, tzinfo=UTC),
    datetime(2026, 10, 31, tzinfo=UTC),
    datetime(2026, 12, 23, tzinfo=UTC),
]
instants = st.one_of(
    st.builds(
        lambda base, offset: base + timedelta(seconds=offset),
        st.sampled_from(switches),
        st.integers(min_value=0, max_value=4 * 86400),
    ),
    st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
)
durations = st.integers(min_value=0, max_value=30 * 86400).map(float) | st.floats(
    min_value=0, max_value=5 * 86400, allow_nan=False
).map(lambda s: round(s, 6))
calendars = st.sampled_from(CALENDARS)


@settings(max_examples=300, deadline=None)
@given(calendars, instants, durations, durations)
def test_adding_is_monotone(
    calendar: BusinessCalendar | None, start: datetime, a: float, b: float
) -> None:
    low, high = sorted((a, b))
    assert add_business_seconds(calendar, start, low) <= add_business_seconds(calendar, start, high)


@settings(max_examples=300, deadline=None)
@given(calendars, instants, durations, durations)
def test_adding_composes(
    calendar: BusinessCalendar | None, start: datetime, a: float, b: float
) -> None:
    via = add_business_seconds(calendar, add_business_seconds(calendar, start, a), b)
    assert via == add_business_seconds(calendar, start, a + b)


@settings(max_examples=300, deadline=None)
@given(calendars, instants, durations)
def test_between_inverts_adding(
    calendar: BusinessCalendar | None, start: datetime, seconds: float
) -> None:
    end = add_business_seconds(calendar, start, seconds)
    assert business_seconds_between(calendar, start, end) == pytest.approx(seconds, abs=1e-6)
    assert business_seconds_between(calendar, end, start) == pytest.approx(-seconds, abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(calendars, instants, durations.filter(lambda s: s >= 1e-6))
def test_a_deadline_never_falls_in_closed_hours(
    calendar: BusinessCalendar | None, start: datetime, seconds: float
) -> None:
    assert is_open(calendar, add_business_seconds(calendar, start, seconds))


@settings(max_examples=200, deadline=None)
@given(calendars, instants, instants)
def test_between_is_additive_and_bounded_by_elapsed_time(
    calendar: BusinessCalendar | None, a: datetime, b: datetime
) -> None:
    low, high = sorted((a, b))
    middle = low + (high - low) / 2
    whole = business_seconds_between(calendar, low, high)
    parts = business_seconds_between(calendar, low, middle) + business_seconds_between(
        calendar, middle, high
    )
    assert whole == pytest.approx(parts, abs=1e-5)
    assert 0 <= whole <= (high - low).total_seconds() + 1e-6


def london(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo("Europe/London"))


def test_after_hours_clock_starts_when_the_calendar_opens() -> None:
    friday_evening = london(2026, 11, 20, 18, 30)
    # 4 business hours: Monday 09:00-12:00 then 13:00-14:00.
    assert add_business_seconds(LONDON, friday_evening, 4 * 3600) == london(2026, 11, 23, 14, 0)


def test_lunch_break_and_exact_close() -> None:
    assert add_business_seconds(LONDON, london(2026, 11, 23, 11, 0), 3600) == london(
        2026, 11, 23, 12, 0
    )
    assert add_business_seconds(LONDON, london(2026, 11, 23, 11, 0), 3601) == london(
        2026, 11, 23, 13, 0, 1
    )


def test_holidays_are_skipped() -> None:
    # Thu 24 Dec 16:00 + 2h: one hour on the 24th, then Fri 25 (holiday), weekend, Mon 28
    # (holiday), so Tue 29 09:00 + 1h.
    assert add_business_seconds(LONDON, london(2026, 12, 24, 16, 0), 7200) == london(
        2026, 12, 29, 10, 0
    )


def test_dst_nights_are_an_hour_shorter_or_longer() -> None:
    # Sun 29 Mar 2026 London: 01:00 -> 02:00; 00:30-03:30 local is 2 real hours.
    spring = london(2026, 3, 29, 0, 0)
    assert business_seconds_between(LONDON_NIGHT, spring, spring + timedelta(hours=6)) == 2 * 3600
    # Sun 25 Oct 2026: 02:00 -> 01:00; the same interval is 4 real hours.
    autumn = london(2026, 10, 25, 0, 0)
    assert business_seconds_between(LONDON_NIGHT, autumn, autumn + timedelta(hours=6)) == 4 * 3600


def test_new_york_thanksgiving_and_dst() -> None:
    ny = ZoneInfo("America/New_York")
    # Thanksgiving Thu 26 Nov 2026 is a holiday but Thursday is closed anyway; Sunday 1 Nov is
    # 25 hours long.
    sunday = datetime(2026, 11, 1, tzinfo=ny)
    monday = datetime(2026, 11, 2, tzinfo=ny)
    assert business_seconds_between(NEW_YORK, sunday, monday) == 25 * 3600
    # Monday 00:00-03:00 follows straight on.
    assert add_business_seconds(NEW_YORK, sunday, 26 * 3600) == datetime(2026, 11, 2, 1, tzinfo=ny)


@pytest.mark.parametrize(
    ("timezone", "hours", "holidays", "field"),
    [
        ("Mars/Olympus", {"mon": [["09:00", "17:00"]]}, [], "timezone"),
        ("UTC", {"monday": [["09:00", "17:00"]]}, [], "hours.monday"),
        ("UTC", {"mon": [["17:00", "09:00"]]}, [], "hours.mon.0"),
        ("UTC", {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}, [], "hours.mon"),
        ("UTC", {"mon": [["09:00", "25:00"]]}, [], "hours.mon.0"),
        ("UTC", {"mon": [["09:00"]]}, [], "hours.mon.0"),
        ("UTC", {}, [], "hours"),
        ("UTC", {"mon": [["09:00", "17:00"]]}, ["2026-13-01"], "holidays.0"),
    ],
)
def test_bad_calendars_name_the_problem(
    timezone: str, hours: dict[str, list[list[str]]], holidays: list[str], field: str
) -> None:
    with pytest.raises(CalendarError) as raised:
        parse_calendar(timezone, hours, holidays)
    assert raised.value.field == field
