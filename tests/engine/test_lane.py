"""The generated lane: ``Engine.process`` in one generated function for the common event.

For the memory store and the generated code, ``process`` hands each event to
the program's ``lane`` (``engine/codegen.py``, ``_lane_maker``), which reads
it, applies it and returns its outcome, and hands anything else (a refund the
customer's state rejects, a duplicate, an event before the clock) to the
engine's own path before changing anything. Every figure below is worked
out by hand in the comments; the same events through the interpreter must
give the same outcomes and states.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

import poletti
from poletti.engine.codegen import generate
from poletti.engine.timecalc import to_us
from instants import ts

CAFE = """
reward coffee "Coffee" value 2 EUR
earn 1 point per EUR
at 10 points grant coffee
tier gold when spend_30d > 100
"""

FIGURES = ("status", "earned", "granted", "reversed", "spent", "tier_before", "tier", "points", "lifetime_points")


def purchase(event_id: str, at: str, amount: str, customer: str = "c1", **extra: Any) -> dict[str, Any]:
    return {"id": event_id, "type": "purchase", "customer": customer, "at": at, "amount": amount, **extra}


def figures(outcome: Any) -> tuple[Any, ...]:
    return tuple(getattr(outcome, name) for name in FIGURES)


def run_steps(steps: list[tuple[dict[str, Any], tuple[Any, ...] | str]], *engines: poletti.Engine) -> None:
    """Each event through each engine: its outcome's ``figures``, or (a text) rejected with that reason."""
    for raw, expected in steps:
        for engine in engines:
            if isinstance(expected, str):
                with pytest.raises(poletti.EventError, match=expected):
                    engine.process(dict(raw))
            else:
                assert figures(engine.process(dict(raw))) == expected, raw


@pytest.mark.parametrize("options, lane", [
    ({"explain": False}, True),  # the memory store and the generated code: the lane
    ({}, False),  # explanations (the default): the interpreter runs, and no lane
    ({"explain": False, "generated": False}, False),
])
def test_the_lane_is_taken_with_the_memory_store_and_the_generated_code(options: dict[str, Any], lane: bool) -> None:
    engine = poletti.Engine(poletti.compile(CAFE), **options)
    assert (engine._lane is not None) is lane
    # With the lane, ``engine.process`` is the lane itself (no call in between); without, the method.
    assert (engine.process is engine._lane) is lane
    # Either way it applies an event: 12.50 EUR, 12 points, one coffee at 10, 2 left.
    assert figures(engine.process(purchase("p1", "2026-03-01T10:00:00Z", "12.50"))) == (
        "applied", 12, {"coffee": 1}, 0, 10, None, None, 2, 12)


def test_a_store_on_disk_has_no_lane(tmp_path: Any) -> None:
    from poletti.engine.stores.sqlite import SQLiteStore

    engine = poletti.Engine(poletti.compile(CAFE), SQLiteStore(str(tmp_path / "state.db"), ledger=False), explain=False)
    assert engine.runtime is not None and engine._lane is None


