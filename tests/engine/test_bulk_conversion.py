"""`at` rules convert everything the balance (and the rule's caps) allow at once: one record, any count.

Every expected figure is worked out by hand in the comments: 1 point per
EUR on a 10,000,000 EUR purchase is 10,000,000 points; at 20 points per gift
that is 10,000,000 / 20 = 500,000 gifts and nothing left. The interpreter and
the generated code must agree, and neither may take time that grows with
the number of conversions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import poletti
from poletti.cli import cli
from poletti.engine.ledger import PointsLedger
from poletti.interpreter import bookkeeping
from poletti.interpreter.trace import Converted

RULES = "earn 1 point per EUR; at 20 points grant gift\n"
CAPPED = "earn 1 point per EUR; at 20 points grant gift limit 3 times per day\n"
ROLLING = "earn 1 point per EUR; at 20 points grant gift limit 2 times per 7d\n"
ENGINES = [pytest.param(dict(explain=True), id="interpreter-explain"),
           pytest.param(dict(explain=False, generated=False), id="interpreter"),
           pytest.param(dict(explain=False, generated=True), id="generated")]


def purchase(event_id: str, at: str, amount: str) -> dict[str, Any]:
    return {"id": event_id, "type": "purchase", "customer": "c1", "at": at, "amount": amount}


@pytest.mark.parametrize("options", ENGINES)
def test_ten_million_euro_purchase_converts_into_500000_gifts_at_once(options: dict[str, Any]) -> None:
    engine = poletti.Engine(poletti.compile(RULES), **options)
    started = time.perf_counter()
    outcome = engine.process(purchase("e1", "2026-01-01T10:00:00Z", "10000000"))
    assert time.perf_counter() - started < 0.5  # one conversion step, not 500,000
    assert outcome.earned == 10_000_000
    assert outcome.granted == {"gift": 500_000}
    assert outcome.spent == 10_000_000  # 500,000 × 20
    assert outcome.points == 0
    customer = engine.customer("c1")
    assert customer.points == 0 and customer.rewards == {"gift": 500_000}
    if options["explain"]:
        converted = [r for r in outcome.trace if isinstance(r, Converted)]
        assert len(converted) == 1 and converted[0].count == 500_000 and converted[0].points == 20
        assert "-10000000 points converted into 500000 × gift" in outcome.explain()


def test_bulk_conversion_is_one_spend_and_one_reward_in_the_ledger() -> None:
    engine = poletti.Engine(poletti.compile(RULES), explain=True)
    outcome = engine.process(purchase("e1", "2026-01-01T10:00:00Z", "10000000"))
    entries = bookkeeping.entries(list(outcome.trace), 0, PointsLedger(), "c1", "e1", "purchase", "p",
                                  engine.compiled)
    assert [(e.kind, e.points, e.count, e.balance) for e in entries] == [
        ("earn", 10_000_000, 0, 10_000_000),  # count: how many rewards an entry is about (none)
        ("spend", 10_000_000, 500_000, 0),  # 500,000 × 20 points, in one entry
        ("reward", 0, 500_000, 0),
    ]


@pytest.mark.parametrize("options", ENGINES)
def test_times_cap_stops_a_bulk_conversion_and_the_rest_stays_as_points(options: dict[str, Any]) -> None:
    engine = poletti.Engine(poletti.compile(CAPPED), **options)
    first = engine.process(purchase("e1", "2026-01-01T10:00:00Z", "10000000"))
    # 3 gifts today: 3 × 20 = 60 points spent, 10,000,000 − 60 = 9,999,940 left.
    assert first.granted == {"gift": 3} and first.points == 9_999_940
    if options["explain"]:  # what converted, then why no more did
        lines = first.explain().splitlines()
        assert "-60 points converted into 3 × gift" in lines[2]
        assert "not fired" in lines[3] and "limit 3 times per day reached" in lines[3]
    same_day = engine.process(purchase("e2", "2026-01-01T18:00:00Z", "1"))
    assert same_day.granted == {} and same_day.points == 9_999_941  # the day's 3 are used
    next_day = engine.process(purchase("e3", "2026-01-02T09:00:00Z", "1"))
    assert next_day.granted == {"gift": 3} and next_day.points == 9_999_942 - 60  # = 9,999,882
    assert engine.customer("c1").rewards == {"gift": 6}


@pytest.mark.parametrize("options", ENGINES)
def test_rolling_times_cap_counts_a_bulk_conversion_as_its_uses(options: dict[str, Any]) -> None:
    engine = poletti.Engine(poletti.compile(ROLLING), **options)
    # 1,000 points: room for 50 gifts, the cap allows 2 in any 7 days → 1,000 − 40 = 960.
    assert engine.process(purchase("e1", "2026-01-01T10:00:00Z", "1000")).points == 960
    # 6 days later both uses are still inside the window: nothing converts (960 + 1 = 961).
    assert engine.process(purchase("e2", "2026-01-07T10:00:00Z", "1")).granted == {}
    # 7 days after the first, the two uses have left the window: 2 more → 961 + 1 − 40 = 922.
    later = engine.process(purchase("e3", "2026-01-08T10:00:00Z", "1"))
    assert later.granted == {"gift": 2} and later.points == 922


@pytest.mark.parametrize("options", ENGINES)
def test_stamp_card_counts_a_huge_purchase_once(options: dict[str, Any]) -> None:
    engine = poletti.Engine(poletti.compile("every 3 purchases grant coffee\n"), **options)
    granted = [engine.process(purchase(f"e{i}", f"2026-01-0{i}T10:00:00Z", "999999999999")).granted
               for i in (1, 2, 3)]
    assert granted == [{}, {}, {"coffee": 1}]  # the 3rd purchase, whatever the amounts


def test_cli_run_writes_one_line_for_a_bulk_conversion(tmp_path: Path) -> None:
    rules, events = tmp_path / "rules.loyalty", tmp_path / "events.jsonl"
    rules.write_text('reward gift "Gift"\n' + RULES, encoding="utf-8")
    events.write_text(json.dumps(purchase("e1", "2026-01-01T10:00:00Z", "10000000")) + "\n", encoding="utf-8")
    started = time.perf_counter()
    result = CliRunner().invoke(cli, ["run", "--json", str(rules), str(events)])
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - started < 5
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0]["granted"] == {"gift": 500_000} and lines[0]["points"] == 0
