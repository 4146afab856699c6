"""Helpers the store tests share: a history step as comparable results, and the ledger's books checked."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import poletti

FIGURES = ("status", "earned", "granted", "expired", "reversed", "spent", "tier_before", "tier", "points",
           "pending_points", "lifetime_points")


def step_through(engine: Any, step: dict[str, Any]) -> list[Any]:
    """One history step (an event, or ``advance_to``) → comparable results."""
    if "advance_to" in step:
        return [(o.customer, *(getattr(o, f) for f in FIGURES)) for o in engine.advance_to(step["advance_to"])]
    try:
        outcome = engine.process(copy.deepcopy(step))
    except poletti.EventError as err:
        return [("rejected", err.reason)]
    return [tuple(getattr(outcome, f) for f in FIGURES)]


def check_books(engine: Any, where: str) -> None:
    """Each customer's ledger ends at their figures and adds up to their totals."""
    for customer in engine.customers():
        state = engine.state(customer)
        entries = engine.history(customer)
        ledger = state.ledger
        if entries:
            last = entries[-1]
            assert (last.balance, last.pending) == (ledger.balance, ledger.pending), f"{where}: {customer} {last}"
        moved: Counter[str] = Counter()
        rewards: Counter[str] = Counter()
        wallet: dict[str, Counter[str]] = {"use": Counter(), "reward_expire": Counter()}  # issue 13
        for entry in entries:
            moved[entry.kind] += entry.points
            if entry.kind in ("reward", "redeem"):
                rewards[entry.reward] += entry.count
            if entry.kind in wallet:
                assert entry.points == 0, f"{where}: {customer} {entry}"
                wallet[entry.kind][entry.reward] += entry.count
            assert entry.program == engine.digest
        assert moved["earn"] == ledger.earned_total, f"{where}: {customer} earned"
        assert moved["spend"] + moved["redeem"] == ledger.spent_total, f"{where}: {customer} spent"
        assert moved["expire"] == ledger.expired_total, f"{where}: {customer} expired"
        assert moved["reverse"] == ledger.deducted_total, f"{where}: {customer} reversed"
        assert rewards == Counter({name: count for name, count in state.granted.items() if count}), where
        assert wallet["use"] == Counter(state.rewards_used or {}), f"{where}: {customer} used"
        assert wallet["reward_expire"] == Counter(state.rewards_expired or {}), f"{where}: {customer} expired rewards"