def test_common_events_and_every_hand_over_give_the_hand_worked_figures() -> None:
    program = poletti.compile(CAFE)
    lane, interpreter = poletti.Engine(program, explain=False), poletti.Engine(program, explain=False, generated=False)
    assert lane._lane is not None and interpreter._lane is None
    steps: list[tuple[dict[str, Any], tuple[Any, ...] | str]] = [
        # 30.00 EUR → 30 points → 3 coffees at 10 points each, 30 spent: 0 left.
        (purchase("p1", "2026-03-01T10:00:00Z", "30.00"),
         ("applied", 30, {"coffee": 3}, 0, 30, None, None, 0, 30)),
        # The same event again (12:00+02:00 is 10:00Z; 30 is 30.00): a duplicate, the figures now.
        (purchase("p1", "2026-03-01T12:00:00+02:00", "30"), ("duplicate", 0, {}, 0, 0, None, None, 0, 30)),
        # The same id with another amount: a conflict, rejected.
        (purchase("p1", "2026-03-01T10:00:00Z", "31.00"), "conflict"),
        # A refund of 10 of the 30: floor(30 × 10 ÷ 30) = 10 points back; none left, so a debt of 10.
        ({"id": "r1", "type": "refund", "customer": "c1", "at": "2026-03-02T10:00:00Z", "original": "p1",
          "amount": "10.00"}, ("applied", 0, {}, 10, 0, None, None, -10, 30)),
        # A refund of a purchase never made: rejected (the engine's own checks, which the lane hands it to).
        ({"id": "r2", "type": "refund", "customer": "c1", "at": "2026-03-02T11:00:00Z", "original": "p9",
          "amount": "1.00"}, "unknown purchase 'p9'"),
        # 80.00 → 80 points: the debt of 10 first, 70 left → 7 coffees, 0 left. spend_30d 30 − 10 + 80 = 100,
        # not over 100: no tier.
        (purchase("p2", "2026-03-03T10:00:00Z", "80.00"), ("applied", 80, {"coffee": 7}, 0, 70, None, None, 0, 110)),
        # Before the customer's last event (03-03T10:00Z): rejected, nothing changes.
        (purchase("p0", "2026-03-03T09:00:00Z", "5.00"), "older than"),
        # 5.50 → 5 points (rounded down); spend_30d 105.50 > 100: gold.
        (purchase("p3", "2026-03-04T10:00:00Z", "5.50"), ("applied", 5, {}, 0, 0, None, "gold", 5, 115)),
        # A new customer's event that is not valid (a negative amount): rejected, and no customer made.
        (purchase("x1", "2026-03-04T11:00:00Z", "-1", customer="c9"), "negative"),
        # A new customer: 12.00 → 12 points → 1 coffee, 2 left.
        (purchase("q1", "2026-03-04T12:00:00Z", "12.00", customer="c2"),
         ("applied", 12, {"coffee": 1}, 0, 10, None, None, 2, 12)),
    ]
    run_steps(steps, lane, interpreter)
    assert list(lane.customers()) == ["c1", "c2"]
    for customer in ("c1", "c2"):
        assert lane.state(customer) == interpreter.state(customer)
    # After the engine's clock moved on, an event dated before it is handed over and rejected: c3 is not made.
    lane.advance_to("2026-03-10T00:00:00Z")
    with pytest.raises(poletti.EventError, match="engine clock"):
        lane.process(purchase("z1", "2026-03-09T00:00:00Z", "1.00", customer="c3"))
    assert lane.state("c3") is None and "c3" not in list(lane.customers())


def test_refunds_the_state_allows_go_through_the_lane_and_the_others_are_handed_over() -> None:
    class Counting(poletti.Engine):
        handed_over = 0

        def _process(self, event: dict[str, Any]) -> Any:
            Counting.handed_over += 1
            return super()._process(event)

    def refund(event_id: str, at: str, original: str, amount: str | None = None, customer: str = "c1") -> dict[str, Any]:
        raw = {"id": event_id, "type": "refund", "customer": customer, "at": at, "original": original}
        return raw if amount is None else {**raw, "amount": amount}

    program = poletti.compile(CAFE)
    lane, interpreter = Counting(program, explain=False), poletti.Engine(program, explain=False, generated=False)
    assert lane._lane is not None
    steps: list[tuple[dict[str, Any], tuple[Any, ...] | str]] = [
        # 40.00 EUR → 40 points → 4 coffees, 40 spent: 0 left; spend_30d 40.
        (purchase("p1", "2026-03-01T10:00:00Z", "40.00"),
         ("applied", 40, {"coffee": 4}, 0, 40, None, None, 0, 40)),
        # 10 of the 40 back: floor(40 × 10 ÷ 40) = 10 points reversed, none left: a debt of 10.
        (refund("r1", "2026-03-02T10:00:00Z", "p1", "10.00"), ("applied", 0, {}, 10, 0, None, None, -10, 40)),
        # 31 of the 30 left: rejected, nothing changes.
        (refund("r2", "2026-03-02T11:00:00Z", "p1", "31.00"), "more than is left"),
        # An amount of 0: rejected.
        (refund("r3", "2026-03-02T12:00:00Z", "p1", "0"), "above 0"),
        # No amount: the 30 left. Reversed so far floor(40 × 40 ÷ 40) = 40, 30 of them now: −10 − 30 = −40.
        (refund("r4", "2026-03-02T13:00:00Z", "p1"), ("applied", 0, {}, 30, 0, None, None, -40, 40)),
        # Nothing left of p1: rejected.
        (refund("r5", "2026-03-02T14:00:00Z", "p1"), "already fully refunded"),
        # c2: 20.00 → 20 points → 2 coffees, 0 left.
        (purchase("q1", "2026-03-03T10:00:00Z", "20.00", customer="c2"),
         ("applied", 20, {"coffee": 2}, 0, 20, None, None, 0, 20)),
        # c1 refunding c2's purchase: not one of c1's, rejected.
        (refund("r6", "2026-03-03T11:00:00Z", "q1"), "unknown purchase 'q1'"),
        # 150.00 → 150 points: the debt of 40 first, 110 left → 11 coffees, 0 left. spend_30d 40 − 10 − 30 + 150
        # = 150 > 100: gold. Lifetime 40 + 150 = 190.
        (purchase("p2", "2026-03-04T10:00:00Z", "150.00"),
         ("applied", 150, {"coffee": 11}, 0, 110, None, "gold", 0, 190)),
        # 60 of p2 back: floor(150 × 60 ÷ 150) = 60 reversed, none left: −60. spend_30d 150 − 60 = 90: gold lost.
        (refund("r7", "2026-03-05T10:00:00Z", "p2", "60.00"), ("applied", 0, {}, 60, 0, "gold", None, -60, 190)),
    ]
    run_steps(steps, lane, interpreter)
    # The four rejected refunds went to the engine's own path (which says why); the three applied did not.
    assert Counting.handed_over == 4
    for customer in ("c1", "c2"):
        assert lane.state(customer) == interpreter.state(customer)
    # The same refund again is a duplicate, told apart from a conflict as for a purchase.
    assert lane.process(refund("r7", "2026-03-05T10:00:00Z", "p2", "60")).status == "duplicate"
    with pytest.raises(poletti.EventError, match="conflict"):
        lane.process(refund("r7", "2026-03-05T10:00:00Z", "p2", "61.00"))


