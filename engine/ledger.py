"""A customer's points: spendable points, FIFO lots that expire or wait, and debt.

Points earned at one instant that expire together (``points expire after
12m``) or are held back for a while (``points pending for 14d``) form a
*lot*. Spending takes from the oldest lot first, so the points that expire
soonest go first. Points that can neither expire nor wait (a program without
either rule, or pending points once released in such a program) need no
lot: they are a single count, ``free``, since the order in which they are
spent changes nothing. A program with ``points expire after`` puts every
point in a lot; one without it keeps lots only for pending points.

Instants are integers, microseconds since the epoch (see
``poletti.engine.timecalc``). The ledger never reads the clock: the engine
moves it through time with :meth:`PointsLedger.expire_until` and
:meth:`PointsLedger.release_pending_until`, stepping to
:meth:`PointsLedger.next_change`. Balances are kept as running totals, so
reading one is O(1).

Accounting identity, after any sequence of operations::

    balance + pending + spent_total + expired_total + deducted_total == lifetime

(``balance`` is negative while the customer is in debt.)
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable

import attrs

from poletti.dsl import classes

__all__ = ["ExpiredLot", "InsufficientPoints", "Lot", "PointsLedger", "ReleasedLot"]


class InsufficientPoints(Exception):
    """A spend asked for more points than the spendable balance holds."""

    def __init__(self, requested: int, available: int) -> None:
        super().__init__(f"needs {requested} points, but the balance is {available}")
        self.requested = requested
        self.available = available


@classes.define
class Lot:
    """What is left of one earning that can expire or is still pending.

    ``points`` > 0 remain; ``earned_at`` orders the lots (FIFO);
    ``expires_at`` is the instant the lot is gone (None: never);
    ``available_at`` when it becomes spendable (None: at once); ``pending``
    stays True until the clock passes ``available_at``; ``source`` is what
    earned it (an event id, or "grant").
    """

    points: int
    earned_at: int
    expires_at: int | None
    available_at: int | None
    source: str
    pending: bool = False


@classes.frozen
class ExpiredLot:
    """The remainder of a lot removed by expiry: ``points`` gone at ``expires_at``."""

    points: int
    earned_at: int
    expires_at: int
    source: str
    pending: bool


@classes.frozen
class ReleasedLot:
    """Pending points that became spendable at ``available_at``."""

    points: int
    earned_at: int
    available_at: int
    source: str


def _sooner(expiry: int | None, release: int | None) -> int | None:
    """The sooner of two known instants, None standing for "never"."""
    return release if expiry is None else expiry if release is None or expiry < release else release


def _earned_at(lot: Lot) -> int:
    return lot.earned_at


def _expires_at(lot: ExpiredLot) -> int:
    return lot.expires_at


_UNKNOWN = -(1 << 80)  # the next change must be worked out again
# ``PointsLedger._next`` holds this while its next change is to be worked out again (the generated code reads the
# kept answer in place, and calls ``next_change()`` only then).
NEXT_CHANGE_UNKNOWN = _UNKNOWN


class PointsLedger:
    """One customer's points balance: ``free`` points, FIFO ``lots``, debt and running totals.

    ``PointsLedger.restore(**state)`` rebuilds one from ``state()`` and checks
    that it is consistent; the engine builds them empty.
    """

    __slots__ = ("free", "lots", "owed", "earned_total", "spent_total", "expired_total", "deducted_total",
                 "_spendable_in_lots", "_pending", "_next", "_expiry", "_release", "_last_release")

    def __init__(self) -> None:
        self.free = 0  # spendable points that never expire
        # No lots until one is needed: an empty tuple is not a container the garbage collector must walk.
        self.lots: list[Lot] = ()  # type: ignore[assignment]
        self.owed = 0  # debt: positive only when no points are left anywhere
        self.earned_total = 0
        self.spent_total = 0
        self.expired_total = 0
        self.deducted_total = 0
        self._spendable_in_lots = 0
        self._pending = 0
        self._next: int | None = None
        # The earliest expiry and the earliest pending release among the lots (None: none; _UNKNOWN: work it out).
        self._expiry: int | None = None
        self._release: int | None = None
        # The pending lots' latest ``available_at`` while, in list order, they become spendable in order (each no
        # earlier than the one before it: so it goes when the program's pending time is fixed and the lots come
        # in time order); _UNKNOWN when that is not known. Then a release can stop at the first lot still to wait.
        self._last_release: int | None = None

    # -- reading -------------------------------------------------------------

    @property
    def balance(self) -> int:
        """Spendable points now (negative while in debt)."""
        return self.free + self._spendable_in_lots - self.owed

    @property
    def pending(self) -> int:
        """Points earned but not yet spendable."""
        return self._pending

    @property
    def lifetime(self) -> int:
        """All points ever earned; spending, expiry and deductions never lower it."""
        return self.earned_total

    @property
    def debt(self) -> int:
        return self.owed

    @property
    def outstanding(self) -> int:
        """Balance plus pending points (what the simulate summary sums)."""
        return self.balance + self._pending

    def next_change(self) -> int | None:
        """The earliest expiry or pending release not applied yet, or None."""
        if self._next == _UNKNOWN:
            self._next = _sooner(self._soonest_expiry(), self._soonest_release())
        return self._next

    def _soonest_expiry(self) -> int | None:
        """The earliest ``expires_at`` among the lots (None: none expires)."""
        soonest = self._expiry
        if soonest == _UNKNOWN:
            soonest = self._expiry = min((lot.expires_at for lot in self.lots if lot.expires_at is not None),
                                         default=None)
        return soonest

    def _soonest_release(self) -> int | None:
        """The earliest ``available_at`` among the pending lots (None: nothing is pending)."""
        soonest = self._release
        if soonest == _UNKNOWN:
            soonest = self._release = min((lot.available_at for lot in self.lots
                                           if lot.pending and lot.available_at is not None), default=None)
        return soonest

    # -- changing ------------------------------------------------------------

    def earn(self, points: int, at: int, expires_at: int | None = None, available_at: int | None = None,
             source: str = "") -> None:
        """Add ``points`` earned at ``at``. Debt is paid first (pending points pay it too: they count as earned)."""
        if points < 0:
            raise ValueError(f"points must not be negative, got {points}")
        if points == 0:
            return
        self.earned_total += points
        rest = points
        if self.owed:  # debt is paid first
            repaid = self.owed if self.owed < points else points
            self.owed -= repaid
            rest -= repaid
            if not rest:
                return
        pending = available_at is not None and available_at > at
        if expires_at is None and not pending:
            self.free += rest
            return
        lot = Lot(rest, at, expires_at, available_at if pending else None, source, pending)
        appended = True
        if not self.lots:
            self.lots = [lot]
        elif self.lots[-1].earned_at > at:
            insort(self.lots, lot, key=_earned_at)  # restored or replayed out of order: keep FIFO
            appended = False
        else:
            self.lots.append(lot)
        if pending:
            last = self._last_release
            if not self._pending:
                self._last_release = available_at  # the only pending lot: in order by itself
            elif appended and last is not None and last != _UNKNOWN and available_at >= last:
                self._last_release = available_at
            else:
                self._last_release = _UNKNOWN  # (out of order, or after the order was lost)
            self._pending += rest
        else:
            self._spendable_in_lots += rest
        # The soonest expiry, release and change, each kept up to date unless it is to be worked out again.
        if expires_at is not None:
            soonest = self._expiry
            if soonest is None or (soonest != _UNKNOWN and expires_at < soonest):
                self._expiry = expires_at
            soonest = self._next
            if soonest is None or (soonest != _UNKNOWN and expires_at < soonest):
                self._next = expires_at
        if pending:
            soonest = self._release
            if soonest is None or (soonest != _UNKNOWN and available_at < soonest):
                self._release = available_at
            soonest = self._next
            if soonest is None or (soonest != _UNKNOWN and available_at < soonest):
                self._next = available_at

    def spend(self, points: int) -> None:
        """Take ``points`` from spendable points, oldest lot first; :class:`InsufficientPoints` if short."""
        if points < 0:
            raise ValueError(f"points must not be negative, got {points}")
        balance = self.free + self._spendable_in_lots - self.owed
        if points > balance:
            raise InsufficientPoints(points, balance)
        if points <= self.free:  # free points cover it (``_take_spendable``'s first step, all it would do)
            self.free -= points
        else:
            self._take_spendable(points)
        self.spent_total += points

    def deduct(self, points: int, pending_source: str | None = None) -> None:
        """Remove ``points`` even beyond the balance (refund reversals).

        With ``pending_source``, first from the still-pending lots of that
        source (a refunded purchase's own points, inside its return window);
        then from spendable points oldest first, then from pending lots
        oldest first; whatever is left becomes debt, which later earnings pay first.
        """
        if points < 0:
            raise ValueError(f"points must not be negative, got {points}")
        left = points
        if pending_source is not None and self._pending:
            left = self._take_lots(left, True, pending_source)
        left = self._take_spendable(left)
        if left and self._pending:
            left = self._take_lots(left, True)
        self.owed += left
        self.deducted_total += points

    def expire_until(self, t: int) -> list[ExpiredLot]:
        """Remove every lot with ``expires_at <= t``; return them by expiry instant (ties in FIFO order)."""
        soonest = self._soonest_expiry()
        if soonest is None or soonest > t:  # nothing expires until then
            return []
        expired: list[ExpiredLot] = []
        kept: list[Lot] = []
        for lot in self.lots:
            ends = lot.expires_at
            if ends is not None and ends <= t:
                expired.append(ExpiredLot(lot.points, lot.earned_at, ends, lot.source, lot.pending))
            else:
                kept.append(lot)
        if not expired:
            return expired
        self.lots = kept
        expired.sort(key=_expires_at)
        for item in expired:
            if item.pending:
                self._pending -= item.points
            else:
                self._spendable_in_lots -= item.points
            self.expired_total += item.points
        self._keep(kept)
        return expired

    def release_pending_until(self, t: int) -> list[ReleasedLot]:
        """Make pending lots with ``available_at <= t`` spendable; return them by release instant."""
        released: list[ReleasedLot] = []
        self._release_until(t, released)
        return released

    def _release_until(self, t: int, released: list[ReleasedLot] | None = None) -> bool:
        """``release_pending_until``'s work, recording what it released on ``released`` (None: nothing kept);
        whether it released any. (The clock of the generated code calls it once a release is due, for about
        every purchase of a program with `points pending`: the soonest release is read in place when known.)"""
        if not self._pending:
            return False
        soonest = self._release
        if soonest == _UNKNOWN:
            soonest = self._soonest_release()
        if soonest is None or soonest > t:  # nothing is released until then
            return False
        any_released = False
        freed: set[int] | None = None  # ids of the lots that no longer need to be lots
        left: int | None = None  # the earliest release still to come (this pass finds it: no second pass)
        last = self._last_release
        in_order = last is not None and last != _UNKNOWN
        for lot in self.lots:
            if not lot.pending:
                continue
            available_at = lot.available_at
            if available_at is None:
                continue
            if available_at > t:
                if left is None or available_at < left:
                    left = available_at
                if in_order:
                    break  # every pending lot after it becomes spendable no earlier
                continue
            any_released = True
            if released is not None:
                released.append(ReleasedLot(lot.points, lot.earned_at, available_at, lot.source))
            self._pending -= lot.points
            if lot.expires_at is None:
                self.free += lot.points  # it can never expire: no lot needed any more
                if freed is None:
                    freed = set()
                freed.add(id(lot))
                continue
            lot.pending = False
            self._spendable_in_lots += lot.points
        if any_released:
            if freed:
                self.lots = [lot for lot in self.lots if id(lot) not in freed]
            if released:
                released.sort(key=lambda item: item.available_at)
            # Releasing changes no expiry (a lot freed from the list never expires): only the next release moves,
            # and with the soonest expiry known the next change is the sooner of the two (``next_change``).
            self._release = left
            expiry = self._expiry
            self._next = _UNKNOWN if expiry == _UNKNOWN else _sooner(expiry, left)
        return any_released

    # ``release_pending_until`` without the records of what it released: whether it released any.
    release_due = _release_until

    # -- plumbing ------------------------------------------------------------

    def _take_spendable(self, points: int) -> int:
        """Take up to ``points`` spendable points (free ones, then lots oldest first); return what is left."""
        taken = min(points, self.free)
        self.free -= taken
        left = points - taken
        if left and self._spendable_in_lots:
            left = self._take_lots(left, False)
        return left

    def _take_lots(self, points: int, pending: bool, source: str | None = None) -> int:
        """Take up to ``points`` from the spendable lots (``pending`` False) or the pending ones (True; of
        ``source`` only, when given), oldest first; return what is left. (The test written out, not a function
        called for every lot: a spend walks the lots once per conversion.)"""
        left = points
        kept: list[Lot] = []
        for lot in self.lots:
            if left and (lot.pending if pending else not lot.pending) and (source is None or lot.source == source):
                taken = min(left, lot.points)
                left -= taken
                if lot.pending:
                    self._pending -= taken
                else:
                    self._spendable_in_lots -= taken
                if taken == lot.points:
                    continue
                lot.points -= taken
            kept.append(lot)
        if len(kept) != len(self.lots):
            self._keep(kept)
        return left

    def _keep(self, lots: list[Lot]) -> None:
        """Keep only ``lots`` (some were removed), with their soonest expiry and release worked out now, in one
        pass: ``next_change`` would otherwise look at every lot again, twice."""
        expiry = release = None
        for lot in lots:
            ends = lot.expires_at
            if ends is not None and (expiry is None or ends < expiry):
                expiry = ends
            if lot.pending and lot.available_at is not None and (release is None or lot.available_at < release):
                release = lot.available_at
        self.lots = lots
        self._expiry, self._release = expiry, release
        self._next = _sooner(expiry, release)

    def state(self) -> dict[str, object]:
        """Everything needed to rebuild the ledger with :meth:`restore`."""
        return {
            "free": self.free,
            "lots": [attrs.evolve(lot) for lot in self.lots],
            "owed": self.owed,
            "earned_total": self.earned_total,
            "spent_total": self.spent_total,
            "expired_total": self.expired_total,
            "deducted_total": self.deducted_total,
        }

    @classmethod
    def restore(cls, free: int = 0, lots: Iterable[Lot] = (), owed: int = 0, earned_total: int = 0,
                spent_total: int = 0, expired_total: int = 0, deducted_total: int = 0) -> PointsLedger:
        """A ledger from :meth:`state`; ``ValueError`` if the figures do not add up."""
        ledger = cls()
        ledger.free, ledger.owed = free, owed
        ledger.earned_total, ledger.spent_total = earned_total, spent_total
        ledger.expired_total, ledger.deducted_total = expired_total, deducted_total
        ledger.lots = sorted((attrs.evolve(lot) for lot in lots), key=_earned_at)
        for name in ("free", "owed", "earned_total", "spent_total", "expired_total", "deducted_total"):
            value = getattr(ledger, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a whole number of points >= 0, got {value!r}")
        for lot in ledger.lots:
            if lot.points <= 0:
                raise ValueError(f"a lot holds a positive number of points, got {lot.points}")
            if lot.pending and lot.available_at is None:
                raise ValueError("a pending lot needs an available_at")
            if lot.pending:
                ledger._pending += lot.points
            else:
                ledger._spendable_in_lots += lot.points
        if owed and (ledger.lots or free):
            raise ValueError("a ledger in debt holds no points: new points pay the debt first")
        held = free + ledger._spendable_in_lots + ledger._pending - owed
        if held + spent_total + expired_total + deducted_total != earned_total:
            raise ValueError("inconsistent totals: held + spent + expired + deducted must equal earned")
        ledger._next = ledger._expiry = ledger._release = _UNKNOWN
        ledger._last_release = _UNKNOWN if ledger._pending else None  # (restored lots: their order not known)
        return ledger

    def copy(self) -> PointsLedger:
        """An independent ledger with the same state."""
        clone = PointsLedger.__new__(PointsLedger)
        for name in PointsLedger.__slots__:
            setattr(clone, name, getattr(self, name))
        clone.lots = [attrs.evolve(lot) for lot in self.lots]
        return clone

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PointsLedger):
            return NotImplemented
        return self.state() == other.state()

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable

    def __repr__(self) -> str:
        return (f"PointsLedger(balance={self.balance}, pending={self.pending}, "
                f"lifetime={self.lifetime}, debt={self.debt}, lots={len(self.lots)})")
