"""What the engine remembers about one customer.

``CustomerState`` holds everything a rule can read or that decides a future
change: the points ledger, purchases and rolling-window totals, streaks,
stamp counters, cap usage, tier and ``keep`` deadlines, segments, trigger
memory, birthday, and running totals for reports. Rule-indexed fields are
lists in rule order (the compiled program gives each rule a slot), so
evaluation never looks anything up by name.

Representation (shared by the interpreter and the generated code, and what
the stores persist): instants are ``int`` microseconds since the epoch,
money is ``int`` micro-units of the program currency
(``poletti.engine.money``), points are ``int``. The state is plain data
(attrs classes, lists, dicts, ints); ``poletti.engine.serial`` turns it into
JSON-ready dicts and back.

Two forms are chosen for the garbage collector, not for reading (the
comments below say why): the purchases are one flat list, seven values a
purchase (read them with ``purchase_records()``, ``purchase_record(i)``,
``purchase(id)``; stored, each is one record), and ``rewards``, ``caps`` and
``last_grant`` are None until something goes in them (``granted`` reads the
rewards as a dict either way).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Iterable

import attrs

from poletti.dsl import classes
from poletti.engine.ledger import PointsLedger


# One purchase: (id, at, amount, refunded, points, reversed, partner), money in micro-units. ``refunded``: how
# much of it has been refunded; ``points``: P, what it earned in step 3; ``reversed``: the points refunds have
# taken back; ``partner``: where it was bought (a refund's reversal is the partner's too), or None.
# A state keeps its purchases flat: ``CustomerState.purchases`` holds the seven fields of each purchase one after
# the other (purchase i's field F is ``purchases[i * PURCHASE_FIELDS + F]``), and ``purchase_record`` gives one
# as this tuple. Why flat: the garbage collector counts every tuple when it is made, even one it later stops
# tracking, and a full pass comes every so many objects kept; a tuple per purchase was a quarter of what the
# CDNOW-like benchmark history kept (with three empty dicts per customer, below, one full pass of three).
PurchaseRecord = tuple[str, int, int, int, int, int, str | None]
ID, AT, AMOUNT, REFUNDED, POINTS, REVERSED, PARTNER = range(7)
PURCHASE_FIELDS = 7


# Why a refund may not go ahead (``CustomerState.refund_refusal``).
REFUND_UNKNOWN, REFUND_NOTHING_LEFT, REFUND_TOO_MUCH = "unknown purchase", "nothing left", "more than is left"


def new_purchase(purchase_id: str, at: int, amount: int, partner: str | None = None) -> PurchaseRecord:
    """The record of a purchase just made: nothing refunded, earned or reversed yet."""
    return (purchase_id, at, amount, 0, 0, 0, partner)


def replaced(values: tuple[Any, ...], index: int, value: Any) -> tuple[Any, ...]:
    """``values`` with ``value`` at ``index`` (a state's per-rule tuples change by replacement)."""
    return values[:index] + (value,) + values[index + 1:]


def flat_purchases(records: "Iterable[PurchaseRecord]") -> list[Any]:
    """Purchase records → ``CustomerState.purchases``' flat list."""
    flat: list[Any] = []
    for record in records:
        if len(record) != PURCHASE_FIELDS:
            raise ValueError(f"a purchase has {PURCHASE_FIELDS} fields, not {len(record)}: {record!r}")
        flat.extend(record)
    return flat


@classes.define
class CapUsage:
    """How much of one rule's cap is used.

    Calendar caps keep the current period's key and total; rolling caps keep
    (instant the use leaves the window, amount) for the uses still inside.
    """

    period: tuple[object, ...] | None = None
    used: int = 0
    entries: list[tuple[int, int]] = attrs.Factory(list)


@classes.define
class Totals:
    """Running figures for reports (simulate sums them over customers); ``cost`` in micro-units."""

    earned: int = 0
    spent: int = 0
    expired: int = 0
    reversed: int = 0
    cost: int = 0


# A window's exit entry: one int, ``leaves << EXIT_SHIFT`` plus (index into ``purchases``) + 1, where index -1
# is a visit (only counted). Ints order as the (leaves, index) pairs did, so the heap is the same heap; but an
# int is no object for the garbage collector to count, where a pair was one more per purchase, and the passes
# come every so many objects kept (one full pass fewer on the CDNOW-like benchmark history, a quarter of the
# collector's time). An index takes 32 bits: a customer would need 4,294,967,295 purchases to overflow it.
EXIT_SHIFT = 32
EXIT_INDEX_MASK = (1 << EXIT_SHIFT) - 1


def window_exit(leaves: int, index: int) -> int:
    """The exit entry of the purchase at ``index`` (-1: a visit) that leaves its window at ``leaves`` (µs)."""
    return (leaves << EXIT_SHIFT) + index + 1


def exit_leaves(entry: int) -> int:
    """When an exit entry's purchase or visit leaves its window (µs)."""
    return entry >> EXIT_SHIFT


def exit_index(entry: int) -> int:
    """An exit entry's index into ``purchases`` (-1: a visit)."""
    return (entry & EXIT_INDEX_MASK) - 1


class WindowTotals(list):  # type: ignore[type-arg]
    """What one rolling window holds now: running totals, and when each entry leaves.

    An entry (a purchase or a visit) at instant p is inside from p until
    ``add(p, W)`` (the contract: p + W, exclusive). The clock pops entries
    from ``exits`` (a heap of ``window_exit`` entries) as their instant
    comes, so reading a window is O(1).

    The window is itself that heap (``exits`` is the window): one object a
    window, where an attrs class holding a list was two. Every object a
    state keeps is one more for each pass of the garbage collector to walk,
    and one list more per customer cost about 3% of ``Engine.process`` on the
    CDNOW-like benchmark program (``docs/performance.md``). Equal, printed and
    stored as the attrs class it was: ``spend``, ``count`` and ``exits``.
    """

    __slots__ = ("spend", "count")

    def __init__(self, spend: int = 0, count: int = 0, exits: Iterable[int] = ()) -> None:
        list.__init__(self, exits)
        self.spend = spend  # net amount of the purchases inside, in micro-units
        self.count = count

    @property
    def exits(self) -> list[int]:
        """The heap of ``window_exit`` entries: the window itself."""
        return self

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not WindowTotals:
            return NotImplemented
        return (self.spend == other.spend and self.count == other.count  # type: ignore[attr-defined]
                and list.__eq__(self, other))  # type: ignore[arg-type]

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]  # (mutable, as a list)

    def __reduce__(self) -> tuple[Any, ...]:  # (pickle and copy: a list subclass with slots needs saying how)
        return WindowTotals, (self.spend, self.count, list(self))

    def __repr__(self) -> str:
        return f"WindowTotals(spend={self.spend!r}, count={self.count!r}, exits={list(self)!r})"


