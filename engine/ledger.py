"""A customer's points as FIFO lots: earning, spending, refunds, expiry, pending.

Each earning forms a *lot*: points earned at one instant that expire
together (``points expire after 12m``) and may be held back for a while
(``points pending for 14d``). Spending takes from the oldest lot first, so
the points that expire soonest under a single expiry rule go first.

The ledger is plain data: a sorted list of frozen :class:`Lot` records and a
few integer totals (see :class:`PointsLedger`). It never reads the clock;
the engine moves it through time with :meth:`PointsLedger.expire_until` and
:meth:`PointsLedger.release_pending_until`, stepping to
:meth:`PointsLedger.next_change_after`.

All instants are timezone-aware; they are stored in UTC, because Python
compares two datetimes that share a ``tzinfo`` by wall clock, which misorders
the repeated hour when daylight saving time ends.

Accounting identity, after any sequence of operations::

    balance + pending + spent_total + expired_total + deducted_total == lifetime

(``balance`` is negative while the customer is in debt.)
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable
from datetime import datetime, timezone

import attrs

__all__ = [
    "ExpiredLot",
    "InsufficientPoints",
    "Lot",
    "PointsLedger",
    "ReleasedLot",
]

_UTC = timezone.utc


class InsufficientPoints(Exception):
    """A spend asked for more points than the spendable balance holds.

    ``requested`` and ``available`` (the balance then, possibly negative)
    are kept for the rejection reason the engine reports.
    """

    def __init__(self, requested: int, available: int) -> None:
        super().__init__(f"needs {requested} points, but the balance is {available}")
        self.requested = requested
        self.available = available


def _positive(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    # An empty lot is removed, never kept: zero-point lots would show up as
    # phantom expiries and make two equal ledgers compare unequal.
    if value <= 0:
        raise ValueError(f"a lot holds a positive number of points, got {value}")


@attrs.frozen
class Lot:
    """What is left of one earning.

    ``points``: remaining points (> 0). ``earned_at``: when earned (UTC); the
    FIFO order. ``expires_at``: the instant the lot is gone, or None.
    ``available_at``: when it becomes spendable, or None if it was at once.
    ``pending``: True until :meth:`PointsLedger.release_pending_until`
    passes ``available_at``. ``source``: what earned it (event id, rule).
    """

    points: int = attrs.field(validator=_positive)
    earned_at: datetime
    expires_at: datetime | None
    available_at: datetime | None
    source: str
    pending: bool = False


@attrs.frozen
class ExpiredLot:
    """The remainder of a lot removed by expiry: ``points`` gone at ``expires_at``.

    ``pending`` tells whether the points expired before they became spendable.
    """

    points: int
    earned_at: datetime
    expires_at: datetime
    source: str
    pending: bool


@attrs.frozen
class ReleasedLot:
    """Pending points that became spendable at ``available_at``."""

    points: int
    earned_at: datetime
    available_at: datetime
    source: str


def _check_points(points: object) -> int:
    # bool is an int subclass; `True` points is a bug upstream.
    if not isinstance(points, int) or isinstance(points, bool):
        raise TypeError(f"points must be an int, got {type(points).__name__}")
    if points < 0:
        raise ValueError(f"points must not be negative, got {points}")
    return points


def _instant(t: object, name: str) -> datetime:
    if not isinstance(t, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(t).__name__}")
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {t.isoformat()}")
    return t.astimezone(_UTC)


def _earned_at(lot: Lot) -> datetime:
    return lot.earned_at


class PointsLedger:
    """One customer's points balance as FIFO lots, with debt.

    State (plain attributes, all that is needed to rebuild the ledger with
    ``PointsLedger(**state)``):

    * ``lots``: list of :class:`Lot`, ordered by ``earned_at`` (ties: in the
      order earned), pending and spendable ones interleaved;
    * ``owed``: points of debt (>= 0); positive only when no lot is left;
    * ``earned_total``, ``spent_total``, ``expired_total``,
      ``deducted_total``: running totals (ints >= 0).

    Every operation validates its input first and changes nothing when it
    raises: ``TypeError`` for a non-int or non-datetime, ``ValueError`` for
    negative points, naive datetimes or inconsistent instants,
    :class:`InsufficientPoints` for a spend the balance cannot cover.
    """

    __slots__ = (
        "lots",
        "owed",
        "earned_total",
        "spent_total",
        "expired_total",
        "deducted_total",
    )

    def __init__(
        self,
        lots: Iterable[Lot] = (),
        owed: int = 0,
        earned_total: int = 0,
        spent_total: int = 0,
        expired_total: int = 0,
        deducted_total: int = 0,
    ) -> None:
        """Empty ledger, or one restored from its state; raises ``ValueError`` if inconsistent."""
        lot_list = list(lots)
        for name, value in (
            ("owed", owed),
            ("earned_total", earned_total),
            ("spent_total", spent_total),
            ("expired_total", expired_total),
            ("deducted_total", deducted_total),
        ):
            try:
                _check_points(value)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{name}: {exc}") from None
        for lot in lot_list:
            if not isinstance(lot, Lot):
                raise TypeError(f"lots must hold Lot records, got {type(lot).__name__}")
            if lot.pending and lot.available_at is None:
                raise ValueError("a pending lot needs an available_at")
        lot_list = [_normalised(lot) for lot in lot_list]
        if any(a.earned_at > b.earned_at for a, b in zip(lot_list, lot_list[1:])):
            raise ValueError("lots must be ordered by earned_at")
        if owed and lot_list:
            raise ValueError("a ledger in debt holds no lots: new points pay the debt first")
        held = sum(lot.points for lot in lot_list) - owed
        if held + spent_total + expired_total + deducted_total != earned_total:
            raise ValueError(
                "inconsistent totals: held + spent + expired + deducted must equal earned"
            )
        self.lots: list[Lot] = lot_list
        self.owed: int = owed
        self.earned_total: int = earned_total
        self.spent_total: int = spent_total
        self.expired_total: int = expired_total
        self.deducted_total: int = deducted_total

    # -- reading -------------------------------------------------------------

    @property
    def balance(self) -> int:
        """Spendable points now: released lots minus debt (negative while in debt)."""
        return sum(lot.points for lot in self.lots if not lot.pending) - self.owed

    @property
    def pending(self) -> int:
        """Points earned but not yet spendable."""
        return sum(lot.points for lot in self.lots if lot.pending)

    @property
    def lifetime(self) -> int:
        """All points ever earned; spending, expiry and deductions never lower it."""
        return self.earned_total

    @property
    def debt(self) -> int:
        """Points owed after deductions exceeded the holdings (>= 0)."""
        return self.owed

    @property
    def outstanding(self) -> int:
        """Balance plus pending points (what the simulate summary sums)."""
        return self.balance + self.pending

    def next_change_after(self, t: datetime) -> datetime | None:
        """Earliest expiry or pending release strictly after ``t`` (UTC), or None.

        The engine steps its clock from change to change with this.
        """
        instant = _instant(t, "t")
        times = [
            moment
            for lot in self.lots
            for moment in (lot.expires_at, lot.available_at if lot.pending else None)
            if moment is not None and moment > instant
        ]
        return min(times, default=None)

    def has_changes_due(self, t: datetime) -> bool:
        """True if an expiry or release at or before ``t`` has not been applied yet."""
        instant = _instant(t, "t")
        return any(_due(lot, instant) for lot in self.lots)

    # -- changing ------------------------------------------------------------

    def earn(
        self,
        points: int,
        at: datetime,
        expires_at: datetime | None = None,
        available_at: datetime | None = None,
        source: str = "",
    ) -> None:
        """Add ``points`` earned at ``at``; returns nothing.

        Debt is paid first; only the rest forms a lot (pending points pay
        debt too: they count as earned at once). ``expires_at`` must be after
        ``at``; ``available_at``, if given, not before it (equal to ``at``
        means spendable at once, later means pending). Zero points change
        nothing.
        """
        count = _check_points(points)
        earned = _instant(at, "at")
        expiry = None if expires_at is None else _instant(expires_at, "expires_at")
        release = None if available_at is None else _instant(available_at, "available_at")
        if not isinstance(source, str):
            raise TypeError(f"source must be a str, got {type(source).__name__}")
        if expiry is not None and expiry <= earned:
            raise ValueError(
                f"expires_at {expiry.isoformat()} must be after at {earned.isoformat()}"
            )
        if release is not None and release < earned:
            raise ValueError(
                f"available_at {release.isoformat()} must not be before at {earned.isoformat()}"
            )
        if count == 0:
            return
        repaid = min(self.owed, count)
        rest = count - repaid
        self.owed -= repaid
        self.earned_total += count
        if rest:
            lot = Lot(
                points=rest,
                earned_at=earned,
                expires_at=expiry,
                available_at=release,
                source=source,
                pending=release is not None and release > earned,
            )
            # insort puts a lot after others earned at the same instant: FIFO.
            insort(self.lots, lot, key=_earned_at)

    def spend(self, points: int, at: datetime) -> None:
        """Take ``points`` from spendable lots, oldest earned first; returns nothing.

        Raises :class:`InsufficientPoints` if the balance is short (so a
        spend never leaves it negative), and ``ValueError`` if an expiry or
        release at or before ``at`` has not been applied (the lots would
        be stale).
        """
        count = _check_points(points)
        self._require_current(at)
        balance = self.balance
        if count > balance:
            raise InsufficientPoints(count, balance)
        self.lots, _ = _take(self.lots, count, from_pending=False)
        self.spent_total += count

    def deduct(self, points: int, at: datetime, pending_source: str | None = None) -> None:
        """Remove ``points`` even beyond the balance (refund reversals); returns nothing.

        With ``pending_source``, first takes from the still-pending lots of
        that source (a refunded purchase's own points, inside its return
        window). Then takes from spendable lots oldest first, then from
        pending lots oldest first, and records whatever is left as debt,
        which later earnings pay first. Raises ``ValueError`` like
        :meth:`spend` if changes due at or before ``at`` have not been applied.
        """
        count = _check_points(points)
        self._require_current(at)
        lots, left = self.lots, count
        if pending_source is not None:
            result: list[Lot] = []
            for lot in lots:
                if left and lot.pending and lot.source == pending_source:
                    if lot.points > left:
                        result.append(attrs.evolve(lot, points=lot.points - left))
                        left = 0
                    else:
                        left -= lot.points
                else:
                    result.append(lot)
            lots = result
        lots, left = _take(lots, left, from_pending=False)
        lots, left = _take(lots, left, from_pending=True)
        self.lots = lots
        self.owed += left
        self.deducted_total += count

    def expire_until(self, t: datetime) -> list[ExpiredLot]:
        """Remove every lot with ``expires_at <= t``; return them by expiry time.

        A lot is gone *at* its ``expires_at``: ``expire_until(expires_at)``
        removes it, ``expire_until(expires_at - 1µs)`` keeps it. Pending lots
        expire too. Ties keep FIFO order.
        """
        instant = _instant(t, "t")
        expired: list[ExpiredLot] = []
        kept: list[Lot] = []
        for lot in self.lots:
            if lot.expires_at is not None and lot.expires_at <= instant:
                expired.append(
                    ExpiredLot(lot.points, lot.earned_at, lot.expires_at, lot.source, lot.pending)
                )
            else:
                kept.append(lot)
        if not expired:
            return expired
        # Stable sort: same expiry instant keeps earn order.
        expired.sort(key=_expired_at)
        self.lots = kept
        self.expired_total += sum(item.points for item in expired)
        return expired

    def release_pending_until(self, t: datetime) -> list[ReleasedLot]:
        """Make pending lots with ``available_at <= t`` spendable; return them by release time."""
        instant = _instant(t, "t")
        released: list[ReleasedLot] = []
        lots = list(self.lots)
        for i, lot in enumerate(lots):
            if lot.pending and lot.available_at is not None and lot.available_at <= instant:
                lots[i] = attrs.evolve(lot, pending=False)
                released.append(
                    ReleasedLot(lot.points, lot.earned_at, lot.available_at, lot.source)
                )
        if released:
            released.sort(key=_released_at)
            self.lots = lots
        return released

    # -- plumbing ------------------------------------------------------------

    def copy(self) -> PointsLedger:
        """An independent ledger with the same state (lots are immutable, so shared)."""
        clone = PointsLedger.__new__(PointsLedger)
        clone.lots = list(self.lots)
        clone.owed = self.owed
        clone.earned_total = self.earned_total
        clone.spent_total = self.spent_total
        clone.expired_total = self.expired_total
        clone.deducted_total = self.deducted_total
        return clone

    def _state(self) -> tuple[object, ...]:
        return (
            self.lots,
            self.owed,
            self.earned_total,
            self.spent_total,
            self.expired_total,
            self.deducted_total,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PointsLedger):
            return NotImplemented
        return self._state() == other._state()

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable

    def __repr__(self) -> str:
        return (
            f"PointsLedger(balance={self.balance}, pending={self.pending}, "
            f"lifetime={self.lifetime}, debt={self.debt}, lots={len(self.lots)})"
        )

    def _require_current(self, at: datetime) -> None:
        instant = _instant(at, "at")
        for lot in self.lots:
            if _due(lot, instant):
                raise ValueError(
                    f"ledger has an expiry or release due at or before {instant.isoformat()}; "
                    "apply expire_until / release_pending_until first"
                )


def _due(lot: Lot, instant: datetime) -> bool:
    if lot.expires_at is not None and lot.expires_at <= instant:
        return True
    return lot.pending and lot.available_at is not None and lot.available_at <= instant


def _expired_at(item: ExpiredLot) -> datetime:
    return item.expires_at


def _released_at(item: ReleasedLot) -> datetime:
    return item.available_at


def _normalised(lot: Lot) -> Lot:
    # Restored state may carry local-zone datetimes; keep UTC inside (see module doc).
    return attrs.evolve(
        lot,
        earned_at=_instant(lot.earned_at, "earned_at"),
        expires_at=None if lot.expires_at is None else _instant(lot.expires_at, "expires_at"),
        available_at=None
        if lot.available_at is None
        else _instant(lot.available_at, "available_at"),
    )


def _take(lots: list[Lot], points: int, *, from_pending: bool) -> tuple[list[Lot], int]:
    """Take up to ``points`` from the lots of one kind, oldest first.

    Input: lots in FIFO order, points to take, which kind (pending or
    spendable). Output: a new list (the input is not touched, so a caller
    can still abandon the change) and the points that could not be taken.
    """
    if points == 0:
        return lots, 0
    left = points
    result: list[Lot] = []
    for lot in lots:
        if left == 0 or lot.pending != from_pending:
            result.append(lot)
        elif lot.points > left:
            result.append(attrs.evolve(lot, points=lot.points - left))
            left = 0
        else:
            left -= lot.points
    return result, left
