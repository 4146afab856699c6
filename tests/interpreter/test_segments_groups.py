"""Segments and groups: customers per segment at the end and month by month, the customers file's
segments column, and who gains and who loses by tier and by segment.

Every expected figure is worked out by hand in the comments; none is copied
from the program's output. Every replay path (event at a time, per
customer, whole arrays, workers) must give the same figures.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import simulate_cases as cases
from click.testing import CliRunner

import poletti
from poletti.cli import cli
from poletti.interpreter.simulate import kernels, simulate

# The new rules: one point per euro, ×3 for gold (a purchase earns with the tier it found), gold from
# 60 EUR spent in all; lapsed after more than 30 days without a purchase; big from 60 EUR spent.
NEW_RULES = """\
reward gift "Gift" value 2.50 EUR costs 50 points
earn 1 point per EUR
earn x3 if tier >= gold
at 50 points grant gift
tier gold when spend_lifetime >= 60
segment lapsed when days_since_last_purchase > 30
segment big when spend_lifetime >= 60
"""
# The baseline: two points per euro, no tier; lapsed after more than 45 days.
BASELINE_RULES = """\
reward gift "Gift" value 2.50 EUR costs 50 points
earn 2 points per EUR
at 50 points grant gift
segment lapsed when days_since_last_purchase > 45
"""


def purchase(event_id: str, customer: str, day: str, amount: str) -> dict[str, Any]:
    return {"id": event_id, "type": "purchase", "customer": customer, "at": f"2026-{day}T10:00:00Z",
            "amount": amount}


EVENTS = [
    purchase("p3", "c2", "01-02", "20.00"),
    purchase("p1", "c1", "01-05", "30.00"),
    purchase("p2", "c1", "01-10", "45.00"),
    purchase("p5", "c1", "01-15", "10.00"),
    purchase("p6", "c4", "02-01", "60.00"),
    purchase("p7", "c4", "02-10", "100.00"),
    {"id": "v1", "type": "visit", "customer": "c5", "at": "2026-02-15T10:00:00Z"},
    purchase("p4", "c3", "02-20", "70.00"),
]
# The end is the last event, 02-20 10:00.
#
# New rules, customer by customer:
#   c1: p1 30 → 30; p2 (no tier yet: 30 < 60) 45 → 75 → gift → 25, then gold (75); p5 (gold) 10 × 3 = 30
#       → 55 → gift → 5. Earned 30 + 45 + 30 = 105, 2 gifts = 5.00, held 5. Last purchase 01-15: 36 days
#       at the end > 30 → lapsed; spent 85 ≥ 60 → big. Tier gold.
#   c2: p3 20 → 20. Earned 20, no gift, held 20. 49 days → lapsed (from 02-02 10:00, 31 days); not big.
#   c3: p4 (no tier) 70 → 70 → gift → 20. Earned 70, 2.50, held 20. Gold, big; 0 days: not lapsed.
#   c4: p6 (no tier) 60 → 60 → gift → 10, then gold; p7 (gold) 100 × 3 = 300 → 310 → 6 gifts → 10.
#       Earned 360, 7 gifts = 17.50, held 10. Gold, big; 10 days: not lapsed.
#   c5: a visit: nothing earned; no purchase yet, so 5 days since the first event: not lapsed. No tier.
# Baseline:
#   c1: p1 60 → gift → 10; p2 90 → 100 → 2 gifts → 0; p5 20 → 20. Earned 170, 3 gifts = 7.50. 36 ≤ 45.
#   c2: 40. Earned 40. 49 > 45 → lapsed.
#   c3: 140 → 2 gifts → 40. Earned 140, 5.00.
#   c4: p6 120 → 2 gifts → 20; p7 200 → 220 → 4 gifts → 20. Earned 320, 6 gifts = 15.00.
#   c5: nothing.
SEGMENTS = {"lapsed": 2, "big": 3}  # lapsed: c1, c2; big: c1, c3, c4
BASELINE_SEGMENTS = {"lapsed": 1}  # c2
DELTA_SEGMENTS = {"lapsed": 1, "big": 3}  # 2 − 1; 3 − 0 (the baseline has no "big")
DELTA_PCT_SEGMENTS = {"lapsed": "100.0", "big": None}  # +1 of 1; of nothing: unknown
# Change, new − baseline (reward value decides, then points earned):
#   c1: 5.00 − 7.50 = −2.50 → loses; earned 105 − 170 = −65
#   c2: 0.00 − 0.00, earned 20 − 40 = −20 → loses
#   c3: 2.50 − 5.00 = −2.50 → loses; earned 70 − 140 = −70
#   c4: 17.50 − 15.00 = +2.50 → gains; earned 360 − 320 = +40
#   c5: nothing on either side → same
# Groups, by where the new rules leave each customer:
#   gold = c1, c3, c4: 1 gains, 2 lose; earned −65 − 70 + 40 = −95; value −2.50 − 2.50 + 2.50 = −2.50
#   none = c2, c5: c2 loses, c5 same; earned −20; value 0.00
#   lapsed = c1, c2: both lose; earned −65 − 20 = −85; value −2.50 + 0.00 = −2.50
#   big = c1, c3, c4: as gold
#   (check: −95 − 20 = −115 = 105 + 20 + 70 + 360 − (170 + 40 + 140 + 320))
GROUPS = {
    "by": "new rules, at the end",
    "tiers": {
        "gold": {"customers": 3, "gain": 1, "lose": 2, "same": 0, "earned_points_change": -95,
                 "reward_value_change": "-2.50"},
        "none": {"customers": 2, "gain": 0, "lose": 1, "same": 1, "earned_points_change": -20,
                 "reward_value_change": "0.00"},
    },
    "segments": {
        "lapsed": {"customers": 2, "gain": 0, "lose": 2, "same": 0, "earned_points_change": -85,
                   "reward_value_change": "-2.50"},
        "big": {"customers": 3, "gain": 1, "lose": 2, "same": 0, "earned_points_change": -95,
                "reward_value_change": "-2.50"},
    },
}
# The customers file: segments in the order the rules declare them, ";" between, empty for none.
SEGMENT_CELLS = {"c1": ("lapsed;big", ""), "c2": ("lapsed", "lapsed"), "c3": ("big", ""), "c4": ("big", ""),
                 "c5": ("", "")}


def run_cli(tmp_path: Path, rules: str, baseline: str | None, *options: str) -> tuple[dict[str, Any], list[dict]]:
    (tmp_path / "new.loyalty").write_text(rules, encoding="utf-8")
    args = ["simulate", str(tmp_path / "new.loyalty"), str(cases.write_jsonl(tmp_path / "h.jsonl", EVENTS)),
            "--json", "--customers", str(tmp_path / "customers.csv")]
    if baseline is not None:
        (tmp_path / "old.loyalty").write_text(baseline, encoding="utf-8")
        args += ["--baseline", str(tmp_path / "old.loyalty")]
    result = CliRunner().invoke(cli, args + list(options))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO((tmp_path / "customers.csv").read_text(encoding="utf-8"))))
    return json.loads(result.output), rows


PATHS = [(), ("--sequential",), ("--workers", "2")]


@pytest.mark.parametrize("options", PATHS, ids=["default", "sequential", "workers2"])
def test_segments_and_groups_on_every_path(tmp_path: Path, options: tuple[str, ...]) -> None:
    summary, rows = run_cli(tmp_path, NEW_RULES, BASELINE_RULES, *options)
    assert summary["tiers"] == {"gold": 3, "none": 2}
    assert summary["segments"] == SEGMENTS
    assert summary["baseline"]["segments"] == BASELINE_SEGMENTS
    assert summary["delta"]["segments"] == DELTA_SEGMENTS
    assert summary["delta_pct"]["segments"] == DELTA_PCT_SEGMENTS
    assert summary["groups"] == GROUPS
    assert {row["customer"]: (row["segments"], row["baseline_segments"]) for row in rows} == SEGMENT_CELLS
    assert {row["customer"]: row["change"] for row in rows} == {
        "c1": "loses", "c2": "loses", "c3": "loses", "c4": "gains", "c5": "same"}


# A program the whole-array replay takes (no segments): one point per euro, gold from 60 EUR, no ×3.
#   c1: 30; 45 → 75 → gift → 25; 10 → 35. Earned 85, 2.50.   vs 170, 7.50: −85, −5.00 → loses
#   c2: 20.                                                    vs 40: −20, 0.00 → loses
#   c3: 70 → gift → 20. Earned 70, 2.50.                       vs 140, 5.00: −70, −2.50 → loses
#   c4: 60 → gift → 10; 100 → 110 → 2 gifts → 10. 160, 7.50.  vs 320, 15.00: −160, −7.50 → loses
#   c5: same.
#   gold = c1, c3, c4: 3 lose; −85 − 70 − 160 = −315; −5.00 − 2.50 − 7.50 = −15.00. none = c2, c5.
ARRAY_RULES = """\
reward gift "Gift" value 2.50 EUR costs 50 points
earn 1 point per EUR
at 50 points grant gift
tier gold when spend_lifetime >= 60
"""


@pytest.mark.parametrize("options", PATHS, ids=["default", "sequential", "workers2"])
def test_groups_through_the_arrays_on_every_path(tmp_path: Path, options: tuple[str, ...]) -> None:
    assert kernels.plan(poletti.compile(ARRAY_RULES).compiled) is not None
    summary, rows = run_cli(tmp_path, ARRAY_RULES, BASELINE_RULES, *options)
    # The new rules declare no segment: none counted; the baseline's lapsed (c2) is a change of −1.
    assert (summary["segments"], summary["baseline"]["segments"]) == ({}, {"lapsed": 1})
    assert summary["delta"]["segments"] == {"lapsed": -1}
    assert summary["groups"] == {
        "by": "new rules, at the end",
        "tiers": {"gold": {"customers": 3, "gain": 0, "lose": 3, "same": 0, "earned_points_change": -315,
                           "reward_value_change": "-15.00"},
                  "none": {"customers": 2, "gain": 0, "lose": 1, "same": 1, "earned_points_change": -20,
                           "reward_value_change": "0.00"}},
        "segments": {}}
    assert {row["customer"]: row["segments"] for row in rows} == dict.fromkeys(["c1", "c2", "c3", "c4", "c5"], "")


def test_segment_sizes_month_by_month() -> None:
    # January's end: c1 is big (75 spent on 01-10); nobody has lapsed yet (c2 lapses 02-02, c1 02-15).
    # February's end (the end of the replay): lapsed c1, c2; big c1, c3, c4.
    result = simulate(poletti.compile(NEW_RULES), EVENTS, baseline=poletti.compile(BASELINE_RULES))
    assert [(m.start, m.segments) for m in result.new.months] == [
        (date(2026, 1, 1), {"lapsed": 0, "big": 1}), (date(2026, 2, 1), {"lapsed": 2, "big": 3})]
    # Baseline: c2 lapses after 45 days, on 02-17 10:00.
    assert [m.segments for m in result.baseline.months] == [{"lapsed": 0}, {"lapsed": 1}]  # type: ignore[union-attr]


def test_every_declared_segment_is_counted_even_when_empty() -> None:
    summary = simulate(poletti.compile(NEW_RULES), []).summary
    assert summary["segments"] == {"lapsed": 0, "big": 0}
    assert "groups" not in summary  # only a comparison has gains and losses
