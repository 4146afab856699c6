"""Stores: the same figures in every store, a ledger that accounts for every point, and what survives.

1. Parity: random programs and histories (``rich_programs``) through the
   memory store (generated code), the memory store with a ledger (the
   interpreter) and an SQLite store give the same outcomes, views and
   states; the two ledgers are entry for entry the same.
2. The ledger accounts for everything: after every step, each customer's
   last entry shows their balance and pending points, and the entries add
   up to the state's totals (earned, spent and redeemed, expired, taken
   back by refunds, rewards).
3. What SQLite keeps across a reopen (receipts: duplicates and conflicts,
   the clock, the programs), and what it refuses to open.
4. Snapshots of the memory store: save, restore, carry on as if nothing happened.
"""

from __future__ import annotations

import json
import sqlite3
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings

import poletti
from poletti.engine.serial import converter
from poletti.engine.state import REFUND_NOTHING_LEFT, REFUND_TOO_MUCH, REFUND_UNKNOWN, CustomerState
from poletti.engine.stores import MemoryStore, SQLiteStore, StoreError
from rich_programs import histories, programs
from store_checks import check_books, step_through

PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@PROPERTY
@given(text=programs(), steps=histories())
def test_every_store_gives_the_same_figures_and_the_ledgers_agree(text: str, steps: list[dict[str, Any]],
                                                                   tmp_path_factory: Any) -> None:
    program = poletti.compile(text)
    engines = [poletti.Engine(program, explain=False),
               poletti.Engine(program, MemoryStore(ledger=True), explain=False),
               poletti.Engine(program, SQLiteStore(str(tmp_path_factory.mktemp("s") / "store.db")), explain=False)]
    assert engines[0].runtime is not None and engines[1].runtime is None
    for number, step in enumerate(steps):
        where = f"step {number} {step}\nprogram:\n{text}"
        results = [step_through(engine, step) for engine in engines]
        assert results[0] == results[1] == results[2], where
        customers = list(engines[0].customers())
        for engine in engines[1:]:
            assert list(engine.customers()) == customers, where
        for customer in customers:
            views = [engine.customer(customer) for engine in engines]
            assert views[0] == views[1] == views[2], f"{where}: view of {customer}"
            states = [converter.unstructure(engine.state(customer)) for engine in engines]
            assert states[0] == states[1] == states[2], f"{where}: state of {customer}"
            assert engines[1].history(customer) == engines[2].history(customer), f"{where}: ledger of {customer}"
        check_books(engines[1], where)
    engines[2].store.close()


# ------------------------------------------------------------------ SQLite

RULES = """reward gift "Gift" costs 30 points
reward mug "Mug"
earn 1 point per EUR
at 100 points grant mug
points expire after 60d
"""


def purchase(event_id: str, at: str, amount: str, customer: str = "c1") -> dict[str, Any]:
    return {"id": event_id, "type": "purchase", "customer": customer, "at": at, "amount": amount}


def test_sqlite_keeps_everything_across_a_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "loyalty.db")
    program = poletti.compile(RULES)
    first = poletti.Engine(program, SQLiteStore(path))
    first.process(purchase("p1", "2026-01-01T10:00:00Z", "60"))
    first.process(purchase("p2", "2026-01-02T10:00:00Z", "50"))  # 110 → a mug, 10 left
    first.advance_to("2026-01-10")
    first.store.close()

    again = poletti.Engine(program, SQLiteStore(path))
    view = again.customer("c1")
    assert (view.points, view.lifetime_points, view.rewards) == (10, 110, {"mug": 1})
    duplicate = again.process(purchase("p1", "2026-01-01T12:00:00+02:00", "60.00"))  # the same content
    assert (duplicate.status, duplicate.points, duplicate.lifetime_points) == ("duplicate", 10, 110)
    with pytest.raises(poletti.EventError) as caught:
        again.process(purchase("p1", "2026-01-01T10:00:00Z", "61"))
    assert "conflict" in caught.value.reason and "amount 60.00 then, 61.00 now" in caught.value.reason
    with pytest.raises(poletti.EventError) as caught:  # the clock reached 2026-01-10 before the reopen
        again.process(purchase("p9", "2026-01-05T10:00:00Z", "5"))
    assert "clock was already advanced to 2026-01-10" in caught.value.reason
    # The lots expire 60 days on: p1's 60 points were spent first, p2's 10 left expire on 3 March.
    again.advance_to("2026-04-01")
    kinds = [(e.event_id, e.kind, e.points, e.balance) for e in again.history("c1")]
    assert kinds == [("p1", "earn", 60, 60), ("p2", "earn", 50, 110), ("p2", "spend", 100, 10),
                     ("p2", "reward", 0, 10), (None, "expire", 10, 0)]
    again.store.close()


