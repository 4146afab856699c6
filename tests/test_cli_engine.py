"""``poletti run``, ``poletti explain`` and ``poletti graph``: output, exit codes, no traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import poletti
from poletti.cli import EXIT_ERRORS, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, cli

ROOT = Path(__file__).parent.parent
CAFE = ROOT / "examples" / "cafe" / "rules.loyalty"

RULES = """\
reward free_drink "Free drink" value 3.50 EUR costs 50 points
earn 1 point per EUR
earn 2 points per EUR on category "beans"
earn x2 during 2026-12-01..2026-12-24
at 50 points grant free_drink
tier gold when spend_30d > 100 keep 30d
points expire after 60d
"""

EVENTS = [
    {"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-11-01T10:00:00+00:00", "amount": "43.20"},
    {"id": "p2", "type": "purchase", "customer": "c2", "at": "2026-11-02T10:00:00+00:00", "amount": "10"},
    {"id": "e7", "type": "purchase", "customer": "c1", "at": "2026-11-03T10:00:00+00:00", "amount": "-5"},
    {"id": "p3", "type": "purchase", "customer": "c1", "at": "2026-12-02T10:00:00+00:00", "amount": "120"},
    {"id": "p3", "type": "purchase", "customer": "c2", "at": "2026-12-03T10:00:00+00:00", "amount": "12"},
    {"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-11-01T10:00:00+00:00", "amount": "43.20"},
]


def run(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=input)
    assert "Traceback" not in result.output
    assert result.exit_code != EXIT_INTERNAL, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules.loyalty"
    rules.write_text(RULES, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    lines = [json.dumps(e) for e in EVENTS]
    lines.insert(2, "this is not json")
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rules, events


# --------------------------------------------------------------------- run


def test_run_prints_each_outcome_and_rejection(files: tuple[Path, Path]) -> None:
    rules, events = files
    result = run("run", str(rules), str(events))
    assert result.exit_code == EXIT_OK
    out = result.stdout
    # p1: 43.20 → 43; 43 < 50.
    assert "2026-11-01T10:00:00+00:00 purchase p1 (customer c1)\n  +43 points by 'earn 1 point per EUR' (line 2)" in out
    assert "needed 50 points, had 43" in out
    assert "rejected line 3: the line is not valid JSON" in out
    assert "rejected e7 (line 4): amount must not be negative" in out
    # p3 in the campaign: 120 × 2 = 240; 43 + 240 = 283 → 5 drinks → 33.
    assert "-250 points converted into 5 × free_drink" in out
    assert "= balance 33 points, lifetime 283, tier none → gold" in out
    # c2's p3 reuses c1's id with other content: a conflict. c1's p1 sent again as it was: a duplicate.
    assert "rejected p3 (line 6): conflict: an event with id 'p3' was already applied with different content" in out
    assert "purchase p1 (customer c1): duplicate id" in out
    assert result.stderr.strip() == "7 events: 3 applied, 1 duplicate, 3 rejected; 2 customers"


def test_run_json_lines(files: tuple[Path, Path]) -> None:
    rules, events = files
    result = run("run", str(rules), str(events), "--json", "--until", "2027-03-01")
    assert result.exit_code == EXIT_OK
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["status"] for r in rows[:7]] == ["applied", "applied", "rejected", "rejected", "applied", "rejected",
                                               "duplicate"]
    assert rows[6]["points"] == 33 and rows[6]["lifetime_points"] == 283  # a duplicate reports the figures now
    assert rows[2] == {"status": "rejected", "row": 3, "event_id": None, "customer": None,
                       "reason": rows[2]["reason"]}
    assert rows[3]["event_id"] == "e7" and rows[3]["customer"] == "c1" and "negative" in rows[3]["reason"]
    assert rows[4]["earned"] == 240 and rows[4]["granted"] == {"free_drink": 5} and rows[4]["points"] == 33
    assert isinstance(rows[4]["at"], str)
    # The clock to 2027-03-01: c2's 10 points (2026-11-02) expire on 2027-01-01T10:00Z (60 days);
    # c1's p3 lot (33 left) on 2027-01-31T10:00Z; c1's gold is kept 30d after 2027-01-01T10:00Z → none.
    clock = {r["customer"]: r for r in rows[7:]}
    assert set(clock) == {"c1", "c2"} and all(r["type"] == "clock" for r in clock.values())
    assert (clock["c2"]["expired"], clock["c2"]["points"]) == (10, 0)
    assert (clock["c1"]["expired"], clock["c1"]["points"], clock["c1"]["tier"]) == (33, 0, None)
    assert "clock changes for 2 customers" in result.stderr


def test_run_reads_stdin_and_csv(files: tuple[Path, Path], tmp_path: Path) -> None:
    rules, events = files
    result = run("run", str(rules), "-", input=events.read_text(encoding="utf-8"))
    assert result.exit_code == EXIT_OK and "rejected e7" in result.stdout
    csv = tmp_path / "events.csv"
    csv.write_text(
        "id,type,customer,at,amount,items\n"
        "p1,purchase,c1,2026-11-01T10:00:00+00:00,10.00,\"[{\"\"category\"\": \"\"beans\"\", \"\"price\"\": \"\"4.00\"\"}]\"\n"
        "v1,visit,c1,2026-11-02T10:00:00+00:00,,\n",
        encoding="utf-8")
    result = run("run", str(rules), str(csv), "--json")
    assert result.exit_code == EXIT_OK
    first = json.loads(result.stdout.splitlines()[0])
    assert first["earned"] == 18  # 10 + 2 × 4.00
    assert "2 events: 2 applied" in result.stderr


def test_run_in_file_order_rejects_what_sort_reorders(files: tuple[Path, Path], tmp_path: Path) -> None:
    rules, _ = files
    events = tmp_path / "late.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in [EVENTS[3], EVENTS[0]]) + "\n", encoding="utf-8")
    assert "older than" in run("run", str(rules), str(events)).stdout
    assert "rejected" not in run("run", str(rules), str(events), "--sort").stdout


def test_run_exit_codes(files: tuple[Path, Path], tmp_path: Path) -> None:
    rules, events = files
    broken = tmp_path / "broken.loyalty"
    broken.write_text("earn 1 point per EUR\nrounding sideways\n", encoding="utf-8")
    result = run("run", str(broken), str(events))
    assert result.exit_code == EXIT_ERRORS and "P001" in result.stderr
    assert run("run", str(rules), str(tmp_path / "missing.jsonl")).exit_code == EXIT_USAGE
    assert run("run", str(tmp_path / "missing.loyalty"), str(events)).exit_code == EXIT_USAGE
    assert run("run", str(rules), str(tmp_path / "events.txt")).exit_code == EXIT_USAGE
    for bad in ("next week", "9999-12-31", "2026-01-01T10:00:00"):
        result = run("run", str(rules), str(events), "--until", bad)
        assert result.exit_code == EXIT_USAGE and "--until" in result.output


def test_run_on_an_empty_history(files: tuple[Path, Path], tmp_path: Path) -> None:
    rules, _ = files
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    result = run("run", str(rules), str(empty))
    assert result.exit_code == EXIT_OK and result.stdout == ""
    assert result.stderr.strip() == "0 events: 0 applied, 0 duplicate, 0 rejected; 0 customers"


# ----------------------------------------------------------------- explain


def test_explain_tells_one_customers_story(files: tuple[Path, Path]) -> None:
    rules, events = files
    result = run("explain", str(rules), str(events), "--customer", "c1", "--until", "2027-03-01")
    assert result.exit_code == EXIT_OK
    out = result.stdout
    assert out.startswith("Customer c1: 4 events in ")
    assert "(2 applied, 1 duplicate, 1 rejected)" in out
    assert "customer c2" not in out
    assert "rejected e7 (line 4): amount must not be negative" in out
    assert "at 2027-01-01T10:00:00+00:00: tier gold kept until 2027-01-31T10:00:00+00:00" in out
    assert "at 2027-01-31T10:00:00+00:00: -33 points expired (lot earned 2026-12-02 by p3" in out
    assert "tier gold → none (the keep 30d of gold ran out)" in out
    standing = out[out.index("Standing at 2027-03-01T00:00:00+00:00:"):]
    assert "  points           0\n" in standing and "  lifetime         283\n" in standing
    assert "  tier             none\n" in standing and "  rewards          free_drink × 5\n" in standing


def test_explain_follows_ids_shared_with_other_customers(files: tuple[Path, Path]) -> None:
    # c2's p3 reuses the id of c1's p3 (a conflict), so c1's events must be replayed too.
    rules, events = files
    result = run("explain", str(rules), str(events), "--customer", "c2")
    assert result.exit_code == EXIT_OK
    assert "rejected p3 (line 6): conflict" in result.stdout
    assert "  lifetime         10\n" in result.stdout


def test_explain_unknown_customer(files: tuple[Path, Path]) -> None:
    rules, events = files
    result = run("explain", str(rules), str(events), "--customer", "c11")
    assert result.exit_code == EXIT_ERRORS
    assert "customer 'c11' has no events in" in result.stderr
    assert "did you mean 'c1'" in result.stderr


def test_explain_needs_a_customer(files: tuple[Path, Path]) -> None:
    rules, events = files
    assert run("explain", str(rules), str(events)).exit_code == EXIT_USAGE


def test_explain_golden_on_a_csv_history(golden: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ROOT / "tests" / "data" / "explain" / "cli"
    monkeypatch.chdir(data)
    result = run("explain", "rules.loyalty", "history.csv", "--customer", "c1")
    assert result.exit_code == EXIT_OK
    golden.check(result.stdout, data / "c1.expected")


# ------------------------------------------------------------------- graph

GRAPH_RULES = RULES + """\
attribute channel: text
segment lapsed when days_since_last_purchase > 60
metric beans_30d = sum of amount of purchase on category "beans" over 30d
earn x2 if lapsed and event.channel == "app"
when beans_30d > 40 grant free_drink once
"""

NODE = re.compile(r'^  "((?:[^"\\]|\\.)*)" \[label="((?:[^"\\]|\\.)*)", shape=(\w+)\];$')
EDGE = re.compile(r'^  "((?:[^"\\]|\\.)*)" -> "((?:[^"\\]|\\.)*)" \[label="(\w+)"(?:, style=dashed)?\];$')


def parse_dot(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """A strict reader for the DOT poletti writes: every line must be a node, an edge or the frame."""
    lines = text.splitlines()
    assert lines[0] == "digraph poletti {" and lines[1] == "  rankdir=LR;" and lines[-1] == "}"
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    for line in lines[2:-1]:
        if match := NODE.match(line):
            nodes[match.group(1)] = match.group(2).replace('\\"', '"')
        elif match := EDGE.match(line):
            edges.append((match.group(1), match.group(2), match.group(3)))
        else:
            raise AssertionError(f"not DOT as poletti writes it: {line!r}")
    for a, b, _ in edges:
        assert a in nodes and b in nodes, (a, b)
    return nodes, edges


def test_graph_text_lists_every_rule_and_quantity(tmp_path: Path) -> None:
    rules = tmp_path / "rules.loyalty"
    rules.write_text(GRAPH_RULES, encoding="utf-8")
    result = run("graph", str(rules))
    assert result.exit_code == EXIT_OK
    out = result.stdout
    program = poletti.compile(GRAPH_RULES)
    for rule in program.checked.rules:
        assert f"(line {rule.span.line})" in out
    for step in range(1, 7):
        assert f"step {step}: " in out
    assert '  rule earn 2 points per EUR on category "beans"  (line 3)' in out
    assert "  rule earn x2 if lapsed and event.channel == \"app\"  (line 11)\n    reads: lapsed, event.channel" in out
    assert "  metric beans_30d  (line 10)" in out
    quantities = out[out.index("quantities read by the rules:"):]
    for name in ("spend_30d", "days_since_last_purchase", "lapsed (segment)", "beans_30d (metric)",
                 "event.channel"):
        assert f"  {name}: read by line" in quantities
    assert run("graph", str(rules)).stdout == out  # deterministic


def test_graph_dot_is_well_formed_and_escapes_quotes(tmp_path: Path) -> None:
    rules = tmp_path / "rules.loyalty"
    rules.write_text(GRAPH_RULES, encoding="utf-8")
    result = run("graph", str(rules), "--dot")
    assert result.exit_code == EXIT_OK
    nodes, edges = parse_dot(result.stdout)
    assert nodes["rule:1"] == 'earn 2 points per EUR on category "beans"'
    assert '\\"beans\\"' in result.stdout
    assert ("segment:lapsed", "rule:6", "reads") in edges
    assert ("event:channel", "rule:6", "reads") in edges
    assert ("rule:3", "reward:free_drink", "grants") in edges
    assert run("graph", str(rules), "--dot").stdout == result.stdout


def test_graph_of_the_cafe_example() -> None:
    result = run("graph", str(CAFE))
    assert result.exit_code == EXIT_OK
    assert "rule tier gold when spend_12m > 1000" in result.stdout
    parse_dot(run("graph", str(CAFE), "--dot").stdout)


def test_graph_exit_codes(tmp_path: Path) -> None:
    broken = tmp_path / "broken.loyalty"
    broken.write_text("tier gold when spnd_12m > 1000\n", encoding="utf-8")
    result = run("graph", str(broken))
    assert result.exit_code == EXIT_ERRORS and "E101" in result.stderr
    assert run("graph", str(tmp_path / "nope.loyalty")).exit_code == EXIT_USAGE
