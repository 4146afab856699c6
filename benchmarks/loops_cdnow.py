"""Program 1, ``programs/cdnow.loyalty``, by hand and with the peer engines deciding its rules.

    earn 1 point per USD
    at 50 points grant reward
    tier gold when spend_12m > 1000        (timezone America/New_York, rounding down)

``hand_loop`` is the program written by hand from LANGUAGE.md (it is
``bench_engine.py``'s hand loop for the café, with the zone, the currency and
the reward of this program): a dict of members, ``datetime.fromisoformat``
and ``Decimal`` on each event, points rounded down, the 50-point conversion
repeated while the balance allows, refunds reversing floor(P × refunded so
far ÷ amount) with the amount absent meaning "the rest" (unknown or
excessive refunds rejected; the balance may go negative), and the exact
12-calendar-month rolling window on the New York wall clock (a heap of the
purchases in it and their net sum), the tier re-evaluated after every event
and at the end.

``rule_engine_loop`` and ``zen_loop`` are the same loop with every rule
decision (what a purchase earns, how many rewards the balance converts into,
whether the customer is gold) made by the peer engine; the state keeping
(balances, the window, refunds) stays in Python, as it must with an
expression engine.
"""

from __future__ import annotations

import functools
import heapq
import math
import os
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable
from zoneinfo import ZoneInfo

from loops_common import Result, months_later, totals

RULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs", "cdnow.loyalty")
ZONE = ZoneInfo("America/New_York")
THRESHOLD = 50  # at 50 points grant reward
REWARD = "reward"
GOLD_SPEND = Decimal(1000)  # tier gold when spend_12m > 1000
REWARD_VALUES: dict[str, Decimal | None] = {REWARD: None}
TIERS = ("gold",)


class Purchase:
    __slots__ = ("amount", "refunded", "points", "reversed", "leaves")

    def __init__(self, amount: Decimal, points: int, at: datetime) -> None:
        self.amount = amount
        self.refunded = Decimal(0)
        self.points = points
        self.reversed = 0
        self.leaves = months_later(at, 12, ZONE)  # leaves the 12-month window at this instant (epoch seconds)


class Member:
    __slots__ = ("points", "lifetime", "rewards", "gold", "purchases", "window", "spend_12m", "last_at")

    def __init__(self) -> None:
        self.points = 0  # the balance; negative while refunds left a debt
        self.lifetime = 0
        self.rewards = 0
        self.gold = False
        self.purchases: dict[str, Purchase] = {}
        # (leaves at, sequence, purchase) of the purchases inside the 12-month window, soonest out first.
        self.window: list[tuple[int, int, Purchase]] = []
        self.spend_12m = Decimal(0)  # their net amounts, summed
        self.last_at = -math.inf

    def buy(self, event_id: str, amount: Decimal, points: int, at: datetime) -> None:
        record = Purchase(amount, points, at)
        self.purchases[event_id] = record
        heapq.heappush(self.window, (record.leaves, len(self.purchases), record))
        self.spend_12m += amount
        self.points += points
        self.lifetime += points

    def refund(self, event: dict[str, Any], now: float) -> int | None:
        """Apply a refund event; the points reversed, or None when the contract rejects it."""
        original = self.purchases.get(event.get("original", ""))
        if original is None:
            return None
        left = original.amount - original.refunded
        raw = event.get("amount")
        refund = left if raw is None else Decimal(raw)
        if left <= 0 or refund > left or refund <= 0:
            return None
        original.refunded += refund
        if original.leaves > now:
            self.spend_12m -= refund
        # Reversed so far: floor(P × refunded so far ÷ amount); this refund reverses the increase.
        target = int(original.points * original.refunded / original.amount) if original.amount else 0
        reversed_now = target - original.reversed
        self.points -= reversed_now
        original.reversed = target
        return reversed_now

    def slide(self, now: float) -> None:
        """Drop the purchases that left the 12-month window at or before ``now``."""
        window = self.window
        while window and window[0][0] <= now:
            gone = heapq.heappop(window)[2]
            self.spend_12m -= gone.amount - gone.refunded


