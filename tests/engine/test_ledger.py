"""Tests for poletti.engine.ledger: free points, FIFO lots, debt, pending points, expiry.

Instants are ints, microseconds since the epoch (``to_us``). Every expected
number is worked out by hand in the comment next to it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
from poletti.engine.timecalc import Duration, add_us, to_us
from instants import HEL, US, UTC, ts

SECOND = 1_000_000  # µs
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR  # 86_400_000_000 µs

JAN = to_us(ts("2026-01-01T10:00+02:00"))
FEB = to_us(ts("2026-02-01T10:00+02:00"))
MAR = to_us(ts("2026-03-01T10:00+02:00"))
APR = to_us(ts("2026-04-01T10:00+03:00"))
END = to_us(ts("2027-01-01T10:00+02:00"))  # a far expiry, after every other instant here


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


def test_instants_are_integer_microseconds() -> None:
    # 1970-01-01 → 2026-01-01: 56 years, 14 of them leap (1972 … 2024):
    # 56 × 365 + 14 = 20 454 days = 1 767 225 600 s; 10:00+02:00 = 08:00 UTC, + 28 800 s.
    assert JAN == 1_767_254_400 * SECOND
    # Both at +02:00: exactly 31 days apart.
    assert FEB - JAN == 31 * DAY
    # 1 Mar 08:00 UTC → 1 Apr 07:00 UTC (summer time began on 29 Mar): 31 days less 1 hour.
    assert APR - MAR == 31 * DAY - HOUR
    # One timedelta microsecond is 1 on the integer scale.
    assert to_us(ts("2026-01-01T10:00+02:00") - US) == JAN - 1


# -- FIFO ------------------------------------------------------------------------
# Only points that can expire or wait are kept in lots: these tests give every
# earning an expiry (END), as a program with `points expire after` does.


def test_fifo_across_three_lots_with_partial_spends() -> None:
    ledger = PointsLedger()
    ledger.earn(100, JAN, END, None, "a")
    ledger.earn(50, FEB, END, None, "b")
    ledger.earn(30, MAR, END, None, "c")
    assert (ledger.free, ledger.balance, ledger.lifetime) == (0, 180, 180)  # 100 + 50 + 30
    # Spend 120: all 100 of a, then 20 of b → b 30 left, c 30.
    ledger.spend(120)
    assert remaining(ledger) == [("b", 30), ("c", 30)]
    # Spend 40: the 30 left of b, then 10 of c → c 20 left.
    ledger.spend(40)
    assert remaining(ledger) == [("c", 20)]
    assert ledger.balance == 20
    assert ledger.spent_total == 160  # 120 + 40
    assert ledger.lifetime == 180  # spending never lowers lifetime
    # Spend exactly the rest: no empty lot stays behind.
    ledger.spend(20)
    assert remaining(ledger) == [] and ledger.balance == 0
    assert_identity(ledger)  # 0 + 0 + 180 + 0 + 0 = 180


def test_fifo_orders_by_earn_instant_not_call_order() -> None:
    ledger = PointsLedger()
    ledger.earn(10, MAR, END, source="march")
    ledger.earn(10, JAN, END, source="january")
    ledger.earn(10, FEB, END, source="february")
    assert remaining(ledger) == [("january", 10), ("february", 10), ("march", 10)]
    # Oldest first: January's 10, then 5 of February's.
    ledger.spend(15)
    assert remaining(ledger) == [("february", 5), ("march", 10)]


def test_fifo_ties_keep_earn_order() -> None:
    ledger = PointsLedger()
    for name in ("first", "second", "third"):
        ledger.earn(10, JAN, END, source=name)
    # A tie earned out of order (before the last lot's instant) goes after its equals too.
    ledger.earn(10, FEB, END, source="feb")
    ledger.earn(10, JAN, END, source="fourth")
    assert [source for source, _ in remaining(ledger)] == ["first", "second", "third", "fourth", "feb"]
    # 15: first's 10, then 5 of second.
    ledger.spend(15)
    assert remaining(ledger) == [("second", 5), ("third", 10), ("fourth", 10), ("feb", 10)]


def test_fifo_in_dst_fold_orders_by_instant() -> None:
    # 25 Oct 2026, Helsinki repeats 03:00–03:59. 03:30 first pass (EEST, +03)
    # is 00:30 UTC; 03:10 second pass (EET, +02, fold=1) is 01:10 UTC, the
    # later one, though its wall clock reads earlier.
    later = to_us(datetime(2026, 10, 25, 3, 10, tzinfo=HEL, fold=1))
    earlier = to_us(datetime(2026, 10, 25, 3, 30, tzinfo=HEL))
    assert earlier == to_us(datetime(2026, 10, 25, 0, 30, tzinfo=UTC))
    assert later == to_us(datetime(2026, 10, 25, 1, 10, tzinfo=UTC))
    assert later - earlier == 40 * MINUTE  # 00:30 → 01:10 UTC
    ledger = PointsLedger()
    ledger.earn(10, later, later + DAY, source="later")
    ledger.earn(10, earlier, earlier + DAY, source="earlier")
    assert remaining(ledger) == [("earlier", 10), ("later", 10)]
    assert [lot.earned_at for lot in ledger.lots] == [earlier, later]
    # 15: the 10 earned first, then 5 of the later lot.
    ledger.spend(15)
    assert remaining(ledger) == [("later", 5)]


def test_spend_short_raises_and_changes_nothing() -> None:
    ledger = PointsLedger()
    ledger.earn(20, JAN, END, source="a")
    ledger.earn(10, JAN, END, JAN + DAY, "pending")
    before = ledger.copy()
    # Spendable: 20 (the 10 pending points do not count).
    with pytest.raises(InsufficientPoints) as info:
        ledger.spend(21)
    assert (info.value.requested, info.value.available) == (21, 20)
    assert ledger == before
    assert (ledger.balance, ledger.pending, ledger.spent_total) == (20, 10, 0)
    assert ledger.next_change() == JAN + DAY  # the pending lot's release


def test_spend_zero_is_a_no_op_unless_in_debt() -> None:
    ledger = PointsLedger()
    ledger.spend(0)
    assert ledger == PointsLedger()
    ledger.deduct(5)
    # Balance −5: even 0 points is not covered, so spend never leaves a debt behind.
    with pytest.raises(InsufficientPoints) as info:
        ledger.spend(0)
    assert (info.value.requested, info.value.available) == (0, -5)


# -- free points -----------------------------------------------------------------


def test_points_that_neither_expire_nor_wait_are_free() -> None:
    ledger = PointsLedger()
    ledger.earn(100, JAN, source="a")
    ledger.earn(50, FEB, source="b")
    # No lot at all: one count of 100 + 50 = 150.
    assert (ledger.free, list(ledger.lots), ledger.balance, ledger.lifetime) == (150, [], 150, 150)
    assert ledger.next_change() is None  # nothing changes by itself
    assert ledger.expire_until(END) == [] and ledger.release_pending_until(END) == []
    # Spend 120: 150 − 120 = 30.
    ledger.spend(120)
    assert (ledger.free, ledger.balance) == (30, 30)
    # Deduct 40: the 30, then 10 of debt.
    ledger.deduct(40)
    assert (ledger.free, ledger.balance, ledger.debt) == (0, -10, 10)
    # Earn 25: 10 pay the debt, 15 are free.
    ledger.earn(25, MAR)
    assert (ledger.free, ledger.balance, ledger.debt, list(ledger.lots)) == (15, 15, 0, [])
    assert ledger.lifetime == 175  # 100 + 50 + 25
    assert_identity(ledger)  # 15 + 0 + 120 + 0 + 40 = 175


def test_available_at_not_after_earn_is_spendable_at_once() -> None:
    ledger = PointsLedger()
    # available_at == at, and one before it: not pending, and with no expiry not a lot.
    ledger.earn(5, JAN, None, JAN, "now")
    ledger.earn(4, JAN, None, JAN - 1, "before")
    assert (ledger.free, ledger.balance, ledger.pending, list(ledger.lots)) == (9, 9, 0, [])  # 5 + 4
    # With an expiry it is a lot, spendable at once (available_at: None, "at once").
    ledger.earn(3, JAN, END, JAN, "expiring")
    assert ledger.lots == [Lot(3, JAN, END, None, "expiring", False)]
    assert (ledger.balance, ledger.pending) == (12, 0)  # 9 + 3


def test_free_points_go_before_lots() -> None:
    # The engine never mixes them (a program's expiry applies to every point
    # or to none); a ledger holding both spends the free count first.
    ledger = PointsLedger()
    ledger.earn(10, JAN, END, source="lot")
    ledger.earn(10, FEB, source="free")
    assert (ledger.free, remaining(ledger)) == (10, [("lot", 10)])
    # 15: the 10 free points, then 5 of the lot.
    ledger.spend(15)
    assert (ledger.free, remaining(ledger)) == (0, [("lot", 5)])


def test_a_spend_passes_over_an_older_pending_lot() -> None:
    # 30 points earned on JAN, pending until FEB; 20 more on JAN + 1 day, spendable at once (both expire at END).
    # A spend of 15 takes only from what is spendable, though the pending lot is older: 5 spendable left, the 30
    # still pending. Then a reversal of 40 (a refund) takes the 5 spendable points, then 30 pending, oldest
    # first, and 5 become debt.
    ledger = PointsLedger()
    ledger.earn(30, JAN, END, FEB, "p1")
    ledger.earn(20, JAN + DAY, END, None, "p2")
    assert (ledger.balance, ledger.pending) == (20, 30)
    ledger.spend(15)
    assert (ledger.balance, ledger.pending) == (5, 30)
    assert [(lot.source, lot.points, lot.pending) for lot in ledger.lots] == [("p1", 30, True), ("p2", 5, False)]
    ledger.deduct(40)
    assert (ledger.balance, ledger.pending, ledger.debt, ledger.lots) == (-5, 0, 5, [])


def test_releases_one_after_another_around_a_spend() -> None:
    # Three purchases a day apart, 10, 20 and 30 points, each pending for 14 days and expiring at END: releases
    # one after another, with a spend between them that leaves a released lot in front of a pending one.
    ledger = PointsLedger()
    for day, points in ((1, 10), (2, 20), (3, 30)):
        ledger.earn(points, JAN + day * DAY, END, JAN + (day + 14) * DAY, f"p{day}")
    assert (ledger.balance, ledger.pending) == (0, 60)
    # Day 15: the first lot (10) is released; the others wait for days 16 and 17.
    assert [lot.points for lot in ledger.release_pending_until(JAN + 15 * DAY)] == [10]
    assert (ledger.balance, ledger.pending, ledger.next_change()) == (10, 50, JAN + 16 * DAY)
    # Day 16: the second (20): 30 spendable.
    assert [lot.points for lot in ledger.release_pending_until(JAN + 16 * DAY)] == [20]
    assert (ledger.balance, ledger.pending) == (30, 30)
    # Spending 25 takes the first lot (10) and 15 of the second, oldest first: the lots left are 5 (released)
    # and 30 (pending).
    ledger.spend(25)
    assert [(lot.source, lot.points, lot.pending) for lot in ledger.lots] == [("p2", 5, False), ("p3", 30, True)]
    # Day 17: the third (30): 5 + 30 = 35 spendable, nothing pending.
    assert [lot.points for lot in ledger.release_pending_until(JAN + 17 * DAY)] == [30]
    assert (ledger.balance, ledger.pending, ledger.next_change()) == (35, 0, END)
    # A lot earned out of order (restored or replayed), pending, goes in before the released ones: the next
    # release still finds it.
    ledger.earn(7, JAN, END, JAN + 20 * DAY, "late")
    assert [lot.source for lot in ledger.lots] == ["late", "p2", "p3"]
    assert [lot.points for lot in ledger.release_pending_until(JAN + 20 * DAY)] == [7]
    assert (ledger.balance, ledger.pending) == (42, 0)


def test_released_lot_without_expiry_joins_free() -> None:
    # A program with `points pending for 14d` and no expiry.
    release = JAN + 14 * DAY
    ledger = PointsLedger()
    ledger.earn(60, JAN, None, release, "purchase")
    ledger.earn(40, JAN + DAY, source="grant")
    assert ledger.lots == [Lot(60, JAN, None, release, "purchase", True)]
    assert (ledger.free, ledger.balance, ledger.pending) == (40, 40, 60)
    assert ledger.next_change() == release
    released = ledger.release_pending_until(release)
    assert released == [ReleasedLot(60, JAN, release, "purchase")]
    # The lot is gone; its 60 points joined the 40 free: 100.
    assert (list(ledger.lots), ledger.free, ledger.balance, ledger.pending) == ([], 100, 100, 0)
    assert ledger.next_change() is None
    assert_identity(ledger)  # 100 + 0 + 0 + 0 + 0 = 100


def test_released_lot_with_expiry_stays_a_lot_in_its_fifo_place() -> None:
    ledger = PointsLedger()
    ledger.earn(10, JAN, END, JAN + 14 * DAY, "pending_old")
    ledger.earn(10, JAN + DAY, END, None, "new")
    ledger.release_pending_until(JAN + 14 * DAY)
    assert ledger.free == 0
    assert ledger.lots[0] == Lot(10, JAN, END, JAN + 14 * DAY, "pending_old", False)
    # pending_old was earned first, so it is spent first once released: 15 = 10 + 5 of new.
    ledger.spend(15)
    assert remaining(ledger) == [("new", 5)]


# -- pending ---------------------------------------------------------------------


def test_pending_points_become_spendable_exactly_at_available_at() -> None:
    ledger = PointsLedger()
    release = JAN + 14 * DAY
    ledger.earn(60, JAN, None, release, "purchase")
    # Counted in lifetime and outstanding at once, but not spendable.
    assert (ledger.balance, ledger.pending, ledger.outstanding, ledger.lifetime) == (0, 60, 60, 60)
    with pytest.raises(InsufficientPoints):
        ledger.spend(1)
    assert ledger.next_change() == release
    # One microsecond before: still pending.
    assert ledger.release_pending_until(release - 1) == []
    assert (ledger.balance, ledger.pending, ledger.next_change()) == (0, 60, release)
    released = ledger.release_pending_until(release)
    assert released == [ReleasedLot(60, JAN, release, "purchase")]
    assert (ledger.balance, ledger.pending, ledger.outstanding) == (60, 0, 60)
    assert ledger.next_change() is None
    # Released again: nothing more.
    assert ledger.release_pending_until(release + DAY) == []


def test_release_results_are_in_release_order() -> None:
    ledger = PointsLedger()
    ledger.earn(1, JAN, END, JAN + 20 * DAY, "slow")
    ledger.earn(2, JAN + DAY, END, JAN + 2 * DAY, "fast")
    released = ledger.release_pending_until(FEB)
    # fast: 3 Jan; slow: 21 Jan.
    assert [(item.source, item.available_at) for item in released] == [
        ("fast", JAN + 2 * DAY),
        ("slow", JAN + 20 * DAY),
    ]
    assert (ledger.balance, ledger.pending) == (3, 0)  # 1 + 2


def test_pending_earnings_pay_debt_first() -> None:
    ledger = PointsLedger()
    ledger.deduct(10)
    assert (ledger.balance, ledger.debt) == (-10, 10)
    # 30 pending points: 10 pay the debt, 20 stay pending.
    ledger.earn(30, FEB, None, FEB + 14 * DAY, "p")
    assert (ledger.balance, ledger.pending, ledger.debt) == (0, 20, 0)
    assert ledger.lots == [Lot(20, FEB, None, FEB + 14 * DAY, "p", True)]
    assert ledger.lifetime == 30
    assert_identity(ledger)  # 0 + 20 + 0 + 0 + 10 = 30


# -- debt and deductions ---------------------------------------------------------


def test_debt_is_paid_by_later_earnings() -> None:
    ledger = PointsLedger()
    ledger.earn(50, JAN, END, source="a")
    # Refund reversal of 80: 50 from lot a, 30 recorded as debt.
    ledger.deduct(80)
    assert (ledger.balance, ledger.debt, list(ledger.lots), ledger.free) == (-30, 30, [], 0)
    assert ledger.next_change() is None  # lot a went with its expiry
    # Earn 20: all of it pays debt (30 → 10), no lot formed.
    ledger.earn(20, MAR, END, source="b")
    assert (ledger.balance, ledger.debt, list(ledger.lots)) == (-10, 10, [])
    assert ledger.next_change() is None
    # Earn 25: 10 pays the rest of the debt, 15 form a lot.
    ledger.earn(25, APR, END, source="c")
    assert (ledger.balance, ledger.debt) == (15, 0)
    assert remaining(ledger) == [("c", 15)]
    assert ledger.next_change() == END
    # lifetime = 50 + 20 + 25 = 95: paying debt still counts as earned.
    assert ledger.lifetime == 95
    assert ledger.deducted_total == 80
    assert_identity(ledger)  # 15 + 0 + 0 + 0 + 80 = 95


def test_deduct_takes_spendable_then_pending_then_debt() -> None:
    # No expiry: 40 free points and one pending lot.
    ledger = PointsLedger()
    ledger.earn(40, JAN, source="available")
    ledger.earn(60, FEB, None, FEB + 14 * DAY, "pending")
    # Deduct 50: the 40 free, then 10 of the pending lot (60 → 50).
    ledger.deduct(50)
    assert (ledger.free, remaining(ledger)) == (0, [("pending", 50)])
    assert (ledger.balance, ledger.pending) == (0, 50)
    # Deduct 70: the 50 pending, then 20 of debt.
    ledger.deduct(70)
    assert (ledger.balance, ledger.pending, ledger.debt, ledger.lots) == (-20, 0, 20, [])
    assert ledger.next_change() is None
    assert ledger.lifetime == 100  # 40 + 60
    assert_identity(ledger)  # −20 + 0 + 0 + 0 + 120 = 100


def test_deduct_takes_oldest_spendable_first() -> None:
    ledger = PointsLedger()
    ledger.earn(10, JAN, END, source="a")
    ledger.earn(10, FEB, END, source="b")
    ledger.earn(10, MAR, END, source="c")
    # 15: a's 10, then 5 of b.
    ledger.deduct(15)
    assert remaining(ledger) == [("b", 5), ("c", 10)]


def test_deduct_order_own_pending_then_spendable_then_pending_then_debt() -> None:
    # A program with expiry and a pending period: every point is a lot.
    ledger = PointsLedger()
    ledger.earn(30, JAN, END, None, "old")  # spendable
    ledger.earn(20, FEB, END, FEB + 14 * DAY, "p1")  # pending
    ledger.earn(25, FEB + DAY, END, FEB + 15 * DAY, "p2")  # pending
    assert (ledger.balance, ledger.pending) == (30, 45)  # 20 + 25
    # Refund of p2 for 10: its own pending points first (25 → 15); nothing else is touched.
    ledger.deduct(10, pending_source="p2")
    assert remaining(ledger) == [("old", 30), ("p1", 20), ("p2", 15)]
    assert (ledger.balance, ledger.pending) == (30, 35)  # 20 + 15
    # Refund of p2 for 40: p2's last 15, then 25 of the oldest spendable (old: 30 → 5).
    ledger.deduct(40, pending_source="p2")
    assert remaining(ledger) == [("old", 5), ("p1", 20)]
    assert (ledger.balance, ledger.pending) == (5, 20)
    # A source with no pending lot (old is spendable): the usual order.
    # 7: old's 5, then 2 of the pending p1 (20 → 18).
    ledger.deduct(7, pending_source="old")
    assert remaining(ledger) == [("p1", 18)]
    assert (ledger.balance, ledger.pending) == (0, 18)
    # 23 with no source: p1's 18 pending, then 5 of debt.
    ledger.deduct(23)
    assert (ledger.balance, ledger.pending, ledger.debt, ledger.lots) == (-5, 0, 5, [])
    assert ledger.deducted_total == 80  # 10 + 40 + 7 + 23
    assert ledger.lifetime == 75  # 30 + 20 + 25
    assert_identity(ledger)  # −5 + 0 + 0 + 0 + 80 = 75


def test_deduct_of_a_released_purchase_takes_the_usual_order() -> None:
    ledger = PointsLedger()
    ledger.earn(10, JAN, END, None, "older")
    ledger.earn(10, FEB, END, FEB + DAY, "purchase")
    ledger.release_pending_until(FEB + DAY)
    # purchase is no longer pending: 15 = older's 10, then 5 of purchase.
    ledger.deduct(15, pending_source="purchase")
    assert remaining(ledger) == [("purchase", 5)]


# -- expiry ----------------------------------------------------------------------


def test_expiry_at_the_exact_instant() -> None:
    ledger = PointsLedger()
    earned = to_us(ts("2026-01-31T10:00+02:00"))
    # points expire after 12m: 31 Jan 2026 10:00 EET + 12m = 31 Jan 2027 10:00 EET.
    expires = add_us(earned, Duration.parse("12m"), HEL)
    assert expires == to_us(ts("2027-01-31T10:00+02:00"))
    assert expires - earned == 365 * DAY  # 2026 is not a leap year; both dates are in winter time
    ledger.earn(100, earned, expires, None, "jan")
    assert ledger.next_change() == expires
    # One microsecond before: the lot is still there and can be spent.
    assert ledger.expire_until(expires - 1) == []
    assert (ledger.balance, ledger.next_change()) == (100, expires)
    probe = ledger.copy()
    probe.spend(100)
    assert probe.balance == 0
    # At expires_at the whole lot is gone.
    expired = ledger.expire_until(expires)
    assert expired == [ExpiredLot(100, earned, expires, "jan", False)]
    assert (ledger.balance, ledger.expired_total, ledger.lifetime) == (0, 100, 100)
    assert ledger.lots == [] and ledger.next_change() is None
    assert_identity(ledger)  # 0 + 0 + 0 + 100 + 0 = 100


def test_expiry_removes_the_remainder_after_partial_spend() -> None:
    ledger = PointsLedger()
    ledger.earn(100, JAN, JAN + 30 * DAY, None, "a")
    ledger.earn(50, JAN + 5 * DAY, FEB + 30 * DAY, None, "b")
    ledger.spend(70)  # a: 100 − 70 = 30 left
    assert ledger.next_change() == JAN + 30 * DAY
    # 31 Jan 10:00 EET: a (earned 1 Jan + 30 × 24 h) is gone, b stays.
    expired = ledger.expire_until(JAN + 30 * DAY)
    assert [(e.source, e.points) for e in expired] == [("a", 30)]
    assert remaining(ledger) == [("b", 50)]
    assert ledger.balance == 50
    assert ledger.next_change() == FEB + 30 * DAY
    assert_identity(ledger)  # 50 + 0 + 70 + 30 + 0 = 150


def test_expiry_results_in_time_order() -> None:
    ledger = PointsLedger()
    # Earned first but expires last.
    ledger.earn(1, JAN, JAN + 60 * DAY, None, "long")
    ledger.earn(2, FEB, FEB + DAY, None, "short")
    ledger.earn(3, FEB, FEB + DAY, None, "short_too")
    expired = ledger.expire_until(APR)
    # 2 Feb (ties in FIFO order), then 2 Mar.
    assert [e.source for e in expired] == ["short", "short_too", "long"]
    assert ledger.expired_total == 6  # 1 + 2 + 3


def test_pending_lot_can_expire_before_release() -> None:
    ledger = PointsLedger()
    ledger.earn(10, JAN, JAN + DAY, JAN + 14 * DAY, "p")
    assert ledger.next_change() == JAN + DAY  # the expiry comes before the release
    expired = ledger.expire_until(JAN + DAY)
    assert expired == [ExpiredLot(10, JAN, JAN + DAY, "p", True)]
    assert (ledger.pending, ledger.balance, ledger.expired_total) == (0, 0, 10)
    # Its release went with it.
    assert ledger.next_change() is None
    assert ledger.release_pending_until(JAN + 14 * DAY) == []
    assert_identity(ledger)  # 0 + 0 + 0 + 10 + 0 = 10


# -- next_change -----------------------------------------------------------------


def test_next_change_follows_earns_spends_releases_and_expiries() -> None:
    ledger = PointsLedger()
    assert ledger.next_change() is None
    ledger.earn(5, JAN)  # free: never changes by itself
    assert ledger.next_change() is None
    ledger.earn(10, JAN, MAR, None, "a")
    assert ledger.next_change() == MAR  # a's expiry
    ledger.earn(10, JAN + DAY, APR, FEB, "b")
    assert ledger.next_change() == FEB  # b's release, before MAR
    # Nothing is due before FEB.
    assert ledger.expire_until(FEB - 1) == [] and ledger.release_pending_until(FEB - 1) == []
    assert ledger.next_change() == FEB
    ledger.release_pending_until(FEB)
    assert ledger.next_change() == MAR  # min(a's MAR, b's APR); b's release is done
    ledger.spend(5)  # the 5 free points
    assert (ledger.free, ledger.next_change()) == (0, MAR)
    ledger.spend(10)  # all of a, the lot with the earliest change
    assert remaining(ledger) == [("b", 10)]
    assert ledger.next_change() == APR
    ledger.spend(4)  # b: 10 → 6; its expiry stays
    assert ledger.next_change() == APR
    ledger.earn(3, FEB, FEB + 2 * DAY, None, "c")
    assert ledger.next_change() == FEB + 2 * DAY  # earlier than APR
    ledger.deduct(9)  # b's 6, then c's 3: no lot left
    assert (ledger.balance, ledger.lots, ledger.next_change()) == (0, [], None)
    ledger.earn(2, MAR, APR, None, "d")
    ledger.earn(2, MAR, END, None, "e")
    assert ledger.next_change() == APR
    ledger.expire_until(APR)  # d gone
    assert (remaining(ledger), ledger.next_change()) == ([("e", 2)], END)
    ledger.expire_until(END)
    assert ledger.next_change() is None


def test_next_change_after_a_partial_deduct_of_a_pending_lot() -> None:
    ledger = PointsLedger()
    ledger.earn(10, JAN, None, FEB, "p")
    ledger.deduct(4, pending_source="p")  # 10 → 6: still pending until FEB
    assert (ledger.pending, ledger.next_change()) == (6, FEB)
    ledger.deduct(6, pending_source="p")  # all gone
    assert (ledger.pending, ledger.next_change()) == (0, None)


# -- failing and empty operations ------------------------------------------------


def _filled() -> PointsLedger:
    ledger = PointsLedger()
    ledger.earn(30, JAN, APR, None, "a")
    ledger.earn(20, FEB, None, FEB + 14 * DAY, "b")
    ledger.earn(5, FEB)
    return ledger  # balance 30 + 5 = 35, pending 20


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda g: g.earn(-1, FEB), ValueError),
        (lambda g: g.earn(-1, FEB, END, FEB + DAY, "x"), ValueError),
        (lambda g: g.spend(-1), ValueError),
        (lambda g: g.deduct(-1), ValueError),
        (lambda g: g.deduct(-1, pending_source="b"), ValueError),
        (lambda g: g.spend(36), InsufficientPoints),  # 35 spendable
    ],
)
def test_failing_operations_change_nothing(call: Any, error: type[Exception]) -> None:
    ledger = _filled()
    before = ledger.copy()
    with pytest.raises(error):
        call(ledger)
    assert ledger == before
    assert (ledger.balance, ledger.pending, ledger.next_change()) == (35, 20, FEB + 14 * DAY)


def test_zero_point_operations_change_nothing() -> None:
    ledger = _filled()
    before = ledger.copy()
    ledger.earn(0, MAR, END, MAR + DAY, "zero")
    ledger.spend(0)
    ledger.deduct(0)
    ledger.deduct(0, pending_source="b")
    assert ledger == before
    assert ledger.next_change() == FEB + 14 * DAY  # the zero earn left no lot


# -- copy, state, restore --------------------------------------------------------


def test_copy_is_independent() -> None:
    ledger = _filled()
    snapshot = ledger.state()
    clone = ledger.copy()
    assert clone == ledger and clone is not ledger
    assert clone.next_change() == FEB + 14 * DAY
    # Lots are mutable: a partial spend on the clone must not reach the original.
    clone.spend(6)  # free 5, then a: 30 → 29
    assert remaining(clone) == [("a", 29), ("b", 20)]
    clone.release_pending_until(FEB + 14 * DAY)  # b joins free: 20
    clone.earn(7, MAR, END, None, "c")
    clone.expire_until(APR)  # a's 29 gone
    assert (clone.free, remaining(clone), clone.balance) == (20, [("c", 7)], 27)  # 20 + 7
    assert clone.next_change() == END
    assert ledger.state() == snapshot
    assert remaining(ledger) == [("a", 30), ("b", 20)]
    assert (ledger.free, ledger.balance, ledger.pending) == (5, 35, 20)
    assert ledger.next_change() == FEB + 14 * DAY
    # And the other way round.
    before = clone.state()
    ledger.deduct(40)  # free 5, a's 30, then 5 of the pending b
    assert clone.state() == before
    assert remaining(ledger) == [("b", 15)]


def test_state_round_trip() -> None:
    ledger = _filled()
    ledger.spend(10)  # free 5, then a: 30 → 25
    ledger.deduct(3, pending_source="b")  # b: 20 → 17
    state = ledger.state()
    assert state == {
        "free": 0,
        "lots": [Lot(25, JAN, APR, None, "a", False), Lot(17, FEB, None, FEB + 14 * DAY, "b", True)],
        "owed": 0,
        "earned_total": 55,  # 30 + 20 + 5
        "spent_total": 10,
        "expired_total": 0,
        "deducted_total": 3,
    }
    restored = PointsLedger.restore(**state)
    assert restored == ledger
    assert (restored.balance, restored.pending, restored.lifetime, restored.debt) == (25, 17, 55, 0)
    assert restored.next_change() == FEB + 14 * DAY
    assert "balance=25" in repr(ledger)
    # The state holds copies: changing the restored ledger leaves state and original alone …
    restored.spend(1)  # a: 25 → 24
    assert (state["lots"][0].points, ledger.lots[0].points, restored.lots[0].points) == (25, 25, 24)
    # … and changing the original leaves the state taken before alone.
    ledger.spend(2)  # a: 25 → 23
    assert (state["lots"][0].points, ledger.lots[0].points, restored.lots[0].points) == (25, 23, 24)
    # A ledger in debt, and an empty one.
    debtor = PointsLedger()
    debtor.earn(4, JAN)
    debtor.deduct(9)  # 4 free, 5 of debt
    assert PointsLedger.restore(**debtor.state()) == debtor
    assert PointsLedger.restore(**debtor.state()).balance == -5
    assert PointsLedger.restore(**PointsLedger().state()) == PointsLedger()


def test_restore_orders_lots_by_earned_at() -> None:
    late = Lot(10, FEB, END, None, "late")
    early = Lot(5, JAN, END, None, "early")
    ledger = PointsLedger.restore(lots=[late, early], earned_total=15)
    assert remaining(ledger) == [("early", 5), ("late", 10)]
    # 7: early's 5, then 2 of late.
    ledger.spend(7)
    assert remaining(ledger) == [("late", 8)]
    assert late.points == 10  # the lots passed in are not changed


@pytest.mark.parametrize(
    ("state", "message"),
    [
        # 10 held ≠ 11 earned.
        ({"lots": [Lot(10, JAN, END, None, "a")], "earned_total": 11}, "inconsistent"),
        # 5 free + 0 spent ≠ 6 earned.
        ({"free": 5, "earned_total": 6}, "inconsistent"),
        # −5 + 10 deducted ≠ 4 earned.
        ({"owed": 5, "deducted_total": 10, "earned_total": 4}, "inconsistent"),
        # 10 − 5 = 5 held + 0 = 5 earned adds up, but debt with points held.
        ({"lots": [Lot(10, JAN, END, None, "a")], "owed": 5, "earned_total": 5}, "debt"),
        ({"free": 5, "owed": 5, "earned_total": 0}, "debt"),
        ({"lots": [Lot(0, JAN, END, None, "empty")]}, "positive"),
        ({"lots": [Lot(-3, JAN, END, None, "negative")], "earned_total": 0, "spent_total": 3}, "positive"),
        ({"lots": [Lot(10, JAN, END, None, "p", True)], "earned_total": 10}, "available_at"),
        ({"owed": -1, "earned_total": 0, "deducted_total": 1}, "owed"),
        ({"free": -1, "spent_total": 1}, "free"),
        ({"free": 1, "earned_total": True}, "earned_total"),
        ({"free": 1, "earned_total": 2, "spent_total": 1.0}, "spent_total"),
    ],
)
def test_restore_rejects_inconsistent_states(state: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PointsLedger.restore(**state)


def test_restore_accepts_a_consistent_debt() -> None:
    # −5 held + 10 deducted = 5 earned.
    ledger = PointsLedger.restore(owed=5, deducted_total=10, earned_total=5)
    assert (ledger.balance, ledger.debt, ledger.next_change()) == (-5, 5, None)


# -- properties ------------------------------------------------------------------

# One operation: (kind, points (negative: refused), minutes the clock moves first,
# apply due changes first?, expires after (hours), pending for (hours, <= 0: at once),
# pending_source for deduct (the source of the n-th earning)).
point_operations = st.lists(
    st.tuples(
        st.sampled_from(["earn", "spend", "deduct", "expire", "release"]),
        st.integers(-3, 60),
        st.integers(0, 3 * 24 * 60),
        st.booleans(),
        st.one_of(st.none(), st.integers(1, 200)),
        st.one_of(st.none(), st.integers(-2, 100)),
        st.one_of(st.none(), st.integers(0, 25)),
    ),
    max_size=25,
)

# (earned_at, sequence, source, expires_at, available_at) of one point
Point = tuple[int, int, str, int | None, int | None]


class PointModel:
    """A point-by-point reference on the clock: every point is its own record."""

    def __init__(self) -> None:
        self.points: list[Point] = []
        self.debt = 0
        self.seq = 0
        self.expired = 0

    def available(self, now: int) -> list[int]:
        # Spendable points that never expire are one free count, taken before any lot.
        order = sorted(enumerate(self.points), key=lambda ip: (ip[1][3] is not None, ip[1][0], ip[1][1]))
        return [i for i, p in order if p[4] is None or p[4] <= now]

    def pending(self, now: int, source: str | None = None) -> list[int]:
        # Pending points are all in lots: oldest first.
        order = sorted(enumerate(self.points), key=lambda ip: (ip[1][0], ip[1][1]))
        return [i for i, p in order if p[4] is not None and p[4] > now and source in (None, p[2])]

    def take(self, indices: list[int]) -> None:
        drop = set(indices)
        self.points = [p for i, p in enumerate(self.points) if i not in drop]

    def expire(self, now: int) -> None:
        kept = [p for p in self.points if p[3] is None or p[3] > now]
        self.expired += len(self.points) - len(kept)
        self.points = kept


@settings(max_examples=200, deadline=None)
@given(point_operations)
def test_ledger_against_point_by_point_model(ops: list[tuple[Any, ...]]) -> None:
    ledger = PointsLedger()
    model = PointModel()
    now = JAN
    earned = spent = deducted = 0
    for kind, points, minutes, catch_up, expire_h, pending_h, source_of in ops:
        now += minutes * MINUTE
        if catch_up or kind in ("spend", "deduct"):
            # The engine applies every expiry and release due before a spend or deduct.
            ledger.expire_until(now)
            ledger.release_pending_until(now)
            model.expire(now)
        before = ledger.copy()
        expires = None if expire_h is None else now + expire_h * HOUR
        release = None if pending_h is None else now + pending_h * HOUR
        refunded = None if source_of is None else f"lot{source_of}"
        try:
            if kind == "earn":
                ledger.earn(points, now, expires, release, f"lot{model.seq}")
            elif kind == "spend":
                ledger.spend(points)
            elif kind == "deduct":
                ledger.deduct(points, refunded)
            elif kind == "expire":
                out = ledger.expire_until(now)
                assert all(e.expires_at <= now for e in out)
                assert [e.expires_at for e in out] == sorted(e.expires_at for e in out)
                model.expire(now)
            else:
                out_released = ledger.release_pending_until(now)
                assert all(r.available_at <= now for r in out_released)
        except (ValueError, InsufficientPoints) as exc:
            # A failing operation changes nothing, and fails only for these reasons.
            assert ledger == before
            assert points < 0 or (
                isinstance(exc, InsufficientPoints) and points > len(model.available(now)) - model.debt
            )
        else:
            if kind == "earn":
                repaid = min(model.debt, points)
                model.debt -= repaid
                model.points += [(now, model.seq, f"lot{model.seq}", expires, release)] * (points - repaid)
                model.seq += 1
                earned += points
            elif kind == "spend":
                assert ledger.balance >= 0  # spend never leaves a negative balance
                model.take(model.available(now)[:points])
                spent += points
            elif kind == "deduct":
                own = [] if refunded is None else model.pending(now, refunded)
                rest = [i for i in model.available(now) + model.pending(now) if i not in own]
                order = own + rest
                model.take(order[:points])
                model.debt += max(0, points - len(order))
                deducted += points
        # Accounting identity, from totals kept outside the ledger.
        assert ledger.balance + ledger.pending + spent + ledger.expired_total + deducted == earned
        assert ledger.expired_total == model.expired
        assert_identity(ledger)
        assert ledger.lifetime == earned
        assert ledger.debt == model.debt
        assert ledger.debt == 0 or (not ledger.lots and ledger.free == 0)
        assert all(lot.points > 0 for lot in ledger.lots)
        # Same points left, lot by lot in FIFO order, when the ledger is current.
        upcoming = ledger.next_change()
        if upcoming is None or upcoming > now:
            free = [p for p in model.points if p[3] is None and (p[4] is None or p[4] <= now)]
            per_lot: dict[str, int] = {}
            for p in sorted(model.points, key=lambda p: (p[0], p[1])):
                if p not in free:
                    per_lot[p[2]] = per_lot.get(p[2], 0) + 1
            assert ledger.free == len(free)
            assert remaining(ledger) == list(per_lot.items())
            assert ledger.balance == len(model.available(now)) - model.debt
            assert ledger.pending == len(model.pending(now))
            moments = [p[3] for p in model.points if p[3] is not None]
            moments += [p[4] for p in model.points if p[4] is not None and p[4] > now]
            assert upcoming == min(moments, default=None)


class LotModel:
    """A list-of-lots reference, written apart from the ledger: no running totals, no cache."""

    def __init__(self) -> None:
        self.free = 0
        # [points, earned_at, expires_at, available_at, source, pending]
        self.lots: list[list[Any]] = []
        self.debt = 0
        self.earned = self.spent = self.expired = self.deducted = 0

    def balance(self) -> int:
        return self.free + sum(lot[0] for lot in self.lots if not lot[5]) - self.debt

    def pending(self) -> int:
        return sum(lot[0] for lot in self.lots if lot[5])

    def next_change(self) -> int | None:
        moments = [lot[2] for lot in self.lots if lot[2] is not None]
        moments += [lot[3] for lot in self.lots if lot[5]]
        return min(moments, default=None)

    def earn(self, points: int, at: int, expires_at: int | None, available_at: int | None, source: str) -> None:
        self.earned += points
        paid = min(self.debt, points)
        self.debt -= paid
        points -= paid
        if points == 0:
            return
        pending = available_at is not None and available_at > at
        if expires_at is None and not pending:
            self.free += points
            return
        position = len(self.lots)
        while position > 0 and self.lots[position - 1][1] > at:
            position -= 1  # after every lot earned at or before `at`
        self.lots.insert(position, [points, at, expires_at, available_at if pending else None, source, pending])

    def _take(self, points: int, wanted: Any) -> int:
        for lot in self.lots:
            if points and wanted(lot):
                taken = min(points, lot[0])
                lot[0] -= taken
                points -= taken
        self.lots = [lot for lot in self.lots if lot[0] > 0]
        return points

    def _take_spendable(self, points: int) -> int:
        taken = min(points, self.free)
        self.free -= taken
        return self._take(points - taken, lambda lot: not lot[5])

    def spend(self, points: int) -> None:
        left = self._take_spendable(points)
        assert left == 0
        self.spent += points

    def deduct(self, points: int, source: str | None) -> None:
        left = points
        if source is not None:
            left = self._take(left, lambda lot: lot[5] and lot[4] == source)
        left = self._take_spendable(left)
        left = self._take(left, lambda lot: lot[5])
        self.debt += left
        self.deducted += points

    def expire(self, t: int) -> list[tuple[Any, ...]]:
        gone = [lot for lot in self.lots if lot[2] is not None and lot[2] <= t]
        self.lots = [lot for lot in self.lots if not any(lot is g for g in gone)]
        self.expired += sum(lot[0] for lot in gone)
        gone.sort(key=lambda lot: lot[2])
        return [(lot[0], lot[1], lot[2], lot[4], lot[5]) for lot in gone]

    def release(self, t: int) -> list[tuple[Any, ...]]:
        out = [lot for lot in self.lots if lot[5] and lot[3] <= t]
        for lot in out:
            lot[5] = False
            if lot[2] is None:
                self.free += lot[0]
        self.lots = [lot for lot in self.lots if lot[2] is not None or not any(lot is o for o in out)]
        out.sort(key=lambda lot: lot[3])
        return [(lot[0], lot[1], lot[3], lot[4]) for lot in out]


SOURCES = ("s0", "s1", "s2")

# Small integer instants, so that ties and boundaries (t == expires_at) come up often.
lot_operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("earn"),
            st.integers(0, 20),  # points
            st.integers(0, 3),  # clock step
            st.sampled_from([0, 0, 0, 2]),  # earned this far back (out of order)
            st.one_of(st.none(), st.integers(1, 30)),  # expires after
            st.one_of(st.none(), st.integers(-2, 20)),  # pending for (<= 0: at once)
            st.sampled_from(SOURCES),
        ),
        st.tuples(st.just("spend"), st.integers(0, 30), st.integers(0, 3)),
        st.tuples(
            st.just("deduct"), st.integers(0, 30), st.integers(0, 3), st.one_of(st.none(), st.sampled_from(SOURCES))
        ),
        st.tuples(st.just("expire"), st.just(0), st.integers(0, 6)),
        st.tuples(st.just("release"), st.just(0), st.integers(0, 6)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(lot_operations, st.booleans())
def test_ledger_against_list_of_lots_model(ops: list[tuple[Any, ...]], expiring: bool) -> None:
    ledger = PointsLedger()
    model = LotModel()
    now = 0
    for op in ops:
        kind, points, step = op[:3]
        now += step
        if kind == "earn":
            back, expire_after, pending_for, source = op[3:]
            at = now - back
            expires = at + expire_after if expiring and expire_after is not None else None
            available = None if pending_for is None else at + pending_for
            ledger.earn(points, at, expires, available, source)
            model.earn(points, at, expires, available, source)
        elif kind == "spend":
            if points > model.balance():
                before = ledger.copy()
                with pytest.raises(InsufficientPoints) as info:
                    ledger.spend(points)
                assert (info.value.requested, info.value.available) == (points, model.balance())
                assert ledger == before
            else:
                ledger.spend(points)
                model.spend(points)
        elif kind == "deduct":
            ledger.deduct(points, op[3])
            model.deduct(points, op[3])
        elif kind == "expire":
            out = ledger.expire_until(now)
            assert [(e.points, e.earned_at, e.expires_at, e.source, e.pending) for e in out] == model.expire(now)
        else:
            out = ledger.release_pending_until(now)
            assert [(r.points, r.earned_at, r.available_at, r.source) for r in out] == model.release(now)
        # Lot by lot, the free count, debt and every total.
        lots = [[lot.points, lot.earned_at, lot.expires_at, lot.available_at, lot.source, lot.pending]
                for lot in ledger.lots]
        assert lots == model.lots
        assert (ledger.free, ledger.debt) == (model.free, model.debt)
        assert (ledger.balance, ledger.pending) == (model.balance(), model.pending())
        assert ledger.outstanding == model.balance() + model.pending()
        assert (ledger.lifetime, ledger.spent_total, ledger.expired_total, ledger.deducted_total) == (
            model.earned, model.spent, model.expired, model.deducted)
        assert ledger.next_change() == model.next_change()
        assert_identity(ledger)
        if not expiring:
            # Without expiry, lots hold only pending points.
            assert all(lot.pending for lot in ledger.lots)
        # state() / restore() and copy() give an equal ledger with the same next change.
        restored = PointsLedger.restore(**ledger.state())
        clone = ledger.copy()
        for other in (restored, clone):
            assert other == ledger
            assert (other.balance, other.pending, other.next_change()) == (
                ledger.balance, ledger.pending, ledger.next_change())


@pytest.mark.parametrize("restored", [False, True])
def test_a_release_finds_a_lot_that_waits_less_than_the_lots_before_it(restored: bool) -> None:
    """Lots earned in order usually become spendable in order, and a release then stops at the first lot
    still waiting; one with a shorter wait after longer ones (the program's pending time changed), or lots
    restored from a store, must not be missed.

    Hand-worked: A 10 points available at 100, B 20 at 110, C 30 at 50 (earned last). At 60 only C is
    released: balance 30, pending 30, and the next change is A's release at 100. At 105 A goes too.
    """
    ledger = PointsLedger()
    ledger.earn(10, 0, available_at=100, source="A")
    ledger.earn(20, 10, available_at=110, source="B")
    ledger.earn(30, 20, available_at=50, source="C")
    if restored:
        ledger = PointsLedger.restore(**ledger.state())
    assert ledger.release_pending_until(60) == [ReleasedLot(30, 20, 50, "C")]
    assert (ledger.balance, ledger.pending, ledger.next_change()) == (30, 30, 100)
    assert ledger.release_pending_until(105) == [ReleasedLot(10, 0, 100, "A")]
    assert (ledger.balance, ledger.pending, ledger.next_change()) == (40, 20, 110)


def test_lots_that_wait_in_order_are_released_up_to_the_first_still_waiting() -> None:
    """Hand-worked: A 10 at 100, B 20 at 110, C 30 at 120; at 115 A and B are released, C waits."""
    ledger = PointsLedger()
    for points, at, available in ((10, 0, 100), (20, 10, 110), (30, 20, 120)):
        ledger.earn(points, at, available_at=available, source=str(points))
    assert ledger.release_pending_until(115) == [ReleasedLot(10, 0, 100, "10"), ReleasedLot(20, 10, 110, "20")]
    assert (ledger.balance, ledger.pending, ledger.next_change()) == (30, 30, 120)
