"""``poletti generate --rules``: a history made for a program.

Expectations come from the brief and the contract (LANGUAGE.md: event
shapes, redeems only of rewards with ``costs``, refunds of earlier
purchases) and from the program below, never from the generator's output:
the program reads every kind of event and field the generator must make.
The size and seed (60 customers, 90 days, seed 6) were picked by hand so
that even the rare kinds (shares, refunds) occur.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import poletti
from poletti.cli import EXIT_ERRORS, EXIT_OK, EXIT_USAGE, cli
from poletti.interpreter.simulate.generate import HISTORY_COLUMNS, generate_history, history_text
from poletti.interpreter.simulate.generate_plan import plan_for

RULES = """\
program "Kulma"
currency EUR
timezone "Europe/Helsinki"

reward free_drink "Free drink" value 3.50 EUR costs 60 points
reward mug "Mug" value 9 EUR costs 250 points
reward cake "Birthday cake" value 4 EUR

attribute vip: bool
attribute score: number
attribute seats: count
event tasting

earn 1 point per EUR
earn 2 points per EUR on category "beans"
earn x2 if event.vip == true
earn 2 points per visit
earn 10 points on review
earn 5 points on share
earn 15 points on feedback if event.score >= 4
on referral grant 100 points
earn 20 points on tasting if event.seats > 1
on birthday grant cake
"""
SIZE = ["--customers", "60", "--days", "90", "--seed", "6"]
KINDS = {"signup", "purchase", "visit", "review", "share", "feedback", "referral", "tasting", "redeem", "refund"}


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "kulma.loyalty"
    path.write_text(RULES, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def histories(rules: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("histories")
    paths = {fmt: folder / f"history.{fmt}" for fmt in ("csv", "jsonl", "parquet")}
    for path in paths.values():
        result = run("generate", "--rules", str(rules), *SIZE, "--out", str(path))
        assert result.exit_code == EXIT_OK, result.output
    return paths


@pytest.fixture(scope="module")
def rows(histories: dict[str, Path]) -> list[dict[str, str]]:
    with open(histories["csv"], newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_csv_has_the_extra_columns_of_the_program(histories: dict[str, Path]) -> None:
    header = histories["csv"].read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == [*HISTORY_COLUMNS, "friend", "vip", "score", "seats"]


def test_every_event_kind_the_program_reads_is_there(rows: list[dict[str, str]]) -> None:
    kinds = Counter(row["type"] for row in rows)
    assert set(kinds) == KINDS, kinds
    assert kinds["signup"] == 60


def test_signups_carry_birthdays(rows: list[dict[str, str]]) -> None:
    signups = [row for row in rows if row["type"] == "signup"]
    with_birthday = [row for row in signups if row["birthday"]]
    assert len(with_birthday) >= len(signups) // 2
    for row in with_birthday:
        datetime.strptime(row["birthday"], "%Y-%m-%d")


def test_declared_attributes_ride_on_the_events_that_read_them(rows: list[dict[str, str]]) -> None:
    for row in rows:
        # vip: read by a multiplier of the per rules (purchases, and visits: `per visit`)
        assert (row["vip"] in ("true", "false")) == (row["type"] in ("purchase", "visit")), row
        assert bool(row["score"]) == (row["type"] == "feedback"), row
        assert bool(row["seats"]) == (row["type"] == "tasting"), row
    purchases = [row for row in rows if row["type"] == "purchase"]
    assert {row["vip"] for row in purchases} == {"true", "false"}
    scores = Counter(row["score"] for row in rows if row["type"] == "feedback")
    assert set(scores) <= {"1", "2", "3", "4", "5"}
    assert any(int(s) >= 4 for s in scores) and any(int(s) < 4 for s in scores)  # both sides of `>= 4`
    seats = [int(row["seats"]) for row in rows if row["type"] == "tasting"]
    assert min(seats) >= 0 and any(s > 1 for s in seats) and any(s <= 1 for s in seats)


def test_purchases_hold_the_category_the_rules_name(rows: list[dict[str, str]]) -> None:
    purchases = [row for row in rows if row["type"] == "purchase"]
    with_beans = 0
    for row in purchases:
        items = json.loads(row["items"])
        total = sum(Decimal(i["price"]) * i["quantity"] for i in items)
        assert Decimal(row["amount"]) == total
        assert row["currency"] == "EUR"
        with_beans += any(i["category"] == "beans" for i in items)
    assert with_beans >= 5


def test_redeems_are_of_rewards_with_costs(rows: list[dict[str, str]]) -> None:
    redeemed = Counter(row["reward"] for row in rows if row["type"] == "redeem")
    assert set(redeemed) <= {"free_drink", "mug"}  # cake has no `costs`
    assert redeemed["free_drink"] > 0


def test_referrals_name_a_friend_who_signs_up_later(rows: list[dict[str, str]]) -> None:
    signed_up = {row["customer"]: datetime.fromisoformat(row["at"]) for row in rows if row["type"] == "signup"}
    referrals = [row for row in rows if row["type"] == "referral"]
    for row in referrals:
        friend = row["friend"]
        assert friend != row["customer"]
        assert signed_up[row["customer"]] < datetime.fromisoformat(row["at"]) < signed_up[friend]


def test_refunds_are_of_earlier_purchases_of_the_same_customer(rows: list[dict[str, str]]) -> None:
    purchases = {row["id"]: row for row in rows if row["type"] == "purchase"}
    refunded: Counter[str] = Counter()
    for row in rows:
        if row["type"] != "refund":
            continue
        original = purchases[row["original"]]
        assert original["customer"] == row["customer"]
        assert datetime.fromisoformat(original["at"]) < datetime.fromisoformat(row["at"])
        if row["amount"]:
            assert Decimal(row["amount"]) <= Decimal(original["amount"])
        refunded[row["original"]] += 1


def test_events_are_in_time_order_with_the_program_zone(rows: list[dict[str, str]]) -> None:
    instants = [datetime.fromisoformat(row["at"]) for row in rows]
    assert instants == sorted(instants)
    assert {i.utcoffset() for i in instants} <= {timedelta(hours=2), timedelta(hours=3)}  # Helsinki
    assert len({row["id"] for row in rows}) == len(rows)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_simulate_rejects_nothing(rules: Path, histories: dict[str, Path], fmt: str) -> None:
    result = run("simulate", str(rules), str(histories[fmt]), "--json")
    assert result.exit_code == EXIT_OK, result.output
    summary = json.loads(result.stdout)
    assert summary["rejected"] == 0
    assert summary["customers"] == 60
    assert summary["rewards"]["free_drink"] > 0 and summary["rewards"]["cake"] >= 0
    assert summary["points"]["spent"] > 0  # the redeems went through


def test_the_three_formats_hold_the_same_events(rules: Path, histories: dict[str, Path]) -> None:
    import pyarrow.parquet as pq

    events = list(generate_history(60, 90, 6, program=poletti.load(rules)))
    lines = [json.loads(line) for line in histories["jsonl"].read_text(encoding="utf-8").splitlines()]
    assert lines == events
    table = pq.read_table(histories["parquet"])
    assert str(table.schema.field("vip").type) == "bool"
    assert table.column("id").to_pylist() == [e["id"] for e in events]
    assert table.column("vip").to_pylist() == [e.get("vip") for e in events]


def test_the_same_seed_gives_the_same_bytes_and_another_seed_differs(rules: Path, tmp_path: Path) -> None:
    for fmt in ("csv", "jsonl", "parquet"):
        first, again, other = (tmp_path / f"{n}.{fmt}" for n in ("first", "again", "other"))
        base = ["generate", "--rules", str(rules), "--customers", "30", "--days", "60"]
        assert run(*base, "--seed", "1", "--out", str(first)).exit_code == EXIT_OK
        assert run(*base, "--seed", "1", "--out", str(again)).exit_code == EXIT_OK
        assert run(*base, "--seed", "2", "--out", str(other)).exit_code == EXIT_OK
        assert first.read_bytes() == again.read_bytes()
        assert first.read_bytes() != other.read_bytes()


def test_without_rules_the_cafe_history_is_unchanged() -> None:
    result = run("generate", "--customers", "8", "--days", "20", "--seed", "5")
    assert result.exit_code == EXIT_OK
    assert result.stdout == history_text(generate_history(8, 20, 5))
    assert result.stdout.startswith(",".join(HISTORY_COLUMNS) + "\n")


def test_currency_and_zone_are_the_programs(tmp_path: Path) -> None:
    rules = tmp_path / "us.loyalty"
    rules.write_text('currency USD\ntimezone "America/New_York"\nearn 1 point per USD\n'
                     'earn 3 points per USD on category "wine"\nearn 5 points per purchase on sku "esp-250"\n',
                     encoding="utf-8")
    out = tmp_path / "h.jsonl"
    assert run("generate", "--rules", str(rules), "--customers", "40", "--days", "60", "--seed", "3",
               "--out", str(out)).exit_code == EXIT_OK
    events = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    purchases = [e for e in events if e["type"] == "purchase"]
    assert {e["currency"] for e in purchases} == {"USD"}
    assert {datetime.fromisoformat(e["at"]).utcoffset() for e in events} == {timedelta(hours=-5)}  # Jan–Mar 1
    items = [i for e in purchases for i in e["items"]]
    assert any(i["category"] == "wine" for i in items)  # a category the café does not sell
    assert any(i["sku"] == "esp-250" for i in items)  # and a SKU
    summary = json.loads(run("simulate", str(rules), str(out), "--json").stdout)
    assert summary["rejected"] == 0
    # An explicit zone or currency that is not the program's is a usage error.
    for option in (["--currency", "EUR"], ["--timezone", "Europe/Helsinki"]):
        result = run("generate", "--rules", str(rules), "--customers", "2", "--days", "2", "--seed", "1", *option)
        assert result.exit_code == EXIT_USAGE, result.output
    same = run("generate", "--rules", str(rules), "--customers", "2", "--days", "2", "--seed", "1", "--currency", "USD")
    assert same.exit_code == EXIT_OK


def test_rules_with_errors_exit_1_with_the_diagnostics(tmp_path: Path) -> None:
    rules = tmp_path / "bad.loyalty"
    rules.write_text("tier gold when spnd_12m > 1000\n", encoding="utf-8")
    out = tmp_path / "h.csv"
    result = run("generate", "--rules", str(rules), "--customers", "2", "--days", "2", "--seed", "1", "-o", str(out))
    assert result.exit_code == EXIT_ERRORS
    assert "E101" in result.output
    assert not out.exists()


def test_unreadable_rules_exit_2(tmp_path: Path) -> None:
    result = run("generate", "--rules", str(tmp_path / "missing.loyalty"), "--customers", "2", "--days", "2",
                 "--seed", "1")
    assert result.exit_code == EXIT_USAGE
    assert "Traceback" not in result.output


def test_the_plan_reads_what_the_program_reads(rules: Path) -> None:
    plan = plan_for(poletti.load(rules))
    assert plan.currency == "EUR" and plan.timezone == "Europe/Helsinki"
    assert plan.feedback and plan.referral and plan.custom_events == ("tasting",)
    assert plan.redeemable == (("free_drink", 60), ("mug", 250))
    assert plan.categories == ("beans",) and plan.new_products == ()
    by_name = {a.name: a for a in plan.attributes}
    assert by_name["vip"].events == {"purchase", "visit"}
    assert by_name["score"].events == {"feedback"} and by_name["score"].grade
    assert by_name["seats"].events == {"tasting"}


def test_a_program_without_extras_reads_like_the_cafe(tmp_path: Path) -> None:
    """The example café program: nothing beyond the café history, no extra columns, nothing rejected."""
    root = Path(__file__).resolve().parents[2]
    rules = root / "examples" / "cafe" / "rules.loyalty"
    plan = plan_for(poletti.load(rules))
    assert plan.extra_columns == () and not plan.feedback and not plan.referral and not plan.custom_events
    out = tmp_path / "h.csv"
    assert run("generate", "--rules", str(rules), "--customers", "20", "--days", "30", "--seed", "3",
               "-o", str(out)).exit_code == EXIT_OK
    summary = json.loads(run("simulate", str(rules), str(out), "--json").stdout)
    assert summary["rejected"] == 0 and summary["customers"] == 20


def test_help_documents_rules() -> None:
    result = run("generate", "--help")
    assert "--rules" in result.output
