"""examples/b2b_account/: a company account with several contacts (``points pooled by account``).

The history's figures are worked by hand in examples/b2b_account/README.md. A pooled program's events
change a contact and their account at once, so every simulate path replays it event at a time (the
exact path): the summaries must agree byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import poletti
from poletti.cli import cli
from poletti.dsl.formatter import format_text

B2B = Path(__file__).resolve().parent.parent / "examples" / "b2b_account"
RULES, HISTORY = B2B / "rules.loyalty", B2B / "history.csv"


def simulate(*options: str) -> str:
    result = CliRunner().invoke(cli, ["simulate", str(RULES), str(HISTORY), "--json", *options])
    assert result.exit_code == 0, result.output
    return result.output


def test_rules_check_clean_and_are_formatted() -> None:
    text = RULES.read_text(encoding="utf-8")
    assert poletti.diagnose(text, RULES.name) == ()
    assert format_text(text).text == text


def test_the_history_gives_the_hand_worked_summary_on_every_path() -> None:
    outputs = {options: simulate(*options) for options in ((), ("--workers", "2"), ("--sequential",))}
    assert len(set(outputs.values())) == 1
    summary = json.loads(outputs[()])
    # README.md: a7 (Matti buying for beta) is rejected; the customers are the three contacts.
    assert (summary["events"], summary["rejected"], summary["customers"]) == (8, 1, 3)
    # earned 320 + 50 + 200 + 200 + 300 + 80 = 1150; the service day took 1000; a4's refund reversed 200;
    # outstanding: acme −130, beta 80 → −50.
    assert summary["points"] == {"earned": 1150, "spent": 1000, "expired": 0, "reversed": 200, "outstanding": -50}
    assert summary["rewards"] == {"service_day": 1} and summary["cost"] == "150.00"
    assert summary["tiers"] == {"partner": 0, "none": 3}


def test_contacts_and_the_account_show_the_pool() -> None:
    engine = poletti.Engine(poletti.load(RULES))
    events = [
        {"id": "a1", "type": "purchase", "customer": "liisa", "account": "acme", "amount": "3200.00",
         "at": "2026-02-02T10:00:00+02:00"},
        {"id": "a2", "type": "feedback", "customer": "matti", "account": "acme", "at": "2026-02-03T11:00:00+02:00"},
        {"id": "a4", "type": "purchase", "customer": "matti", "amount": "2000.00", "at": "2026-03-02T14:00:00+02:00"},
    ]
    for event in events:
        engine.process(event)
    # 320 + 50 + 200 (a4 earns with the tier it found: none) = 570; account spend 5200 ≥ 5000 → partner.
    for contact in ("liisa", "matti"):
        view = engine.customer(contact)
        assert (view.points, view.tier) == (570, "partner")
    account = engine.account("acme")
    assert (account.points, account.tier) == (570, "partner")
    assert engine.account("nobody").points == 0


@pytest.mark.parametrize("text, code", [
    ("earn x2 if account.spend_30d > 100\nearn 1 point per EUR", "E150"),
    ("points pooled by account\nearn 1 point per EUR if account.points > 1", "E151"),
    ("points pooled by account\ntier gold when spend_12m > 1000", "E152"),
    ("points pooled by account\nreferral grant 1 point to both when friend buys", "E153"),
    ("points pooled by account\npoints pooled by account", "E120"),
])
def test_misuse_has_a_registered_code(text: str, code: str) -> None:
    assert code in [d.code for d in poletti.diagnose(text, "rules.loyalty")]


def test_pooling_round_trips_through_the_formatter() -> None:
    text = "points pooled by account\ntier gold when account.spend_12m >= 5000\n"
    assert format_text(text).text == text


def test_an_account_key_is_not_a_customer_id() -> None:
    engine = poletti.Engine(poletti.load(RULES))
    with pytest.raises(poletti.EventError, match="kept for accounts"):
        engine.process({"id": "x", "type": "feedback", "customer": "@account:acme", "at": "2026-01-01T00:00:00Z"})


def test_a_generated_history_names_accounts_and_every_path_agrees(tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    result = CliRunner().invoke(cli, ["generate", "--customers", "24", "--days", "60", "--seed", "5",
                                      "--rules", str(RULES), "--out", str(history)])
    assert result.exit_code == 0, result.output
    rows = history.read_text(encoding="utf-8").splitlines()
    assert rows[0].endswith(",account")
    # Three contacts in a row share an account: c0001–c0003 are a0001's.
    contacts = {row.split(",")[2]: row.rsplit(",", 1)[1] for row in rows[1:]}
    assert len(set(contacts.values())) == 8 and contacts["c0001"] == contacts["c0003"] == "a0001" != contacts["c0004"]
    outputs = {options: CliRunner().invoke(cli, ["simulate", str(RULES), str(history), "--json", *options]).output
               for options in ((), ("--workers", "2"), ("--sequential",))}
    assert len(set(outputs.values())) == 1
    assert json.loads(outputs[()])["customers"] == 24
