"""Deployment windows (POLICY-FORMATS.md §5.5): open or closed, and exact transitions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy_engine.model.policy import WindowEntrySpec, WindowSpec
from policy_engine.windows import (
    EntryState,
    Window,
    WindowEntry,
    WindowSyntaxError,
    describe_entry,
    entry_active,
    explain_at,
    is_open,
    next_transition,
    parse_window,
    transitions,
    window_from_spec,
)

HORIZON = timedelta(days=90)
MICROSECOND = timedelta(microseconds=1)

BUSINESS_HOURS: dict[str, Any] = {
    "name": "business-hours",
    "timezone": "Europe/Berlin",
    "allow": [
        {"name": "mon-thu", "days": ["Mon", "Tue", "Wed", "Thu"], "between": "09:00-17:00"},
        {"name": "friday-morning", "days": ["Fri"], "between": "09:00-12:00"},
    ],
    "deny": [{"name": "holiday-freeze", "dates": "2026-12-19..2027-01-06"}],
    "source": {"kind": "RolloutSchedule", "namespace": "shop", "name": "hours"},
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def window(
    zone: str, allow: list[dict[str, Any]] | None = None, deny: list[dict[str, Any]] | None = None
) -> Window:
    return parse_window({"name": "w", "timezone": zone, "allow": allow or [], "deny": deny or []})


def between(zone: str, times: str, **constraints: Any) -> Window:
    return window(zone, allow=[{"name": "a", "between": times, **constraints}])


def flips(w: Window, start: str, end: str) -> list[datetime]:
    return list(transitions(w, at(start), at(end)))


# ---------------------------------------------------------------- the business-hours example


def test_business_hours_are_closed_on_saturday_and_next_open_monday_at_nine() -> None:
    w = parse_window(BUSINESS_HOURS)
    saturday = at("2026-03-07T11:00:00+01:00")
    assert not is_open(w, saturday)
    assert next_transition(w, saturday, saturday + HORIZON) == at("2026-03-09T09:00:00+01:00")


def test_next_transition_is_returned_in_utc() -> None:
    w = parse_window(BUSINESS_HOURS)
    found = next_transition(w, at("2026-03-07T11:00:00+01:00"), at("2026-04-01T00:00:00Z"))
    assert found is not None
    assert found.utcoffset() == timedelta(0)
    assert found == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)


def test_business_hours_are_open_on_thursday_afternoon_and_close_at_five() -> None:
    w = parse_window(BUSINESS_HOURS)
    thursday = at("2026-03-05T16:59:59.999999+01:00")
    assert is_open(w, thursday)
    assert next_transition(w, thursday, thursday + HORIZON) == at("2026-03-05T17:00:00+01:00")


def test_business_hours_transitions_across_the_spring_dst_change_keep_local_times() -> None:
    w = parse_window(BUSINESS_HOURS)
    assert flips(w, "2026-03-27T08:00:00+01:00", "2026-03-30T18:00:00+02:00") == [
        at("2026-03-27T09:00:00+01:00"),
        at("2026-03-27T12:00:00+01:00"),
        at("2026-03-30T09:00:00+02:00"),
        at("2026-03-30T17:00:00+02:00"),
    ]


def test_holiday_freeze_denies_inclusive_dates_and_reopens_after_its_last_day() -> None:
    w = parse_window(BUSINESS_HOURS)
    assert not is_open(w, at("2026-12-21T10:00:00+01:00"))
    assert not is_open(w, at("2027-01-06T10:00:00+01:00"))
    assert is_open(w, at("2026-12-18T10:00:00+01:00"))
    start = at("2026-12-18T18:00:00+01:00")
    assert next_transition(w, start, start + HORIZON) == at("2027-01-07T09:00:00+01:00")


def test_window_from_spec_equals_the_parsed_map() -> None:
    spec = WindowSpec(
        name="business-hours",
        timezone="Europe/Berlin",
        allow=(
            WindowEntrySpec(
                name="mon-thu", days=("Mon", "Tue", "Wed", "Thu"), between="09:00-17:00"
            ),
            WindowEntrySpec(name="friday-morning", days=("Fri",), between="09:00-12:00"),
        ),
        deny=(WindowEntrySpec(name="holiday-freeze", dates="2026-12-19..2027-01-06"),),
    )
    assert window_from_spec(spec) == parse_window(BUSINESS_HOURS)


# ---------------------------------------------------------------- DST


def test_a_start_inside_the_spring_forward_gap_opens_at_the_gaps_end() -> None:
    w = between("Europe/Berlin", "02:30-04:00", dates="2026-03-29")
    assert flips(w, "2026-03-28T12:00:00Z", "2026-03-30T00:00:00Z") == [
        at("2026-03-29T03:00:00+02:00"),
        at("2026-03-29T04:00:00+02:00"),
    ]
    assert is_open(w, at("2026-03-29T01:00:00Z"))
    assert not is_open(w, at("2026-03-29T01:00:00Z") - MICROSECOND)


def test_a_window_entirely_inside_the_spring_forward_gap_never_opens_that_day() -> None:
    w = between("Europe/Berlin", "02:10-02:50", dates="2026-03-29")
    start = at("2026-03-28T00:00:00Z")
    assert next_transition(w, start, start + HORIZON) is None


def test_a_repeated_fall_back_hour_is_inside_the_window_on_both_passes() -> None:
    w = between("Europe/Berlin", "02:15-02:45")
    assert flips(w, "2026-10-25T00:00:00+02:00", "2026-10-25T12:00:00+01:00") == [
        at("2026-10-25T02:15:00+02:00"),
        at("2026-10-25T02:45:00+02:00"),
        at("2026-10-25T02:15:00+01:00"),
        at("2026-10-25T02:45:00+01:00"),
    ]


def test_clocks_going_back_close_an_entry_that_spans_the_end_of_the_repeated_hour() -> None:
    w = between("Europe/Berlin", "02:30-03:30")
    assert flips(w, "2026-10-25T00:00:00+02:00", "2026-10-25T12:00:00+01:00") == [
        at("2026-10-25T02:30:00+02:00"),
        at("2026-10-25T03:00:00+02:00"),  # = 02:00+01:00, the clocks go back
        at("2026-10-25T02:30:00+01:00"),
        at("2026-10-25T03:30:00+01:00"),
    ]


def test_new_york_spring_forward_opens_a_gap_start_at_three_am_edt() -> None:
    w = between("America/New_York", "02:30-03:30")
    assert flips(w, "2026-03-08T00:00:00-05:00", "2026-03-08T12:00:00-04:00") == [
        at("2026-03-08T03:00:00-04:00"),
        at("2026-03-08T03:30:00-04:00"),
    ]


def test_lord_howe_half_hour_gap_swallows_a_window_and_delays_another() -> None:
    inside = between("Australia/Lord_Howe", "02:00-02:20", dates="2026-10-04")
    straddling = between("Australia/Lord_Howe", "02:10-03:00", dates="2026-10-04")
    start, end = "2026-10-03T00:00:00Z", "2026-10-05T00:00:00Z"
    assert flips(inside, start, end) == []
    assert flips(straddling, start, end) == [
        at("2026-10-04T02:30:00+11:00"),
        at("2026-10-04T03:00:00+11:00"),
    ]


def test_lord_howe_half_hour_fall_back_repeats_the_window() -> None:
    w = between("Australia/Lord_Howe", "01:40-01:50")
    assert flips(w, "2026-04-04T12:00:00Z", "2026-04-05T12:00:00Z") == [
        at("2026-04-05T01:40:00+11:00"),
        at("2026-04-05T01:50:00+11:00"),
        at("2026-04-05T01:40:00+10:30"),
        at("2026-04-05T01:50:00+10:30"),
    ]


def test_sydney_falls_back_in_april_so_a_southern_window_repeats() -> None:
    w = between("Australia/Sydney", "02:15-02:45")
    assert flips(w, "2026-04-04T12:00:00Z", "2026-04-05T06:00:00Z") == [
        at("2026-04-05T02:15:00+11:00"),
        at("2026-04-05T02:45:00+11:00"),
        at("2026-04-05T02:15:00+10:00"),
        at("2026-04-05T02:45:00+10:00"),
    ]


def test_santiago_midnight_fall_back_keeps_a_saturday_night_window_open_through_both_passes() -> (
    None
):
    w = between("America/Santiago", "23:00-24:00", days=["Sat"])
    assert flips(w, "2026-04-04T12:00:00Z", "2026-04-05T12:00:00Z") == [
        at("2026-04-04T23:00:00-03:00"),
        at("2026-04-05T00:00:00-04:00"),
    ]


def test_santiago_midnight_spring_forward_starts_sunday_at_one_am() -> None:
    w = window("America/Santiago", allow=[{"name": "sunday", "days": ["Sun"]}])
    assert flips(w, "2026-09-05T12:00:00Z", "2026-09-06T12:00:00Z") == [
        at("2026-09-06T01:00:00-03:00"),
    ]


# ---------------------------------------------------------------- semantics


def test_cross_midnight_friday_entry_uses_todays_weekday_only() -> None:
    w = between("UTC", "22:00-06:00", days=["Fri"])
    assert is_open(w, at("2026-03-06T23:00:00Z"))  # Friday 23:00
    assert is_open(w, at("2026-03-06T02:00:00Z"))  # Friday 02:00
    assert not is_open(w, at("2026-03-07T02:00:00Z"))  # Saturday 02:00
    assert not is_open(w, at("2026-03-06T12:00:00Z"))
    assert flips(w, "2026-03-02T00:00:00Z", "2026-03-09T00:00:00Z") == [
        at("2026-03-06T00:00:00Z"),
        at("2026-03-06T06:00:00Z"),
        at("2026-03-06T22:00:00Z"),
        at("2026-03-07T00:00:00Z"),
    ]


@pytest.mark.parametrize("times", ["00:00-24:00", "00:00-00:00", "13:00-13:00"])
def test_full_day_ranges_are_open_all_day(times: str) -> None:
    w = between("UTC", times)
    assert all(is_open(w, at("2026-03-06T00:00:00Z") + timedelta(hours=h)) for h in range(48))


def test_dates_are_inclusive_local_days() -> None:
    w = window("Asia/Tokyo", allow=[{"name": "a", "dates": "2025-12-24..2025-12-26"}])
    assert is_open(w, at("2025-12-26T23:59:59+09:00"))
    assert not is_open(w, at("2025-12-27T00:00:00+09:00"))
    assert is_open(w, at("2025-12-23T15:00:00Z"))  # 2025-12-24 00:00 in Tokyo
    assert flips(w, "2025-12-20T00:00:00Z", "2025-12-30T00:00:00Z") == [
        at("2025-12-24T00:00:00+09:00"),
        at("2025-12-27T00:00:00+09:00"),
    ]


def test_deny_beats_allow() -> None:
    w = window(
        "UTC",
        allow=[{"name": "day", "between": "09:00-17:00"}],
        deny=[{"name": "lunch", "between": "12:00-13:00"}],
    )
    assert is_open(w, at("2026-03-04T11:59:00Z"))
    assert not is_open(w, at("2026-03-04T12:30:00Z"))
    assert flips(w, "2026-03-04T00:00:00Z", "2026-03-04T23:00:00Z") == [
        at("2026-03-04T09:00:00Z"),
        at("2026-03-04T12:00:00Z"),
        at("2026-03-04T13:00:00Z"),
        at("2026-03-04T17:00:00Z"),
    ]


def test_without_allow_entries_a_window_is_open_unless_denied() -> None:
    w = window("UTC", deny=[{"name": "weekend", "days": ["Saturday", "sunday"]}])
    assert is_open(w, at("2026-03-06T12:00:00Z"))
    assert not is_open(w, at("2026-03-07T12:00:00Z"))
    start = at("2026-03-06T12:00:00Z")
    assert next_transition(w, start, start + HORIZON) == at("2026-03-07T00:00:00Z")


def test_a_window_without_entries_is_always_open_and_never_changes() -> None:
    w = window("Europe/Berlin")
    start = at("2026-03-06T12:00:00Z")
    assert is_open(w, start)
    assert next_transition(w, start, start + HORIZON) is None
    assert list(transitions(w, start, start + HORIZON)) == []


def test_next_transition_beyond_the_horizon_is_none() -> None:
    w = parse_window(BUSINESS_HOURS)
    saturday = at("2026-03-07T11:00:00+01:00")
    assert next_transition(w, saturday, at("2026-03-09T08:59:59+01:00")) is None
    assert next_transition(w, saturday, at("2026-03-09T09:00:00+01:00")) is not None


def test_next_transition_after_a_transition_instant_finds_the_following_one() -> None:
    w = parse_window(BUSINESS_HOURS)
    opening = at("2026-03-09T09:00:00+01:00")
    assert next_transition(w, opening, opening + HORIZON) == at("2026-03-09T17:00:00+01:00")


def test_naive_instants_are_rejected() -> None:
    w = parse_window(BUSINESS_HOURS)
    with pytest.raises(ValueError, match="no time zone"):
        is_open(w, datetime(2026, 3, 7, 11, 0))
    with pytest.raises(ValueError, match="no time zone"):
        next_transition(w, datetime(2026, 3, 7), at("2026-04-01T00:00:00Z"))


def test_entry_active_reads_the_local_wall_clock() -> None:
    entry = WindowEntry("e", frozenset({4}), (22 * 60, 6 * 60), None)
    assert entry_active(entry, datetime(2026, 3, 6, 23, 30))
    assert not entry_active(entry, datetime(2026, 3, 7, 1, 0))


# ---------------------------------------------------------------- explaining


def test_explain_at_names_the_first_failing_constraint_of_each_entry() -> None:
    w = parse_window(BUSINESS_HOURS)
    states = explain_at(w, at("2026-12-21T18:00:00+01:00"))  # a Monday evening in the freeze
    assert [(s.entry.name, s.kind, s.active, s.because) for s in states] == [
        ("mon-thu", "allow", False, "time"),
        ("friday-morning", "allow", False, "day"),
        ("holiday-freeze", "deny", True, ""),
    ]
    assert isinstance(states[0], EntryState)
    early = explain_at(w, at("2026-03-06T10:00:00+01:00"))
    assert early[-1].because == "date"


def test_describe_entry_shows_dates_days_and_times() -> None:
    w = parse_window(BUSINESS_HOURS)
    assert describe_entry(w.allow[0]) == "Mon Tue Wed Thu 09:00-17:00"
    assert describe_entry(w.deny[0]) == "2026-12-19..2027-01-06"
    assert describe_entry(WindowEntry("d", None, (0, 1440), (date(2026, 1, 1),) * 2)) == (
        "2026-01-01 00:00-24:00"
    )
    assert describe_entry(WindowEntry("any", None, None, None)) == "always"


# ---------------------------------------------------------------- invalid windows


def invalid(**changes: Any) -> WindowSyntaxError:
    raw = {"name": "w", "timezone": "UTC", **changes}
    with pytest.raises(WindowSyntaxError) as caught:
        parse_window(raw)
    return caught.value


def test_an_unknown_zone_suggests_the_closest_iana_name() -> None:
    error = invalid(timezone="Europe/Berln")
    assert error.field == "timezone"
    assert error.value == "Europe/Berln"
    assert error.hint is not None
    assert "Europe/Berlin" in error.hint
    assert "timezone" in str(error)
    assert "Europe/Berln" in str(error)


@pytest.mark.parametrize(
    ("times", "hint"),
    [("9:00-17:00", "09:00-17:00"), ("25:00-26:00", None), ("09:60-10:00", None), ("nine", None)],
)
def test_malformed_time_ranges_name_their_field(times: str, hint: str | None) -> None:
    error = invalid(allow=[{"name": "ok", "days": ["Mon"]}, {"name": "bad", "between": times}])
    assert error.field == "allow[1].between"
    assert error.value == times
    assert "allow[1].between" in str(error)
    assert times in str(error)
    if hint is not None:
        assert error.hint is not None
        assert hint in error.hint


def test_twenty_four_hundred_is_only_allowed_as_exactly_24_00() -> None:
    assert invalid(allow=[{"name": "a", "between": "10:00-24:01"}]).field == "allow[0].between"
    assert between("UTC", "10:00-24:00").allow[0].between == (600, 1440)


def test_an_unknown_day_suggests_the_intended_one() -> None:
    error = invalid(deny=[{"name": "a", "days": ["Mon", "Fry"]}])
    assert error.field == "deny[0].days[1]"
    assert error.hint == "did you mean Fri?"
    assert "Fry" in str(error)


def test_day_names_are_case_insensitive_and_may_be_spelled_out() -> None:
    w = window("UTC", allow=[{"name": "a", "days": ["monday", "TUE", "Sunday"]}])
    assert w.allow[0].days == frozenset({0, 1, 6})


@pytest.mark.parametrize("dates", ["2026-02-30", "2026-03-01..2026-02-30", "26-03-01", "soon"])
def test_impossible_dates_are_rejected(dates: str) -> None:
    error = invalid(deny=[{"name": "a", "dates": dates}])
    assert error.field == "deny[0].dates"
    assert dates in str(error)


def test_a_reversed_date_range_is_rejected_with_the_swapped_range_as_hint() -> None:
    error = invalid(deny=[{"name": "a", "dates": "2027-01-06..2026-12-19"}])
    assert error.field == "deny[0].dates"
    assert "ends before it starts" in str(error)
    assert error.hint == "write '2026-12-19..2027-01-06'"


def test_a_single_date_is_a_one_day_range() -> None:
    w = window("UTC", deny=[{"name": "a", "dates": "2026-12-25"}])
    assert w.deny[0].dates == (date(2026, 12, 25), date(2026, 12, 25))


def test_missing_name_and_entry_shapes_are_rejected() -> None:
    with pytest.raises(WindowSyntaxError) as caught:
        parse_window({"timezone": "UTC"})
    assert caught.value.field == "name"
    assert invalid(timezone=None).field == "timezone"
    assert invalid(allow="Mon").field == "allow"
    assert invalid(allow=["Mon"]).field == "allow[0]"
    assert invalid(allow=[{"name": "a", "days": "Mon"}]).field == "allow[0].days"


# ---------------------------------------------------------------- property: brute force agrees

ZONE_ANCHORS = [  # (zone, a day with one of its offset changes)
    ("Europe/Berlin", date(2026, 3, 29)),
    ("Europe/Berlin", date(2026, 10, 25)),
    ("America/New_York", date(2026, 3, 8)),
    ("America/New_York", date(2026, 11, 1)),
    ("Australia/Lord_Howe", date(2026, 4, 5)),
    ("Australia/Lord_Howe", date(2026, 10, 4)),
    ("Australia/Sydney", date(2026, 4, 5)),
    ("Australia/Sydney", date(2026, 10, 4)),
    ("America/Santiago", date(2026, 4, 5)),
    ("America/Santiago", date(2026, 9, 6)),
    ("America/Sao_Paulo", date(2018, 2, 18)),
    ("America/Sao_Paulo", date(2018, 11, 4)),
    ("Pacific/Chatham", date(2026, 4, 5)),
    ("Pacific/Chatham", date(2026, 9, 27)),
    ("UTC", date(2026, 6, 10)),
    ("Asia/Kolkata", date(2026, 6, 10)),
]
SPAN = timedelta(days=3)
NEAR_CHANGES = [0, 30, 60, 90, 105, 120, 135, 150, 165, 180, 210, 240, 1380, 1410, 1425, 1440]
TIMES = st.one_of(st.integers(0, 96).map(lambda q: q * 15), st.sampled_from(NEAR_CHANGES))


@st.composite
def entries(draw: st.DrawFn, near: date) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": "e"}
    if draw(st.booleans()):
        days = draw(st.sets(st.sampled_from(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])))
        entry["days"] = sorted(days)
    if draw(st.integers(0, 3)):
        start, end = draw(TIMES), draw(TIMES)
        entry["between"] = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    if draw(st.integers(0, 2)) == 0:
        first = near + timedelta(days=draw(st.integers(-2, 4)))
        entry["dates"] = f"{first}..{first + timedelta(days=draw(st.integers(0, 2)))}"
    return entry


@st.composite
def cases(draw: st.DrawFn) -> tuple[Window, datetime]:
    zone, anchor = draw(st.sampled_from(ZONE_ANCHORS))
    midnight = datetime(anchor.year, anchor.month, anchor.day, tzinfo=UTC)
    start = midnight + timedelta(minutes=draw(st.integers(-2880, 1440)))
    raw = {
        "name": "w",
        "timezone": zone,
        "allow": draw(st.lists(entries(anchor), max_size=3)),
        "deny": draw(st.lists(entries(anchor), max_size=2)),
    }
    return parse_window(raw), start


def brute_force(w: Window, start: datetime, end: datetime) -> list[datetime]:
    """Every whole minute where is_open differs from the minute before (the zones
    above change offset on whole minutes, so every real transition is on one)."""
    found: list[datetime] = []
    state = is_open(w, start)
    minute = start + timedelta(minutes=1)
    while minute <= end:
        now_open = is_open(w, minute)
        if now_open != state:
            found.append(minute)
            state = now_open
        minute += timedelta(minutes=1)
    return found


@settings(max_examples=200, deadline=None)
@given(cases(), st.integers(0, 59_999_999))
def test_transitions_match_a_minute_by_minute_brute_force(
    case: tuple[Window, datetime], micros: int
) -> None:
    w, start = case
    end = start + SPAN
    expected = brute_force(w, start, end)
    found = list(transitions(w, start, end))
    assert found == expected
    for t in found:
        assert t.utcoffset() == timedelta(0)
        assert is_open(w, t - MICROSECOND) != is_open(w, t)
    after = start + timedelta(microseconds=micros)
    later = [t for t in expected if t > after]
    assert next_transition(w, after, end) == (later[0] if later else None)
