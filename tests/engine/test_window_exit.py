"""window_exit(p, W) is the first instant whose window (t − W, t] no longer holds p.

Checked against the definition itself: at the exit instant p is outside the
window, one microsecond earlier it is still inside.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from poletti.engine.timecalc import Duration, in_window
from poletti.interpreter.processing import window_exit

HELSINKI = ZoneInfo("Europe/Helsinki")
TICK = timedelta(microseconds=1)


def test_31_march_leaves_the_one_month_window_at_1_may() -> None:
    # 31 March 10:00 UTC: on 30 April at 23:00 local, t − 1m = 30 March 23:00 < p (still inside);
    # at 1 May 00:00 local, t − 1m = 1 April 00:00 > p, so it has left.
    p = datetime(2026, 3, 31, 10, 0, tzinfo=timezone.utc)
    exit_at = window_exit(p, Duration(1, "m"), HELSINKI)
    assert exit_at == datetime(2026, 5, 1, 0, 0, tzinfo=HELSINKI).astimezone(timezone.utc)


def test_exit_into_a_daylight_saving_gap_is_the_end_of_the_gap() -> None:
    # New York jumps from 02:00 EST to 03:00 EDT on 8 March 2026 (07:00 UTC).
    # p = 8 January 02:00:01 EST (07:00:01 UTC). p + 2m is 8 March 02:00:01, a
    # wall time that does not exist. At 06:59:59.999999 UTC (01:59:59.999999
    # EST) t − 2m = 8 January 01:59:59.999999 < p: still inside. At 07:00 UTC
    # (03:00 EDT) t − 2m = 8 January 03:00 EST > p: outside. So the exit is
    # 07:00:00 UTC, not 07:00:01 UTC where add() resolves the gap.
    new_york = ZoneInfo("America/New_York")
    p = datetime(2026, 1, 8, 7, 0, 1, tzinfo=timezone.utc)
    assert window_exit(p, Duration(2, "m"), new_york) == datetime(2026, 3, 8, 7, 0, tzinfo=timezone.utc)


def test_plain_day_windows_are_exact() -> None:
    p = datetime(2026, 3, 28, 12, 0, tzinfo=timezone.utc)
    # 30 × 24 h, regardless of the DST change on 29 March.
    assert window_exit(p, Duration(30, "d"), HELSINKI) == p + timedelta(days=30)


@example(seconds=630001, amount=2, unit="m", zone="America/New_York")  # the gap case above
@settings(max_examples=300, deadline=None)
@given(
    seconds=st.integers(min_value=0, max_value=4 * 365 * 86400),
    amount=st.integers(min_value=1, max_value=24),
    unit=st.sampled_from(["d", "w", "m", "y"]),
    zone=st.sampled_from(["UTC", "Europe/Helsinki", "America/New_York"]),
)
def test_exit_matches_the_window_definition(seconds: int, amount: int, unit: str, zone: str) -> None:
    tz = ZoneInfo(zone)
    p = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds)
    window = Duration(amount, unit)
    exit_at = window_exit(p, window, tz)
    assert exit_at > p
    assert not in_window(p, exit_at, window, tz)
    assert in_window(p, exit_at - TICK, window, tz)
