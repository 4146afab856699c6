"""``poletti generate --rules`` for a program with a voucher wallet and partners (issue 13)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner

from poletti.cli import cli

RULES = """\
timezone "Europe/Helsinki"
reward ten_off "10 % off" value 10% max 5 EUR expires after 2m
reward coffee "Coffee" value 2.50 EUR costs 60 points
earn 1 point per EUR
at 40 points grant ten_off
partner kulma "Kahvila Kulma" pays 0.02 EUR per point
"""


def _generate(tmp_path: Path, name: str, seed: str = "7") -> Path:
    rules = tmp_path / "rules.loyalty"
    rules.write_text(RULES, encoding="utf-8")
    out = tmp_path / name
    result = CliRunner().invoke(cli, ["generate", "--rules", str(rules), "--customers", "60", "--days", "200",
                                      "--seed", seed, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_purchases_use_held_rewards_and_happen_at_partners(tmp_path: Path) -> None:
    path = _generate(tmp_path, "history.csv")
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {"rewards_used", "partner"} <= set(rows[0])
    used = [row for row in rows if row["rewards_used"]]
    assert used and all(row["type"] == "purchase" and json.loads(row["rewards_used"]) == ["ten_off"] for row in used)
    assert any(row["partner"] == "kulma" and row["type"] == "purchase" for row in rows)
    # The history is made through the program: simulate takes every event, and vouchers are used.
    result = CliRunner().invoke(cli, ["simulate", str(tmp_path / "rules.loyalty"), str(path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["rejected"] == 0
    assert summary["rewards_used"]["ten_off"] == len(used)
    assert summary["partners"]["kulma"]["points_issued"] > 0


def test_the_same_seed_gives_the_same_history(tmp_path: Path) -> None:
    first = _generate(tmp_path, "a.jsonl").read_bytes()
    assert _generate(tmp_path, "b.jsonl").read_bytes() == first
