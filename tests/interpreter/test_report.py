"""The simulate report: one self-contained HTML file that holds real charts and works offline."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import simulate_cases as cases
from click.testing import CliRunner

import poletti
from poletti.cli import cli
from poletti.interpreter.simulate.report import Names, render_report
from poletti.interpreter.simulate import simulate

CHART_TITLES = (
    "Points earned, spent, expired and reversed per month",
    "Outstanding points (liability) at each month",
    "Rewards granted per month",
    "Cost of the rewards granted per month (EUR)",
    "Customers per tier",
    "Purchases and purchasing customers per month",
    "Average basket per month (EUR)",
)
BASELINE_TITLES = ("Old vs new rules", "Who gains and who loses: change per customer", "Change in reward value",
                   "Who gains and who loses, by tier and by segment at the end (new rules)")


class Structure(HTMLParser):
    """Collects what a browser would fetch and every id, to check the page stands alone."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: list[str] = []
        self.fetches: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name == "id" and value:
                self.ids.append(value)
            if name in ("src", "href", "xlink:href", "srcset", "data") and value and not value.startswith("#"):
                self.fetches.append((tag, name, value))


def parse(page: str) -> Structure:
    parser = Structure()
    parser.feed(page)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def with_baseline() -> str:
    result = simulate(poletti.compile(cases.RULES), cases.EVENTS, baseline=poletti.compile(cases.BASELINE_RULES),
                      effect_from="2026-02-01", reordered=True)
    return render_report(result, Names(rules="new.loyalty", history="history.csv", baseline="old.loyalty"))


@pytest.fixture(scope="module")
def alone() -> str:
    return render_report(simulate(poletti.compile(cases.RULES), cases.EVENTS))


def test_report_holds_every_chart(with_baseline: str, alone: str) -> None:
    # Points, rewards, tiers, purchases; with a baseline also old-vs-new, the per-customer change and the
    # gains and losses by group. (Segments have a chart only when the rules declare one.)
    assert with_baseline.count("<svg") == 7
    assert alone.count("<svg") == 4
    for title in CHART_TITLES:
        assert title in with_baseline, title
        assert title in alone, title
    for title in BASELINE_TITLES:
        assert title in with_baseline, title
        assert title not in alone, title


def test_charts_are_drawn_not_empty(with_baseline: str) -> None:
    for svg in re.findall(r"<svg.*?</svg>", with_baseline, flags=re.S):
        assert svg.count("<path") > 10  # axes, ticks, lines, bars
        assert "<text" in svg  # titles and labels are text


def test_report_works_offline(with_baseline: str, alone: str) -> None:
    for page in (with_baseline, alone):
        assert "http://" not in page and "https://" not in page
        structure = parse(page)
        assert structure.fetches == []
        assert not {"script", "link", "img", "iframe", "object", "embed"} & set(structure.tags)
        assert "@import" not in page and "url(http" not in page
        # Several SVGs in one page: every id is unique, and every in-page reference points at one.
        assert len(structure.ids) == len(set(structure.ids))
        for target in re.findall(r"url\(#([^)]+)\)|href=\"#([^\"]+)\"", page):
            assert (target[0] or target[1]) in structure.ids


def test_report_tables_hold_the_figures(with_baseline: str) -> None:
    text = re.sub(r"<[^>]+>", " ", with_baseline)
    # Summary: new 247 / old 237 / +10 points earned; cost 26.50 / 23.00 / +3.50 (simulate_cases.py).
    assert re.search(r"Points earned\s+247\s+237\s+\+10", text)
    assert re.search(r"Cost of rewards \(EUR\)\s+26\.50\s+23\.00\s+\+3\.50", text)
    assert "Repeat-purchase rate" in text and "66.7 %" in text
    assert "not in time order" in text
    assert "bad" in text and "amount" in text  # the rejected events
    assert "2026-03" in text  # the month-by-month table


def test_report_of_an_empty_history() -> None:
    page = render_report(simulate(poletti.compile(cases.RULES), []))
    assert page.count("<svg") == 0
    assert "No event was rejected" in page


def test_cli_writes_the_report(tmp_path: Path) -> None:
    rules = tmp_path / "rules.loyalty"
    rules.write_text(cases.RULES, encoding="utf-8")
    old = tmp_path / "old.loyalty"
    old.write_text(cases.BASELINE_RULES, encoding="utf-8")
    history = cases.write_csv(tmp_path / "history.csv", cases.EVENTS)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["simulate", str(rules), str(history), "--baseline", str(old),
                                      "--report", str(out), "--json"])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 7
    assert "history.csv" in page and "old.loyalty" in page
    assert not list(tmp_path.glob(".report.html.*"))  # no temporary file left behind


def test_png_copies_for_review(tmp_path: Path) -> None:
    result: Any = simulate(poletti.compile(cases.RULES), cases.EVENTS)
    render_report(result, png_dir=str(tmp_path))
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["activity.png", "points.png", "rewards.png",
                                                                "tiers.png"]


def test_report_says_which_rewards_have_an_unknown_cost() -> None:
    program = poletti.compile('reward cake "Cake" value 4.00 EUR\nearn 1 point per EUR\n'
                              "at 100 points grant cake\nat 30 points grant free_drink\n")
    events = [{"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00Z", "amount": "130"}]
    # 130 points: a cake (4.00) and a free drink (no value): cost 4.00, the drink's cost unknown.
    page = render_report(simulate(program, events))
    assert "Cost (EUR), some unknown" in page
    assert ("<p class=warning>The cost of rewards leaves out free_drink (handed out once): no value is declared, "
            "so their cost is unknown, not zero.") in page
    assert re.search(r"Rewards of unknown cost \(not in the cost\)</td><td class=num>free_drink</td>", page)


def test_report_of_fully_valued_rewards_mentions_no_unknown_cost(alone: str) -> None:
    assert "unknown" not in alone


def _without_generated_line(page: str) -> str:
    return re.sub(r"<p class=meta>Generated .*? by poletti\.</p>", "", page)


def test_the_same_input_renders_the_same_report_bytes() -> None:
    # matplotlib salts its SVG ids (clip paths, markers) randomly per process unless svg.hashsalt is fixed.
    def render() -> str:
        result = simulate(poletti.compile(cases.RULES), cases.EVENTS, baseline=poletti.compile(cases.BASELINE_RULES),
                          effect_from="2026-02-01", reordered=True)
        return render_report(result, Names(rules="new.loyalty", history="history.csv", baseline="old.loyalty"))

    first, second = render(), render()
    assert 'clip-path="url(#' in first  # the ids that used to differ are there
    assert first == second


def test_the_cli_writes_the_same_report_twice_but_for_its_generated_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.loyalty"
    rules.write_text(cases.RULES, encoding="utf-8")
    old = tmp_path / "old.loyalty"
    old.write_text(cases.BASELINE_RULES, encoding="utf-8")
    history = cases.write_csv(tmp_path / "history.csv", cases.EVENTS)
    pages = []
    for name in ("one.html", "two.html"):
        result = CliRunner().invoke(cli, ["simulate", str(rules), str(history), "--baseline", str(old),
                                          "--report", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        pages.append((tmp_path / name).read_bytes().decode("utf-8"))
    assert "<p class=meta>Generated " in pages[0]  # the one line allowed to differ, removed before comparing
    assert _without_generated_line(pages[0]) == _without_generated_line(pages[1])
