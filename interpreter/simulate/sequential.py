"""The event-at-a-time replay: one ``Engine`` per program over a stream of events in time order.

``replay(program, events, baseline=None, until=None, effect_from=None)
-> SimulationResult`` is the simplest way to simulate and the reference
the faster replays are checked against: it feeds every event, in the order
given (``History.in_time_order()`` reads a file that way), to an in-memory
``Engine`` per program, exactly as a host would. A rejected event is
counted and kept with its reason and never stops the run. ``EventReplay``
is that replay's state (fed events, then closed at the end);
``replay_file`` (``simulate --sequential``, and programs with shared
accounts) replays a file a shard of customers at a time where it can
(``streamed``), else whole.

Figures by calendar month (program time zone) come from the same pass:
before the first accepted event of a new month, every customer's
time-driven changes up to the last microsecond of the old month are
applied (``advance_to``), so expiries and tier changes land in the month
they happen in. The engine applies time-driven changes at their exact
instants whenever it is told to, so these extra clock steps change no final
figure. Only accepted events move the months and the end of the replay: a
rejected event — a typo'd year, a refund of an unknown purchase dated 2030
— changes nothing, here as anywhere (the clock ends at the last accepted
event, or at ``until``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Callable, Iterable

from poletti.engine.program import Program
from poletti.engine.timecalc import from_us, to_us
from poletti.interpreter.accounts import account_key, is_account_key
from poletti.interpreter.engine import Engine
from poletti.interpreter.events import EventError
from poletti.interpreter.outcome import Outcome
from poletti.interpreter.simulate.history import CsvDialect, Record, instant_of
from poletti.interpreter.simulate.replay import collector_paused
from poletti.interpreter.simulate.summary import (
    MEMBER_ATTRIBUTE, ONE_MICROSECOND, SCORE_ATTRIBUTE, Activity, ProgramFigures, Rejected, SimulationResult, Totals,
    Tracker, day_start, finish_summary, month_of, next_month, parse_instant, shown_months, standing_of,
)

_REPORT_EVERY = 1024

Progress = Callable[[str, int, "int | None"], None]


class ProgramRun:
    """One program's engine over the stream, with its month series."""

    def __init__(self, program: Program, label: str, generated: bool | None) -> None:
        self.program = program
        self.label = label
        self.engine = Engine(program, explain=False, generated=generated)
        self.tracker = Tracker(program.compiled, self.engine.processor.reward_cost)
        self.rejected = 0
        self.duplicates = 0
        self.pooled = program.compiled.pooled

    def absorb(self, outcome: Outcome, month: date) -> None:
        if self.pooled:
            self._absorb_pooled(outcome, month)
            return
        state = self.engine.state(outcome.customer)
        assert state is not None
        self.tracker.absorb(month, outcome.customer, outcome.points + outcome.pending_points, outcome.lifetime_points,
                            state.tier, outcome.spent, outcome.expired, outcome.reversed, outcome.granted,
                            state.segments)

    def _absorb_pooled(self, outcome: Outcome, month: date) -> None:
        """``points pooled by account``: the pool's stocks once per account, the contact as a customer."""
        engine, tracker = self.engine, self.tracker
        if is_account_key(outcome.customer):
            tracker.absorb_pool(month, outcome.customer, outcome.points + outcome.pending_points,
                                outcome.lifetime_points, outcome.spent, outcome.expired, outcome.reversed,
                                outcome.granted)
            return
        state = engine.state(outcome.customer)
        assert state is not None
        if state.account is None:  # a contact without an account keeps their own figures
            tracker.absorb(month, outcome.customer, outcome.points + outcome.pending_points, outcome.lifetime_points,
                           state.tier, outcome.spent, outcome.expired, outcome.reversed, outcome.granted,
                           state.segments)
            return
        key = account_key(state.account)
        pool = engine.state(key)
        assert pool is not None
        tracker.absorb(month, outcome.customer, 0, 0, pool.tier, 0, 0, 0, {}, state.segments)  # segments: the contact's
        tracker.absorb_pool(month, key, outcome.points + outcome.pending_points, outcome.lifetime_points,
                            outcome.spent, outcome.expired, outcome.reversed, outcome.granted)

    def advance(self, until: datetime, month: date) -> None:
        for outcome in self.engine.advance_to(until):
            self.absorb(outcome, month)

    def figures(self) -> tuple[Totals, ProgramFigures]:
        engine, compiled = self.engine, self.engine.compiled
        totals = Totals(rejected=self.rejected, duplicates=self.duplicates)
        standings = {}
        for customer in engine.customers():
            state = engine.state(customer)
            assert state is not None
            if is_account_key(customer):
                totals.add_pool(state, compiled)  # a shared account's pool: its contacts are the customers
                continue
            if state.last_event_at is None:
                continue  # a referred friend not seen yet: not a customer
            if state.account is not None:
                pool = engine.state(account_key(state.account))
                assert pool is not None
                totals.add(state, compiled, tier=pool.tier)
                with engine.accounts.pooled(state, pool):  # a contact's standing shows the account's figures
                    standings[customer] = standing_of(state, compiled)
                continue
            totals.add(state, compiled)
            standings[customer] = standing_of(state, compiled)
        return totals, ProgramFigures(self.program, [], standings)


