"""The per-customer replay: each customer's events in one go, through the generated code.

Customers do not interact, so a history can be replayed one customer at a
time (customers who share an event id together, since only time order says
which of two rows is the duplicate). ``ShardReplay`` does that for any set
of customers — all of them in one process, or a shard of them in a worker —
and adds up, in the accumulators of ``summary``, exactly what the
event-at-a-time replay (``sequential``) would for the same customers:

* an event is first checked by every program; only one that some program
  takes moves anything on;
* before an event, the customer's time-driven changes are applied month by
  month (to the last microsecond of each month they are due in; months with
  nothing due are passed over at once), as the
  event-at-a-time replay's month ends do, so every change lands in its
  month;
* ``finish(end)`` then takes every customer to the end of the replay (the
  last accepted event of the whole history, or ``--until``), month by
  month, and adds up their final figures.

The end of the replay is worked out first (``find_end``: usually by
replaying the one customer with the latest event), so each group is
replayed to the end and let go at once: memory holds one group's states,
not every customer's. After each ``run`` (a set of whole customers: a
shard) the tables kept per customer while their events come in are folded
into sums (``settle``), and each customer's final standing is kept only if
asked (``keep_standings``; the group changes against a baseline are added
up shard by shard either way), so a summary's memory does not grow with the
customers.
"""

from __future__ import annotations

import contextlib
import gc
from datetime import date, datetime
from typing import Any, Callable, Iterator

import attrs
import numpy as np

from poletti.dsl import classes
from poletti.engine.program import Program
from poletti.engine.state import CustomerState
from poletti.engine.timecalc import day_start_us
from poletti.engine.stores.base import content_dict
from poletti.interpreter.events import Event, EventError, EventReader, conflict_reason, content_key
from poletti.interpreter.simulate import kernels
from poletti.interpreter.simulate.columns import NO_INSTANT, PURCHASE, REFUND, Columns, Grouping
from poletti.interpreter.simulate.summary import (
    MEMBER_ATTRIBUTE, SCORE_ATTRIBUTE, Activity, GroupChanges, Rejected, Standings, Totals, Tracker, member_flag,
    month_of_us, next_month, standing_of,
)
from poletti.interpreter.processing import Tally
from poletti.interpreter.referrals import Referrals
from poletti.interpreter.stepper import Stepper


