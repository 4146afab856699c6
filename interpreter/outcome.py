"""Outcomes: what processing one event (or advancing the clock) did.

An ``Outcome`` holds the counters a host needs (points earned, rewards
granted, the balance after) and, when the engine keeps explanations, the
typed trace records (``poletti.interpreter.trace``) of every happening;
``Outcome.explain()`` renders them in plain words through
``poletti.interpreter.explain``.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

import attrs

from poletti.engine.timecalc import from_us
from poletti.interpreter.trace import Record

if TYPE_CHECKING:
    from poletti.engine.compiler import CompiledProgram


@attrs.define
class Outcome:
    """What one event (or one clock step for a customer) did.

    A record to read, not to change (it is not frozen only because building
    a frozen class costs four times as much, once per event).
    """

    event_id: str | None
    customer: str
    type: str  # the event type, or "clock" for advance_to
    # The instant, as the engine keeps it (µs since the epoch; ``at`` is it as a datetime). Built once per
    # event; a datetime costs as much as the rest of the outcome, and most hosts never read it.
    at_us: int
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
    trace: tuple[Record, ...] = ()
    # The program the trace refers to (its rules and names), for explanations.
    program: CompiledProgram | None = attrs.field(default=None, eq=False, repr=False)
    # Other customers the event changed, each as its own outcome (a referrer paid when their friend buys;
    # docs/language.md "Referrals"). Empty for almost every event.
    linked: tuple[Outcome, ...] = ()

    @property
    def at(self) -> datetime:
        """When the event happened (for a clock step: the instant advanced to), in UTC."""
        return from_us(self.at_us)

    def explain(self, tz: tzinfo | None = None) -> str:
        """The outcome in plain words, one line per happening (instants shown in ``tz``, UTC when None)."""
        from poletti.interpreter.explain import story

        return story(self, tz)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: the figures, and each trace record with its kind, numbers and sentence."""
        from poletti.interpreter.explain import record_dict

        data = {("at" if field.name == "at_us" else field.name):
                (self.at.isoformat() if field.name == "at_us" else getattr(self, field.name))
                for field in attrs.fields(Outcome) if field.name not in ("trace", "program", "linked")}
        data["granted"] = dict(self.granted)
        program = self.program
        data["trace"] = [record_dict(record, program) for record in self.trace] if program is not None else []
        if self.linked:
            data["linked"] = [other.to_dict() for other in self.linked]
        return data
