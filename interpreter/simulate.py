"""Simulate: replay an event history through a program (and a baseline) and sum up what it did.

``simulate(program, events, baseline=None, until=None, effect_from=None)
-> SimulationResult`` runs one in-memory ``Engine`` per program over the same
stream of events (one pass feeds both), in the order given — use
``poletti.interpreter.history.History`` to read a file in time order. A
rejected event is counted and kept with its reason and never stops the run.
At the end the clock is advanced to the last event's time (or ``until``).

The result holds:

* ``summary``: the dict of LANGUAGE.md "The simulate summary" — ``events``,
  ``rejected``, ``customers``, ``points`` (earned, spent, expired, reversed,
  outstanding), ``rewards`` (every reward of the program, 0 included),
  ``tiers`` (every tier and ``none``), ``cost``, ``cost_unknown`` (the
  rewards granted or redeemed in the run that have no declared ``value``,
  sorted: their cost is unknown, not zero, and ``cost`` leaves them out) —
  plus ``currency``, ``duplicates``, ``period``, ``effect`` and, with a
  baseline, ``baseline`` (with its own ``cost_unknown``) and ``delta`` (of
  the figures only: a list of names has no difference);
* ``new`` / ``baseline``: each program's ``ProgramRun`` with its engine (the
  final state of every customer) and its month-by-month figures;
* ``rejections``: the rejected events (row, id, customer, reason, which rules);
* ``activity``: purchases by month and the program-effect measures.

Figures by calendar month (program time zone) come from the same pass:
before the first event of a new month, every customer's time-driven changes
up to the last microsecond of the old month are applied (``advance_to``), so
expiries and tier changes land in the month they happen in. The engine
applies time-driven changes at their exact instants whenever it is told to,
so these extra clock steps change no final figure.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable, Iterable, Iterator
from zoneinfo import ZoneInfo

import attrs

from poletti.engine.money import from_units
from poletti.engine.timecalc import day_start_us, from_us
from poletti.engine.program import Program
from poletti.engine.timecalc import parse_timestamp, require_aware
from poletti.interpreter import events as _events
from poletti.interpreter.engine import Engine
from poletti.interpreter.events import EventError
from poletti.interpreter.history import Record, instant_of
from poletti.interpreter.outcome import Outcome

# The years the engine accepts in events and in advance_to.
FIRST_YEAR: int = getattr(_events, "FIRST_YEAR", 1900)
LAST_YEAR: int = getattr(_events, "LAST_YEAR", 9000)
CENT = Decimal("0.01")
ONE_MICROSECOND = timedelta(microseconds=1)
DAYS_PER_MONTH = 365.25 / 12
_REPORT_EVERY = 1024

Progress = Callable[[str, int, "int | None"], None]


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``tz``."""
    return from_us(day_start_us(day, tz))


def money(value: Decimal) -> str:
    """A money figure as the summary writes it: a decimal string with two places."""
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def parse_instant(value: str | date | datetime, tz: ZoneInfo) -> datetime:
    """``--until`` / ``--effect-from``: an ISO timestamp with offset, or a date (midnight in ``tz``). ValueError if not."""
    try:
        if isinstance(value, datetime):
            instant = require_aware(value, "time").astimezone(timezone.utc)
        elif isinstance(value, date):
            instant = day_start(value, tz)
        else:
            instant = parse_timestamp(value, tz)
    except OverflowError:
        raise ValueError(f"{value!s} is out of range: years {FIRST_YEAR} to {LAST_YEAR}") from None
    if not FIRST_YEAR <= instant.year <= LAST_YEAR:
        raise ValueError(f"{value!s} is out of range: years {FIRST_YEAR} to {LAST_YEAR}")
    return instant


def month_of(instant: datetime, tz: ZoneInfo) -> date:
    local = instant.astimezone(tz)
    return date(local.year, local.month, 1)


def next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


# ------------------------------------------------------------------ records


