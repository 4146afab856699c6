"""Referral rules in the front end: parse, format (round trip), check (docs/language.md "Referrals")."""

from __future__ import annotations

import pytest

import poletti
from poletti.dsl.formatter import format_text
from poletti.dsl.parser import parse


def codes(text: str) -> list[str]:
    return [d.code for d in poletti.diagnose(text, "rules.loyalty")]


@pytest.mark.parametrize("written, canonical", [
    ("referral grant ten_off to both when friend buys",
     "referral grant ten_off to both when friend buys"),
    ("referral   grant 200 points to referrer when friend buys limit 5 times per year if event.amount >= 20 EUR",
     "referral grant 200 points to referrer when friend buys if event.amount >= 20 EUR limit 5 times per year"),
    ("referral grant 1 point to friend when friend buys during 2026-12-01..2026-12-24",
     "referral grant 1 point to friend when friend buys during 2026-12-01..2026-12-24"),
])
def test_referral_rules_format_and_round_trip(written: str, canonical: str) -> None:
    text = "reward ten_off value 10 EUR\n" + written + "\n"
    formatted = format_text(text).text
    assert formatted == "reward ten_off value 10 EUR\n" + canonical + "\n"
    assert format_text(formatted).text == formatted
    first, second = parse(formatted).rule_file.statements[1], parse(text).rule_file.statements[1]
    assert (type(first), first.side, first.target.__class__) == (type(second), second.side, second.target.__class__)


def test_a_referral_rule_checks_clean() -> None:
    assert codes("reward ten_off value 10 EUR\nreferral grant ten_off to both when friend buys") == []


def test_an_undeclared_reward_gets_the_usual_did_you_mean() -> None:
    diagnostics = poletti.diagnose("reward ten_off value 10 EUR\nreferral grant ten_of to both when friend buys",
                                   "rules.loyalty")
    implicit = [d for d in diagnostics if d.code == "W201"]
    assert implicit and any("did you mean 'ten_off'" in note for note in implicit[0].notes)


@pytest.mark.parametrize("option", ["once", "limit 100 points per year"])
def test_once_and_points_caps_are_refused(option: str) -> None:
    assert "E115" in codes(f"referral grant 10 points to referrer when friend buys {option}")


def test_a_side_that_is_not_one_of_the_three_is_a_syntax_error() -> None:
    diagnostics = poletti.diagnose("referral grant 10 points to nobody when friend buys", "rules.loyalty")
    assert diagnostics[0].code == "P001"
    assert "'both', 'friend' or 'referrer'" in " ".join(diagnostics[0].notes)


def test_a_condition_can_read_the_friends_purchase() -> None:
    assert codes("referral grant 10 points to both when friend buys if event.amount >= 20 EUR and spend_30d > 10") == []
