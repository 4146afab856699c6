"""Tests for poletti.engine.timecalc: durations, windows, periods, timestamps.

Europe/Helsinki facts used below (2026): EET is UTC+2, EEST is UTC+3.
DST starts Sunday 29 March at 03:00 local (01:00 UTC): clocks jump to
04:00, so 03:00–03:59 does not exist and that day has 23 hours.
DST ends Sunday 25 October at 04:00 EEST (01:00 UTC): clocks go back to
03:00, so 03:00–03:59 happens twice and that day has 25 hours.
2028 is a leap year; 2026, 2027 and 2029 are not.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poletti.engine.timecalc import (
    Duration,
    add,
    from_wall_clock,
    in_window,
    next_birthday,
    parse_timestamp,
    period_end,
    period_key,
    period_key_us,
    period_start,
    subtract,
    whole_days_between,
    window_end,
)
from instants import HEL, US, UTC, ts



def d(text: str) -> Duration:
    return Duration.parse(text)


# -- Duration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [("30d", 30, "d"), ("12w", 12, "w"), ("12m", 12, "m"), ("1y", 1, "y"), (" 7d ", 7, "d")],
)
def test_duration_parse(text: str, amount: int, unit: str) -> None:
    assert Duration.parse(text) == Duration(amount, unit)
    assert str(Duration.parse(text)) == text.strip()


@pytest.mark.parametrize("text", ["30", "d", "1.5m", "-2d", "30x", "", "3 0d", "12M"])
def test_duration_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        Duration.parse(text)


def test_duration_validates_fields() -> None:
    with pytest.raises(ValueError):
        Duration(-1, "d")
    with pytest.raises(ValueError):
        Duration(1, "h")
    with pytest.raises(TypeError):
        Duration(True, "d")
    assert Duration(12, "m").is_calendar and not Duration(30, "d").is_calendar


# -- add / subtract: days and weeks are absolute ----------------------------


def test_days_are_24_hours_across_spring_forward() -> None:
    # 28 Mar 12:00 EET = 10:00 UTC; + 24 h = 29 Mar 10:00 UTC = 13:00 EEST
    # (the wall clock moves 25 hours because 03:00–04:00 was skipped).
    assert add(ts("2026-03-28T12:00+02:00"), d("1d"), HEL) == ts("2026-03-29T13:00+03:00")


def test_30_days_back_across_fall_back() -> None:
    # 10 Nov 12:00 EET = 10:00 UTC; − 720 h = 11 Oct 10:00 UTC = 13:00 EEST.
    assert subtract(ts("2026-11-10T12:00+02:00"), d("30d"), HEL) == ts("2026-10-11T13:00+03:00")


def test_weeks_are_7_times_24_hours() -> None:
    # 20 Oct 12:00 EEST = 09:00 UTC; + 336 h = 3 Nov 09:00 UTC = 11:00 EET.
    assert add(ts("2026-10-20T12:00+03:00"), d("2w"), HEL) == ts("2026-11-03T11:00+02:00")


def test_results_are_utc() -> None:
    for unit in ("1d", "1w", "1m", "1y"):
        assert add(ts("2026-05-01T12:00+03:00"), d(unit), HEL).tzinfo is UTC


def test_zero_duration_is_identity_even_in_fold() -> None:
    # 25 Oct 03:30 second pass (EET, +02:00) = 01:30 UTC; 0 months keeps it,
    # although a wall-clock round trip would pick the first pass (00:30 UTC).
    second_pass = ts("2026-10-25T03:30+02:00")
    assert add(second_pass, d("0m"), HEL) == second_pass
    assert subtract(second_pass, d("0y"), HEL) == second_pass


# -- add / subtract: months and years are calendar arithmetic ----------------


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        # 31 Jan + 1m → 28 Feb 2026 (2026 not leap), same wall time 10:00 EET.
        ("2026-01-31T10:00+02:00", "1m", "2026-02-28T10:00+02:00"),
        # 31 Jan 2028 + 1m → 29 Feb 2028 (leap).
        ("2028-01-31T10:00+02:00", "1m", "2028-02-29T10:00+02:00"),
        # 29 Feb 2028 + 1y → 28 Feb 2029 (no 29 Feb in 2029).
        ("2028-02-29T10:00+02:00", "1y", "2029-02-28T10:00+02:00"),
        # 31 Dec 2026 + 2m → Feb 2027, clamped to 28.
        ("2026-12-31T10:00+02:00", "2m", "2027-02-28T10:00+02:00"),
        # 30 Apr + 1m → 30 May (no clamp needed; 31 days would be wrong).
        ("2026-04-30T10:00+03:00", "1m", "2026-05-30T10:00+03:00"),
        # 15 Mar 12:00 EET + 1m → 15 Apr 12:00 EEST: wall time kept, offset
        # changes, so the absolute length is 31 days − 1 hour.
        ("2026-03-15T12:00+02:00", "1m", "2026-04-15T12:00+03:00"),
        # 23 Nov 2026 + 12m → 23 Nov 2027.
        ("2026-11-23T10:00+02:00", "12m", "2027-11-23T10:00+02:00"),
    ],
)
def test_add_calendar(start: str, duration: str, expected: str) -> None:
    assert add(ts(start), d(duration), HEL) == ts(expected)


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        # 31 Mar 12:00 EEST − 1m → 28 Feb 2026 12:00 EET (clamped; not 3 Mar).
        ("2026-03-31T12:00+03:00", "1m", "2026-02-28T12:00+02:00"),
        # 31 Mar 2028 − 1m → 29 Feb 2028 (leap).
        ("2028-03-31T12:00+03:00", "1m", "2028-02-29T12:00+02:00"),
        # 29 Feb 2028 − 1y → 28 Feb 2027.
        ("2028-02-29T12:00+02:00", "1y", "2027-02-28T12:00+02:00"),
        # 15 Jan 2026 − 1m → 15 Dec 2025 (year wraps).
        ("2026-01-15T09:00+02:00", "1m", "2025-12-15T09:00+02:00"),
        # 23 Nov 2026 − 12m → 23 Nov 2025.
        ("2026-11-23T10:00+02:00", "12m", "2025-11-23T10:00+02:00"),
    ],
)
def test_subtract_calendar(start: str, duration: str, expected: str) -> None:
    assert subtract(ts(start), d(duration), HEL) == ts(expected)


def test_month_landing_in_spring_gap_moves_to_the_end_of_the_gap() -> None:
    # 29 Jan 03:30 EET + 2m → wall 29 Mar 03:30, which does not exist: Helsinki jumps from
    # 03:00 EET to 04:00 EEST at 01:00 UTC. The contract's rule: the end of the gap, 01:00 UTC
    # (not 01:30 UTC, where reading it with the pre-gap offset would put it).
    assert add(ts("2026-01-29T03:30+02:00"), d("2m"), HEL) == ts("2026-03-29T04:00+03:00")


def test_month_landing_in_fall_fold_takes_first_pass() -> None:
    # 25 Sep 03:30 EEST + 1m → wall 25 Oct 03:30, which happens twice;
    # fold=0 is the first pass, EEST: 00:30 UTC.
    assert add(ts("2026-09-25T03:30+03:00"), d("1m"), HEL) == ts("2026-10-25T00:30+00:00")
    # 25 Nov 03:30 EET − 1m → the same ambiguous wall time → first pass too.
    assert subtract(ts("2026-11-25T03:30+02:00"), d("1m"), HEL) == ts("2026-10-25T03:30+03:00")


def test_month_from_second_pass_of_fold_uses_its_wall_time() -> None:
    # Second pass of 25 Oct 03:30 (EET, 01:30 UTC) − 1m → 25 Sep 03:30 EEST = 00:30 UTC.
    assert subtract(ts("2026-10-25T03:30+02:00"), d("1m"), HEL) == ts("2026-09-25T03:30+03:00")


def test_from_wall_clock_gap_and_fold() -> None:
    # Gap: 29 Mar 03:15 does not exist → the end of the gap, 04:00 EEST = 01:00 UTC; every
    # time in the gap goes there, and the last instant before it is still 02:59:59.999999 EET.
    assert from_wall_clock(datetime(2026, 3, 29, 3, 15), HEL) == ts("2026-03-29T01:00+00:00")
    assert from_wall_clock(datetime(2026, 3, 29, 3, 0), HEL) == ts("2026-03-29T01:00+00:00")
    assert from_wall_clock(datetime(2026, 3, 29, 3, 59, 59, 999999), HEL) == ts("2026-03-29T01:00+00:00")
    assert from_wall_clock(datetime(2026, 3, 29, 2, 59, 59, 999999), HEL) == ts("2026-03-29T00:59:59.999999+00:00")
    # Lord Howe jumps by half an hour (02:00 → 02:30 local, 15:00 UTC on 4 Oct 2026).
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    assert from_wall_clock(datetime(2026, 10, 4, 2, 10), lord_howe) == ts("2026-10-03T15:30+00:00")
    # Fold: 25 Oct 03:15 → first pass, +03:00 → 00:15 UTC.
    assert from_wall_clock(datetime(2026, 10, 25, 3, 15), HEL) == ts("2026-10-25T00:15+00:00")
    with pytest.raises(ValueError):
        from_wall_clock(ts("2026-10-25T03:15+03:00"), HEL)


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2026, 11, 23, 10, 0)
    for call in (
        lambda: add(naive, d("1d"), HEL),
        lambda: subtract(naive, d("1m"), HEL),
        lambda: window_end(naive, d("30d"), HEL),
        lambda: period_start(naive, "day", HEL),
        lambda: period_end(naive, "week", HEL),
        lambda: period_key(naive, "month", HEL),
        lambda: next_birthday(naive, date(1990, 1, 1), HEL),
        lambda: whole_days_between(naive, ts("2026-11-23T10:00+02:00"), HEL),
    ):
        with pytest.raises(ValueError, match="timezone-aware"):
            call()


def test_out_of_range_is_value_error() -> None:
    with pytest.raises(ValueError):
        add(ts("9999-12-01T00:00+00:00"), d("1m"), ZoneInfo("UTC"))
    with pytest.raises(ValueError):
        subtract(ts("0001-01-02T00:00+00:00"), d("2d"), ZoneInfo("UTC"))


# -- windows [p, p + W) ---------------------------------------------------------


def test_window_30d_boundary() -> None:
    p = ts("2026-10-24T11:00+03:00")
    # p = 24 Oct 08:00 UTC; + 720 h = 23 Nov 08:00 UTC = 10:00 EET (DST ended 25 Oct).
    end = window_end(p, d("30d"), HEL)
    assert end == ts("2026-11-23T10:00+02:00")
    assert in_window(p, p, d("30d"), HEL)  # counts from its own instant
    assert in_window(p, end - US, d("30d"), HEL)  # until just before p + W
    assert not in_window(p, end, d("30d"), HEL)  # and leaves exactly at p + W
    assert not in_window(p, p - US, d("30d"), HEL)  # not before it happened


def test_window_1m_end_is_clamped() -> None:
    # 31 Jan 12:00 EET + 1m → 28 Feb 12:00 EET (clamped): out at that instant, never back in.
    p = ts("2026-01-31T12:00+02:00")
    assert window_end(p, d("1m"), HEL) == ts("2026-02-28T12:00+02:00")
    assert in_window(p, ts("2026-02-28T11:59:59.999999+02:00"), d("1m"), HEL)
    for t in ("2026-02-28T12:00+02:00", "2026-03-01T00:00+02:00", "2026-03-30T23:00+03:00"):
        assert not in_window(p, ts(t), d("1m"), HEL)


def test_window_12m_across_29_february() -> None:
    # 29 Feb 2028 10:00 EET + 12m → 28 Feb 2029 10:00 EET.
    p = ts("2028-02-29T10:00+02:00")
    assert window_end(p, d("12m"), HEL) == ts("2029-02-28T10:00+02:00")


def test_window_of_purchases_in_the_repeated_hour() -> None:
    # 31 Oct 2027: Helsinki goes back from 04:00 EEST to 03:00 EET at 01:00 UTC. A purchase at
    # 03:50 EEST (00:50 UTC, first pass) + 1m → 30 Nov 03:50 EET = 01:50 UTC; one at 03:10 EET
    # (01:10 UTC, second pass, later) → 30 Nov 03:10 EET = 01:10 UTC: the later purchase leaves
    # first, each exactly once.
    first_pass, second_pass = ts("2027-10-31T03:50+03:00"), ts("2027-10-31T03:10+02:00")
    assert first_pass < second_pass
    assert window_end(first_pass, d("1m"), HEL) == ts("2027-11-30T01:50+00:00")
    assert window_end(second_pass, d("1m"), HEL) == ts("2027-11-30T01:10+00:00")


# -- calendar periods -----------------------------------------------------------


def test_day_of_spring_forward_has_23_hours() -> None:
    t = ts("2026-03-29T12:00+03:00")
    start, end = period_start(t, "day", HEL), period_end(t, "day", HEL)
    # Starts 00:00 EET (+02:00), ends next midnight 00:00 EEST (+03:00).
    assert start == ts("2026-03-29T00:00+02:00")
    assert end == ts("2026-03-30T00:00+03:00")
    assert end - start == timedelta(hours=23)
    assert period_key(t, "day", HEL) == ("day", 2026, 3, 29)


def test_day_of_fall_back_has_25_hours() -> None:
    t = ts("2026-10-25T12:00+02:00")
    start, end = period_start(t, "day", HEL), period_end(t, "day", HEL)
    assert start == ts("2026-10-25T00:00+03:00")
    assert end == ts("2026-10-26T00:00+02:00")
    assert end - start == timedelta(hours=25)


def test_day_uses_program_zone_not_utc() -> None:
    # 22 Nov 22:30 UTC is already 23 Nov 00:30 in Helsinki.
    t = ts("2026-11-22T22:30Z")
    assert period_key(t, "day", HEL) == ("day", 2026, 11, 23)
    assert period_start(t, "day", HEL) == ts("2026-11-23T00:00+02:00")
    assert period_key(t, "day", ZoneInfo("UTC")) == ("day", 2026, 11, 22)


def test_week_starts_monday() -> None:
    # Sunday 29 Nov 23:59 → the week of Monday 23 Nov (ISO week 48).
    t = ts("2026-11-29T23:59+02:00")
    assert period_start(t, "week", HEL) == ts("2026-11-23T00:00+02:00")
    assert period_end(t, "week", HEL) == ts("2026-11-30T00:00+02:00")
    assert period_key(t, "week", HEL) == ("week", 2026, 48)
    # 29 Nov 22:30 UTC = Monday 30 Nov 00:30 Helsinki → week 49.
    u = ts("2026-11-29T22:30Z")
    assert period_key(u, "week", HEL) == ("week", 2026, 49)
    assert period_start(u, "week", HEL) == ts("2026-11-30T00:00+02:00")


def test_week_key_uses_iso_year() -> None:
    # Monday 29 Dec 2025 starts ISO week 1 of 2026 (it holds Thursday 1 Jan 2026).
    t = ts("2025-12-29T12:00+02:00")
    assert period_key(t, "week", HEL) == ("week", 2026, 1)
    assert period_start(ts("2026-01-01T12:00+02:00"), "week", HEL) == ts("2025-12-29T00:00+02:00")


def test_week_spanning_spring_forward() -> None:
    # Monday 23 Mar 00:00 EET → Monday 30 Mar 00:00 EEST: 7 × 24 h − 1 h.
    t = ts("2026-03-29T12:00+03:00")
    assert period_start(t, "week", HEL) == ts("2026-03-23T00:00+02:00")
    assert period_end(t, "week", HEL) == ts("2026-03-30T00:00+03:00")


def test_month_and_year_periods() -> None:
    t = ts("2026-12-31T23:30+02:00")
    assert period_start(t, "month", HEL) == ts("2026-12-01T00:00+02:00")
    assert period_end(t, "month", HEL) == ts("2027-01-01T00:00+02:00")
    assert period_key(t, "month", HEL) == ("month", 2026, 12)
    assert period_start(t, "year", HEL) == ts("2026-01-01T00:00+02:00")
    assert period_end(t, "year", HEL) == ts("2027-01-01T00:00+02:00")
    assert period_key(t, "year", HEL) == ("year", 2026)
    # 31 Dec 22:30 UTC = 1 Jan 2027 00:30 Helsinki.
    u = ts("2026-12-31T22:30Z")
    assert period_key(u, "month", HEL) == ("month", 2027, 1)
    assert period_key(u, "year", HEL) == ("year", 2027)
    # April in Helsinki: 1 Apr 00:00 EEST → 1 May 00:00 EEST.
    a = ts("2026-04-15T12:00+03:00")
    assert period_start(a, "month", HEL) == ts("2026-04-01T00:00+03:00")
    assert period_end(a, "month", HEL) == ts("2026-05-01T00:00+03:00")


def test_period_boundaries_belong_to_their_period() -> None:
    start = ts("2026-11-23T00:00+02:00")
    assert period_key(start, "day", HEL) == ("day", 2026, 11, 23)
    assert period_key(start - US, "day", HEL) == ("day", 2026, 11, 22)


def test_unknown_period() -> None:
    with pytest.raises(ValueError, match="period"):
        period_start(ts("2026-11-23T10:00+02:00"), "fortnight", HEL)
    with pytest.raises(ValueError, match="period"):
        period_key(ts("2026-11-23T10:00+02:00"), "30d", HEL)


# -- parse_timestamp ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 10:00 at +02:00 = 08:00 UTC.
        ("2026-11-23T10:00:00+02:00", "2026-11-23T08:00:00+00:00"),
        ("2026-11-23T08:00:00Z", "2026-11-23T08:00:00+00:00"),
        ("2026-11-23T08:00Z", "2026-11-23T08:00:00+00:00"),
        ("2026-11-23T08:00:00.250000Z", "2026-11-23T08:00:00.250000+00:00"),
        # A date alone is midnight in Helsinki: 00:00 EET = 22:00 UTC the day before.
        ("2026-11-23", "2026-11-22T22:00:00+00:00"),
        # In summer: 00:00 EEST = 21:00 UTC the day before.
        ("2026-07-01", "2026-06-30T21:00:00+00:00"),
        (" 2026-11-23T10:00:00+02:00 ", "2026-11-23T08:00:00+00:00"),
    ],
)
def test_parse_timestamp(text: str, expected: str) -> None:
    parsed = parse_timestamp(text, HEL)
    assert parsed == ts(expected)
    assert parsed.tzinfo is UTC


def test_parse_timestamp_without_offset_is_an_error() -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_timestamp("2026-11-23T10:00:00", HEL)


@pytest.mark.parametrize("text", ["", "yesterday", "2026-02-30", "2026-11-23T25:00Z", "23.11.2026"])
def test_parse_timestamp_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text, HEL)


def test_parse_timestamp_rejects_non_strings() -> None:
    with pytest.raises(ValueError):
        parse_timestamp(20261123, HEL)  # type: ignore[arg-type]


# -- next_birthday ---------------------------------------------------------------


def test_next_birthday_later_this_year() -> None:
    # After 23 Nov 2026, a 5 Dec birthday → 5 Dec 2026 00:00 EET.
    assert next_birthday(ts("2026-11-23T10:00+02:00"), date(1990, 12, 5), HEL) == ts(
        "2026-12-05T00:00+02:00"
    )


def test_next_birthday_already_passed_this_year() -> None:
    # 1 Mar has passed on 23 Nov 2026 → 1 Mar 2027 00:00 EET.
    assert next_birthday(ts("2026-11-23T10:00+02:00"), date(1990, 3, 1), HEL) == ts(
        "2027-03-01T00:00+02:00"
    )


def test_next_birthday_is_strictly_after() -> None:
    midnight = ts("2026-12-05T00:00+02:00")
    # Exactly at the birthday's start: it has begun → next year's.
    assert next_birthday(midnight, date(1990, 12, 5), HEL) == ts("2027-12-05T00:00+02:00")
    # One microsecond before: this one.
    assert next_birthday(midnight - US, date(1990, 12, 5), HEL) == midnight


def test_next_birthday_in_summer_is_eest_midnight() -> None:
    # 15 Jul 00:00 EEST = 14 Jul 21:00 UTC.
    assert next_birthday(ts("2026-11-23T10:00+02:00"), date(1985, 7, 15), HEL) == ts(
        "2027-07-14T21:00Z"
    )


def test_next_birthday_uses_program_zone() -> None:
    # 4 Dec 22:30 UTC is 5 Dec 00:30 in Helsinki: the birthday has begun there.
    assert next_birthday(ts("2026-12-04T22:30Z"), date(1990, 12, 5), HEL) == ts(
        "2027-12-05T00:00+02:00"
    )


def test_leap_day_birthday() -> None:
    leap = date(2000, 2, 29)
    # 2026 is not leap → 28 Feb 2026.
    assert next_birthday(ts("2026-01-01T00:00+02:00"), leap, HEL) == ts("2026-02-28T00:00+02:00")
    # After 28 Feb 2027 → 2028 is leap → 29 Feb 2028.
    assert next_birthday(ts("2027-03-01T00:00+02:00"), leap, HEL) == ts("2028-02-29T00:00+02:00")
    # At 29 Feb 2028 midnight → begun → 28 Feb 2029.
    assert next_birthday(ts("2028-02-29T00:00+02:00"), leap, HEL) == ts("2029-02-28T00:00+02:00")


def test_next_birthday_rejects_datetime_birthday() -> None:
    with pytest.raises(TypeError):
        next_birthday(ts("2026-01-01T00:00+02:00"), ts("1990-01-01T00:00+02:00"), HEL)


# -- whole_days_between ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "days"),
    [
        ("2026-11-23T10:00+02:00", "2026-11-23T10:00+02:00", 0),
        # 23 h 59 m 59.999999 s → 0.
        ("2026-11-23T10:00+02:00", "2026-11-24T09:59:59.999999+02:00", 0),
        # exactly 24 h → 1.
        ("2026-11-23T10:00+02:00", "2026-11-24T10:00+02:00", 1),
        # 23:00 → 01:00 next day: 2 h, a new calendar day but 0 whole days.
        ("2026-11-23T23:00+02:00", "2026-11-24T01:00+02:00", 0),
        # 28 Mar 12:00 EET → 29 Mar 12:00 EEST is 23 h (spring forward) → 0.
        ("2026-03-28T12:00+02:00", "2026-03-29T12:00+03:00", 0),
        # 24 Oct 12:00 EEST → 25 Oct 12:00 EET is 25 h (fall back) → 1.
        ("2026-10-24T12:00+03:00", "2026-10-25T12:00+02:00", 1),
        # 1 Jan → 1 Mar 2028: 31 + 29 = 60 days (leap year).
        ("2028-01-01T00:00+02:00", "2028-03-01T00:00+02:00", 60),
        # b one second before a → floor(−1 s / 24 h) = −1.
        ("2026-11-23T10:00:01+02:00", "2026-11-23T10:00:00+02:00", -1),
    ],
)
def test_whole_days_between(a: str, b: str, days: int) -> None:
    assert whole_days_between(ts(a), ts(b), HEL) == days


def test_whole_days_between_same_zone_fold_instants() -> None:
    # Both in Helsinki's zone object, in the repeated hour: 03:30 first pass
    # (00:30 UTC) and 03:10 second pass (01:10 UTC) are 40 min apart; naive
    # same-zone subtraction would say −20 min and floor to −1.
    first = datetime(2026, 10, 25, 3, 30, tzinfo=HEL)
    second = datetime(2026, 10, 25, 3, 10, tzinfo=HEL, fold=1)
    assert whole_days_between(first, second, HEL) == 0


# -- properties ---------------------------------------------------------------------

ZONES = [HEL, ZoneInfo("UTC"), ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Asia/Kolkata"),
         ZoneInfo("Pacific/Chatham")]
instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)
zones = st.sampled_from(ZONES)
fast = settings(max_examples=150, deadline=None)


@fast
@given(instants, st.integers(0, 5000), st.sampled_from(["d", "w"]), zones)
def test_absolute_durations_are_exact(t: datetime, n: int, unit: str, tz: ZoneInfo) -> None:
    dur = Duration(n, unit)
    hours = n * 24 * (7 if unit == "w" else 1)
    assert add(t, dur, tz) - t == timedelta(hours=hours)
    assert subtract(add(t, dur, tz), dur, tz) == t


@fast
@given(instants, st.integers(1, 60), st.sampled_from(["m", "y"]), zones)
def test_calendar_durations_keep_clamped_date(t: datetime, n: int, unit: str, tz: ZoneInfo) -> None:
    dur = Duration(n, unit)
    months = n * (12 if unit == "y" else 1)
    local = t.astimezone(tz)
    for sign, result in ((1, add(t, dur, tz)), (-1, subtract(t, dur, tz))):
        assert result.tzinfo is UTC
        assert (result > t) if sign > 0 else (result < t)
        index = local.year * 12 + local.month - 1 + sign * months
        year, month = index // 12, index % 12 + 1
        last_day = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
        expected_wall = local.replace(
            tzinfo=None, fold=0, year=year, month=month, day=min(local.day, last_day)
        )
        # The result is that wall time: its earlier instant in a fold, the end of the gap in a gap.
        assert result == from_wall_clock(expected_wall, tz)


@fast
@given(instants, st.sampled_from(["day", "week", "month", "year"]), zones)
def test_period_contains_t(t: datetime, period: str, tz: ZoneInfo) -> None:
    start, end = period_start(t, period, tz), period_end(t, period, tz)
    assert start <= t < end
    key = period_key(t, period, tz)
    assert period_key(start, period, tz) == key
    assert period_key(end - US, period, tz) == key
    assert period_key(end, period, tz) != key
    assert period_key(start - US, period, tz) != key
    hash(key)


@fast
@given(instants, st.integers(1, 400), st.sampled_from(["d", "w", "m", "y"]), zones)
def test_a_window_holds_its_entry_from_its_instant_to_its_end(p: datetime, n: int, unit: str, tz: ZoneInfo) -> None:
    dur = Duration(n, unit)
    end = window_end(p, dur, tz)
    assert end > p
    assert in_window(p, p, dur, tz)
    assert in_window(p, end - US, dur, tz)
    assert not in_window(p, end, dur, tz)


@fast
@given(instants, st.dates(min_value=date(1920, 1, 1), max_value=date(2020, 12, 31)), zones)
def test_next_birthday_properties(after: datetime, birthday: date, tz: ZoneInfo) -> None:
    nxt = next_birthday(after, birthday, tz)
    assert after < nxt <= after + timedelta(days=367)
    local = nxt.astimezone(tz).date()
    if (birthday.month, birthday.day) == (2, 29) and local.month == 2 and local.day == 28:
        pass  # clamped in a common year
    else:
        assert (local.month, local.day) == (birthday.month, birthday.day)
    # Nothing in between: the previous occurrence is not after `after`.
    assert next_birthday(nxt - US, birthday, tz) == nxt


@fast
@given(
    st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2090, 12, 31),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5, minutes=30))]),
    )
)
def test_parse_timestamp_round_trip(t: datetime) -> None:
    assert parse_timestamp(t.isoformat(), HEL) == t


@fast
@given(instants, st.integers(-10**9, 10**9))
def test_whole_days_is_floor(a: datetime, micros: int) -> None:
    b = a + timedelta(microseconds=micros * 1000)
    assert whole_days_between(a, b, HEL) == (micros * 1000) // (24 * 3600 * 10**6)


# -- integer instants -------------------------------------------------------------

from poletti.engine.timecalc import (MonthShift, PeriodKeys, add_us, from_us, local_date, to_us,  # noqa: E402
                                     utc_offset_us)

int_instants = st.integers(min_value=to_us(datetime(1901, 1, 1, tzinfo=UTC)),
                           max_value=to_us(datetime(2090, 12, 31, tzinfo=UTC)))
# Instants close to clock changes, where the fast paths must hand over to zoneinfo.
near_changes = st.sampled_from([ts("2026-03-29T01:00Z"), ts("2026-10-25T01:00Z"), ts("2027-03-28T01:00Z"),
                                ts("2027-10-31T01:00Z"), ts("2026-03-08T07:00Z"), ts("2026-11-01T06:00Z"),
                                ts("2026-10-03T15:00Z")]).flatmap(
    lambda t: st.integers(-3 * 86400 * 10**6, 3 * 86400 * 10**6).map(lambda d: to_us(t) + d))


@fast
@given(st.one_of(int_instants, near_changes), st.integers(1, 30), st.sampled_from(["m", "y"]), zones)
def test_add_us_is_add_on_integers(us: int, n: int, unit: str, tz: ZoneInfo) -> None:
    shifted = from_us(us).replace(day=1)  # keep clear of the calendar's ends
    us = to_us(shifted) + us % (28 * 86400 * 10**6)
    assert add_us(us, Duration(n, unit), tz) == to_us(add(from_us(us), Duration(n, unit), tz))


@fast
@given(st.lists(st.one_of(int_instants, near_changes), min_size=1, max_size=12), st.integers(1, 24),
       st.sampled_from(["m", "y"]), zones)
def test_month_shift_is_add_us_hour_cache_or_not(instants: list[int], n: int, unit: str, tz: ZoneInfo) -> None:
    # The generated code's MonthShift caches one shift per UTC hour: whatever it cached for earlier instants
    # (neighbours in one hour included: its first and last µs), every instant comes out as add_us's.
    shift = MonthShift(Duration(n, unit), tz)
    hour = 3600 * 10**6
    neighbours = [us + step for us in instants for step in (0, 1, 59 * 60 * 10**6, -(us % hour), hour - 1 - us % hour)]
    for us in neighbours + neighbours:
        assert shift(us) == add_us(us, Duration(n, unit), tz)


def test_month_shift_caches_quiet_hours_and_not_the_hours_near_a_clock_change() -> None:
    shift = MonthShift(Duration(1, "m"), HEL)
    quiet = to_us(ts("2027-06-15T10:20+03:00"))  # a summer day a month from another summer day
    assert shift(quiet) == to_us(ts("2027-07-15T10:20+03:00"))
    assert shift.hours[quiet // (3600 * 10**6)] == to_us(ts("2027-07-15T10:20+03:00")) - quiet
    into_gap = to_us(ts("2027-02-28T03:30+02:00"))  # lands in the spring gap: the end of the gap, 01:00Z
    assert shift(into_gap) == to_us(ts("2027-03-28T01:00Z"))
    assert shift.hours[into_gap // (3600 * 10**6)] is None


def test_month_shift_does_not_cache_an_hour_whose_two_local_days_shift_differently() -> None:
    # Local midnight between 30 and 31 January 2027 in Kolkata (+05:30) falls inside the UTC hour 18:00–19:00:
    # a month on, both days land on 28 February (clamped), so the instants before midnight shift by 29 days
    # and those after by 28.
    kolkata = ZoneInfo("Asia/Kolkata")
    shift = MonthShift(Duration(1, "m"), kolkata)
    hour = 3600 * 10**6
    midnight = to_us(ts("2027-01-31T00:00+05:30"))
    first = midnight // hour * hour
    last = first + hour - 1
    assert first < midnight <= last
    assert shift(first) == add_us(first, Duration(1, "m"), kolkata) == first + 29 * 86_400 * 10**6
    assert shift(last) == add_us(last, Duration(1, "m"), kolkata) == last + 28 * 86_400 * 10**6
    assert shift(first) == first + 29 * 86_400 * 10**6  # (from the cache, had it kept one)
    assert shift.hours[first // hour] is None


def test_period_keys_of_an_hour_that_straddles_a_local_midnight() -> None:
    # In Kolkata (+05:30) the UTC hour 18:00–19:00 holds the end of one local day and the start of the next:
    # its period keys are cached for no hour, each instant gets its own day's.
    kolkata = ZoneInfo("Asia/Kolkata")
    hour = 3600 * 10**6
    midnight = to_us(ts("2027-01-01T00:00+05:30"))
    first = midnight // hour * hour
    last = first + hour - 1
    for _ in range(2):  # the second time from whatever the first cached
        assert period_key_us(first, "day", kolkata) == ("day", 2026, 12, 31)
        assert period_key_us(last, "day", kolkata) == ("day", 2027, 1, 1)
        assert period_key_us(first, "year", kolkata) == ("year", 2026)
        assert period_key_us(last, "year", kolkata) == ("year", 2027)


@fast
@given(st.lists(st.one_of(int_instants, near_changes), min_size=1, max_size=12),
       st.sampled_from(["day", "week", "month", "year"]), zones)
def test_period_keys_are_period_key_us_hour_cache_or_not(instants: list[int], period: str, tz: ZoneInfo) -> None:
    # The generated code's PeriodKeys keeps one key per UTC hour: whatever it kept for earlier instants (the
    # ends of their hours included), every instant comes out as period_key_us's, and that is zoneinfo's.
    keys = PeriodKeys(period, tz)
    hour = 3600 * 10**6
    neighbours = [us + step for us in instants for step in (0, 1, 59 * 60 * 10**6, -(us % hour), hour - 1 - us % hour)]
    for us in neighbours + neighbours:
        assert keys(us) == period_key_us(us, period, tz) == period_key(from_us(us), period, tz)


def test_period_keys_keep_the_hours_of_a_quiet_day_and_no_hour_with_a_local_midnight_or_a_clock_change() -> None:
    hour = 3600 * 10**6
    # Helsinki, 15 June 2027 (EEST, +03:00 all day): the local day runs from 14 June 21:00 UTC to 15 June 21:00
    # UTC, and its first instant asked keeps the key for those 24 UTC hours, and for no other.
    helsinki = PeriodKeys("day", HEL)
    quiet = to_us(ts("2027-06-15T10:20Z"))
    assert helsinki(quiet) == ("day", 2027, 6, 15)
    day_start = to_us(ts("2027-06-14T21:00Z")) // hour
    assert sorted(helsinki.hours) == list(range(day_start, day_start + 24))
    assert set(helsinki.hours.values()) == {("day", 2027, 6, 15)}
    assert helsinki(to_us(ts("2027-06-15T20:59:59.999999Z"))) == ("day", 2027, 6, 15)
    assert helsinki(to_us(ts("2027-06-15T21:00Z"))) == ("day", 2027, 6, 16)
    # 31 October 2027: the clocks go back at 04:00 EEST (01:00 UTC), so the offset at the day's two ends
    # differs: no hour of it is kept, and each instant gets its day.
    change = to_us(ts("2027-10-31T01:00Z"))
    assert helsinki(change - 1) == helsinki(change) == ("day", 2027, 10, 31)
    assert (change - 1) // hour not in helsinki.hours and change // hour not in helsinki.hours
    # Kolkata (+05:30): local midnight, 1 January 2027, falls at 18:30 UTC, inside the hour 18:00–19:00, which is
    # wholly inside neither day: never kept, and its two halves get their own days.
    kolkata = PeriodKeys("day", ZoneInfo("Asia/Kolkata"))
    first = to_us(ts("2027-01-01T00:00+05:30")) // hour * hour
    for _ in range(2):
        assert kolkata(first) == ("day", 2026, 12, 31) and kolkata(first + hour - 1) == ("day", 2027, 1, 1)
    assert first // hour not in kolkata.hours and (first - hour) // hour in kolkata.hours


@fast
@given(st.one_of(int_instants, near_changes), zones)
def test_offsets_and_local_dates_are_zoneinfo_s(us: int, tz: ZoneInfo) -> None:
    # The instant and the ends of its UTC hour, twice: the second time from what the first cached.
    hour = 3600 * 10**6
    first = us // hour * hour
    for instant in (us, first, first + hour - 1) * 2:
        local = from_us(instant).astimezone(tz)
        offset = local.utcoffset()
        assert offset is not None
        assert utc_offset_us(instant, tz) == offset // timedelta(microseconds=1)
        assert local_date(instant, tz) == local.date()
        for period in ("day", "week", "month", "year"):
            assert period_key_us(instant, period, tz) == period_key(from_us(instant), period, tz)


def test_add_us_lands_in_gaps_and_folds_by_the_one_rule() -> None:
    # 28 Feb 2027 03:30 EET + 1m → 28 Mar 03:30, skipped: the end of the gap, 01:00Z.
    assert from_us(add_us(to_us(ts("2027-02-28T03:30+02:00")), Duration(1, "m"), HEL)) == ts("2027-03-28T01:00Z")
    # 31 Aug 2027 03:30 EEST + 2m → 31 Oct 03:30, repeated: the earlier instant, 00:30Z.
    assert from_us(add_us(to_us(ts("2027-08-31T03:30+03:00")), Duration(2, "m"), HEL)) == ts("2027-10-31T00:30Z")


def _offset_changes(name: str) -> list[tuple[int, int]]:
    """(UTC second, new offset) of each change of a zone's offset, from the TZif file ``ZoneInfo`` reads."""
    import importlib.resources
    import os
    import zoneinfo
    from zoneinfo import _common  # the standard library's own TZif reader (what ZoneInfo itself uses)

    for base in zoneinfo.TZPATH:
        path = os.path.join(base, name)
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                data = _common.load_data(handle)
            break
    else:  # no system database: the tzdata package, as ZoneInfo falls back to
        with importlib.resources.files("tzdata.zoneinfo").joinpath(name).open("rb") as handle:
            data = _common.load_data(handle)
    indices, transitions, offsets = data[0], data[1], data[2]
    changes: list[tuple[int, int]] = []
    for index, when in zip(indices, transitions):
        if not changes or offsets[index] != changes[-1][1]:
            changes.append((when, offsets[index]))
    return changes


def test_no_zone_changes_its_offset_twice_within_53_hours() -> None:
    # utc_offset_us caches a whole UTC day when its two ends agree, and _quiet_offset trusts four instants
    # spanning 53 hours: both rest on no zone changing its offset and back (or twice) that fast. In the tz
    # database the nearest two changes of one zone are about four days apart (Africa/Freetown, 1939).
    from zoneinfo import available_timezones

    nearest = min((b[0] - a[0], name) for name in available_timezones()
                  for a, b in itertools.pairwise(_offset_changes(name)))
    assert nearest[0] > 53 * 3600, nearest
