"""What an app shows a member: ``CustomerView`` and its parts, read from a customer's state.

Records to read, not to change: they are not frozen only because a frozen
class costs three times as much to build, and a host may
read every member page (benchmarks read every customer's).

``view(compiled, state)`` builds it: the balance, pending and lifetime
points, the tier, segments and rewards, and what a member page lists —
each lot with its expiry (and, while pending, when it becomes spendable),
the progress of every stamp card, and the points still needed for every
``at`` reward. ``to_dict()`` gives it as JSON-ready data (instants as ISO
8601 text in UTC, money as decimal text).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import attrs

from poletti.dsl import classes
from poletti.engine.compiler import CompiledProgram
from poletti.engine.money import from_units
from poletti.engine.state import CustomerState
from poletti.engine.timecalc import from_us
from poletti.interpreter.perks import perks_held


@classes.define
class LotView:
    """Points earned together that can still expire or are still pending."""

    points: int
    earned_at: datetime
    expires_at: datetime | None  # None: never
    pending: bool
    available_at: datetime | None  # while pending: when they become spendable
    source: str  # the event that earned them, or "grant"


@classes.define
class StampCardView:
    """One stamp card: ``stamps`` counted towards the next grant of ``target`` at ``every``."""

    rule: str
    stamps: int
    every: int
    target: str | int  # a reward name, or points
    total: int  # stamps counted since the first


@classes.define
class NextReward:
    """An ``at`` rule: ``needed`` more points (0: it converts at the next chance) for ``target``."""

    rule: str
    threshold: int
    needed: int
    target: str | int


@classes.define
class HeldReward:
    """A reward the customer holds (issue 13): ``count`` of it, held ``until`` (None: until used)."""

    reward: str
    label: str | None
    count: int
    until: datetime | None = None
    granted_at: datetime | None = None


class Standing(NamedTuple):
    """One customer's figures as ``Engine.standings`` lists them: the ``CustomerView`` fields an export of
    every member reads (a CRM sync, a nightly balance file), without the member page's lots, cards and wallet.

    A plain tuple with names: a store of a million customers gives a million of them, and building one costs
    a tenth of a ``CustomerView``.
    """

    customer: str
    points: int
    pending_points: int
    lifetime_points: int
    debt: int
    tier: str | None
    rewards: dict[str, int]  # as ``CustomerView.rewards``: each reward granted and not used, with its count


@classes.define
class CustomerView:
    """A customer's standing, as the host application sees it.

    ``spend_lifetime``, ``first_seen``, ``last_event_at`` and ``next_rewards``
    are worked out when read, from the figures the view took when it was
    made (``spend_units``, ``first_seen_us``, ``last_event_at_us``, the
    balance): a view is a snapshot, and building those objects for every
    view cost half its time, though most reads never look at them.
    """

    id: str
    points: int
    pending_points: int
    lifetime_points: int
    debt: int
    tier: str | None
    rewards: dict[str, int]
    segments: frozenset[str]
    spend_units: int  # micro-units of the program currency (``spend_lifetime`` is it as a Decimal)
    first_seen_us: int | None  # µs since the epoch (``first_seen`` is it as a UTC datetime)
    last_event_at_us: int | None
    lots: tuple[LotView, ...] = ()
    stamp_cards: tuple[StampCardView, ...] = ()
    # The program's ``at`` rules, for ``next_rewards`` (read with ``points``).
    converts: tuple[Any, ...] = attrs.field(default=(), eq=False, repr=False)
    # Issue 13: the wallet (held rewards, those that expire one by one, the first to end first), how many of
    # each reward were used, and the perks held now (name → label, the name when it has none).
    held: tuple[HeldReward, ...] = ()
    rewards_used: dict[str, int] = attrs.field(factory=dict)
    perks: dict[str, str] = attrs.field(factory=dict)

    @property
    def spend_lifetime(self) -> Decimal:
        """The net amount of every purchase (refunds taken off), in the program currency."""
        return from_units(self.spend_units)

    @property
    def first_seen(self) -> datetime | None:
        return _instant(self.first_seen_us)

    @property
    def last_event_at(self) -> datetime | None:
        return _instant(self.last_event_at_us)

    @property
    def next_rewards(self) -> tuple[NextReward, ...]:
        """For every ``at`` rule: the points still needed (0: it converts at the next chance) for its reward."""
        balance = self.points
        return tuple(NextReward(rule.text, rule.threshold, max(0, rule.threshold - balance), rule.target)
                     for rule in self.converts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (instants as ISO 8601 text, money as decimal text)."""
        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, Decimal):
                return str(value)
            if isinstance(value, frozenset):
                return sorted(value)
            if isinstance(value, dict):
                return dict(value)
            return value

        data = {}
        for name in _SHOWN:
            value = getattr(self, name)
            data[name] = ([attrs.asdict(item, value_serializer=lambda _inst, _field, v: plain(v)) for item in value]
                          if isinstance(value, tuple) else plain(value))
        return data


