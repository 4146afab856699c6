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
from segment_cases import (BASELINE_RULES, BASELINE_SEGMENTS, DELTA_PCT_SEGMENTS, DELTA_SEGMENTS, EVENTS, GROUPS,
                           NEW_RULES, SEGMENT_CELLS, SEGMENTS)

import poletti
from poletti.cli import cli
from poletti.interpreter.simulate import kernels, simulate

# The case (segment_cases.py): five customers, new rules with a gold tier and the segments lapsed and big,
# baseline rules with lapsed only; every figure is worked out there.


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