_TICK_ROWS = 4096
_PAUSES = 0  # how many replays (nested) have the collector paused


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a replay.

    A replay allocates a few objects per event and keeps every customer's
    state: the collector would keep walking an ever larger heap, which costs
    a third of the time of a replay. Nothing a replay builds refers back to
    itself — reference counting frees it all (rejections are kept as their
    reasons, not as exceptions, whose tracebacks would form cycles) — so the
    collector is paused, and run once when the outermost replay ends, over
    its youngest generation only: everything made while it was paused is
    there (no collection ran to move it on), while a full collection would
    also walk every older object — the modules, the compiled programs —
    for cycles the replay did not make (0.02 to 0.05 s, which with workers
    is serial, after they end).
    """
    global _PAUSES
    was_enabled = gc.isenabled()
    gc.disable()
    _PAUSES += 1
    try:
        yield
    finally:
        _PAUSES -= 1
        if _PAUSES == 0:
            if was_enabled:
                gc.enable()
            gc.collect(0)


class _Refused:
    """A program's no to an event: its reason (the exception itself is let go; its traceback is a cycle)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Lane:
    """One program's side of a shard: its states, month series, totals and standings."""

    def __init__(self, program: Program, label: str, generated: bool | None, tz: Any) -> None:
        self.program = program
        self.label = label
        compiled = program.compiled
        self.tz = tz  # the calendar of the month series: the new program's, for both (they are compared)
        self.stepper = Stepper(compiled, explain=False, generated=generated)
        self.referrals = Referrals(self.stepper.processor)
        self.reader = EventReader(compiled.checked)
        self.tracker = Tracker(compiled, self.stepper.processor.reward_cost)
        self.totals = Totals()
        self.standings = Standings()
        self.states: dict[str, CustomerState] = {}
        self.month: dict[str, date] = {}  # customer → the month its time-driven changes are applied up to
        # customer → the first and the last-plus-one instant of that month: most events fall in the month of
        # the customer's previous one, which is then known without working out a local date.
        self.bounds: dict[str, tuple[int, int]] = {}

    def event(self, columns: Columns, index: int, base: Event | None) -> Event:
        """Row ``index`` as this program's event (``EventError`` if the program rejects it as it stands).

        ``base`` is the row already made an event from its columns (plain
        rows); it only needs this program's attributes and checks. Any other
        row goes through this program's event reader as the dict it is.
        """
        if base is None:
            return self.reader.read(columns.raw(index))
        if base.attributes is None:  # the row has attribute cells: this program's typed values of them
            base = attrs.evolve(base, attributes=self.reader._attributes(columns.attribute_cells(index), base.id))
        self.reader._check_type_rules(base)
        return base

    def state_of(self, customer: str) -> CustomerState:
        state = self.states.get(customer)
        if state is None:
            state = self.states[customer] = self.stepper.new_state(customer)
        return state

    def through_months(self, state: CustomerState, customer: str, until: int) -> date:
        """Apply the customer's changes due before the month of ``until``, each month on its own; that month."""
        bounds = self.bounds.get(customer)
        if bounds is not None and bounds[0] <= until < bounds[1]:
            return self.month[customer]  # the month of the customer's last step: nothing to apply
        tz = self.tz
        target = month_of_us(until, tz)
        month = self.month.get(customer)
        if month is None:
            self.month[customer] = target
            self.bounds[customer] = (day_start_us(target, tz), day_start_us(next_month(target), tz))
            return target
        target_start: int | None = None
        while month < target:
            due = self.next_change(state)
            boundary = day_start_us(next_month(month), tz)
            if due is None or due >= boundary:  # nothing due in `month`: on to the month of the next change
                if target_start is None:
                    target_start = day_start_us(target, tz)
                if due is None or due >= target_start:
                    break
                month = month_of_us(due, tz)
                continue
            self.clock_step(state, customer, boundary - 1, month)
            month = next_month(month)
        self.month[customer] = target
        self.bounds[customer] = (day_start_us(target, tz), day_start_us(next_month(target), tz))
        return target

    def next_change(self, state: CustomerState) -> int | None:
        """The customer's next time-driven change: the one remembered at this clock, else worked out (and
        remembered, ``Stepper.schedule``)."""
        known = state.next_change_clock
        return state.next_change_at if known is not None and known == state.clock else self.stepper.schedule(state)

    def clock_step(self, state: CustomerState, customer: str, until: int, month: date) -> None:
        """``advance_to(until)`` for one customer: only if a change is due by then."""
        due = self.next_change(state)
        if due is None or due > until:
            return
        tally = self.stepper.advance(state, until)
        self.stepper.schedule(state)
        ledger = state.ledger
        self.tracker.absorb(month, customer, ledger.balance + ledger.pending, ledger.earned_total, state.tier,
                            tally.spent, tally.expired, tally.reversed, tally.granted, state.segments)

    def finish(self, end: int | None) -> None:
        """The group's customers to the end of the replay, then their final figures; the states are let go."""
        compiled = self.program.compiled
        for customer, state in self.states.items():
            if customer not in self.month:  # never accepted an event: not a customer of this program
                continue
            if end is not None:
                month = self.through_months(state, customer, end)
                self.clock_step(state, customer, end, month)
            self.totals.add(state, compiled)
            self.standings[customer] = standing_of(state, compiled)
        self.states = {}
        self.month = {}
        self.bounds = {}


@classes.define
class ShardResult:
    """What one shard adds up to, as plain data (it travels between processes; see ``merge``)."""

    trackers: list[Tracker]
    totals: list[Totals]
    standings: list[Standings] | None  # None: not kept (``ShardReplay``'s ``keep_standings``)
    activity: Activity
    groups: GroupChanges | None  # with a baseline: who gains and who loses (``GroupChanges``)
    rejections: list[tuple[int, int, bool, Rejected]]  # (instant or NO_INSTANT, row, from the baseline?, rejection)
    events: int = 0
    after_until: int = 0
    first: int | None = None  # the first and last instants of accepted events
    last: int | None = None