@classes.define
class CustomerState:
    customer: str
    ledger: PointsLedger = attrs.Factory(PointsLedger)
    first_seen: int | None = None
    last_event_at: int | None = None
    # The instant up to which time-driven changes have been applied.
    clock: int | None = None
    last_purchase_at: int | None = None
    birthday: date | None = None
    # The local calendar year of the last birthday celebrated: at most one a
    # year, even when the customer moves their birthday to a later date.
    birthday_year: int | None = None
    # Purchases in time order (refunds look them up; reports count them), flat: PURCHASE_FIELDS values each
    # (``purchase_count``, ``purchase_record``, ``purchase_records``).
    purchases: list[Any] = attrs.Factory(list)
    spend_total: int = 0  # net amount of every purchase: spend_lifetime
    visit_count: int = 0
    # One per rolling window the program reads, by the compiled window slot.
    windows: list[WindowTotals] = attrs.Factory(list)
    # Calendar days (program zone, as ordinals) with a visit or purchase: the
    # last one and the length of the run of consecutive days ending there.
    last_active_day: int | None = None
    day_run: int = 0
    last_active_week: int | None = None  # ordinal of the week's Monday
    week_run: int = 0
    # Per user metric: (instant, instant it leaves the metric's window or
    # None, value) of every matching event still inside, in time order.
    metric_events: list[list[tuple[int, int | None, Decimal]]] = attrs.Factory(list)
    stamps: list[int] = attrs.Factory(list)
    # Rule index → cap usage; None until a capped rule first counts (``cap_usage``). This, ``last_grant`` and
    # ``rewards`` are None rather than empty dicts: an empty dict is one more object the garbage collector
    # counts, for every customer, and most customers never need two of the three.
    caps: dict[int, CapUsage] | None = None
    tier: int = 0  # rank; 0 is "no tier"
    # Each tier's condition at the last evaluation, and the end of its ``keep`` (None: not kept). Tuples,
    # replaced when a value changes (``replaced``; rare): a tuple of plain values is not an object the garbage
    # collector walks, and these two were two lists per customer.
    tier_held: tuple[bool, ...] = ()
    tier_keep_until: tuple[int | None, ...] = ()
    segments: list[bool] = attrs.Factory(list)
    when_active: list[bool] = attrs.Factory(list)
    last_grant: dict[int, int] | None = None  # rule index → last grant, for `once` (None: none yet)
    # Reward → how many were granted (None: none yet; ``granted`` reads it, ``grant_reward`` adds to it).
    rewards: dict[str, int] | None = None
    # Running figures for reports, as plain fields (one object fewer per customer for the garbage
    # collector to walk); ``totals`` reads them as a ``Totals``.
    total_earned: int = 0
    total_spent: int = 0
    total_expired: int = 0
    total_reversed: int = 0
    total_cost: int = 0
    # ---- issue 13: the wallet and partner figures. All default to "nothing" without an object, so a
    # program that does not use them keeps no more per customer than before, and states stored before
    # these fields existed read back unchanged.
    # Held rewards that can expire, as a heap of (ends at, granted at, reward): the first to end first.
    # A reward that never expires is held by count: granted − used − expired (``held``).
    wallet: list[tuple[int, int, str]] = attrs.field(default=())  # () until the first such grant
    rewards_used: dict[str, int] | None = None
    rewards_expired: dict[str, int] | None = None
    total_cost_used: int = 0  # micro-units: the worth of the rewards used, percentages included
    # Partner → [points earned there, points of those reversed by refunds, points redeemed there].
    partner_points: dict[str, list[int]] | None = None
    # Referrals (docs/language.md "Referrals"; interpreter/referrals.py): who referred this customer, and the
    # referral rules already settled for them (paid, or refused by the referrer's cap): each pays once a friend.
    # A state made by a referral alone (``last_event_at`` None) is a friend not yet seen: not a customer yet.
    referred_by: str | None = None
    referral_settled: tuple[int, ...] = ()
    # Shared accounts (interpreter/accounts.py): the account this contact belongs to, fixed by their first event
    # (None: their own figures). An account's own state is stored under ``accounts.account_key(id)``.
    account: str | None = None
    # The next change (``next_change_at``) as worked out when the state was
    # last saved, at clock ``next_change_clock`` (None: not known): the next
    # event's clock step starts from it instead of working it out again, while
    # the clock is still there. Two integers rather than one (clock, instant)
    # tuple: saving a state then allocates nothing, and every allocation a
    # long-lived state keeps brings the next garbage collection closer.
    next_change_clock: int | None = None
    next_change_at: int | None = None

    def remember_next_change(self, instant: int | None) -> None:
        """Note ``instant`` as the next change from the current clock (``next_change_at``)."""
        self.next_change_clock = self.clock
        self.next_change_at = instant

    @property
    def totals(self) -> Totals:
        """The running report figures (a copy: add to the ``total_*`` fields)."""
        return Totals(self.total_earned, self.total_spent, self.total_expired, self.total_reversed, self.total_cost)

    def held(self, reward: str) -> int:
        """How many of ``reward`` the customer holds now: each grant is held until used or expired."""
        used = self.rewards_used.get(reward, 0) if self.rewards_used else 0
        expired = self.rewards_expired.get(reward, 0) if self.rewards_expired else 0
        return (self.rewards.get(reward, 0) if self.rewards else 0) - used - expired

    @property
    def granted(self) -> dict[str, int]:
        """Reward → how many were granted (a copy; ``grant_reward`` adds)."""
        return dict(self.rewards) if self.rewards else {}

    def grant_reward(self, reward: str, count: int) -> None:
        rewards = self.rewards
        if rewards is None:
            rewards = self.rewards = {}
        rewards[reward] = rewards.get(reward, 0) + count

    def cap_usage(self, index: int) -> CapUsage:
        """Rule ``index``'s cap usage (made when first asked for)."""
        caps = self.caps
        if caps is None:
            caps = self.caps = {}
        usage = caps.get(index)
        if usage is None:
            usage = caps[index] = CapUsage()
        return usage

    def last_granted(self, index: int) -> int | None:
        """When rule ``index`` last granted (for `once`), or None."""
        return self.last_grant.get(index) if self.last_grant else None

    def note_grant(self, index: int, at: int) -> None:
        if self.last_grant is None:
            self.last_grant = {}
        self.last_grant[index] = at

    # -- purchases (flat: see PurchaseRecord) --------------------------------

    @property
    def purchase_count(self) -> int:
        return len(self.purchases) // PURCHASE_FIELDS

    def purchase_record(self, index: int) -> PurchaseRecord:
        """Purchase ``index`` (0 the first; -1 the last) as a ``PurchaseRecord``."""
        if index < 0:
            index += self.purchase_count
        start = index * PURCHASE_FIELDS
        return tuple(self.purchases[start:start + PURCHASE_FIELDS])  # type: ignore[return-value]

    def purchase_records(self) -> list[PurchaseRecord]:
        """Every purchase as a ``PurchaseRecord``, in time order."""
        flat = self.purchases
        return [tuple(flat[start:start + PURCHASE_FIELDS])  # type: ignore[misc]
                for start in range(0, len(flat), PURCHASE_FIELDS)]

    def add_purchase(self, purchase_id: str, at: int, amount: int, partner: str | None = None) -> int:
        """Record a purchase just made; returns its index."""
        index = len(self.purchases) // PURCHASE_FIELDS
        self.purchases += new_purchase(purchase_id, at, amount, partner)
        return index

    def set_purchase_points(self, index: int, points: int) -> None:
        """The points purchase ``index`` earned (step 3)."""
        if index < 0:
            index += self.purchase_count
        self.purchases[index * PURCHASE_FIELDS + POINTS] = points

    def purchase_net(self, index: int) -> int:
        """What is left of purchase ``index`` after its refunds."""
        start = index * PURCHASE_FIELDS
        return self.purchases[start + AMOUNT] - self.purchases[start + REFUNDED]

    def purchase_index(self, purchase_id: str) -> int | None:
        """Where the purchase is in ``purchases`` (the latest first: refunds follow their purchase closely)."""
        purchases = self.purchases
        for start in range(len(purchases) - PURCHASE_FIELDS, -1, -PURCHASE_FIELDS):
            if purchases[start] == purchase_id:
                return start // PURCHASE_FIELDS
        return None

    def refund_refusal(self, purchase_id: str, amount: int | None) -> tuple[int | None, int, str | None]:
        """Whether a refund of ``amount`` (None: all that is left) of purchase ``purchase_id`` may go ahead:
        (the purchase's index, what is left of it, None), or why not: ``REFUND_UNKNOWN`` (no purchase of this
        customer's has that id), ``REFUND_NOTHING_LEFT`` or ``REFUND_TOO_MUCH`` (more than is left).

        The one place these rules are written: ``Stepper.check`` turns a refusal into its reason, and the
        generated lane hands a refused refund to the engine's own path, which does so.
        """
        index = self.purchase_index(purchase_id)
        if index is None:
            return None, 0, REFUND_UNKNOWN
        left = self.purchase_net(index)
        if left <= 0:
            return index, left, REFUND_NOTHING_LEFT
        if amount is not None and amount > left:
            return index, left, REFUND_TOO_MUCH
        return index, left, None

    def purchase(self, purchase_id: str) -> PurchaseRecord | None:
        index = self.purchase_index(purchase_id)
        return None if index is None else self.purchase_record(index)

    def refund_purchase(self, index: int, amount: int) -> PurchaseRecord:
        """Add ``amount`` to what has been refunded of purchase ``index``; returns the new record."""
        self.purchases[index * PURCHASE_FIELDS + REFUNDED] += amount
        return self.purchase_record(index)

    def reverse_purchase_points(self, index: int, reversed_points: int) -> None:
        """Note that refunds have now taken back ``reversed_points`` of purchase ``index``'s points."""
        self.purchases[index * PURCHASE_FIELDS + REVERSED] = reversed_points