ATTRIBUTED = """
attribute channel: text
earn 1 point per EUR
earn 2 points per EUR if event.channel == "web"
"""


def test_the_event_is_built_only_for_a_program_whose_steps_read_it() -> None:
    def lane_source(text: str) -> str:
        source = generate(poletti.compile(text).compiled).source
        return source[source.index("def make_lane"):]

    assert "ev = Event(" not in lane_source(CAFE)  # nothing reads the event beyond its fields: never built
    assert "ev = Event(" in lane_source(ATTRIBUTED)  # the `if` reads an attribute: built for the interpreter
    engine = poletti.Engine(poletti.compile(ATTRIBUTED), explain=False)
    assert engine._lane is not None
    # From the web: 1 + 2 points per EUR, 10.00 → 30. Without the attribute: 10. An undeclared field
    # makes no difference to the rules.
    assert engine.process(purchase("w1", "2026-03-01T10:00:00Z", "10.00", channel="web")).earned == 30
    assert engine.process(purchase("w2", "2026-03-01T11:00:00Z", "10.00")).earned == 10
    assert engine.process(purchase("w3", "2026-03-01T12:00:00Z", "10.00", note="hi")).earned == 10
    assert engine.customer("c1").points == 50


CAPPED = """
earn 1 point per EUR limit 15 points per day
earn 2 points per EUR on category "beans" limit 2 times per day
"""


@pytest.mark.parametrize("generated", [True, False])
def test_calendar_caps_written_out_count_as_the_interpreter_does(generated: bool) -> None:
    engine = poletti.Engine(poletti.compile(CAPPED), explain=False, generated=generated)
    assert (engine._lane is not None) is generated
    beans = [{"sku": "b", "category": "beans", "quantity": 1, "price": "10.00"}]
    earned = [engine.process(purchase(f"p{n}", at, "10.00", items=beans)).earned
              for n, at in enumerate(["2026-03-01T09:00:00Z", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z",
                                      "2026-03-02T09:00:00Z"])]
    # Each purchase: 10.00 EUR, all of it beans. The first rule: 10, then 5 (15 a day), then 0; the next day 10.
    # The second: 2 × 10 = 20 on each of the first two purchases of a day, then 0; the next day 20 again.
    assert earned == [10 + 20, 5 + 20, 0 + 0, 10 + 20]


