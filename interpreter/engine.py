"""The embedding API: ``Engine(program, store=None)``.

``process(event) -> Outcome`` applies one event whole or not at all;
``advance_to(t)`` applies time-driven changes for every customer with
something due; ``customer(id)`` reads what a member page shows and
``history(id)`` the customer's ledger; ``process_many(events)`` is the batch
form that reports rejections instead of raising; ``save(path)`` and
``Engine.restore(program, path)`` keep a memory store in a file.

Exactly once: the store keeps a receipt of every applied event id with a
fingerprint of its content. The same id with the same content is a
duplicate (an outcome with status "duplicate" and the customer's current
figures; nothing changes); the same id with other content is rejected as a
conflict. Thread-safe with every store: each event (and each customer's
clock step) is one store transaction that locks the customer, so
concurrent calls come out as some serial order of them (docs/embedding.md).
"""

from __future__ import annotations

import hashlib
import random
import time
from datetime import date, datetime, timezone
from operator import itemgetter
from typing import Any, Callable, Iterable, Iterator

from poletti.dsl import classes
from poletti.engine.compiler import CompiledProgram
from poletti.engine.ledger import PointsLedger
from poletti.engine.program import Program
from poletti.engine.state import CustomerState
from poletti.engine.stores.base import LedgerEntry, Receipt, Store, content_dict, fingerprint
from poletti.engine.stores.memory import MemoryStore
from poletti.engine.timecalc import from_us, parse_timestamp, require_aware, to_us
from poletti.interpreter import bookkeeping
from poletti.interpreter.accounts import ACCOUNT_PREFIX, Accounts, account_key, is_account_key
from poletti.interpreter.events import (
    FIRST_YEAR, LAST_YEAR, Event, EventError, EventReader, conflict_reason, content_key,
)
from poletti.interpreter.outcome import Outcome, new_outcome
from poletti.interpreter.processing import Tally
from poletti.interpreter.referrals import Referrals, friend_of, linked_customers
from poletti.interpreter.stepper import Stepper
from poletti.interpreter.views import CustomerView, Standing, view

_CLOCK_KEY = "clock"
# A transaction another writer's made impossible (the same new event id applied by two processes at once, a
# serialization failure) is tried again from the start: the second try sees what the other one did.
_ATTEMPTS = 30  # a serializable PostgreSQL store under heavy contention aborts often; each retry backs off
_first = itemgetter(0)  # (a standing's customer)
_ADVANCED_AT_ONCE = 256  # customers ``advance_to`` changes under one taking of the memory store's lock


def _snapshot_row(customer: str, state: CustomerState, names: tuple[str | None, ...]) -> tuple[Any, ...]:
    """One customer's entry in ``Engine.standings``' snapshot: one flat tuple of plain values, the six figures
    of a ``Standing`` and then each reward's name and count.

    Flat, because the garbage collector stops tracking a tuple of plain values at its next young pass, and a
    tuple holding tuples only when that pass happens to look at the inner ones first: with each customer's
    rewards as a tuple of (name, count) pairs, 146,581 of 331,728 such tuples reached the oldest generation at
    the end of the CDNOW-like benchmark's million events, enough to bring on a full pass over every state
    (1.07 s). An export writing the standings of those 331,728 customers out took 2.17 s, 0.92 s of it in that
    pass; 1.14 s, with no pass, with flat entries. A dict in the entry would keep it tracked for good (the
    collector looks inside tuples only, never inside dicts).
    """
    ledger = state.ledger  # ``ledger.balance``, without the property: this runs once per customer
    row = (customer, ledger.free + ledger._spendable_in_lots - ledger.owed, ledger._pending, ledger.earned_total,
           ledger.owed, names[state.tier])
    rewards = state.rewards
    if rewards:
        for name, count in rewards.items():
            row += (name, count)
    return row