class EventReplay:
    """The event-at-a-time replay's state: an engine per program, the month being filled, what was counted.

    ``feed`` takes events (in time order), ``close(end)`` takes every customer to the end of the replay.
    ``replay`` runs one over a whole stream; ``streamed`` runs one a shard of customers (each to the end of
    the whole history), which gives every customer the very steps the whole replay gives them.
    """

    def __init__(self, program: Program, baseline: Program | None, until_at: datetime | None,
                 effect_at: datetime | None, generated: bool | None,
                 reject: Callable[[Rejected, int | None], None]) -> None:
        """``reject(rejection, instant)``: every rejected event, with its instant in µs (None: it has none)."""
        self.tz = program.compiled.tz
        self.until_at = until_at
        self.new = ProgramRun(program, "new", generated)
        self.old = ProgramRun(baseline, "baseline", generated) if baseline is not None else None
        self.runs = [self.new] if self.old is None else [self.new, self.old]
        self.activity = Activity(self.tz, effect_at)
        self.reject = reject
        self.events = 0  # events up to ``until`` (rejected ones too)
        self.after_until = 0
        self.first: datetime | None = None  # the first and last accepted events' instants
        self.last: datetime | None = None
        self.month: date | None = None  # the month being filled
        self.boundary: datetime | None = None  # the start of the month after it

    def close_months(self, upto: datetime) -> None:
        """Close every month that ends at or before ``upto``: each customer's clock up to its last instant.

        Months in which no change is due are passed over at once, so a gap of
        years between two events costs nothing (one row dated 8999 is one step).
        """
        month, boundary, tz, runs = self.month, self.boundary, self.tz, self.runs
        assert month is not None and boundary is not None
        while upto >= boundary:
            due = _next_due(runs)
            if due is None or due >= to_us(boundary):  # nothing due in `month`: on to the month of what is next
                month = month_of(upto if due is None else min(upto, from_us(due)), tz)
            else:
                for run in runs:
                    run.advance(boundary - ONE_MICROSECOND, month)
                month = next_month(month)
            boundary = day_start(next_month(month), tz)
        self.month, self.boundary = month, boundary

    def feed(self, events: Iterable[Record | dict[str, Any]], progress: Progress | None = None,
             total: int | None = None, done: int = 0) -> int:
        """Replay ``events`` (in time order); returns ``done`` plus the events read. ``progress`` as ``replay``."""
        tz, until_at, runs, new, activity = self.tz, self.until_at, self.runs, self.new, self.activity
        both = "both" if self.old is not None else "new"
        processed = done
        with collector_paused():  # see replay.collector_paused: a third of the time otherwise
            for position, item in enumerate(events, start=1):
                processed += 1
                if progress is not None and processed % _REPORT_EVERY == 0:
                    progress("simulate", processed, total)
                record = item if isinstance(item, Record) else Record(position, item, None, instant_of(item, tz))
                instant = record.instant
                if until_at is not None and instant is not None and instant > until_at:
                    self.after_until += 1
                    continue
                self.events += 1
                at_us = None if instant is None else to_us(instant)
                raw = record.event
                if raw is None or record.error is not None:
                    for run in runs:
                        run.rejected += 1
                    self.reject(Rejected(record.row, None, None, record.error or "not an event", both), at_us)
                    continue
                # First each program says whether it takes the event: only an accepted one may move the months.
                verdicts: list[Any] = []
                for run in runs:
                    try:
                        verdicts.append(run.engine.admit(raw))
                    except EventError as err:
                        verdicts.append(EventError(err.reason))  # without its traceback: no cycle to collect
                accepted = [run for run, verdict in zip(runs, verdicts) if not isinstance(verdict, EventError)]
                if accepted and verdicts[runs.index(accepted[0])] is not None:
                    at = from_us(verdicts[runs.index(accepted[0])].at)
                    if self.month is None:
                        self.first, self.month = at, month_of(at, tz)
                        self.boundary = day_start(next_month(self.month), tz)
                    self.close_months(at)
                    if self.last is None or at > self.last:
                        self.last = at
                month = self.month
                reasons: dict[str, str] = {}
                for run, verdict in zip(runs, verdicts):
                    if isinstance(verdict, EventError):
                        run.rejected += 1
                        reasons[run.label] = verdict.reason
                        continue
                    if verdict is None:
                        run.duplicates += 1
                        continue
                    try:
                        outcome = run.engine.apply_event(verdict)
                    except Exception as err:  # a bug in the engine: say which event, keep the cause
                        raise RuntimeError(f"the engine failed on row {record.row} (event {raw.get('id')!r}, "
                                           f"{run.label} rules): {type(err).__name__}: {err}") from err
                    assert month is not None
                    run.absorb(outcome, month)
                    for other in outcome.linked:  # a referrer paid at their friend's purchase
                        run.absorb(other, month)
                    if run is new:
                        activity.event(outcome.customer, month)
                        if outcome.type == "purchase":
                            activity.purchase(outcome.customer, verdict.at, verdict.amount, month,
                                              raw.get(MEMBER_ATTRIBUTE))
                        elif outcome.type == "feedback":
                            activity.feedback(outcome.customer, verdict.at, raw.get(SCORE_ATTRIBUTE))
                if reasons:
                    event_id, customer = _text_or_none(raw.get("id")), _text_or_none(raw.get("customer"))
                    if len(reasons) == 2 and reasons["new"] == reasons["baseline"]:
                        self.reject(Rejected(record.row, event_id, customer, reasons["new"], "both"), at_us)
                    else:
                        for label, reason in reasons.items():
                            self.reject(Rejected(record.row, event_id, customer, reason, label), at_us)
        return processed

    def close(self, end: datetime | None) -> None:
        """Every customer's clock to ``end`` (the end of the replay: ``until``, or the last accepted event)."""
        if end is not None and self.month is not None:
            self.close_months(end)
            for run in self.runs:
                run.advance(end, self.month)