@attrs.frozen
class Rejected:
    """A rejected event. ``rules``: which program rejected it — new, baseline or both."""

    row: int
    event_id: str | None
    customer: str | None
    reason: str
    rules: str = "new"


@attrs.define
class Month:
    """One program's figures for one calendar month.

    Flows (earned … cost) count what happened in the month; ``outstanding``,
    ``tiers`` and ``customers`` are stocks at its end (for the last month:
    at the final clock).
    """

    start: date
    earned: int = 0
    spent: int = 0
    expired: int = 0
    reversed: int = 0
    rewards: dict[str, int] = attrs.Factory(dict)
    cost: Decimal = Decimal(0)
    outstanding: int = 0
    tiers: dict[str, int] = attrs.Factory(dict)
    customers: int = 0


@attrs.define
class ActivityMonth:
    start: date
    purchases: int = 0
    spend: Decimal = Decimal(0)
    purchasers: int = 0  # distinct customers with a purchase in the month
    active: int = 0  # distinct customers with any accepted event in the month


# --------------------------------------------------------------- one program


class ProgramRun:
    """One program's engine over the stream, with running figures for the month series."""

    def __init__(self, program: Program, label: str) -> None:
        self.program = program
        self.label = label
        self.engine = Engine(program, explain=False)
        self.values = {name: info.value or Decimal(0) for name, info in program.rewards.items()}
        self.tier_order = [tier.name for tier in program.tiers]
        self.rejected = 0
        self.duplicates = 0
        # Per customer: [outstanding, lifetime points, tier] as of their last outcome.
        self._last: dict[str, list[Any]] = {}
        self._outstanding = 0
        self._tiers: Counter[str | None] = Counter()
        self.months: list[Month] = []
        self.month: Month | None = None

    def process(self, event: dict[str, Any]) -> Outcome | None:
        """Apply one event; None for a duplicate id. Raises EventError when it is rejected."""
        outcome = self.engine.process(event)
        if outcome.status == "duplicate":
            self.duplicates += 1
            return None
        self.absorb(outcome)
        return outcome

    def absorb(self, outcome: Outcome) -> None:
        month = self.month
        if month is None:  # pragma: no cover - simulate opens the month before the first event
            month = self.open_month(month_of(outcome.at, self.engine.compiled.tz))
        last = self._last.get(outcome.customer)
        if last is None:
            last = self._last[outcome.customer] = [0, 0, None]
            self._tiers[None] += 1
        held = outcome.points + outcome.pending_points
        self._outstanding += held - last[0]
        month.earned += outcome.lifetime_points - last[1]
        month.spent += outcome.spent
        month.expired += outcome.expired
        month.reversed += outcome.reversed
        for reward, count in outcome.granted.items():
            month.rewards[reward] = month.rewards.get(reward, 0) + count
            month.cost += self.values.get(reward, Decimal(0)) * count
        if outcome.tier != last[2]:
            self._tiers[last[2]] -= 1
            self._tiers[outcome.tier] += 1
        last[0], last[1], last[2] = held, outcome.lifetime_points, outcome.tier

    def advance(self, until: datetime) -> None:
        for outcome in self.engine.advance_to(until):
            self.absorb(outcome)

    def open_month(self, start: date) -> Month:
        self.month = Month(start, rewards={name: 0 for name in self.values})
        self.months.append(self.month)
        return self.month

    def close_month(self) -> None:
        month = self.month
        if month is None:
            return
        month.outstanding = self._outstanding
        month.tiers = {name: self._tiers.get(name, 0) for name in self.tier_order}
        month.tiers["none"] = self._tiers.get(None, 0)
        month.customers = len(self._last)

    def cost_unknown(self, rewards: dict[str, int]) -> list[str]:
        """The rewards handed out at least once that have no declared value: ``cost`` cannot include them."""
        infos = self.program.rewards
        return sorted(name for name, count in rewards.items()
                      if count and (name not in infos or infos[name].value is None))

    def summary(self, events: int) -> dict[str, Any]:
        """The contract's summary object for this program, from every customer's final state."""
        engine = self.engine
        names = engine.compiled.tier_names
        earned = spent = expired = reversed_ = outstanding = customers = 0
        cost = 0
        rewards = {name: 0 for name in self.values}
        tiers = {name: 0 for name in self.tier_order}
        tiers["none"] = 0
        for customer in engine.customers():
            state = engine.state(customer)
            if state is None:  # pragma: no cover - customers() lists stored states
                continue
            customers += 1
            totals = state.totals
            earned += totals.earned
            spent += totals.spent
            expired += totals.expired
            reversed_ += totals.reversed
            cost += totals.cost
            outstanding += state.ledger.outstanding
            for reward, count in state.rewards.items():
                rewards[reward] = rewards.get(reward, 0) + count
            tier = names[state.tier] or "none"
            tiers[tier] = tiers.get(tier, 0) + 1
        return {
            "events": events,
            "rejected": self.rejected,
            "customers": customers,
            "points": {"earned": earned, "spent": spent, "expired": expired, "reversed": reversed_,
                       "outstanding": outstanding},
            "rewards": rewards,
            "tiers": tiers,
            "cost": money(from_units(cost)),
            "cost_unknown": self.cost_unknown(rewards),
            "currency": self.program.currency,
            "duplicates": self.duplicates,
        }