class Stats:
    __slots__ = ("rejected", "reversed")

    def __init__(self) -> None:
        self.rejected = 0
        self.reversed = 0


def _finish(members: dict[str, Member], end: str, stats: Stats, gold: Callable[[Member], bool],
            events: int) -> tuple[Result, dict[str, Any]]:
    end_at = datetime.fromisoformat(end).timestamp()
    result: Result = {}
    earned = spent = 0
    for customer, member in members.items():
        member.slide(end_at)
        member.gold = gold(member)
        result[customer] = (member.points, 0, member.lifetime, {REWARD: member.rewards} if member.rewards else {},
                            "gold" if member.gold else None)
        earned += member.lifetime
        spent += member.rewards * THRESHOLD
    summary = totals(result, events=events, rejected=stats.rejected, earned=earned, spent=spent, expired=0,
                     reversed_=stats.reversed, reward_values=REWARD_VALUES, tier_names=TIERS)
    return result, summary


# ------------------------------------------------------------------ by hand


def hand_loop(events: list[dict[str, Any]], end: str) -> tuple[Result, dict[str, Any]]:
    """Program 1 by hand: per-customer state in slotted objects, one pass over the events."""
    members: dict[str, Member] = {}
    seen: set[str] = set()
    stats = Stats()
    for event in events:
        event_id = event["id"]
        if event_id in seen:
            continue  # a duplicate: nothing changes
        customer = event["customer"]
        member = members.get(customer)
        fresh = member is None
        if member is None:
            member = Member()
        at = datetime.fromisoformat(event["at"])
        epoch = at.timestamp()
        if epoch < member.last_at:
            stats.rejected += 1  # older than the customer's last event
            continue
        member.slide(epoch)  # the clock: purchases older than 12 months leave the window
        kind = event["type"]
        if kind == "purchase":
            amount = Decimal(event["amount"])
            points = int(amount)  # 1 point per USD, rounded down (amounts are never negative)
            member.buy(event_id, amount, points, at)
            if member.points >= THRESHOLD:
                count = member.points // THRESHOLD
                member.points -= count * THRESHOLD
                member.rewards += count
        elif kind == "refund":
            reversed_now = member.refund(event, epoch)
            if reversed_now is None:
                stats.rejected += 1  # unknown purchase, or more than is left
                continue
            stats.reversed += reversed_now
        if fresh:
            members[customer] = member
        seen.add(event_id)
        member.last_at = epoch
        member.gold = member.spend_12m > GOLD_SPEND
    return _finish(members, end, stats, lambda m: m.spend_12m > GOLD_SPEND, len(events))


# ------------------------------------------------------------------ rule-engine


@functools.cache
def rule_engine_rules() -> tuple[Any, Any, Any]:
    """Program 1's rules as rule-engine rules (compiled once: the benchmark prepares them before the clock,
    as it loads poletti's program): what a purchase earns, how many rewards the balance converts into, gold."""
    import rule_engine

    return (rule_engine.Rule("type == 'purchase' ? amount // 1 : 0"), rule_engine.Rule("points >= 50 ? points // 50 : 0"),
            rule_engine.Rule("spend_12m > 1000"))


