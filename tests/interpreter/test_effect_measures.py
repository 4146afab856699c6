"""The program-effect measures of ``--effect-from``: the cohort, NPS, members against non-members.

One small history, worked out by hand (program zone UTC, effect from
2026-02-01 00:00, first event 01-01 10:00, end = last event 03-02 10:00):

* before = [01-01 10:00, 02-01 00:00) = 30 d 14 h = 30.583333 days;
  after = [02-01 00:00, 03-02 10:00] = 29 d 10 h = 29.416667 days.
* purchases: a 10 (01-01, member), 20 (01-15, member), 30 (02-10, member);
  b 5 (01-05, not a member), 15 (03-02, "yes": a member by then);
  c 40 (02-20, no flag).
* Cohort (bought in both periods): a and b, 2 customers.
  before: 3 purchases, 35.00; per customer per 30 days 3/2 × 30/30.583333
  = 1.471390 → 1.4714; basket 35/3 = 11.666… → 11.67; spend per customer
  per 30 days 35/2 × 30/30.583333 = 17.16621 → 17.17.
  after: 2 purchases, 45.00; 2/2 × 30/29.416667 = 1.019830 → 1.0198;
  basket 22.50; 45/2 × 30/29.416667 = 22.94618 → 22.95.
* Members: a's three and b's second: 4 purchases, 75.00, 2 customers,
  basket 18.75, 37.50 per customer; non-members: b's first, 5.00, 1
  customer; 1 purchase without a flag (c).
* NPS, each customer's latest score in the period: all: d 3 (detractor),
  e 7, f 8 (passives) → (0 − 1)/3 = −33.3; 5 scored responses, 1 unscored
  (f's "x"). before: d 10 (promoter), e 7 (latest of 9 and 7) → (1 − 0)/2
  = 50.0, 3 responses. after: d 3, f 8 → (0 − 1)/2 = −50.0, 2 responses.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

import poletti
from poletti.interpreter.simulate import simulate
from poletti.interpreter.simulate.columnar import simulate_file
from poletti.interpreter.simulate.history import History
from poletti.interpreter.simulate.sequential import replay
from poletti.interpreter.simulate.summary import member_flag, nps_score

RULES = "earn 1 point per EUR\n"  # a program the whole-array replay takes: purchases-only customers go that way
RULES_PER_EVENT = "earn 1 point per EUR\non feedback grant thanks\nevery 2 purchases grant stamp\n"

EVENTS: list[dict[str, Any]] = [
    {"id": "a1", "type": "purchase", "customer": "a", "at": "2026-01-01T10:00:00Z", "amount": "10.00", "member": True},
    {"id": "a2", "type": "purchase", "customer": "a", "at": "2026-01-15T10:00:00Z", "amount": "20.00", "member": True},
    {"id": "a3", "type": "purchase", "customer": "a", "at": "2026-02-10T10:00:00Z", "amount": "30.00",
     "member": "TRUE"},
    {"id": "b1", "type": "purchase", "customer": "b", "at": "2026-01-05T10:00:00Z", "amount": "5.00", "member": False},
    {"id": "b2", "type": "purchase", "customer": "b", "at": "2026-03-02T10:00:00Z", "amount": "15.00", "member": "yes"},
    {"id": "c1", "type": "purchase", "customer": "c", "at": "2026-02-20T10:00:00Z", "amount": "40.00"},
    {"id": "d1", "type": "feedback", "customer": "d", "at": "2026-01-10T10:00:00Z", "score": 10},
    {"id": "d2", "type": "feedback", "customer": "d", "at": "2026-02-15T10:00:00Z", "score": 3},
    {"id": "e1", "type": "feedback", "customer": "e", "at": "2026-01-20T10:00:00Z", "score": "9"},
    {"id": "e2", "type": "feedback", "customer": "e", "at": "2026-01-25T10:00:00Z", "score": 7},
    {"id": "f1", "type": "feedback", "customer": "f", "at": "2026-02-05T10:00:00Z", "score": 8},
    {"id": "f2", "type": "feedback", "customer": "f", "at": "2026-02-06T10:00:00Z", "score": "x"},
]
COLUMNS = ["id", "type", "customer", "at", "amount", "member", "score"]


def write(path: Path) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(e) + "\n" for e in EVENTS), encoding="utf-8")
    elif path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows({k: (str(v).lower() if isinstance(v, bool) else v) for k, v in e.items()}
                             for e in EVENTS)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({name: pa.array([None if e.get(name) is None else str(e[name]).lower()
                                          if isinstance(e.get(name), bool) else str(e[name]) for e in EVENTS],
                                         pa.string()) for name in COLUMNS})
        pq.write_table(table, path)
    return path


def effect(rules: str, path: Path, **options: Any) -> dict[str, Any]:
    program = poletti.compile(rules)
    result = simulate_file(program, str(path), effect_from="2026-02-01", **options)
    assert result.summary["rejected"] == 0
    return result.summary["effect"]


def sequential_effect(rules: str, path: Path) -> dict[str, Any]:
    program = poletti.compile(rules)
    with History(str(path), program.compiled.tz) as history:
        result = replay(program, history.in_time_order(), effect_from="2026-02-01")
    return result.summary["effect"]


EXPECTED_COHORT = {
    "customers": 2,
    "before": {"days": 30.5833, "purchases": 3, "spend": "35.00", "purchases_per_customer_per_30d": 1.4714,
               "average_basket": "11.67", "spend_per_customer_per_30d": "17.17"},
    "after": {"days": 29.4167, "purchases": 2, "spend": "45.00", "purchases_per_customer_per_30d": 1.0198,
              "average_basket": "22.50", "spend_per_customer_per_30d": "22.95"},
}
EXPECTED_NPS = {
    "all": {"respondents": 3, "responses": 5, "promoters": 0, "passives": 2, "detractors": 1, "nps": -33.3},
    "before": {"respondents": 2, "responses": 3, "promoters": 1, "passives": 1, "detractors": 0, "nps": 50.0},
    "after": {"respondents": 2, "responses": 2, "promoters": 0, "passives": 1, "detractors": 1, "nps": -50.0},
    "unscored": 1,
}
EXPECTED_MEMBERS = {
    "member": {"customers": 2, "purchases": 4, "spend": "75.00", "average_basket": "18.75",
               "spend_per_customer": "37.50", "purchases_per_customer": 2.0},
    "non_member": {"customers": 1, "purchases": 1, "spend": "5.00", "average_basket": "5.00",
                   "spend_per_customer": "5.00", "purchases_per_customer": 1.0},
    "purchases_without_flag": 1,
}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_the_effect_measures_are_the_hand_worked_ones(tmp_path: Path, suffix: str) -> None:
    got = effect(RULES, write(tmp_path / f"h{suffix}"))
    assert got["before"]["days"] == 30.5833 and got["after"]["days"] == 29.4167
    assert got["cohort"] == EXPECTED_COHORT
    assert got["nps"] == EXPECTED_NPS
    assert got["members"] == EXPECTED_MEMBERS


@pytest.mark.parametrize("rules", [RULES, RULES_PER_EVENT])
def test_every_replay_path_gives_the_same_effect(tmp_path: Path, rules: str) -> None:
    path = write(tmp_path / "h.csv")
    one = effect(rules, path)
    assert one["cohort"] == EXPECTED_COHORT and one["nps"] == EXPECTED_NPS and one["members"] == EXPECTED_MEMBERS
    assert effect(rules, path, workers=2) == one
    assert effect(rules, path, workers=3) == one
    assert sequential_effect(rules, path) == one
    assert effect(rules, path, generated=False) == one


@pytest.mark.parametrize("rules", [RULES, RULES_PER_EVENT])
@pytest.mark.parametrize("workers", [1, 2])
def test_customers_folded_into_sums_shard_by_shard_give_the_same_effect(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rules: str, workers: int) -> None:
    """Streamed in shards of a customer or two, each shard's customers are folded into sums when it ends
    (``Activity.settle``): the cohort and the NPS still count each customer once, by their whole history."""
    from poletti.interpreter.simulate import spill

    monkeypatch.setattr(spill, "SHARD_BYTES", 64)
    monkeypatch.setattr(spill, "SPLIT_BYTES", 0)
    path = write(tmp_path / "h.csv")
    assert spill.shard_count(str(path), workers) >= 6
    for keep in (True, False):
        got = effect(rules, path, workers=workers, keep_standings=keep)
        assert got["cohort"] == EXPECTED_COHORT and got["nps"] == EXPECTED_NPS
        assert got["members"] == EXPECTED_MEMBERS


def test_settling_an_activity_keeps_its_measures() -> None:
    """Folding finished customers into sums mid-way changes no measure (hand-worked above)."""
    from datetime import datetime, timezone

    from poletti.engine.timecalc import to_us
    from poletti.interpreter.simulate.summary import Activity

    tz = poletti.compile(RULES).compiled.tz
    pivot = datetime(2026, 2, 1, tzinfo=timezone.utc)
    activity = Activity(tz, pivot)
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for event in EVENTS:
        by_customer.setdefault(event["customer"], []).append(event)
    for number, events in enumerate(by_customer.values()):
        for event in events:
            at = datetime.fromisoformat(event["at"].replace("Z", "+00:00"))
            month = at.date().replace(day=1)
            activity.event(event["customer"], month)
            if event["type"] == "purchase":
                units = int(event["amount"].replace(".", "")) * 10_000
                activity.purchase(event["customer"], to_us(at), units, month, event.get("member"))
            else:
                activity.feedback(event["customer"], to_us(at), event["score"])
        if number % 2:  # every second customer done: fold what is tabled so far
            activity.settle()
            assert not activity.scores and not activity._counts
    first = datetime(2026, 1, 1, 10, tzinfo=timezone.utc)
    end = datetime(2026, 3, 2, 10, tzinfo=timezone.utc)
    measures = activity.measures(first, end)
    assert measures["cohort"] == EXPECTED_COHORT
    assert measures["nps"] == EXPECTED_NPS
    assert measures["members"] == EXPECTED_MEMBERS


def test_without_effect_from_only_the_whole_history() -> None:
    got = simulate(poletti.compile(RULES), EVENTS).summary["effect"]
    assert "cohort" not in got and "before" not in got
    assert got["nps"] == {"all": EXPECTED_NPS["all"], "unscored": 1}
    assert got["members"] == EXPECTED_MEMBERS


def test_no_feedback_and_no_flags_add_nothing(tmp_path: Path) -> None:
    plain = [{k: v for k, v in e.items() if k != "member"} for e in EVENTS if e["type"] == "purchase"]
    got = simulate(poletti.compile(RULES), plain, effect_from="2026-02-01").summary["effect"]
    assert "nps" not in got and "members" not in got
    assert got["cohort"] == EXPECTED_COHORT  # the flags change nothing else


def test_a_cohort_with_nobody_in_it() -> None:
    got = simulate(poletti.compile(RULES), EVENTS[:1], effect_from="2026-02-01").summary["effect"]["cohort"]
    assert got["customers"] == 0
    assert got["before"]["purchases_per_customer_per_30d"] is None
    assert got["before"]["spend_per_customer_per_30d"] is None and got["before"]["average_basket"] is None


@pytest.mark.parametrize("value, flag", [(True, True), (False, False), ("true", True), (" No ", False), ("1", True),
                                         (0, False), (1, True), (2, None), ("member", None), (None, None),
                                         (1.0, None)])
def test_member_flags(value: Any, flag: bool | None) -> None:
    assert member_flag(value) is flag


@pytest.mark.parametrize("value, score", [(0, 0), (10, 10), ("9", 9), (" 6 ", 6), (11, None), (-1, None),
                                          (True, None), (9.0, None), ("9.5", None), ("", None), ("١", None)])
def test_nps_scores(value: Any, score: int | None) -> None:
    assert nps_score(value) == score


def test_the_table_and_the_report_show_them(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from poletti.cli import cli

    rules = tmp_path / "r.loyalty"
    rules.write_text(RULES, encoding="utf-8")
    history = write(tmp_path / "h.csv")
    report = tmp_path / "report.html"
    out = CliRunner().invoke(cli, ["simulate", str(rules), str(history), "--effect-from", "2026-02-01",
                                   "--report", str(report)])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "Customers who bought both before and from 2026-02-01: 2" in text
    assert "Purchases per customer per 30 days │ 1.4714 │ 1.0198 │ -0.4516 (-30.7 %)" in text
    assert "Spend per customer per 30 days │ 17.17 EUR │ 22.95 EUR │ +5.78 EUR (+33.7 %)" in text
    assert "NPS (% promoters − % detractors) │ -33.3 │ 50 │ -50" in text
    assert "Average basket │ 18.75 EUR │ 5.00 EUR" in text
    page = report.read_text(encoding="utf-8")
    assert page.count("<table class='figures effect'>") == 3
    assert "<td class=num>22.95 EUR</td>" in page and "<td class=num>-33.3</td>" in page
