"""``simulate`` and ``poletti simulate``: summaries against hand-worked answers, baselines, --until, the CLI.

The small café history and its hand-worked figures are in
tests/support/simulate_cases.py (with the arithmetic, event by event).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import simulate_cases as cases
from click.testing import CliRunner, Result

import poletti
from poletti.engine.money import from_units
from poletti.cli import EXIT_ERRORS, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, cli
from poletti.interpreter.simulate.history import History
from poletti.interpreter.simulate import delta, simulate

CORE = ("events", "rejected", "customers", "points", "rewards", "tiers", "cost")


def core(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: summary[key] for key in CORE}


@pytest.fixture(scope="module")
def program() -> poletti.Program:
    return poletti.compile(cases.RULES)


@pytest.fixture(scope="module")
def baseline() -> poletti.Program:
    return poletti.compile(cases.BASELINE_RULES)


@pytest.fixture(scope="module")
def with_baseline(program: poletti.Program, baseline: poletti.Program) -> Any:
    return simulate(program, cases.EVENTS, baseline=baseline, effect_from="2026-02-01")


# ------------------------------------------------------------- the summary


def test_summary_of_a_small_history_is_the_hand_worked_one(program: poletti.Program) -> None:
    result = simulate(program, cases.EVENTS)
    assert core(result.summary) == cases.EXPECTED
    assert result.summary["currency"] == "EUR"
    assert result.summary["duplicates"] == 0
    # The clock ended at the last event's time (p4, 03-15 12:00 UTC).
    assert result.summary["period"] == {"from": "2026-01-02T09:00:00+00:00", "to": "2026-03-15T12:00:00+00:00"}


def test_summary_keys_are_the_contract_ones(program: poletti.Program) -> None:
    summary = simulate(program, cases.EVENTS).summary
    assert list(summary)[:7] == list(CORE)
    assert set(summary["points"]) == {"earned", "spent", "expired", "reversed", "outstanding"}
    # Every reward of the program appears, 0 included; every tier and "none".
    empty = simulate(program, []).summary
    assert empty["rewards"] == {"free_drink": 0, "mug": 0}
    assert empty["tiers"] == {"gold": 0, "none": 0}
    assert empty["cost"] == "0.00"
    assert empty["events"] == empty["customers"] == 0


def test_earned_counts_every_point_issued_fixed_and_trigger_points_too() -> None:
    program = poletti.compile("earn 1 point per EUR\non review grant 5 points\n"
                              "when spend_lifetime > 50 grant 20 points once\n")
    events = [
        {"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00Z", "amount": "60.00"},
        {"id": "v1", "type": "review", "customer": "c1", "at": "2026-01-06T10:00:00Z"},
        {"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00Z", "amount": "60"},
        {"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-01-07T10:00:00Z", "amount": "60.00"},
    ]
    summary = simulate(program, events).summary
    # p1: 60 per EUR + 20 from the `when` rule (spend 60 > 50) = 80; the review: + 5 → 85.
    # The second p1 has the same content (60 is 60.00): a duplicate, read, neither applied nor rejected.
    # The third is another instant under the same id: a conflict, rejected.
    assert summary["points"]["earned"] == 85
    assert summary["points"]["outstanding"] == 85
    assert (summary["events"], summary["rejected"], summary["duplicates"]) == (4, 1, 1)


def test_month_by_month_figures_are_the_hand_worked_ones(program: poletti.Program) -> None:
    months = simulate(program, cases.EVENTS).new.months
    got = [{"start": m.start.isoformat(), "earned": m.earned, "spent": m.spent, "expired": m.expired,
            "reversed": m.reversed, "rewards": m.rewards, "cost": f"{m.cost:.2f}", "outstanding": m.outstanding,
            "tiers": m.tiers} for m in months]
    assert got == cases.EXPECTED_MONTHS


def test_month_series_add_up_to_the_summary(with_baseline: Any) -> None:
    for run, summary in ((with_baseline.new, with_baseline.summary),
                         (with_baseline.baseline, with_baseline.summary["baseline"])):
        for key in ("earned", "spent", "expired", "reversed"):
            assert sum(getattr(m, key) for m in run.months) == summary["points"][key]
        assert run.months[-1].outstanding == summary["points"]["outstanding"]
        assert run.months[-1].tiers == summary["tiers"]
        for reward, count in summary["rewards"].items():
            assert sum(m.rewards.get(reward, 0) for m in run.months) == count
        assert f"{sum(m.cost for m in run.months):.2f}" == summary["cost"]


def test_effect_measures_before_and_after(with_baseline: Any) -> None:
    effect = with_baseline.summary["effect"]
    # Accepted purchases: p1 80.00, p2 45.50 (before 02-01), p3 40.00, p5 60.00, p4 12.00 (from 02-01).
    # All: 5 purchases by c1 (2), c2 (2), c3 (1): repeat rate 2/3; basket 237.50 / 5 = 47.50.
    assert effect["all"]["purchases"] == 5
    assert effect["all"]["purchasing_customers"] == 3
    assert effect["all"]["repeat_purchase_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert effect["all"]["spend"] == "237.50"
    assert effect["all"]["average_basket"] == "47.50"
    # Before: p1, p2 by two customers, one each: rate 0; basket 125.50 / 2 = 62.75.
    # The period runs from 01-02 09:00 to 02-01 00:00 = 29.625 days = 29.625 / 30.4375 months:
    # 1 purchase per customer / 0.97331 months = 1.0274 per month.
    before = effect["before"]
    assert (before["purchases"], before["purchasing_customers"], before["repeat_purchasers"]) == (2, 2, 0)
    assert before["average_basket"] == "62.75"
    assert before["purchases_per_customer_per_month"] == pytest.approx(1 / (29.625 / 30.4375), abs=1e-4)
    # After: p3 (c1), p5 (c2), p4 (c3): 3 customers, rate 0; basket 112.00 / 3 = 37.333 → 37.33.
    after = effect["after"]
    assert (after["purchases"], after["purchasing_customers"], after["repeat_purchasers"]) == (3, 3, 0)
    assert after["average_basket"] == "37.33"
    assert effect["effect_from"] == "2026-02-01T00:00:00+00:00"


# --------------------------------------------------------------- baseline


def test_baseline_and_delta_are_the_hand_worked_ones(with_baseline: Any) -> None:
    summary = with_baseline.summary
    assert core(summary) == cases.EXPECTED
    assert core(summary["baseline"]) == cases.EXPECTED_BASELINE
    assert summary["delta"] == cases.EXPECTED_DELTA


def test_rejections_say_which_rules_rejected_them(with_baseline: Any) -> None:
    got = [(r.row, r.event_id, r.customer, r.rules) for r in with_baseline.rejections]
    # `bad` has no amount under either program (one line, "both"); x3 is short of points under both,
    # with different balances (−30 new, 10 old), so each program's reason is kept.
    assert got == [(8, "bad", "c3", "both"), (9, "x3", "c1", "new"), (9, "x3", "c1", "baseline")]
    reasons = {r.rules: r.reason for r in with_baseline.rejections}
    assert "amount" in reasons["both"]
    assert "-30" in reasons["new"] and "short" in reasons["new"]
    assert "10" in reasons["baseline"]


def test_customer_rows_show_who_gains_and_who_loses(with_baseline: Any) -> None:
    rows = {row["customer"]: row for row in with_baseline.customer_rows()}
    assert list(rows) == ["c1", "c2", "c3"]
    c1, c2, c3 = rows["c1"], rows["c2"], rows["c3"]
    # c1: new −30 (debt 30), lifetime 130, 2 drinks + mug = 7.00 + 8.00 = 15.00;
    #     old 10, lifetime 120, 1 drink + mug = 11.50 → gains 3.50 of rewards, holds 40 fewer points.
    assert (c1["points"], c1["debt"], c1["lifetime_points"], c1["reward_value"]) == (-30, 30, 130, "15.00")
    assert (c1["baseline_points"], c1["baseline_lifetime_points"], c1["baseline_reward_value"]) == (10, 120, "11.50")
    assert (c1["delta_points"], c1["delta_lifetime_points"], c1["delta_reward_value"]) == (-40, 10, "3.50")
    assert c1["rewards"] == "free_drink=2;mug=1" and c1["baseline_rewards"] == "free_drink=1;mug=1"
    assert c1["change"] == "gains"
    # c2: same rewards and lifetime; 15 points expired under the new rules: holds 10 instead of 25 → loses.
    assert (c2["points"], c2["baseline_points"], c2["delta_points"], c2["change"]) == (10, 25, -15, "loses")
    assert c2["tier"] == c2["baseline_tier"] == "gold" and c2["tier_change"] == ""
    assert c3["change"] == "same" and c3["delta_points"] == 0


def test_customer_rows_name_tier_changes() -> None:
    new = poletti.compile("earn 1 point per EUR\ntier gold when spend_12m > 50\n")
    old = poletti.compile("earn 1 point per EUR\ntier gold when spend_12m > 100\n")
    events = [{"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00Z", "amount": "60.00"}]
    # 60 > 50 but not > 100: gold under the new rules only.
    result = simulate(new, events, baseline=old)
    (row,) = list(result.customer_rows())
    assert row["tier_change"] == "none→gold"
    assert result.summary["delta"]["tiers"] == {"gold": 1, "none": -1}


def test_delta_handles_names_only_one_side_has() -> None:
    new = {"rewards": {"a": 2, "b": 1}, "cost": "5.00", "points": {"earned": 3}}
    old = {"rewards": {"a": 3, "c": 4}, "cost": "7.50", "points": {"earned": 1}}
    assert delta(new, old) == {"points": {"earned": 2}, "rewards": {"a": -1, "b": 1, "c": -4}, "cost": "-2.50"}


# ------------------------------------------------------------ cost_unknown

# Rewards without a declared value are listed, never counted as free. Worked by hand:
#   p1 c1 130 EUR: +130 → at 100: cake (−100 → 30) → at 30: free_drink (−30 → 0); 1st purchase, no stamp
#   p2 c2  40 EUR: +40 → at 30: free_drink (−30 → 10)
#   p3 c1  10 EUR: 2nd purchase of c1 → sticker (every 2); +10 → 10
#   rewards cake 1, free_drink 2, sticker 1, mug 0 (redeemable, never redeemed)
#   cost = 1 × 4.00 = 4.00 (only the cake has a value); cost_unknown = free_drink, sticker (sorted)
UNKNOWN_COST_RULES = """\
reward cake "Cake" value 4.00 EUR
reward mug "Mug" costs 500 points
every 2 purchases grant sticker
earn 1 point per EUR
at 100 points grant cake
at 30 points grant free_drink
"""
# The old rules declare the free drink's value and have no stamp card:
#   rewards cake 1, free_drink 2; cost = 4.00 + 2 × 3.50 = 11.00; cost_unknown none
KNOWN_COST_RULES = """\
reward cake "Cake" value 4.00 EUR
reward free_drink "Free drink" value 3.50 EUR
earn 1 point per EUR
at 100 points grant cake
at 30 points grant free_drink
"""
UNKNOWN_COST_EVENTS = [
    {"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00Z", "amount": "130"},
    {"id": "p2", "type": "purchase", "customer": "c2", "at": "2026-01-06T10:00:00Z", "amount": "40"},
    {"id": "p3", "type": "purchase", "customer": "c1", "at": "2026-01-07T10:00:00Z", "amount": "10"},
]


def test_rewards_without_a_value_are_listed_as_cost_unknown_not_counted_as_free() -> None:
    summary = simulate(poletti.compile(UNKNOWN_COST_RULES), UNKNOWN_COST_EVENTS).summary
    assert summary["rewards"] == {"cake": 1, "mug": 0, "sticker": 1, "free_drink": 2}
    assert summary["cost"] == "4.00"
    assert summary["cost_unknown"] == ["free_drink", "sticker"]
    assert list(summary).index("cost_unknown") == list(summary).index("cost") + 1


def test_cost_unknown_is_always_there() -> None:
    assert simulate(poletti.compile(cases.RULES), cases.EVENTS).summary["cost_unknown"] == []  # every value declared
    assert simulate(poletti.compile(UNKNOWN_COST_RULES), []).summary["cost_unknown"] == []  # nothing handed out


def test_a_redeemed_reward_without_a_value_is_cost_unknown_too() -> None:
    program = poletti.compile('reward mug "Mug" costs 30 points\nearn 1 point per EUR\n')
    events = [
        {"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00Z", "amount": "40"},
        {"id": "x1", "type": "redeem", "customer": "c1", "at": "2026-01-06T10:00:00Z", "reward": "mug"},
    ]
    summary = simulate(program, events).summary
    assert (summary["rewards"], summary["cost"], summary["cost_unknown"]) == ({"mug": 1}, "0.00", ["mug"])


def test_cost_unknown_in_the_baseline_and_a_delta_without_it() -> None:
    new, old = poletti.compile(UNKNOWN_COST_RULES), poletti.compile(KNOWN_COST_RULES)
    summary = simulate(new, UNKNOWN_COST_EVENTS, baseline=old).summary
    assert summary["cost_unknown"] == ["free_drink", "sticker"]
    assert summary["baseline"]["cost_unknown"] == []
    assert summary["baseline"]["cost"] == "11.00"
    assert "cost_unknown" not in summary["delta"]
    assert summary["delta"]["cost"] == "-7.00"  # 4.00 − 11.00: of the known values only
    assert delta(summary, summary["baseline"]) == summary["delta"]


def test_cli_json_and_table_say_the_cost_is_unknown(tmp_path: Path) -> None:
    rules, old = tmp_path / "rules.loyalty", tmp_path / "old.loyalty"
    rules.write_text(UNKNOWN_COST_RULES, encoding="utf-8")
    old.write_text(KNOWN_COST_RULES, encoding="utf-8")
    history = cases.write_jsonl(tmp_path / "history.jsonl", UNKNOWN_COST_EVENTS)
    summary = json_summary(run("simulate", str(rules), str(history), "--json", "--baseline", str(old)))
    assert (summary["cost_unknown"], summary["baseline"]["cost_unknown"]) == (["free_drink", "sticker"], [])
    table = run("simulate", str(rules), str(history), "--baseline", str(old))
    assert table.exit_code == EXIT_OK, table.output
    out = " ".join(table.stdout.split())  # the note wraps at the table's width
    assert "Rewards of unknown cost (not in the cost) │ free_drink, sticker │ –" in out
    assert ("The cost of rewards leaves out free_drink (handed out 2 times), sticker (handed out once) under the "
            "new rules: no value is declared, so their cost is unknown, not zero.") in out
    known = run("simulate", str(old), str(history))
    assert "unknown" not in known.stdout


# ------------------------------------------------------------------ --until


def test_until_leaves_later_events_out_and_advances_the_clock(program: poletti.Program) -> None:
    result = simulate(program, cases.EVENTS, until="2026-02-04")
    summary = result.summary
    # Up to 02-04 00:00 UTC: s1 p1 p2 x1 p3 r1 (6 events); x2 bad x3 p5 p4 (5) are after it.
    # earned 10 + 80 + 45 + 40 = 175; spent 50 + 30 + 50 = 130; reversed 30; c2's lot expires only 02-10.
    # outstanding c1 −30 + c2 45 = 15 (check 130 + 30 + 15 = 175); 2 drinks + 1 mug = 7.00 + 8.00 = 15.00.
    assert (summary["events"], summary["after_until"], summary["rejected"], summary["customers"]) == (6, 5, 0, 2)
    assert summary["points"] == {"earned": 175, "spent": 130, "expired": 0, "reversed": 30, "outstanding": 15}
    assert summary["rewards"] == {"free_drink": 2, "mug": 1}
    assert summary["cost"] == "15.00"
    assert summary["period"]["to"] == "2026-02-04T00:00:00+00:00"


def test_until_after_an_expiry_applies_it(program: poletti.Program) -> None:
    summary = simulate(program, cases.EVENTS, until="2026-02-11").summary
    # Adds x2 (c2 45 → 15) and `bad` (rejected); c2's 15 left expire at 02-10 10:00, before the clock's 02-11.
    # outstanding c1 −30 + c2 0 = −30.
    assert (summary["events"], summary["after_until"], summary["rejected"]) == (8, 3, 1)
    assert summary["points"]["expired"] == 15
    assert summary["points"]["outstanding"] == -30


def test_until_past_the_history_runs_the_clock_on(program: poletti.Program) -> None:
    summary = simulate(program, cases.EVENTS, until="2026-05-01").summary
    # c2's 10 left from p5 (03-01) expire 04-01, c3's 12 from p4 (03-15) expire 04-15: 15 + 10 + 12 = 37.
    # c1 keeps its debt: outstanding −30.
    assert summary["points"]["expired"] == 37
    assert summary["points"]["outstanding"] == -30
    assert summary["after_until"] == 0


# ------------------------------------------- clock steps change no final figure

TIME_RULES = """\
timezone "Europe/Helsinki"
reward free_drink "Free drink" value 3.50 EUR costs 40 points
reward cake "Cake" value 2.00 EUR
earn 1 point per EUR
at 60 points grant free_drink
on birthday grant cake
tier silver when spend_30d > 60
tier gold when spend_12m > 300 keep 2m
segment lapsed when days_since_last_purchase > 20
when lapsed grant 15 points once per 3m
points expire after 2m
points pending for 7d
"""


def random_history(seed: int, customers: int = 25, days: int = 300) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    events: list[dict[str, Any]] = []
    for c in range(customers):
        customer = f"c{c}"
        at = start + timedelta(days=rng.uniform(0, 60))
        events.append({"id": f"s{c}", "type": "signup", "customer": customer, "at": at.isoformat(),
                       "birthday": f"19{rng.randrange(50, 99)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"})
        purchases: list[str] = []
        n = 0
        while True:
            at += timedelta(days=rng.expovariate(1 / 9))
            if at > start + timedelta(days=days):
                break
            n += 1
            kind = rng.random()
            event_id = f"e{c}_{n}"
            if kind < 0.7:
                events.append({"id": event_id, "type": "purchase", "customer": customer, "at": at.isoformat(),
                               "amount": f"{rng.uniform(3, 90):.2f}"})
                purchases.append(event_id)
            elif kind < 0.8 and purchases:
                events.append({"id": event_id, "type": "refund", "customer": customer, "at": at.isoformat(),
                               "original": rng.choice(purchases), "amount": "5.00"})
            elif kind < 0.9:
                events.append({"id": event_id, "type": "redeem", "customer": customer, "at": at.isoformat(),
                               "reward": "free_drink"})
            else:
                events.append({"id": event_id, "type": "visit", "customer": customer, "at": at.isoformat()})
    events.sort(key=lambda e: datetime.fromisoformat(e["at"]))
    return events


def test_month_end_clock_steps_change_nothing() -> None:
    """simulate advances every customer's clock at each month's end; a plain engine loop does not."""
    program = poletti.compile(TIME_RULES)
    events = random_history(7)
    result = simulate(program, events)
    plain = poletti.Engine(program)
    rejected = 0
    for event in events:
        try:
            plain.process(copy.deepcopy(event))
        except poletti.EventError:
            rejected += 1
    plain.advance_to(events[-1]["at"])
    assert len(result.new.months) >= 9
    assert result.summary["rejected"] == rejected
    rows = {row["customer"]: row for row in result.customer_rows()}
    assert sorted(rows) == list(plain.customers())
    for customer in plain.customers():
        view, state = plain.customer(customer), plain.state(customer)
        row = rows[customer]
        assert (row["points"], row["pending_points"], row["lifetime_points"], row["tier"]) == \
            (view.points, view.pending_points, view.lifetime_points, view.tier), customer
        assert row["reward_value"] == f"{from_units(state.totals.cost):.2f}", customer  # type: ignore[union-attr]


# ----------------------------------------------------- rejected rows from files


BROKEN_LINES = [
    "{not json\n",
    "[1, 2, 3]\n",
    '{"id": "z1", "type": "teleport", "customer": "c1", "at": "2026-01-06T10:00:00+00:00"}\n',
    '{"id": "z2", "type": "purchase", "customer": "c2", "at": "yesterday", "amount": "5.00"}\n',
]


def test_rejected_rows_are_reported_and_change_nothing_else(tmp_path: Path, program: poletti.Program) -> None:
    clean = cases.write_jsonl(tmp_path / "clean.jsonl", cases.EVENTS)
    lines = clean.read_text(encoding="utf-8").splitlines(keepends=True)
    dirty = tmp_path / "dirty.jsonl"
    # The broken lines go after line 3 (p2): lines 4 to 7 of the file.
    dirty.write_text("".join(lines[:3] + BROKEN_LINES + lines[3:]), encoding="utf-8")
    tz = program.compiled.tz
    with History(str(clean), tz) as history:
        expected = simulate(program, history).summary
    with History(str(dirty), tz) as history:
        result = simulate(program, history)
    summary = result.summary
    assert summary["events"] == expected["events"] + 4
    assert summary["rejected"] == expected["rejected"] + 4
    for key in ("customers", "points", "rewards", "tiers", "cost"):
        assert summary[key] == expected[key], key
    got = {r.row: r.reason for r in result.rejections}
    assert "not valid JSON" in got[4]
    assert "JSON object" in got[5]
    assert "teleport" in got[6]
    assert "yesterday" in got[7]


# ------------------------------------------------------------------ the CLI


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def stderr_of(result: Result) -> str:
    try:
        return result.stderr
    except ValueError:  # older click mixes the streams
        return ""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rules = tmp_path / "rules.loyalty"
    rules.write_text(cases.RULES, encoding="utf-8")
    old = tmp_path / "old.loyalty"
    old.write_text(cases.BASELINE_RULES, encoding="utf-8")
    return {
        "rules": rules,
        "old": old,
        "jsonl": cases.write_jsonl(tmp_path / "history.jsonl", cases.EVENTS),
        "csv": cases.write_csv(tmp_path / "history.csv", cases.EVENTS),
        "parquet": cases.write_parquet(tmp_path / "history.parquet", cases.EVENTS),
        "dir": tmp_path,
    }


def json_summary(result: Result) -> dict[str, Any]:
    assert result.exit_code == EXIT_OK, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_cli_json_summary(files: dict[str, Path]) -> None:
    summary = json_summary(run("simulate", str(files["rules"]), str(files["jsonl"]), "--json"))
    assert core(summary) == cases.EXPECTED
    assert summary["reordered"] is False


def test_cli_csv_jsonl_and_parquet_give_identical_summaries(files: dict[str, Path]) -> None:
    summaries = [json_summary(run("simulate", str(files["rules"]), str(files[kind]), "--json",
                                  "--baseline", str(files["old"])))
                 for kind in ("csv", "jsonl", "parquet")]
    assert summaries[0] == summaries[1] == summaries[2]
    assert core(summaries[0]) == cases.EXPECTED
    assert summaries[0]["delta"] == cases.EXPECTED_DELTA


def test_cli_out_of_order_history_gives_the_sorted_result(files: dict[str, Path]) -> None:
    shuffled = list(cases.EVENTS)
    random.Random(3).shuffle(shuffled)
    assert shuffled != cases.EVENTS
    path = cases.write_csv(files["dir"] / "shuffled.csv", shuffled)
    sorted_summary = json_summary(run("simulate", str(files["rules"]), str(files["csv"]), "--json"))
    summary = json_summary(run("simulate", str(files["rules"]), str(path), "--json"))
    assert summary.pop("reordered") is True
    assert sorted_summary.pop("reordered") is False
    assert summary == sorted_summary


def test_cli_stdin_is_json_lines(files: dict[str, Path]) -> None:
    text = files["jsonl"].read_text(encoding="utf-8")
    summary = json_summary(run("simulate", str(files["rules"]), "-", "--json", input=text))
    assert core(summary) == cases.EXPECTED


def test_cli_customers_and_rejected_files(files: dict[str, Path]) -> None:
    customers, rejected = files["dir"] / "customers.csv", files["dir"] / "rejected.csv"
    result = run("simulate", str(files["rules"]), str(files["csv"]), "--baseline", str(files["old"]),
                 "--customers", str(customers), "--rejected", str(rejected))
    assert result.exit_code == EXIT_OK, result.output
    rows = list(csv.DictReader(io.StringIO(customers.read_text(encoding="utf-8"))))
    assert [r["customer"] for r in rows] == ["c1", "c2", "c3"]
    assert rows[0]["points"] == "-30" and rows[0]["baseline_points"] == "10" and rows[0]["delta_points"] == "-40"
    assert rows[1]["tier"] == "gold" and rows[2]["tier"] == "none"
    assert rows[0]["rewards"] == "free_drink=2;mug=1"
    lines = list(csv.DictReader(io.StringIO(rejected.read_text(encoding="utf-8"))))
    assert [(r["row"], r["event_id"], r["rules"]) for r in lines] == [("8", "bad", "both"), ("9", "x3", "new"),
                                                                       ("9", "x3", "baseline")]
    assert "amount" in lines[0]["reason"]


def test_cli_customers_without_baseline_has_no_baseline_columns(files: dict[str, Path]) -> None:
    customers = files["dir"] / "customers.csv"
    assert run("simulate", str(files["rules"]), str(files["csv"]), "--customers", str(customers)).exit_code == 0
    header = customers.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header[:6] == ["customer", "points", "pending_points", "lifetime_points", "debt", "tier"]
    assert not any(column.startswith(("baseline_", "delta_")) for column in header)


def test_cli_table_for_people(files: dict[str, Path]) -> None:
    result = run("simulate", str(files["rules"]), str(files["csv"]), "--baseline", str(files["old"]))
    assert result.exit_code == EXIT_OK, result.output
    out = result.stdout
    assert "\x1b[" not in out  # no colour when piped
    for text in ("Points earned", "247", "237", "+10", "Cost of rewards (EUR)", "26.50", "+3.50",
                 "2 events rejected", "Repeat-purchase rate"):
        assert text in out, text


def test_cli_progress_is_silent_when_piped(files: dict[str, Path]) -> None:
    result = run("simulate", str(files["rules"]), str(files["csv"]))
    assert result.exit_code == EXIT_OK
    assert "Simulating" not in result.output
    assert stderr_of(result) == ""


def test_progress_bar_on_a_terminal_shows_events_rate_and_eta() -> None:
    from rich.console import Console

    from poletti.commands.simulate import RichProgress, make_progress

    assert make_progress(enabled=False) is None
    out = io.StringIO()
    with RichProgress(Console(file=out, force_terminal=True, width=120)) as bar:
        bar("simulate", 500, 1000)
        bar.progress.refresh()
        bar("simulate", 1000, 1000)
        bar.progress.refresh()
    text = out.getvalue()
    assert "Simulating" in text
    assert "events" in text
    assert "ETA" in text


@pytest.mark.parametrize("args, code, words", [
    (["missing.csv"], EXIT_USAGE, "cannot read"),
    (["history.txt"], EXIT_USAGE, "format"),
    (["history.csv", "--until", "someday"], EXIT_USAGE, "--until"),
    (["history.csv", "--effect-from", "2026-13-45"], EXIT_USAGE, "--effect-from"),
    (["history.csv", "--report", "no/such/dir/report.html"], EXIT_USAGE, "does not exist"),
    (["history.csv", "--customers", "same.csv", "--rejected", "same.csv"], EXIT_USAGE, "different"),
])
def test_cli_usage_errors_exit_2(files: dict[str, Path], args: list[str], code: int, words: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(files["dir"])
    (files["dir"] / "history.txt").write_text("x", encoding="utf-8")
    result = run("simulate", str(files["rules"]), *args)
    assert result.exit_code == code, result.output
    assert words in result.output
    assert "Traceback" not in result.output


def test_cli_history_without_required_columns_exits_2(files: dict[str, Path]) -> None:
    path = files["dir"] / "odd.csv"
    path.write_text("when,who\n2026-01-01,c1\n", encoding="utf-8")
    result = run("simulate", str(files["rules"]), str(path))
    assert result.exit_code == EXIT_USAGE
    assert "'id'" in result.output and "'at'" in result.output


def test_cli_rule_file_errors_exit_1(files: dict[str, Path]) -> None:
    bad = files["dir"] / "bad.loyalty"
    bad.write_text("earn 1 point per EUR\nrounding sideways\n", encoding="utf-8")
    result = run("simulate", str(bad), str(files["csv"]))
    assert result.exit_code == EXIT_ERRORS
    assert "P001" in result.output
    result = run("simulate", str(files["rules"]), str(files["csv"]), "--baseline", str(bad))
    assert result.exit_code == EXIT_ERRORS


def test_cli_rejected_events_never_fail_the_run(files: dict[str, Path]) -> None:
    path = files["dir"] / "broken.jsonl"
    path.write_text("".join(BROKEN_LINES), encoding="utf-8")
    summary = json_summary(run("simulate", str(files["rules"]), str(path), "--json"))
    assert (summary["events"], summary["rejected"], summary["customers"]) == (4, 4, 0)


def test_cli_json_with_until(files: dict[str, Path]) -> None:
    summary = json_summary(run("simulate", str(files["rules"]), str(files["csv"]), "--json", "--until",
                               "2026-02-04T00:00:00Z"))
    assert (summary["events"], summary["after_until"]) == (6, 5)
    assert summary["points"]["outstanding"] == 15


def test_cli_never_ends_in_an_internal_error_on_bad_cells(files: dict[str, Path]) -> None:
    path = files["dir"] / "cells.csv"
    path.write_text("id,type,customer,at,amount,items\n"
                    "e1,purchase,c1,2026-01-01T10:00:00Z,12.50,not json\n"
                    "e2,purchase,c1,2026-01-02T10:00:00Z,abc,\n"
                    "e3,purchase,c1,2026-01-03T10:00:00Z,1.00,[]\n"
                    "e4,purchase,c1,2026-01-04T10:00:00Z,1.00,[],surplus\n", encoding="utf-8")
    result = run("simulate", str(files["rules"]), str(path), "--json")
    assert result.exit_code != EXIT_INTERNAL
    summary = json_summary(result)
    assert (summary["events"], summary["rejected"]) == (4, 3)


def test_a_rejected_event_far_in_the_future_does_not_move_the_months(program: poletti.Program) -> None:
    events = cases.EVENTS + [{"id": "typo", "type": "purchase", "customer": "c1", "at": "2926-03-15T12:00:00Z"}]
    result = simulate(program, events)  # no amount: rejected, and no thousand years of months
    assert len(result.new.months) == 3
    assert result.summary["rejected"] == cases.EXPECTED["rejected"] + 1
    assert core(result.summary)["points"] == cases.EXPECTED["points"]


@pytest.mark.parametrize("until", ["9999-12-31", "0001-01-01", "1800-01-01T00:00:00Z"])
def test_cli_until_out_of_range_is_a_usage_error(files: dict[str, Path], until: str) -> None:
    result = run("simulate", str(files["rules"]), str(files["csv"]), "--until", until)
    assert result.exit_code == EXIT_USAGE, result.output
    assert "out of range" in result.output


def test_cli_csv_cells_of_a_bool_attribute(tmp_path: Path) -> None:
    rules = tmp_path / "vip.loyalty"
    rules.write_text("attribute vip: bool\nearn 1 point per EUR\nearn 5 points per purchase if event.vip\n",
                     encoding="utf-8")
    history = tmp_path / "vip.csv"
    history.write_text("id,type,customer,at,amount,vip\n"
                       "e1,purchase,c1,2026-01-05T10:00:00Z,10.00,true\n"
                       "e2,purchase,c1,2026-01-06T10:00:00Z,10.00,FALSE\n"
                       "e3,purchase,c1,2026-01-07T10:00:00Z,10.00,maybe\n", encoding="utf-8")
    summary = json_summary(run("simulate", str(rules), str(history), "--json"))
    # e1: 10 + 5 (vip) = 15; e2: 10 → 25; e3: "maybe" is not yes or no → rejected.
    assert summary["points"]["earned"] == 25
    assert summary["rejected"] == 1
