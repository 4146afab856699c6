"""The goals of issue 8 that the side-by-side table does not show, measured in worker processes of bench.py.

* ``rules_worker``: a rule file of 5,000 rules (``rules_text``) checked and
  compiled with ``poletti.load``, and its code generated with
  ``poletti.Engine(program, explain=False)`` (goal: checked and compiled in
  under 2 s).
* ``advance_worker``: ``Engine.advance_to`` over many customers, skipping a
  day, 400 days and 4,000 days (goal: a cost that does not grow with the
  days skipped), at two customer counts (a cost per customer that grows
  with the customers shows a step that is not linear).
"""

from __future__ import annotations

import gc
import os
import time
from datetime import datetime, timedelta, timezone
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
RULE_COUNT = 5_000
SKIPS = (1, 400, 4_000)  # days advanced past the last event


def rules_text(count: int = RULE_COUNT) -> str:
    """A program of ``count`` rules of every kind (earn with caps, campaigns and conditions, stamps, triggers)."""
    lines = ['program "Five thousand rules"', "currency EUR", 'timezone "Europe/Helsinki"', ""]
    lines += [f'reward gift_{r} "Gift {r}" value {r + 1}.50 EUR' for r in range(20)]
    lines += ["tier silver when spend_12m > 300", "tier gold when spend_12m > 800", "earn 1 point per EUR"]
    rules = 3
    i = 0
    while rules < count:
        kind = i % 6
        if kind == 0:
            lines.append(f'earn {1 + i % 3} points per EUR on sku "sku-{i}" limit {50 + i % 50} points per day')
        elif kind == 1:
            month = 1 + i % 12
            lines.append(f'earn {1 + i % 4} points per EUR on category "cat-{i % 40}" '
                         f'during 2026-{month:02d}-01..2026-{month:02d}-28')
        elif kind == 2:
            lines.append(f"earn 10 points per purchase if spend_30d > {20 + i % 200} and tier >= silver")
        elif kind == 3:
            lines.append(f"on review grant gift_{i % 20} limit {1 + i % 5} times per month")
        elif kind == 4:
            lines.append(f'every {5 + i % 10} purchases on category "cat-{i % 40}" grant gift_{i % 20}')
        else:
            lines.append(f"when spend_lifetime > {1000 + i} grant gift_{i % 20} once")
        i += 1
        rules += 1
    return "\n".join(lines) + "\n"


def rules_worker(spec: dict[str, Any]) -> dict[str, Any]:
    path = os.path.join(spec["data"], "rules-5000.loyalty")
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(rules_text(spec.get("count", RULE_COUNT)))
    started = time.perf_counter()
    import poletti

    imported = time.perf_counter()
    program = poletti.load(path)
    loaded = time.perf_counter()
    poletti.Engine(program, explain=False)
    generated = time.perf_counter()
    return {"path": path, "rules": spec.get("count", RULE_COUNT), "import": imported - started,
            "load": loaded - imported, "codegen": generated - loaded}


def advance_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """For each customer count: one purchase per customer (gold for 12 months), then ``advance_to`` each skip.

    A fresh engine per skip and repetition, built the same way; only
    ``advance_to`` is timed, best of ``repeat``. The skips take turns
    within each round of repetitions (400, 4,000, 400, 4,000, …), not one
    skip's repetitions after the other's: each engine leaves the process's
    memory a little more scattered, and the later measurements of a long
    run come out slower (at 1,000,000 customers, the same +400 days: 6.2 s
    in the first two engines, 7.4 s in the fifth and sixth), which compared
    the skip measured last against the one measured first. A customer count
    whose one ``advance_to`` takes more than ``budget`` seconds stops the
    measurement.
    """
    import poletti

    program = poletti.load(os.path.join(HERE, "programs", "cdnow.loyalty"))
    zone = timezone(timedelta(hours=-5))
    start = datetime(2024, 1, 8, tzinfo=zone)
    report: dict[str, Any] = {"runs": []}
    skips = list(spec.get("skips", SKIPS))
    for customers in spec["customers"]:
        spread = max(1, 86_400 // customers)  # one day's purchases, in time order
        events = [{"id": f"a{i}", "type": "purchase", "customer": f"c{i}", "currency": "USD", "amount": "1500.00",
                   "at": (start + timedelta(seconds=(i * spread) % 86_400)).isoformat()} for i in range(customers)]
        last = max(event["at"] for event in events)
        last_at = datetime.fromisoformat(last)
        best: dict[int, float] = {}
        changed: dict[int, int] = {}

        def measured() -> list[dict[str, Any]]:
            return [{"customers": customers, "days": d, "seconds": best[d], "changed": changed[d]}
                    for d in skips if d in best]

        for _ in range(spec.get("repeat", 1)):
            for days in skips:
                engine = poletti.Engine(program, explain=False)
                for event in events:
                    engine.process(event)
                gc.collect()
                began = time.perf_counter()
                outcomes = engine.advance_to((last_at + timedelta(days=days)).isoformat())
                seconds = time.perf_counter() - began
                best[days] = min(best.get(days, seconds), seconds)
                changed[days] = len(outcomes)
                del engine, outcomes
                if seconds > spec.get("budget", 120):
                    report["runs"] += measured()
                    report["stopped"] = f"stopped after {seconds:.0f} s for one advance_to"
                    return report
        report["runs"] += measured()
    return report
