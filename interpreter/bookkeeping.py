"""Ledger entries from trace records: what a store's ledger keeps of one event or clock step.

``entries(...)`` walks the typed trace records of one ``Tally`` in order
and turns each point movement and reward into a ``LedgerEntry`` with the
customer's spendable and pending points just after it. It follows the
points ledger's own rules (debt is paid first, a refund takes the
purchase's pending points first) on a copy of the ledger as it was before,
so the last entry's figures are the customer's after the event — the tests
hold it to that.
"""

from __future__ import annotations

from typing import Any

from poletti.engine.compiler import CompiledProgram
from poletti.engine.ledger import PointsLedger
from poletti.engine.stores.base import LedgerEntry
from poletti.engine.timecalc import add_us
from poletti.interpreter.trace import (
    Converted, Earned, Expired, Granted, Multiplied, Redeemed, ReferralPaid, Released, Reversed, RewardExpired,
    RewardUsed,
)


class _Books:
    """The running figures while records become entries."""

    def __init__(self, before: PointsLedger, customer: str, program: str, compiled: CompiledProgram) -> None:
        self.ledger = before.copy()
        self.customer = customer
        self.program = program
        self.compiled = compiled
        self.out: list[LedgerEntry] = []
        self.expired_at: int | None = None  # the instant whose lots the copy has expired already
        self.released_at: int | None = None

    def add(self, event_id: str | None, at: int, kind: str, points: int, **fields: Any) -> None:
        self.out.append(LedgerEntry(self.customer, event_id, at, kind, points, self.ledger.balance,
                                    self.ledger.pending, self.program, **fields))

    def earn(self, event_id: str | None, at: int, points: int, rule: str, source: str, pending: bool) -> None:
        compiled = self.compiled
        expires = add_us(at, compiled.expire_after, compiled.tz) if compiled.expire_after else None
        available = add_us(at, compiled.pending_for, compiled.tz) if (pending and compiled.pending_for) else None
        if points > 0:
            self.ledger.earn(points, at, expires_at=expires, available_at=available, source=source)
            self.add(event_id, at, "earn", points, rule=rule, lot=source, expires_at=expires,
                     available_at=available if available is not None and available > at else None)


def entries(records: list[Any], event_start: int, before: PointsLedger, customer: str, event_id: str | None,
            event_type: str | None, program: str, compiled: CompiledProgram) -> list[LedgerEntry]:
    """The ledger entries of one event (``event_id``) or clock step (None).

    ``records[:event_start]`` are the clock's (the step that brought the
    customer to the event's instant): their entries carry no event id.
    """
    books = _Books(before, customer, program, compiled)
    earned_rules: list[tuple[int, int, str]] = []  # (at, points, rule) of the earn rules, until multipliers apply
    for index, record in enumerate(records):
        source = event_id if index >= event_start else None
        if isinstance(record, Earned):
            if record.fixed:
                books.earn(source, record.at, record.points, record.rule.text, event_id or "", event_type == "purchase")
            else:
                earned_rules.append((record.at, record.points, record.rule.text))
            continue
        if isinstance(record, Multiplied):
            # One entry for the scaled points: the rules that earned them, then the multipliers.
            earned_rules = [(record.at, record.after, "; ".join([rule for _, _, rule in earned_rules] +
                                                                [rule.text for rule in record.rules]))]
            continue
        if isinstance(record, RewardUsed):  # issue 13: the wallet moves, no points do
            books.add(source, record.at, "use", 0, reward=record.reward, count=1)
            continue
        if isinstance(record, RewardExpired):
            books.add(None, record.at, "reward_expire", 0, reward=record.reward, count=1)
            continue
        if not isinstance(record, _MOVEMENTS):
            continue  # skips, caps, tier and segment changes: no points move
        if earned_rules:  # the engine adds the event's points (one lot) before anything after step 3 moves
            _flush(books, earned_rules, source, event_id, event_type)
        if isinstance(record, Expired):
            if books.expired_at != record.at:
                books.ledger.expire_until(record.at)
                books.expired_at = record.at
            books.add(None, record.at, "expire", record.points, lot=record.source)
        elif isinstance(record, Released):
            if books.released_at != record.at:
                books.ledger.release_pending_until(record.at)
                books.released_at = record.at
            books.add(None, record.at, "release", record.points, lot=record.source)
        elif isinstance(record, Reversed):
            if record.points > 0:
                books.ledger.deduct(record.points, pending_source=record.purchase)
                books.add(source, record.at, "reverse", record.points, lot=record.purchase)
        elif isinstance(record, Redeemed):
            books.ledger.spend(record.points)
            books.add(source, record.at, "redeem", record.points, reward=record.reward, count=1)
        elif isinstance(record, Converted):
            points = record.points * record.count
            books.ledger.spend(points)
            target = record.target
            books.add(source, record.at, "spend", points, rule=record.rule.text,
                      reward=target if isinstance(target, str) else None, count=record.count)
            _grant(books, source, record.at, target, record.count, record.rule.text)
        elif isinstance(record, Granted):
            _grant(books, source, record.at, record.target, 1, record.rule.text)
        elif isinstance(record, ReferralPaid):  # a referral's grant: entered like any other rule's grant
            _grant(books, source, record.at, record.target, 1, record.rule.text)
    if earned_rules:
        _flush(books, earned_rules, event_id, event_id, event_type)
    return books.out


_MOVEMENTS = (Expired, Released, Reversed, Redeemed, Converted, Granted, ReferralPaid)


def _flush(books: _Books, earned_rules: list[tuple[int, int, str]], source: str | None, event_id: str | None,
           event_type: str | None) -> None:
    """The event's earn-rule entries (after any multipliers), one lot each, as the engine adds them in step 3."""
    for at, points, rule in earned_rules:
        books.earn(source, at, points, rule, event_id or "", event_type == "purchase")
    earned_rules.clear()


def _grant(books: _Books, source: str | None, at: int, target: str | int, count: int, rule: str) -> None:
    if isinstance(target, str):
        books.add(source, at, "reward", 0, rule=rule, reward=target, count=count)
    else:
        books.earn(source, at, target, rule, "grant", False)
