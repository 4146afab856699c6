"""What the hand-written loops and the peer loops of the benchmark share, written from LANGUAGE.md alone.

Nothing here imports poletti: the hand loops are an independent
implementation of the contract, so that the benchmark, which checks every
contender's figures against them before timing counts, is also a
differential test of the engine.

* :func:`months_later` — the contract's calendar shift: a purchase at p
  counts in a ``12m`` window until p + 12 calendar months on the program's
  wall clock, exclusive (day of month clamped, wall time kept; a time the
  clocks skip moves to the end of the gap, a repeated time is the first of
  its two instants). The same instant ends a lot with ``points expire
  after 12m``.
* :data:`Figures` — one customer's standing as every contender reports it:
  ``(points, pending_points, lifetime_points, rewards, tier)`` with
  ``rewards`` holding only the rewards granted at least once.
* :func:`totals` — the simulate summary's figures from the hand loop's
  per-customer figures and running totals, to compare with
  ``poletti simulate --json``.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

#: One customer's figures: points (negative in debt), pending points, lifetime points,
#: rewards granted (only those granted at least once) and tier (None: no tier).
Figures = tuple[int, int, int, dict[str, int], str | None]
#: Every customer's figures, by customer id.
Result = dict[str, Figures]

UTC = timezone.utc


def months_later(at: datetime, months: int, zone: ZoneInfo) -> int:
    """The instant ``months`` calendar months after ``at`` on ``zone``'s wall clock, as epoch seconds.

    The contract: the day of month is clamped (31 January + 1 month is the
    last day of February), the wall time is kept; a wall time the clocks
    skip is the end of the skipped span (the instant they jump), a wall
    time they repeat is the earlier of its two instants.
    """
    wall = at.astimezone(zone).replace(tzinfo=None)
    year, month0 = divmod(wall.month - 1 + months, 12)
    year += wall.year
    month = month0 + 1
    day = min(wall.day, calendar.monthrange(year, month)[1])
    target = wall.replace(year=year, month=month, day=day)
    # fold=0: in a repeated hour, the first (earlier) instant; in a skipped hour, zoneinfo applies the
    # offset from before the jump, which lands after the jump.
    instant = int(target.replace(tzinfo=zone, fold=0).timestamp())
    if datetime.fromtimestamp(instant, zone).replace(tzinfo=None) == target:
        return instant
    return _gap_end(instant, zone)


def _gap_end(after: int, zone: ZoneInfo) -> int:
    """The instant the clocks jumped, at or before ``after`` (which is past a jump that skipped wall time).

    Binary search over the day before ``after`` for the first second with
    the offset ``after`` has.
    """
    offset = datetime.fromtimestamp(after, zone).utcoffset()
    low, high = after - 86_400, after  # offset(low) differs, offset(high) is the new one
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset:
            high = middle
        else:
            low = middle
    return high


def epoch_of(text: str) -> datetime:
    """An event's ``at`` (ISO 8601 with an offset) as an aware datetime."""
    return datetime.fromisoformat(text)


def reward_map(name: str, count: int) -> dict[str, int]:
    return {name: count} if count else {}


def totals(result: Result, *, events: int, rejected: int, earned: int, spent: int, expired: int, reversed_: int,
           reward_values: dict[str, Decimal | None], tier_names: tuple[str, ...]) -> dict[str, Any]:
    """The simulate summary's figures (LANGUAGE.md, "The simulate summary") from a hand loop's run."""
    rewards = {name: 0 for name in reward_values}
    tiers = {name: 0 for name in tier_names}
    tiers["none"] = 0
    outstanding = 0
    cost = Decimal(0)
    for points, pending, _lifetime, granted, tier in result.values():
        outstanding += points + pending
        for name, count in granted.items():
            rewards[name] = rewards.get(name, 0) + count
            value = reward_values.get(name)
            if value is not None:
                cost += value * count
        tiers[tier or "none"] += 1
    return {
        "events": events,
        "rejected": rejected,
        "customers": len(result),
        "points": {"earned": earned, "spent": spent, "expired": expired, "reversed": reversed_,
                   "outstanding": outstanding},
        "rewards": rewards,
        "tiers": tiers,
        "cost": f"{cost.quantize(Decimal('0.01'))}",
    }


def end_of(events: list[dict[str, Any]]) -> str:
    """Where the replay stops: the last event's time (what ``poletti simulate`` advances the clock to)."""
    return max(events, key=lambda e: datetime.fromisoformat(e["at"]))["at"] if events else "1970-01-01T00:00:00+00:00"


__all__ = ["Figures", "Result", "UTC", "end_of", "epoch_of", "months_later", "reward_map", "timedelta", "totals"]
