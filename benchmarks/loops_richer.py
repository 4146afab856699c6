"""Program 2, ``programs/richer.loyalty``, by hand and with the peer engines deciding its rules.

    earn 1 point per EUR limit 40 points per day
    earn 2 points per EUR on category "beans" limit 30 points per day
    earn x2 if tier >= gold
    at 100 points grant free_drink
    tier silver when spend_12m > 300
    tier gold when spend_12m > 800
    points pending for 14d
    points expire after 12m                (timezone Europe/Helsinki, rounding down)

``hand_loop`` implements it from LANGUAGE.md and the choices docs/language.md
documents where the contract is silent, with nothing from poletti:

* **Clock** (step 1). Before each event, and at the end, every lot expiry
  and pending release up to the event's instant is applied in time order;
  at one instant expiries come first, then releases, and when points were
  released the ``at`` rule converts at that instant. Purchases leave the
  12-month window at p + 12 calendar months (Helsinki wall clock); the tier
  is re-read when one leaves.
* **Earn** (step 3). Each rule rounds down on its own; a cap cuts its rule's
  points to what is left of the rule's 40 (30) points on that calendar day
  in Helsinki, before multipliers; x2 applies to the sum when the tier left
  by step 1 is gold. The points form one lot: pending for 14 × 24 hours,
  expiring 12 calendar months after the purchase; debt is paid first.
* **Convert** (step 4): while the spendable balance (pending points excluded)
  is at least 100, 100 points become a free drink, oldest lots first.
* **Status** (step 5): gold above 800 EUR net spend in the window, silver
  above 300.
* **Refunds**: floor(P × refunded so far ÷ amount) reversed, P the points of
  step 3 (after caps and the multiplier); the purchase's own pending lot
  first, then spendable points oldest first, then pending points oldest
  first, the rest as debt; the window counts the purchase at its net amount.
  Unknown purchases and refunds of more than is left are rejected.

``rule_engine_loop`` and ``zen_loop`` keep the same state in Python and let
the peer engine make each rule's decision (see their docstrings).
"""

from __future__ import annotations

import functools
import heapq
import math
import os
from collections import deque
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable
from zoneinfo import ZoneInfo

from loops_common import Result, months_later, totals

RULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs", "richer.loyalty")
ZONE = ZoneInfo("Europe/Helsinki")
BASE_CAP = 40  # earn 1 point per EUR limit 40 points per day
BEANS_CAP = 30  # earn 2 points per EUR on category "beans" limit 30 points per day
THRESHOLD = 100  # at 100 points grant free_drink
REWARD = "free_drink"
REWARD_VALUES: dict[str, Decimal | None] = {REWARD: Decimal("3.50")}
SILVER_SPEND, GOLD_SPEND = Decimal(300), Decimal(800)
TIERS = ("silver", "gold")
TIER_NAMES = (None, "silver", "gold")  # by rank
GOLD = 2
PENDING_SECONDS = 14 * 86_400  # points pending for 14d


class Lot:
    """The points one purchase earned (what is left of them), until they expire."""

    __slots__ = ("points", "expires_at", "available_at", "pending")

    def __init__(self, points: int, expires_at: int, available_at: int) -> None:
        self.points = points
        self.expires_at = expires_at
        self.available_at = available_at
        self.pending = True


class Purchase:
    __slots__ = ("amount", "refunded", "points", "reversed", "leaves", "lot")

    def __init__(self, amount: Decimal, leaves: int) -> None:
        self.amount = amount
        self.refunded = Decimal(0)
        self.points = 0
        self.reversed = 0
        self.leaves = leaves  # leaves the 12-month window (and its lot expires) at this instant
        self.lot: Lot | None = None


