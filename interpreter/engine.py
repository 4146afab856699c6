"""The embedding API: ``Engine(program, store=None)``.

``process(event) -> Outcome`` applies one event whole or not at all;
``advance_to(t)`` applies time-driven changes for every customer with
something due; ``customer(id)`` reads a customer's current standing;
``process_many(events)`` is the batch form that reports rejections instead
of raising.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Iterator

import attrs

from poletti.engine.compiler import CompiledProgram
from poletti.engine.money import from_units
from poletti.engine.program import Program
from poletti.engine.state import CustomerState
from poletti.engine.store import MemoryStore, Store
from poletti.engine.timecalc import from_us, parse_timestamp, require_aware, to_us
from poletti.interpreter.events import FIRST_YEAR, LAST_YEAR, Event, EventError, EventReader
from poletti.interpreter.outcome import Outcome
from poletti.interpreter.processing import Tally
from poletti.interpreter.stepper import Stepper

_CLOCK_KEY = "clock"
_UNREAD = object()


@attrs.frozen
class CustomerView:
    """A customer's standing, as the host application sees it."""

    id: str
    points: int
    pending_points: int
    lifetime_points: int
    debt: int
    tier: str | None
    rewards: dict[str, int]
    segments: frozenset[str]
    spend_lifetime: Decimal
    first_seen: datetime | None
    last_event_at: datetime | None


@attrs.frozen
class Rejection:
    index: int  # position in the batch
    event_id: str | None
    customer: str | None
    reason: str


@attrs.frozen
class BatchResult:
    outcomes: tuple[Outcome, ...]
    rejected: tuple[Rejection, ...]

    @property
    def duplicates(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "duplicate")


def _compiled(program: Any) -> CompiledProgram:
    if isinstance(program, Program):
        return program.compiled
    if isinstance(program, CompiledProgram):
        return program
    raise TypeError(f"Engine needs a program from poletti.compile() or poletti.load(), got {type(program).__name__}")