def replay(program: Program, events: Iterable[Record | dict[str, Any]], *, baseline: Program | None = None,
           until: str | date | datetime | None = None, effect_from: str | date | datetime | None = None,
           progress: Progress | None = None, total: int | None = None,
           on_rejected: Callable[[Rejected], None] | None = None, keep_rejections: int | None = None,
           reordered: bool | None = None, generated: bool | None = None) -> SimulationResult:
    """Replay ``events`` (in time order) through ``program`` and, if given, ``baseline``.

    ``events``: ``Record``s from a ``History``, or plain event dicts. Events
    after ``until`` are not applied (they are counted in the summary's
    ``after_until``); the clock ends at ``until``, or else at the last
    accepted event's time. ``progress(phase, done, total)`` is called every
    few hundred events with phase ``"simulate"``. Every rejection goes to
    ``on_rejected``; the result keeps the first ``keep_rejections`` (all
    when None). ``reordered`` (whether the history had to be sorted) is
    copied into the summary. ``generated=False`` runs the interpreter
    instead of the generated code.
    """
    tz = program.compiled.tz
    until_at = parse_instant(until, tz) if until is not None else None
    effect_at = parse_instant(effect_from, tz) if effect_from is not None else None
    rejections: list[Rejected] = []

    def reject(item: Rejected, _instant: int | None) -> None:
        if keep_rejections is None or len(rejections) < keep_rejections:
            rejections.append(item)
        if on_rejected is not None:
            on_rejected(item)

    state = EventReplay(program, baseline, until_at, effect_at, generated, reject)
    processed = state.feed(events, progress, total)
    if progress is not None:
        progress("simulate", processed, total)
    first, runs, activity = state.first, state.runs, state.activity
    end = until_at if until_at is not None else state.last
    state.close(end)
    first_month = month_of(first, tz) if first is not None else None
    last_month = month_of(end, tz) if end is not None else None
    months = shown_months(first_month, last_month, [run.tracker for run in runs], activity)
    activity.finish(months)

    extras: dict[str, Any] = {}
    if until_at is not None:
        extras["after_until"] = state.after_until
    if reordered is not None:
        extras["reordered"] = reordered
    extras["period"] = {"from": first.astimezone(tz).isoformat() if first else None,
                        "to": end.astimezone(tz).isoformat() if end else None}
    extras["effect"] = activity.measures(first, end)
    figures = []
    totals = []
    for run in runs:
        run_totals, run_figures = run.figures()
        run_figures.months = run.tracker.series(months, run.program)
        totals.append(run_totals)
        figures.append(run_figures)
    old = state.old
    summary = finish_summary(totals[0], program, totals[1] if old else None, baseline, state.events, extras)
    return SimulationResult(summary, figures[0], figures[1] if old else None, rejections, activity, first, end,
                            reordered)


