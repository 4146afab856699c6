"""Money, not only points: the point value, sales, the points liability and the cost as a share of sales.

Every expected figure is worked out by hand in the comments (LANGUAGE.md:
`point value`, "The simulate summary"); none is copied from the program's
output. The café history of tests/support/simulate_cases.py has its money
figures worked out there.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import simulate_cases as cases
from click.testing import CliRunner

import poletti
from poletti.cli import cli
from poletti.interpreter.simulate import kernels, simulate
from poletti.interpreter.simulate.report import render_report
from poletti.interpreter.simulate.summary import Totals, delta_pct

MONEY_KEYS = ("point_value", "point_value_source", "sales", "liability", "cost_share_of_sales")

# The brief's example. Event by event (one customer, no expiry):
#   p1 purchase 30.00 → +30 → 30
#   p2 purchase 45.00 → +45 → 75 → at 50: gift, −50 → 25
#   r1 refund 10.00 of p2 → P = 45: floor(45 × 10 / 45) = 10 reversed → 15
#   earned 75, spent 50, expired 0, reversed 10, outstanding 15 (check: 50 + 0 + 10 + 15 = 75)
#   sales 30.00 + 45.00 − 10.00 = 65.00; cost 1 gift = 2.50
#   point value derived: gift via the `at` rule 2.50 / 50 = 0.05, via `costs` 2.50 / 50 = 0.05 → 0.05
#   liability: outstanding 15 × 0.05 = 0.75, expired 0 × 0.05 = 0.00
#   cost as a share of sales: 2.50 / 65.00 = 0.038461… = 3.85 %
GIFT_RULES = """\
reward gift "Gift" value 2.50 EUR costs 50 points
earn 1 point per EUR
at 50 points grant gift
"""
GIFT_EVENTS = [
    {"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00Z", "amount": "30.00"},
    {"id": "p2", "type": "purchase", "customer": "c1", "at": "2026-01-10T10:00:00Z", "amount": "45.00"},
    {"id": "r1", "type": "refund", "customer": "c1", "at": "2026-01-12T10:00:00Z", "original": "p2",
     "amount": "10.00"},
]
GIFT_MONEY = {
    "point_value": "0.05",
    "point_value_source": "derived from gift",
    "sales": "65.00",
    "liability": {"outstanding": "0.75", "expired": "0.00"},
    "cost_share_of_sales": "3.85",
}

# With expiry after 30 days, and a second customer whose points expire:
#   c1 as above: p1 01-05 30 (lot expires 02-04), p2 01-10 45 → 75 → gift −50 (p1 30 → 0, p2 45 → 25);
#      r1 01-12 −10 → 15 (p2's lot 25 → 15, expires 02-09 10:00, after the end)
#   c2: p3 01-01 10:00 20.00 → 20 (expires 01-31 10:00) → expired 20 → 0; p4 02-01 10:00 4.00 → 4
#   The end is the last event, 02-01 10:00.
#   earned 30 + 45 + 20 + 4 = 99, spent 50, expired 20, reversed 10, outstanding 15 + 4 = 19
#   (check: 50 + 20 + 10 + 19 = 99)
#   sales 30 + 45 − 10 + 20 + 4 = 89.00; cost 2.50; share 2.50 / 89.00 = 0.028089… = 2.81 %
#   liability: outstanding 19 × 0.05 = 0.95, expired 20 × 0.05 = 1.00
EXPIRY_RULES = GIFT_RULES + "points expire after 30d\n"
EXPIRY_EVENTS = [
    {"id": "p3", "type": "purchase", "customer": "c2", "at": "2026-01-01T10:00:00Z", "amount": "20.00"},
    *GIFT_EVENTS,
    {"id": "p4", "type": "purchase", "customer": "c2", "at": "2026-02-01T10:00:00Z", "amount": "4.00"},
]
EXPIRY_POINTS = {"earned": 99, "spent": 50, "expired": 20, "reversed": 10, "outstanding": 19}
EXPIRY_MONEY = {
    "point_value": "0.05",
    "point_value_source": "derived from gift",
    "sales": "89.00",
    "liability": {"outstanding": "0.95", "expired": "1.00"},
    "cost_share_of_sales": "2.81",
}


def money_of(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: summary[key] for key in MONEY_KEYS}


# ------------------------------------------------------------------ the point value of a program


def test_a_declared_point_value_is_the_programs() -> None:
    program = poletti.compile("point value 0.05 EUR\nreward gift value 9 EUR\nat 10 points grant gift\n")
    assert program.point_value == Decimal("0.05")
    assert program.point_value_source == "declared"


def test_the_derived_point_value_is_the_lowest_value_per_point() -> None:
    # free_drink (at 50): 3.50 / 50 = 0.07; mug (costs 150): 12 / 150 = 0.08; vip (at 10, no value): left out;
    # cake (a stamp card's, value 1): not granted by `at` and without `costs`, left out → 0.07 from free_drink.
    program = poletti.compile(
        'reward free_drink "Free drink" value 3.50 EUR\nreward mug value 12 EUR costs 150 points\n'
        "reward vip\nreward cake value 1 EUR\nearn 1 point per EUR\nat 50 points grant free_drink\n"
        "at 10 points grant vip\nevery 5 purchases grant cake\n")
    assert program.point_value == Decimal("0.07")
    assert program.point_value_source == "derived from free_drink"


def test_a_reward_with_costs_alone_counts_and_a_tie_names_the_first() -> None:
    # a (at 20): 1 / 20 = 0.05; b (costs 40): 2 / 40 = 0.05 — a tie: the `at` rule's reward comes first.
    program = poletti.compile("reward b value 2 EUR costs 40 points\nreward a value 1 EUR\nat 20 points grant a\n")
    assert (program.point_value, program.point_value_source) == (Decimal("0.05"), "derived from a")
    # Only `costs`: 8.00 / 30 = 0.2666…
    only = poletti.compile('reward mug "Mug" value 8.00 EUR costs 30 points\nearn 1 point per EUR\n')
    assert only.point_value_source == "derived from mug"
    assert only.point_value == Decimal("8.00") / 30


def test_without_a_value_per_point_the_point_value_is_unknown() -> None:
    program = poletti.compile("earn 1 point per EUR\nat 50 points grant sticker\n")  # sticker has no value
    assert program.point_value is None and program.point_value_source is None


# ------------------------------------------------------------------ the summary


def test_the_briefs_example_is_the_hand_worked_one() -> None:
    summary = simulate(poletti.compile(GIFT_RULES), GIFT_EVENTS).summary
    assert summary["points"] == {"earned": 75, "spent": 50, "expired": 0, "reversed": 10, "outstanding": 15}
    assert summary["cost"] == "2.50"
    assert money_of(summary) == GIFT_MONEY


def test_expired_points_in_money() -> None:
    summary = simulate(poletti.compile(EXPIRY_RULES), EXPIRY_EVENTS).summary
    assert summary["points"] == EXPIRY_POINTS
    assert money_of(summary) == EXPIRY_MONEY


def test_a_declared_point_value_prices_the_points() -> None:
    # The brief's example with `point value 0.04 EUR`: outstanding 15 × 0.04 = 0.60; expired 0.00.
    summary = simulate(poletti.compile("point value 0.04 EUR\n" + GIFT_RULES), GIFT_EVENTS).summary
    assert (summary["point_value"], summary["point_value_source"]) == ("0.04", "declared")
    assert summary["liability"] == {"outstanding": "0.60", "expired": "0.00"}


def test_an_unknown_point_value_and_no_sales_are_null() -> None:
    # No reward has a value: the point value is unknown and so is the liability. Sales 65.00, cost 0.00:
    # 0.00 / 65.00 = 0.00 %.
    summary = simulate(poletti.compile("earn 1 point per EUR\n"), GIFT_EVENTS).summary
    assert summary["point_value"] is None and summary["point_value_source"] is None
    assert summary["liability"] == {"outstanding": None, "expired": None}
    assert (summary["sales"], summary["cost_share_of_sales"]) == ("65.00", "0.00")
    # No purchases at all: sales 0.00, and the share of nothing is null.
    empty = simulate(poletti.compile(GIFT_RULES), []).summary
    assert (empty["sales"], empty["cost_share_of_sales"]) == ("0.00", None)
    assert empty["liability"] == {"outstanding": "0.00", "expired": "0.00"}


def test_a_point_value_without_a_finite_decimal_prices_points_exactly() -> None:
    # 3.50 EUR for 30 points: 0.116666… a point, shown to six places as 0.116667. The liability uses
    # the exact ratio: 300,000 × 3.50 / 30 = 35,000.00 (the shown 0.116667 would give 35,000.10);
    # 7 expired × 3.50 / 30 = 0.81666… → 0.82. A debt of −9 points: −9 × 3.50 / 30 = −1.05 exactly.
    program = poletti.compile("reward r value 3.50 EUR\nat 30 points grant r\n")
    figures = Totals(outstanding=300_000, expired=7, sales=1).money_figures(program)
    assert figures["point_value"] == "0.116667"
    assert figures["liability"] == {"outstanding": "35000.00", "expired": "0.82"}
    assert Totals(outstanding=-9).money_figures(program)["liability"]["outstanding"] == "-1.05"


def test_point_values_are_written_exactly_with_at_least_two_places() -> None:
    # 5 EUR for 1000 points: 0.005 (not rounded to a cent); a declared 1 EUR: 1.00.
    small = poletti.compile("reward r value 5 EUR\nat 1000 points grant r\n")
    assert Totals().money_figures(small)["point_value"] == "0.005"
    one = poletti.compile("point value 1 EUR\n")
    assert Totals().money_figures(one)["point_value"] == "1.00"


def test_the_cafe_history_in_money_and_its_change() -> None:
    result = simulate(poletti.compile(cases.RULES), cases.EVENTS, baseline=poletti.compile(cases.BASELINE_RULES))
    summary = result.summary
    assert money_of(summary) == cases.EXPECTED_MONEY
    assert money_of(summary["baseline"]) == cases.EXPECTED_BASELINE_MONEY
    assert summary["delta"] == cases.EXPECTED_DELTA
    assert summary["delta_pct"] == cases.EXPECTED_DELTA_PCT


def test_delta_pct_of_a_negative_old_figure_follows_the_change() -> None:
    # Outstanding −10 → −5: a change of +5, 50.0 % of the old figure's size; 0 → 3: null.
    assert delta_pct({"a": 5, "b": 3, "c": "-0.25", "d": None}, {"a": -10, "b": 0, "c": "1.00", "d": "2.00"}) == {
        "a": "50.0", "b": None, "c": "-25.0", "d": None}


def test_a_change_of_point_value_is_unknown_when_one_side_is() -> None:
    # The baseline has no reward value: its point value and liability are unknown, so are their changes.
    result = simulate(poletti.compile(GIFT_RULES), GIFT_EVENTS, baseline=poletti.compile("earn 1 point per EUR\n"))
    change, pct = result.summary["delta"], result.summary["delta_pct"]
    assert change["point_value"] is None and change["liability"] == {"outstanding": None, "expired": None}
    assert pct["point_value"] is None and pct["liability"] == {"outstanding": None, "expired": None}
    # Sales are the same (65.00 both); cost 2.50 − 0.00; share 3.85 − 0.00 = 3.85 points; old 0 → null %.
    assert (change["sales"], change["cost_share_of_sales"], pct["cost_share_of_sales"]) == ("0.00", "3.85", None)


# ------------------------------------------------------------------ every path alike


def _cli_summary(tmp_path: Path, rules: str, events: list[dict[str, Any]], *options: str) -> dict[str, Any]:
    rules_path = tmp_path / "rules.loyalty"
    rules_path.write_text(rules, encoding="utf-8")
    history = cases.write_jsonl(tmp_path / "history.jsonl", events)
    result = CliRunner().invoke(cli, ["simulate", str(rules_path), str(history), "--json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


PATHS = [(), ("--sequential",), ("--workers", "2")]


@pytest.mark.parametrize("options", PATHS, ids=["default", "sequential", "workers2"])
def test_every_path_gives_the_same_money_figures_through_the_arrays(tmp_path: Path, options: tuple[str, ...]) -> None:
    # The brief's program is one the whole-array replay (kernels) takes by default.
    assert kernels.plan(poletti.compile(GIFT_RULES).compiled) is not None
    summary = _cli_summary(tmp_path, GIFT_RULES, GIFT_EVENTS, *options)
    assert money_of(summary) == GIFT_MONEY


@pytest.mark.parametrize("options", PATHS, ids=["default", "sequential", "workers2"])
def test_every_path_gives_the_same_money_figures_per_customer(tmp_path: Path, options: tuple[str, ...]) -> None:
    summary = _cli_summary(tmp_path, EXPIRY_RULES, EXPIRY_EVENTS, *options)
    assert summary["points"] == EXPIRY_POINTS
    assert money_of(summary) == EXPIRY_MONEY


# ------------------------------------------------------------------ the table and the report


def test_the_table_shows_points_in_money_and_changes_with_percentages(tmp_path: Path) -> None:
    rules = tmp_path / "new.loyalty"
    rules.write_text(GIFT_RULES, encoding="utf-8")
    # The old rules convert at 40 points: 75 → gift −40 → 35 → refund −10 → 25 outstanding;
    # point value 2.50 / 40 = 0.0625; liability 25 × 0.0625 = 1.5625 → 1.56.
    # Changes: spent 50 − 40 = +10, 25.0 % of 40; outstanding 15 − 25 = −10, −40.0 %;
    # liability 0.75 − 1.56 = −0.81, −0.81 / 1.56 = −51.9 %; point value 0.05 − 0.0625 = −0.0125, −20.0 %.
    old = tmp_path / "old.loyalty"
    old.write_text('reward gift "Gift" value 2.50 EUR\nearn 1 point per EUR\nat 40 points grant gift\n',
                   encoding="utf-8")
    history = cases.write_jsonl(tmp_path / "history.jsonl", GIFT_EVENTS)
    result = CliRunner().invoke(cli, ["simulate", str(rules), str(history), "--baseline", str(old)])
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[0].strip(): [cell.strip() for cell in line.split("│")[1:]]
             for line in result.output.splitlines() if "│" in line}
    assert lines["Points spent"] == ["50", "40", "+10 (+25.0 %)"]
    assert lines["Points outstanding"] == ["15", "25", "-10 (-40.0 %)"]
    assert lines["Outstanding points in money (EUR)"] == ["0.75", "1.56", "-0.81 (-51.9 %)"]
    assert lines["Expired points in money (EUR)"] == ["0.00", "0.00", "0.00"]
    assert lines["Point value (EUR, derived from gift)"] == ["0.05", "0.0625", "-0.0125 (-20.0 %)"]
    assert lines["Sales: purchases less refunds (EUR)"] == ["65.00", "65.00", "0.00"]
    assert lines["Cost as a share of sales (%)"] == ["3.85", "3.85", "0.00"]


def test_the_table_shows_an_unknown_liability_as_a_dash(tmp_path: Path) -> None:
    rules = tmp_path / "new.loyalty"
    rules.write_text("earn 1 point per EUR\n", encoding="utf-8")
    history = cases.write_jsonl(tmp_path / "history.jsonl", GIFT_EVENTS)
    result = CliRunner().invoke(cli, ["simulate", str(rules), str(history)])
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[0].strip(): line.split("│")[1].strip()
             for line in result.output.splitlines() if "│" in line}
    assert lines["Outstanding points in money (EUR)"] == "–"
    assert lines["Point value (EUR)"] == "–"
    assert lines["Sales: purchases less refunds (EUR)"] == "65.00"


def test_the_report_shows_the_money_figures_and_percentages() -> None:
    result = simulate(poletti.compile(GIFT_RULES), GIFT_EVENTS,
                      baseline=poletti.compile('reward gift "Gift" value 2.50 EUR\nearn 1 point per EUR\n'
                                               "at 40 points grant gift\n"))
    page = render_report(result)
    # Figures as in the table test above. A falling liability is good news: green ("good"), not red.
    assert ("<tr><td>Outstanding points in money (EUR)</td><td class=num>0.75</td><td class=num>1.56</td>"
            "<td class='num good'>-0.81 (-51.9 %)</td></tr>") in page
    assert "<tr><td>Cost as a share of sales (%)</td><td class=num>3.85</td>" in page
    assert "<div class=value>0.75</div><div class='change good'>-0.81 (-51.9 %) vs baseline</div>" in page
    assert "<div class=label>Cost as a share of sales</div><div class=value>3.85 %</div>" in page