def rule_engine_loop(events: list[dict[str, Any]], end: str) -> tuple[Result, dict[str, Any]]:
    """The hand loop with rule-engine (``pip install rule-engine``) deciding every rule.

    One compiled ``rule_engine.Rule`` per rule: the points a purchase earns,
    how many rewards the balance converts into, and the tier. The state
    keeping (balances, the 12-month window, refunds) stays in Python.
    """
    earn, convert, gold_rule = rule_engine_rules()
    members: dict[str, Member] = {}
    seen: set[str] = set()
    stats = Stats()
    for event in events:
        event_id = event["id"]
        if event_id in seen:
            continue
        customer = event["customer"]
        member = members.get(customer)
        fresh = member is None
        if member is None:
            member = Member()
        at = datetime.fromisoformat(event["at"])
        epoch = at.timestamp()
        if epoch < member.last_at:
            stats.rejected += 1
            continue
        member.slide(epoch)
        kind = event["type"]
        if kind == "purchase":
            amount = Decimal(event["amount"])
            points = int(earn.evaluate({"type": kind, "amount": amount}))
            member.buy(event_id, amount, points, at)
            count = int(convert.evaluate({"points": member.points}))
            member.points -= count * THRESHOLD
            member.rewards += count
        elif kind == "refund":
            reversed_now = member.refund(event, epoch)
            if reversed_now is None:
                stats.rejected += 1
                continue
            stats.reversed += reversed_now
        if fresh:
            members[customer] = member
        seen.add(event_id)
        member.last_at = epoch
        member.gold = gold_rule.matches({"spend_12m": member.spend_12m})
    return _finish(members, end, stats, lambda m: gold_rule.matches({"spend_12m": m.spend_12m}), len(events))


# ------------------------------------------------------------------ zen-engine

#: Program 1's decisions for one event, in ZEN's expression language: what it earns, how many
#: rewards the balance then converts into, and whether the customer is gold afterwards. Money
#: goes in as decimal strings (ZEN's numbers are decimals; ``number`` parses them exactly).
ZEN_EVENT = """{
  earned: type == "purchase" ? floor(number(amount)) : 0,
  rewards: type == "purchase" and points + floor(number(amount)) >= 50 ? floor((points + floor(number(amount))) / 50) : 0,
  gold: number(spend_12m) > 1000
}"""
ZEN_GOLD = 'number(spend_12m) > 1000'


@functools.cache
def zen_rules() -> tuple[Any, Any]:
    """``ZEN_EVENT`` and ``ZEN_GOLD`` compiled (once: the benchmark prepares them before the clock)."""
    import zen

    return zen.compile_expression(ZEN_EVENT), zen.compile_expression(ZEN_GOLD)


def zen_loop(events: list[dict[str, Any]], end: str) -> tuple[Result, dict[str, Any]]:
    """The hand loop with zen-engine (``pip install zen-engine``) deciding every rule: one evaluate per event.

    The host keeps the state and hands ZEN the event and what the rules read
    (the balance before the event, the 12-month spend after recording it and
    sliding the window); one compiled expression returns every decision.
    """
    decide, gold_rule = zen_rules()
    members: dict[str, Member] = {}
    seen: set[str] = set()
    stats = Stats()
    for event in events:
        event_id = event["id"]
        if event_id in seen:
            continue
        customer = event["customer"]
        member = members.get(customer)
        fresh = member is None
        if member is None:
            member = Member()
        at = datetime.fromisoformat(event["at"])
        epoch = at.timestamp()
        if epoch < member.last_at:
            stats.rejected += 1
            continue
        member.slide(epoch)
        kind = event["type"]
        points_before = member.points
        amount_text = None
        if kind == "purchase":
            amount_text = event["amount"]
            # The window holds the purchase before the status is decided; its points come from ZEN below.
            member.buy(event_id, Decimal(amount_text), 0, at)
        elif kind == "refund":
            reversed_now = member.refund(event, epoch)
            if reversed_now is None:
                stats.rejected += 1
                continue
            stats.reversed += reversed_now
            points_before = member.points
        decision = decide.evaluate({"type": kind, "amount": amount_text or "0", "points": points_before,
                                    "spend_12m": str(member.spend_12m)})
        if kind == "purchase":
            earned = int(decision["earned"])
            member.purchases[event_id].points = earned
            member.points += earned
            member.lifetime += earned
            count = int(decision["rewards"])
            member.points -= count * THRESHOLD
            member.rewards += count
        member.gold = decision["gold"]
        if fresh:
            members[customer] = member
        seen.add(event_id)
        member.last_at = epoch
    return _finish(members, end, stats, lambda m: gold_rule.evaluate({"spend_12m": str(m.spend_12m)}), len(events))