class Member:
    __slots__ = ("spendable", "pending", "expiries", "spendable_total", "pending_total", "owed", "lifetime",
                 "rewards", "expired", "tier", "purchases", "window", "spend_12m", "last_at", "cap_day",
                 "base_used", "beans_used")

    def __init__(self) -> None:
        self.spendable: deque[Lot] = deque()  # released lots, oldest first
        self.pending: deque[Lot] = deque()  # pending lots, oldest first (they are released in this order)
        self.expiries: list[tuple[int, int, Lot]] = []  # (expires at, sequence, lot), soonest first
        self.spendable_total = 0
        self.pending_total = 0
        self.owed = 0  # debt left by refunds; new points pay it first
        self.lifetime = 0
        self.rewards = 0
        self.expired = 0
        self.tier = 0  # rank: 0 none, 1 silver, 2 gold
        self.purchases: dict[str, Purchase] = {}
        self.window: list[tuple[int, int, Purchase]] = []  # (leaves at, sequence, purchase)
        self.spend_12m = Decimal(0)
        self.last_at = -math.inf
        self.cap_day: object = None  # the calendar day the caps' counts are for
        self.base_used = 0
        self.beans_used = 0

    @property
    def balance(self) -> int:
        return self.spendable_total - self.owed

    # -- the ledger

    def earn(self, points: int, at: int, expires_at: int) -> Lot | None:
        self.lifetime += points
        repaid = min(self.owed, points)
        self.owed -= repaid
        rest = points - repaid
        if rest <= 0:
            return None
        lot = Lot(rest, expires_at, at + PENDING_SECONDS)
        self.pending.append(lot)
        self.pending_total += rest
        heapq.heappush(self.expiries, (expires_at, id(lot), lot))
        return lot

    def spend(self, points: int) -> None:
        """Take ``points`` spendable points, oldest lots first (the caller checked the balance)."""
        lots = self.spendable
        self.spendable_total -= points
        while points:
            lot = lots[0]
            taken = min(points, lot.points)
            lot.points -= taken
            points -= taken
            if not lot.points:
                lots.popleft()

    def deduct(self, points: int, own: Lot | None) -> None:
        """Reverse ``points``: the purchase's own pending lot, then spendable oldest first, then pending, then debt."""
        if own is not None and own.pending and own.points:
            taken = min(points, own.points)
            own.points -= taken
            self.pending_total -= taken
            points -= taken
        if points and self.spendable_total:
            taken = min(points, self.spendable_total)
            self.spend(taken)
            points -= taken
        if points and self.pending_total:
            for lot in self.pending:
                if not points:
                    break
                taken = min(points, lot.points)
                lot.points -= taken
                self.pending_total -= taken
                points -= taken
        self.owed += points

    def convert(self) -> int:
        """The ``at`` rule: as many free drinks as the balance allows; returns how many."""
        count = self.balance // THRESHOLD
        if count > 0:
            self.spend(count * THRESHOLD)
            self.rewards += count
            return count
        return 0

    def clock(self, now: int, convert: Callable[[Member], int]) -> None:
        """Step 1 up to ``now``: expiries and releases in time order; conversions when points were released."""
        expiries, pending = self.expiries, self.pending
        while True:
            while expiries and not expiries[0][2].points:
                heapq.heappop(expiries)  # spent or reversed to nothing
            while pending and not pending[0].points:
                pending.popleft()
            next_expiry = expiries[0][0] if expiries else math.inf
            next_release = pending[0].available_at if pending else math.inf
            instant = min(next_expiry, next_release)
            if instant > now:
                return
            while expiries and expiries[0][0] <= instant:
                lot = heapq.heappop(expiries)[2]
                if lot.points:
                    self.expired += lot.points
                    if lot.pending:
                        self.pending_total -= lot.points
                    else:
                        self.spendable_total -= lot.points
                    lot.points = 0
            released = False
            while pending and pending[0].available_at <= instant:
                lot = pending.popleft()
                if lot.points:
                    lot.pending = False
                    self.pending_total -= lot.points
                    self.spendable_total += lot.points
                    self.spendable.append(lot)
                    released = True
            if released:
                convert(self)
            while self.spendable and not self.spendable[0].points:
                self.spendable.popleft()

    # -- the window

    def slide(self, now: float) -> bool:
        """Drop the purchases that left the 12-month window at or before ``now``; True if any did."""
        window = self.window
        moved = False
        while window and window[0][0] <= now:
            gone = heapq.heappop(window)[2]
            self.spend_12m -= gone.amount - gone.refunded
            moved = True
        return moved

    def check_refund(self, event: dict[str, Any]) -> tuple[Purchase, Decimal] | None:
        """The refunded purchase and the amount, or None when the contract rejects the refund."""
        original = self.purchases.get(event.get("original", ""))
        if original is None:
            return None
        left = original.amount - original.refunded
        raw = event.get("amount")
        refund = left if raw is None else Decimal(raw)
        if left <= 0 or refund > left or refund <= 0:
            return None
        return original, refund

    def refund(self, original: Purchase, amount: Decimal, now: float) -> int:
        """Apply a checked refund: the net amount in the window, then the points; returns the points reversed."""
        original.refunded += amount
        if original.leaves > now:
            self.spend_12m -= amount
        return self.reverse(original)

    def reverse(self, original: Purchase) -> int:
        target = int(original.points * original.refunded / original.amount) if original.amount else 0
        delta = target - original.reversed
        if delta > 0:
            self.deduct(delta, original.lot)
            original.reversed = target
            return delta
        return 0