class Engine:
    """Runs one loyalty program over events; state lives in ``store`` (memory by default)."""

    def __init__(self, program: Program | CompiledProgram, store: Store | None = None, *, explain: bool = True,
                 generated: bool | None = None) -> None:
        """``explain``: keep the trace of every step for ``Outcome.explain()`` (the interpreter runs).
        ``generated``: run the code generated for the program (the default when not explaining);
        ``generated=False`` runs the interpreter even so (the reference, and a comparison in benchmarks).
        """
        self.compiled = _compiled(program)
        self.store: Store = store if store is not None else MemoryStore()
        self.reader = EventReader(self.compiled.checked)
        self.stepper = Stepper(self.compiled, explain=explain, generated=generated)
        self.processor = self.stepper.processor
        self.runtime = self.stepper.runtime
        self.explain = explain
        self._watermark: object = _UNREAD

    # ------------------------------------------------------------------ events

    def process(self, event: dict[str, Any]) -> Outcome:
        """Apply one event. Raises ``EventError`` (and changes nothing) when it is rejected."""
        parsed = self.reader.read(event)
        with self.store.transaction():
            return self._apply(parsed)

    def process_many(self, events: Iterable[dict[str, Any]]) -> BatchResult:
        """Apply events in order; rejected ones are reported with their reasons, never raised."""
        outcomes: list[Outcome] = []
        rejected: list[Rejection] = []
        for index, raw in enumerate(events):
            try:
                outcomes.append(self.process(raw))
            except EventError as err:
                customer = raw.get("customer") if isinstance(raw, dict) else None
                rejected.append(Rejection(index, err.event_id, None if customer is None else str(customer), err.reason))
        return BatchResult(tuple(outcomes), tuple(rejected))

    def admit(self, raw: dict[str, Any]) -> Event | None:
        """Whether ``process`` would apply the event, without changing anything.

        Returns the validated event (hand it to ``apply_event``), None for a
        duplicate id, and raises ``EventError`` for a rejection.
        """
        event = self.reader.read(raw)
        if self.store.seen(event.id):
            return None
        stored = self.store.load(event.customer)
        self._check_clock(event)
        self.stepper.check(stored if stored is not None else self.stepper.new_state(event.customer), event)
        return event

    def apply_event(self, event: Event) -> Outcome:
        """Apply an event ``admit`` returned (nothing has happened in between)."""
        with self.store.transaction():
            store, stepper = self.store, self.stepper
            stored = store.load(event.customer)
            state = stored if stored is not None else stepper.new_state(event.customer)
            tier_before = state.tier
            tally, earned = stepper.apply(state, event)
            store.save(state, stepper.schedule(state))
            store.mark_seen(event.id, event.customer)
            return self._outcome(state, event.id, event.type, event.at, tier_before, tally, earned)

    def _apply(self, event: Event) -> Outcome:
        store, stepper = self.store, self.stepper
        if store.seen(event.id):
            return Outcome(event.id, event.customer, event.type, from_us(event.at), "duplicate")
        stored = store.load(event.customer)
        state = stored if stored is not None else stepper.new_state(event.customer)
        self._check_clock(event)
        stepper.check(state, event)
        tier_before = state.tier
        tally, earned = stepper.apply(state, event)
        store.save(state, stepper.schedule(state))
        store.mark_seen(event.id, event.customer)
        return self._outcome(state, event.id, event.type, event.at, tier_before, tally, earned)

    def _check_clock(self, event: Event) -> None:
        watermark = self._clock()
        if watermark is not None and event.at < watermark:
            raise EventError(f"the engine clock was already advanced to {from_us(watermark).isoformat()}", event.id)

    # ------------------------------------------------------------------- clock

    def _clock(self) -> int | None:
        """How far the host advanced the clock (read from the store once, then kept up to date here)."""
        if self._watermark is _UNREAD:
            value = self.store.get_meta(_CLOCK_KEY)
            self._watermark = to_us(datetime.fromisoformat(value)) if value else None
        return self._watermark  # type: ignore[return-value]

    def _instant(self, when: str | date | datetime) -> int:
        if isinstance(when, datetime):
            instant = require_aware(when, "advance_to").astimezone(timezone.utc)
        else:
            if isinstance(when, date):
                when = when.isoformat()
            try:
                instant = parse_timestamp(when, self.compiled.tz)
            except ValueError as err:
                raise ValueError(f"advance_to: {err}") from None
        if not FIRST_YEAR <= instant.year <= LAST_YEAR:
            raise ValueError(f"advance_to: {instant.isoformat()} is out of range: years {FIRST_YEAR} to {LAST_YEAR}")
        return to_us(instant)

    def advance_to(self, when: str | date | datetime) -> list[Outcome]:
        """Apply every time-driven change up to ``when`` for all customers with one due."""
        until = self._instant(when)
        outcomes = []
        with self.store.transaction():
            for customer in self.store.due(until):
                state = self.store.load(customer)
                if state is None:
                    continue
                tier_before = state.tier
                tally = self.stepper.advance(state, until)
                self.store.save(state, self.stepper.schedule(state))
                if tally.changed:
                    outcomes.append(self._outcome(state, None, "clock", until, tier_before, tally, 0))
            current = self._clock()
            if current is None or until > current:
                self.store.set_meta(_CLOCK_KEY, from_us(until).isoformat())
                self._watermark = until
        return outcomes

    # ----------------------------------------------------------------- reading

    def customer(self, customer_id: str) -> CustomerView:
        """A customer's standing now (a customer never seen has nothing)."""
        state = self.store.load(customer_id) or self.processor.new_state(customer_id)
        cp = self.compiled
        return CustomerView(
            id=customer_id,
            points=state.ledger.balance,
            pending_points=state.ledger.pending,
            lifetime_points=state.ledger.lifetime,
            debt=state.ledger.debt,
            tier=cp.tier_names[state.tier],
            rewards=dict(state.rewards),
            segments=frozenset(name for name, inside in zip(cp.segment_names, state.segments) if inside),
            spend_lifetime=from_units(state.spend_total),
            first_seen=None if state.first_seen is None else from_us(state.first_seen),
            last_event_at=None if state.last_event_at is None else from_us(state.last_event_at),
        )

    def customers(self) -> Iterator[str]:
        return self.store.customers()

    def state(self, customer_id: str) -> CustomerState | None:
        """The raw state (for reports and tests); do not modify it."""
        return self.store.load(customer_id)

    def _outcome(self, state: CustomerState, event_id: str | None, kind: str, at: int, tier_before: int,
                 tally: Tally, earned: int) -> Outcome:
        names = self.compiled.tier_names
        ledger = state.ledger
        # Positional arguments, in Outcome's field order: keywords cost three times as much, once per event.
        return Outcome(event_id, state.customer, kind, from_us(at), "applied", earned, tally.granted, tally.expired,
                       tally.reversed, tally.spent, names[tier_before], names[state.tier], ledger.balance,
                       ledger.pending, ledger.lifetime, tuple(tally.trace) if tally.trace else (), self.compiled)