# ------------------------------------------------------------------ activity


@attrs.define
class _Period:
    start: datetime | None = None
    end: datetime | None = None
    purchases: int = 0
    spend: Decimal = Decimal(0)
    customers: int = 0
    repeaters: int = 0

    def measures(self) -> dict[str, Any]:
        days = (self.end - self.start).total_seconds() / 86400 if self.start and self.end else 0.0
        per_customer = self.purchases / self.customers if self.customers else None
        months = days / DAYS_PER_MONTH
        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "purchases": self.purchases,
            "purchasing_customers": self.customers,
            "repeat_purchasers": self.repeaters,
            "repeat_purchase_rate": round(self.repeaters / self.customers, 4) if self.customers else None,
            "purchases_per_customer": round(per_customer, 4) if per_customer is not None else None,
            "purchases_per_customer_per_month":
                round(per_customer / months, 4) if per_customer is not None and months > 0 else None,
            "spend": money(self.spend),
            "average_basket": money(self.spend / self.purchases) if self.purchases else None,
        }


class Activity:
    """Purchases of the new program's run: by month, and the program-effect measures.

    A purchase is an accepted purchase event; its amount is the gross amount
    (refunds later are not netted). Periods: the whole history, and with
    ``effect_from`` the part before that instant and the part from it on.
    """

    def __init__(self, tz: ZoneInfo, effect_from: datetime | None) -> None:
        self.tz = tz
        self.effect_from = effect_from
        self.all = _Period()
        self.before = _Period()
        self.after = _Period()
        self._counts: dict[str, list[int]] = {}
        self.months: list[ActivityMonth] = []
        self._purchasers: set[str] = set()
        self._active: set[str] = set()

    def open_month(self, start: date) -> None:
        self.months.append(ActivityMonth(start))
        self._purchasers = set()
        self._active = set()

    def event(self, customer: str) -> None:
        if customer not in self._active:
            self._active.add(customer)
            if self.months:
                self.months[-1].active += 1

    def purchase(self, customer: str, at: datetime, amount: Decimal) -> None:
        counts = self._counts.get(customer)
        if counts is None:
            counts = self._counts[customer] = [0, 0, 0]
        periods = [(0, self.all)]
        if self.effect_from is not None:
            periods.append((1, self.before) if at < self.effect_from else (2, self.after))
        for slot, period in periods:
            period.purchases += 1
            period.spend += amount
            counts[slot] += 1
            if counts[slot] == 1:
                period.customers += 1
            elif counts[slot] == 2:
                period.repeaters += 1
        if self.months:
            month = self.months[-1]
            month.purchases += 1
            month.spend += amount
            if customer not in self._purchasers:
                self._purchasers.add(customer)
                month.purchasers += 1

    def measures(self, first: datetime | None, end: datetime | None) -> dict[str, Any]:
        tz = self.tz
        local = (lambda t: t.astimezone(tz) if t is not None else None)  # noqa: E731
        self.all.start, self.all.end = local(first), local(end)
        result: dict[str, Any] = {"all": self.all.measures()}
        if self.effect_from is not None:
            pivot = local(self.effect_from)
            start, stop = local(first), local(end)
            self.before.start = start
            self.before.end = min(pivot, stop) if stop is not None and pivot is not None else pivot
            self.after.start = max(pivot, start) if start is not None and pivot is not None else pivot
            self.after.end = stop
            if self.before.start is not None and self.before.end is not None and self.before.end < self.before.start:
                self.before.end = self.before.start
            if self.after.start is not None and self.after.end is not None and self.after.end < self.after.start:
                self.after.end = self.after.start
            result["effect_from"] = pivot.isoformat() if pivot is not None else None
            result["before"] = self.before.measures()
            result["after"] = self.after.measures()
        return result


