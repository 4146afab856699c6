"""Outcomes: what processing one event (or advancing the clock) did, and why.

A ``Recorder`` collects ``Line``s while the steps run; ``Outcome`` is the
frozen result. ``Outcome.explain()`` renders the story in plain words,
including the rules that did not fire and why ("needed 50 points, had 43").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs


@attrs.frozen
class Line:
    """One thing that happened (or did not) while processing.

    kind: earn, multiplier, fixed, convert, stamp, grant, redeem, expire,
    release, reverse, tier, segment, skip, birthday.
    """

    kind: str
    at: datetime
    points: int = 0
    reward: str | None = None
    rule: str = ""
    line: int | None = None
    detail: str = ""


@attrs.frozen
class Outcome:
    event_id: str | None
    customer: str
    type: str  # the event type, or "clock" for advance_to
    at: datetime
    status: str  # "applied" or "duplicate"
    earned: int = 0  # step 3 points of this event
    granted: dict[str, int] = attrs.field(factory=dict)
    expired: int = 0
    reversed: int = 0
    spent: int = 0
    tier_before: str | None = None
    tier: str | None = None
    points: int = 0
    pending_points: int = 0
    lifetime_points: int = 0
    lines: tuple[Line, ...] = ()

    def explain(self) -> str:
        """The outcome in plain words, one line per happening."""
        when = self.at.isoformat()
        if self.status == "duplicate":
            return f"{when} {self.type} {self.event_id}: duplicate id, already processed; nothing changed\n"
        title = "clock advanced" if self.type == "clock" else f"{self.type} {self.event_id}"
        out = [f"{when} {title} (customer {self.customer})"]
        for line in self.lines:
            out.append("  " + _describe(line))
        tier_text = self.tier or "none"
        if self.tier_before != self.tier:
            tier_text = f"{self.tier_before or 'none'} → {tier_text}"
        pending = f", {self.pending_points} pending" if self.pending_points else ""
        out.append(f"  = balance {self.points} points{pending}, lifetime {self.lifetime_points}, tier {tier_text}")
        return "\n".join(out) + "\n"

    def to_dict(self) -> dict[str, Any]:
        from poletti.engine.serial import converter

        return converter.unstructure(self)  # type: ignore[no-any-return]


def _where(line: Line) -> str:
    if not line.rule:
        return ""
    at_line = f" (line {line.line})" if line.line else ""
    return f" by '{line.rule}'{at_line}"


def _describe(line: Line) -> str:
    kind = line.kind
    if kind in ("earn", "fixed"):
        return f"+{line.points} points{_where(line)}{': ' + line.detail if line.detail else ''}"
    if kind == "multiplier":
        return f"+{line.points} points from multipliers {line.detail}"
    if kind == "convert":
        return f"-{line.points} points converted into {line.reward}{_where(line)}"
    if kind in ("grant", "stamp", "birthday"):
        what = line.reward if line.reward else f"{line.points} points"
        extra = f" ({line.detail})" if line.detail else ""
        return f"granted {what}{_where(line)}{extra}"
    if kind == "redeem":
        return f"-{line.points} points redeemed for {line.reward}"
    if kind == "expire":
        return f"-{line.points} points expired ({line.detail})"
    if kind == "release":
        return f"{line.points} pending points became spendable"
    if kind == "reverse":
        return f"-{line.points} points reversed ({line.detail})"
    if kind == "tier":
        return f"tier {line.detail}{_where(line)}"
    if kind == "segment":
        return f"segment {line.detail}"
    if kind == "skip":
        return f"not fired{_where(line)}: {line.detail}"
    return f"{kind}: {line.detail}"


class Recorder:
    """Collects lines and counters while an event or clock step is processed."""

    def __init__(self, keep_skips: bool = True) -> None:
        self.lines: list[Line] = []
        self.granted: dict[str, int] = {}
        self.earned = 0
        self.expired = 0
        self.reversed = 0
        self.spent = 0
        self.keep_skips = keep_skips

    def add(self, kind: str, at: datetime, **fields: Any) -> None:
        if kind == "skip" and not self.keep_skips:
            return
        self.lines.append(Line(kind, at, **fields))

    def grant(self, reward: str) -> None:
        self.granted[reward] = self.granted.get(reward, 0) + 1

    @property
    def changed(self) -> bool:
        return any(line.kind != "skip" for line in self.lines)
