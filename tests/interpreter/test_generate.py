"""The synthetic history generator and ``poletti generate``.

Expectations come from the contract (LANGUAGE.md: event shape, refunds) and
from the generator's documented parameters (the docstring of
``poletti.interpreter.simulate.generate``), never from its output.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import tracemalloc
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence

import pytest
from click.testing import CliRunner

import poletti
from poletti.cli import EXIT_OK, EXIT_USAGE, cli
from poletti.interpreter.simulate import generate as gen
from poletti.interpreter.simulate.generate import HISTORY_COLUMNS, generate_history, history_text

ROOT = Path(__file__).resolve().parents[2]
CAFE_RULES = [ROOT / "examples" / "cafe" / name for name in ("rules_v1.loyalty", "rules_v2.loyalty")]
HELSINKI_WINTER = timedelta(hours=2)  # EET
HELSINKI_SUMMER = timedelta(hours=3)  # EEST, from the last Sunday of March to the last Sunday of October


def history(customers: int = 40, days: int = 120, seed: int = 7, start: str = "2025-01-01") -> list[dict[str, Any]]:
    return list(generate_history(customers, days, seed, start))


@pytest.fixture(scope="module")
def one_year() -> list[dict[str, Any]]:
    """300 customers over 2025: big enough for the statistics, small enough to be quick."""
    return history(300, 365, 11, "2025-01-01")


@pytest.fixture(scope="module")
def two_years() -> list[dict[str, Any]]:
    return history(200, 731, 5, "2024-01-01")


def instant(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["at"])


# ----------------------------------------------------------- reproducibility


def test_the_same_seed_gives_the_same_bytes() -> None:
    assert history_text(generate_history(30, 90, 3)) == history_text(generate_history(30, 90, 3))
    assert history_text(generate_history(30, 90, 3), "jsonl") == history_text(generate_history(30, 90, 3), "jsonl")


def test_different_seeds_give_different_histories() -> None:
    assert history_text(generate_history(30, 90, 3)) != history_text(generate_history(30, 90, 4))


# ------------------------------------------------------------------ shape


def test_events_come_in_time_order_with_unique_ids(one_year: list[dict[str, Any]]) -> None:
    times = [instant(e) for e in one_year]
    assert all(a <= b for a, b in zip(times, times[1:]))
    ids = [e["id"] for e in one_year]
    assert len(set(ids)) == len(ids)


def test_each_customers_events_are_strictly_increasing(one_year: list[dict[str, Any]]) -> None:
    last: dict[str, datetime] = {}
    for event in one_year:
        at = instant(event)
        assert event["customer"] not in last or at > last[event["customer"]], event
        last[event["customer"]] = at


def test_timestamps_carry_the_helsinki_offset(one_year: list[dict[str, Any]]) -> None:
    for event in one_year:
        at = instant(event)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", event["at"]), event["at"]
        month = at.month
        if month in (1, 2, 11, 12):
            assert at.utcoffset() == HELSINKI_WINTER, event
        elif month in (5, 6, 7, 8, 9):
            assert at.utcoffset() == HELSINKI_SUMMER, event
        # The generator never uses the hour a DST change skips or repeats (03:00–04:00).
        assert at.hour != 3


def test_the_history_stays_within_its_days() -> None:
    events = history(50, 30, 2, "2025-03-01")
    # 1 March 00:00 EET is 28 February 22:00 UTC; the 30 days end at 31 March 00:00 EEST
    # (summer time began on 30 March), which is 30 March 21:00 UTC.
    first, end = datetime(2025, 2, 28, 22, tzinfo=timezone.utc), datetime(2025, 3, 30, 21, tzinfo=timezone.utc)
    assert events
    for event in events:
        assert first <= instant(event) < end, event


def test_every_customer_starts_with_one_signup(one_year: list[dict[str, Any]]) -> None:
    first: dict[str, dict[str, Any]] = {}
    signups: Counter[str] = Counter()
    for event in one_year:
        first.setdefault(event["customer"], event)
        signups[event["customer"]] += event["type"] == "signup"
    assert len(first) == 300
    assert all(event["type"] == "signup" for event in first.values())
    assert set(signups.values()) == {1}


def test_fields_belong_to_their_event_types(one_year: list[dict[str, Any]]) -> None:
    types = {e["type"] for e in one_year}
    assert types == {"signup", "purchase", "visit", "review", "share", "refund"}
    for event in one_year:
        assert set(event) <= set(HISTORY_COLUMNS)
        assert list(event)[:4] == ["id", "type", "customer", "at"]
        kind = event["type"]
        if kind == "purchase":
            assert {"amount", "currency", "items"} <= set(event)
        if "items" in event:
            assert kind == "purchase"
        if "amount" in event:
            assert kind in ("purchase", "refund")
        if "birthday" in event:
            assert kind == "signup"
            date.fromisoformat(event["birthday"])
        assert ("original" in event) == (kind == "refund")
        assert "reward" not in event  # no redeems (documented)


def test_amounts_are_the_sum_of_the_items(one_year: list[dict[str, Any]]) -> None:
    categories = {category for _sku, category, _price in gen.CATALOGUE}
    for event in (e for e in one_year if e["type"] == "purchase"):
        assert re.fullmatch(r"\d+\.\d\d", event["amount"]), event["amount"]
        assert event["items"]
        total = Decimal(0)
        for item in event["items"]:
            assert set(item) == {"sku", "category", "quantity", "price"}
            assert item["category"] in categories
            assert isinstance(item["quantity"], int) and item["quantity"] >= 1
            assert Decimal(item["price"]) > 0
            total += Decimal(item["price"]) * item["quantity"]
        assert Decimal(event["amount"]) == total


def test_refunds_never_exceed_what_is_left(two_years: list[dict[str, Any]]) -> None:
    purchases: dict[str, dict[str, Any]] = {}
    refunded: dict[str, Decimal] = defaultdict(Decimal)
    kinds: Counter[str] = Counter()
    for event in two_years:
        if event["type"] == "purchase":
            purchases[event["id"]] = event
        if event["type"] != "refund":
            continue
        original = purchases[event["original"]]  # an earlier purchase…
        assert original["customer"] == event["customer"]  # …of the same customer
        total = Decimal(original["amount"])
        left = total - refunded[original["id"]]
        assert left > 0
        if "amount" in event:
            amount = Decimal(event["amount"])
            assert 0 < amount <= left
            kinds["full" if amount == total else "partial"] += 1
        else:
            amount = left
            kinds["the rest"] += 1
        refunded[original["id"]] += amount
    # The documented mix: partial refunds, full ones with an amount, and "the rest" without.
    assert kinds["partial"] and kinds["full"] and kinds["the rest"], kinds


# ------------------------------------------------------------- the engine


@pytest.mark.parametrize("rules", CAFE_RULES, ids=lambda p: p.name)
def test_the_cafe_programs_accept_every_event(rules: Path, two_years: list[dict[str, Any]]) -> None:
    engine = poletti.Engine(poletti.load(rules), explain=False)
    events = two_years[:3000]
    result = engine.process_many(events)
    assert [r.reason for r in result.rejected] == []
    assert result.duplicates == 0
    assert len(result.outcomes) == len(events)


# ------------------------------------------------------------- statistics


def test_december_is_busier_than_july(one_year: list[dict[str, Any]]) -> None:
    # MONTH_FACTOR: December 1.45, July 0.6; and more members have joined by December.
    months = Counter(e["at"][5:7] for e in one_year if e["type"] == "purchase")
    assert months["12"] > 1.5 * months["07"], months


def test_saturdays_are_busier_than_tuesdays(one_year: list[dict[str, Any]]) -> None:
    # WEEKDAY_FACTOR: Saturday 1.3, Tuesday 0.9; 2025 has 52 of each.
    weekdays = Counter(instant(e).weekday() for e in one_year if e["type"] == "purchase")
    assert weekdays[5] > 1.2 * weekdays[1], weekdays


def test_the_cafe_is_closed_on_christmas_day(one_year: list[dict[str, Any]]) -> None:
    assert not [e for e in one_year if e["type"] in ("purchase", "visit") and e["at"][5:10] in ("12-25", "01-01")]


def test_purchases_happen_in_opening_hours(one_year: list[dict[str, Any]]) -> None:
    for event in (e for e in one_year if e["type"] == "purchase"):
        at = instant(event)
        first, last = gen.WEEKEND_HOURS if at.weekday() >= 5 else gen.WEEKDAY_HOURS
        assert first <= at.hour <= last, event


def test_a_few_customers_make_many_of_the_purchases(one_year: list[dict[str, Any]]) -> None:
    # Log-normal rates with sigma 0.9: the top 10% alone would make ~35% of purchases (and
    # lifetimes add more skew); equal customers would make 10%.
    per_customer = Counter(e["customer"] for e in one_year if e["type"] == "purchase")
    counts = sorted(per_customer.values(), reverse=True)
    top = counts[: len(counts) // 10]
    assert sum(top) > 0.25 * sum(counts)


def test_customers_churn(two_years: list[dict[str, Any]]) -> None:
    # Of the customers who joined in the first 60 days, at most ~0.7 × e^(−640/540) ≈ 21% are
    # expected to still come in the last 90 days (trial customers leave within weeks).
    joined: dict[str, datetime] = {}
    last: dict[str, datetime] = {}
    for event in two_years:
        joined.setdefault(event["customer"], instant(event))
        last[event["customer"]] = instant(event)
    early = [c for c, at in joined.items() if at < datetime(2024, 3, 1, tzinfo=timezone.utc)]
    still = [c for c in early if last[c] >= datetime(2025, 10, 3, tzinfo=timezone.utc)]
    assert len(early) >= 30
    assert 0 < len(still) < 0.6 * len(early)


def test_new_customers_keep_arriving(two_years: list[dict[str, Any]]) -> None:
    # LAUNCH_SHARE 0.2 in the first 14 days; the other 80% uniformly over 731 days.
    signups = Counter(e["at"][:4] for e in two_years if e["type"] == "signup")
    assert signups["2025"] > 0.3 * 200


def test_most_signups_carry_a_birthday(one_year: list[dict[str, Any]]) -> None:
    signups = [e for e in one_year if e["type"] == "signup"]
    share = sum("birthday" in e for e in signups) / len(signups)
    assert 0.55 < share < 0.85  # BIRTHDAY_SHARE 0.7, 300 draws


# --------------------------------------------------------------- streaming


def test_the_history_streams() -> None:
    # 50,000 customers over ten years is millions of events; the first few hundred need only
    # the arrival times (a float per customer, ~1.6 MB in a list) and the customers active so far.
    tracemalloc.start()
    try:
        first = list(itertools.islice(generate_history(50_000, 3650, 1), 300))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(first) == 300
    assert peak < 20 * 1024 * 1024


@pytest.mark.parametrize("bad", [
    {"customers": 0}, {"days": 0}, {"customers": -3}, {"seed": 1.5}, {"start": "2025-02-30"},
    {"start": "9999-06-01"}, {"days": True},
])
def test_bad_arguments_are_value_errors(bad: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"customers": 5, "days": 10, "seed": 1, "start": "2025-01-01"} | bad
    with pytest.raises(ValueError):
        generate_history(**arguments)


# --------------------------------------------------------------- the command


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["generate", *args])


def read_csv(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        assert next(reader) == list(HISTORY_COLUMNS)
        return [from_cells(row) for row in reader]


def read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    assert table.column_names == list(HISTORY_COLUMNS)
    assert {str(t) for t in table.schema.types} == {"string"}
    columns = table.to_pydict()
    return [from_cells([columns[c][i] for c in HISTORY_COLUMNS]) for i in range(table.num_rows)]


def from_cells(row: Sequence[str | None]) -> dict[str, Any]:
    """A row back to the event: empty or null cells are absent, items are JSON."""
    event = {column: cell for column, cell in zip(HISTORY_COLUMNS, row) if cell not in (None, "")}
    if "items" in event:
        event["items"] = json.loads(event["items"])
    return event


def test_the_command_writes_the_same_events_in_all_three_formats(tmp_path: Path) -> None:
    args = ["--customers", "25", "--days", "60", "--seed", "3", "--start", "2025-11-20"]
    paths = {fmt: tmp_path / f"history.{fmt}" for fmt in ("csv", "jsonl", "parquet")}
    for fmt, path in paths.items():
        result = run(*args, "--out", str(path))  # the format follows the suffix
        assert result.exit_code == EXIT_OK, result.output
    expected = list(generate_history(25, 60, 3, "2025-11-20"))
    assert any(e["type"] == "purchase" for e in expected)
    from_jsonl = [json.loads(line) for line in paths["jsonl"].read_text(encoding="utf-8").splitlines()]
    assert from_jsonl == expected
    # CSV and Parquet hold strings: quantities come back through the items JSON as numbers.
    assert read_csv(paths["csv"]) == expected
    assert read_parquet(paths["parquet"]) == expected


def test_the_command_writes_csv_to_standard_output_by_default(tmp_path: Path) -> None:
    args = ["--customers", "8", "--days", "20", "--seed", "5"]
    printed = run(*args)
    assert printed.exit_code == EXIT_OK
    assert printed.stdout_bytes.startswith(b"id,type,customer,at,amount,currency,items,original,reward,birthday\n")
    assert b"\r" not in printed.stdout_bytes
    out = tmp_path / "h.txt"
    refused = run(*args, "--out", str(out))  # a suffix no reader knows: say which ones there are
    assert refused.exit_code == 2 and ".csv, .jsonl, .ndjson, .parquet, .pq" in refused.output and not out.exists()
    assert run(*args, "--out", str(out), "--format", "csv").exit_code == EXIT_OK
    assert out.read_bytes() == printed.stdout_bytes
    assert run(*args).stdout_bytes == printed.stdout_bytes  # same seed, same bytes


def test_format_overrides_the_suffix(tmp_path: Path) -> None:
    out = tmp_path / "events.csv"
    assert run("--customers", "3", "--days", "5", "--seed", "1", "--format", "jsonl", "--out", str(out)).exit_code == 0
    json.loads(out.read_text(encoding="utf-8").splitlines()[0])


@pytest.mark.parametrize("args", [
    ["--customers", "0", "--days", "5", "--seed", "1"],
    ["--customers", "3", "--days", "5"],
    ["--customers", "3", "--days", "5", "--seed", "1", "--start", "2025-02-30"],
    ["--customers", "3", "--days", "5", "--seed", "1", "--format", "parquet"],
    ["--customers", "3", "--days", "5", "--seed", "1", "--timezone", "Mars/Olympus"],
    ["--customers", "3", "--days", "5", "--seed", "1", "--currency", "euro"],
    ["--customers", "3", "--days", "5000000", "--seed", "1"],
])
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Traceback" not in result.output


def test_an_unwritable_file_exits_2(tmp_path: Path) -> None:
    result = run("--customers", "3", "--days", "5", "--seed", "1", "--out", str(tmp_path / "missing" / "h.csv"))
    assert result.exit_code == EXIT_USAGE
    assert "cannot write" in result.output
    assert not list(tmp_path.iterdir())  # no temporary file left behind


def test_csv_cells_are_plain_strings() -> None:
    text = history_text(generate_history(5, 20, 1))
    rows = list(csv.DictReader(io.StringIO(text)))
    signup = next(r for r in rows if r["type"] == "signup")
    assert signup["amount"] == signup["items"] == signup["original"] == signup["reward"] == ""
