"""``Outcome.explain()``: golden stories, and the "why" the issue asks for, line by line.

Each golden case in ``tests/data/explain/`` is a rule file ``NAME.loyalty``,
its events ``NAME.jsonl`` (one event per line, or ``{"advance_to": DATE}``)
and the expected text ``NAME.expected``: every outcome's explanation (times
in the program zone), rejected events with their reasons, then each
customer's final standing. Every number in the goldens was checked by hand
(see the notes in ``tests/data/explain/README.md``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import poletti
from poletti.commands.explain import standing
from poletti.engine.timecalc import parse_timestamp

EXPLAIN = Path(__file__).resolve().parent.parent / "data" / "explain"
CASES = sorted(EXPLAIN.glob("*.loyalty"))


def story(rules: Path) -> str:
    program = poletti.load(rules)
    tz = ZoneInfo(program.timezone)
    engine = poletti.Engine(program)
    blocks: list[str] = []
    last = None
    for line in rules.with_suffix(".jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        step = json.loads(line)
        if "advance_to" in step:
            blocks.extend(o.explain(tz) for o in engine.advance_to(step["advance_to"]))
            last = parse_timestamp(step["advance_to"], tz)
            continue
        try:
            outcome = engine.process(step)
        except poletti.EventError as err:
            blocks.append(f"rejected {err.event_id}: {err.reason}\n")
            continue
        blocks.append(outcome.explain(tz))
        last = outcome.at if last is None or outcome.at > last else last
    blocks.extend(standing(engine, customer, last, tz) for customer in engine.customers())
    return "\n".join(blocks)


@pytest.mark.parametrize("rules", CASES, ids=[p.stem for p in CASES])
def test_explain_goldens(rules: Path, golden: Any) -> None:
    golden.check(story(rules), rules.with_suffix(".expected"))


def lines_of(rules: str, *events: dict[str, Any], advance: str | None = None) -> str:
    engine = poletti.Engine(poletti.compile(rules))
    text = "".join(engine.process(e).explain() for e in events)
    if advance:
        text += "".join(o.explain() for o in engine.advance_to(advance))
    return text


def purchase(event_id: str, at: str, amount: str, **more: Any) -> dict[str, Any]:
    return {"id": event_id, "type": "purchase", "customer": "c1", "at": at, "amount": amount, **more}


def test_at_rule_says_what_was_needed() -> None:
    text = lines_of("earn 1 point per EUR\nat 50 points grant free_drink",
                    purchase("p1", "2026-01-05T10:00:00+00:00", "43.00"))
    assert "not fired by 'at 50 points grant free_drink' (line 2): needed 50 points, had 43" in text


def test_campaign_dates() -> None:
    rules = "earn 1 point per EUR during 2026-12-01..2026-12-24"
    assert "campaign starts 2026-12-01" in lines_of(rules, purchase("p1", "2026-11-30T10:00:00+00:00", "5"))
    assert "campaign ended 2026-12-24" in lines_of(rules, purchase("p1", "2026-12-25T00:00:00+00:00", "5"))


def test_condition_names_the_false_part_and_its_values() -> None:
    text = lines_of("earn 1 point per EUR\nearn x2 if purchases_30d >= 1 and spend_30d > 100 and tier == none",
                    purchase("p1", "2026-01-05T10:00:00+00:00", "12.50"))
    assert "condition not met: spend_30d > 100 (spend_30d is 12.50 EUR)" in text
    text = lines_of("tier gold when spend_12m > 10\nearn 5 points on review if not (tier >= gold) or points > 3",
                    purchase("p1", "2026-01-05T10:00:00+00:00", "12.50"),
                    {"id": "r1", "type": "review", "customer": "c1", "at": "2026-01-06T10:00:00+00:00"})
    assert "(tier is gold, points is 0 points)" in text


def test_event_attribute_values_are_shown() -> None:
    text = lines_of('attribute channel: text\nearn 5 points per purchase if event.channel == "app"',
                    purchase("p1", "2026-01-05T10:00:00+00:00", "1", channel="web"),
                    purchase("p2", "2026-01-05T11:00:00+00:00", "1"))
    assert 'condition not met: event.channel == "app" (event.channel is web)' in text
    assert "(event.channel is unknown)" in text


def test_segment_values_are_shown() -> None:
    text = lines_of("segment lapsed when days_since_last_purchase > 60\nearn 1 point per EUR\nearn x2 if lapsed",
                    purchase("p1", "2026-01-05T10:00:00+00:00", "10"))
    assert "condition not met: lapsed (lapsed is false)" in text


def test_cap_says_how_much_was_cut_and_why() -> None:
    text = lines_of("earn 1 point per EUR limit 50 points per day",
                    purchase("p1", "2026-01-05T10:00:00+00:00", "45"),
                    purchase("p2", "2026-01-05T11:00:00+00:00", "20"))
    assert "15 points cut by 'earn 1 point per EUR limit 50 points per day' (line 1): " \
           "limit 50 points per day: 45 already earned this day, so 20 cut to 5" in text


def test_once_says_when() -> None:
    text = lines_of("when spend_lifetime > 10 grant gift once\ntier t when spend_lifetime > 10",
                    purchase("p1", "2026-01-05T10:00:00+00:00", "20"),
                    {"id": "f1", "type": "refund", "customer": "c1", "at": "2026-01-06T10:00:00+00:00",
                     "original": "p1", "amount": "15"},
                    purchase("p2", "2026-01-07T10:00:00+00:00", "20"))
    assert "once: already granted on 2026-01-05" in text


def test_expiry_names_the_lot() -> None:
    text = lines_of("earn 1 point per EUR\npoints expire after 30d",
                    purchase("p1", "2026-01-05T10:00:00+00:00", "20"), advance="2026-03-01")
    assert "at 2026-02-04T10:00:00+00:00: -20 points expired (lot earned 2026-01-05 by p1; " \
           "points expire after 30d)" in text


def test_refund_says_how_many_points_and_from_which_purchase() -> None:
    text = lines_of("earn 1 point per EUR",
                    purchase("p1", "2026-01-05T10:00:00+00:00", "7.50"),
                    {"id": "f1", "type": "refund", "customer": "c1", "at": "2026-01-06T10:00:00+00:00",
                     "original": "p1", "amount": "2.50"},
                    {"id": "f2", "type": "refund", "customer": "c1", "at": "2026-01-06T11:00:00+00:00",
                     "original": "p1", "amount": "2.50"})
    # 7 points; 2.50 → floor(7 × 2.50 / 7.50) = 2; 5.00 → floor(4.67) = 4, 2 more.
    assert "-2 points reversed (refund of 2.50 EUR on purchase p1, which earned 7 points for 7.50 EUR: " \
           "2.50 refunded so far → floor(7 × 2.50 ÷ 7.50) = 2 reversed in all)" in text
    assert "5.00 refunded so far → floor(7 × 5.00 ÷ 7.50) = 4 reversed in all, 2 of them reversed before)" in text


def test_explanations_can_be_turned_off() -> None:
    engine = poletti.Engine(poletti.compile("earn 1 point per EUR if spend_30d > 100\nat 50 points grant x"),
                            explain=False)
    outcome = engine.process(purchase("p1", "2026-01-05T10:00:00+00:00", "20"))
    # No trace is built, yet the figures are all there.
    assert outcome.trace == ()
    assert (outcome.earned, outcome.points) == (0, 0)
    outcome = engine.process(purchase("p2", "2026-01-06T10:00:00+00:00", "90"))
    # spend_30d = 110 > 100: 90 points, one x (50), 40 left; still no trace.
    assert (outcome.earned, outcome.granted, outcome.points, outcome.trace) == (90, {"x": 1}, 40, ())


def test_the_worked_example_in_the_language_docs_is_what_the_engine_says() -> None:
    import re

    docs = (Path(__file__).resolve().parents[2] / "docs" / "language.md").read_text(encoding="utf-8")
    section = docs[docs.index("## How poletti processes an event"):]
    rules = re.search(r"```loyalty\n(.*?)```", section, flags=re.S).group(1)  # type: ignore[union-attr]
    shown = re.search(r"```text\n(.*?)```", section, flags=re.S).group(1)  # type: ignore[union-attr]
    engine = poletti.Engine(poletti.compile(rules))
    p1 = purchase("p1", "2026-11-28T10:00:00+00:00", "43.90")
    p2 = purchase("p2", "2026-12-02T10:00:00+00:00", "60.00",
                  items=[{"sku": "beans-500", "category": "beans", "quantity": 1, "price": "12.00"}])
    assert engine.process(p1).explain() + "\n" + engine.process(p2).explain() == shown
