"""examples/cafe/: the two versions of the café program and the history beside them."""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import poletti
from poletti.cli import cli
from poletti.dsl.formatter import format_text
from poletti.interpreter.simulate.generate import HISTORY_COLUMNS

CAFE = Path(__file__).resolve().parent.parent / "examples" / "cafe"
V1, V2 = CAFE / "rules_v1.loyalty", CAFE / "rules_v2.loyalty"


def test_version_1_is_the_cafe_program() -> None:
    assert V1.read_bytes() == (CAFE / "rules.loyalty").read_bytes()


@pytest.mark.parametrize("path", [V1, V2], ids=lambda p: p.name)
def test_both_versions_check_clean_and_are_formatted(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert poletti.diagnose(text, path.name) == ()
    assert format_text(text).text == text


def coffee(event_id: str, at: str, price: str, quantity: int = 1, category: str = "coffee") -> dict[str, Any]:
    amount = str(Decimal(price) * quantity)
    return {"id": event_id, "type": "purchase", "customer": "c1", "at": at, "amount": amount,
            "items": [{"sku": "x", "category": category, "quantity": quantity, "price": price}]}


def test_version_2_does_what_its_comments_say() -> None:
    engine = poletti.Engine(poletti.load(V2))
    view = engine.customer

    engine.process({"id": "s", "type": "signup", "customer": "c1", "at": "2025-03-03T09:00:00+02:00"})
    # 11.90 beans + 2.90 coffee = 14.80: 14 points per EUR (down) + 11 more for the beans = 25.
    engine.process({"id": "p1", "type": "purchase", "customer": "c1", "at": "2025-03-03T09:05:00+02:00",
                    "amount": "14.80", "items": [{"sku": "b", "category": "beans", "quantity": 1, "price": "11.90"},
                                                 {"sku": "c", "category": "coffee", "quantity": 1, "price": "2.90"}]})
    assert (view("c1").points, view("c1").rewards) == (25, {})
    # In the summer campaign: 20 points × 2 = 40 → 65 → one free drink, 15 left.
    outcome = engine.process(coffee("p2", "2025-07-01T10:00:00+03:00", "10.00", 2))
    assert outcome.earned == 40
    assert (view("c1").points, view("c1").rewards) == (15, {"free_drink": 1})
    # 850 EUR of merch: spend_12m 884.80 > 800 → gold after this purchase, but the purchase
    # itself earns with the tier it found (none): 850 → 865 → 17 drinks, 15 left.
    outcome = engine.process(coffee("p3", "2025-09-01T10:00:00+03:00", "850.00", 1, "merch"))
    assert (outcome.earned, outcome.tier) == (850, "gold")
    assert (view("c1").points, view("c1").rewards["free_drink"]) == (15, 18)
    # Gold earns × 1.5: 10 → 15 → 30.
    assert engine.process(coffee("p4", "2025-09-02T10:00:00+03:00", "10.00")).earned == 15
    # Seven 1 EUR coffees: 1 × 1.5 = 1.5 → 1 point each (rounding down) → 37. Coffee stamps:
    # p1, p2, p4 and these seven make ten → a free coffee with the last one.
    for day in range(3, 10):
        outcome = engine.process(coffee(f"q{day}", f"2025-09-0{day}T10:00:00+03:00", "1.00"))
        assert outcome.earned == 1
    assert outcome.granted == {"free_coffee": 1}
    assert (view("c1").points, view("c1").rewards) == (37, {"free_drink": 18, "free_coffee": 1})

    # Spending took the oldest points first: what is left is 15 of p3's lot, p4's 15 and 7 × 1.
    # p3's lot expires 12 months after it was earned (2026-09-01 10:00): 37 − 15 = 22.
    engine.advance_to("2026-09-01T12:00:00+03:00")
    assert view("c1").points == 22
    # The 850 left the 12-month window at 10:00 the same day; gold is kept for 3 months.
    assert view("c1").tier == "gold"
    engine.advance_to("2026-09-10T12:00:00+03:00")
    assert view("c1").points == 0
    engine.advance_to("2026-11-30T12:00:00+02:00")
    assert view("c1").tier == "gold"
    engine.advance_to("2026-12-01T12:00:00+02:00")
    assert view("c1").tier is None


# ---------------------------------------------------------------- the history


def documented_command() -> list[str]:
    readme = (CAFE / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^\s*poletti (generate .*--out examples/cafe/history\.csv)\s*$", readme, re.MULTILINE)
    assert match, "examples/cafe/README.md should show the command that wrote history.csv"
    return shlex.split(match.group(1))


def test_the_history_has_the_simulate_columns() -> None:
    with open(CAFE / "history.csv", newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header == list(HISTORY_COLUMNS)
    assert (CAFE / "history.csv").stat().st_size < 10 * 1024 * 1024


@pytest.mark.slow
def test_the_documented_command_writes_the_history_byte_for_byte() -> None:
    args = documented_command()
    out = args.index("--out")
    result = CliRunner().invoke(cli, args[:out] + args[out + 2:])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == (CAFE / "history.csv").read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("rules", [V1, V2], ids=lambda p: p.name)
def test_every_event_of_the_history_is_accepted(rules: Path) -> None:
    text = (CAFE / "history.csv").read_text(encoding="utf-8")
    events = []
    for row in csv.DictReader(io.StringIO(text)):
        event = {key: value for key, value in row.items() if value != ""}
        if "items" in event:
            event["items"] = json.loads(event["items"])
        events.append(event)
    result = poletti.Engine(poletti.load(rules), explain=False).process_many(events)
    assert [r.reason for r in result.rejected] == []