# -------------------------------------------------------------------- result


@attrs.define
class SimulationResult:
    summary: dict[str, Any]
    new: ProgramRun
    baseline: ProgramRun | None
    rejections: list[Rejected]
    activity: Activity
    first: datetime | None  # the first event's instant
    end: datetime | None  # where the clock was advanced to
    reordered: bool | None = None

    def customer_rows(self) -> Iterator[dict[str, Any]]:
        """One row per customer (sorted by id): final standing, and with a baseline the old one and the change."""
        new = self.new.engine
        if self.baseline is None:
            for customer in new.customers():
                row = _standing(new, customer, "")
                del row["_reward_count"]
                yield row
            return
        old = self.baseline.engine
        for customer in _merged(new.customers(), old.customers()):
            row = _standing(new, customer, "")
            before = _standing(old, customer, "baseline_")
            row.update((k, v) for k, v in before.items() if k != "baseline_customer")
            held = row["points"] + row["pending_points"] - before["baseline_points"] - before["baseline_pending_points"]
            value = Decimal(row["reward_value"]) - Decimal(before["baseline_reward_value"])
            earned = row["lifetime_points"] - before["baseline_lifetime_points"]
            row["delta_points"] = row["points"] - before["baseline_points"]
            row["delta_held_points"] = held
            row["delta_lifetime_points"] = earned
            row["delta_rewards"] = row["_reward_count"] - before["baseline__reward_count"]
            row["delta_reward_value"] = money(value)
            old_tier, new_tier = before["baseline_tier"], row["tier"]
            row["tier_change"] = "" if old_tier == new_tier else f"{old_tier or 'none'}→{new_tier or 'none'}"
            key = (value, earned, held)
            row["change"] = "gains" if key > (0, 0, 0) else "loses" if key < (0, 0, 0) else "same"
            del row["_reward_count"], row["baseline__reward_count"]
            yield row

    def deltas(self) -> dict[str, list[float]]:
        """Per-customer changes (new minus baseline) for the report's distribution plots."""
        out: dict[str, list[float]] = {"lifetime_points": [], "held_points": [], "reward_value": []}
        if self.baseline is None:
            return out
        for row in self.customer_rows():
            out["lifetime_points"].append(row["delta_lifetime_points"])
            out["held_points"].append(row["delta_held_points"])
            out["reward_value"].append(float(row["delta_reward_value"]))
        return out


CUSTOMER_COLUMNS = ("customer", "points", "pending_points", "lifetime_points", "debt", "tier", "rewards",
                    "reward_value", "spend", "purchases", "first_event", "last_event")
BASELINE_COLUMNS = ("baseline_points", "baseline_pending_points", "baseline_lifetime_points", "baseline_tier",
                    "baseline_rewards", "baseline_reward_value", "delta_points", "delta_held_points",
                    "delta_lifetime_points", "delta_rewards", "delta_reward_value", "tier_change", "change")


