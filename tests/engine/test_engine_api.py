"""The embedding API through ``poletti.Engine``: validation, duplicates, batches, the clock.

Every rejection must raise ``poletti.EventError`` with a reason that says
what is wrong, and leave the customer exactly as before: the customer view
*and* the raw state (unstructured with the one cattrs converter), and the
event id must stay unused. Expected numbers are worked out by hand in the
comments. The tests on the ``engine`` fixture run twice: explaining (the
interpreter) and with explain off (the generated code: for the memory store,
the generated lane, which hands whatever is not the common event to the
engine's own path).
"""

from __future__ import annotations

import copy
import gc
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest

import poletti
from poletti.engine.timecalc import from_us
from poletti.engine.serial import converter

RULES = """
reward free_drink "Free drink" value 3.50 EUR costs 50 points
reward cake "Cake" value 4 EUR
earn 1 point per EUR
on review grant cake
points expire after 12m
"""

P1 = {"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00+00:00", "amount": "40.00"}


def event(**fields: Any) -> dict[str, Any]:
    """An event for c1 at 2026-01-06 (after P1), with the given fields replaced (None removes a field)."""
    base = {"id": "e1", "type": "purchase", "customer": "c1", "at": "2026-01-06T10:00:00+00:00", "amount": "10.00"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture(params=["explained", "generated"])
def engine(request: pytest.FixtureRequest) -> Any:
    """The engine after P1: explaining (the interpreter), and with explain off (the generated code; with the
    memory store, the generated lane that takes the common event in one function)."""
    engine = poletti.Engine(poletti.compile(RULES), explain=request.param == "explained")
    assert (engine._lane is not None) is (request.param == "generated")
    outcome = engine.process(dict(P1))
    assert (outcome.status, outcome.earned, outcome.points) == ("applied", 40, 40)
    return engine


def snapshot(engine: Any, customer: str = "c1") -> tuple[Any, Any]:
    state = engine.state(customer)
    return attrs.asdict(engine.customer(customer)), None if state is None else converter.unstructure(state)


def assert_rejected(engine: Any, raw: Any, *reason_parts: str) -> poletti.EventError:
    before = snapshot(engine)
    sent = copy.deepcopy(raw)
    with pytest.raises(poletti.EventError) as caught:
        engine.process(raw)
    err = caught.value
    for part in reason_parts:
        assert part.lower() in err.reason.lower(), f"{part!r} not in {err.reason!r}"
    assert snapshot(engine) == before, "a rejected event changed the customer"
    assert raw == sent, "the engine modified the caller's dict"
    return err


# ----------------------------------------------------------- malformed events


def test_not_a_dict(engine: Any) -> None:
    for raw in ("purchase", ["p"], None, 42):
        err = assert_rejected(engine, raw, "must be an object")
        assert err.event_id is None


@pytest.mark.parametrize("field", ["id", "type", "customer", "at"])
def test_missing_required_field(engine: Any, field: str) -> None:
    assert_rejected(engine, event(**{field: None}), f"missing required field '{field}'")
    assert_rejected(engine, event(**{field: ""}), f"'{field}'")


@pytest.mark.parametrize("amount", ["twelve", "12,50", "", [], {"v": 1}, True, float("nan"), "Infinity"])
def test_non_numeric_amount(engine: Any, amount: Any) -> None:
    assert_rejected(engine, event(amount=amount), "amount")


def test_purchase_without_amount(engine: Any) -> None:
    assert_rejected(engine, event(amount=None), "needs an 'amount'")


def test_unknown_type(engine: Any) -> None:
    assert_rejected(engine, event(type="teleport", amount=None), "unknown event type 'teleport'")


def test_wrong_currency(engine: Any) -> None:
    assert_rejected(engine, event(currency="USD"), "currency USD", "EUR")


def test_negative_amount(engine: Any) -> None:
    assert_rejected(engine, event(amount="-0.01"), "must not be negative")


def test_negative_item_price(engine: Any) -> None:
    assert_rejected(engine, event(items=[{"category": "x", "price": "-1"}]), "price must not be negative")


def test_timestamp_without_offset(engine: Any) -> None:
    assert_rejected(engine, event(at="2026-01-06T10:00:00"), "no UTC offset")


def test_timestamp_that_is_not_one(engine: Any) -> None:
    assert_rejected(engine, event(at="yesterday"), "timestamp", "at")
    assert_rejected(engine, event(at=1767693600), "timestamp", "at")


def test_timestamp_out_of_range(engine: Any) -> None:
    # Regression: 9999 + 12m (the expiry) overflowed *after* the purchase was
    # recorded, raising ValueError and leaving a half-applied event behind.
    assert_rejected(engine, event(at="9999-12-31T00:00:00+00:00"), "out of range")
    assert_rejected(engine, event(at="0001-01-01T00:00:00+00:00"), "out of range")


def test_date_at_the_calendar_edge_in_a_zone_ahead_of_utc() -> None:
    # Midnight of 1 January year 1 in Helsinki is before year 1 in UTC: the
    # conversion overflows, and the reason must still say what is wrong.
    import poletti

    helsinki = poletti.Engine(poletti.compile('timezone "Europe/Helsinki"\nearn 1 point per EUR'))
    with pytest.raises(poletti.EventError, match="out of range"):
        helsinki.process({"id": "x", "type": "visit", "customer": "c", "at": "0001-01-01"})
    assert list(helsinki.customers()) == []


def test_absurd_amount(engine: Any) -> None:
    # 10^15 EUR and more is a bug upstream (and would overflow Decimal's 28 exact digits in sums).
    assert_rejected(engine, event(amount="1e400"), "too large")
    assert_rejected(engine, event(items=[{"sku": "a", "quantity": 10**12, "price": "1"}]), "too large")


def test_out_of_order(engine: Any) -> None:
    # P1 was at 2026-01-05T10:00Z; one microsecond earlier is older.
    assert_rejected(engine, event(at="2026-01-05T09:59:59.999999+00:00"), "older than", "2026-01-05T10:00:00")
    # The same instant is fine: 10.00 → 10 → 50.
    assert engine.process(event(at="2026-01-05T10:00:00+00:00")).points == 50


def test_older_than_the_engine_clock(engine: Any) -> None:
    engine.advance_to("2026-02-01")
    assert_rejected(engine, event(customer="c2", at="2026-01-31T23:00:00+00:00"), "engine clock")


def test_refund_of_an_unknown_purchase(engine: Any) -> None:
    assert_rejected(engine, event(type="refund", original="p9", amount="5.00"), "unknown purchase 'p9'")


def test_refund_of_another_customers_purchase(engine: Any) -> None:
    # p1 belongs to c1: for c2 it is an unknown purchase.
    before_c2 = snapshot(engine, "c2")
    with pytest.raises(poletti.EventError, match="unknown purchase"):
        engine.process(event(customer="c2", type="refund", original="p1", amount="5.00"))
    assert snapshot(engine, "c2") == before_c2
    assert engine.state("c2") is None


def test_refund_of_more_than_is_left(engine: Any) -> None:
    # 40.00 bought; refund 30.00 → floor(40 × 30/40) = 30 reversed → 10 points; 10.00 EUR left.
    outcome = engine.process(event(id="r1", type="refund", original="p1", amount="30.00"))
    assert (outcome.reversed, outcome.points) == (30, 10)
    assert_rejected(engine, event(id="r2", type="refund", original="p1", amount="10.01",
                                  at="2026-01-07T10:00:00+00:00"), "more than is left", "10.00")
    # The rest (10.00) is fine: floor(40 × 40/40) = 40 in all → 10 more → 0.
    outcome = engine.process(event(id="r2", type="refund", original="p1", amount=None, at="2026-01-07T10:00:00+00:00"))
    assert (outcome.reversed, outcome.points) == (10, 0)
    assert_rejected(engine, event(id="r3", type="refund", original="p1", amount=None,
                                  at="2026-01-08T10:00:00+00:00"), "already fully refunded")


def test_refund_amount_must_be_positive(engine: Any) -> None:
    assert_rejected(engine, event(type="refund", original="p1", amount="0"), "above 0")


def test_refund_without_original(engine: Any) -> None:
    assert_rejected(engine, event(type="refund", amount="5.00"), "original")


def test_redeem_of_an_unknown_reward(engine: Any) -> None:
    assert_rejected(engine, event(type="redeem", reward="pony", amount=None), "unknown reward 'pony'", "free_drink")


def test_redeem_of_a_reward_without_costs(engine: Any) -> None:
    assert_rejected(engine, event(type="redeem", reward="cake", amount=None), "cannot be redeemed", "costs")


def test_redeem_with_a_short_balance(engine: Any) -> None:
    # 40 points < 50.
    assert_rejected(engine, event(type="redeem", reward="free_drink", amount=None), "short", "40", "50")
    # After 10.00 more: 50 → redeem → 0.
    engine.process(event(id="p2"))
    outcome = engine.process(event(id="x1", type="redeem", reward="free_drink", amount=None))
    assert (outcome.status, outcome.spent, outcome.points, outcome.granted) == ("applied", 50, 0, {"free_drink": 1})


def test_redeem_short_because_the_lot_expires_at_that_instant(engine: Any) -> None:
    # p1's 40 + p2's 10 earned 2026-01-06: 50. p1's lot is gone at 2027-01-05T10:00Z → 10 left: short.
    engine.process(event(id="p2"))
    assert_rejected(engine, event(id="x1", type="redeem", reward="free_drink", amount=None,
                                  at="2027-01-05T10:00:00+00:00"), "short")
    # The rejected redeem did not apply the expiry either: still 50 until a later event or advance_to.
    assert engine.customer("c1").points == 50


def test_a_birthday_on_a_purchase_is_accepted_and_kept() -> None:
    # Language v2: any event may carry `birthday` (a wide export's purchase row); it sets the birthday.
    engine = poletti.Engine(poletti.compile("earn 1 point per EUR\non birthday grant cake"))
    engine.process(event(id="p1", at="2026-04-01T10:00:00+00:00", birthday="1990-05-01"))
    # The birthday starts 2026-05-01 00:00 UTC: the cake is granted at that instant.
    engine.advance_to("2026-04-30T23:59:59+00:00")
    assert engine.customer("c1").rewards == {}
    engine.advance_to("2026-05-01T00:00:00+00:00")
    assert engine.customer("c1").rewards == {"cake": 1}


def test_bad_birthday(engine: Any) -> None:
    assert_rejected(engine, event(type="signup", amount=None, birthday="1990-02-30"), "birthday")


def test_amount_on_an_event_that_has_none(engine: Any) -> None:
    assert_rejected(engine, event(type="visit"), "'amount' only belongs")


def test_a_rejected_event_does_not_use_up_its_id(engine: Any) -> None:
    assert_rejected(engine, event(id="e5", amount="oops"), "amount")
    assert engine.process(event(id="e5")).status == "applied"


def test_a_rejection_of_a_new_customer_leaves_no_trace(engine: Any) -> None:
    assert_rejected(engine, event(customer="c9", amount="-1"), "negative")
    assert engine.state("c9") is None
    assert "c9" not in list(engine.customers())


# ----------------------------------------------------------------- duplicates


def test_duplicate_changes_nothing_and_reports_the_figures_now(engine: Any) -> None:
    before = snapshot(engine)
    # The same event: the same instant in another offset, the amount as 40 — the same content.
    again = engine.process(dict(P1, amount="40", at="2026-01-05T12:00:00+02:00"))
    assert again.status == "duplicate"
    assert (again.earned, again.granted, again.trace) == (0, {}, ())
    view = engine.customer("c1")
    assert (again.points, again.pending_points, again.lifetime_points) == (view.points, view.pending_points,
                                                                             view.lifetime_points)
    assert again.lifetime_points > 0
    assert "duplicate" in again.explain()
    assert snapshot(engine) == before


def test_the_same_id_with_other_content_is_a_conflict(engine: Any) -> None:
    error = assert_rejected(engine, dict(P1, amount="999.00", at="2026-02-01T10:00:00+00:00"), "conflict", "amount",
                            "40.00", "999.00")
    assert "'p1'" in error.reason


def test_an_id_of_another_customer_is_a_conflict(engine: Any) -> None:
    assert_rejected(engine, dict(P1, customer="c2"), "conflict", "customer c1 then, c2 now")
    assert engine.state("c2") is None


def test_duplicate_even_when_it_would_be_rejected_now(engine: Any) -> None:
    # An id seen before is a no-op, even if the event is now out of order.
    engine.process(event(id="p2", at="2026-03-01T10:00:00+00:00"))
    assert engine.process(dict(P1)).status == "duplicate"


# ---------------------------------------------------------------- process_many


def test_process_many_reports_rejections_and_goes_on() -> None:
    engine = poletti.Engine(poletti.compile(RULES))
    batch = [
        dict(P1),  # 40
        event(id="bad", amount="-3"),  # rejected
        "not an event",  # rejected, no id
        event(id="p2"),  # 10 → 50
        dict(P1),  # duplicate
        event(id="r1", type="review", amount=None, at="2026-01-07T10:00:00+00:00"),  # cake
    ]
    result = engine.process_many(batch)
    assert [o.status for o in result.outcomes] == ["applied", "applied", "duplicate", "applied"]
    assert result.duplicates == 1
    assert [(r.index, r.event_id, r.customer) for r in result.rejected] == [(1, "bad", "c1"), (2, None, None)]
    assert "negative" in result.rejected[0].reason
    assert "object" in result.rejected[1].reason
    view = engine.customer("c1")
    assert (view.points, view.lifetime_points, view.rewards) == (50, 50, {"cake": 1})


# ---------------------------------------------------------------- the clock


def test_advance_to_applies_expiry_and_the_past_is_harmless(engine: Any) -> None:
    # p1's 40 points, earned 2026-01-05T10:00Z, are gone at 2027-01-05T10:00Z.
    assert engine.advance_to("2027-01-05T09:59:59+00:00") == []
    outcomes = engine.advance_to("2027-02-01")
    assert [(o.customer, o.type, o.expired, o.points) for o in outcomes] == [("c1", "clock", 40, 0)]
    if engine.explain:  # (explain off keeps no trace)
        expiry = outcomes[0].trace[0]
        assert (type(expiry).__name__, expiry.points) == ("Expired", 40)
        assert from_us(expiry.at) == datetime(2027, 1, 5, 10, tzinfo=timezone.utc)
        assert "lot earned 2026-01-05 by p1" in outcomes[0].explain()
    else:
        assert outcomes[0].trace == ()
    before = snapshot(engine)
    assert engine.advance_to("2026-06-01") == []
    assert engine.advance_to(datetime(2026, 1, 1, tzinfo=timezone.utc)) == []
    assert snapshot(engine) == before
    # The engine clock stays at 2027-02-01: an event before it is rejected.
    assert_rejected(engine, event(at="2027-01-31T00:00:00+00:00"), "engine clock")


@pytest.mark.parametrize("store", ["memory", "memory-interpreted", "sqlite"])
def test_advance_to_lists_its_outcomes_by_the_change_due_then_by_customer(store: str, tmp_path: Any) -> None:
    program = poletti.compile("earn 1 point per EUR\ntier gold when spend_12m > 100\n")
    engine = (poletti.Engine(program, poletti.SQLiteStore(str(tmp_path / "s.db"))) if store == "sqlite"
              else poletti.Engine(program, explain=False, generated=store == "memory"))
    # Each buys 150 EUR → gold, until the purchase leaves the 12-month window: c's first (2027-01-03), then
    # a's and b's at one instant (2027-01-05 10:00), a before b by id, though b bought first.
    for customer, day in (("b", "05"), ("c", "03"), ("a", "05")):
        engine.process({"id": f"p-{customer}", "type": "purchase", "customer": customer, "amount": "150.00",
                        "at": f"2026-01-{day}T10:00:00+00:00"})
    # 300 more customers whose purchases leave the window too, without a tier to lose (no outcome): so many
    # due at once that the memory store takes them in one scan (``MemoryStore._take_all``), not one by one.
    for number in range(300):
        engine.process({"id": f"f{number}", "type": "purchase", "customer": f"f{number:03}", "amount": "10.00",
                        "at": "2026-01-04T10:00:00+00:00"})
    outcomes = engine.advance_to("2027-02-01T00:00:00+00:00")
    assert [(o.customer, o.tier_before, o.tier) for o in outcomes] == [
        ("c", "gold", None), ("a", "gold", None), ("b", "gold", None)]


def test_advance_to_needs_an_aware_instant(engine: Any) -> None:
    with pytest.raises(ValueError):
        engine.advance_to(datetime(2027, 1, 1))
    with pytest.raises(ValueError):
        engine.advance_to("2027-01-01T00:00:00")
    with pytest.raises(ValueError, match="out of range"):
        engine.advance_to("9999-01-01")


def test_engine_needs_a_program() -> None:
    for wrong in ("earn 1 point per EUR", None, 42, object()):
        with pytest.raises(TypeError, match="poletti.compile"):
            poletti.Engine(wrong)  # type: ignore[arg-type]


# ------------------------------------------------------------- customer view


def test_customer_fields() -> None:
    engine = poletti.Engine(poletti.compile("""
        earn 1 point per EUR
        points pending for 14d
        at 50 points grant free_drink
        tier gold when spend_12m > 100
        segment big when spend_30d > 100
    """))
    # p1 120.00 → 120 pending (not spendable, so no conversion); spend 120 → gold, big.
    engine.process(dict(P1, amount="120.00"))
    view = engine.customer("c1")
    assert (view.points, view.pending_points, view.lifetime_points, view.debt) == (0, 120, 120, 0)
    assert (view.tier, view.rewards, view.segments) == ("gold", {}, frozenset({"big"}))
    assert view.spend_lifetime == Decimal("120.00")
    assert view.first_seen == view.last_event_at == datetime(2026, 1, 5, 10, tzinfo=timezone.utc)
    nobody = engine.customer("nobody")
    assert (nobody.points, nobody.tier, nobody.rewards, nobody.first_seen) == (0, None, {}, None)


STANDINGS_RULES = """
earn 1 point per EUR
at 50 points grant free_drink
tier gold when spend_12m > 100
"""


@pytest.mark.parametrize("store", ["memory", "memory-interpreted", "sqlite"])
def test_standings_list_every_customer_with_their_figures(store: str, tmp_path: Any) -> None:
    program = poletti.compile(STANDINGS_RULES)
    engine = (poletti.Engine(program, poletti.SQLiteStore(str(tmp_path / "s.db"))) if store == "sqlite"
              else poletti.Engine(program, explain=False, generated=store == "memory"))
    for raw in (
        # bea: 120 points → 2 drinks (100), 20 left; spend 120 > 100 → gold. The full refund reverses the
        # 120: 20 − 120 = −100 (a debt of 100); lifetime stays 120; spend 0 → no tier; the drinks stay.
        {"id": "b1", "type": "purchase", "customer": "bea", "at": "2026-01-05T10:00:00+00:00", "amount": "120.00"},
        {"id": "b2", "type": "refund", "customer": "bea", "at": "2026-01-06T10:00:00+00:00", "original": "b1"},
        # ada: 30 points, nothing converts, no tier.
        {"id": "a1", "type": "purchase", "customer": "ada", "at": "2026-01-05T11:00:00+00:00", "amount": "30.00"},
        # cy: 150 points → 3 drinks, 0 left; spend 150 → gold.
        {"id": "c1", "type": "purchase", "customer": "cy", "at": "2026-01-07T09:00:00+00:00", "amount": "150.00"},
    ):
        engine.process(raw)
    standings = list(engine.standings())
    assert standings == [
        ("ada", 30, 0, 30, 0, None, {}),
        ("bea", -100, 0, 120, 100, None, {"free_drink": 2}),
        ("cy", 0, 0, 150, 0, "gold", {"free_drink": 3}),
    ]
    bea = standings[1]
    assert (bea.customer, bea.points, bea.debt, bea.lifetime_points, bea.tier) == ("bea", -100, 100, 120, None)
    assert isinstance(bea, poletti.Standing)


@pytest.mark.parametrize("generated", [True, False])
def test_standings_are_a_snapshot_taken_when_asked_each_with_its_own_rewards(generated: bool) -> None:
    # The memory store's standings are read under its lock when ``standings()`` is called; the ``Standing``s
    # are made as they are read. An event applied in between does not show, and each standing's rewards dict
    # is its own (changing one changes neither the engine nor the next reading).
    program = poletti.compile(STANDINGS_RULES)
    engine = poletti.Engine(program, explain=False, generated=generated)
    engine.process({"id": "c1", "type": "purchase", "customer": "cy", "at": "2026-01-07T09:00:00+00:00",
                    "amount": "150.00"})  # 150 points → 3 drinks, 0 left; gold
    listing = engine.standings()
    # dan comes after the snapshot; cy's 60 more points (1 drink, 10 left) too.
    engine.process({"id": "d1", "type": "purchase", "customer": "dan", "at": "2026-01-08T09:00:00+00:00",
                    "amount": "10.00"})
    engine.process({"id": "c2", "type": "purchase", "customer": "cy", "at": "2026-01-08T10:00:00+00:00",
                    "amount": "60.00"})
    first = list(listing)
    assert first == [("cy", 0, 0, 150, 0, "gold", {"free_drink": 3})]
    first[0].rewards["free_drink"] = 99
    assert list(engine.standings()) == [("cy", 10, 0, 210, 0, "gold", {"free_drink": 4}),
                                        ("dan", 10, 0, 10, 0, None, {})]
    assert engine.customer("cy").rewards == {"free_drink": 4}


@pytest.mark.parametrize("generated", [True, False])
def test_standings_snapshot_is_flat_plain_values_that_the_collector_stops_tracking(generated: bool) -> None:
    # ``standings()`` snapshots every customer as one flat tuple of plain values (``_snapshot_row``): the six
    # figures, then each reward's name and count. Nested tuples could stay tracked by the garbage collector and
    # bring on a full pass over every state; a flat tuple of plain values is untracked by any pass.
    from poletti.interpreter.engine import _snapshot_row

    program = poletti.compile("""
        earn 1 point per EUR
        at 50 points grant free_drink
        every 2 purchases grant sticker
    """)
    engine = poletti.Engine(program, explain=False, generated=generated)
    for number, (customer, amount) in enumerate([("ana", "60.00"), ("ben", "20.00"), ("ana", "45.00"),
                                                 ("cy", "50.00")]):
        engine.process({"id": f"e{number}", "type": "purchase", "customer": customer, "amount": amount,
                        "at": f"2026-03-0{number + 1}T10:00:00+00:00"})
    # ana: 60 → a drink, 10 left; 45 more → 55 → a drink, 5 left, and her second purchase a sticker.
    # ben: 20 points, nothing. cy: 50 → a drink, 0 left.
    expected = [("ana", 5, 0, 105, 0, None, {"free_drink": 2, "sticker": 1}),
                ("ben", 20, 0, 20, 0, None, {}),
                ("cy", 0, 0, 50, 0, None, {"free_drink": 1})]
    assert list(engine.standings()) == expected
    rows = [_snapshot_row(customer, engine.state(customer), program.compiled.tier_names)
            for customer in engine.customers()]
    assert rows == [standing[:6] + tuple(value for pair in standing[6].items() for value in pair)
                    for standing in expected]
    assert all(value is None or type(value) in (str, int) for row in rows for value in row)
    gc.collect()
    assert not any(gc.is_tracked(row) for row in rows)


def test_standings_of_a_pooled_program_show_each_contact_the_account_pool() -> None:
    engine = poletti.Engine(poletti.compile("""
        points pooled by account
        earn 1 point per EUR
    """))
    engine.process({"id": "p1", "type": "purchase", "customer": "liisa", "account": "acme", "amount": "30.00",
                    "at": "2026-02-02T10:00:00+02:00"})
    engine.process({"id": "p2", "type": "purchase", "customer": "matti", "account": "acme", "amount": "12.00",
                    "at": "2026-02-03T10:00:00+02:00"})
    # 30 + 12 = 42 in acme's pool, which both contacts show (as ``customer`` does).
    found = {standing.customer: standing.points for standing in engine.standings()}
    assert found["liisa"] == found["matti"] == 42
    assert found == {customer: engine.customer(customer).points for customer in engine.customers()}


# ------------------------------------------------------------ regressions


def test_fractional_rate_per_item_follows_rounding() -> None:
    # Regression: per-item points were truncated (int()), ignoring `rounding`.
    # 3 items × 0.5 = 1.5 → up → 2 (truncation gave 1); nearest → 2; down → 1.
    for mode, expected in (("up", 2), ("nearest", 2), ("down", 1)):
        engine = poletti.Engine(poletti.compile(f"rounding {mode}\nearn 0.5 points per item"))
        outcome = engine.process(dict(P1, items=[{"sku": "a", "quantity": 3, "price": "1"}]))
        assert outcome.earned == expected, mode


def test_fractional_rate_per_full_units_follows_rounding() -> None:
    # Regression: 35.00 EUR = 3 full 10-EUR units × 1.5 = 4.5 → up 5, nearest 5, down 4 (truncation gave 4).
    for mode, expected in (("up", 5), ("nearest", 5), ("down", 4)):
        engine = poletti.Engine(poletti.compile(f"rounding {mode}\nearn 1.5 points per 10 EUR"))
        assert engine.process(dict(P1, amount="35.00")).earned == expected, mode


def test_a_refund_in_the_pending_window_takes_the_purchases_own_pending_points() -> None:
    # Regression: the reversal came out of the spendable balance first.
    # s1 signup → 100 spendable.  p1 40.00 → 40 pending until 2026-03-16T10:00Z.
    # r1 refund 10.00 → floor(40 × 10/40) = 10, from p1's pending lot → spendable 100, pending 30.
    # (Taking spendable first would leave 90 spendable and 40 pending.)
    engine = poletti.Engine(poletti.compile("earn 100 points on signup\nearn 1 point per EUR\npoints pending for 14d"))
    engine.process({"id": "s1", "type": "signup", "customer": "c1", "at": "2026-03-01T10:00:00+00:00"})
    engine.process({"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-03-02T10:00:00+00:00",
                    "amount": "40.00"})
    outcome = engine.process({"id": "r1", "type": "refund", "customer": "c1", "at": "2026-03-03T10:00:00+00:00",
                              "original": "p1", "amount": "10.00"})
    assert (outcome.reversed, outcome.points, outcome.pending_points) == (10, 100, 30)
    engine.advance_to("2026-03-16T10:00:00+00:00")
    view = engine.customer("c1")
    assert (view.points, view.pending_points, view.lifetime_points) == (130, 0, 140)


def test_outcome_to_dict_is_json_ready(engine: Any) -> None:
    import json

    outcome = engine.process(event(id="p2", amount="12.50"))
    data = outcome.to_dict()
    text = json.dumps(data)  # datetimes and Decimals must already be strings
    assert json.loads(text)["at"] == "2026-01-06T10:00:00+00:00"
    assert data["earned"] == 12
    if engine.explain:  # (explain off keeps no trace)
        assert data["trace"][0]["kind"] == "earn"
        assert data["trace"][0]["text"] == "+12 points by 'earn 1 point per EUR' (line 4)"
    else:
        assert data["trace"] == []


def test_an_outcome_is_a_record_to_read_whose_program_is_not_compared() -> None:
    # The same event through two engines (two compiled programs, one text) gives equal outcomes: 40 points.
    raw = dict(P1)
    first, second = (poletti.Engine(poletti.compile(RULES)).process(dict(raw)) for _ in range(2))
    assert first.program is not second.program and first == second and not first != second
    assert (first.customer, first.status, first.earned, first.points, first.granted) == ("c1", "applied", 40, 40, {})
    assert first.at == datetime(2026, 1, 5, 10, tzinfo=timezone.utc)
    assert first != first._replace(points=41) and first._replace(points=41) != first
    assert "program=" not in repr(first) and "points=40" in repr(first)
    with pytest.raises(AttributeError):
        first.points = 0  # type: ignore[misc]
    # Every field, in order, whichever path built it (an applied event, a duplicate, a clock step).
    engine = poletti.Engine(poletti.compile(RULES), explain=False)
    built = [engine.process(dict(raw)), engine.process(dict(raw)), *engine.advance_to("2027-02-01T00:00:00+00:00")]
    # The duplicate's figures are the customer's now; the clock step expires the 40 points (12 months).
    assert [(o.status, o.type, o.points, o.expired, o.linked) for o in built] == [
        ("applied", "purchase", 40, 0, ()), ("duplicate", "purchase", 40, 0, ()), ("applied", "clock", 0, 40, ())]
    assert all(len(o) == len(poletti.Outcome._fields) for o in built)


# ------------------------------------- choices where the contract is silent (docs/language.md)


def at(day: str, time: str = "10:00:00") -> str:
    return f"2026-01-{day}T{time}+00:00"


def test_a_streak_lives_through_the_next_day_and_ends_after_a_whole_day_without_activity() -> None:
    engine = poletti.Engine(poletti.compile("earn 10 points on review if streak_days >= 1"))
    engine.process({"id": "v1", "type": "visit", "customer": "c1", "at": at("01")})
    # Same day: the visit makes a streak of 1 → 10.  Next day, no visit yet: the streak still ends
    # yesterday, so it is 1 → 10 (v2 contract).  The day after that, a whole day (the 2nd) passed
    # without a visit → 0 → nothing.
    assert engine.process({"id": "r1", "type": "review", "customer": "c1", "at": at("01", "12:00:00")}).earned == 10
    assert engine.process({"id": "r2", "type": "review", "customer": "c1", "at": at("02", "12:00:00")}).earned == 10
    assert engine.process({"id": "r3", "type": "review", "customer": "c1", "at": at("03", "00:00:00")}).earned == 0


def test_stamp_card_points_are_converted_on_the_same_event() -> None:
    # v2 step 4: stamp cards count first, then `at` rules.  p2 is the 2nd purchase → 60 points, and the
    # `at` rule converts them at once: 60 − 50 = 10 and a drink on p2 itself.
    engine = poletti.Engine(poletti.compile("every 2 purchases grant 60 points\nat 50 points grant drink"))
    engine.process(event(id="p1", at=at("01"), amount="1"))
    outcome = engine.process(event(id="p2", at=at("01", "11:00:00"), amount="1"))
    assert (outcome.granted, outcome.points) == ({"drink": 1}, 10)


def test_a_malformed_event_with_a_known_id_is_rejected_not_a_duplicate() -> None:
    engine = poletti.Engine(poletti.compile("earn 1 point per EUR"))
    engine.process(event(id="p1"))
    with pytest.raises(poletti.EventError, match="amount"):
        engine.process(event(id="p1", amount="x"))


def test_a_when_rule_with_during_fires_when_the_campaign_opens() -> None:
    # True since 1 January, but the campaign opens 1 February 00:00 UTC: granted then, seen at the next event.
    engine = poletti.Engine(poletti.compile("when spend_lifetime > 10 grant gift during 2026-02-01..2026-02-28"))
    assert engine.process(event(id="p1", at=at("01"), amount="20")).granted == {}
    outcome = engine.process({"id": "v1", "type": "visit", "customer": "c1", "at": "2026-02-02T10:00:00+00:00"})
    assert outcome.granted == {"gift": 1}
    assert from_us(outcome.trace[0].at) == datetime(2026, 2, 1, tzinfo=timezone.utc)


def test_only_purchase_points_are_pending_and_grants_are_not_reversed() -> None:
    # p1 20.00 → 20 pending.  The review grants 10 at once (spendable).  The milestone (lifetime > 25) grants 5
    # at once.  Refunding all of p1 reverses its 20 pending points only: 15 spendable, 0 pending, lifetime 35.
    engine = poletti.Engine(poletti.compile(
        "earn 1 point per EUR\non review grant 10 points\nwhen lifetime_points > 25 grant 5 points once\n"
        "points pending for 7d"))
    engine.process(event(id="p1", at=at("01"), amount="20.00"))
    outcome = engine.process({"id": "r1", "type": "review", "customer": "c1", "at": at("01", "11:00:00")})
    assert (outcome.points, outcome.pending_points, outcome.lifetime_points) == (15, 20, 35)
    outcome = engine.process(event(id="f1", type="refund", original="p1", amount=None, at=at("02")))
    assert (outcome.reversed, outcome.points, outcome.pending_points, outcome.lifetime_points) == (20, 15, 0, 35)


def test_debt_is_paid_first_even_by_pending_points() -> None:
    # p1 30 pending until 8 January 10:00; the visit after that converts it into a drink → 0.
    # Full refund → −30 (debt 30).  p2 50 (pending) pays the 30 of debt first: 20 pending, balance 0, debt 0.
    engine = poletti.Engine(poletti.compile("earn 1 point per EUR\nat 30 points grant drink\npoints pending for 7d"))
    engine.process(event(id="p1", at=at("01"), amount="30.00"))
    engine.process({"id": "v1", "type": "visit", "customer": "c1", "at": at("08", "11:00:00")})
    assert engine.customer("c1").rewards == {"drink": 1}
    engine.process(event(id="f1", type="refund", original="p1", amount=None, at=at("09")))
    assert (engine.customer("c1").points, engine.customer("c1").debt) == (-30, 30)
    engine.process(event(id="p2", at=at("10"), amount="50.00"))
    view = engine.customer("c1")
    assert (view.points, view.pending_points, view.debt, view.lifetime_points) == (0, 20, 0, 80)
