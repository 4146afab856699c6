"""The report read at a glance: its words at the top, colours by meaning, reward labels, segments and groups,
charts as wide as the page, a page that prints. Figures are those worked out in segment_cases.py."""

from __future__ import annotations

import html
import re

import pytest
from segment_cases import BASELINE_RULES, EVENTS, HEADLINE, HEADLINE_ALONE, NEW_RULES

import poletti
from poletti.interpreter.simulate import simulate
from poletti.interpreter.simulate.report import GOOD_DIRECTION, Names, render_report, tone

NAMES = Names(rules="new.loyalty", history="h.jsonl", baseline="old.loyalty")


@pytest.fixture(scope="module")
def page() -> str:
    result = simulate(poletti.compile(NEW_RULES), EVENTS, baseline=poletti.compile(BASELINE_RULES))
    return render_report(result, NAMES)


@pytest.fixture(scope="module")
def alone() -> str:
    return render_report(simulate(poletti.compile(NEW_RULES), EVENTS), Names(rules="new.loyalty"))


def test_the_words_at_the_top_say_what_the_change_does(page: str) -> None:
    assert f"<p class=headline>{html.escape(HEADLINE)}</p>" in page


def test_without_a_baseline_the_words_describe_the_program(alone: str) -> None:
    assert f"<p class=headline>{html.escape(HEADLINE_ALONE)}</p>" in alone


def test_the_report_states_that_behaviour_is_assumed_unchanged(page: str, alone: str) -> None:
    assert "customers&#x27; behaviour is assumed unchanged by the rule change" in page
    assert "The history is replayed as it happened" in alone


def test_a_change_is_coloured_by_what_it_means_not_by_its_sign() -> None:
    # Less cost and less liability are good news though they fall; fewer points to customers is bad news.
    assert tone("cost", "-2.50") == "good" and tone("cost", "2.50") == "bad"
    assert tone("liability.outstanding", "-3.25") == "good" and tone("points.outstanding", 10) == "bad"
    assert tone("points.earned", -115) == "bad" and tone("rewards.gift", 1) == "good"
    assert tone("cost_share_of_sales", "-0.75") == "good"
    # Neutral figures, no change and unknown changes have no colour.
    assert tone("tiers.gold", 3) == tone("segments.lapsed", 1) == tone("cost", "0.00") == tone("cost", None) == ""
    assert set(GOOD_DIRECTION.values()) == {"up", "down"}


def test_the_page_colours_each_change_by_meaning(page: str) -> None:
    # Cost 25.00 against 27.50: −2.50 (−9.1 %), good; points earned −115 (−17.2 %), bad.
    assert "<div class=value>25.00</div><div class='change good'>-2.50 (-9.1 %) vs baseline</div>" in page
    assert "<div class=value>555</div><div class='change bad'>-115 (-17.2 %) vs baseline</div>" in page
    assert ("<tr><td>Points outstanding</td><td class=num>55</td><td class=num>120</td>"
            "<td class='num good'>-65 (-54.2 %)</td></tr>") in page
    # Segment sizes are neither good nor bad: lapsed 1 → 2 is shown without a colour.
    assert ("<tr><td>Segment lapsed (customers)</td><td class=num>2</td><td class=num>1</td>"
            "<td class='num '>+1 (+100.0 %)</td></tr>") in page


def test_the_page_shows_gains_and_losses_by_tier_and_by_segment(page: str) -> None:
    # gold: 3 customers, 1 gains, 2 lose, earned −95, reward value −2.50; lapsed: 2 lose, −85, −2.50.
    assert ("<tr><td>gold</td><td class=num>3</td><td class='num good'>1</td><td class='num bad'>2</td>"
            "<td class=num>0</td><td class='num bad'>-95</td><td class='num bad'>-2.50</td></tr>") in page
    assert ("<tr><td>none</td><td class=num>2</td><td class='num '>0</td><td class='num bad'>1</td>"
            "<td class=num>1</td><td class='num bad'>-20</td><td class='num '>0.00</td></tr>") in page
    assert ("<tr><td>lapsed</td><td class=num>2</td><td class='num '>0</td><td class='num bad'>2</td>"
            "<td class=num>0</td><td class='num bad'>-85</td><td class='num bad'>-2.50</td></tr>") in page
    assert "Who gains and who loses, by tier and by segment at the end (new rules)" in page
    assert "the tier the <strong>new</strong> rules give them at the end" in page


