"""examples/birthday_voucher/ and examples/partner_network/: the figures their READMEs work out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import poletti
from poletti.cli import cli
from poletti.dsl.formatter import format_text

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
VOUCHER, NETWORK = EXAMPLES / "birthday_voucher", EXAMPLES / "partner_network"


@pytest.mark.parametrize("folder", [VOUCHER, NETWORK], ids=lambda p: p.name)
def test_the_rules_check_clean_and_are_formatted(folder: Path) -> None:
    text = (folder / "rules.loyalty").read_text(encoding="utf-8")
    assert poletti.diagnose(text, "rules.loyalty") == ()
    assert format_text(text).text == text


def _summary(folder: Path, history: str) -> dict:
    result = CliRunner().invoke(cli, ["simulate", str(folder / "rules.loyalty"), str(folder / history), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_birthday_voucher_as_worked_in_its_readme() -> None:
    summary = _summary(VOUCHER, "history.jsonl")
    # Aino: 7.34 EUR used (15 % of 48.90 = 7.335 → 7.34); Veikko: 15 % of 90.00 = 13.50 → max 10.00; his second
    # purchase (at the voucher's end) is refused.
    assert summary["rejected"] == 1
    assert summary["rewards"]["birthday_voucher"] == 2
    assert summary["rewards_used"]["birthday_voucher"] == 2
    assert summary["rewards_expired"]["birthday_voucher"] == 0
    assert summary["rewards_held"]["birthday_voucher"] == 0
    assert (summary["cost"], summary["cost_used"], summary["cost_unknown"]) == ("0.00", "17.34", ["birthday_voucher"])
    assert summary["perks"] == {"free_delivery": 1}
    assert summary["tiers"] == {"friend": 1, "none": 1}
    # Aino 48 + 120 + 95 = 263, Veikko 90.
    assert summary["points"]["outstanding"] == 263 + 90


def test_the_partner_network_as_worked_in_its_readme() -> None:
    summary = _summary(NETWORK, "history.csv")
    assert summary["rejected"] == 1  # 20 USD at the bookshop: no rate
    assert summary["partners"] == {
        "kulma": {"points_issued": 78, "points_reversed": 16, "points_redeemed": 100, "settlement": "-0.44"},
        "kirja": {"points_issued": 77, "points_reversed": 0, "points_redeemed": 0, "settlement": "1.16"},
    }
    # Liisa 64 + 38 + 12 − 100 − 16 = −2; Erik 39 + 30 = 69.
    assert summary["points"]["outstanding"] == -2 + 69


def test_explain_says_why_veikko_was_refused() -> None:
    result = CliRunner().invoke(cli, ["explain", str(VOUCHER / "rules.loyalty"), str(VOUCHER / "history.jsonl"),
                                      "--customer", "veikko"])
    assert result.exit_code == 0, result.output
    assert "used reward birthday_voucher (worth 10.00 EUR: 15% of 90.00 EUR, to the cent, capped by its max" in \
        result.output
    assert "cannot use reward 'birthday_voucher': the customer holds no birthday_voucher" in result.output
    assert "lacks perk free_delivery: tier >= friend does not hold (tier is none)" in result.output