def rank(spend: Decimal) -> int:
    return 2 if spend > GOLD_SPEND else 1 if spend > SILVER_SPEND else 0


class Stats:
    __slots__ = ("rejected", "reversed")

    def __init__(self) -> None:
        self.rejected = 0
        self.reversed = 0


def _finish(members: dict[str, Member], end: str, stats: Stats, events: int, convert: Callable[[Member], int],
            tier_of: Callable[[Member], int]) -> tuple[Result, dict[str, Any]]:
    end_at = int(datetime.fromisoformat(end).timestamp())
    result: Result = {}
    earned = spent = expired = 0
    for customer, member in members.items():
        member.clock(end_at, convert)
        if member.slide(end_at):
            member.tier = tier_of(member)
        result[customer] = (member.balance, member.pending_total, member.lifetime,
                            {REWARD: member.rewards} if member.rewards else {}, TIER_NAMES[member.tier])
        earned += member.lifetime
        spent += member.rewards * THRESHOLD
        expired += member.expired
    summary = totals(result, events=events, rejected=stats.rejected, earned=earned, spent=spent, expired=expired,
                     reversed_=stats.reversed, reward_values=REWARD_VALUES, tier_names=TIERS)
    return result, summary


def _member(members: dict[str, Member], customer: str) -> Member:
    member = members.get(customer)
    return Member() if member is None else member


def _convert(member: Member) -> int:
    return member.convert()


def _rank(member: Member) -> int:
    return rank(member.spend_12m)


# ------------------------------------------------------------------ by hand


def hand_loop(events: list[dict[str, Any]], end: str) -> tuple[Result, dict[str, Any]]:
    """Program 2 by hand: per-customer state in slotted objects, one pass over the events."""
    members: dict[str, Member] = {}
    seen: set[str] = set()
    stats = Stats()
    for event in events:
        event_id = event["id"]
        if event_id in seen:
            continue  # a duplicate: nothing changes
        customer = event["customer"]
        member = _member(members, customer)
        at = datetime.fromisoformat(event["at"])
        now = int(at.timestamp())
        if now < member.last_at:
            stats.rejected += 1  # older than the customer's last event
            continue
        kind = event["type"]
        refund = None
        if kind == "refund":
            refund = member.check_refund(event)  # checked before anything changes
            if refund is None:
                stats.rejected += 1  # unknown purchase, or more than is left
                continue
        # 1. the clock
        member.clock(now, _convert)
        if member.slide(now):
            member.tier = rank(member.spend_12m)
        if kind == "purchase":
            # 2. facts
            amount = Decimal(event["amount"])
            leaves = months_later(at, 12, ZONE)
            record = Purchase(amount, leaves)
            member.purchases[event_id] = record
            heapq.heappush(member.window, (leaves, len(member.purchases), record))
            member.spend_12m += amount
            # 3. earn: each rule rounded down and capped per calendar day, then the multiplier
            day = at.astimezone(ZONE).date()
            if day != member.cap_day:
                member.cap_day, member.base_used, member.beans_used = day, 0, 0
            base = min(int(amount), BASE_CAP - member.base_used)
            member.base_used += base
            beans_money = Decimal(0)
            for item in event.get("items", ()):
                if item["category"] == "beans":
                    beans_money += Decimal(item["price"]) * item.get("quantity", 1)
            beans = min(int(2 * beans_money), BEANS_CAP - member.beans_used)
            member.beans_used += beans
            points = base + beans
            if member.tier >= GOLD:
                points *= 2
            record.points = points
            if points:
                record.lot = member.earn(points, now, leaves)
        elif refund is not None:
            stats.reversed += member.refund(refund[0], refund[1], now)
        # 4. convert
        if member.balance >= THRESHOLD:
            member.convert()
        # 5. status
        member.tier = rank(member.spend_12m)
        if customer not in members:
            members[customer] = member
        seen.add(event_id)
        member.last_at = now
    return _finish(members, end, stats, len(events), _convert, _rank)


