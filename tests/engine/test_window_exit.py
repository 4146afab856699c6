"""A purchase at p counts in a window W during [p, p + W) and leaves it exactly once.

These tests drive the engine itself (not only the time helpers): the clock
must apply each window exit at its instant, whatever else is scheduled, and
a tier condition that stops holding then must change the tier at that
instant. Each expected instant is worked out by hand in the comments.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import poletti
from poletti.engine.timecalc import Duration, add, in_window, to_us

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


# ---- exits that can change nothing are not stops of the clock (engine/compiler.py, WindowWatch)
#
# A window's figures only fall as entries leave it. So `spend_12m > 100` once false stays false until the next
# event, and `purchases_30d < 1` once true stays true: the clock does not stop at the window's exits then, and a
# customer with nothing else to come is not scheduled at all (an advance does not visit them). The exits are
# still taken out before anything reads the window. Each case runs on the generated code and on the interpreter.

ENGINES = [pytest.param({"explain": False}, id="generated"), pytest.param({"generated": False}, id="interpreted")]


def _scheduled(engine: poletti.Engine, customer: str = "c1") -> int | None:
    """The customer's next change as the engine remembered it, checked against the memory store's schedule
    (its ``_next``: ``due`` would take the customer out of it)."""
    instant = engine.state(customer).next_change_at
    assert engine.store._next.get(customer) == instant
    return instant


def _us(text: str) -> int:
    return to_us(datetime.fromisoformat(text))


@pytest.mark.parametrize("options", ENGINES)
def test_below_the_tier_nothing_is_scheduled_and_the_window_is_right_at_the_next_event(options: dict) -> None:
    engine = poletti.Engine(poletti.compile('timezone "UTC"\nearn 1 point per EUR\ntier gold when spend_12m > 100'),
                            **options)
    # 60 EUR at 2025-01-10T12:00Z: spend_12m 60, not above 100; falling, it can never be: nothing to come.
    engine.process(purchase("p1", "2025-01-10T12:00:00+00:00", "60"))
    assert _scheduled(engine) is None
    assert engine.advance_to("2026-06-01T00:00:00+00:00") == []
    # 50 EUR at 2026-06-01T10:00Z: p1 left at 2026-01-10T12:00Z, so spend_12m is 50 (not 110): no gold.
    outcome = engine.process(purchase("p2", "2026-06-01T10:00:00+00:00", "50"))
    assert (outcome.tier, outcome.earned, outcome.points) == (None, 50, 110)
    assert engine.state("c1").windows[0].spend == 50_000_000  # micro-units
    assert engine.state("c1").windows[0].count == 1


@pytest.mark.parametrize("options", ENGINES)
def test_at_the_bound_exactly(options: dict) -> None:
    engine = poletti.Engine(poletti.compile('timezone "UTC"\ntier gold when spend_12m > 100'), **options)
    # Exactly 100 EUR: not above 100, and it cannot rise without an event: not scheduled.
    engine.process(purchase("p1", "2025-01-10T12:00:00+00:00", "100"))
    assert _scheduled(engine) is None
    # A millionth of a euro more (the smallest amount there is) is above 100: gold, and now p1's exit at
    # 2026-01-10T12:00Z (p + 12m) can end it: the clock stops there, and gold ends at that instant.
    assert engine.process(purchase("p2", "2025-02-01T09:00:00+00:00", "0.000001")).tier == "gold"
    assert _scheduled(engine) == _us("2026-01-10T12:00:00+00:00")
    assert engine.advance_to("2026-01-10T11:59:59.999999+00:00") == []
    [outcome] = engine.advance_to("2026-01-10T12:00:00+00:00")
    assert (outcome.tier_before, outcome.tier) == ("gold", None)
    # Left: p2's millionth (it leaves 2026-02-01T09:00Z), far below 100: nothing more to come.
    assert _scheduled(engine) is None


@pytest.mark.parametrize("options", ENGINES)
def test_a_condition_that_becomes_true_as_the_window_empties(options: dict) -> None:
    engine = poletti.Engine(poletti.compile('timezone "UTC"\ntier quiet when purchases_30d < 1'), **options)
    # One purchase at 2025-03-01T08:00Z: purchases_30d is 1, so "< 1" is false, and the purchase's exit at
    # 2025-03-31T08:00Z makes it true: scheduled there, and the tier comes at that instant.
    assert engine.process(purchase("p1", "2025-03-01T08:00:00+00:00", "5")).tier is None
    assert _scheduled(engine) == _us("2025-03-31T08:00:00+00:00")
    [outcome] = engine.advance_to("2025-04-15T00:00:00+00:00")
    assert (outcome.tier_before, outcome.tier) == (None, "quiet")
    assert engine.customer("c1").tier == "quiet"
    # Now "< 1" holds, and an emptier window cannot undo it: nothing to come.
    assert _scheduled(engine) is None


@pytest.mark.parametrize("options", ENGINES)
def test_the_lowest_tier_decides_and_a_window_read_otherwise_stops_the_clock_at_every_exit(options: dict) -> None:
    tiers = 'timezone "UTC"\ntier silver when 30 < spend_12m\ntier gold when spend_12m > 80\n'
    engine = poletti.Engine(poletti.compile(tiers), **options)
    # 50 EUR: not gold (and never by exits), but silver ("30 < spend_12m", written the other way round), which
    # the exit at 2026-01-05T10:00Z ends: scheduled there.
    assert engine.process(purchase("p1", "2025-01-05T10:00:00+00:00", "50")).tier == "silver"
    assert _scheduled(engine) == _us("2026-01-05T10:00:00+00:00")
    # The same purchase with the window in arithmetic: every exit may change the condition, so its exit is a stop.
    other = poletti.Engine(poletti.compile('timezone "UTC"\ntier gold when spend_12m - spend_30d > 1000'), **options)
    other.process(purchase("p1", "2025-01-05T10:00:00+00:00", "50"))
    assert _scheduled(other) == _us("2025-02-04T10:00:00+00:00")  # p1 leaves the 30-day window first


def test_the_bounds_each_comparison_gives() -> None:
    from poletti.engine.compiler import WindowWatch

    def watches(condition: str) -> tuple[WindowWatch, ...]:
        return poletti.compile(f"tier gold when {condition}").compiled.time_sources.watches

    # Money in micro-units: "> 100" can change while spend > 100 EUR, that is from 100,000,001 units up.
    assert watches("spend_12m > 100") == (WindowWatch(spend_from=100_000_001),)
    assert watches("spend_12m >= 100") == (WindowWatch(spend_from=100_000_000),)
    assert watches("spend_12m < 0.5") == (WindowWatch(spend_from=500_000),)
    assert watches("100 >= spend_12m") == (WindowWatch(spend_from=100_000_001),)  # spend_12m <= 100
    # Counts: "> 2.5" is true from 3 up, and changes when the count falls to 2 → from 3; "<= 2.5" the same;
    # "== 2" changes while the count is at least 2; "!= 2" with it.
    assert watches("visits_30d > 2.5") == (WindowWatch(count_from=3),)
    assert watches("visits_30d <= 2.5") == (WindowWatch(count_from=3),)
    assert watches("visits_30d == 2") == (WindowWatch(count_from=2),)
    assert watches("not (visits_30d != 2)") == (WindowWatch(count_from=2),)
    # Two comparisons on one window: the lower bound of each figure; purchases_12m and spend_12m share a window.
    assert watches("spend_12m > 100 or spend_12m >= 50 and purchases_12m > 3") == (
        WindowWatch(spend_from=50_000_000, count_from=4),)
    # "> 0" changes while there is any spend; "> 0.000001" from two micro-units; money written with its currency.
    assert watches("spend_12m > 0") == (WindowWatch(spend_from=1),)
    assert watches("spend_12m > 0.000001") == (WindowWatch(spend_from=2),)
    assert watches("spend_12m >= 1000000000000 EUR") == (WindowWatch(spend_from=10**18),)
    # Read any other way: every exit.
    assert watches("spend_12m * 2 > 100") == (WindowWatch(always=True),)