def _standing(engine: Engine, customer: str, prefix: str) -> dict[str, Any]:
    state = engine.state(customer)
    tz = engine.compiled.tz
    if state is None:  # accepted by one program only: nothing under the other
        values: dict[str, Any] = {"customer": customer, "points": 0, "pending_points": 0, "lifetime_points": 0,
                                  "debt": 0, "tier": None, "rewards": "", "reward_value": "0.00", "spend": "0.00",
                                  "purchases": 0, "first_event": "", "last_event": "", "_reward_count": 0}
    else:
        ledger = state.ledger
        values = {
            "customer": customer,
            "points": ledger.balance,
            "pending_points": ledger.pending,
            "lifetime_points": ledger.lifetime,
            "debt": ledger.debt,
            "tier": engine.compiled.tier_names[state.tier],
            "rewards": ";".join(f"{name}={count}" for name, count in sorted(state.rewards.items()) if count),
            "reward_value": money(from_units(state.totals.cost)),
            "spend": money(from_units(state.spend_total)),
            "purchases": len(state.purchases),
            "first_event": from_us(state.first_seen).astimezone(tz).isoformat() if state.first_seen is not None else "",
            "last_event": from_us(state.last_event_at).astimezone(tz).isoformat()
            if state.last_event_at is not None else "",
            "_reward_count": sum(state.rewards.values()),
        }
    return {prefix + key: value for key, value in values.items()}


def _merged(first: Iterator[str], second: Iterator[str]) -> Iterator[str]:
    """The union of two sorted id streams, sorted, without repeats."""
    import heapq

    last = None
    for customer in heapq.merge(first, second):
        if customer != last:
            yield customer
            last = customer


# ---------------------------------------------------------------- simulate