# ------------------------------------------------------------------ rule-engine


@functools.cache
def rule_engine_rules() -> tuple[Any, ...]:
    """Program 2's decisions as rule-engine rules (compiled once: the benchmark prepares them before the clock,
    as it loads poletti's program): base earn, the beans item filter and earn, the multiplier, the conversion,
    the tier."""
    import rule_engine

    return (rule_engine.Rule("type == 'purchase' ? amount // 1 : 0"), rule_engine.Rule("category == 'beans'"),
            rule_engine.Rule("(beans * 2) // 1"), rule_engine.Rule("tier >= 2"),
            rule_engine.Rule("points >= 100 ? points // 100 : 0"),
            rule_engine.Rule("spend_12m > 800 ? 2 : (spend_12m > 300 ? 1 : 0)"))


def rule_engine_loop(events: list[dict[str, Any]], end: str) -> tuple[Result, dict[str, Any]]:
    """The hand loop with rule-engine (``pip install rule-engine``) making every rule's decision.

    One compiled ``rule_engine.Rule`` per decision: the points of each earn
    rule (the beans rule picks its items with ``Rule.filter``), whether the
    multiplier applies, how many drinks the balance converts into (at events
    and when pending points are released), and the tier (when the window
    slides, and after each event). Caps, lots, the window and refunds are the
    host's state, kept in Python as in the hand loop.
    """
    base_rule, beans_item, beans_rule, multiplier, convert_rule, tier_rule = rule_engine_rules()

    def convert(member: Member) -> int:
        count = int(convert_rule.evaluate({"points": member.balance}))
        if count:
            member.spend(count * THRESHOLD)
            member.rewards += count
        return count

    def tier_of(member: Member) -> int:
        return int(tier_rule.evaluate({"spend_12m": member.spend_12m}))

    members: dict[str, Member] = {}
    seen: set[str] = set()
    stats = Stats()
    for event in events:
        event_id = event["id"]
        if event_id in seen:
            continue
        customer = event["customer"]
        member = _member(members, customer)
        at = datetime.fromisoformat(event["at"])
        now = int(at.timestamp())
        if now < member.last_at:
            stats.rejected += 1
            continue
        kind = event["type"]
        refund = None
        if kind == "refund":
            refund = member.check_refund(event)
            if refund is None:
                stats.rejected += 1
                continue
        member.clock(now, convert)
        if member.slide(now):
            member.tier = tier_of(member)
        if kind == "purchase":
            amount = Decimal(event["amount"])
            leaves = months_later(at, 12, ZONE)
            record = Purchase(amount, leaves)
            member.purchases[event_id] = record
            heapq.heappush(member.window, (leaves, len(member.purchases), record))
            member.spend_12m += amount
            day = at.astimezone(ZONE).date()
            if day != member.cap_day:
                member.cap_day, member.base_used, member.beans_used = day, 0, 0
            base = min(int(base_rule.evaluate({"type": kind, "amount": amount})), BASE_CAP - member.base_used)
            member.base_used += base
            beans_money = Decimal(0)
            for item in beans_item.filter(event.get("items", ())):
                beans_money += Decimal(item["price"]) * item.get("quantity", 1)
            beans = min(int(beans_rule.evaluate({"beans": beans_money})), BEANS_CAP - member.beans_used)
            member.beans_used += beans
            points = base + beans
            if points and multiplier.matches({"tier": member.tier}):
                points *= 2
            record.points = points
            if points:
                record.lot = member.earn(points, now, leaves)
        elif refund is not None:
            stats.reversed += member.refund(refund[0], refund[1], now)
        convert(member)
        member.tier = tier_of(member)
        if customer not in members:
            members[customer] = member
        seen.add(event_id)
        member.last_at = now
    return _finish(members, end, stats, len(events), convert, tier_of)


# ------------------------------------------------------------------ zen-engine

