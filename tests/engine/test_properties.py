"""Properties of the engine over random event histories (hypothesis).

* a duplicate event changes nothing, wherever it comes;
* interleaving different customers' events (any merge that keeps each
  customer's order) gives every customer the same outcomes and state;
* replaying the same history on fresh engines is deterministic;
* for programs without caps (and whose conditions only grow with spend),
  adding a purchase anywhere in a customer's history never lowers lifetime
  points; appending an event never does, for any program;
* the points ledger balances after every event:
  balance + pending + spent + expired + reversed == lifetime, the outcome's
  figures match the customer's, and the rewards granted in outcomes add up
  to the customer's rewards table.

The histories are small (a few customers, up to a dozen events each) with
purchases, visits, reviews, refunds of earlier purchases and redeems, gaps
from minutes to 40 days (so expiry, pending release, keep and window exits
happen), timestamps written with assorted UTC offsets.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poletti
from poletti.engine.serial import converter

# Every condition here only grows with spend, and nothing is capped: the lifetime property holds.
MONOTONE = poletti.compile("""
reward free_drink "Free drink" value 3.50 EUR costs 50 points
reward gift "Gift" value 10 EUR costs 30 points
earn 1 point per EUR
earn 2 points per EUR on category "beans"
earn 10 points per purchase if spend_30d > 50
earn 1 point per item on category "pastry"
earn x2 if tier >= gold
earn x1.5 during 2026-02-01..2026-02-14
earn 5 points on review
on review grant thank_you
every 3 purchases grant 15 points
at 50 points grant free_drink
tier silver when spend_30d > 60
tier gold when spend_30d > 100 keep 30d
when spend_lifetime > 300 grant 50 points once
points expire after 60d
points pending for 7d
""")

# Caps, a lapsed segment, repeating `when`, conditions on the balance: anything goes.
BUSY = poletti.compile("""
timezone "Europe/Helsinki"
rounding nearest
reward gift "Gift" value 10 EUR costs 30 points
earn 1 point per EUR limit 150 points per week
earn 10 points per visit limit 20 points per 7d
earn 5 points on review limit 2 times per day
earn x2 if lapsed
earn x1.5 if points > 80
every 3 purchases grant 15 points
segment lapsed when days_since_last_purchase > 20
segment regular when purchases_30d >= 3 and streak_days >= 1
when lapsed grant 25 points once per 30d
when spend_30d > 120 grant thank_you
at 60 points grant free_drink limit 2 times per month
tier gold when spend_12m > 300 keep 1m
points expire after 45d
""")

PROGRAMS = {"monotone": MONOTONE, "busy": BUSY}

START = datetime(2026, 1, 1, 9, 0, tzinfo=timezone.utc)
OFFSETS = [timezone.utc, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def customer_history(draw: Any, customer: str, max_events: int = 12) -> list[dict[str, Any]]:
    """One customer's events in time order (equal instants allowed)."""
    t = START + timedelta(minutes=draw(st.integers(0, 60 * 24 * 10)))
    events: list[dict[str, Any]] = []
    purchases: list[tuple[str, int]] = []  # (id, cents)
    for i in range(draw(st.integers(1, max_events))):
        gap = draw(st.one_of(st.integers(0, 180), st.integers(1, 40).map(lambda d: d * 24 * 60)))
        t += timedelta(minutes=gap)
        at = t.astimezone(draw(st.sampled_from(OFFSETS))).isoformat()
        event_id = f"{customer}-{i}"
        kind = draw(st.sampled_from(["purchase"] * 5 + ["visit", "review", "refund", "redeem"]))
        if kind == "refund" and not purchases:
            kind = "visit"
        event: dict[str, Any] = {"id": event_id, "type": kind, "customer": customer, "at": at}
        if kind == "purchase":
            cents = draw(st.integers(0, 20000))
            event["amount"] = str(Decimal(cents) / 100)
            if draw(st.booleans()):
                category = draw(st.sampled_from(["beans", "pastry", "milk"]))
                quantity = draw(st.integers(1, 3))
                price = Decimal(draw(st.integers(0, max(0, cents // quantity)))) / 100
                event["items"] = [{"sku": f"{category}-1", "category": category, "quantity": quantity,
                                   "price": str(price)}]
            purchases.append((event_id, cents))
        elif kind == "refund":
            original, cents = draw(st.sampled_from(purchases))
            event["original"] = original
            if draw(st.booleans()) and cents > 0:
                event["amount"] = str(Decimal(draw(st.integers(1, cents))) / 100)
        elif kind == "redeem":
            event["reward"] = "gift"
        events.append(event)
    return events


@st.composite
def histories(draw: Any, customers: int = 3) -> list[list[dict[str, Any]]]:
    count = draw(st.integers(1, customers))
    return [draw(customer_history(f"c{n}")) for n in range(count)]


@st.composite
def interleaved(draw: Any, per_customer: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """A merge of the customers' histories that keeps each customer's order."""
    slots = [n for n, events in enumerate(per_customer) for _ in events]
    order = draw(st.permutations(slots))
    cursors = [0] * len(per_customer)
    merged = []
    for n in order:
        merged.append(per_customer[n][cursors[n]])
        cursors[n] += 1
    return merged


def run(program: Any, events: list[dict[str, Any]], until: str | None = "2027-06-01") -> tuple[Any, list[Any]]:
    """A fresh engine over the events (then the clock to ``until``): the engine and every result in order."""
    engine = poletti.Engine(program)
    results: list[Any] = []
    for event in events:
        try:
            results.append(engine.process(dict(event)).to_dict())
        except poletti.EventError as err:
            results.append(("rejected", err.event_id, err.reason))
    if until is not None:
        results.extend(o.to_dict() for o in engine.advance_to(until))
    return engine, results


def state_of(engine: Any, customer: str) -> Any:
    state = engine.state(customer)
    return None if state is None else converter.unstructure(state)


def by_customer(results: list[Any], customer: str, events: list[dict[str, Any]]) -> list[Any]:
    """The results that belong to one customer (events are matched by id, clock outcomes by customer)."""
    ids = {e["id"] for e in events if e["customer"] == customer}
    mine = []
    for result in results:
        if isinstance(result, tuple):
            if result[1] in ids:
                mine.append(result)
        elif result["customer"] == customer:
            mine.append(result)
    return mine


program_names = st.sampled_from(sorted(PROGRAMS))


# ---------------------------------------------------------------- duplicates


@FAST
@given(program_names, histories(2), st.data())
def test_a_duplicate_or_a_conflict_changes_nothing(name: str, per_customer: list[list[dict[str, Any]]],
                                                   data: Any) -> None:
    program = PROGRAMS[name]
    events = data.draw(interleaved(per_customer))
    clean, clean_results = run(program, events)
    applied = [i for i, r in enumerate(clean_results[:len(events)]) if not isinstance(r, tuple)]
    if not applied:
        return
    k = data.draw(st.sampled_from(applied))
    j = data.draw(st.integers(k + 1, len(events)))
    copy = dict(events[k])
    changed = data.draw(st.booleans())
    if changed:  # the same id with other (well-formed) contents: a conflict
        copy["at"] = "2026-01-01T00:00:00+00:00"  # older than everything: a new event would be rejected
        if copy["type"] == "purchase":
            copy["amount"] = "999.99"
    noisy, noisy_results = run(program, events[:j] + [copy] + events[j:])
    if changed:
        assert noisy_results[j][0] == "rejected" and "conflict" in noisy_results[j][2]
    else:
        assert noisy_results[j]["status"] == "duplicate"
    assert noisy_results[:j] + noisy_results[j + 1:] == clean_results
    for customer in {e["customer"] for e in events}:
        assert state_of(noisy, customer) == state_of(clean, customer)


# -------------------------------------------------------------- interleaving


@FAST
@given(program_names, histories(3), st.data())
def test_interleaving_customers_changes_no_customers_result(name: str, per_customer: list[list[dict[str, Any]]],
                                                            data: Any) -> None:
    program = PROGRAMS[name]
    merged = data.draw(interleaved(per_customer))
    together, together_results = run(program, merged)
    for events in per_customer:
        customer = events[0]["customer"]
        alone, alone_results = run(program, events)
        assert state_of(together, customer) == state_of(alone, customer)
        assert by_customer(together_results, customer, merged) == alone_results


# --------------------------------------------------------------- determinism


@FAST
@given(program_names, histories(3), st.data())
def test_replay_is_deterministic(name: str, per_customer: list[list[dict[str, Any]]], data: Any) -> None:
    program = PROGRAMS[name]
    events = data.draw(interleaved(per_customer))
    first, first_results = run(program, events)
    second, second_results = run(program, events)
    assert first_results == second_results
    assert list(first.customers()) == list(second.customers())
    for customer in first.customers():
        assert state_of(first, customer) == state_of(second, customer)


# ------------------------------------------------------------------ lifetime


@FAST
@given(customer_history("c1"), st.data())
def test_adding_a_purchase_anywhere_never_lowers_lifetime_points(events: list[dict[str, Any]], data: Any) -> None:
    # MONOTONE has no caps, and every condition grows with spend (spend windows with `>`, tiers
    # with keep, a `when … once`): an extra purchase can only add points, now or later.
    position = data.draw(st.integers(0, len(events)))
    earlier = datetime.fromisoformat(events[position - 1]["at"]) if position else START
    later = datetime.fromisoformat(events[position]["at"]) if position < len(events) else earlier + timedelta(days=30)
    span = int((later - earlier).total_seconds())
    at = earlier + timedelta(seconds=data.draw(st.integers(0, span)))
    cents = data.draw(st.integers(0, 30000))
    extra = {"id": "extra", "type": "purchase", "customer": "c1", "at": at.isoformat(),
             "amount": str(Decimal(cents) / 100)}
    base, _ = run(MONOTONE, events)
    more, _ = run(MONOTONE, events[:position] + [extra] + events[position:])
    assert more.customer("c1").lifetime_points >= base.customer("c1").lifetime_points
    assert more.customer("c1").spend_lifetime >= base.customer("c1").spend_lifetime


@FAST
@given(program_names, customer_history("c1"), st.integers(0, 20000), st.integers(0, 60 * 24 * 40))
def test_appending_a_purchase_never_lowers_lifetime_points(name: str, events: list[dict[str, Any]], cents: int,
                                                           minutes: int) -> None:
    program = PROGRAMS[name]
    engine, _ = run(program, events, until=None)
    before = engine.customer("c1").lifetime_points
    last = max(datetime.fromisoformat(e["at"]) for e in events)
    engine.process({"id": "extra", "type": "purchase", "customer": "c1",
                    "at": (last + timedelta(minutes=minutes)).isoformat(), "amount": str(Decimal(cents) / 100)})
    assert engine.customer("c1").lifetime_points >= before


# ------------------------------------------------------------------- ledger


@FAST
@given(program_names, histories(2), st.data())
def test_the_ledger_balances_after_every_event(name: str, per_customer: list[list[dict[str, Any]]], data: Any) -> None:
    program = PROGRAMS[name]
    events = data.draw(interleaved(per_customer))
    engine = poletti.Engine(program)
    granted: dict[str, Counter[str]] = {}
    lifetime_seen: dict[str, int] = {}

    def check(customer: str) -> None:
        view = engine.customer(customer)
        state = engine.state(customer)
        totals, ledger = state.totals, state.ledger
        assert view.points + view.pending_points + totals.spent + totals.expired + totals.reversed \
            == view.lifetime_points
        assert (totals.earned, totals.spent, totals.expired, totals.reversed) == \
            (ledger.earned_total, ledger.spent_total, ledger.expired_total, ledger.deducted_total)
        assert view.debt == max(0, -view.points)
        assert view.pending_points >= 0
        assert view.lifetime_points >= lifetime_seen.get(customer, 0)  # never goes down
        lifetime_seen[customer] = view.lifetime_points
        assert dict(granted.get(customer, Counter())) == {k: v for k, v in view.rewards.items() if v}

    def note(outcome: Any) -> None:
        view = engine.customer(outcome.customer)
        assert (outcome.points, outcome.pending_points, outcome.lifetime_points, outcome.tier) == \
            (view.points, view.pending_points, view.lifetime_points, view.tier)
        granted.setdefault(outcome.customer, Counter()).update(outcome.granted)
        assert outcome.explain()  # renders whatever happened
        check(outcome.customer)

    for event in events:
        try:
            note(engine.process(dict(event)))
        except poletti.EventError:
            if engine.state(event["customer"]) is not None:
                check(event["customer"])
    for outcome in engine.advance_to("2027-06-01"):
        note(outcome)
