"""`poletti run --db`, `poletti customer` and `poletti ledger`: state kept in a store, read back, program changes shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from poletti.cli import EXIT_OK, EXIT_USAGE, cli

V1 = 'reward mug "Mug"\nearn 1 point per EUR\nat 50 points grant mug\npoints expire after 30d\n'
V2 = V1.replace("earn 1 point per EUR", "earn 2 points per EUR")
FIRST = "id,type,customer,at,amount\np1,purchase,c1,2026-01-01T10:00:00Z,60\n"
BOTH = FIRST + "p2,purchase,c1,2026-01-05T10:00:00Z,20\n"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    paths = {"v1": V1, "v2": V2, "first.csv": FIRST, "both.csv": BOTH}
    for name, text in paths.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return {name: str(tmp_path / name) for name in paths} | {"db": str(tmp_path / "loyalty.db")}


def test_run_db_keeps_state_and_a_rerun_applies_nothing_twice(files: dict[str, str]) -> None:
    first = run("run", files["v1"], files["first.csv"], "--db", files["db"])
    assert first.exit_code == EXIT_OK, first.output
    assert "1 event: 1 applied, 0 duplicate, 0 rejected" in first.stderr
    again = run("run", files["v1"], files["both.csv"], "--db", files["db"])
    assert "2 events: 1 applied, 1 duplicate, 0 rejected" in again.stderr
    member = json.loads(run("customer", "c1", "--db", files["db"], "--json").stdout)
    # p1: 60 points → a mug for 50, 10 left; p2: 20 more → 30, the next mug needs 20 more.
    assert (member["customer"]["points"], member["customer"]["lifetime_points"]) == (30, 80)
    assert member["customer"]["rewards"] == {"mug": 1}
    assert [(lot["points"], lot["source"], lot["expires_at"]) for lot in member["customer"]["lots"]] == [
        (10, "p1", "2026-01-31T10:00:00+00:00"), (20, "p2", "2026-02-04T10:00:00+00:00")]
    assert member["customer"]["next_rewards"][0]["needed"] == 20
    assert [(entry["kind"], entry["points"], entry["balance"]) for entry in member["ledger"]] == [
        ("earn", 60, 60), ("spend", 50, 10), ("reward", 0, 10), ("earn", 20, 30)]


def test_the_ledger_shows_where_the_program_changed(files: dict[str, str]) -> None:
    run("run", files["v1"], files["first.csv"], "--db", files["db"])
    run("run", files["v2"], files["both.csv"], "--db", files["db"])  # p2 under v2: 40 points
    ledger = run("ledger", "--db", files["db"])
    assert ledger.exit_code == EXIT_OK, ledger.output
    lines = ledger.stdout.splitlines()
    changed = next(i for i, line in enumerate(lines) if "program changed to" in line)
    assert "p1" in lines[changed - 1] and "p2  earn +40" in lines[changed + 1]
    data = json.loads(run("ledger", "--db", files["db"], "--json").stdout)
    # v1 made entries 1–3 (p1's earn, spend, mug), v2 from entry 4 on (p2's 40 points, a spend, a mug).
    assert [program["first_entry"] for program in data["programs"]] == [1, 4]
    first, second = (program["hash"] for program in data["programs"])
    assert [entry["program"] for entry in data["entries"]] == [first] * 3 + [second] * 3


def test_a_file_that_is_not_a_store_is_a_clear_error(files: dict[str, str]) -> None:
    result = run("run", files["v1"], files["first.csv"], "--db", files["both.csv"])
    assert result.exit_code == EXIT_USAGE
    assert "poletti store" in result.output or "is an input" in result.output or "cannot open" in result.output
    assert Path(files["both.csv"]).read_text(encoding="utf-8") == BOTH


def test_customer_needs_a_customer_the_store_knows(files: dict[str, str]) -> None:
    run("run", files["v1"], files["first.csv"], "--db", files["db"])
    result = run("customer", "nobody", "--db", files["db"])
    assert result.exit_code != EXIT_OK and "no customer 'nobody'" in result.output
