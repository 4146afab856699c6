"""poletti against a hand-written Python loop, on the same events, in one run.

    .venv/bin/python benchmarks/bench_engine.py [--events N] [--seed S] [--repeat R]
                                                 [--explain] [--peer] [--profile FILE] [--max-ratio X]

Generates a café history with ``poletti.interpreter.simulate.generate`` (the events are
built before any timing starts, as the dicts a host would send), then runs
the café program ``examples/cafe/rules_v1.loyalty``

    earn 1 point per EUR
    at 50 points grant free_drink
    tier gold when spend_12m > 1000        (timezone Europe/Helsinki, rounding down)

through ``poletti.Engine`` (``process_many``, then ``advance_to`` the last
event) and through ``hand_loop`` below, which implements the same program by
hand. Both sides must end with the same points, rewards and tier for every
customer; if they do not, the timings mean nothing and the script says so
and exits 1. It prints events per second for each side and the ratio
poletti ÷ hand loop (DESIGN.md's bar: at most 2). ``--max-ratio X`` exits 1
when the ratio is above X. With ``--peer`` and the ``rule-engine`` package
installed (``pip install -r benchmarks/requirements.txt``) it also times the
same program with its conditions evaluated by rule-engine.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.util
import itertools
import math
import os
import sys
import time
import heapq
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable
from zoneinfo import ZoneInfo

import poletti
from poletti.interpreter.simulate.generate import generate_history

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = os.path.join(ROOT, "examples", "cafe", "rules_v1.loyalty")

# The café program's constants, written out by hand (see the module docstring).
ZONE = ZoneInfo("Europe/Helsinki")
THRESHOLD = 50  # at 50 points grant free_drink
GOLD_SPEND = Decimal(1000)  # tier gold when spend_12m > 1000
EVENTS_PER_CUSTOMER = 44  # about what a generated two-year history gives; sizes the customer count

Result = dict[str, tuple[int, dict[str, int], str | None]]


# ------------------------------------------------------------------ the hand loop


def year_after(at: datetime) -> float:
    """When a purchase at ``at`` leaves the 12-month window, as epoch seconds.

    The contract: a purchase counts from p until p + 12m, exclusive: 12
    calendar months on the café's wall clock, the day clamped (29 February →
    28 February), the wall time kept; a time the clocks skip is the end of the
    skipped hour, a repeated time its first pass.
    """
    wall = at.astimezone(ZONE).replace(tzinfo=None)
    day = 28 if wall.month == 2 and wall.day == 29 else wall.day
    target = wall.replace(year=wall.year + 1, day=day)
    leaves = target.replace(tzinfo=ZONE, fold=0)
    if leaves.astimezone(timezone.utc).astimezone(ZONE).replace(tzinfo=None) != target:
        # In the skipped hour: it ends at the top of the hour (Helsinki jumps 03:00 → 04:00).
        leaves = (target.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).replace(tzinfo=ZONE)
    return leaves.timestamp()


class Purchase:
    __slots__ = ("amount", "refunded", "points", "reversed", "at", "leaves")

    def __init__(self, amount: Decimal, points: int, at: datetime) -> None:
        self.amount = amount
        self.refunded = Decimal(0)
        self.points = points
        self.reversed = 0
        self.leaves = year_after(at)


class Member:
    __slots__ = ("points", "drinks", "gold", "purchases", "window", "spend_12m", "last_at")

    def __init__(self) -> None:
        self.points = 0
        self.drinks = 0
        self.gold = False
        self.purchases: dict[str, Purchase] = {}
        # (leaves at, sequence, purchase) of the purchases inside the 12-month window, soonest out first.
        self.window: list[tuple[float, int, Purchase]] = []
        self.spend_12m = Decimal(0)  # their net amounts, summed
        self.last_at = -math.inf

    def buy(self, event_id: str, amount: Decimal, points: int, at: datetime) -> None:
        record = Purchase(amount, points, at)
        self.purchases[event_id] = record
        heapq.heappush(self.window, (record.leaves, len(self.purchases), record))
        self.spend_12m += amount
        self.points += points

    def refund(self, event: dict[str, Any], now: float) -> bool:
        """Apply a refund event; False when the contract rejects it (unknown purchase, more than is left)."""
        original = self.purchases.get(event.get("original", ""))
        if original is None:
            return False
        left = original.amount - original.refunded
        raw = event.get("amount")
        refund = left if raw is None else Decimal(raw)
        if left <= 0 or refund > left or refund <= 0:
            return False
        original.refunded += refund
        if original.leaves > now:
            self.spend_12m -= refund
        # Reversed so far: floor(P × refunded so far ÷ amount); this refund reverses the increase.
        target = int(original.points * original.refunded / original.amount) if original.amount else 0
        self.points -= target - original.reversed
        original.reversed = target
        return True

    def slide(self, now: float) -> None:
        """Drop the purchases that left the 12-month window at or before ``now``."""
        window = self.window
        while window and window[0][0] <= now:
            gone = heapq.heappop(window)[2]
            self.spend_12m -= gone.amount - gone.refunded


def hand_loop(events: list[dict[str, Any]], end: str) -> Result:
    """The café program by hand: per-customer state in dicts, one pass over the events."""
    members: dict[str, Member] = {}
    seen: set[str] = set()
    for event in events:
        event_id = event["id"]
        if event_id in seen:
            continue
        member = members.get(event["customer"])
        if member is None:
            member = members[event["customer"]] = Member()
        at = datetime.fromisoformat(event["at"])
        epoch = at.timestamp()
        if epoch < member.last_at:
            continue  # out of order: rejected
        # The clock first: a purchase that left the window must leave it at the net amount it had then,
        # before a refund of it changes that amount.
        member.slide(epoch)
        kind = event["type"]
        if kind == "purchase":
            amount = Decimal(event["amount"])
            points = int(amount)  # 1 point per EUR, rounded down (amounts are never negative)
            member.buy(event_id, amount, points, at)
            while member.points >= THRESHOLD:
                member.points -= THRESHOLD
                member.drinks += 1
        elif kind == "refund" and not member.refund(event, epoch):
            continue  # unknown purchase, or more than is left: rejected
        seen.add(event_id)
        member.last_at = epoch
        member.gold = member.spend_12m > GOLD_SPEND
    end_at = datetime.fromisoformat(end).timestamp()
    result: Result = {}
    for customer, member in members.items():
        member.slide(end_at)
        member.gold = member.spend_12m > GOLD_SPEND
        result[customer] = (member.points, {"free_drink": member.drinks} if member.drinks else {},
                            "gold" if member.gold else None)
    return result


# ------------------------------------------------------------------ the peer


def peer_loop(events: list[dict[str, Any]], end: str) -> Result:
    """The hand loop with every rule decision made by rule-engine (``pip install rule-engine``).

    The state keeping (balances, the 12-month window, refunds) stays in
    Python, as it would with any expression-matching rules library; rule-engine
    decides which events earn, whether a conversion applies, and the tier.
    """
    import rule_engine

    earns = rule_engine.Rule("type == 'purchase'")
    converts = rule_engine.Rule("points >= 50")
    gold = rule_engine.Rule("spend_12m > 1000")
    members: dict[str, Member] = {}
    seen: set[str] = set()
    for event in events:
        event_id = event["id"]
        if event_id in seen:
            continue
        member = members.get(event["customer"])
        if member is None:
            member = members[event["customer"]] = Member()
        at = datetime.fromisoformat(event["at"])
        epoch = at.timestamp()
        if epoch < member.last_at:
            continue
        member.slide(epoch)
        if earns.matches(event):
            amount = Decimal(event["amount"])
            points = int(amount)
            member.buy(event_id, amount, points, at)
            while converts.matches({"points": member.points}):
                member.points -= THRESHOLD
                member.drinks += 1
        elif event["type"] == "refund" and not member.refund(event, epoch):
            continue
        seen.add(event_id)
        member.last_at = epoch
        member.gold = gold.matches({"spend_12m": member.spend_12m})
    end_at = datetime.fromisoformat(end).timestamp()
    result: Result = {}
    for customer, member in members.items():
        member.slide(end_at)
        member.gold = gold.matches({"spend_12m": member.spend_12m})
        result[customer] = (member.points, {"free_drink": member.drinks} if member.drinks else {},
                            "gold" if member.gold else None)
    return result


# ------------------------------------------------------------------ poletti


def poletti_run(program: poletti.Program, explain: bool) -> Callable[[list[dict[str, Any]], str], tuple[Result, int]]:
    def run(events: list[dict[str, Any]], end: str) -> tuple[Result, int]:
        engine = poletti.Engine(program, explain=explain)
        batch = engine.process_many(events)
        engine.advance_to(end)
        result: Result = {}
        for customer in engine.customers():
            view = engine.customer(customer)
            result[customer] = (view.points, {k: v for k, v in view.rewards.items() if v}, view.tier)
        return result, len(batch.rejected)

    return run


# ------------------------------------------------------------------ the run


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    value = run()
    return time.perf_counter() - started, value


def compare(name: str, expected: Result, actual: Result) -> list[str]:
    problems = []
    for customer in sorted(set(expected) | set(actual)):
        want, got = expected.get(customer), actual.get(customer)
        if want != got:
            problems.append(f"  {customer}: hand loop {want}, {name} {got}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="events to replay (default 50000)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--repeat", type=int, default=1, help="time each side R times and keep the best (default 1)")
    parser.add_argument("--explain", action="store_true",
                        help="run the engine with explain traces on (poletti.Engine's default; simulate turns them off)")
    parser.add_argument("--peer", action="store_true", help="also time the rule-engine peer (needs rule-engine)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of one poletti run to FILE")
    parser.add_argument("--max-ratio", type=float, default=None, help="exit 1 if poletti ÷ hand loop is above this")
    args = parser.parse_args(argv)
    if args.events < 1 or args.repeat < 1:
        parser.error("--events and --repeat must be at least 1")

    customers = max(1, math.ceil(args.events / EVENTS_PER_CUSTOMER))
    started = time.perf_counter()
    events = list(itertools.islice(generate_history(customers, 731, args.seed, "2024-01-01"), args.events))
    end = events[-1]["at"]
    print(f"history: {len(events):,} events of {len({e['customer'] for e in events}):,} customers, "
          f"{events[0]['at'][:10]} to {end[:10]} (generated in {time.perf_counter() - started:.1f} s)")
    program = poletti.load(RULES)
    run_poletti = poletti_run(program, args.explain)

    sides: list[tuple[str, Callable[[], Result]]] = [("hand loop", lambda: hand_loop(events, end))]
    rejected: list[int] = []

    def poletti_side() -> Result:
        result, count = run_poletti(events, end)
        rejected.append(count)
        return result

    sides.append(("poletti", poletti_side))
    if args.peer:
        if importlib.util.find_spec("rule_engine") is None:
            print("peer: rule-engine is not installed (pip install -r benchmarks/requirements.txt); skipped")
        else:
            sides.append(("rule-engine", lambda: peer_loop(events, end)))

    best: dict[str, float] = {}
    results: dict[str, Result] = {}
    for _ in range(args.repeat):
        for name, run in sides:
            seconds, results[name] = timed(run)
            best[name] = min(best.get(name, math.inf), seconds)

    if rejected and rejected[0]:
        print(f"poletti rejected {rejected[0]} events; the generated history should have none")
    agree = True
    for name in results:
        if name == "hand loop":
            continue
        problems = compare(name, results["hand loop"], results[name])
        if problems:
            agree = False
            print(f"DISAGREE: {name} and the hand loop differ for {len(problems)} customers, e.g.:")
            print("\n".join(problems[:10]))
    gold = sum(1 for _p, _r, tier in results["hand loop"].values() if tier)
    drinks = sum(r.get("free_drink", 0) for _p, r, _t in results["hand loop"].values())
    print(f"outcome: {drinks:,} free drinks, {gold:,} gold members at the end"
          + (" — every side agrees for every customer" if agree else ""))

    hand = best["hand loop"]
    mode = "explain on" if args.explain else "explain off"
    print(f"{'side':<12} {'seconds':>9} {'events/s':>10} {'÷ hand':>7}")
    for name, _run in sides:
        label = f"{name} ({mode})" if name == "poletti" else name
        print(f"{name:<12} {best[name]:>9.3f} {len(events) / best[name]:>10,.0f} {best[name] / hand:>7.2f}"
              + ("" if name != "poletti" else f"   [{label}]"))
    ratio = best["poletti"] / hand
    verdict = "within" if ratio <= 2 else "NOT within"
    print(f"ratio poletti / hand loop: {ratio:.2f} ({verdict} the 2× bar)")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_poletti(events, end)
        profiler.disable()
        profiler.dump_stats(args.profile)
        print(f"profile of one poletti run written to {args.profile} (python -m pstats {args.profile})")

    if not agree:
        return 1
    if args.max_ratio is not None and ratio > args.max_ratio:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