def replay_file(programs: list[Program], path: str, *, until: str | date | datetime | None,
                effect_from: str | date | datetime | None, bool_columns: frozenset[str] = frozenset(),
                progress: Progress | None = None, on_rejected: Callable[[Rejected], None] | None = None,
                keep_rejections: int | None = None, dialect: CsvDialect | None = None, keep_standings: bool = True,
                generated: bool | None = None, workers: int = 1) -> SimulationResult:
    """A history file replayed event at a time: ``simulate --sequential``, and the path for programs the
    per-customer replays do not take (``points pooled by account``: one event changes a contact and their
    account, whose contacts are many). A shard of customers at a time (``streamed``) where the file allows,
    else the whole file through one engine per program. ``keep_standings`` as ``columnar.simulate_file``
    (the whole replay keeps them anyway); ``workers``: processes in all for the shards (the whole replay
    runs in this one)."""
    from poletti.interpreter.simulate.history import History
    from poletti.interpreter.simulate.streamed import replay_streamed

    tz = programs[0].compiled.tz
    until_at = parse_instant(until, tz) if until is not None else None
    effect_at = parse_instant(effect_from, tz) if effect_from is not None else None
    if progress is not None:
        progress("read", 0, None)
    streamed = replay_streamed(programs, path, until_at=until_at, effect_at=effect_at, bool_columns=bool_columns,
                               dialect=dialect, progress=progress, on_rejected=on_rejected,
                               keep_rejections=keep_rejections, keep_standings=keep_standings, generated=generated,
                               workers=workers)
    if streamed is not None:
        return streamed
    with History(path, tz, bool_columns=bool_columns, dialect=dialect) as source:
        source.scan(progress)
        return replay(programs[0], source.in_time_order(progress), baseline=programs[1] if len(programs) > 1 else None,
                      until=until_at, effect_from=effect_at, progress=progress, total=source.count,
                      on_rejected=on_rejected, keep_rejections=keep_rejections, reordered=source.reordered,
                      generated=generated)


def _next_due(runs: list[ProgramRun]) -> int | None:
    """The earliest instant (µs) a change may be due in any run (None: none is; a store that cannot tell: -1)."""
    found: int | None = None
    for run in runs:
        next_due = getattr(run.engine.store, "next_due", None)
        if next_due is None:
            return -1
        due = next_due()
        if due is not None and (found is None or due < found):
            found = due
    return found


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


__all__ = ["ProgramRun", "replay", "to_us"]