# What ``to_dict`` shows, in this order (the figures as a host reads them, not the raw fields behind them).
_SHOWN = ("id", "points", "pending_points", "lifetime_points", "debt", "tier", "rewards", "segments",
          "spend_lifetime", "first_seen", "last_event_at", "lots", "stamp_cards", "next_rewards", "held",
          "rewards_used", "perks")


def view(compiled: CompiledProgram, customer_id: str, state: CustomerState) -> CustomerView:
    # Hosts read every member page (and benchmarks every customer): each part is built only when the program
    # and the state have something for it, and an empty part is a shared empty value.
    ledger = state.ledger
    lots = tuple(LotView(lot.points, from_us(lot.earned_at), _instant(lot.expires_at), lot.pending,
                         _instant(lot.available_at) if lot.pending else None, lot.source)
                 for lot in ledger.lots) if ledger.lots else ()
    cards = tuple(StampCardView(rule.text, state.stamps[rule.slot] % rule.every, rule.every, rule.target,
                                state.stamps[rule.slot]) for rule in compiled.stamps) if compiled.stamps else ()
    balance = ledger.free + ledger._spendable_in_lots - ledger.owed  # ``ledger.balance``, without the property
    segments = frozenset(name for name, inside in zip(compiled.segment_names, state.segments)
                         if inside) if compiled.segment_names else _NO_SEGMENTS
    # Positional, in field order: id, points, pending_points, lifetime_points, debt, tier, rewards, segments,
    # spend_units, first_seen_us, last_event_at_us, lots, stamp_cards, converts, held, rewards_used, perks.
    return CustomerView(
        customer_id, balance, ledger._pending, ledger.earned_total, ledger.owed, compiled.tier_names[state.tier],
        dict(state.rewards) if state.rewards else {}, segments, state.spend_total, state.first_seen, state.last_event_at,
        lots, cards, compiled.converts,
        _held(compiled, state) if state.rewards or state.wallet else (),
        dict(state.rewards_used) if state.rewards_used else {},
        {perk.name: perk.label or perk.name for perk in perks_held(compiled, state)} if compiled.perks else {},
    )


_NO_SEGMENTS: frozenset[str] = frozenset()


def _held(compiled: CompiledProgram, state: CustomerState) -> tuple[HeldReward, ...]:
    """Held rewards: those without an end by count, then each one that ends, the first to end first."""
    labels = compiled.checked.rewards
    rewards = state.rewards
    if rewards and not (state.wallet or state.rewards_used or state.rewards_expired):  # (most: all still held)
        held = []
        for name in sorted(rewards) if len(rewards) > 1 else rewards:  # (a plain loop: this runs per view)
            count = rewards[name]
            if count > 0:
                declared = labels.get(name)
                held.append(HeldReward(name, None if declared is None else declared.label, count))
        return tuple(held)
    ending: dict[str, int] = {}
    for _, _, name in state.wallet:
        ending[name] = ending.get(name, 0) + 1
    held: list[HeldReward] = []
    for name in sorted(state.rewards or ()):
        count = state.held(name) - ending.get(name, 0)
        if count > 0:
            held.append(HeldReward(name, labels[name].label if name in labels else None, count))
    for ends, granted_at, name in sorted(state.wallet):
        label = labels[name].label if name in labels else None
        held.append(HeldReward(name, label, 1, from_us(ends), from_us(granted_at)))
    return tuple(held)


def _instant(us: int | None) -> datetime | None:
    return None if us is None else from_us(us)