def simulate(program: Program, events: Iterable[Record | dict[str, Any]], *, baseline: Program | None = None,
             until: str | date | datetime | None = None, effect_from: str | date | datetime | None = None,
             progress: Progress | None = None, total: int | None = None,
             on_rejected: Callable[[Rejected], None] | None = None, keep_rejections: int | None = None,
             reordered: bool | None = None) -> SimulationResult:
    """Replay ``events`` (in time order) through ``program`` and, if given, ``baseline``.

    ``events``: ``Record``s from a ``History``, or plain event dicts. Events
    after ``until`` are not applied (they are counted in the summary's
    ``after_until``); the clock ends at ``until``, or else at the last
    event's time. ``progress(phase, done, total)`` is called every few
    hundred events with phase ``"simulate"``. Every rejection goes to
    ``on_rejected``; the result keeps the first ``keep_rejections`` (all
    when None). ``reordered`` (whether the history had to be sorted) is
    copied into the summary.
    """
    tz: ZoneInfo = program.compiled.tz
    until_at = parse_instant(until, tz) if until is not None else None
    effect_at = parse_instant(effect_from, tz) if effect_from is not None else None
    new = ProgramRun(program, "new")
    old = ProgramRun(baseline, "baseline") if baseline is not None else None
    runs = [new] if old is None else [new, old]
    activity = Activity(tz, effect_at)
    rejections: list[Rejected] = []
    counts = {"events": 0, "after_until": 0}

    def reject(item: Rejected) -> None:
        if keep_rejections is None or len(rejections) < keep_rejections:
            rejections.append(item)
        if on_rejected is not None:
            on_rejected(item)

    first: datetime | None = None
    last: datetime | None = None
    boundary: datetime | None = None
    month: date | None = None

    def open_month(start: date) -> datetime:
        for run in runs:
            run.open_month(start)
        activity.open_month(start)
        return day_start(next_month(start), tz)

    def close_month() -> None:
        assert boundary is not None
        for run in runs:
            run.advance(boundary - ONE_MICROSECOND)
            run.close_month()

    processed = 0
    for position, item in enumerate(events, start=1):
        processed += 1
        if progress is not None and processed % _REPORT_EVERY == 0:
            progress("simulate", processed, total)
        record = item if isinstance(item, Record) else Record(position, item, None, instant_of(item, tz))
        instant = record.instant
        if until_at is not None and instant is not None and instant > until_at:
            counts["after_until"] += 1
            continue
        counts["events"] += 1
        event = record.event
        if event is None or record.error is not None:
            for run in runs:
                run.rejected += 1
            reject(Rejected(record.row, None, None, record.error or "not an event",
                            "both" if old is not None else "new"))
            continue
        if instant is not None and (boundary is None or instant >= boundary) and not _well_formed(new, event):
            instant = None  # rejected below; it must not move the months on (a typo'd year would run them for ages)
        if instant is not None:
            if month is None or boundary is None:
                first = instant
                month = month_of(instant, tz)
                boundary = open_month(month)
            while instant >= boundary:
                close_month()
                month = next_month(month)
                boundary = open_month(month)
            if last is None or instant > last:
                last = instant
        reasons: dict[str, str] = {}
        for run in runs:
            try:
                outcome = run.process(event)
            except EventError as err:
                run.rejected += 1
                reasons[run.label] = err.reason
                continue
            except Exception as err:  # a bug in the engine: say which event, keep the cause
                raise RuntimeError(f"the engine failed on row {record.row} (event {event.get('id')!r}, "
                                   f"{run.label} rules): {type(err).__name__}: {err}") from err
            if run is new and outcome is not None:
                activity.event(outcome.customer)
                if outcome.type == "purchase":
                    state = new.engine.state(outcome.customer)
                    amount = from_units(state.purchases[-1].amount) if state is not None and state.purchases else Decimal(0)
                    activity.purchase(outcome.customer, outcome.at, amount)
        if reasons:
            event_id, customer = _text_or_none(event.get("id")), _text_or_none(event.get("customer"))
            if len(reasons) == 2 and reasons["new"] == reasons["baseline"]:
                reject(Rejected(record.row, event_id, customer, reasons["new"], "both"))
            else:
                for label, reason in reasons.items():
                    reject(Rejected(record.row, event_id, customer, reason, label))
    if progress is not None:
        progress("simulate", processed, total)

    end = until_at if until_at is not None else last
    if end is not None and month is not None and boundary is not None:
        while boundary < end:
            close_month()
            month = next_month(month)
            boundary = open_month(month)
        for run in runs:
            run.advance(end)
            run.close_month()

    summary = new.summary(counts["events"])
    if until_at is not None:
        summary["after_until"] = counts["after_until"]
    if reordered is not None:
        summary["reordered"] = reordered
    summary["period"] = {"from": first.astimezone(tz).isoformat() if first else None,
                         "to": end.astimezone(tz).isoformat() if end else None}
    summary["effect"] = activity.measures(first, end)
    if old is not None:
        summary["baseline"] = old.summary(counts["events"])
        summary["delta"] = delta(summary, summary["baseline"])
    return SimulationResult(summary, new, old, rejections, activity, first, end, reordered)


def _well_formed(run: ProgramRun, event: dict[str, Any]) -> bool:
    """Whether the event passes the checks that need no customer state (its fields, type and time)."""
    try:
        run.engine.reader.read(event)
    except EventError:
        return False
    return True


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


DELTA_KEYS = ("events", "rejected", "customers", "points", "rewards", "tiers", "cost", "duplicates")


def delta(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """New minus old for every figure of the summary (nested tables by key, missing = 0; cost as money)."""

    def diff(a: Any, b: Any) -> Any:
        if isinstance(a, dict) or isinstance(b, dict):
            a, b = a or {}, b or {}
            keys = list(a) + [k for k in b if k not in a]
            return {k: diff(a.get(k), b.get(k)) for k in keys}
        if isinstance(a, str) or isinstance(b, str):
            return money(Decimal(a or 0) - Decimal(b or 0))
        return (a or 0) - (b or 0)

    return {key: diff(new.get(key), old.get(key)) for key in DELTA_KEYS if key in new or key in old}
