"""The generated code (poletti.engine.codegen) against the interpreter, and the safety of what it generates.

1. On random programs that use most of the language and random histories,
   the generated code must leave every customer's state exactly as the
   interpreter leaves it, and give the same outcome figures, event after
   event and after every clock step.
2. Hostile names and texts in a rule file (reward names, categories,
   attribute names, labels) must change nothing in the structure of the
   generated module: its AST holds only the node kinds, names and literal
   kinds the generator itself writes.
"""

from __future__ import annotations

import ast as pyast
import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poletti
from poletti.engine.codegen import INVENTED, NAMESPACE, generate
from rich_programs import histories, programs

FIGURES = ("status", "earned", "granted", "expired", "reversed", "spent", "tier_before", "tier", "points",
           "pending_points", "lifetime_points")


def run_both(text: str, steps: list[dict[str, Any]]) -> None:
    program = poletti.compile(text)
    interpreted = poletti.Engine(program, explain=False, generated=False)
    generated = poletti.Engine(program, explain=False)
    assert generated.runtime is not None and interpreted.runtime is None

    def compare(where: str) -> None:
        customers = list(interpreted.customers())
        assert customers == list(generated.customers()), where
        for customer in customers:
            assert generated.state(customer) == interpreted.state(customer), f"{where}: state of {customer}"

    for number, step in enumerate(steps):
        where = f"step {number} {step}\nprogram:\n{text}"
        if "advance_to" in step:
            a = [(o.customer, *(getattr(o, f) for f in FIGURES)) for o in interpreted.advance_to(step["advance_to"])]
            b = [(o.customer, *(getattr(o, f) for f in FIGURES)) for o in generated.advance_to(step["advance_to"])]
            assert a == b, where
        else:
            results = []
            for engine in (interpreted, generated):
                try:
                    outcome = engine.process(copy.deepcopy(step))
                    results.append(tuple(getattr(outcome, f) for f in FIGURES))
                except poletti.EventError as err:
                    results.append(("rejected", err.reason))
            assert results[0] == results[1], where
        compare(where)
    # ``standings`` (the memory store's listing in one pass) shows of each customer what ``customer`` shows.
    shown = [(customer, view.points, view.pending_points, view.lifetime_points, view.debt, view.tier, view.rewards)
             for customer in interpreted.customers() for view in [interpreted.customer(customer)]]
    assert [tuple(standing) for standing in generated.standings()] == shown, text


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(programs(), histories())
def test_generated_code_leaves_the_same_state_as_the_interpreter(text: str, steps: list[dict[str, Any]]) -> None:
    run_both(text, steps)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(programs(), histories())
def test_generated_code_leaves_the_same_state_as_the_interpreter_at_length(text: str, steps: list[dict[str, Any]]) -> None:
    run_both(text, steps)


def test_the_cafe_programs_agree_on_their_history() -> None:
    from pathlib import Path

    from poletti.interpreter.simulate.history import History

    root = Path(__file__).resolve().parents[2] / "examples" / "cafe"
    for rules in ("rules_v1.loyalty", "rules_v2.loyalty"):
        program = poletti.load(root / rules)
        history = History(str(root / "history.csv"), program.compiled.tz)
        events = [record.event for _, record in zip(range(4000), history.in_time_order()) if record.event]
        interpreted = poletti.Engine(program, explain=False, generated=False)
        generated = poletti.Engine(program, explain=False)
        for engine in (interpreted, generated):
            engine.process_many(copy.deepcopy(events))
            engine.advance_to("2026-06-01")
        for customer in interpreted.customers():
            assert generated.state(customer) == interpreted.state(customer), (rules, customer)


@pytest.mark.parametrize("generated", [True, False])
def test_a_stamp_card_with_a_condition_counts_only_the_events_it_lets_through(generated: bool) -> None:
    """A card with an option goes to the interpreter's ``stamp`` from the generated code (which, until the
    type-specialised ``apply``, read its ``granted_points`` before setting it: UnboundLocalError on any event).

    Hand-worked: 1 point per EUR; purchases of 2, 4, 5, 1, 6 EUR; only those over 3 EUR count (4, 5, 6); the
    second counted (5 EUR) grants 5 points. Points: 2 + 4 + 5 + 5 + 1 + 6 = 23, and the card stands at 3.
    """
    program = poletti.compile('program "card"\ncurrency EUR\ntimezone "UTC"\nearn 1 point per EUR\n'
                              "every 2 purchases grant 5 points if event.amount > 3 EUR\n")
    engine = poletti.Engine(program, explain=False, generated=generated)
    assert (engine.runtime is not None) == generated
    outcomes = [engine.process({"id": f"p{n}", "type": "purchase", "customer": "c1",
                                "at": f"2026-01-0{n + 1}T10:00:00Z", "amount": amount})
                for n, amount in enumerate(["2.00", "4.00", "5.00", "1.00", "6.00"])]
    assert [outcome.earned for outcome in outcomes] == [2, 4, 5, 1, 6]
    assert [outcome.points for outcome in outcomes] == [2, 6, 16, 17, 23]
    assert engine.state("c1").stamps == [3]


