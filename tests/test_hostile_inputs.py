"""No input, however hostile, ends in a traceback: two properties over whole commands and programs.

1. Random history rows — any CSV cell, any JSON value on a JSON Lines row —
   through `poletti simulate --json` and `poletti run --json`: the command
   exits 0, and every row is either applied or rejected and counted.
2. Any syntactically valid rule text (random ASTs printed messily, from
   ``program_strategies``, and random clean programs from ``rich_programs``)
   either gets diagnostics or compiles to a program
   that runs a small, varied history (``process_many``, ``advance_to``,
   member views) without an error of any other kind.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poletti
import program_strategies
import rich_programs
from poletti.cli import cli

RULES = """reward gift "Gift" value 3 EUR costs 20 points
attribute vip: bool
earn 1 point per EUR
earn 5 points per purchase if event.vip
at 50 points grant gift
points expire after 30d
"""
COLUMNS = ["id", "type", "customer", "at", "amount", "items", "original", "reward", "birthday", "vip"]
GOOD = {
    "id": st.sampled_from(["e1", "e2", "e3", "p1", "42"]),
    "type": st.sampled_from(["purchase", "refund", "redeem", "visit", "signup", "review", "nonsense"]),
    "customer": st.sampled_from(["c1", "c2", "7"]),
    "at": st.sampled_from(["2026-01-01T10:00:00Z", "2026-01-02", "2026-02-30T10:00:00Z", "1899-12-31",
                           "8999-01-01T00:00:00+14:00", "2026-01-03T10:00:00"]),
    "amount": st.sampled_from(["12.50", "0", "-1", "1e400", "12,50", "NaN", "99999999999999999", "1.0000001"]),
    "items": st.sampled_from(['[{"sku": "a", "category": "coffee", "quantity": 1, "price": "2.50"}]', "[]",
                              "[[[[[]]]]]", "{}", '[{"price": "x"}]', "[" * 300]),
    "original": st.sampled_from(["e1", "p1", "missing"]),
    "reward": st.sampled_from(["gift", "nope"]),
    "birthday": st.sampled_from(["1990-02-29", "2000-02-29", "13-13"]),
    "vip": st.sampled_from(["true", "FALSE", "maybe", "1"]),
}
ANY_CELL = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)
ROWS = st.lists(st.fixed_dictionaries({name: st.one_of(strategy, ANY_CELL, st.just(""))
                                       for name, strategy in GOOD.items()}), min_size=1, max_size=12)
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                           | st.text(max_size=20), lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
LINES = st.lists(st.fixed_dictionaries({}, optional={name: st.one_of(strategy, JSON_VALUES)
                                                     for name, strategy in GOOD.items()}),
                 min_size=1, max_size=10)
COMMANDS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def check_commands(tmp: Path, history: Path, rows: int) -> None:
    rules = tmp / "rules.loyalty"
    rules.write_text(RULES, encoding="utf-8")
    simulated = run("simulate", str(rules), str(history), "--json")
    assert simulated.exit_code == 0, simulated.output
    summary = json.loads(simulated.stdout)
    assert summary["events"] == rows
    assert 0 <= summary["rejected"] <= rows
    ran = run("run", str(rules), str(history), "--json")
    assert ran.exit_code == 0, ran.output
    total = re.search(r"(\d+) events?: (\d+) applied, (\d+) duplicate, (\d+) rejected", ran.stderr)
    assert total is not None, ran.stderr
    events, applied, duplicate, rejected = map(int, total.groups())
    assert events == rows and applied + duplicate + rejected == rows
    assert rejected == summary["rejected"]  # one reader, one set of rules


@COMMANDS
@given(rows=ROWS)
def test_any_csv_cells_are_applied_or_rejected_and_counted(rows: list[dict[str, str]],
                                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("csv")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    history = tmp / "history.csv"
    history.write_text(buffer.getvalue(), encoding="utf-8")
    with history.open(newline="", encoding="utf-8") as back:  # a cell with a newline is still one row
        count = sum(1 for _ in csv.DictReader(back))
    check_commands(tmp, history, count)


@COMMANDS
@given(lines=LINES)
def test_any_json_values_are_applied_or_rejected_and_counted(lines: list[dict[str, Any]],
                                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("jsonl")
    history = tmp / "history.jsonl"
    history.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    check_commands(tmp, history, len(lines))


HISTORY: list[dict[str, Any]] = [
    {"id": "s1", "type": "signup", "customer": "c1", "at": "2026-01-01T09:00:00Z", "birthday": "1990-01-15"},
    {"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-01-02T10:00:00Z", "amount": "60.00",
     "items": [{"sku": "a", "category": "coffee", "quantity": 2, "price": "30.00"}]},
    {"id": "v1", "type": "visit", "customer": "c1", "at": "2026-01-03T10:00:00Z"},
    {"id": "r1", "type": "review", "customer": "c2", "at": "2026-01-03T11:00:00Z"},
    {"id": "p2", "type": "purchase", "customer": "c2", "at": "2026-01-04T10:00:00Z", "amount": "5"},
    {"id": "f1", "type": "refund", "customer": "c1", "at": "2026-01-05T10:00:00Z", "original": "p1",
     "amount": "10"},
    {"id": "x1", "type": "redeem", "customer": "c1", "at": "2026-01-06T10:00:00Z", "reward": "r"},
    {"id": "p3", "type": "purchase", "customer": "c1", "at": "2026-03-01T10:00:00Z", "amount": "250"},
    {"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-03-02T10:00:00Z", "amount": "1"},  # conflict
]


# Random ASTs printed messily (most fail the checker: that is half of what is tested), and random programs
# that check clean by construction (``rich_programs``: every rule kind, option, tier, segment, expiry).
TEXTS = st.one_of(program_strategies.programs().map(lambda generated: generated.text), rich_programs.programs())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS)
def test_any_rule_text_gets_diagnostics_or_runs_a_history(text: str) -> None:
    try:
        compiled = poletti.compile(text)
    except poletti.CompileError as err:
        assert err.diagnostics and all(d.line >= 1 and d.column >= 1 for d in err.errors)
        return
    for explain in (False, True):
        engine = poletti.Engine(compiled, explain=explain)
        result = engine.process_many([dict(event) for event in HISTORY])
        assert len(result.outcomes) + len(result.rejected) == len(HISTORY)
        engine.advance_to("2027-06-01")
        for outcome in result.outcomes:
            outcome.explain()
            outcome.to_dict()
        for customer in engine.customers():
            engine.customer(customer).to_dict()
