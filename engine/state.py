"""What the engine remembers about one customer.

``CustomerState`` holds everything a rule can read or that decides a future
change: the points ledger, purchase and visit history for windows, stamp
counters, cap usage, tier and ``keep`` deadlines, segments, trigger memory,
birthday, and running totals for reports. Rule-indexed fields are lists in
rule order (the compiled program gives each rule an index), so evaluation
never looks anything up by name.

The state is plain data (attrs classes, lists, dicts, ints, Decimals, UTC
datetimes): stores serialise it with the one cattrs converter in
``poletti.engine.serial``.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, datetime
from decimal import Decimal

import attrs

from poletti.engine.ledger import PointsLedger


@attrs.define
class PurchaseRecord:
    """One purchase: what it cost, what it earned, what has been refunded."""

    id: str
    at: datetime
    amount: Decimal
    refunded: Decimal = Decimal(0)
    points: int = 0  # P: the points the purchase earned in step 3
    reversed: int = 0  # points already taken back by refunds


@attrs.define
class CapUsage:
    """How much of one rule's cap is used.

    Calendar caps keep the current period's key and total; rolling caps keep
    the (instant, amount) entries still inside their window.
    """

    period: tuple[object, ...] | None = None
    used: int = 0
    entries: list[tuple[datetime, int]] = attrs.Factory(list)


@attrs.define
class Totals:
    """Running figures for reports (simulate sums them over customers)."""

    earned: int = 0
    spent: int = 0
    expired: int = 0
    reversed: int = 0
    cost: Decimal = Decimal("0")


@attrs.define
class CustomerState:
    customer: str
    ledger: PointsLedger = attrs.Factory(PointsLedger)
    first_seen: datetime | None = None
    last_event_at: datetime | None = None
    # The instant up to which time-driven changes have been applied.
    clock: datetime | None = None
    last_purchase_at: datetime | None = None
    birthday: date | None = None
    # Purchases in time order; spend windows read their net amounts.
    purchases: list[PurchaseRecord] = attrs.Factory(list)
    purchase_times: list[datetime] = attrs.Factory(list)
    # net_before[i]: net amount of purchases[:i]. Spend windows are then two
    # lookups instead of a sum over every purchase in the window; a refund
    # (rare) updates the entries after its purchase.
    net_before: list[Decimal] = attrs.Factory(lambda: [Decimal(0)])
    visit_times: list[datetime] = attrs.Factory(list)
    # Calendar days (program zone, as ordinals) with a visit or purchase: the
    # last one and the length of the run of consecutive days ending there.
    last_active_day: int | None = None
    day_run: int = 0
    last_active_week: int | None = None  # ordinal of the week's Monday
    week_run: int = 0
    # Per user metric: (instant, value) of every matching event, in time order.
    metric_events: list[list[tuple[datetime, Decimal]]] = attrs.Factory(list)
    stamps: list[int] = attrs.Factory(list)
    caps: dict[int, CapUsage] = attrs.Factory(dict)
    tier: int = 0  # rank; 0 is "no tier"
    tier_held: list[bool] = attrs.Factory(list)  # each tier's condition at the last evaluation
    tier_keep_until: list[datetime | None] = attrs.Factory(list)
    segments: list[bool] = attrs.Factory(list)
    when_active: list[bool] = attrs.Factory(list)
    last_grant: dict[int, datetime] = attrs.Factory(dict)  # rule index → last grant, for `once`
    rewards: dict[str, int] = attrs.Factory(dict)
    totals: Totals = attrs.Factory(Totals)
    # (clock, next change) as worked out when the state was last saved: the
    # next event's clock step starts from it instead of working it out again.
    next_change_memo: tuple[datetime, datetime | None] | None = None

    def purchase(self, purchase_id: str) -> PurchaseRecord | None:
        for record in reversed(self.purchases):
            if record.id == purchase_id:
                return record
        return None

    def add_purchase(self, record: PurchaseRecord) -> None:
        self.purchases.append(record)
        self.purchase_times.append(record.at)
        self.net_before.append(self.net_before[-1] + record.amount - record.refunded)

    def refund_purchase(self, record: PurchaseRecord, amount: Decimal) -> None:
        """Lower a purchase's net amount; windows that hold it see the net from now on."""
        record.refunded += amount
        index = len(self.purchases) - 1
        while self.purchases[index] is not record:
            index -= 1
        for i in range(index + 1, len(self.net_before)):
            self.net_before[i] -= amount

    def spend_since(self, start: datetime) -> Decimal:
        """Net purchase amount in (start, now]."""
        first = bisect_right(self.purchase_times, start)
        return self.net_before[-1] - self.net_before[first]

    def purchases_since(self, start: datetime) -> int:
        return len(self.purchase_times) - bisect_right(self.purchase_times, start)

    def visits_since(self, start: datetime) -> int:
        return len(self.visit_times) - bisect_right(self.visit_times, start)

    def spend_lifetime(self) -> Decimal:
        return self.net_before[-1]