@pytest.mark.parametrize("generated", [True, False])
def test_a_next_change_an_event_brings_is_scheduled_for_a_customer_already_known(generated: bool) -> None:
    """The engine's own lane for the generated code saves a known state only when its next change moved.

    Hand-worked: a visit first (nothing will change by itself: no next change), then a 150 EUR purchase on
    1 February 2026 makes c1 gold and leaves the 12-month window on 1 February 2027; on 1 March 2027 the
    advance finds c1 due and takes gold away. The 150 points stay.
    """
    program = poletti.compile('program "window"\ncurrency EUR\ntimezone "UTC"\nearn 1 point per EUR\n'
                              "tier gold when spend_12m > 100\n")
    engine = poletti.Engine(program, explain=False, generated=generated)
    assert engine.process({"id": "v1", "type": "visit", "customer": "c1", "at": "2026-01-10T10:00:00Z"}).tier is None
    bought = engine.process({"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-02-01T10:00:00Z",
                             "amount": "150.00"})
    assert (bought.tier, bought.points) == ("gold", 150)
    assert engine.advance_to("2027-02-01T09:59:59Z") == []  # still inside: the window is p + 12 months, exclusive
    changed = engine.advance_to("2027-03-01T00:00:00Z")
    assert [(o.customer, o.tier_before, o.tier, o.points) for o in changed] == [("c1", "gold", None, 150)]
    assert engine.customer("c1").tier is None


@pytest.mark.parametrize("generated", [True, False])
def test_points_released_and_expiring_at_the_very_instant_of_an_advance(generated: bool) -> None:
    """The generated clock step calls the ledger only when its kept soonest release or expiry is due: at the
    instant itself, too (p + W: a lot is pending until the instant, exclusive, and expires at it).

    Hand-worked: 1 point per EUR, pending 1 day, expiring after 3 days, 10 points a coffee. A 10 EUR purchase
    at 10:00 on 1 March 2026 earns 10 pending points. advance_to 10:00 on 2 March releases them and they
    convert at once: a coffee, 0 points. A 7 EUR purchase at 12:00 on 2 March earns 7, released at 12:00 on
    3 March (balance 7), and they expire at 12:00 on 5 March: balance 0, 7 expired.
    """
    program = poletti.compile('program "instants"\ncurrency EUR\ntimezone "UTC"\nreward coffee "Coffee"\n'
                              "earn 1 point per EUR\npoints pending for 1d\npoints expire after 3d\n"
                              "at 10 points grant coffee\n")
    engine = poletti.Engine(program, explain=False, generated=generated)
    assert (engine.runtime is not None) == generated
    engine.process({"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-03-01T10:00:00Z", "amount": "10"})
    [released] = engine.advance_to("2026-03-02T10:00:00Z")
    assert (released.granted, released.points, released.pending_points) == ({"coffee": 1}, 0, 0)
    engine.process({"id": "p2", "type": "purchase", "customer": "c1", "at": "2026-03-02T12:00:00Z", "amount": "7"})
    assert engine.advance_to("2026-03-03T11:59:59Z") == []
    [second] = engine.advance_to("2026-03-03T12:00:00Z")
    assert (second.points, second.pending_points) == (7, 0)
    [expired] = engine.advance_to("2026-03-05T12:00:00Z")
    assert (expired.expired, expired.points, expired.lifetime_points) == (7, 0, 17)


# ------------------------------------------------------------------ safety

