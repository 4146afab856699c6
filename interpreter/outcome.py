"""Outcomes: what processing one event (or advancing the clock) did, and why.

A ``Recorder`` collects ``Line``s while the steps run; ``Outcome`` is the
frozen result. ``Outcome.explain()`` renders the story in plain words,
including the rules that did not fire and why ("needed 50 points, had 43").
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

import attrs


@attrs.frozen
class Line:
    """One thing that happened (or did not) while processing.

    kind: earn, multiplier, fixed, convert, stamp, grant, redeem, expire,
    release, reverse, tier, segment, birthday; and, recorded only when the
    engine keeps explanations, skip (a rule that did not fire, and why) and
    cap (an award cut by its rule's limit).
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

    def explain(self, tz: tzinfo | None = None) -> str:
        """The outcome in plain words, one line per happening.

        Instants are shown in ``tz`` (UTC when None). A happening at another
        instant than the event (an expiry or a tier change applied by the
        clock in step 1) is shown with its own time.
        """
        def show(instant: datetime) -> str:
            return (instant.astimezone(tz) if tz is not None else instant).isoformat()

        when = show(self.at)
        if self.status == "duplicate":
            return (f"{when} {self.type} {self.event_id} (customer {self.customer}): duplicate id, "
                    "already processed; nothing changed\n")
        title = "clock advanced" if self.type == "clock" else f"{self.type} {self.event_id}"
        out = [f"{when} {title} (customer {self.customer})"]
        for line, count in _grouped(self.lines):
            prefix = f"at {show(line.at)}: " if line.at != self.at else ""
            out.append("  " + prefix + _describe(line, count))
        tier_text = self.tier or "none"
        if self.tier_before != self.tier:
            tier_text = f"{self.tier_before or 'none'} → {tier_text}"
        pending = f", {self.pending_points} pending" if self.pending_points else ""
        debt = f" ({_points(-self.points)} of debt, paid first by later earnings)" if self.points < 0 else ""
        out.append(f"  = balance {_points(self.points)}{debt}{pending}, lifetime {self.lifetime_points}, tier {tier_text}")
        return "\n".join(out) + "\n"

    def to_dict(self) -> dict[str, Any]:
        from poletti.engine.serial import converter

        return converter.unstructure(self)  # type: ignore[no-any-return]


EXPLANATION_KINDS = frozenset({"skip", "cap"})  # lines that explain, never change anything


def _grouped(lines: tuple[Line, ...]) -> list[tuple[Line, int]]:
    """Consecutive identical conversions collapse into one line with a count."""
    out: list[tuple[Line, int]] = []
    for line in lines:
        if out and line.kind == "convert" and out[-1][0] == line:
            out[-1] = (line, out[-1][1] + 1)
        else:
            out.append((line, 1))
    return out


def _where(line: Line) -> str:
    if not line.rule:
        return ""
    at_line = f" (line {line.line})" if line.line else ""
    return f" by '{line.rule}'{at_line}"


def _ref(line: Line) -> str:
    if not line.rule:
        return f" (line {line.line})" if line.line else ""
    at_line = f", line {line.line}" if line.line else ""
    return f" ('{line.rule}'{at_line})"


def _points(n: int) -> str:
    return f"{n} point{'' if abs(n) == 1 else 's'}"


def _describe(line: Line, count: int = 1) -> str:
    kind = line.kind
    if kind in ("earn", "fixed"):
        return f"+{_points(line.points)}{_where(line)}{': ' + line.detail if line.detail else ''}"
    if kind == "multiplier":
        return f"+{_points(line.points)} from multipliers {line.detail}"
    if kind == "convert":
        if count > 1:
            return f"-{_points(line.points * count)} converted into {count} × {line.reward}{_where(line)}"
        return f"-{_points(line.points)} converted into {line.reward}{_where(line)}"
    if kind in ("grant", "stamp", "birthday"):
        what = line.reward if line.reward else _points(line.points)
        extra = f": {line.detail}" if line.detail else ""
        occasion = " for the birthday" if kind == "birthday" else ""
        return f"granted {what}{occasion}{_where(line)}{extra}"
    if kind == "redeem":
        return f"-{_points(line.points)} redeemed for {line.reward}"
    if kind == "expire":
        return f"-{_points(line.points)} expired ({line.detail})"
    if kind == "release":
        extra = f" ({line.detail})" if line.detail else ""
        return f"{_points(line.points)} pending became spendable{extra}"
    if kind == "reverse":
        if not line.points:
            return f"no points reversed ({line.detail})"
        return f"-{_points(line.points)} reversed ({line.detail})"
    if kind == "tier":
        return f"tier {line.detail}{_ref(line)}"
    if kind == "segment":
        return f"segment {line.detail}{_ref(line)}"
    if kind == "cap":
        return f"{_points(line.points)} cut{_where(line)}: {line.detail}"
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
        if kind in EXPLANATION_KINDS and not self.keep_skips:
            return
        self.lines.append(Line(kind, at, **fields))

    def grant(self, reward: str) -> None:
        self.granted[reward] = self.granted.get(reward, 0) + 1

    @property
    def changed(self) -> bool:
        return any(line.kind not in EXPLANATION_KINDS for line in self.lines)