def test_threads_feeding_one_customer_through_the_lane_lose_and_double_nothing() -> None:
    import threading

    engine = poletti.Engine(poletti.compile(CAFE), explain=False)
    assert engine._lane is not None
    at = "2026-03-01T10:00:00Z"  # one instant for every event: none is older than another
    outcomes: list[Any] = []
    start = threading.Barrier(8)

    def feed(thread: int) -> None:
        start.wait()
        for number in range(400):
            engine.process(purchase(f"t{thread}-{number}", at, "1.00"))
        outcomes.append(engine.process(purchase("same", at, "5.00")))  # the same event from every thread

    threads = [threading.Thread(target=feed, args=(thread,)) for thread in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns every few bytecodes: a missing lock shows at once
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    # 3,200 purchases of 1.00 EUR (1 point each) and one of 5.00 applied once: 3,205 points earned. Every 10
    # points convert to a coffee: 320 coffees, 5 points left.
    assert sorted(outcome.status for outcome in outcomes) == ["applied"] + ["duplicate"] * 7
    view = engine.customer("c1")
    assert (view.lifetime_points, view.points, view.rewards) == (3205, 5, {"coffee": 320})


def test_an_engine_restored_from_a_snapshot_carries_on_through_the_lane(tmp_path: Any) -> None:
    program = poletti.compile(CAFE)
    engine = poletti.Engine(program, explain=False)
    engine.process(purchase("p1", "2026-03-01T10:00:00Z", "14.00"))  # 14 points → 1 coffee, 4 left
    path = str(tmp_path / "cafe.snapshot")
    engine.save(path)
    restored = poletti.Engine.restore(program, path, explain=False)
    assert restored._lane is not None
    # The receipt came back: the same event is a duplicate. A new one goes on from 4: 4 + 7 = 11 → 1 more
    # coffee, 1 left; lifetime 21.
    assert restored.process(purchase("p1", "2026-03-01T10:00:00Z", "14.00")).status == "duplicate"
    assert figures(restored.process(purchase("p2", "2026-03-02T10:00:00Z", "7.00"))) == (
        "applied", 7, {"coffee": 1}, 0, 10, None, None, 1, 21)


EXPIRING = """
earn 1 point per EUR
points expire after 30d
tier gold when spend_30d > 1000
"""


@pytest.mark.parametrize("generated", [True, False])
def test_each_clock_outcome_of_an_advance_counts_its_own_customer_alone(generated: bool) -> None:
    engine = poletti.Engine(poletti.compile(EXPIRING), explain=False, generated=generated)
    engine.process(purchase("a", "2026-03-01T10:00:00Z", "40.00", customer="c1"))  # 40 points, gone 03-31
    engine.process(purchase("b", "2026-03-01T11:00:00Z", "0.50", customer="c2"))  # 0 points; leaves the window
    engine.process(purchase("c", "2026-03-02T10:00:00Z", "10.00", customer="c3"))  # 10 points, gone 04-01
    outcomes = engine.advance_to("2026-04-15T00:00:00Z")
    # c2 is due (its purchase leaves the 30-day window) but nothing a host hears about changes: no outcome.
    # c1 and c3 each lose their own points, by the change that was due (03-31 before 04-01).
    assert [(o.customer, o.expired, o.points, o.type) for o in outcomes] == [("c1", 40, 0, "clock"),
                                                                            ("c3", 10, 0, "clock")]


def test_a_basket_kept_by_the_lane_tells_a_duplicate_from_a_conflict(tmp_path: Any) -> None:
    # The lane packs a basket's receipt with marshal's version 2, any other with version 4
    # (``MemoryStore.receipt_version``): either must read back as the content it was.
    engine = poletti.Engine(poletti.compile(CAFE), explain=False)
    basket = [{"sku": "b1", "category": "beans", "quantity": 2, "price": "4.50"},
              {"sku": "m1", "category": "milk", "quantity": 1, "price": "1.00"}]
    # 10.00 EUR: 10 points, converted to one coffee at once, 0 left.
    assert figures(engine.process(purchase("p1", "2026-03-01T10:00:00Z", "10.00", items=basket))) == (
        "applied", 10, {"coffee": 1}, 0, 10, None, None, 0, 10)
    assert engine.process(purchase("v1", "2026-03-01T11:00:00Z", "3.00")).earned == 3
    # The same basket written otherwise (4.5 for 4.50, the instant in another offset) is the same event.
    again = [dict(basket[0], price="4.5"), basket[1]]
    assert engine.process(purchase("p1", "2026-03-01T12:00:00+02:00", "10", items=again)).status == "duplicate"
    assert engine.process(purchase("v1", "2026-03-01T11:00:00Z", "3.00")).status == "duplicate"
    # One more bag of beans in it is another event with the same id: refused, saying what differs.
    other = [dict(basket[0], quantity=3), basket[1]]
    with pytest.raises(poletti.EventError) as caught:
        engine.process(purchase("p1", "2026-03-01T10:00:00Z", "10.00", items=other))
    assert "conflict" in caught.value.reason and "items" in caught.value.reason
    receipt = engine.store.receipt("p1")
    assert receipt is not None and receipt.content["items"] == [
        {"sku": "b1", "category": "beans", "quantity": 2, "price": "4.50"},
        {"sku": "m1", "category": "milk", "quantity": 1, "price": "1.00"}]
    # And after a snapshot, as it was.
    path = str(tmp_path / "basket.snapshot")
    engine.save(path)
    restored = poletti.Engine.restore(poletti.compile(CAFE), path, explain=False)
    assert restored.process(purchase("p1", "2026-03-01T10:00:00Z", "10.00", items=basket)).status == "duplicate"
    view = restored.customer("c1")
    assert (view.points, view.lifetime_points, view.rewards) == (3, 13, {"coffee": 1})


@pytest.mark.parametrize("generated", [True, False])
def test_an_advance_of_more_customers_than_it_takes_under_one_lock(generated: bool) -> None:
    # 600 customers (``advance_to`` takes the lock for 256 at a time on the lane's engine): customer i buys
    # (i mod 7) + 1 EUR at i minutes past 10:00 on 1 March, earning that many points, which expire 30 days on,
    # at the same minute of 31 March. Half of them have bought again on 20 March (1 point, gone on 19 April).
    engine = poletti.Engine(poletti.compile(EXPIRING), explain=False, generated=generated)
    for i in range(600):
        at = f"2026-03-01T{10 + i // 60:02d}:{i % 60:02d}:00Z"
        engine.process(purchase(f"a{i}", at, f"{i % 7 + 1}.00", customer=f"c{i:03d}"))
        if i % 2:
            engine.process(purchase(f"b{i}", "2026-03-20T12:00:00Z", "1.00", customer=f"c{i:03d}"))
    outcomes = engine.advance_to("2026-04-05T00:00:00Z")
    # Every customer's first points expired, one outcome each, in the order their points expired (by i).
    assert [outcome.customer for outcome in outcomes] == [f"c{i:03d}" for i in range(600)]
    assert [outcome.expired for outcome in outcomes] == [i % 7 + 1 for i in range(600)]
    assert [outcome.points for outcome in outcomes] == [i % 2 for i in range(600)]
    # The memory store keeps a next change for the 300 customers with one to come (19 April), no other.
    assert engine.store._next == {f"c{i:03d}": to_us(ts("2026-04-19T12:00:00Z")) for i in range(1, 600, 2)}
    # The second purchases' points expire on 19 April: the next advance takes the 300 customers who have them.
    later = engine.advance_to("2026-04-20T00:00:00Z")
    assert [(outcome.customer, outcome.expired) for outcome in later] == [(f"c{i:03d}", 1) for i in range(1, 600, 2)]
    assert engine.advance_to("2026-06-01T00:00:00Z") == []


def test_a_subclass_with_its_own_process_keeps_being_called() -> None:
    # A host that wraps ``process`` in a subclass: its method runs for every event, lane or not.
    seen: list[str] = []

    class Logged(poletti.Engine):
        def process(self, event: dict[str, Any]) -> Any:
            seen.append(event["id"])
            return super().process(event)

    engine = Logged(poletti.compile(CAFE), explain=False)
    assert engine._lane is not None and engine.process.__func__ is Logged.process
    # 12.50 EUR: 12 points, one coffee at 10, 2 left; then 3.00: 5 points.
    assert engine.process(purchase("p1", "2026-03-01T10:00:00Z", "12.50")).points == 2
    assert engine.process(purchase("p2", "2026-03-01T11:00:00Z", "3.00")).points == 5
    assert seen == ["p1", "p2"]