def _standings_of(found: list[tuple[Any, ...]]) -> Iterator[Standing]:
    """``Engine.standings``' snapshot (``_snapshot_row``) as ``Standing``s, each made as it is read.

    A ``Standing`` with its own rewards dict is made when the reader comes to it: a million held standings
    and their dicts made the collector walk every customer's state once more, a full pass (a second of the
    CDNOW-like benchmark's Engine run), while an export that writes each standing out keeps none of them.
    """
    new_standing = tuple.__new__  # (``Standing(...)`` without its Python-level ``__new__``)
    for row in found:
        size = len(row)
        if size == 6:
            rewards = {}
        elif size == 8:  # (one reward: most customers who have any)
            rewards = {row[6]: row[7]}
        else:
            rewards = dict(zip(row[6::2], row[7::2]))
        yield new_standing(Standing, row[:6] + (rewards,))


@classes.frozen
class Rejection:
    index: int  # position in the batch
    event_id: str | None
    customer: str | None
    reason: str


@classes.frozen
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


def program_digest(compiled: CompiledProgram) -> str:
    """The program's hash, as ledgers record it: the first 16 hex digits of SHA-256 of its source."""
    return hashlib.sha256((compiled.source or "").encode("utf-8", "surrogatepass")).hexdigest()[:16]


