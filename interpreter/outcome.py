"""Outcomes: what processing one event (or advancing the clock) did.

An ``Outcome`` holds the counters a host needs (points earned, rewards
granted, the balance after) and, when the engine keeps explanations, the
typed trace records (``poletti.interpreter.trace``) of every happening;
``Outcome.explain()`` renders them in plain words through
``poletti.interpreter.explain``.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple

from poletti.engine.timecalc import from_us
from poletti.interpreter.trace import Record

if TYPE_CHECKING:
    from poletti.engine.compiler import CompiledProgram

# An outcome built without ``granted`` shares this one, which cannot be changed.
_NOTHING_GRANTED: Mapping[str, int] = MappingProxyType({})


class Outcome(NamedTuple):
    """What one event (or one clock step for a customer) did: a record to read.

    A tuple with names, so that the engine builds one in a single step, once
    per event (an attrs class's ``__init__`` setting 18 fields cost as much as
    reading the event). Equality leaves ``program`` out, and so does ``repr``.
    """

    event_id: str | None
    customer: str
    type: str  # the event type, or "clock" for advance_to
    # The instant, as the engine keeps it (µs since the epoch; ``at`` is it as a datetime). Built once per
    # event; a datetime costs as much as the rest of the outcome, and most hosts never read it.
    at_us: int
    status: str  # "applied" or "duplicate"
    earned: int = 0  # step 3 points of this event
    granted: Mapping[str, int] = _NOTHING_GRANTED  # reward → how many this event (or step) granted
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
    program: CompiledProgram | None = None
    # Other customers the event changed, each as its own outcome (a referrer paid when their friend buys;
    # docs/language.md "Referrals"). Empty for almost every event.
    linked: tuple[Outcome, ...] = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Outcome:
            return NotImplemented
        # (``program`` is the last field but one)
        return self[:_PROGRAM] == other[:_PROGRAM] and self[-1] == other[-1]  # type: ignore[index]

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]  # (``granted`` is a dict)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self) if name != "program")
        return f"Outcome({shown})"

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

        data = {("at" if name == "at_us" else name): (self.at.isoformat() if name == "at_us" else value)
                for name, value in zip(self._fields, self) if name not in ("trace", "program", "linked")}
        data["granted"] = dict(self.granted)
        program = self.program
        data["trace"] = [record_dict(record, program) for record in self.trace] if program is not None else []
        if self.linked:
            data["linked"] = [other.to_dict() for other in self.linked]
        return data


_PROGRAM = Outcome._fields.index("program")
assert _PROGRAM == len(Outcome._fields) - 2  # (``Outcome.__eq__``)
# ``new_outcome(Outcome, (every field, in order))``: an outcome built in one step, without the named tuple's
# Python-level ``__new__`` (the engine builds one per event, with every field).
new_outcome = tuple.__new__
