"""The embedding API: ``Engine(program, store=None)``.

``process(event) -> Outcome`` applies one event whole or not at all;
``advance_to(t)`` applies time-driven changes for every customer with
something due; ``customer(id)`` reads a customer's current standing;
``process_many(events)`` is the batch form that reports rejections instead
of raising.
"""

from __future__ import annotations

import copy
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Iterator

import attrs

from poletti.engine.compiler import CompiledProgram
from poletti.engine.ledger import InsufficientPoints
from poletti.engine.money import from_units, show
from poletti.engine.program import Program
from poletti.engine.state import CustomerState
from poletti.engine.store import MemoryStore, Store
from poletti.engine.timecalc import from_us, parse_timestamp, require_aware, to_us
from poletti.interpreter.events import FIRST_YEAR, LAST_YEAR, Event, EventError, EventReader
from poletti.interpreter.outcome import Outcome
from poletti.interpreter.generated import Runtime, runtime_for
from poletti.interpreter.processing import Processor, Tally

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
        self.processor = Processor(self.compiled)
        self.explain = explain
        self._watermark: object = _UNREAD
        if generated and explain:
            raise ValueError("the generated code keeps no explanations: use explain=False with generated=True")
        self.runtime: Runtime | None = None
        if generated or (generated is None and not explain):
            self.runtime = runtime_for(self.compiled, self.processor)

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

    def _apply(self, event: Event) -> Outcome:
        store, processor, cp = self.store, self.processor, self.compiled
        if store.seen(event.id):
            return Outcome(event.id, event.customer, event.type, from_us(event.at), "duplicate")
        stored = store.load(event.customer)
        state = stored if stored is not None else processor.new_state(event.customer)
        self._check_against_state(state, event)
        runtime = self.runtime
        if runtime is not None and event.type != "redeem":  # redeems are rare: the interpreter does them
            tally = Tally(False)
            tier_before = state.tier
            earned = runtime.apply(state, event, tally)
            store.save(state, self._schedule(state))
            store.mark_seen(event.id, event.customer)
            return self._outcome(state, event.id, event.type, event.at, tier_before, tally, earned)
        # A redeem's balance check comes after the clock step (lots may expire
        # at this very instant), so it works on a copy that is dropped if short.
        work = copy.deepcopy(state) if event.type == "redeem" else state
        tally = Tally(self.explain)
        tier_before = work.tier
        processor.advance(work, event.at, tally)
        if event.type == "redeem":
            assert event.reward is not None
            cost = cp.rewards[event.reward][1]
            assert cost is not None
            if work.ledger.balance < cost:
                raise EventError(f"balance {work.ledger.balance} points is short of {cost} for {event.reward}", event.id)
        processor.record_facts(work, event)
        if event.type == "refund":
            record = work.purchase(event.original or "")
            assert record is not None
            amount = event.amount if event.amount is not None else record.amount - record.refunded
            processor.refund(work, record, amount, event.at, tally)
        elif event.type == "redeem":
            assert event.reward is not None
            try:
                processor.redeem(work, event.reward, cost, event.at, tally)
            except InsufficientPoints as err:  # pragma: no cover - checked above
                raise EventError(str(err), event.id) from None
        ctx = cp.make_ctx(work, event.at, event)
        earned = processor.earn(work, ctx, event, tally)
        if earned:
            processor.add_points(work, earned, event.at, source=event.id, pending=event.type == "purchase")
        if event.type == "purchase":
            work.purchases[-1].points = earned
        # Step 4: stamp cards count first, so the points a card grants convert on this event.
        processor.stamps(work, ctx, event, tally)
        processor.convert(work, ctx, tally)
        processor.status(work, ctx, tally)
        processor.triggers(work, ctx, event, tally)
        work.last_event_at = event.at
        if event.type == "purchase":
            work.last_purchase_at = event.at
            processor.settle(work, event.at, tally)
        store.save(work, self._schedule(work))
        store.mark_seen(event.id, event.customer)
        return self._outcome(work, event.id, event.type, event.at, tier_before, tally, earned)

    def _schedule(self, state: CustomerState) -> int | None:
        """The customer's next time-driven change, remembered on the state for its next clock step."""
        instant = (self.runtime or self.processor).next_change(state)
        state.next_change_memo = None if state.clock is None else (state.clock, instant)
        return instant

    def _check_against_state(self, state: CustomerState, event: Event) -> None:
        def reject(reason: str) -> None:
            raise EventError(reason, event.id)

        if state.last_event_at is not None and event.at < state.last_event_at:
            reject(f"older than this customer's last processed event ({from_us(state.last_event_at).isoformat()}); "
                   "events of one customer must come in time order")
        watermark = self._clock()
        if watermark is not None and event.at < watermark:
            reject(f"the engine clock was already advanced to {from_us(watermark).isoformat()}")
        if event.type == "refund":
            record = state.purchase(event.original or "")
            if record is None:
                reject(f"refund of unknown purchase '{event.original}' for customer '{event.customer}'")
                return
            left = record.amount - record.refunded
            if left <= 0:
                reject(f"purchase '{record.id}' is already fully refunded")
            if event.amount is not None and event.amount > left:
                reject(f"refund of {show(event.amount)} is more than is left of purchase '{record.id}' ({show(left)})")
        if event.type == "redeem":
            reward = event.reward or ""
            if reward not in self.compiled.rewards:
                known = ", ".join(sorted(self.compiled.rewards)) or "none"
                reject(f"unknown reward '{reward}' (rewards: {known})")
            if self.compiled.rewards[reward][1] is None:
                reject(f"reward '{reward}' cannot be redeemed: it has no `costs`")

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
                tally = Tally(self.explain)
                tier_before = state.tier
                if self.runtime is not None:
                    self.runtime.advance(state, until, tally)
                else:
                    self.processor.advance(state, until, tally)
                self.store.save(state, self._schedule(state))
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
        return Outcome(
            event_id=event_id, customer=state.customer, type=kind, at=from_us(at), status="applied",
            earned=earned, granted=tally.granted, expired=tally.expired, reversed=tally.reversed,
            spent=tally.spent, tier_before=names[tier_before], tier=names[state.tier],
            points=ledger.balance, pending_points=ledger.pending, lifetime_points=ledger.lifetime,
            trace=tuple(tally.trace) if tally.trace else (), program=self.compiled,
        )
