"""Issue 13 through the Engine: the generated code and the interpreter agree, every store keeps the wallet and
the partner figures (across a reopen and a snapshot), and states stored before the wallet existed read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

import poletti
from poletti.engine.serial import converter
from poletti.engine.state import CustomerState
from poletti.engine.stores import SQLiteStore

RULES = """\
reward ten_off "10 % off" value 10% max 20 EUR
reward coffee "Coffee" value 2.50 EUR costs 50 points
earn 1 point per EUR
at 100 points grant ten_off
tier vip when spend_30d >= 150
perk early_access "Early access" when tier >= vip
partner kulma "Kahvila Kulma" pays 0.02 EUR per point
rate SEK 0.087 EUR
"""
EXPIRING = RULES.replace("max 20 EUR", "max 20 EUR expires after 30d")


def _e(id: str, at: str, customer: str = "c1", type: str = "purchase", **fields: Any) -> dict[str, Any]:
    return {"id": id, "type": type, "customer": customer, "at": at, **fields}


EVENTS = [
    _e("p1", "2026-01-05T10:00:00+00:00", amount="230.00"),  # 230 → 2 × ten_off, 30 left; vip
    _e("p2", "2026-01-06T10:00:00+00:00", amount="80.00", rewards_used=["ten_off"]),  # 8.00 used; 110 → 1 more, 10
    _e("p3", "2026-01-07T10:00:00+00:00", amount="500", currency="SEK", partner="kulma"),  # 43.50 EUR → 43; 53
    _e("x1", "2026-01-08T10:00:00+00:00", type="redeem", reward="coffee", partner="kulma"),  # 53 − 50 = 3
    _e("p4", "2026-01-09T10:00:00+00:00", amount="250.00", rewards_used=["ten_off", "ten_off"]),  # 20.00 + 20.00
    _e("f1", "2026-01-10T10:00:00+00:00", type="refund", original="p3"),  # 43 reversed (kulma's)
]


def _run(text: str, store: Any = None, **options: Any) -> poletti.Engine:
    engine = poletti.Engine(poletti.compile(text), store, **options)
    for event in EVENTS:
        engine.process(event)
    engine.advance_to("2026-03-01")
    return engine


def _comparable(state: CustomerState) -> dict[str, Any]:
    data = converter.unstructure(state)
    data.pop("next_change_clock", None)
    data.pop("next_change_at", None)
    return data


@pytest.mark.parametrize("text", [RULES, EXPIRING], ids=["held-by-count", "expiring"])
def test_the_generated_code_and_the_interpreter_agree(text: str) -> None:
    generated = _run(text, explain=False, generated=True)
    interpreted = _run(text, explain=True)
    assert _comparable(generated.state("c1")) == _comparable(interpreted.state("c1"))


def test_hand_worked_standing() -> None:
    # p1 230 → 2 ten_off (200), 30; p2 uses one: 10 % of 80 = 8.00; +80 = 110 → 1 ten_off, 10.
    # p3 500 SEK × 0.087 = 43.50 EUR → 43 → 53, charged to kulma. x1 coffee at kulma: 3, credited 50.
    # p4 uses two: 10 % of 250 = 25.00 → max 20.00 each; +250 = 253 → 2 ten_off, 53.
    # f1 refunds p3 whole: 43 reversed → 10. kulma: issued 43 − 43 = 0, redeemed 50 → (0 − 50) × 0.02 = −1.00.
    # ten_off granted 2 + 1 + 2 = 5, used 3 → held 2. cost_used = 8.00 + 20.00 + 20.00 = 48.00.
    engine = _run(RULES)
    view = engine.customer("c1")
    assert view.points == 10
    assert {h.reward: h.count for h in view.held} == {"ten_off": 2, "coffee": 1}
    assert view.rewards_used == {"ten_off": 3}
    state = engine.state("c1")
    assert state.total_cost_used == 48_000_000
    assert state.partner_points == {"kulma": [43, 43, 50]}
    # spend_30d at 2026-03-01: everything has left the window → no tier → no perk.
    assert view.perks == {}


def test_sqlite_keeps_the_wallet_across_a_reopen_and_a_snapshot(tmp_path: Path) -> None:
    memory = _run(EXPIRING)
    path = str(tmp_path / "wallet.db")
    store = SQLiteStore(path)
    _run(EXPIRING, store)
    store.close()
    reopened = poletti.Engine(poletti.compile(EXPIRING), SQLiteStore(path))
    assert _comparable(reopened.state("c1")) == _comparable(memory.state("c1"))
    snapshot = str(tmp_path / "snap.db")
    memory.save(snapshot)
    restored = poletti.Engine.restore(poletti.compile(EXPIRING), snapshot)
    assert _comparable(restored.state("c1")) == _comparable(memory.state("c1"))
    # A duplicate of a purchase that used rewards is recognised after the reopen, a changed one is a conflict.
    assert reopened.process(EVENTS[1]).status == "duplicate"
    with pytest.raises(poletti.EventError, match="conflict"):
        reopened.process({**EVENTS[1], "rewards_used": []})


def test_a_state_stored_before_the_wallet_reads_back() -> None:
    engine = poletti.Engine(poletti.compile("reward gift value 2 EUR\nearn 1 point per EUR\nat 10 points grant gift\n"))
    engine.process(_e("p1", "2026-01-05T10:00:00+00:00", amount="25.00"))
    data = converter.unstructure(engine.state("c1"))
    for name in ("wallet", "rewards_used", "rewards_expired", "total_cost_used", "partner_points"):
        del data[name]  # what a row written before issue 13 holds
    # Rows written then hold each purchase as a dict of its fields (a list in today's order since issue 8),
    # without issue 13's partner.
    data["purchases"] = [dict(zip(("id", "at", "amount", "refunded", "points", "reversed"), purchase))
                         for purchase in data["purchases"]]
    state = converter.structure(json.loads(json.dumps(data)), CustomerState)
    assert state.wallet == () and state.rewards_used is None and state.total_cost_used == 0
    assert state.held("gift") == 2  # 25 points → 2 × gift, both held
    at = 1767607200 * 1_000_000  # 2026-01-05T10:00:00Z in µs
    assert state.purchase_records() == [("p1", at, 25_000_000, 0, 25, 0, None)]  # 25.00 EUR in micro-units, 25 points


def test_an_old_receipt_still_names_a_duplicate() -> None:
    # An event without issue 13's fields has the content key it always had: 9 fields. One that uses a reward
    # has one more: the (name, value) pairs of the optional fields it carries.
    from poletti.interpreter.events import EventReader, content_key

    reader = EventReader(poletti.compile(RULES).compiled.checked)
    assert len(content_key(reader.read(EVENTS[0]))) == 9
    with_reward = content_key(reader.read(EVENTS[1]))
    assert len(with_reward) == 10 and with_reward[9] == (("rewards_used", ("ten_off",)),)


def test_a_reward_held_before_its_program_gave_it_an_expiry_stays_usable(tmp_path: Path) -> None:
    # v1: gift never expires; c1 is granted one at p1 (20 ≥ 10). v2 adds `expires after 30d` on the same store:
    # the v1 gift has no end (held until used); p2 (10) grants one that ends 30 days later. p3 uses a gift: the
    # one that ends (the v2 one) goes first, and the v1 gift is still held after the v2 one would have ended.
    v1 = "reward gift value 2 EUR\nearn 1 point per EUR\nat 10 points grant gift\n"
    v2 = v1.replace("value 2 EUR", "value 2 EUR expires after 30d")
    path = str(tmp_path / "changed.db")
    old = poletti.Engine(poletti.compile(v1), SQLiteStore(path))
    old.process(_e("p1", "2026-01-05T10:00:00+00:00", amount="10.00"))
    old.store.close()
    new = poletti.Engine(poletti.compile(v2), SQLiteStore(path))
    new.process(_e("p2", "2026-01-06T10:00:00+00:00", amount="10.00"))
    held = new.customer("c1").held
    assert [(h.reward, h.count, h.until is None) for h in held] == [("gift", 1, True), ("gift", 1, False)]
    new.process(_e("p3", "2026-01-07T10:00:00+00:00", amount="1.00", rewards_used=["gift"]))
    new.advance_to("2026-03-01")
    assert [(h.reward, h.count, h.until) for h in new.customer("c1").held] == [("gift", 1, None)]
    assert new.state("c1").rewards_expired is None


def test_a_program_without_partners_reads_partner_as_it_always_did() -> None:
    # Before issue 13 `partner` was any other field: an attribute when declared, else ignored. A program that
    # declares no partner keeps that reading (p1: 10 + 5 for partner "x"); one that declares partners may not
    # also declare the attribute (E102).
    engine = poletti.Engine(poletti.compile(
        'attribute partner: text\nearn 1 point per EUR\nearn 5 points per purchase if event.partner == "x"\n'))
    assert engine.process(_e("p1", "2026-01-05T10:00:00+00:00", amount="10.00", partner="x")).earned == 15
    plain = poletti.Engine(poletti.compile("earn 1 point per EUR\n"))
    assert plain.process(_e("p1", "2026-01-05T10:00:00+00:00", amount="10.00", partner="anyone")).earned == 10
    with pytest.raises(poletti.CompileError) as err:
        poletti.compile("attribute partner: text\npartner k pays 0.01 EUR per point\nearn 1 point per EUR\n")
    assert [d.code for d in err.value.diagnostics] == ["E102"]


def test_held_rewards_when_none_was_used_or_ends() -> None:
    """The view's common case (no wallet entries, nothing used or expired): every grant held, by name."""
    engine = poletti.Engine(poletti.compile('reward mug "Mug"\nreward cake\nearn 1 point per EUR\n'
                                            "at 50 points grant mug\nevery 2 purchases grant cake\n"))
    engine.process(_e("p1", "2026-01-05T10:00:00+00:00", amount="120"))  # 120 → 2 mugs, 20 left
    engine.process(_e("p2", "2026-01-06T10:00:00+00:00", amount="10"))  # 30; the 2nd purchase: a cake
    assert [(h.reward, h.label, h.count, h.until) for h in engine.customer("c1").held] == [
        ("cake", None, 1, None), ("mug", "Mug", 2, None)]
    assert engine.customer("c2").held == ()


def test_a_used_reward_that_expired_is_refused_with_one_reason_whenever_the_clock_moved() -> None:
    """The reason depends on the state at the purchase's instant only, not on whether the host already moved
    the clock past the expiry (a simulation does, at month ends): before, it said "expired" or "holds no"
    depending on it."""
    program = poletti.compile('reward bag "Bag" expires after 7d\non visit grant bag\n')
    reasons = []
    for advance in (None, "2027-01-15T00:00:00+00:00"):
        engine = poletti.Engine(program)
        engine.process(_e("v1", "2027-01-01T10:00:00+00:00", type="visit"))  # a bag, held until 01-08 10:00
        if advance:
            engine.advance_to(advance)
        with pytest.raises(poletti.EventError) as refused:
            engine.process(_e("p1", "2027-01-20T10:00:00+00:00", amount="5", rewards_used=["bag"]))
        reasons.append(refused.value.reason)
    assert reasons == ["cannot use reward 'bag': the customer holds no bag (1 expired by 2027-01-20T10:00:00+00:00)"] * 2
