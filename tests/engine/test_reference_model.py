"""Model-based property test: the engine against a separately written model of the contract.

``tests/support/reference_model.py`` is a small evaluator of the core of
``shared/LANGUAGE.md`` (earn, convert, windows, tiers with ``keep``, segments,
expiry, pending, refunds, redeems), written without reading the engine. Here
random programs (as rule-file text from that subset) and random histories
(1–3 customers, 1–15 events at instants crowded around month ends, 29 February
and Helsinki's clock changes, with ``advance_to`` steps) run through both, and
after every step each customer's points, pending_points, lifetime_points,
tier, rewards and segments must agree; a failure prints the program, the
history and the first differing figure.

The model is first checked on its own against hand-worked cases (expected
numbers derived in comments); the engine then runs the same cases.

``-m slow`` runs the property with many more examples.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import poletti
from reference_model import Model, Rejected, add, parse_duration

UTC = timezone.utc
FIGURES = ("points", "pending_points", "lifetime_points", "tier", "rewards", "segments")
CUSTOMERS = ("c1", "c2", "c3")


# ---------------------------------------------------------------- running both

def _step_text(i: int, step: dict[str, Any]) -> str:
    return f"  [{i}] " + json.dumps(step, sort_keys=False)


def _engine_figures(engine: Any, cid: str) -> dict[str, Any]:
    view = engine.customer(cid)
    return {"points": view.points, "pending_points": view.pending_points, "lifetime_points": view.lifetime_points,
            "tier": view.tier, "rewards": {k: v for k, v in dict(view.rewards).items() if v},
            "segments": frozenset(view.segments)}


def run_both(text: str, steps: list[dict[str, Any]]) -> None:
    """Run ``steps`` through the engine and the model; raise AssertionError at the first difference."""
    engine = poletti.Engine(poletti.compile(text), explain=False)
    model = Model(text)
    customers = sorted({s["event"]["customer"] for s in steps if "event" in s})

    def fail(i: int, what: str) -> None:
        history = "\n".join(_step_text(j, s) + ("   <-- here" if j == i else "") for j, s in enumerate(steps))
        raise AssertionError(f"engine and reference model disagree after step [{i}]: {what}\n"
                             f"program:\n{text}\nhistory:\n{history}")

    for i, step in enumerate(steps):
        if "event" in step:
            engine_reason = model_reason = None
            try:
                engine.process(dict(step["event"]))
            except poletti.EventError as err:
                engine_reason = err.reason
            except Exception as err:  # a crash is a difference too
                fail(i, f"engine raised {type(err).__name__}: {err}")
            try:
                model.process(step["event"])
            except Rejected as err:
                model_reason = str(err)
            if (engine_reason is None) != (model_reason is None):
                fail(i, f"event {step['event']['id']}: model {'rejects: ' + model_reason if model_reason else 'accepts'}, "
                        f"engine {'rejects: ' + engine_reason if engine_reason else 'accepts'}")
        else:
            try:
                engine.advance_to(step["advance_to"])
            except Exception as err:
                fail(i, f"engine.advance_to raised {type(err).__name__}: {err}")
            model.advance_to(step["advance_to"])
        for cid in customers:
            want, got = model.figures(cid), _engine_figures(engine, cid)
            for name in FIGURES:
                if want[name] != got[name]:
                    fail(i, f"customer {cid} {name}: model {want[name]!r}, engine {got[name]!r}\n"
                            f"  model:  {want}\n  engine: {got}")


# ---------------------------------------------------------------- hand-worked cases

def purchase(eid: str, at: str, amount: str, customer: str = "c1", **more: Any) -> dict[str, Any]:
    return {"event": {"id": eid, "type": "purchase", "customer": customer, "at": at, "amount": amount, **more}}


def refund(eid: str, at: str, original: str, amount: str | None = None, customer: str = "c1") -> dict[str, Any]:
    event = {"id": eid, "type": "refund", "customer": customer, "at": at, "original": original}
    if amount is not None:
        event["amount"] = amount
    return {"event": event}


def redeem(eid: str, at: str, reward: str, customer: str = "c1") -> dict[str, Any]:
    return {"event": {"id": eid, "type": "redeem", "customer": customer, "at": at, "reward": reward}}


def advance(when: str) -> dict[str, Any]:
    return {"advance_to": when}


# (name, rules, steps, {step index: expected figures of c1 after it}); "rejected" marks a rejected event.
HAND_CASES: list[tuple[str, str, list[dict[str, Any]], dict[int, dict[str, Any]]]] = [
    (
        # Issue 11 item 6. 5 EUR at 06-30T12Z is in spend_1m until 07-30T12Z; 200 EUR at 07-31T09Z until
        # 08-31T09Z (31 July + 1 month). At p2: spend_1m = 200 > 100 → gold. At 08-31T09Z it leaves: 0 → none.
        "issue 11.6: a purchase leaves spend_1m at p + 1m and gold ends",
        "tier gold when spend_1m > 100",
        [purchase("p1", "2027-06-30T12:00:00Z", "5"), purchase("p2", "2027-07-31T09:00:00Z", "200"),
         advance("2027-08-31T08:59:59Z"), advance("2027-08-31T09:00:00Z"), advance("2027-12-01")],
        {0: {"tier": None}, 1: {"tier": "gold"}, 2: {"tier": "gold"}, 3: {"tier": None}, 4: {"tier": None}},
    ),
    (
        # 29 Feb 2028 12:00Z + 12m = 28 Feb 2029 12:00Z (day clamped): gold until then, none at that instant.
        "spend_12m across 29 February",
        "tier gold when spend_12m > 100",
        [purchase("p1", "2028-02-29T12:00:00Z", "150.00"), advance("2029-02-28T11:59:59Z"),
         advance("2029-02-28T12:00:00Z")],
        {0: {"tier": "gold"}, 1: {"tier": "gold"}, 2: {"tier": None}},
    ),
    (
        # Helsinki. p1 at 2027-08-31T03:30+03:00 (00:30Z). + 2m = 31 Oct 03:30 local, a repeated hour
        # (04:00 EEST → 03:00 EET at 01:00Z): the earlier instant, 03:30 EEST = 00:30Z.
        "a window exit in the repeated autumn hour takes the earlier instant",
        'timezone "Europe/Helsinki"\ntier gold when spend_2m > 100',
        [purchase("p1", "2027-08-31T03:30:00+03:00", "120"), advance("2027-10-31T00:29:59Z"),
         advance("2027-10-31T00:30:00Z")],
        {0: {"tier": "gold"}, 1: {"tier": "gold"}, 2: {"tier": None}},
    ),
    (
        # Helsinki. A purchase in the repeated hour itself: 2027-10-31T03:30+02:00 (the second 03:30, 01:30Z).
        # + 1m = 30 Nov 03:30 EET = 01:30Z.
        "a purchase in the repeated hour leaves spend_1m one calendar month later",
        'timezone "Europe/Helsinki"\ntier gold when spend_1m > 100',
        [purchase("p1", "2027-10-31T03:30:00+02:00", "120"), advance("2027-11-30T01:29:59Z"),
         advance("2027-11-30T01:30:00Z")],
        {0: {"tier": "gold"}, 1: {"tier": "gold"}, 2: {"tier": None}},
    ),
    (
        # Issue 11 item 8. Lot earned 2027-02-28T03:30+02:00 (01:30Z); + 1m = 28 March 03:30 local, skipped
        # (03:00 EET → 04:00 EEST at 01:00Z): the end of the gap, 01:00Z. 10 EUR → 10 points.
        "a lot whose expiry lands in the spring gap expires at the end of the gap",
        'timezone "Europe/Helsinki"\nearn 1 point per EUR\npoints expire after 1m',
        [purchase("p1", "2027-02-28T03:30:00+02:00", "10.00"), advance("2027-03-28T00:59:59Z"),
         advance("2027-03-28T01:00:00Z")],
        {0: {"points": 10, "lifetime_points": 10}, 1: {"points": 10}, 2: {"points": 0, "lifetime_points": 10}},
    ),
    (
        # Issue 11 item 1. 60 EUR → 60 pending; released at +14d = 2027-01-24T10:00Z and converted at once:
        # one drink, 10 left.
        "pending points released by the clock convert at that instant",
        "earn 1 point per EUR; at 50 points grant drink; points pending for 14d",
        [purchase("p1", "2027-01-10T10:00:00Z", "60"), advance("2027-01-24T09:59:59Z"),
         advance("2027-01-24T10:00:00Z")],
        {0: {"points": 0, "pending_points": 60, "lifetime_points": 60, "rewards": {}},
         1: {"points": 0, "pending_points": 60},
         2: {"points": 10, "pending_points": 0, "rewards": {"drink": 1}}},
    ),
    (
        # Issue 11 item 7. 200 EUR: spend_7d = 200 > 100 → big, and gold in the same step. At +7d both end.
        "a tier that reads a segment sees its new value in the same step",
        "segment big when spend_7d > 100; tier gold when big",
        [purchase("p1", "2027-06-01T12:00:00Z", "200"), advance("2027-06-08T11:59:59Z"),
         advance("2027-06-08T12:00:00Z")],
        {0: {"segments": frozenset({"big"}), "tier": "gold"}, 1: {"tier": "gold"},
         2: {"segments": frozenset(), "tier": None}},
    ),
    (
        # spend_30d > 100 stops holding at 2027-01-31T10:00Z (p + 30 × 24 h); keep 1m runs from there,
        # to 2027-02-28T10:00Z (31 January + 1 month, clamped).
        "keep runs from the instant the condition stopped holding",
        "tier gold when spend_30d > 100 keep 1m",
        [purchase("p1", "2027-01-01T10:00:00Z", "200"), advance("2027-02-28T09:59:59Z"),
         advance("2027-02-28T10:00:00Z")],
        {0: {"tier": "gold"}, 1: {"tier": "gold"}, 2: {"tier": None}},
    ),
    (
        # silver (lower) when spend_30d > 50; gold when spend_30d > 150. p1 100 → silver; p2 +100 → 200 → gold.
        # At p1 + 30d (02-10T10Z) spend_30d = 100 → silver; at p2 + 30d (02-20T10Z) 0 → none.
        "tiers rank by declaration order and fall as purchases leave",
        "tier silver when spend_30d > 50; tier gold when spend_30d > 150",
        [purchase("p1", "2027-01-11T10:00:00Z", "100"), purchase("p2", "2027-01-21T10:00:00Z", "100"),
         advance("2027-02-10T10:00:00Z"), advance("2027-02-20T10:00:00Z")],
        {0: {"tier": "silver"}, 1: {"tier": "gold"}, 2: {"tier": "silver"}, 3: {"tier": None}},
    ),
    (
        # 15.50 EUR: 15 points (down); x1.5 → 22.5 → 22; x2 if tier >= gold does not apply (no tier).
        # The second purchase: at step 3 the tier is still none (step 1 value), so x1.5 only: 200 → 300.
        # Then spend_12m = 215.50 > 100 → gold. Third: 10 EUR → 10 × 1.5 × 2 = 30.
        "multipliers scale the summed per points and read the tier left by step 1",
        "earn 1 point per EUR; earn x1.5; earn x2 if tier >= gold; tier gold when spend_12m > 100",
        [purchase("p1", "2027-03-01T10:00:00Z", "15.50"), purchase("p2", "2027-03-02T10:00:00Z", "200"),
         purchase("p3", "2027-03-03T10:00:00Z", "10")],
        {0: {"points": 22}, 1: {"points": 322, "tier": "gold"}, 2: {"points": 352}},
    ),
    (
        # rounding nearest: 12.50 → 12.5 → 13; 1 point per 10 EUR on 105 → 10 full units → 10; per purchase 5.
        # 13 + 10 + 5 = 28.
        "rounding nearest per rule, full units for per 10 EUR",
        "rounding nearest; earn 1 point per EUR; earn 1 point per 10 EUR; earn 5 points per purchase",
        [purchase("p1", "2027-03-01T10:00:00Z", "12.50"), purchase("p2", "2027-03-02T10:00:00Z", "105.00")],
        {0: {"points": 13 + 1 * 1 + 5}, 1: {"points": 19 + 105 + 10 + 5}},
    ),
    (
        # p1 100 → 100 → two drinks (50 each) → 0. Refund 30: floor(100 × 30/100) = 30 → −30 (debt).
        # p2 45 → pays the debt: 15. Refund of 80 more than the 70 left → rejected. Refund the rest (70):
        # floor(100 × 100/100) = 100 → 70 more → 15 − 70 = −55. lifetime stays 145. Rewards stay.
        "refunds reverse pro rata, may leave debt, later earnings pay it",
        "earn 1 point per EUR; at 50 points grant drink",
        [purchase("p1", "2027-03-01T10:00:00Z", "100"), refund("r1", "2027-03-02T10:00:00Z", "p1", "30"),
         purchase("p2", "2027-03-03T10:00:00Z", "45"), refund("r2", "2027-03-04T10:00:00Z", "p1", "80"),
         refund("r3", "2027-03-05T10:00:00Z", "p1")],
        {0: {"points": 0, "rewards": {"drink": 2}}, 1: {"points": -30, "rewards": {"drink": 2}},
         2: {"points": 15}, 3: {"rejected": True, "points": 15},
         4: {"points": -55, "lifetime_points": 145, "rewards": {"drink": 2}}},
    ),
    (
        # pending 14d. p1 40 → pending 40. Refund 10 inside the window takes p1's own pending points:
        # floor(40 × 10/40) = 10 → pending 30. Released at 03-15T10Z → 30 spendable. Redeem gift (25) → 5.
        "a refund inside the pending window takes the purchase's own pending points",
        'earn 1 point per EUR; points pending for 14d; reward gift "Gift" costs 25 points',
        [purchase("p1", "2027-03-01T10:00:00Z", "40"), refund("r1", "2027-03-02T10:00:00Z", "p1", "10"),
         redeem("d1", "2027-03-03T10:00:00Z", "gift"), redeem("d2", "2027-03-15T10:00:00Z", "gift")],
        {0: {"points": 0, "pending_points": 40, "lifetime_points": 40},
         1: {"points": 0, "pending_points": 30}, 2: {"rejected": True, "points": 0},
         3: {"points": 5, "pending_points": 0, "rewards": {"gift": 1}}},
    ),
    (
        # segment lapsed when days_since_last_purchase > 3: p1 at 03-01T10Z; lapsed from 4 whole days later
        # (03-05T10Z). The x2 boost reads the step-1 value: p2 on 03-06 earns 10 × 2 = 20 and leaves lapsed.
        "a segment on days_since_last_purchase, read by an earn multiplier",
        "segment lapsed when days_since_last_purchase > 3; earn 1 point per EUR; earn x2 if lapsed",
        [purchase("p1", "2027-03-01T10:00:00Z", "10"), advance("2027-03-05T09:59:59Z"),
         advance("2027-03-05T10:00:00Z"), purchase("p2", "2027-03-06T10:00:00Z", "10")],
        {0: {"points": 10, "segments": frozenset()}, 1: {"segments": frozenset()},
         2: {"segments": frozenset({"lapsed"})}, 3: {"points": 30, "segments": frozenset()}},
    ),
    (
        # p1 01-01T10Z. lapsed (and so gold) from 61 whole days later, 03-03T10Z. p2 at 03-10T10Z: step 5
        # still counts from p1 (68 days > 60: lapsed, gold); right after, recency is 0: lapsed ends at
        # 03-10T10Z and gold's keep runs from there to 04-10T10Z. lapsed again at 03-10 + 61d = 05-10T10Z.
        "a recency segment holds in step 5 of a purchase and ends right after it",
        "segment lapsed when days_since_last_purchase > 60; tier gold when lapsed keep 1m; earn 1 point per EUR",
        [purchase("p1", "2027-01-01T10:00:00Z", "10"), advance("2027-03-03T10:00:00Z"),
         purchase("p2", "2027-03-10T10:00:00Z", "10"), advance("2027-04-10T09:59:59Z"),
         advance("2027-04-10T10:00:00Z"), advance("2027-05-10T09:59:59Z"), advance("2027-05-10T10:00:00Z")],
        {0: {"tier": None}, 1: {"tier": "gold", "segments": frozenset({"lapsed"})},
         2: {"tier": "gold", "segments": frozenset()}, 3: {"tier": "gold"}, 4: {"tier": None},
         5: {"tier": None, "segments": frozenset()}, 6: {"tier": "gold", "segments": frozenset({"lapsed"})}},
    ),
]


def _run_model_only(rules: str, steps: list[dict[str, Any]], expected: dict[int, dict[str, Any]]) -> None:
    model = Model(rules)
    for i, step in enumerate(steps):
        rejected = False
        if "event" in step:
            try:
                model.process(step["event"])
            except Rejected:
                rejected = True
        else:
            model.advance_to(step["advance_to"])
        want = dict(expected.get(i, {}))
        assert rejected == want.pop("rejected", False), f"step [{i}]"
        got = model.figures("c1")
        for name, value in want.items():
            assert got[name] == value, f"step [{i}] {name}: model {got[name]!r}, hand-worked {value!r}"


@pytest.mark.parametrize("name,rules,steps,expected", HAND_CASES, ids=[c[0] for c in HAND_CASES])
def test_the_model_on_hand_worked_cases(name: str, rules: str, steps: list[dict[str, Any]],
                                        expected: dict[int, dict[str, Any]]) -> None:
    _run_model_only(rules, steps, expected)


@pytest.mark.parametrize("name,rules,steps,expected", HAND_CASES, ids=[c[0] for c in HAND_CASES])
def test_the_engine_on_hand_worked_cases(name: str, rules: str, steps: list[dict[str, Any]],
                                         expected: dict[int, dict[str, Any]]) -> None:
    run_both(rules, steps)


def test_the_model_resolves_calendar_shifts_by_the_contract() -> None:
    from reference_model import Duration, add
    hel = ZoneInfo("Europe/Helsinki")
    # 31 January + 1 month = 28 February (2027) / 29 February (2028), same local time.
    assert add(datetime(2027, 1, 31, 10, tzinfo=UTC), Duration(1, "m"), hel) == datetime(2027, 2, 28, 10, tzinfo=UTC)
    assert add(datetime(2028, 1, 31, 10, tzinfo=UTC), Duration(1, "m"), hel) == datetime(2028, 2, 29, 10, tzinfo=UTC)
    # 29 February 2028 + 1y = 28 February 2029.
    assert add(datetime(2028, 2, 29, 10, tzinfo=UTC), Duration(1, "y"), hel) == datetime(2029, 2, 28, 10, tzinfo=UTC)
    # Into the spring gap (28 March 2027 03:00–04:00 local skipped at 01:00Z): the end of the gap.
    assert add(datetime(2027, 2, 28, 1, 30, tzinfo=UTC), Duration(1, "m"), hel) == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    # Into the repeated hour (31 October 2027 03:00–04:00 local twice): the earlier instant (EEST, +03:00).
    assert add(datetime(2027, 9, 30, 0, 30, tzinfo=UTC), Duration(1, "m"), hel) == datetime(2027, 10, 30, 0, 30, tzinfo=UTC)
    assert add(datetime(2027, 8, 31, 0, 30, tzinfo=UTC), Duration(2, "m"), hel) == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
    # Days are 24-hour spans across a clock change.
    assert add(datetime(2027, 3, 27, 12, tzinfo=UTC), Duration(2, "d"), hel) == datetime(2027, 3, 29, 12, tzinfo=UTC)


# ---------------------------------------------------------------- strategies

HELSINKI = "Europe/Helsinki"
STATUS_WINDOWS = ["7d", "30d", "2w", "1m", "2m", "3m", "12m", "1y", "lifetime"]
TIERS = ("silver", "gold")  # declared lowest first
SEGMENTS = ("big", "regular", "lapsed")
# Instants where calendar arithmetic is delicate, in UTC.
ANCHORS = [datetime.fromisoformat(s) for s in (
    "2026-03-28T01:30:00+00:00",  # Helsinki 03:30; + 1y lands in the 2027 spring gap
    "2026-10-31T01:30:00+00:00",  # Helsinki 03:30; + 1y lands in the 2027 repeated hour
    "2027-01-31T12:00:00+00:00", "2027-01-31T22:30:00+00:00",  # month end; local 1 February
    "2027-02-28T01:30:00+00:00",  # Helsinki 03:30; + 1m lands in the gap
    "2027-02-28T12:00:00+00:00",
    "2027-03-28T01:00:00+00:00",  # Helsinki spring forward
    "2027-03-31T10:00:00+00:00", "2027-04-30T21:30:00+00:00",
    "2027-06-30T12:00:00+00:00", "2027-07-31T09:00:00+00:00", "2027-07-31T00:30:00+00:00",
    "2027-08-31T00:30:00+00:00",  # Helsinki 03:30; + 2m lands in the repeated hour
    "2027-09-30T23:00:00+00:00",
    "2027-10-31T00:30:00+00:00", "2027-10-31T01:30:00+00:00",  # the two 03:30s of Helsinki's autumn
    "2027-12-31T22:00:00+00:00",
    "2028-01-31T12:00:00+00:00", "2028-02-28T12:00:00+00:00", "2028-02-29T12:00:00+00:00",
    "2028-02-29T22:30:00+00:00", "2028-03-26T01:00:00+00:00", "2028-03-31T12:00:00+00:00",
    "2029-02-28T12:00:00+00:00",
)]
OFFSET_MINUTES = st.one_of(
    st.just(0),
    st.sampled_from([-30, 30, -60, 60, -120, 120, -1440, 1440, 2880, 43200]),
    st.integers(-4 * 1440, 4 * 1440).map(lambda m: m - m % 30),
)


BOUNDARIES = ["7d", "14d", "2w", "30d", "60d", "1m", "2m", "3m", "12m", "1y"]
SHIFTS = [timedelta(0), timedelta(0), timedelta(seconds=-1), timedelta(seconds=1)]


def _points(n: str) -> str:
    return "point" if n == "1" else "points"


@st.composite
def status_atoms(draw: Any, segments: tuple[str, ...] = (), days: bool = False) -> str:
    kinds = ["spend", "spend", "purchases"] + (["days"] if days else []) + (["segment"] if segments else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "segment":
        return draw(st.sampled_from(segments))
    if kind == "days":
        op = draw(st.sampled_from([">", ">=", "<"]))
        quantity = draw(st.sampled_from(["days_since_last_purchase"] * 3 + ["member_days"]))
        return f"{quantity} {op} {draw(st.sampled_from([0, 1, 3, 10, 30]))}"
    w = draw(st.sampled_from(STATUS_WINDOWS))
    if kind == "purchases":
        return f"purchases_{w} >= {draw(st.sampled_from([1, 2, 3]))}"
    unit = draw(st.sampled_from(["", "", " EUR"]))
    return f"spend_{w} {draw(st.sampled_from(['>', '>=']))} {draw(st.sampled_from([20, 50, 100, 150, 300]))}{unit}"


@st.composite
def conditions(draw: Any, atoms: st.SearchStrategy[str]) -> str:
    shape = draw(st.sampled_from(["atom", "atom", "atom", "and", "or", "not", "mixed"]))
    a = draw(atoms)
    if shape == "atom":
        return a
    if shape == "not":
        return f"not ({a})" if " " in a else f"not {a}"
    b = draw(atoms)
    if shape == "mixed":
        return f"({a} or {b}) and {draw(atoms)}"
    return f"{a} {shape} {b}"


@st.composite
def earn_atoms(draw: Any, tiers: tuple[str, ...], segments: tuple[str, ...]) -> str:
    choices = [status_atoms(), st.sampled_from(["points >= 10", "points >= 30 points", "points < 5", "lifetime_points >= 100",
                                                "pending_points > 0", "days_since_last_purchase > 3"])]
    if tiers:
        choices.append(st.sampled_from(["tier == none"] + [f"tier >= {t}" for t in tiers] + [f"tier == {t}" for t in tiers]))
    if segments:
        choices.append(st.sampled_from(list(segments) + [f"not {s}" for s in segments]))
    return draw(st.one_of(*choices))


@st.composite
def programs(draw: Any) -> str:
    lines: list[str] = []
    zone = draw(st.sampled_from(["UTC", HELSINKI, HELSINKI, None]))
    if zone:
        lines.append(f'timezone "{zone}"')
    rounding = draw(st.sampled_from([None, "down", "nearest", "up"]))
    if rounding:
        lines.append(f"rounding {rounding}")
    segments = tuple(SEGMENTS[:draw(st.integers(0, 2))])
    for name in segments:
        lines.append(f"segment {name} when {draw(conditions(status_atoms(days=True)))}")
    tiers = tuple(TIERS[len(TIERS) - draw(st.integers(0, 2)):])
    if tiers:
        # Gold needs more than silver on the same window, so no tier ever shadows a higher one.
        w = draw(st.sampled_from(STATUS_WINDOWS))
        low, high = sorted(draw(st.lists(st.sampled_from([20, 50, 100, 150, 300]), min_size=2, max_size=2, unique=True)))
        for name, threshold in zip(tiers, (low, high) if len(tiers) == 2 else (high,)):
            if name == "gold" and draw(st.integers(0, 3)) == 0:
                w = draw(st.sampled_from(STATUS_WINDOWS))  # E128 cases this makes are filtered out below
            cond = f"spend_{w} > {threshold}"
            # gold "or" anything would hold whenever silver does (E128: silver unreachable)
            extra = draw(st.sampled_from(["", "", "and", "or"] if len(tiers) == 1 else ["", "and"]))
            if extra and name == tiers[-1]:
                cond = f"{cond} {extra} {draw(status_atoms(segments=segments))}"
            elif segments and draw(st.booleans()) and name == tiers[0]:
                cond = draw(st.sampled_from(segments))
            keep = draw(st.sampled_from(["", "", "", " keep 1m", " keep 30d", " keep 3m", " keep 12m"]))
            lines.append(f"tier {name} when {cond}{keep}")
    earn_if = conditions(earn_atoms(tiers, segments))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["eur", "eur", "money", "purchase", "category"]))
        if kind == "eur":
            n = draw(st.sampled_from(["1", "2", "1.5", "0.5"]))
            rule = f"earn {n} {_points(n)} per EUR"
        elif kind == "money":
            n = draw(st.sampled_from(["1", "2", "1.5"]))
            rule = f"earn {n} {_points(n)} per {draw(st.sampled_from(['10', '5', '2.50']))} EUR"
        elif kind == "purchase":
            n = draw(st.sampled_from(["1", "5", "10"]))
            rule = f"earn {n} {_points(n)} per purchase"
        else:
            n = draw(st.sampled_from(["1", "2"]))
            rule = f'earn {n} {_points(n)} per EUR on category "beans"'
        if draw(st.integers(0, 3)) == 0:
            rule += f" if {draw(earn_if)}"
        lines.append(rule)
    for _ in range(draw(st.integers(0, 1))):
        factor = draw(st.sampled_from(["2", "1.5", "3"]))
        lines.append(f"earn x{factor}" + (f" if {draw(earn_if)}" if draw(st.booleans()) else ""))
    rewards = {"drink": 'reward drink "Free drink" value 3.50 EUR', "cake": "reward cake value 5 EUR"}
    for _ in range(draw(st.integers(0, 2))):
        reward = draw(st.sampled_from(sorted(rewards)))
        lines.append(f"at {draw(st.sampled_from([10, 25, 50, 100]))} points grant {reward}")
        if draw(st.integers(0, 3)):
            lines.append(rewards[reward])
    if draw(st.booleans()):
        lines.append(f'reward gift "Gift" costs {draw(st.sampled_from([5, 20, 30]))} points')
    if draw(st.booleans()):
        lines.append(f"points expire after {draw(st.sampled_from(['30d', '60d', '1m', '2m', '3m', '12m', '1y']))}")
    if draw(st.integers(0, 2)) == 0:
        lines.append(f"points pending for {draw(st.sampled_from(['7d', '14d', '2w']))}")
    lines = list(dict.fromkeys(lines))  # a reward declared twice would be an error
    shuffled = [lines[i] for i in draw(st.permutations(range(len(lines))))]
    tier_lines = iter([line for line in lines if line.startswith("tier ")])  # tiers keep their rank order
    shuffled = [next(tier_lines) if line.startswith("tier ") else line for line in shuffled]
    separator = draw(st.sampled_from(["\n", "\n", "; "]))
    return separator.join(shuffled)


def _amount(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


@st.composite
def histories(draw: Any, program: str) -> list[dict[str, Any]]:
    model = Model(program)  # for the zone: a date alone is local midnight
    tz = model.prog.tz
    n_customers = draw(st.integers(1, 3))
    timeline: list[tuple[datetime, dict[str, Any]]] = []

    drawn: list[datetime] = []

    def instant() -> tuple[datetime, str]:
        if drawn and draw(st.integers(0, 2)) == 0:
            # exactly where an earlier instant leaves a window, expires or is released (or a second off)
            base, shift = draw(st.sampled_from(drawn)), draw(st.sampled_from(SHIFTS))
            t = add(base, parse_duration(draw(st.sampled_from(BOUNDARIES))), tz) + shift
        else:
            t = draw(st.sampled_from(ANCHORS)) + timedelta(minutes=draw(OFFSET_MINUTES))
        drawn.append(t)
        style = draw(st.sampled_from(["Z", "Z", "local", "date"]))
        if style == "date":
            text = t.astimezone(tz).date().isoformat()
            return model.instant(text), text
        if style == "local":
            return t, t.astimezone(tz).isoformat()
        return t, t.strftime("%Y-%m-%dT%H:%M:%SZ")

    for _ in range(draw(st.integers(1, 15))):
        t, text = instant()
        timeline.append((t, {"event": {"customer": f"c{draw(st.integers(1, n_customers))}", "at": text}}))
    for _ in range(draw(st.integers(0, 3))):
        t, text = instant()
        timeline.append((t, {"advance_to": text}))
    timeline.sort(key=lambda pair: pair[0])
    last = timeline[-1][0]
    end = draw(st.sampled_from([timedelta(days=1), timedelta(days=40), timedelta(days=400), None]))
    timeline.append((last, {"advance_to": "2030-01-01" if end is None else (last + end).strftime("%Y-%m-%dT%H:%M:%SZ")}))

    purchases: dict[str, list[tuple[str, int]]] = {}
    steps: list[dict[str, Any]] = []
    for i, (_, step) in enumerate(timeline):
        if "event" in step:
            event = step["event"]
            mine = purchases.setdefault(event["customer"], [])
            kind = draw(st.sampled_from(["purchase"] * 6 + ["refund"] * 2 + ["redeem"])) if mine else "purchase"
            event.update(id=f"e{i}", type=kind)
            if kind == "purchase":
                cents = draw(st.one_of(st.sampled_from([500, 1250, 1550, 9999, 10000, 10001, 20000, 4995, 99]),
                                       st.integers(1, 30000)))
                event["amount"] = _amount(cents)
                if draw(st.integers(0, 3)) == 0:
                    price = draw(st.integers(1, cents))
                    event["items"] = [{"sku": "b1", "category": draw(st.sampled_from(["beans", "tea"])),
                                       "quantity": 1, "price": _amount(price)}]
                mine.append((event["id"], cents))
            elif kind == "refund":
                original, cents = draw(st.sampled_from(mine))
                event["original"] = original
                how = draw(st.sampled_from(["rest", "part", "part", "too much", "nothing"]))
                if how == "part":
                    event["amount"] = _amount(draw(st.integers(1, cents)))
                elif how == "too much":
                    event["amount"] = _amount(cents + 100)
                elif how == "nothing":
                    event["amount"] = "0.00"
            else:
                event["reward"] = "gift"
            step["event"] = {k: event[k] for k in ("id", "type", "customer", "at")} | \
                {k: v for k, v in event.items() if k not in ("id", "type", "customer", "at")}
        steps.append(step)
    return steps


@st.composite
def cases(draw: Any) -> tuple[str, list[dict[str, Any]]]:
    program = draw(programs())
    return program, draw(histories(program))


ISSUE_11_6 = ("tier gold when spend_1m > 100",
              [purchase("p1", "2027-06-30T12:00:00Z", "5"), purchase("p2", "2027-07-31T09:00:00Z", "200"),
               advance("2027-12-01")])


def _check(case: tuple[str, list[dict[str, Any]]]) -> None:
    text, steps = case
    try:
        poletti.compile(text)
    except poletti.CompileError as err:
        # silver defined through a segment equivalent to gold's condition can never be reached: rightly refused
        assume(not all(d.code == "E128" for d in err.errors))
        raise
    run_both(text, steps)


@example(case=ISSUE_11_6)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=cases())
def test_the_engine_agrees_with_the_reference_model(case: tuple[str, list[dict[str, Any]]]) -> None:
    _check(case)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=cases())
def test_the_engine_agrees_with_the_reference_model_at_length(case: tuple[str, list[dict[str, Any]]]) -> None:
    _check(case)
