"""A purchase at p counts in a window W during [p, p + W) and leaves it exactly once.

These tests drive the engine itself (not only the time helpers): the clock
must apply each window exit at its instant, whatever else is scheduled, and
a tier condition that stops holding then must change the tier at that
instant. Each expected instant is worked out by hand in the comments.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

import poletti
from poletti.engine.timecalc import Duration, add, in_window

HELSINKI = ZoneInfo("Europe/Helsinki")
TICK = timedelta(microseconds=1)


def purchase(pid: str, at: str, amount: str) -> dict[str, str]:
    return {"id": pid, "type": "purchase", "customer": "c1", "at": at, "amount": amount}


def test_the_issue_case_gold_ends_when_the_big_purchase_leaves() -> None:
    # spend_1m: 5 EUR at 2027-06-30T12:00Z (leaves 2027-07-30T12:00Z); 200 EUR at 2027-07-31T09:00Z
    # (leaves 2027-08-31T09:00Z). Gold from 07-31T09:00Z to 08-31T09:00Z; none ever after.
    engine = poletti.Engine(poletti.compile("tier gold when spend_1m > 100"))
    engine.process(purchase("p1", "2027-06-30T12:00:00+00:00", "5"))
    assert engine.process(purchase("p2", "2027-07-31T09:00:00+00:00", "200")).tier == "gold"
    engine.advance_to("2027-08-31T08:59:59+00:00")
    assert engine.customer("c1").tier == "gold"
    engine.advance_to("2027-08-31T09:00:00+00:00")
    assert engine.customer("c1").tier is None
    engine.advance_to("2027-12-01")
    assert engine.customer("c1").tier is None


def test_keep_runs_from_the_exit_instant() -> None:
    # 150 EUR at 2027-01-31T10:00Z, spend_1m → leaves at 2027-02-28T10:00Z (clamped). keep 7d from then:
    # gold until 2027-03-07T10:00Z exactly.
    engine = poletti.Engine(poletti.compile("tier gold when spend_1m > 100 keep 7d"))
    engine.process(purchase("p1", "2027-01-31T10:00:00+00:00", "150"))
    engine.advance_to("2027-03-07T09:59:59+00:00")
    assert engine.customer("c1").tier == "gold"
    engine.advance_to("2027-03-07T10:00:00+00:00")
    assert engine.customer("c1").tier is None


@example(day_offset=0, minutes=0, amount=1, unit="m", zone="Europe/Helsinki")
@settings(max_examples=150, deadline=None)
@given(
    day_offset=st.integers(min_value=0, max_value=3 * 365),
    minutes=st.integers(min_value=0, max_value=24 * 60 - 1),
    amount=st.integers(min_value=1, max_value=14),
    unit=st.sampled_from(["d", "w", "m", "y"]),
    zone=st.sampled_from(["UTC", "Europe/Helsinki", "America/New_York"]),
)
def test_the_engine_drops_a_purchase_from_a_window_exactly_at_p_plus_w(
        day_offset: int, minutes: int, amount: int, unit: str, zone: str) -> None:
    tz = ZoneInfo(zone)
    window = Duration(amount, unit)
    p = datetime(2027, 1, 1, tzinfo=timezone.utc) + timedelta(days=day_offset, minutes=minutes)
    end = add(p, window, tz)
    engine = poletti.Engine(poletti.compile(f'timezone "{zone}"\ntier gold when spend_{window} > 10'))
    engine.process(purchase("p1", p.isoformat(), "20"))
    assert in_window(p, end - TICK, window, tz) and not in_window(p, end, window, tz)
    engine.advance_to(end - TICK)
    assert engine.customer("c1").tier == "gold"
    engine.advance_to(end)
    assert engine.customer("c1").tier is None