#: Program 2's decisions for one event in ZEN's expression language: the points of the two earn
#: rules (before their caps, which are the host's counters), the multiplier (from the tier the clock
#: left), the drinks the balance converts into, and the tier after the event. Money goes in as
#: decimal strings (``number`` parses them exactly).
ZEN_EVENT = """{
  base: type == "purchase" ? floor(number(amount)) : 0,
  beans: type == "purchase" ? floor(2 * sum(map(filter(items, #.category == "beans"), number(#.price) * #.quantity))) : 0,
  factor: tier >= 2 ? 2 : 1,
  drinks: balance >= 100 ? floor(balance / 100) : 0,
  tier: number(spend_12m) > 800 ? 2 : (number(spend_12m) > 300 ? 1 : 0)
}"""
ZEN_CONVERT = "balance >= 100 ? floor(balance / 100) : 0"
ZEN_TIER = 'number(spend_12m) > 800 ? 2 : (number(spend_12m) > 300 ? 1 : 0)'


@functools.cache
def zen_rules() -> tuple[Any, Any, Any]:
    """``ZEN_EVENT``, ``ZEN_CONVERT`` and ``ZEN_TIER`` compiled (once: the benchmark prepares them before the
    clock)."""
    import zen

    return zen.compile_expression(ZEN_EVENT), zen.compile_expression(ZEN_CONVERT), zen.compile_expression(ZEN_TIER)


def zen_loop(events: list[dict[str, Any]], end: str) -> tuple[Result, dict[str, Any]]:
    """The hand loop with zen-engine (``pip install zen-engine``) making every rule's decision.

    One ``evaluate`` of one compiled expression per event decides the earn
    rules, the multiplier, the conversion and the tier; the host hands it
    the event, the tier the clock left, the balance and the 12-month spend
    after recording the event. (The balance is the one before the event's
    own points: they are pending, so they never convert on the event
    itself.) Time-driven decisions get their own evaluate: the conversion
    when pending points are released, the tier when the window slides.
    """
    decide, convert_rule, tier_rule = zen_rules()

    def convert(member: Member) -> int:
        count = int(convert_rule.evaluate({"balance": member.balance}))
        if count:
            member.spend(count * THRESHOLD)
            member.rewards += count
        return count

    def tier_of(member: Member) -> int:
        return int(tier_rule.evaluate({"spend_12m": str(member.spend_12m)}))

    members: dict[str, Member] = {}
    seen: set[str] = set()
    stats = Stats()
    for event in events:
        event_id = event["id"]
        if event_id in seen:
            continue
        customer = event["customer"]
        member = _member(members, customer)
        at = datetime.fromisoformat(event["at"])
        now = int(at.timestamp())
        if now < member.last_at:
            stats.rejected += 1
            continue
        kind = event["type"]
        refund = None
        if kind == "refund":
            refund = member.check_refund(event)
            if refund is None:
                stats.rejected += 1
                continue
        member.clock(now, convert)
        if member.slide(now):
            member.tier = tier_of(member)
        record = None
        if kind == "purchase":
            amount = Decimal(event["amount"])
            leaves = months_later(at, 12, ZONE)
            record = Purchase(amount, leaves)
            member.purchases[event_id] = record
            heapq.heappush(member.window, (leaves, len(member.purchases), record))
            member.spend_12m += amount
        elif refund is not None:
            stats.reversed += member.refund(refund[0], refund[1], now)
        decision = decide.evaluate({"type": kind, "amount": event.get("amount", "0"), "items": event.get("items", []),
                                    "tier": member.tier, "balance": member.balance,
                                    "spend_12m": str(member.spend_12m)})
        if record is not None:
            day = at.astimezone(ZONE).date()
            if day != member.cap_day:
                member.cap_day, member.base_used, member.beans_used = day, 0, 0
            base = min(int(decision["base"]), BASE_CAP - member.base_used)
            member.base_used += base
            beans = min(int(decision["beans"]), BEANS_CAP - member.beans_used)
            member.beans_used += beans
            points = (base + beans) * int(decision["factor"])
            record.points = points
            if points:
                record.lot = member.earn(points, now, record.leaves)
        drinks = int(decision["drinks"])
        if drinks:
            member.spend(drinks * THRESHOLD)
            member.rewards += drinks
        member.tier = int(decision["tier"])
        if customer not in members:
            members[customer] = member
        seen.add(event_id)
        member.last_at = now
    return _finish(members, end, stats, len(events), convert, tier_of)