def test_segment_sizes_over_time_are_drawn(page: str, alone: str) -> None:
    for report in (page, alone):
        assert "Customers per segment at month end" in report
        assert 'aria-labelledby="segments-title"' in report
    plain = render_report(simulate(poletti.compile("earn 1 point per EUR\n"), EVENTS))
    assert "segments-title" not in plain  # no segment declared: no chart


def test_rewards_appear_by_label(page: str) -> None:
    assert "<td>Reward: Gift</td>" in page and "Reward: gift" not in page


def test_hostile_labels_are_escaped_everywhere() -> None:
    rules = NEW_RULES.replace('"Gift"', '"<script>alert(1)</script> $5 off & more"')
    result = simulate(poletti.compile(rules), EVENTS, baseline=poletti.compile(BASELINE_RULES))
    report = render_report(result, NAMES)
    assert "<script" not in report
    assert "<td>Reward: &lt;script&gt;alert(1)&lt;/script&gt; $5 off &amp; more</td>" in report
    # In the charts too (the rewards legend, the old-vs-new panel): as text, "$" shown as it is.
    for chart in ("rewards", "comparison"):
        svg = re.search(rf'<svg[^>]*aria-labelledby="{chart}-title".*?</svg>', report, flags=re.S)
        assert svg is not None and "&lt;script&gt;alert(1)&lt;/script&gt; $5 off &amp; more" in svg.group(0)


def test_charts_take_the_page_width_and_the_page_prints(page: str) -> None:
    roots = re.findall(r"<svg [^>]*>", page)
    assert len(roots) == 8  # points, rewards, tiers, segments, purchases, old vs new, per customer, groups
    for root in roots:
        assert "viewBox=" in root and " width=" not in root and " height=" not in root
    assert ".chart svg { display: block; width: 100%; height: auto; }" in page
    assert "@media print" in page and "break-inside: avoid" in page


def test_the_walk_through_quotes_the_cafe_report() -> None:
    # docs/simulate.md quotes the café example's paragraph, group tables and segment sizes: they must be the
    # ones the example gives (this checks the page against the program, not the program's arithmetic).
    from pathlib import Path

    from poletti.interpreter.simulate.columnar import simulate_file
    from poletti.interpreter.simulate.report import _signed, headline

    root = Path(__file__).resolve().parents[2]
    docs = (root / "docs" / "simulate.md").read_text(encoding="utf-8")
    cafe = root / "examples" / "cafe"
    result = simulate_file(poletti.load(cafe / "rules_v2.loyalty"), str(cafe / "history.csv"),
                           baseline=poletti.load(cafe / "rules_v1.loyalty"))
    names = Names(rules="examples/cafe/rules_v2.loyalty", baseline="examples/cafe/rules_v1.loyalty")
    quoted = re.search(r"^> (Replayed over the same .*)$", docs, flags=re.M)
    assert quoted is not None and quoted.group(1) == " ".join(headline(result.summary, names))
    groups = result.summary["groups"]
    for kind in ("tiers", "segments"):
        for name, figures in groups[kind].items():
            row = (f"| {name} | {figures['customers']:,} | {figures['gain']:,} | {figures['lose']:,} | "
                   f"{figures['same']:,} | {_signed(figures['earned_points_change'])} | "
                   f"{_signed(figures['reward_value_change'])} |")
            assert row in docs, row
    assert '"segments": {"lapsed": 607, "regulars": 114}' in docs
    assert result.summary["segments"] == {"lapsed": 607, "regulars": 114}


def test_a_segment_only_the_baseline_declares_is_shown_as_gone() -> None:
    from poletti.interpreter.simulate.report import _sizes

    # New rules declare "regulars" (3 customers); the baseline also had "lapsed" (2): it is 0 now, not hidden.
    assert _sizes({"regulars": 3}, {"regulars": 3, "lapsed": 2}, changed_only=False) == "regulars 3 → 3, lapsed 2 → 0"
    assert _sizes({"regulars": 3}, {"regulars": 1}, changed_only=True) == "regulars 1 → 3"