class ShardReplay:
    """Replays groups of rows (see ``columns.arrange``) for one or two programs, each to ``end``."""

    def __init__(self, programs: list[Program], *, until: int | None, effect_from: datetime | None,
                 generated: bool | None = None, arrays: bool = True, keep_standings: bool = True) -> None:
        """``arrays``: replay the customers a whole-array plan can take (``kernels``) that way;
        ``keep_standings``: keep each customer's final standing in the result (else only their sums)."""
        labels = ["new", "baseline"]
        self.tz = programs[0].compiled.tz
        self.lanes = [Lane(program, labels[i], generated, self.tz) for i, program in enumerate(programs)]
        self.until = until
        plans = [kernels.plan(program.compiled) for program in programs] if arrays and generated is not False else []
        self.plans = plans if plans and all(p is not None for p in plans) else None
        self.result = ShardResult([lane.tracker for lane in self.lanes], [lane.totals for lane in self.lanes],
                                  [Standings() for _ in self.lanes] if keep_standings else None,
                                  Activity(self.tz, effect_from),
                                  GroupChanges(programs[0]) if len(programs) == 2 else None, [])

    def run(self, columns: Columns, grouping: Grouping, numbers: np.ndarray, end: int | None,
            tick: Callable[[int], None] | None = None) -> ShardResult:
        """Replay groups ``numbers`` of ``grouping`` to ``end`` (None: no accepted event anywhere) and add them up.

        ``tick(rows)`` hears every few thousand rows how many more are done.
        """
        done = 0
        with collector_paused():
            if self.plans is not None and end is not None:
                numbers, done = self._arrays(columns, grouping, numbers, end)
            for number in numbers.tolist():
                group = grouping.group(number)
                self._group(columns, group.tolist())
                for lane in self.lanes:
                    lane.finish(end)
                done += len(group)
                if tick is not None and done >= _TICK_ROWS:
                    tick(done)
                    done = 0
            if tick is not None and done:
                tick(done)
        self._settle()
        return self.result

    def _settle(self) -> None:
        """Add up the customers just replayed (every one of them whole): their group changes, their standings
        if kept; and forget what was kept of them while their events came in."""
        result = self.result
        if result.groups is not None:
            result.groups.add(self.lanes[0].standings, self.lanes[1].standings)
        for i, lane in enumerate(self.lanes):
            if result.standings is not None:
                result.standings[i].update(lane.standings)
            lane.standings = Standings()
            lane.tracker.settle()
        result.activity.settle()

    def _arrays(self, columns: Columns, grouping: Grouping, numbers: np.ndarray,
                end: int) -> tuple[np.ndarray, int]:
        """Replay with numpy the groups that are one customer's plain purchases and refunds (``kernels``).

        Returns the groups left for the per-customer replay, and the rows done.
        """
        eligible, refund_of = _batchable(columns, grouping, [lane.program.currency for lane in self.lanes],
                                         self.until)
        wanted = np.zeros(len(grouping), dtype=bool)
        wanted[numbers] = True
        taken = eligible & wanted
        if not taken.any():
            return numbers, 0
        member = np.repeat(taken, grouping.counts)  # along grouping.rows
        laid = grouping.rows[member]
        late = columns.instant[laid] > self.until if self.until is not None else np.zeros(len(laid), dtype=bool)
        rows = laid[~late]
        counts = np.add.reduceat((~late).astype(np.int64), np.concatenate(([0], np.cumsum(
            grouping.counts[taken])[:-1]))) if laid.size else np.zeros(0, dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        position = np.full(columns.count, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        originals = refund_of[rows]
        positions = np.where(originals >= 0, position[np.maximum(originals, 0)], -1)
        amounts = columns.amount[rows].copy()
        whole = (positions >= 0) & ~columns.has_amount[rows]  # a refund without an amount: the rest, all of it
        amounts[whole] = amounts[positions[whole]]
        names = [grouping.keys[g] for g in np.flatnonzero(taken).tolist()]
        batch = kernels.Batch(names, starts, counts, columns.instant[rows], amounts, positions,
                              member=_member_codes(columns, rows))
        worked = [kernels.figures(plan, batch) for plan in self.plans]  # type: ignore[union-attr]
        if any(figures is None for figures in worked):
            return numbers, 0  # a figure would not fit in int64: every group the per-customer way
        result = self.result
        for i, (lane, figures) in enumerate(zip(self.lanes, worked)):
            kernels.add_up(figures, end, lane.tracker, lane.totals, lane.standings,  # type: ignore[arg-type]
                           result.activity if i == 0 else None, self.tz)
        result.events += len(rows)
        result.after_until += int(late.sum())
        first, last = int(batch.instants.min()), int(batch.instants.max())
        result.first = first if result.first is None else min(result.first, first)
        result.last = last if result.last is None else max(result.last, last)
        return np.flatnonzero(wanted & ~eligible), len(rows)

    def trial(self) -> ShardReplay:
        """A replay of the same programs for trials (``last_accepted``): what it adds up is never used."""
        return ShardReplay([lane.program for lane in self.lanes], until=self.until, effect_from=None,
                           generated=None)

    def last_accepted(self, columns: Columns, group: np.ndarray) -> int | None:
        """The instant of the group's last accepted event, on this replay taken as a trial (see ``trial``): it
        is emptied of the customers and rejections of the groups tried before, so one trial serves them all
        (a replay is made with each program's event reader and steps: milliseconds, which a history whose
        rows are all refused would pay for each of its customers)."""
        for lane in self.lanes:
            lane.states, lane.month, lane.bounds = {}, {}, {}
        self.result.rejections.clear()
        self.result.last = None
        self._group(columns, group.tolist())
        return self.result.last

    def _reject(self, instant: int, row: int, event_id: Any, customer: Any, reason: str, rules: str) -> None:
        text = lambda value: None if value is None else str(value)  # noqa: E731
        self.result.rejections.append((instant, row, rules == "baseline",
                                       Rejected(row, text(event_id), text(customer), reason, rules)))

    def _group(self, columns: Columns, indexes: list[int]) -> None:
        if len(self.lanes) == 1:
            self._group_alone(columns, indexes)
            return
        lanes, result, until = self.lanes, self.result, self.until
        both = "both" if len(lanes) == 2 else "new"
        seen: list[dict[str, tuple[Any, ...]]] = [{} for _ in lanes]  # id → content key of the applied event
        for index in indexes:
            instant, row = int(columns.instant[index]), int(columns.rows[index])
            if until is not None and instant != NO_INSTANT and instant > until:
                result.after_until += 1
                continue
            result.events += 1
            error = columns.errors.get(index)
            if error is not None:
                for lane in lanes:
                    lane.totals.rejected += 1
                self._reject(instant, row, None, None, error, both)
                continue
            verdicts: list[Any] = []
            base = columns.event(index) if columns.plain[index] else None
            for lane, ids in zip(lanes, seen):
                try:
                    event = lane.event(columns, index, base)
                    known = ids.get(event.id)
                    if known is not None:
                        key = content_key(event)
                        if key != known:
                            raise EventError(conflict_reason(event.id, content_dict(known), content_dict(key)))
                        verdicts.append(None)
                        continue
                    lane.stepper.check(lane.states.get(event.customer) or lane.stepper.new_state(event.customer),
                                       event)
                    if event.friend is not None:  # the friend is in this group: columns.arrange joins them
                        lane.referrals.check_link(event, lane.states.get(event.friend))
                    verdicts.append(event)
                except EventError as err:
                    verdicts.append(_Refused(err.reason))
            accepted = [v for v in verdicts if isinstance(v, Event)]
            if accepted:
                at = accepted[0].at
                result.first = at if result.first is None or at < result.first else result.first
                result.last = at if result.last is None or at > result.last else result.last
            reasons: dict[str, str] = {}
            for lane, ids, verdict in zip(lanes, seen, verdicts):
                if isinstance(verdict, _Refused):
                    lane.totals.rejected += 1
                    reasons[lane.label] = verdict.reason
                elif verdict is None:
                    lane.totals.duplicates += 1
                else:
                    self._apply(lane, verdict, columns, index if lane is lanes[0] else None)
                    ids[verdict.id] = content_key(verdict)
            if reasons:
                raw_id, raw_customer = columns.ids[index], columns.customers[index]
                if len(reasons) == 2 and reasons["new"] == reasons["baseline"]:
                    self._reject(instant, row, raw_id, raw_customer, reasons["new"], "both")
                else:
                    for label, reason in reasons.items():
                        self._reject(instant, row, raw_id, raw_customer, reason, label)

    def _group_alone(self, columns: Columns, indexes: list[int]) -> None:
        """``_group`` for one program (no baseline): the same verdicts and sums, with less built per event.

        No verdict lists: an event is refused, a duplicate or applied at once. A duplicate id is compared
        by content only when it comes (the applied event is kept, not its content key), and the contract's
        checks are called only for the events they can refuse (``Stepper.check``'s own common case).
        """
        lane, result, until = self.lanes[0], self.result, self.until
        view = rows_of(columns, len(indexes))
        instants, plain, errors = view.instant, view.plain, columns.errors
        reader, stepper, states, totals = lane.reader, lane.stepper, lane.states, lane.totals
        check_type_rules = reader._check_type_rules
        # What applying an event takes (``_apply``, written out below: this runs once per event). The lane's
        # dicts stay the same objects until ``Lane.finish``, after the group.
        months, month_bounds, through_months = lane.month, lane.bounds, lane.through_months
        runtime, absorb = stepper.runtime, lane.tracker.absorb
        referrals = bool(lane.referrals.rules)
        activity = result.activity
        member, score = view.member, view.score
        seen: dict[str, Event] = {}  # id → the applied event
        events, first, last = 0, None, None  # the group's events, first and last accepted instants
        for index in indexes:
            instant = instants[index]
            if until is not None and instant != NO_INSTANT and instant > until:
                result.after_until += 1
                continue
            events += 1
            if errors:
                error = errors.get(index)
                if error is not None:
                    totals.rejected += 1
                    self._reject(instant, view.rows[index], None, None, error, "new")
                    continue
            try:
                if plain[index]:
                    event = view.event(index)
                    if event.attributes is None:  # the row has attribute cells: this program's typed values
                        event = attrs.evolve(event, attributes=reader._attributes(columns.attribute_cells(index),
                                                                                  event.id))
                    check_type_rules(event)
                else:
                    event = reader.read(columns.raw(index))
                known = seen.get(event.id)
                if known is not None:
                    key, known_key = content_key(event), content_key(known)
                    if key != known_key:
                        raise EventError(conflict_reason(event.id, content_dict(known_key), content_dict(key)))
                    totals.duplicates += 1
                    continue
                state = states.get(event.customer)
                kind = event.type
                if (kind == "refund" or kind == "redeem" or event.rewards_used
                        or (state is not None and state.last_event_at is not None
                            and event.at < state.last_event_at)):
                    stepper.check(state or stepper.new_state(event.customer), event)
                if event.friend is not None:  # the friend is in this group: columns.arrange joins them
                    lane.referrals.check_link(event, states.get(event.friend))
            except EventError as err:
                totals.rejected += 1
                self._reject(instant, view.rows[index], columns.ids[index], columns.customers[index], err.reason,
                             "new")
                continue
            at = event.at
            if first is None or at < first:
                first = at
            if last is None or at > last:
                last = at
            # ``_apply(lane, event, columns, index)``, written out.
            customer = event.customer
            if state is None:
                state = lane.state_of(customer)
            bounds = month_bounds.get(customer)
            month = months[customer] if bounds is not None and bounds[0] <= at < bounds[1] \
                else through_months(state, customer, at)
            if runtime is not None and kind != "redeem" and not event.rewards_used and event.partner is None:
                tally = Tally(False)  # Stepper.apply's common case, without its tuple
                runtime.apply(state, event, tally)
            else:
                tally, _ = stepper.apply(state, event)
            if referrals or event.friend is not None:
                self._referral(lane, event, state, tally, month)
            # No ``Stepper.schedule`` here: the customer's next change is worked out where it is needed (the
            # next apply, a month's close), once either way. The memo is dropped instead: an event at the
            # instant of the last one leaves it as it was, and it must not outlive the change.
            state.next_change_clock = None
            ledger = state.ledger
            absorb(month, customer, ledger.balance + ledger.pending, ledger.earned_total, state.tier,
                   tally.spent, tally.expired, tally.reversed, tally.granted, state.segments)
            activity.event(customer, month)
            if kind == "purchase":
                activity.purchase(customer, at, event.amount or 0, month, member[index] if member is not None else None)
            elif kind == "feedback":
                activity.feedback(customer, at, score[index] if score is not None else None)
            seen[event.id] = event
        result.events += events
        if first is not None:
            result.first = first if result.first is None or first < result.first else result.first
            result.last = last if result.last is None or last > result.last else result.last  # type: ignore[operator]

    def _apply(self, lane: Lane, event: Event, columns: Columns, index: int | None) -> None:
        """Apply an accepted event; ``index`` (its row) only for the new program, whose run the activity follows.

        (``_group_alone`` has this written out: a change here belongs there too.)
        """
        customer = event.customer
        state = lane.state_of(customer)
        month = lane.through_months(state, customer, event.at)
        tally, _ = lane.stepper.apply(state, event)
        if event.friend is not None or lane.referrals.rules:
            self._referral(lane, event, state, tally, month)
        lane.stepper.schedule(state)
        ledger = state.ledger
        lane.tracker.absorb(month, customer, ledger.balance + ledger.pending, ledger.earned_total, state.tier,
                            tally.spent, tally.expired, tally.reversed, tally.granted, state.segments)
        if index is not None:
            activity = self.result.activity
            activity.event(customer, month)
            kind = event.type
            if kind == "purchase":
                member = rows_of(columns).member
                activity.purchase(customer, event.at, event.amount or 0, month,
                                  member[index] if member is not None else None)
            elif kind == "feedback":
                score = rows_of(columns).score
                activity.feedback(customer, event.at, score[index] if score is not None else None)

    @staticmethod
    def _referral(lane: Lane, event: Event, state: CustomerState, tally: Tally, month: date) -> None:
        """A referral's link, or what a referred friend's purchase pays their referrer (interpreter/referrals.py)."""
        if event.friend is not None:
            lane.referrals.link(event, lane.state_of(event.friend), tally)  # not a customer until their own event
            return
        referrer = lane.referrals.referrer_to_load(event, state)
        if referrer is None:
            return
        other = lane.state_of(referrer)
        lane.through_months(other, referrer, event.at)  # the referrer's earlier months close first
        other_tally = Tally(False)
        if lane.referrals.pay(event, state, other, tally, other_tally):
            lane.stepper.schedule(other)
            ledger = other.ledger
            lane.tracker.absorb(month, referrer, ledger.balance + ledger.pending, ledger.earned_total, other.tier,
                                other_tally.spent, other_tally.expired, other_tally.reversed, other_tally.granted,
                                other.segments)


class RowLists:
    """The columns a per-event replay reads, as Python lists: indexing a numpy array or asking ``Columns.cell``
    for every cell of every event costs more than the lists (made once per ``Columns``)."""

    def __init__(self, columns: Columns) -> None:
        self.instant: list[int] = columns.instant.tolist()
        self.rows: list[int] = columns.rows.tolist()
        self.plain: list[bool] = columns.plain.tolist()
        self.amount: list[int] = columns.amount.tolist()
        self.has_amount: list[bool] = columns.has_amount.tolist()
        self.extra: list[bool] = columns.extra.tolist()
        self.ids, self.types, self.customers = columns.ids, columns.types, columns.customers
        self.currency = columns.cells("currency")
        self.original = columns.cells("original")
        self.reward = columns.cells("reward")
        self.items, self.birthdays = columns.items, columns.birthdays
        self.event = self._event_maker()
        # The raw cells the activity reads, when the history has such a column (else None).
        self.member = columns.cells(MEMBER_ATTRIBUTE) if MEMBER_ATTRIBUTE in columns.names else None
        self.score = columns.cells(SCORE_ATTRIBUTE) if SCORE_ATTRIBUTE in columns.names else None

    def _event_maker(self) -> Callable[[int], Event]:
        """``Columns.event`` (a plain row as an event, before any program's checks), reading the lists from
        its closure rather than from attributes."""
        ids, types, customers, instant = self.ids, self.types, self.customers, self.instant
        amount, has_amount, currency, original, reward = (self.amount, self.has_amount, self.currency,
                                                          self.original, self.reward)
        items, birthdays, extra = self.items.get, self.birthdays.get, self.extra

        def event(index: int) -> Event:
            return Event(ids[index], types[index], customers[index], instant[index],
                         amount[index] if has_amount[index] else None, currency[index], items(index, ()),
                         original[index], reward[index], birthdays(index),
                         None if extra[index] else {})  # type: ignore[arg-type]

        return event


class _Indexed:
    """``array[i]`` as a Python value (a few rows of a ``Columns`` read without lists)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __getitem__(self, index: int) -> Any:
        return self.array[index].item()


class _CellsOf:
    """``Columns.cell(name, i)`` indexed like a list."""

    __slots__ = ("columns", "name")

    def __init__(self, columns: Columns, name: str) -> None:
        self.columns, self.name = columns, name

    def __getitem__(self, index: int) -> Any:
        return self.columns.cell(self.name, index)


class FewRows:
    """``RowLists``' reading of rows, straight from the ``Columns``: for the few rows of columns whose groups
    mostly go the whole-array way (``kernels``), or only the end's group (``find_end``)."""

    def __init__(self, columns: Columns) -> None:
        self.instant, self.rows, self.plain = _Indexed(columns.instant), _Indexed(columns.rows), _Indexed(columns.plain)
        self.event = columns.event
        self.member = _CellsOf(columns, MEMBER_ATTRIBUTE) if MEMBER_ATTRIBUTE in columns.names else None
        self.score = _CellsOf(columns, SCORE_ATTRIBUTE) if SCORE_ATTRIBUTE in columns.names else None


_ROW_LISTS_AFTER = 4096  # rows replayed event by event before their columns are made Python lists


def rows_of(columns: Columns, more: int = 0) -> RowLists | FewRows:
    """How a per-event replay reads the rows of ``columns``: ``RowLists`` once ``_ROW_LISTS_AFTER`` rows
    (counting ``more``, the rows about to be read) have been, ``FewRows`` before. Kept with the columns."""
    held = columns.row_reading
    if isinstance(held, RowLists):
        return held
    columns.rows_asked += more
    if columns.rows_asked > _ROW_LISTS_AFTER:
        held = columns.row_reading = RowLists(columns)
    elif held is None:
        held = columns.row_reading = FewRows(columns)
    return held


def _member_codes(columns: Columns, rows: np.ndarray) -> np.ndarray | None:
    """The rows' membership flags for the whole-array replay: 1 member, 0 not, -1 unknown (None: no column)."""
    if MEMBER_ATTRIBUTE not in columns.names:
        return None
    codes = {True: 1, False: 0, None: -1}
    cells = columns.cells(MEMBER_ATTRIBUTE)
    return np.array([codes[member_flag(cells[i])] for i in rows.tolist()], dtype=np.int8)


def _batchable(columns: Columns, grouping: Grouping, currencies: list[str],
               until: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Which groups every program surely takes whole, with no detour: one customer's plain purchases and
    refunds, each id once, each refund of an earlier purchase of theirs, at most one per purchase, within its
    amount (rows after ``until`` aside). Also, for each refund row, the row of its purchase (-1 otherwise).
    """
    count = columns.count
    kind, plain, has_amount = columns.kind, columns.plain, columns.has_amount
    ok = plain & (((kind == PURCHASE) & has_amount) | ((kind == REFUND) & (columns.original_code >= 0)))
    for currency in currencies:
        ok &= columns.currency_is(currency)
    id_code = columns.id_code
    refund_of = np.full(count, -1, dtype=np.int64)
    if id_code.max(initial=-1) < 0:
        return np.zeros(len(grouping), dtype=bool), refund_of  # ids that are not text: the careful way
    seen = np.bincount(id_code[id_code >= 0], minlength=int(id_code.max()) + 1)
    ok &= (id_code >= 0) & (seen[np.maximum(id_code, 0)] == 1)
    refunds = np.flatnonzero(ok & (kind == REFUND))
    if refunds.size:
        row_of = np.full(len(seen), -1, dtype=np.int64)
        unique = np.flatnonzero(id_code >= 0)
        row_of[id_code[unique]] = unique
        original = columns.original_code[refunds]
        purchase = np.where(original < len(row_of), row_of[np.minimum(original, len(row_of) - 1)], -1)
        order = np.empty(count, dtype=np.int64)
        order[grouping.rows] = np.arange(count)
        found = purchase >= 0
        safe = np.maximum(purchase, 0)
        good = found & (kind[safe] == PURCHASE) & (grouping.group_of[safe] == grouping.group_of[refunds]) \
            & (order[safe] < order[refunds])
        whole = columns.amount[safe]
        part = columns.amount[refunds]
        good &= np.where(has_amount[refunds], (part > 0) & (part <= whole), whole > 0)
        once = np.bincount(safe[good], minlength=count)
        good &= once[safe] == 1
        ok[refunds[~good]] = False
        refund_of[refunds[good]] = purchase[good]
    if until is not None:
        late = columns.instant > until
        ok |= late  # rows after the end are counted, not replayed
        left = np.add.reduceat((~late[grouping.rows]).astype(np.int64), grouping.starts) if count else np.zeros(0)
    else:
        left = grouping.counts
    laid = ok[grouping.rows].astype(np.int8)
    whole_groups = np.minimum.reduceat(laid, grouping.starts).astype(bool) if laid.size else laid.astype(bool)
    return whole_groups & grouping.single & (left > 0), refund_of


def find_end(replay: ShardReplay, columns: Columns, grouping: Grouping) -> int | None:
    """The instant of the last accepted event of the whole history (None: none is accepted).

    Rows are tried latest first: the group of the latest row is replayed on
    its own, and its last accepted instant is the end unless a later row of
    another group is accepted — so usually one group's replay settles it.
    """
    instants = columns.instant
    latest_first = np.argsort(instants, kind="stable")[::-1]
    best: int | None = None
    tried: set[int] = set()
    trial = replay.trial()
    for index in latest_first.tolist():
        instant = int(instants[index])
        if instant == NO_INSTANT or (best is not None and instant <= best):
            break
        if replay.until is not None and instant > replay.until:
            continue
        group = int(grouping.group_of[index])
        if group in tried:
            continue
        tried.add(group)
        last = trial.last_accepted(columns, grouping.group(group))
        if last is not None and (best is None or last > best):
            best = last
    return best


def in_replay_order(rejections: list[tuple[int, int, bool, Rejected]], in_time_order: bool) -> list[Rejected]:
    """Rejections in the order the event-at-a-time replay meets them (``History.in_time_order()``'s).

    A history in time order is replayed as it is (by row); any other is
    sorted by instant, rows without a readable one first, equal instants by row.
    """
    if in_time_order:
        ordered = sorted(rejections, key=lambda entry: (entry[1], entry[2]))
    else:
        ordered = sorted(rejections, key=lambda entry: (entry[0], entry[1], entry[2]))
    return [entry[3] for entry in ordered]


def merge(shards: list[ShardResult]) -> ShardResult:
    """Add up shards of disjoint customers (the first shard's accumulators take the others in)."""
    total = shards[0]
    for shard in shards[1:]:
        for mine, theirs in zip(total.trackers, shard.trackers):
            mine.merge(theirs)
        for mine_totals, their_totals in zip(total.totals, shard.totals):
            mine_totals.merge(their_totals)
        if total.standings is not None and shard.standings is not None:
            for mine_standings, their_standings in zip(total.standings, shard.standings):
                mine_standings.update(their_standings)
        if total.groups is not None and shard.groups is not None:
            total.groups.merge(shard.groups)
        total.activity.merge(shard.activity)
        total.rejections.extend(shard.rejections)
        total.events += shard.events
        total.after_until += shard.after_until
        for name, pick in (("first", min), ("last", max)):
            values = [v for v in (getattr(total, name), getattr(shard, name)) if v is not None]
            setattr(total, name, pick(values) if values else None)
    return total


__all__ = ["Lane", "ShardReplay", "ShardResult", "find_end", "in_replay_order", "merge"]