def test_a_changed_program_is_recorded_and_entries_name_theirs(tmp_path: Path) -> None:
    path = str(tmp_path / "loyalty.db")
    old, new = poletti.compile(RULES), poletti.compile(RULES.replace("earn 1 point", "earn 2 points"))
    first = poletti.Engine(old, SQLiteStore(path))
    first.process(purchase("p1", "2026-01-01T10:00:00Z", "10"))
    first.store.close()
    second = poletti.Engine(new, SQLiteStore(path))
    second.process(purchase("p2", "2026-01-02T10:00:00Z", "10"))
    programs_run = second.store.programs()
    assert [digest for digest, _, _ in programs_run] == [first.digest, second.digest]
    assert programs_run[1][2] == 2  # the new program's first entry is the second of the ledger
    assert [(e.event_id, e.points, e.program) for e in second.history("c1")] == [
        ("p1", 10, first.digest), ("p2", 20, second.digest)]
    second.store.close()
    # The same program again is no change.
    poletti.Engine(new, SQLiteStore(path)).store.close()
    assert len(SQLiteStore(path).programs()) == 2


def test_sqlite_refuses_what_is_not_its_own(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE orders (id INTEGER)")
    with pytest.raises(StoreError, match="not a poletti store"):
        SQLiteStore(str(other))
    newer = tmp_path / "newer.db"
    SQLiteStore(str(newer)).close()
    with sqlite3.connect(newer) as connection:
        connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        SQLiteStore(str(newer))
    text = tmp_path / "text.db"
    text.write_text("not a database at all, just text " * 100, encoding="utf-8")
    with pytest.raises(StoreError):
        SQLiteStore(str(text))


def test_a_rejected_event_leaves_nothing_in_the_database(tmp_path: Path) -> None:
    path = str(tmp_path / "loyalty.db")
    engine = poletti.Engine(poletti.compile(RULES), SQLiteStore(path))
    engine.process(purchase("p1", "2026-01-01T10:00:00Z", "20"))
    with pytest.raises(poletti.EventError):
        engine.process({"id": "x1", "type": "redeem", "customer": "c1", "at": "2026-01-02T10:00:00Z",
                        "reward": "gift"})  # 20 points, the gift costs 30
    with sqlite3.connect(path) as connection:
        assert [row[0] for row in connection.execute("SELECT id FROM events ORDER BY rowid")] == ["p1"]
        assert connection.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 1
    engine.store.close()


# --------------------------------------------------------------- snapshots


@PROPERTY
@given(text=programs(), steps=histories())
def test_a_restored_snapshot_carries_on_as_the_original(text: str, steps: list[dict[str, Any]],
                                                        tmp_path_factory: Any) -> None:
    program = poletti.compile(text)
    original = poletti.Engine(program, MemoryStore(ledger=True), explain=False)
    half = len(steps) // 2
    for step in steps[:half]:
        step_through(original, step)
    path = str(tmp_path_factory.mktemp("snap") / "snapshot.db")
    original.save(path)
    restored = poletti.Engine.restore(program, path, explain=False)
    assert restored.store.keeps_ledger
    for step in steps[:half]:  # every event applied before the save is a duplicate after the restore
        if "advance_to" not in step and step_through(original, step) != [("rejected",)]:
            assert step_through(restored, step) == step_through(original, step)
    for number, step in enumerate(steps[half:]):
        assert step_through(restored, step) == step_through(original, step), f"step {half + number}"
    for customer in original.customers():
        assert restored.customer(customer) == original.customer(customer)
        assert restored.history(customer) == original.history(customer)


def test_save_replaces_a_snapshot_whole(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.db"
    engine = poletti.Engine(poletti.compile(RULES))
    engine.process(purchase("p1", "2026-01-01T10:00:00Z", "20"))
    engine.save(str(path))
    engine.process(purchase("p2", "2026-01-02T10:00:00Z", "30"))
    engine.save(str(path))
    back = poletti.Engine.restore(poletti.compile(RULES), str(path))
    assert back.customer("c1").points == 50
    assert not back.store.keeps_ledger  # as saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot.db"]  # nothing left beside it
    with pytest.raises(TypeError, match="keeps itself"):
        poletti.Engine(poletti.compile(RULES), SQLiteStore(str(tmp_path / "x.db"))).save(str(path))
    with pytest.raises(FileNotFoundError):
        poletti.Engine.restore(poletti.compile(RULES), str(tmp_path / "missing.db"))


# ----------------------------------------------------------- member views


def test_the_member_view_lists_lots_stamp_cards_and_next_rewards() -> None:
    program = poletti.compile("reward coffee \"Coffee\"\nearn 1 point per EUR\nat 100 points grant coffee\n"
                              "every 3 purchases grant 5 points\npoints pending for 7d\npoints expire after 30d\n")
    engine = poletti.Engine(program, explain=False)
    engine.process(purchase("p1", "2026-01-01T10:00:00Z", "40"))
    engine.process(purchase("p2", "2026-01-09T10:00:00Z", "25"))  # p1's 40 released on 8 January
    view = engine.customer("c1")
    # p1: 40 spendable (released 2026-01-08T10:00Z), expiring 2026-01-31T10:00Z; p2: 25 pending until 16 January.
    assert [(lot.points, lot.pending, lot.source) for lot in view.lots] == [(40, False, "p1"), (25, True, "p2")]
    assert view.lots[0].expires_at.isoformat() == "2026-01-31T10:00:00+00:00"
    assert view.lots[1].available_at.isoformat() == "2026-01-16T10:00:00+00:00"
    assert [(card.stamps, card.every, card.total) for card in view.stamp_cards] == [(2, 3, 2)]
    assert [(item.threshold, item.needed, item.target) for item in view.next_rewards] == [(100, 60, "coffee")]
    data = json.loads(json.dumps(view.to_dict()))
    assert data["lots"][1]["available_at"] == "2026-01-16T10:00:00+00:00" and data["points"] == 40
    assert attrs.asdict(view)["id"] == "c1"


def test_a_state_stored_with_the_old_next_change_memo_reads_back_and_carries_on() -> None:
    """Before this release a saved state carried ``next_change_memo`` = [clock, next change]; it is only a
    cache, so such a state reads back with the next change unknown (worked out again), nothing else lost."""
    program = poletti.compile(RULES)
    engine = poletti.Engine(program)
    engine.process(purchase("p1", "2026-01-01T10:00:00Z", "60"))
    stored = converter.unstructure(engine.state("c1"))
    clock = stored["clock"]
    del stored["next_change_clock"], stored["next_change_at"]
    stored["next_change_memo"] = [clock, clock + 1]  # a wrong next change: it must not be believed
    state = converter.structure(stored, type(engine.state("c1")))
    assert (state.next_change_clock, state.next_change_at, state.clock) == (None, None, clock)
    assert state.ledger.balance == 60
    restored = poletti.Engine(program)
    restored.store.save(state, None)
    restored.process(purchase("p2", "2026-01-02T10:00:00Z", "50"))  # 110 → a mug, 10 left
    view = restored.customer("c1")
    assert (view.points, view.lifetime_points, view.rewards) == (10, 110, {"mug": 1})


TIERED = """earn 1 point per EUR
tier silver when spend_30d > 50 keep 30d
tier gold when spend_30d > 100
"""


def test_a_state_stored_with_purchase_dicts_and_tier_lists_reads_back_and_carries_on() -> None:
    """Before 7987a83 a saved state held each purchase as a dict of its fields and the tiers' flags and keep
    ends as lists, and before this round each window exit as a (leaves at, index) pair; such a state reads back
    as today's tuples and ints, and refunds, window exits and keeps go on."""
    program = poletti.compile(TIERED)
    engine = poletti.Engine(program)
    engine.process(purchase("p1", "2026-01-01T10:00:00Z", "120"))  # 120 points; spend_30d 120: gold
    stored = converter.unstructure(engine.state("c1"))
    stored["purchases"] = [dict(zip(("id", "at", "amount", "refunded", "points", "reversed", "partner"), record))
                           for record in stored["purchases"]]
    stored["tier_held"], stored["tier_keep_until"] = list(stored["tier_held"]), list(stored["tier_keep_until"])
    bought = 1_767_261_600_000_000  # 2026-01-01T10:00:00Z in µs
    leaves = bought + 30 * 86_400_000_000  # p1 leaves the 30-day window at 2026-01-31T10:00Z
    assert [window["exits"] for window in stored["windows"]] == [[(leaves << 32) + 1]]  # index 0, + 1
    stored["windows"][0]["exits"] = [[leaves, 0]]  # as a state was stored before the exits became ints
    state = converter.structure(json.loads(json.dumps(stored)), type(engine.state("c1")))
    assert state.tier_held == (True, True) and state.tier_keep_until == (None, None)
    assert state.windows[0].exits == [(leaves << 32) + 1] and state.windows[0].spend == 120_000_000
    assert state.purchase_records() == [("p1", bought, 120_000_000, 0, 120, 0, None)]  # 120.00 EUR in micro-units
    restored = poletti.Engine(program)
    restored.store.save(state, None)
    # Half refunded: floor(120 × 60 ÷ 120) = 60 points back; spend_30d 60 — gold lost (no keep), silver holds.
    restored.process({"id": "r1", "type": "refund", "customer": "c1", "at": "2026-01-05T10:00:00Z",
                      "original": "p1", "amount": "60"})
    assert (restored.customer("c1").points, restored.customer("c1").tier) == (60, "silver")
    assert restored.state("c1").purchase_records() == [("p1", bought, 120_000_000, 60_000_000, 120, 60, None)]
    # p1 leaves the 30-day window at 2026-01-31T10:00Z: silver stops holding and is kept 30 days, to 03-02 10:00.
    restored.advance_to("2026-03-02T09:59:59Z")
    assert restored.customer("c1").tier == "silver"
    restored.advance_to("2026-03-02T10:00:00Z")
    assert restored.customer("c1").tier is None


def test_the_memory_store_schedule_follows_moves_and_lists_by_next_change() -> None:
    from poletti.engine.state import CustomerState

    store = MemoryStore()
    a, b, c, d, e = (CustomerState(name) for name in "abcde")
    store.save(a, 50)
    store.save(b, 30)
    store.save(c, 40)
    store.save(a, 10)  # earlier: a is queued again at 10
    store.save(b, 60)  # later: b keeps its entry at 30, which queues it again at 60 when it comes up
    store.save(c, None)  # nothing to come for c
    assert store.due(5) == []
    assert store.due(45) == ["a"]
    store.save(a, 70)  # a's change applied; its next one
    store.save(e, 80)
    store.save(d, 80)
    # A lower bound; here exact: b's entry, queued again at 60 when it came up. (a's first entry, at 50, was
    # never made: its move to 10 came before anything asked, and entries are made when ``due`` needs them.)
    assert store.next_due() == 60
    assert store.due(100) == ["b", "a", "d", "e"]  # by next change (60, 70, 80, 80), then id
    assert store.due(1000) == [] and store.next_due() is None


def test_the_memory_store_keeps_receipts_packed_and_gives_back_their_content() -> None:
    from poletti.engine.stores.base import content_dict, fingerprint

    store = MemoryStore()
    # An engine's key (it begins with its customer): a purchase with two items and an attribute, 12.50 USD at
    # 1997-01-01T05:04:17Z (852_095_057 s since the epoch).
    items = (("sku1", "music", 2, 3_500_000), ("sku2", None, 1, 5_500_000))
    key = ("c1", "purchase", 852_095_057_000_000, 12_500_000, items, None, None, None, (("channel", "app"),))
    store.record("p1", "c1", key)
    assert store._receipts["p1"].__class__ is bytes  # packed: nothing for the garbage collector to count
    receipt = store.receipt("p1")
    assert receipt is not None and receipt.customer == "c1" and receipt.fingerprint == fingerprint(key)
    assert receipt.content == content_dict(key)
    assert receipt.content["amount"] == "12.50" and receipt.content["items"][1] == {
        "sku": "sku2", "category": None, "quantity": 1, "price": "5.50"}
    # A key that does not begin with its customer, and one with a value marshal cannot pack, are kept as
    # they are and read back the same.
    other = ("c9", "visit", 0, None, (), None, None, None, ())
    store.record("v1", "c2", other)
    unpackable = ("c3", "visit", 0, None, (), None, None, None, (("weight", Fraction(1, 3)),))
    store.record("v2", "c3", unpackable)
    assert store.receipt("v1").customer == "c2" and store.receipt("v1").fingerprint == fingerprint(other)
    assert store.receipt("v2").customer == "c3" and store.receipt("v2").fingerprint == fingerprint(unpackable)
    assert store.receipt("nope") is None
    # A snapshot's contents hold (customer, key) whatever the form.
    receipts = store.contents()[2]
    assert receipts == {"p1": ("c1", key), "v1": ("c2", other), "v2": ("c3", unpackable)}


def test_refund_refusal_is_the_one_place_of_the_refund_rules() -> None:
    """``refund_refusal``: (index, what is left, why not), the rules both ``Stepper.check`` and the lane use."""
    state = CustomerState("c1")
    state.add_purchase("p1", 1_000, 10_000_000)  # 10.00
    state.add_purchase("p2", 2_000, 4_500_000)  # 4.50
    assert state.refund_refusal("p9", None) == (None, 0, REFUND_UNKNOWN)
    assert state.refund_refusal("p2", None) == (1, 4_500_000, None)  # the rest of it
    assert state.refund_refusal("p2", 4_500_000) == (1, 4_500_000, None)  # exactly what is left
    assert state.refund_refusal("p2", 4_500_001) == (1, 4_500_000, REFUND_TOO_MUCH)
    state.refund_purchase(0, 7_250_000)  # 10.00 - 7.25 = 2.75 left of p1
    assert state.refund_refusal("p1", 3_000_000) == (0, 2_750_000, REFUND_TOO_MUCH)
    state.refund_purchase(0, 2_750_000)
    assert state.refund_refusal("p1", None) == (0, 0, REFUND_NOTHING_LEFT)
    assert state.refund_refusal("p1", 1) == (0, 0, REFUND_NOTHING_LEFT)  # (nothing left is said first)


def test_purchases_are_kept_flat_and_read_back_as_records() -> None:
    """A state keeps its purchases' fields one after the other (no tuple per purchase, for the garbage
    collector); refunds find and change the right one, and the stored form stays one record per purchase."""
    program = poletti.compile(RULES)  # 1 point per EUR
    engine = poletti.Engine(program)
    engine.process(purchase("p1", "2026-01-01T10:00:00Z", "10"))
    engine.process(purchase("p2", "2026-01-01T11:00:00Z", "20.50"))
    engine.process(purchase("p3", "2026-01-01T12:00:00Z", "30"))
    # p2 refunded 10.25 of 20.50: floor(20 × 10.25 ÷ 20.50) = 10 points back.
    engine.process({"id": "r1", "type": "refund", "customer": "c1", "at": "2026-01-02T10:00:00Z",
                    "original": "p2", "amount": "10.25"})
    state = engine.state("c1")
    at = 1_767_261_600_000_000  # 2026-01-01T10:00:00Z in µs
    hour = 3_600_000_000
    expected = [("p1", at, 10_000_000, 0, 10, 0, None),
                ("p2", at + hour, 20_500_000, 10_250_000, 20, 10, None),
                ("p3", at + 2 * hour, 30_000_000, 0, 30, 0, None)]
    assert state.purchase_records() == expected
    assert state.purchase_count == 3 and len(state.purchases) == 3 * 7
    assert not any(isinstance(value, tuple) for value in state.purchases)
    assert (state.purchase_index("p2"), state.purchase_index("p9")) == (1, None)
    assert state.purchase("p3") == expected[2] and state.purchase_record(-1) == expected[2]
    assert state.purchase_net(1) == 10_250_000
    stored = json.loads(json.dumps(converter.unstructure(state)))
    assert stored["purchases"] == [list(record) for record in expected]
    back = converter.structure(stored, type(state))
    assert back.purchases == state.purchases and back.purchase_records() == expected
    assert engine.customer("c1").points == 10 + 20 + 30 - 10


def test_rewards_caps_and_once_memory_are_none_until_used_and_old_empty_dicts_read_back() -> None:
    """``rewards``, ``caps`` and ``last_grant`` stay None until something goes in them (one object fewer
    each per customer); states stored with them as empty dicts read back and carry on."""
    program = poletti.compile("earn 1 point per EUR\nat 50 points grant mug\n"
                              "on visit grant 5 points once limit 1 times per day\n")
    engine = poletti.Engine(program)
    engine.process(purchase("p1", "2026-01-01T10:00:00Z", "20"))
    state = engine.state("c1")
    assert (state.rewards, state.caps, state.last_grant, state.granted) == (None, None, None, {})
    assert engine.customer("c1").rewards == {}
    stored = converter.unstructure(state)
    stored.update(rewards={}, caps={}, last_grant={})  # as states were stored before
    restored = poletti.Engine(program)
    restored.store.save(converter.structure(json.loads(json.dumps(stored)), type(state)), None)
    restored.process({"id": "v1", "type": "visit", "customer": "c1", "at": "2026-01-01T12:00:00Z"})  # 25
    restored.process(purchase("p2", "2026-01-02T10:00:00Z", "30"))  # 55 → a mug, 5 left
    restored.process({"id": "v2", "type": "visit", "customer": "c1", "at": "2026-01-02T12:00:00Z"})  # once: no
    view = restored.customer("c1")
    assert (view.points, view.rewards) == (5, {"mug": 1})
    state = restored.state("c1")
    assert state.rewards == {"mug": 1} and len(state.last_grant) == 1 and len(state.caps) == 1


def test_what_a_state_keeps_for_the_collector_does_not_grow_with_its_purchases() -> None:
    """Purchases add no objects the garbage collector counts: as many are reachable from a state after one
    purchase as after a hundred (the tier's and window's own objects included)."""
    import gc

    HAS_GC = 1 << 14  # Py_TPFLAGS_HAVE_GC

    def tracked(state: Any) -> int:
        """Objects of a type the collector counts (tuples too: counted when made, untracked or not)."""
        seen: set[int] = set()
        todo = [state]
        while todo:
            item = todo.pop()
            if id(item) in seen or not type(item).__flags__ & HAS_GC or isinstance(item, type):
                continue
            seen.add(id(item))
            todo.extend(gc.get_referents(item))
        return len(seen)

    engine = poletti.Engine(poletti.compile(TIERED))
    engine.process(purchase("p0", "2026-01-01T10:00:00Z", "12.50"))
    one = tracked(engine.state("c1"))
    for day in range(1, 100):
        engine.process(purchase(f"p{day}", f"2026-01-01T10:{day // 60:02d}:{day % 60:02d}Z", "12.50"))
    assert engine.state("c1").purchase_count == 100
    assert tracked(engine.state("c1")) == one


@pytest.mark.parametrize("asked_before", [False, True])
def test_the_memory_store_lists_many_due_customers_in_order_after_moves(asked_before: bool) -> None:
    """Past a few hundred due at once ``due`` scans and sorts instead of popping one by one: the same list,
    by next change then id, with moved, dropped and re-queued customers handled as when it pops.

    ``asked_before``: ``next_due`` was asked first, which puts every entry in the heap (then ``due`` pops 256
    and scans the rest); otherwise the entries were never made and ``due`` reads them where they wait.
    """
    import random

    from poletti.engine.state import CustomerState

    rng = random.Random(8)
    store = MemoryStore()
    states = {f"c{n:04d}": CustomerState(f"c{n:04d}") for n in range(2000)}
    expected: dict[str, int | None] = {}
    for _ in range(5000):  # saves in random order: first entries, moves earlier and later, nothing to come
        name = rng.choice(list(states))
        instant = None if rng.random() < 0.1 else rng.randrange(0, 1000)
        store.save(states[name], instant)
        expected[name] = instant
    if asked_before:
        assert store.next_due() <= min(at for at in expected.values() if at is not None)  # (a lower bound)
    due = store.due(600)
    assert due == sorted((name for name, at in expected.items() if at is not None and at <= 600),
                         key=lambda name: (expected[name], name))
    assert len(due) > 256  # (the sorted path ran)
    assert store.due(600) == []
    rest = store.due(10_000)
    assert rest == sorted((name for name, at in expected.items() if at is not None and at > 600),
                          key=lambda name: (expected[name], name))


def test_a_window_is_its_heap_of_exits_and_is_kept_as_spend_count_and_exits() -> None:
    """``WindowTotals`` is a list (the heap of its exits) with ``spend`` and ``count``: compared on all three,
    stored as the {"spend", "count", "exits"} it was stored as when it was an attrs class, copied and pickled
    whole."""
    import copy
    import pickle

    from poletti.engine.state import WindowTotals

    window = WindowTotals(120_000_000, 1, [7 << 32 | 1])
    assert window.exits is window and window.exits == [(7 << 32) + 1]
    assert window == WindowTotals(120_000_000, 1, [(7 << 32) + 1])
    assert window != WindowTotals(120_000_000, 2, [(7 << 32) + 1])  # same exits, another count
    assert window != WindowTotals(100_000_000, 1, [(7 << 32) + 1])
    assert window != WindowTotals(120_000_000, 1, [])
    assert converter.unstructure(window) == {"spend": 120_000_000, "count": 1, "exits": [(7 << 32) + 1]}
    assert converter.structure({"spend": 120_000_000, "count": 1, "exits": [(7 << 32) + 1]}, WindowTotals) == window
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        again = pickle.loads(pickle.dumps(window, protocol))
        assert type(again) is WindowTotals and again == window
    deep = copy.deepcopy(window)
    deep.append(9)
    assert window.exits == [(7 << 32) + 1] and deep.spend == 120_000_000
    assert repr(window) == f"WindowTotals(spend=120000000, count=1, exits=[{(7 << 32) + 1}])"
