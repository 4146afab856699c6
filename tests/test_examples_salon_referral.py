"""examples/salon_referral/: the salon's referral program, its hand-worked history, and referral parity.

The history's figures are worked by hand in examples/salon_referral/README.md; every way of
simulating it (one process, forked workers, the event-at-a-time replay) must give them, and must
agree byte for byte on a generated history with many referrals (customers joined by a referral are
replayed together, in one shard: ``columns.arrange``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import poletti
from poletti.cli import cli
from poletti.dsl.formatter import format_text

SALON = Path(__file__).resolve().parent.parent / "examples" / "salon_referral"
RULES, HISTORY = SALON / "rules.loyalty", SALON / "history.csv"
PATHS = ([], ["--workers", "2"], ["--sequential"])


def simulate(rules: Path, history: Path, *options: str) -> str:
    result = CliRunner().invoke(cli, ["simulate", str(rules), str(history), "--json", *options])
    assert result.exit_code == 0, result.output
    return result.output


def test_rules_check_clean_and_are_formatted() -> None:
    text = RULES.read_text(encoding="utf-8")
    assert poletti.diagnose(text, RULES.name) == ()
    assert format_text(text).text == text


@pytest.mark.parametrize("options", PATHS, ids=lambda o: " ".join(o) or "default")
def test_the_history_gives_the_hand_worked_summary(options: list[str]) -> None:
    summary = json.loads(simulate(RULES, HISTORY, *options))
    # README.md: r2 (Bea referred twice) and r3 (Aino already a customer) are rejected.
    assert (summary["events"], summary["rejected"], summary["customers"]) == (11, 2, 3)
    # Earned: Aino 60 + 80 = 140; Bea 25 + 70 = 95; Cai 45 + 40 = 85 → 320. Cai's refund reverses
    # floor(45 × 45 ÷ 45) = 45. Outstanding: 140 + 95 + (85 − 45) = 275.
    assert summary["points"] == {"earned": 320, "spent": 0, "expired": 0, "reversed": 45, "outstanding": 275}
    # Vouchers: Bea's b2 pays Bea and Aino; Cai's c1 pays Cai and Aino; c2 pays nothing → 4 granted.
    assert summary["rewards"] == {"next_visit_off": 4}
    # A percentage has no worth until used: cost 0.00 with the voucher in cost_unknown; v1 uses one on
    # 80.00 → 10 % = 8.00 (under the 20 EUR max). Nothing ends before 12 April: 3 still held.
    assert (summary["cost"], summary["cost_unknown"], summary["cost_used"]) == ("0.00", ["next_visit_off"], "8.00")
    assert (summary["rewards_used"], summary["rewards_expired"], summary["rewards_held"]) == (
        {"next_visit_off": 1}, {"next_visit_off": 0}, {"next_visit_off": 3})


def test_the_engine_tells_who_earned_what_for_whom() -> None:
    engine = poletti.Engine(poletti.load(RULES))
    engine.process({"id": "r1", "type": "referral", "customer": "aino", "friend": "bea",
                    "at": "2026-03-02T10:00:00+02:00"})
    outcome = engine.process({"id": "b2", "type": "purchase", "customer": "bea", "amount": "70.00",
                              "at": "2026-03-20T12:00:00+02:00"})
    assert outcome.granted == {"next_visit_off": 1}
    (referrer,) = outcome.linked
    assert (referrer.customer, referrer.granted) == ("aino", {"next_visit_off": 1})
    text = outcome.explain()
    assert "as a friend referred by aino" in text and "for referring bea, whose purchase qualified" in text
    assert outcome.to_dict()["linked"][0]["customer"] == "aino"
    assert engine.customer("aino").rewards == {"next_visit_off": 1}


PARITY_RULES = """
reward coffee "Coffee" value 3 EUR
reward welcome "Welcome gift" value 5 EUR
earn 1 point per EUR
at 60 points grant coffee
referral grant 25 points to both when friend buys limit 2 times per month
referral grant welcome to friend when friend buys if event.amount >= 5 EUR
points expire after 2m
"""


def test_every_replay_path_agrees_on_a_generated_history_with_referrals(tmp_path: Path) -> None:
    rules = tmp_path / "rules.loyalty"
    rules.write_text(PARITY_RULES, encoding="utf-8")
    history = tmp_path / "history.csv"
    result = CliRunner().invoke(cli, ["generate", "--customers", "400", "--days", "150", "--seed", "11",
                                      "--rules", str(rules), "--out", str(history)])
    assert result.exit_code == 0, result.output
    assert "referral" in history.read_text(encoding="utf-8")
    outputs = {" ".join(options) or "default": simulate(rules, history, *options)
               for options in (*PATHS, ["--workers", "3"])}
    assert len(set(outputs.values())) == 1, outputs.keys()
    summary = json.loads(outputs["default"])
    assert summary["rewards"]["welcome"] > 0  # referrals paid: the parity is about something


def test_explain_tells_the_referrers_story_with_the_payouts_their_friends_brought() -> None:
    result = CliRunner().invoke(cli, ["explain", str(RULES), str(HISTORY), "--customer", "aino"])
    assert result.exit_code == 0, result.output
    text = result.output
    # Both payouts (b2 by Bea, c1 by Cai) appear in Aino's story, and the rejected second referral of Bea.
    assert "referral-payout b2 (customer aino)" in text and "for referring bea" in text
    assert "referral-payout c1 (customer aino)" in text and "for referring cai" in text
    assert "already referred by 'aino'" in text
    assert "next_visit_off × 2" in text
