"""Tests for poletti.engine.ledger: FIFO lots, debt, pending points, expiry."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poletti.engine.ledger import (
    ExpiredLot,
    InsufficientPoints,
    Lot,
    PointsLedger,
    ReleasedLot,
)
from poletti.engine.timecalc import Duration, add
from instants import HEL, US, UTC, ts



JAN = ts("2026-01-01T10:00+02:00")
FEB = ts("2026-02-01T10:00+02:00")
MAR = ts("2026-03-01T10:00+02:00")
APR = ts("2026-04-01T10:00+03:00")


def remaining(ledger: PointsLedger) -> list[tuple[str, int]]:
    return [(lot.source, lot.points) for lot in ledger.lots]


def assert_identity(ledger: PointsLedger) -> None:
    assert (
        ledger.balance
        + ledger.pending
        + ledger.spent_total
        + ledger.expired_total
        + ledger.deducted_total
        == ledger.lifetime
    )


# -- FIFO ------------------------------------------------------------------------


def test_fifo_across_three_lots_with_partial_spends() -> None:
    ledger = PointsLedger()
    ledger.earn(100, JAN, None, None, "a")
    ledger.earn(50, FEB, None, None, "b")
    ledger.earn(30, MAR, None, None, "c")
    assert ledger.balance == 180 and ledger.lifetime == 180
    # Spend 120: all 100 of a, then 20 of b → b 30 left, c 30.
    ledger.spend(120, APR)
    assert remaining(ledger) == [("b", 30), ("c", 30)]
    # Spend 40: the 30 left of b, then 10 of c → c 20 left.
    ledger.spend(40, APR)
    assert remaining(ledger) == [("c", 20)]
    assert ledger.balance == 20
    assert ledger.spent_total == 160
    assert ledger.lifetime == 180  # spending never lowers lifetime
    # Spend exactly the rest: no empty lot stays behind.
    ledger.spend(20, APR)
    assert remaining(ledger) == [] and ledger.balance == 0
    assert_identity(ledger)


def test_fifo_orders_by_earn_time_not_call_order() -> None:
    ledger = PointsLedger()
    ledger.earn(10, MAR, source="march")
    ledger.earn(10, JAN, source="january")
    ledger.earn(10, FEB, source="february")
    # Oldest first: January's 10, then 5 of February's.
    ledger.spend(15, APR)
    assert remaining(ledger) == [("february", 5), ("march", 10)]


def test_fifo_ties_keep_earn_order() -> None:
    ledger = PointsLedger()
    for name in ("first", "second", "third"):
        ledger.earn(10, JAN, source=name)
    ledger.spend(15, FEB)
    assert remaining(ledger) == [("second", 5), ("third", 10)]


def test_fifo_in_dst_fold_orders_by_instant() -> None:
    # 25 Oct 2026, Helsinki repeats 03:00–03:59. 03:30 first pass (EEST) is
    # 00:30 UTC; 03:10 second pass (EET, fold=1) is 01:10 UTC, the later one,
    # though its wall clock reads earlier.
    later = datetime(2026, 10, 25, 3, 10, tzinfo=HEL, fold=1)
    earlier = datetime(2026, 10, 25, 3, 30, tzinfo=HEL)
    ledger = PointsLedger()
    ledger.earn(10, later, source="later")
    ledger.earn(10, earlier, source="earlier")
    assert remaining(ledger) == [("earlier", 10), ("later", 10)]
    assert all(lot.earned_at.tzinfo is UTC for lot in ledger.lots)


def test_spend_short_raises_and_changes_nothing() -> None:
    ledger = PointsLedger()
    ledger.earn(20, JAN, source="a")
    before = ledger.copy()
    with pytest.raises(InsufficientPoints) as info:
        ledger.spend(21, FEB)
    assert (info.value.requested, info.value.available) == (21, 20)
    assert ledger == before


def test_spend_zero_is_a_no_op_unless_in_debt() -> None:
    ledger = PointsLedger()
    ledger.spend(0, JAN)
    assert ledger == PointsLedger()
    ledger.deduct(5, JAN)
    # Balance −5: even 0 points is not covered, so spend never leaves a debt behind.
    with pytest.raises(InsufficientPoints):
        ledger.spend(0, JAN)


# -- debt ------------------------------------------------------------------------


def test_debt_is_paid_by_later_earnings() -> None:
    ledger = PointsLedger()
    ledger.earn(50, JAN, source="a")
    # Refund reversal of 80: 50 from lot a, 30 recorded as debt.
    ledger.deduct(80, FEB)
    assert (ledger.balance, ledger.debt, ledger.lots) == (-30, 30, [])
    # Earn 20: all of it pays debt (30 → 10), no lot formed.
    ledger.earn(20, MAR, source="b")
    assert (ledger.balance, ledger.debt, ledger.lots) == (-10, 10, [])
    # Earn 25: 10 pays the rest of the debt, 15 form a lot.
    ledger.earn(25, APR, source="c")
    assert (ledger.balance, ledger.debt) == (15, 0)
    assert remaining(ledger) == [("c", 15)]
    # lifetime = 50 + 20 + 25 = 95: paying debt still counts as earned.
    assert ledger.lifetime == 95
    assert ledger.deducted_total == 80
    assert_identity(ledger)  # 15 + 80 = 95


def test_pending_earnings_pay_debt_first() -> None:
    ledger = PointsLedger()
    ledger.deduct(10, JAN)
    # 30 pending points: 10 pay the debt, 20 stay pending.
    ledger.earn(30, FEB, None, FEB + timedelta(days=14), "p")
    assert (ledger.balance, ledger.pending, ledger.debt) == (0, 20, 0)


def test_deduct_takes_available_then_pending_then_debt() -> None:
    ledger = PointsLedger()
    ledger.earn(40, JAN, source="available")
    ledger.earn(60, FEB, None, FEB + timedelta(days=14), "pending")
    # Deduct 50 on 5 Feb: 40 available, then 10 of the pending lot.
    ledger.deduct(50, FEB + timedelta(days=4))
    assert remaining(ledger) == [("pending", 50)]
    assert (ledger.balance, ledger.pending) == (0, 50)
    # Deduct 70: the 50 pending, then 20 of debt.
    ledger.deduct(70, FEB + timedelta(days=4))
    assert (ledger.balance, ledger.pending, ledger.debt, ledger.lots) == (-20, 0, 20, [])
    assert ledger.lifetime == 100
    assert_identity(ledger)  # −20 + 0 + 120 = 100


def test_deduct_takes_oldest_available_first() -> None:
    ledger = PointsLedger()
    ledger.earn(10, JAN, source="a")
    ledger.earn(10, FEB, source="b")
    ledger.earn(10, MAR, source="c")
    ledger.deduct(15, APR)
    assert remaining(ledger) == [("b", 5), ("c", 10)]


# -- pending ---------------------------------------------------------------------


def test_pending_points_become_spendable_at_available_at() -> None:
    ledger = PointsLedger()
    release = JAN + timedelta(days=14)
    ledger.earn(60, JAN, None, release, "purchase")
    # Counted in lifetime at once, but not spendable.
    assert (ledger.balance, ledger.pending, ledger.lifetime) == (0, 60, 60)
    with pytest.raises(InsufficientPoints):
        ledger.spend(1, JAN)
    assert ledger.next_change_after(JAN) == release
    assert ledger.release_pending_until(release - US) == []
    assert ledger.pending == 60
    released = ledger.release_pending_until(release)
    assert released == [ReleasedLot(60, JAN.astimezone(UTC), release.astimezone(UTC), "purchase")]
    assert (ledger.balance, ledger.pending) == (60, 0)
    assert ledger.next_change_after(JAN) is None
    # Released again: nothing more.
    assert ledger.release_pending_until(release + timedelta(days=1)) == []


def test_available_at_equal_to_at_is_spendable_at_once() -> None:
    ledger = PointsLedger()
    ledger.earn(5, JAN, None, JAN, "now")
    assert (ledger.balance, ledger.pending) == (5, 0)


def test_released_lot_keeps_its_fifo_place() -> None:
    ledger = PointsLedger()
    ledger.earn(10, JAN, None, JAN + timedelta(days=14), "pending_old")
    ledger.earn(10, JAN + timedelta(days=1), source="new")
    ledger.release_pending_until(JAN + timedelta(days=14))
    # pending_old was earned first, so it is spent first once released.
    ledger.spend(15, FEB)
    assert remaining(ledger) == [("new", 5)]


def test_release_results_are_in_release_order() -> None:
    ledger = PointsLedger()
    ledger.earn(1, JAN, None, JAN + timedelta(days=20), "slow")
    ledger.earn(2, JAN + timedelta(days=1), None, JAN + timedelta(days=2), "fast")
    released = ledger.release_pending_until(FEB)
    assert [item.source for item in released] == ["fast", "slow"]


# -- expiry ----------------------------------------------------------------------


def test_expiry_at_the_exact_instant() -> None:
    ledger = PointsLedger()
    earned = ts("2026-01-31T10:00+02:00")
    # points expire after 12m: 31 Jan 2026 10:00 EET + 12m = 31 Jan 2027 10:00 EET.
    expires = add(earned, Duration.parse("12m"), HEL)
    assert expires == ts("2027-01-31T10:00+02:00")
    ledger.earn(100, earned, expires, None, "jan")
    assert ledger.next_change_after(earned) == expires
    # One microsecond before: the lot is still there and can be spent.
    assert ledger.expire_until(expires - US) == []
    assert ledger.balance == 100
    probe = ledger.copy()
    probe.spend(100, expires - US)
    # At expires_at an event must see the lot gone: spending before the
    # expiry is applied is refused as stale …
    with pytest.raises(ValueError, match="expire_until"):
        ledger.copy().spend(1, expires)
    # … and applying it removes the whole lot at that instant.
    expired = ledger.expire_until(expires)
    assert expired == [ExpiredLot(100, earned.astimezone(UTC), expires, "jan", False)]
    assert (ledger.balance, ledger.expired_total, ledger.lifetime) == (0, 100, 100)
    assert ledger.next_change_after(earned) is None


def test_expiry_removes_the_remainder_after_partial_spend() -> None:
    ledger = PointsLedger()
    ledger.earn(100, JAN, JAN + timedelta(days=30), None, "a")
    ledger.earn(50, JAN + timedelta(days=5), FEB + timedelta(days=30), None, "b")
    ledger.spend(70, JAN + timedelta(days=10))  # a: 30 left
    # 31 Jan 10:00 EET: a (earned 1 Jan + 30 × 24 h) is gone, b stays.
    expired = ledger.expire_until(JAN + timedelta(days=30))
    assert [(e.source, e.points) for e in expired] == [("a", 30)]
    assert remaining(ledger) == [("b", 50)]
    assert ledger.balance == 50
    assert_identity(ledger)  # 50 + 70 + 30 = 150


def test_expiry_results_in_time_order() -> None:
    ledger = PointsLedger()
    # Earned first but expires last.
    ledger.earn(1, JAN, JAN + timedelta(days=60), None, "long")
    ledger.earn(2, FEB, FEB + timedelta(days=1), None, "short")
    ledger.earn(3, FEB, FEB + timedelta(days=1), None, "short_too")
    expired = ledger.expire_until(APR)
    assert [e.source for e in expired] == ["short", "short_too", "long"]
    assert ledger.expired_total == 6


def test_pending_lot_can_expire_before_release() -> None:
    ledger = PointsLedger()
    ledger.earn(10, JAN, JAN + timedelta(days=1), JAN + timedelta(days=14), "p")
    assert ledger.next_change_after(JAN) == JAN + timedelta(days=1)
    expired = ledger.expire_until(JAN + timedelta(days=1))
    assert expired[0].pending and expired[0].points == 10
    assert (ledger.pending, ledger.balance, ledger.expired_total) == (0, 0, 10)


def test_spend_refuses_unreleased_pending_due() -> None:
    ledger = PointsLedger()
    ledger.earn(10, JAN, None, JAN + timedelta(days=1), "p")
    with pytest.raises(ValueError, match="release_pending_until"):
        ledger.deduct(1, JAN + timedelta(days=1))
    assert ledger.has_changes_due(JAN + timedelta(days=1))
    assert not ledger.has_changes_due(JAN + timedelta(days=1) - US)


def test_next_change_after_is_strictly_after() -> None:
    ledger = PointsLedger()
    assert ledger.next_change_after(JAN) is None
    ledger.earn(1, JAN, MAR, FEB, "x")
    assert ledger.next_change_after(JAN) == FEB
    assert ledger.next_change_after(FEB) == MAR  # FEB itself is not "after FEB"
    assert ledger.next_change_after(MAR) is None
    ledger.earn(1, JAN, None, None, "forever")
    assert ledger.next_change_after(MAR) is None


# -- validation -------------------------------------------------------------------

NAIVE = datetime(2026, 1, 1, 10, 0)


def _filled() -> PointsLedger:
    ledger = PointsLedger()
    ledger.earn(30, JAN, APR, None, "a")
    ledger.earn(20, FEB, None, FEB + timedelta(days=14), "b")
    return ledger


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda g: g.earn(-1, FEB), ValueError),
        (lambda g: g.spend(-1, FEB), ValueError),
        (lambda g: g.deduct(-1, FEB), ValueError),
        (lambda g: g.earn(True, FEB), TypeError),
        (lambda g: g.earn(1.5, FEB), TypeError),
        (lambda g: g.spend("3", FEB), TypeError),
        (lambda g: g.earn(1, NAIVE), ValueError),
        (lambda g: g.earn(1, FEB, NAIVE), ValueError),
        (lambda g: g.earn(1, FEB, None, NAIVE), ValueError),
        (lambda g: g.spend(1, NAIVE), ValueError),
        (lambda g: g.deduct(1, NAIVE), ValueError),
        (lambda g: g.expire_until(NAIVE), ValueError),
        (lambda g: g.release_pending_until(NAIVE), ValueError),
        (lambda g: g.next_change_after(NAIVE), ValueError),
        # A lot that would be gone the instant it is earned.
        (lambda g: g.earn(1, FEB, FEB), ValueError),
        (lambda g: g.earn(1, FEB, JAN), ValueError),
        # Spendable before it was earned.
        (lambda g: g.earn(1, FEB, None, JAN), ValueError),
        (lambda g: g.earn(1, FEB, None, None, 42), TypeError),
        (lambda g: g.spend(31, FEB), InsufficientPoints),
        # Stale: b's release (15 Feb) is due by 1 Mar.
        (lambda g: g.spend(1, MAR), ValueError),
        (lambda g: g.deduct(1, MAR), ValueError),
    ],
)
def test_failing_operations_change_nothing(call: Any, error: type[Exception]) -> None:
    ledger = _filled()
    before = ledger.copy()
    with pytest.raises(error):
        call(ledger)
    assert ledger == before


def test_zero_earn_changes_nothing() -> None:
    ledger = _filled()
    before = ledger.copy()
    ledger.earn(0, MAR)
    assert ledger == before


# -- state -----------------------------------------------------------------------


def test_state_round_trip_and_copy() -> None:
    ledger = _filled()
    ledger.spend(10, FEB)
    state: dict[str, Any] = {
        "lots": list(ledger.lots),
        "owed": ledger.owed,
        "earned_total": ledger.earned_total,
        "spent_total": ledger.spent_total,
        "expired_total": ledger.expired_total,
        "deducted_total": ledger.deducted_total,
    }
    restored = PointsLedger(**state)
    assert restored == ledger
    clone = ledger.copy()
    clone.spend(5, FEB)
    assert clone != ledger
    assert "balance=20" in repr(ledger)


def test_restoring_inconsistent_state_is_refused() -> None:
    lot = Lot(10, JAN.astimezone(UTC), None, None, "a")
    with pytest.raises(ValueError, match="inconsistent"):
        PointsLedger([lot], earned_total=11)
    with pytest.raises(ValueError, match="debt"):
        PointsLedger([lot], owed=5, earned_total=5)
    with pytest.raises(ValueError, match="ordered"):
        PointsLedger([attrs.evolve(lot, earned_at=FEB), lot], earned_total=20)
    with pytest.raises(ValueError, match="owed"):
        PointsLedger(owed=-1)
    with pytest.raises(ValueError):
        Lot(0, JAN, None, None, "empty")


# -- properties ------------------------------------------------------------------

# An operation: (kind, points, minutes to advance first, catch up first?, expire hours, pending hours)
operations = st.lists(
    st.tuples(
        st.sampled_from(["earn", "spend", "deduct", "expire", "release", "bad"]),
        st.integers(-3, 60),
        st.integers(0, 3 * 24 * 60),
        st.booleans(),
        st.one_of(st.none(), st.integers(-2, 200)),
        st.one_of(st.none(), st.integers(-2, 100)),
    ),
    max_size=25,
)


class Model:
    """A point-by-point reference: every point is its own record."""

    def __init__(self) -> None:
        # (earned_at, sequence, source, expires_at, available_at) per point
        self.points: list[tuple[datetime, int, str, datetime | None, datetime | None]] = []
        self.debt = 0
        self.seq = 0

    def available(self, now: datetime) -> list[int]:
        return [
            i
            for i, p in sorted(enumerate(self.points), key=lambda ip: (ip[1][0], ip[1][1]))
            if p[4] is None or p[4] <= now
        ]

    def pending(self, now: datetime) -> list[int]:
        return [
            i
            for i, p in sorted(enumerate(self.points), key=lambda ip: (ip[1][0], ip[1][1]))
            if p[4] is not None and p[4] > now
        ]

    def take(self, indices: list[int]) -> None:
        drop = set(indices)
        self.points = [p for i, p in enumerate(self.points) if i not in drop]


@settings(max_examples=150, deadline=None)
@given(operations)
def test_ledger_against_point_by_point_model(ops: list[tuple[Any, ...]]) -> None:
    ledger = PointsLedger()
    model = Model()
    now = JAN
    earned = spent = expired = deducted = 0
    for kind, points, minutes, catch_up, expire_h, pending_h in ops:
        now = now + timedelta(minutes=minutes)
        if catch_up:
            expired_lots = ledger.expire_until(now)
            expired += sum(e.points for e in expired_lots)
            ledger.release_pending_until(now)
            model.points = [p for p in model.points if p[3] is None or p[3] > now]
        before = ledger.copy()
        expires = None if expire_h is None else now + timedelta(hours=expire_h)
        release = None if pending_h is None else now + timedelta(hours=pending_h)
        try:
            if kind == "earn":
                ledger.earn(points, now, expires, release, f"lot{model.seq}")
            elif kind == "spend":
                ledger.spend(points, now)
            elif kind == "deduct":
                ledger.deduct(points, now)
            elif kind == "expire":
                out = ledger.expire_until(now)
                assert all(e.expires_at <= now for e in out)
                assert [e.expires_at for e in out] == sorted(e.expires_at for e in out)
                expired += sum(e.points for e in out)
                model.points = [p for p in model.points if p[3] is None or p[3] > now]
            elif kind == "release":
                ledger.release_pending_until(now)
            else:
                ledger.earn(points, NAIVE)
        except (ValueError, TypeError, InsufficientPoints):
            # A failing operation changes nothing.
            assert ledger == before
        else:
            assert kind != "bad"
            if kind == "earn":
                repaid = min(model.debt, points)
                model.debt -= repaid
                model.points += [
                    (now, model.seq, f"lot{model.seq}", expires, release)
                ] * (points - repaid)
                model.seq += 1
                earned += points
            elif kind == "spend":
                assert ledger.balance >= 0  # spend never leaves a negative balance
                model.take(model.available(now)[:points])
                spent += points
            elif kind == "deduct":
                order = model.available(now) + model.pending(now)
                model.take(order[:points])
                model.debt += max(0, points - len(order))
                deducted += points
        # Accounting identity, from totals kept outside the ledger.
        assert ledger.balance + ledger.pending + spent + expired + deducted == earned
        assert ledger.lifetime == earned
        assert ledger.debt == model.debt
        assert ledger.debt == 0 or not ledger.lots
        # Same points left, lot by lot, in FIFO order (when the ledger is current).
        if not ledger.has_changes_due(now):
            per_lot: dict[str, int] = {}
            for p in sorted(model.points, key=lambda p: (p[0], p[1])):
                per_lot[p[2]] = per_lot.get(p[2], 0) + 1
            assert remaining(ledger) == list(per_lot.items())
            assert ledger.balance == len(model.available(now)) - model.debt
            assert ledger.pending == len(model.pending(now))
        assert all(lot.points > 0 for lot in ledger.lots)