HOSTILE = [
    "__import__('os').system('echo pwned')", "'); import os; os.system('x'); ('", "{0}", "DROP TABLE",
    "\u202e", "\U0001f600", "x' + 'y", "#comment", "K[0]", "st.tier = 9", "E[0](None)", "a\\\\b",
]
ALLOWED_NODES = {
    pyast.Module, pyast.FunctionDef, pyast.arguments, pyast.arg, pyast.Return, pyast.Assign, pyast.AugAssign,
    pyast.If, pyast.While, pyast.For, pyast.Break, pyast.Expr, pyast.Call, pyast.Name, pyast.Load, pyast.Store,
    pyast.Attribute, pyast.Subscript, pyast.Constant, pyast.Compare, pyast.BoolOp, pyast.BinOp, pyast.UnaryOp,
    pyast.Tuple, pyast.IfExp, pyast.GeneratorExp, pyast.comprehension, pyast.And, pyast.Or, pyast.Not,
    pyast.Add, pyast.Sub, pyast.Mult, pyast.FloorDiv, pyast.Mod, pyast.USub, pyast.Eq, pyast.NotEq, pyast.Lt,
    pyast.LtE, pyast.Gt, pyast.GtE, pyast.Is, pyast.IsNot, pyast.BitAnd, pyast.BitOr, pyast.RShift, pyast.LShift,
    # the lane: ``with lock:``, ``if ev_id in receipts:``, an event's empty attributes ``{}`` (checked empty below),
    # ``nonlocal spare`` (its kept tally: the name is checked among the invented ones below)
    pyast.With, pyast.withitem, pyast.In, pyast.Dict, pyast.Nonlocal,
}
# Attributes the generated code reads: fields of the state, events, items, the ledger and the tally.
ALLOWED_ATTRIBUTES = {
    "clock", "ledger", "next_change", "windows", "exits", "tier_keep_until", "expire_until", "points",
    "total_earned", "total_spent", "total_expired", "total_reversed", "total_cost", "expired", "changed", "release_pending_until", "count", "purchases", "spend", "amount",
    "next_change_clock", "next_change_at", "segments", "tier_held", "tier", "grant_reward", "get", "cost", "granted", "earn", "earned",
    "balance", "spend_", "spent", "when_active", "note_grant", "at", "first_seen", "birthday", "type",
    "spend_total", "visit_count", "id", "original", "purchase_index", "purchase_net", "refund_refusal", "refund", "items", "price", "quantity",
    "category", "sku", "stamps", "last_event_at", "last_purchase_at", "attributes", "pending", "earned_total",
    "cp", "round", "earn_per", "multiply", "earn_fixed", "when_rule", "stamp", "_fire", "_convert_rule",
    "birthday", "rare_next_change", "leave_metric_windows", "record_metrics", "_mark_active",
    "wallet", "hold_reward", "expire_held",  # issue 13: held rewards that expire
    "free", "owed", "_spendable_in_lots", "spent_total",  # the ledger's earn/spend/balance written out
    "_next",  # the ledger's kept next change, read by next_change
    # the lane (``make_lane``): the engine's and the memory store's parts it binds, the outcome's figures
    "store", "_lock", "_receipts", "_states", "save", "_new_state", "compiled", "tier_names", "reader", "currency",
    "plain_types", "_watermark", "_pending", "reversed",
    "caps", "cap_usage", "period", "used",  # a calendar cap's usage, written out
}


@st.composite
def hostile_programs(draw: Any) -> str:
    reward = draw(st.sampled_from(["gift", "x_1", "import_os"]))
    text = draw(st.sampled_from(HOSTILE)).replace('"', "'")
    return "\n".join([
        f'program "{text}"',
        f'reward {reward} "{text}" value 2 EUR costs 10 points',
        "attribute channel: text",
        f'earn 1 point per EUR if event.channel == "{text}"',
        f'earn 2 points per EUR on category "{text}"',
        f'every 2 purchases on sku "{text}" grant {reward}',
        f"at 10 points grant {reward}",
        f'tier gold when spend_30d > 10 or event_free_text_is_not_here == 1'.split(" or ")[0],
        f"when spend_lifetime > 5 grant {reward}",
    ]) + "\n"


@settings(max_examples=60, deadline=None)
@given(hostile_programs())
def test_hostile_names_and_texts_change_nothing_in_the_generated_structure(text: str) -> None:
    program = poletti.compile(text)
    generated = generate(program.compiled)
    tree = pyast.parse(generated.source)
    user_texts = set(program.compiled.rewards)
    for node in pyast.walk(tree):
        assert type(node) in ALLOWED_NODES, f"unexpected {type(node).__name__} in generated code"
        if isinstance(node, pyast.Name):
            assert node.id in NAMESPACE or node.id in INVENTED, f"unexpected name {node.id!r}"
        if isinstance(node, pyast.FunctionDef):
            assert node.name in INVENTED, node.name
        if isinstance(node, pyast.Attribute):
            assert node.attr in ALLOWED_ATTRIBUTES, f"unexpected attribute {node.attr!r}"
        if isinstance(node, pyast.Constant):
            assert node.value is None or isinstance(node.value, (bool, int, str)), repr(node.value)
        if isinstance(node, pyast.Dict):
            assert not node.keys, "a dict literal with contents"
        if isinstance(node, pyast.Nonlocal):
            assert set(node.names) <= set(INVENTED), node.names
    # Every user text reaches the source only as the value of a string constant.
    strings = {node.value for node in pyast.walk(tree) if isinstance(node, pyast.Constant) and isinstance(node.value, str)}
    assert user_texts <= strings
    categories = {rule.filter[1] for rule in program.compiled.per_rules["purchase"] if rule.filter}
    assert categories and categories <= strings


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(programs())
def test_a_new_state_is_built_as_written_plainly(text: str) -> None:
    # ``Processor.new_state`` builds states with a function made for the program: the same state, the same types.
    import attrs

    from poletti.interpreter.processing import Processor

    processor = Processor(poletti.compile(text).compiled)
    quick, plain = processor.new_state("c1"), processor._new_state_slowly("c1")
    assert quick == plain
    assert [type(getattr(quick, f.name)) for f in attrs.fields(type(quick))] == \
        [type(getattr(plain, f.name)) for f in attrs.fields(type(plain))]
    # Nothing a state changes in place is shared with the next new state (lists, the ledger, the windows).
    other = processor.new_state("c2")
    for field in attrs.fields(type(quick)):
        value = getattr(quick, field.name)
        if isinstance(value, (list, dict)) or attrs.has(type(value)) or hasattr(value, "__slots__"):
            assert getattr(other, field.name) is not value, field.name