class Engine:
    """Runs one loyalty program over events; state lives in ``store`` (memory by default)."""

    def __init__(self, program: Program | CompiledProgram, store: Store | None = None, *, explain: bool = True,
                 generated: bool | None = None) -> None:
        """``explain``: keep the trace of every step for ``Outcome.explain()`` (the interpreter runs).
        ``generated``: run the code generated for the program (the default when not explaining and the
        store keeps no ledger: a ledger is written from the trace records, which only the interpreter makes);
        ``generated=False`` runs the interpreter even so (the reference, and a comparison in benchmarks).
        """
        self.compiled = _compiled(program)
        self.store: Store = store if store is not None else MemoryStore()
        self.reader = EventReader(self.compiled.checked)
        self.ledger = self.store.keeps_ledger
        records = explain or self.ledger
        if records and generated:
            raise ValueError("the generated code keeps no trace records: use explain=False with generated=True "
                             "(and a store without a ledger)")
        self.stepper = Stepper(self.compiled, explain=records, generated=generated)
        self.processor = self.stepper.processor
        self.referrals = Referrals(self.processor)
        self.accounts = Accounts(self.processor)
        # A store that locks each customer on its own (PostgreSQL's lock mode) must be told up front which
        # customers an event may change besides its own, so that it takes every lock in one order.
        self._lock_linked = bool(getattr(self.store, "locks_each_customer", False))
        self.runtime = self.stepper.runtime
        self.explain = explain
        self.digest = program_digest(self.compiled)
        self.store.use_program(self.digest, self.compiled.source or "")
        self._watermark: int | None = None  # what advance_to reached (kept here unless other processes write)
        # The memory store's ``retryable`` is always False: its events need no retry loop.
        self._once = type(self.store) is MemoryStore
        if not self.store.shared:
            self._watermark = self._read_clock()
        # The common case gets a lane of its own: the memory store, the generated code, no ledger, no pooled
        # accounts and no referral rules. There the common event does not even come here: the program's
        # generated ``lane`` reads it, applies it and returns its outcome in one function
        # (``codegen._lane_maker``), and hands anything else to ``_process`` (``_apply_once``) before changing
        # anything; ``advance_to`` has a lane of its own for it too.
        self._plain = (self._once and self.runtime is not None and not self.ledger and not self.compiled.pooled
                       and not self.referrals.rules)
        self._new_state = self.processor.state_maker()
        self._lane = self.runtime.make_lane(self, self._process) if self._plain else None
        if self._lane is not None and type(self).process is Engine.process:
            # ``engine.process`` is the lane itself, as ``process`` below would call it: one call per event
            # fewer (a host's loop calls it once per event; the method's frame was a hundredth of the time).
            # Not for a subclass with a ``process`` of its own, which must keep being called.
            self.process = self._lane  # type: ignore[method-assign]

    # ------------------------------------------------------------------ events

    def process(self, event: dict[str, Any]) -> Outcome:
        """Apply one event. Raises ``EventError`` (and changes nothing) when it is rejected.

        (An engine with the generated lane has the lane itself as its ``process``: the same, without this call.)
        """
        lane = self._lane
        if lane is not None:
            return lane(event)
        return self._process(event)

    def _process(self, event: dict[str, Any]) -> Outcome:
        """``process`` without the generated lane: the event read, then applied in one store transaction (also
        what the lane hands over: refunds, duplicates, late events, anything the quick reader does not take)."""
        read = self.reader.read(event)
        if self._once:  # a store that never asks for a retry: no retry loop around the transaction
            return self._apply_once(read, content_key(read))
        return self._retrying(self._apply_once, read, content_key(read))

    def process_many(self, events: Iterable[dict[str, Any]]) -> BatchResult:
        """Apply events in order; rejected ones are reported with their reasons, never raised."""
        outcomes: list[Outcome] = []
        rejected: list[Rejection] = []
        for index, raw in enumerate(events):
            try:
                outcomes.append(self.process(raw))
            except EventError as err:
                rejected.append(Rejection(index, err.event_id, _customer_of(raw), err.reason))
        return BatchResult(tuple(outcomes), tuple(rejected))

    def admit(self, raw: dict[str, Any]) -> Event | None:
        """Whether ``process`` would apply the event, without changing anything.

        Returns the validated event (hand it to ``apply_event``), None for a
        duplicate, and raises ``EventError`` for a rejection (a conflict included).
        """
        event = self.reader.read(raw)
        store = self.store
        with store.transaction(event.customer):
            if self._known(event, content_key(event)) is not None:
                return None
            stored = store.load(event.customer)
            state = stored if stored is not None else self.stepper.new_state(event.customer)
            self._check_clock(event, state)
            self.stepper.check(state, event)
            friend = friend_of(event)
            if friend is not None:
                self.referrals.check_link(event, store.load(friend))
            if self.compiled.pooled:
                self._pool_of(event, state, None)
        return event

    def apply_event(self, event: Event) -> Outcome:
        """Apply an event ``admit`` returned (nothing has happened in between)."""
        return self._apply(event)

    def _apply(self, event: Event) -> Outcome:
        return self._retrying(self._apply_once, event, content_key(event))

    def _retrying(self, work: Callable[..., Any], *args: Any) -> Any:
        """``work(*args)``, one store transaction, tried again while the store says the error allows it."""
        for attempt in range(_ATTEMPTS):
            try:
                return work(*args)
            except Exception as err:  # noqa: BLE001 — only what the store calls retryable is retried
                if attempt + 1 == _ATTEMPTS or not (isinstance(err, _LinksMoved) or self.store.retryable(err)):
                    raise
            # Writers that collided back off for a random while, longer each time, so that they stop colliding.
            time.sleep(random.uniform(0, min(0.1, 0.001 * 2 ** attempt)))
        raise AssertionError("unreachable")  # pragma: no cover

    def _apply_once(self, event: Event, key: tuple[Any, ...]) -> Outcome:
        store, stepper = self.store, self.stepper
        customer = event.customer
        locked: tuple[str, ...] = ()
        if self._lock_linked and (event.friend is not None or self.referrals.rules or self.compiled.pooled):
            locked = linked_customers(event, store.load, self.referrals)
            pool = self.accounts.account_to_lock(event, store.load)
            if pool is not None:
                locked += (pool,)
        with store.transaction(customer, locked) if locked else store.transaction(customer):
            receipt = store.receipt(event.id)
            if receipt is not None:
                return self._duplicate(event, key, receipt)
            state = store.load(customer)
            if state is None:
                state = stepper.new_state(customer)
            at = event.at
            watermark = self._read_clock() if store.shared else self._watermark
            if (watermark is not None and at < watermark) or (state.clock is not None and at < state.clock):
                self._check_clock(event, state)
            stepper.check(state, event)
            # A referral's friend, a buying friend's referrer (only with a friend named or referral rules).
            other = self._linked_state(event, state, locked) if (
                event.friend is not None or self.referrals.rules) else None
            if self.compiled.pooled:
                pool = self._pool_of(event, state, locked)
                if pool is not None:
                    return self._apply_pooled(event, key, state, pool, other)
            tier_before = state.tier
            before = state.ledger.copy() if self.ledger else None
            tally, earned = stepper.apply(state, event)
            linked = self._apply_linked(event, state, other, tally) if other is not None else ()
            store.save(state, stepper.schedule(state))
            store.record(event.id, customer, key)
            if before is not None:  # (tested here: this runs once per event, and most stores keep no ledger)
                self._book(tally, tally.event_start, before, state.customer, event.id, event.type)
            names = self.compiled.tier_names
            ledger = state.ledger
            # Every field, in Outcome's order (``new_outcome``: one step, once per event).
            return new_outcome(Outcome, (event.id, customer, event.type, at, "applied", earned,
                                         tally.granted, tally.expired, tally.reversed, tally.spent, names[tier_before],
                                         names[state.tier], ledger.balance, ledger.pending, ledger.earned_total,
                                         tuple(tally.trace) if tally.trace and self.explain else (), self.compiled,
                                         linked))

    # ------------------------------------------------------- shared accounts (interpreter/accounts.py)

    def _pool_of(self, event: Event, state: CustomerState, locked: tuple[str, ...] | None) -> CustomerState | None:
        """The account state whose pool the event uses (checked, redeems included; nothing changed), or None.

        ``locked``: the customers the transaction locked (None: it only reads, as ``admit`` does).
        """
        account = self.accounts.account_for(event, state)
        if account is None:
            if event.type == "redeem":
                self.accounts.check_redeem(event, state, own=True)
            return None
        key = account_key(account)
        if locked is not None and self._lock_linked and key not in locked:
            raise _LinksMoved(key)
        pool = self.store.load(key) or self.stepper.new_state(key)
        if event.type == "redeem":
            self.accounts.check_redeem(event, pool)
        return pool

    def _apply_pooled(self, event: Event, key: tuple[Any, ...], state: CustomerState, pool: CustomerState,
                      friend: CustomerState | None = None) -> Outcome:
        """A contact's event: the account's clock to the event, then steps 1–6 with the pool, both saved.

        ``friend``: a referral's friend to link (pooled programs have no referral rules, E153, but a referral
        still links its friend, so that a second referral of them is rejected as in any program).
        """
        store, stepper, accounts = self.store, self.stepper, self.accounts
        tier_before = pool.tier
        before = pool.ledger.copy() if self.ledger else None
        tally = Tally(stepper.explain)
        accounts.advance(pool, event.at, tally)
        state.account = pool.customer[len(ACCOUNT_PREFIX):]
        with accounts.pooled(state, pool):
            tally, earned = stepper.apply(state, event, tally)
            if friend is not None:
                self._apply_linked(event, state, friend, tally)
            outcome = self._outcome(state, event.id, event.type, event.at, tier_before, tally, earned)
        store.save(state, stepper.schedule(state))
        store.save(pool, accounts.next_change(pool))
        store.record(event.id, state.customer, key)
        # The pool's ledger: every movement of the account, whichever contact made it.
        self._book(tally, tally.event_start, before, pool.customer, event.id, event.type)
        return outcome

    def _advance_pooled(self, key: str, until: int) -> Outcome | None:
        """``advance_to`` for an account's state, or for a contact of an account (with the pool)."""
        store, stepper, accounts = self.store, self.stepper, self.accounts
        if is_account_key(key):
            with store.transaction(key):
                pool = store.load(key)
                if pool is None:
                    return None
                tier_before = pool.tier
                before = pool.ledger.copy() if self.ledger else None
                tally = Tally(stepper.explain)
                accounts.advance(pool, until, tally)
                store.save(pool, accounts.next_change(pool))
                self._book(tally, len(tally.trace or ()), before, key)
                return self._outcome(pool, None, "clock", until, tier_before, tally, 0) if tally.changed else None
        hint = store.load(key)
        account = hint.account if hint is not None else None
        if account is None:
            return self._advance_customer(key, until)
        pool_key = account_key(account)
        with store.transaction(key, (pool_key,)):
            state, pool = store.load(key), store.load(pool_key)
            if state is None or pool is None:
                return None
            tier_before = pool.tier
            before = pool.ledger.copy() if self.ledger else None
            tally = Tally(stepper.explain)
            accounts.advance(pool, until, tally)
            with accounts.pooled(state, pool):
                self.processor.advance(state, until, tally)
                outcome = self._outcome(state, None, "clock", until, tier_before, tally, 0)
            store.save(state, stepper.schedule(state))
            store.save(pool, accounts.next_change(pool))
            # The pool's ledger (a contact's birthday grant, say, goes to the pool).
            self._book(tally, len(tally.trace or ()), before, pool_key)
            return outcome if tally.changed else None

    def account(self, account_id: str) -> CustomerView:
        """What an account holds (``points pooled by account``): its pooled balance, lots, tier and rewards."""
        key = account_key(account_id)
        with self.store.transaction():
            state = self.store.load(key) or self.processor.new_state(key)
            return view(self.compiled, account_id, state)

    # ------------------------------------------------------- referrals (events that change two customers)

    def _linked_state(self, event: Event, state: CustomerState, locked: tuple[str, ...]) -> CustomerState | None:
        """The other customer's state the event changes (checked; nothing changed yet), or None.

        A referral: the friend's (rejected unless the friend is new and not yet referred). A referred
        friend's purchase while a referral rule may still pay: the referrer's.
        """
        friend = friend_of(event)
        if friend is not None:
            stored = self.store.load(friend)
            self.referrals.check_link(event, stored)
            return stored if stored is not None else self.stepper.new_state(friend)
        referrer = self.referrals.referrer_to_load(event, state)
        if referrer is None:
            return None
        if self._lock_linked and referrer not in locked:
            raise _LinksMoved(referrer)  # linked since the locks were chosen: again, with the referrer locked
        return self.store.load(referrer) or self.stepper.new_state(referrer)

    def _apply_linked(self, event: Event, state: CustomerState, other: CustomerState,
                      tally: Tally) -> tuple[Outcome, ...]:
        """Link the friend, or pay the referral rules; save the other state; its outcome when it changed."""
        other_tally = Tally(self.stepper.explain)
        tier_before = other.tier
        before = other.ledger.copy() if self.ledger else None
        if friend_of(event) is not None:
            self.referrals.link(event, other, tally)
            self.store.save(other, self.stepper.schedule(other))
            return ()  # the friend's figures do not change: the referral's own outcome says who was linked
        if not self.referrals.pay(event, state, other, tally, other_tally):
            return ()
        self.store.save(other, self.stepper.schedule(other))
        self._book(other_tally, 0, before, other.customer, event.id, "referral-payout")
        at = other.clock if other.clock is not None else event.at
        return (self._outcome(other, event.id, "referral-payout", at, tier_before, other_tally, 0),)

    def _known(self, event: Event, key: tuple[Any, ...]) -> Outcome | None:
        """A duplicate's outcome (the customer's figures now), or None for a new id; a conflict raises."""
        receipt = self.store.receipt(event.id)
        if receipt is None:
            return None
        return self._duplicate(event, key, receipt)

    def _duplicate(self, event: Event, key: tuple[Any, ...], receipt: Receipt) -> Outcome:
        """The outcome of an event whose id has a receipt: a duplicate's (the figures now), or a conflict raised."""
        if receipt.fingerprint != fingerprint(key):
            raise EventError(conflict_reason(event.id, receipt.content, content_dict(key)), event.id)
        state = self.store.load(receipt.customer) or self.stepper.new_state(receipt.customer)
        if self.compiled.pooled and state.account is not None:  # a contact's figures are their account's pool
            state = self.store.load(account_key(state.account)) or state
        names, ledger = self.compiled.tier_names, state.ledger
        return new_outcome(Outcome, (event.id, receipt.customer, event.type, event.at, "duplicate", 0, {}, 0, 0, 0,
                                     names[state.tier], names[state.tier], ledger.balance, ledger.pending,
                                     ledger.lifetime, (), self.compiled, ()))

    def _check_clock(self, event: Event, state: CustomerState) -> None:
        watermark = self._read_clock() if self.store.shared else self._watermark
        if watermark is not None and event.at < watermark:
            raise EventError(f"the engine clock was already advanced to {from_us(watermark).isoformat()}", event.id)
        if (state.clock is not None and event.at < state.clock
                and (state.last_event_at is None or state.clock > state.last_event_at)):
            # advance_to (another thread's, or another process's) moved this customer's clock past the event.
            raise EventError(f"the engine clock was already advanced to {from_us(state.clock).isoformat()}",
                             event.id)

    # ------------------------------------------------------------------- clock

    def _read_clock(self) -> int | None:
        value = self.store.get_meta(_CLOCK_KEY)
        return to_us(datetime.fromisoformat(value)) if value else None

    def _instant(self, when: str | date | datetime) -> int:
        if isinstance(when, datetime):
            try:
                instant = require_aware(when, "advance_to").astimezone(timezone.utc)
            except OverflowError:  # at the very edge of the calendar
                raise ValueError(f"advance_to: {when.isoformat()} is out of range: years {FIRST_YEAR} to "
                                 f"{LAST_YEAR}") from None
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
        """Apply every time-driven change up to ``when`` for all customers with one due.

        Each customer's changes are one transaction: a crash part way keeps
        the customers done, and running it again does the rest.
        """
        until = self._instant(when)
        store = self.store
        # The clock moves first: from here on an event dated before ``until`` is refused, so the customers
        # listed next are all there are, and each event applied in between happened "before" or "after" the
        # advance as a whole. An event dated later needs no advance: it moves its customer's clock itself.
        self._retrying(self._move_clock, until)
        outcomes = []
        if self._plain:  # the memory store never asks for a retry, keeps no ledger; the generated code runs
            runtime, states, lock, upcoming = self.runtime, store._states, store._lock, store._next
            # The customers due in any order; their outcomes are put in the order ``due`` lists them (by the
            # change that was due, then id) at the end: sorting the outcomes, not every customer due.
            due_at: list[int] = []  # for each outcome, the change that was due
            save = store.save
            tally = Tally(False)
            due = store.due(until, ordered=False)
            # The lock is taken for a few hundred customers at a time, not for each (a twentieth of an advance
            # of many customers went on taking it): an event of another thread waits for at most that many.
            for first in range(0, len(due), _ADVANCED_AT_ONCE):
                with lock:  # each customer still one change, as ``_advance_customer``'s transaction
                    for customer in due[first:first + _ADVANCED_AT_ONCE]:
                        state = states[customer]
                        was_due = upcoming[customer]
                        tier_before = state.tier
                        instant = runtime.advance(state, until, tally)  # (``stepper.schedule``'s next change)
                        state.next_change_clock = state.clock  # ``state.remember_next_change(instant)``
                        state.next_change_at = instant
                        save(state, instant)
                        # A tally that recorded nothing is still as new: the next customer's (most steps change
                        # nothing a host hears about).
                        if tally.changed or tally.granted or tally.expired or tally.reversed or tally.spent:
                            if tally.changed:
                                due_at.append(was_due)
                                outcomes.append(self._outcome(state, None, "clock", until, tier_before, tally, 0))
                            tally = Tally(False)
            if len(outcomes) > 1:
                # Two stable sorts on plain keys (ids, then instants, as ``due``) of the outcomes' places.
                ids = [outcome.customer for outcome in outcomes]
                order = sorted(range(len(outcomes)), key=ids.__getitem__)
                order.sort(key=due_at.__getitem__)
                outcomes = [outcomes[place] for place in order]
            return outcomes
        advance = self._advance_pooled if self.compiled.pooled else self._advance_customer
        for customer in store.due(until):
            outcome = self._retrying(advance, customer, until)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _move_clock(self, until: int) -> None:
        with self.store.transaction():
            current = self._read_clock()
            if current is None or until > current:
                self.store.set_meta(_CLOCK_KEY, from_us(until).isoformat())
                current = until
            self._watermark = current

    def _advance_customer(self, customer: str, until: int) -> Outcome | None:
        store, stepper = self.store, self.stepper
        with store.transaction(customer):
            state = store.load(customer)
            if state is None:
                return None
            tier_before = state.tier
            before = state.ledger.copy() if self.ledger else None
            tally = stepper.advance(state, until)
            store.save(state, stepper.schedule(state))
            self._book(tally, len(tally.trace or ()), before, customer)
            return self._outcome(state, None, "clock", until, tier_before, tally, 0) if tally.changed else None

    def _book(self, tally: Tally, start: int, before: PointsLedger | None, customer: str,
              event_id: str | None = None, kind: str | None = None) -> None:
        """Append to the store's ledger what ``tally`` recorded (records before ``start`` are the clock step's);
        nothing when the store keeps no ledger (``before`` is None then)."""
        if before is not None:
            self.store.append(bookkeeping.entries(tally.trace or [], start, before, customer, event_id, kind,
                                                  self.digest, self.compiled))

    # ----------------------------------------------------------------- reading

    def customer(self, customer_id: str) -> CustomerView:
        """What a member page shows: standing, lots and their expiry, stamp cards, points to the next rewards."""
        with self.store.transaction():
            state = self.store.load(customer_id) or self.processor.new_state(customer_id)
            if self.compiled.pooled and state.account is not None:  # a contact shows their account's pool
                pool = self.store.load(account_key(state.account)) or self.processor.new_state(account_key(state.account))
                with self.accounts.pooled(state, pool):
                    return view(self.compiled, customer_id, state)
            return view(self.compiled, customer_id, state)

    def history(self, customer_id: str) -> list[LedgerEntry]:
        """The customer's ledger entries, oldest first (empty when the store keeps no ledger)."""
        return self.store.history(customer_id)

    def customers(self) -> Iterator[str]:
        return self.store.customers()

    def standings(self) -> Iterator[Standing]:
        """Every customer ``customers()`` lists, in that order, with the figures ``customer()`` shows of them:
        points, pending, lifetime, debt, tier and rewards (an export of every member's balance).

        The memory store lists them from one look at its states, under its lock (a snapshot taken at once);
        other stores read one customer at a time, as ``customer()`` does.
        """
        store = self.store
        if not self._once or self.compiled.pooled:  # (the memory store's own; a contact shows their account's pool)
            return (self._standing(customer, self.customer(customer)) for customer in self.customers())
        names = self.compiled.tier_names
        with store._lock:
            # The states in the order they came (about the order they lie in memory: a third faster than
            # looking each up in the order of their ids), then the standings sorted by id (``store.customers()``).
            found = [_snapshot_row(customer, state, names) for customer, state in store._states.items()]
        found.sort(key=_first)
        return _standings_of(found)

    @staticmethod
    def _standing(customer: str, shown: CustomerView) -> Standing:
        return Standing(customer, shown.points, shown.pending_points, shown.lifetime_points, shown.debt,
                        shown.tier, shown.rewards)

    def state(self, customer_id: str) -> CustomerState | None:
        """The raw state (for reports and tests); do not modify it."""
        return self.store.load(customer_id)

    def _outcome(self, state: CustomerState, event_id: str | None, kind: str, at: int, tier_before: int,
                 tally: Tally, earned: int) -> Outcome:
        names = self.compiled.tier_names
        ledger = state.ledger
        # Every field, in Outcome's order (``new_outcome``: one step, once per event).
        return new_outcome(Outcome, (event_id, state.customer, kind, at, "applied", earned, tally.granted,
                                     tally.expired, tally.reversed, tally.spent, names[tier_before], names[state.tier],
                                     ledger.balance, ledger.pending, ledger.lifetime,
                                     tuple(tally.trace) if tally.trace and self.explain else (), self.compiled, ()))

    # --------------------------------------------------------------- snapshots

    def save(self, path: str) -> None:
        """Write the memory store's whole contents to ``path`` (an SQLite file, replaced atomically)."""
        from poletti.engine.stores.snapshot import save

        save(self.store, path)

    @classmethod
    def restore(cls, program: Program | CompiledProgram, path: str, **options: Any) -> Engine:
        """An engine on a memory store filled from a file ``save`` wrote (or any SQLite store's file)."""
        from poletti.engine.stores.snapshot import restore

        return cls(program, restore(path), **options)


class _LinksMoved(Exception):
    """A customer became linked to the event's between choosing the locks and taking them: try again."""


__all__ = ["BatchResult", "CustomerView", "Engine", "Rejection", "program_digest"]


def _customer_of(raw: Any) -> str | None:
    """The customer a rejected raw event names, as text for its ``Rejection`` (None when it names none usable)."""
    customer = raw.get("customer") if isinstance(raw, dict) else None
    if customer is None:
        return None
    if isinstance(customer, int) and customer.bit_length() > 4000:  # str() would refuse (int → text limit)
        return None
    try:
        return str(customer)
    except Exception:  # noqa: BLE001 — any object may come in a raw event; its text is only for the report
        return None
