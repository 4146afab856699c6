"""Whole-array replays for the programs that allow them: many customers at once, with numpy.

Many loyalty programs are a running sum: points for the money spent, a
reward every N points, a tier on rolling spend. For those, a customer's
whole history follows from cumulative sums — the balance after each
purchase is the running total modulo the threshold, the rewards its
quotient — and a tier at any instant from a window sum, which is a masked
sum over the customer's purchases. ``plan(compiled)`` says whether a
program is of that kind (``Plan``); ``figures`` and ``add_up`` then compute,
for a batch of customers who only made plain purchases and refunds of
them, exactly what the per-customer replay would add up: final standings,
totals, the month series, the activity. Everything else — redeems, visits,
repeated ids, other programs — goes the per-customer way; the tests check
both ways give the same figures.

A program qualifies when it has: earn rules ``per CURRENCY``, ``per N
CURRENCY`` or ``per purchase`` (no item filter, no options) and fixed
awards on purchases (no options); at most one ``at`` rule, without options,
granting a reward; tiers whose conditions compare one rolling or lifetime
spend or purchase count with a number (no ``keep``); and nothing else
(no multipliers, stamp cards, segments, metrics, triggers, expiry or
pending points).
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from fractions import Fraction
from typing import Any, Callable

import attrs
import numpy as np

from poletti.dsl import ast, classes
from poletti.engine import money
from poletti.engine.compiler import CompiledProgram
from poletti.engine.expressions import duration_of
from poletti.engine.timecalc import Duration, add_months_us_once, day_start_us, utc_offset_us
from poletti.interpreter.simulate.summary import (
    Activity, MonthChange, StandingColumns, Standings, Totals, Tracker, next_month,
)

_OPS: dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {
    ">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal, "==": np.equal, "!=": np.not_equal,
}
_HOUR = 3600 * 1_000_000
_INT64_SAFE = 2**62


@classes.frozen
class Earning:
    """One earn rule as integer arithmetic: points = round(numerator × base ÷ denominator)."""

    kind: str  # "money" (base: the amount), "units" (base: full steps of the amount), "fixed"
    numerator: int
    denominator: int
    step: int = 0  # micro-units of one step, for "units"


@classes.frozen
class TierTest:
    """A tier condition: ``quantity op value`` over one window (None: lifetime) of spend or purchase count."""

    rank: int
    quantity: str  # "spend" or "purchases"
    window: Duration | None
    op: str
    value: int  # micro-units for spend, a count for purchases (a fraction is compared as its ceiling/floor)
    exact: Fraction  # the value as written, for counts that are not whole


@classes.define
class Plan:
    compiled: CompiledProgram = attrs.field(repr=False)
    earnings: list[Earning]
    threshold: int | None
    reward: str | None
    reward_value: int  # micro-units per grant (0 without a declared value)
    tiers: list[TierTest]
    rounding: str
    tz: Any

    def points(self, amounts: np.ndarray) -> np.ndarray:
        """Each purchase's points, every rule rounded on its own (as the engine does)."""
        total = np.zeros(len(amounts), dtype=np.int64)
        for rule in self.earnings:
            if rule.kind == "fixed":
                total += rule.numerator
                continue
            base = amounts if rule.kind == "money" else amounts // rule.step
            total += _rounded(base * rule.numerator, rule.denominator, self.rounding)
        return total

    def fits(self, amounts: np.ndarray) -> bool:
        """Whether the integer arithmetic stays within int64 for these amounts (else the per-customer way)."""
        if amounts.size == 0:
            return True
        largest = int(amounts.max())
        return all(largest * rule.numerator < _INT64_SAFE for rule in self.earnings if rule.kind != "fixed") and \
            int(amounts.sum()) < _INT64_SAFE


def _rounded(numerator: np.ndarray, denominator: int, mode: str) -> np.ndarray:
    if denominator == 1:
        return numerator
    if mode == "down":
        return numerator // denominator
    if mode == "up":
        return -((-numerator) // denominator)
    return (2 * numerator + denominator) // (2 * denominator)


def plan(compiled: CompiledProgram) -> Plan | None:
    """The whole-array plan for a program, or None when it needs the per-customer replay."""
    checked = compiled.checked
    if (compiled.multipliers or compiled.stamps or compiled.segments or compiled.metrics or compiled.when_rules
            or compiled.on_rules or compiled.expire_after is not None or compiled.pending_for is not None
            or compiled.tracks_activity or checked.attributes
            # Issue 13: held rewards with terms, perks and partners are figures the arrays do not keep; referral
            # rules change two customers on one event, and pooled points are an account's (the per-customer
            # replay keeps them exact).
            or compiled.wallet or compiled.perks or compiled.partners or compiled.referrals or compiled.pooled):
        return None
    if set(compiled.per_rules) - {"purchase"} or set(compiled.fixed_rules) - {"purchase"}:
        return None
    earnings: list[Earning] = []
    for rule in compiled.per_rules.get("purchase", ()):
        if rule.filter is not None or _has_options(rule.guard):
            return None
        rate = Fraction(rule.rate)
        if rule.base == "money" and rule.divisor is None:
            earnings.append(Earning("money", rate.numerator, rate.denominator * money.SCALE))
        elif rule.base == "money":
            earnings.append(Earning("units", rate.numerator, rate.denominator, money.to_units(rule.divisor)))
        elif rule.base == "purchase":
            earnings.append(Earning("fixed", int(rule.rate), 1))
        else:
            return None
    for fixed in compiled.fixed_rules.get("purchase", ()):
        if _has_options(fixed.guard):
            return None
        earnings.append(Earning("fixed", fixed.points, 1))
    if len(compiled.converts) > 1:
        return None
    threshold = reward = None
    if compiled.converts:
        convert = compiled.converts[0]
        if _has_options(convert.guard) or not isinstance(convert.target, str):
            return None
        threshold, reward = convert.threshold, convert.target
    tiers = []
    for tier in compiled.tiers:
        if tier.keep is not None:
            return None
        test = _tier_test(checked, checked.rules[tier.index], tier.rank)
        if test is None:
            return None
        tiers.append(test)
    value = compiled.rewards.get(reward, (None, None))[0] if reward else None
    return Plan(compiled, earnings, threshold, reward, money.to_units(value) if value is not None else 0, tiers,
                checked.rounding, compiled.tz)


def _has_options(guard: Any) -> bool:
    return guard.condition is not None or guard.during is not None or guard.cap is not None or guard.once


def _tier_test(checked: Any, node: ast.TierRule, rank: int) -> TierTest | None:
    condition = node.condition
    if not isinstance(condition, ast.Compare):
        return None
    left, op, right = condition.left, condition.op, condition.right
    if isinstance(left, (ast.NumberLit, ast.MoneyLit)) and isinstance(right, ast.NameRef):
        left, right = right, left
        op = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "==": "==", "!=": "!="}[op]
    if not isinstance(left, ast.NameRef) or left.name not in checked.builtins:
        return None
    quantity = checked.builtins[left.name]
    if quantity.kind not in ("spend", "purchases"):
        return None
    if isinstance(right, ast.MoneyLit) and isinstance(right.amount, ast.NumberLit):
        number = right.amount.value
    elif isinstance(right, ast.NumberLit):
        number = right.value
    else:
        return None
    window = duration_of(quantity.window) if quantity.window is not None else None
    if quantity.kind == "spend":
        if number.as_tuple().exponent < -money.DIGITS:  # type: ignore[operator]
            return None
        return TierTest(rank, "spend", window, op, money.to_units(number), Fraction(number))
    return TierTest(rank, "purchases", window, op, 0, Fraction(number))


# ------------------------------------------------------------------ arrays

_DAY = 86_400_000_000
_NEAR = 26 * _HOUR  # as engine.timecalc: further from a clock change than any change ever jumped


def offsets(instants: np.ndarray, tz: Any) -> np.ndarray:
    """The zone's offset from UTC at each instant, from a table of the zone's changes over their span."""
    if instants.size == 0:
        return np.zeros(0, dtype=np.int64)
    first, last = int(instants.min()), int(instants.max())
    if (last - first) // _DAY > 4 * instants.size + 3660:  # a span far wider than the instants (a row in 8999):
        unique, inverse = np.unique(instants, return_inverse=True)  # each one looked up, not every day between
        found = np.array([utc_offset_us(t, tz) for t in unique.tolist()], dtype=np.int64)
        return found[inverse.reshape(instants.shape)]
    changes, values = _changes(tz, first, last)
    return values[np.searchsorted(changes, instants, side="right")]


_TABLES: dict[Any, tuple[int, int, np.ndarray, np.ndarray]] = {}


def _changes(tz: Any, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """The instants the zone's offset changes within [first, last] (a day apart or more), and the offsets.

    ``values[k]`` is the offset before ``changes[k]`` (and the last one after
    the last change). Days are probed at their start; a day whose start and
    end differ is searched to the microsecond for its change.
    """
    cached = _TABLES.get(tz)
    if cached is not None and cached[0] <= first and last <= cached[1]:
        return cached[2], cached[3]
    first, last = first - _DAY, last + _DAY
    probes = list(range(first - first % _DAY, last + _DAY, _DAY))
    found = [utc_offset_us(t, tz) for t in probes]
    changes: list[int] = []
    values = [found[0]]
    for (a, b), (x, y) in zip(zip(probes, probes[1:]), zip(found, found[1:])):
        if x == y:
            continue
        low, high = a, b  # the offset is x at low and y at high: find the first instant with y
        while high - low > 1:
            middle = (low + high) // 2
            if utc_offset_us(middle, tz) == x:
                low = middle
            else:
                high = middle
        changes.append(high)
        values.append(y)
    table = (np.array(changes, dtype=np.int64), np.array(values, dtype=np.int64))
    _TABLES[tz] = (first, last, *table)
    return table


def local_months(instants: np.ndarray, tz: Any) -> np.ndarray:
    """Each instant's calendar month in ``tz``, as months since 1970-01."""
    local = instants + offsets(instants, tz)
    return local.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)


def month_date(index: int) -> date:
    return date(1970 + index // 12, index % 12 + 1, 1)


def month_index(instant: int, tz: Any) -> int:
    return int(local_months(np.array([instant], dtype=np.int64), tz)[0])


def window_exits(instants: np.ndarray, window: Duration, tz: Any) -> np.ndarray:
    """When each entry leaves the window: p + W, by the engine's own rule (``timecalc.add_us``).

    Months and years move the wall-clock date (the day clamped to the month's
    end) and keep the wall time; an instant within a day of a clock change
    is worked out by the engine's own shift (``add_months_us_once``), which
    settles gaps and repeated hours.
    """
    if window.unit in ("d", "w"):
        return instants + window.amount * (7 if window.unit == "w" else 1) * _DAY
    months = window.amount * (12 if window.unit == "y" else 1)
    offset = offsets(instants, tz)
    local = instants + offset
    days, time_of_day = np.divmod(local, _DAY)
    day = days.astype("datetime64[D]")
    month = day.astype("datetime64[M]")
    day_of_month = (day - month.astype("datetime64[D]")).astype(np.int64)
    target = month.astype(np.int64) + months
    length = ((target + 1).astype("datetime64[M]").astype("datetime64[D]")
              - target.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64)
    shifted = target.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) + np.minimum(day_of_month,
                                                                                                      length - 1)
    wall = shifted * _DAY + time_of_day
    landed = offsets(wall - offset, tz)
    exits = wall - landed
    settled = (offsets(exits - _NEAR, tz) == landed) & (offsets(exits + _NEAR, tz) == landed)
    for i in np.flatnonzero(~settled).tolist():  # (near a clock change: each one its own way)
        exits[i] = add_months_us_once(int(instants[i]), months, tz)
    return exits


@classes.define
class Batch:
    """Purchases and refunds of a set of customers, grouped by customer, each group in replay order.

    ``refund_of[i]``: for a refund row, the row of the purchase it refunds
    (-1 for a purchase); ``amounts`` of a refund row is the money refunded.
    """

    customers: list[str]
    starts: np.ndarray  # first row of each customer
    counts: np.ndarray  # rows of each customer
    instants: np.ndarray
    amounts: np.ndarray
    refund_of: np.ndarray
    exits: dict[Any, np.ndarray] = attrs.Factory(dict)  # (window, zone) → when each purchase leaves it
    member: np.ndarray | None = None  # each row's membership flag: 1 member, 0 not, -1 unknown (None: no column)

    @property
    def purchases(self) -> np.ndarray:
        return self.refund_of < 0


def _per_customer_sum(values: np.ndarray, batch: Batch) -> np.ndarray:
    if values.size == 0:
        return np.zeros(len(batch.customers), dtype=values.dtype)
    return np.add.reduceat(values, batch.starts)


def _running(values: np.ndarray, batch: Batch) -> np.ndarray:
    """Each customer's running sum of ``values``."""
    total = np.cumsum(values)
    before = total[batch.starts - 1]
    before[0] = 0
    return total - np.repeat(before, batch.counts)


def _running_max(values: np.ndarray, batch: Batch) -> np.ndarray | None:
    """Each customer's running maximum of non-negative ``values`` (None if it would not fit in int64)."""
    if values.size == 0:
        return values
    span = int(values.max()) + 1
    if span * len(batch.customers) >= _INT64_SAFE:
        return None
    lift = np.repeat(np.arange(len(batch.customers), dtype=np.int64) * span, batch.counts)
    return np.maximum.accumulate(values + lift) - lift


@classes.define
class Figures:
    """A batch's per-row figures under one plan: points, reversals, grants and balances."""

    plan: Plan
    batch: Batch
    points: np.ndarray
    reversed_points: np.ndarray
    grants_here: np.ndarray
    balances: np.ndarray


def figures(plan: Plan, batch: Batch) -> Figures | None:
    """The batch's per-row figures, or None when one would not fit in 64-bit integers.

    Nothing is added up here, so a caller replaying two programs can give
    the whole batch to the per-customer replay when either does not fit.
    """
    starts = batch.starts
    purchases = batch.purchases
    refunds = ~purchases
    amounts = batch.amounts
    if not plan.fits(np.where(purchases, amounts, 0)):
        return None
    points = np.where(purchases, plan.points(amounts), 0)
    # A refund takes back floor(P × refunded ÷ amount) of its purchase's points (one refund per purchase here).
    originals = batch.refund_of[refunds]
    reversed_points = np.zeros(len(points), dtype=np.int64)
    if originals.size:
        paid = points[originals]
        if int(paid.max()) * int(amounts[refunds].max()) >= _INT64_SAFE:
            return None
        reversed_points[refunds] = paid * amounts[refunds] // amounts[originals]
    running = _running(points - reversed_points, batch)  # the balance before any conversion
    if plan.threshold is not None:
        # Grants are never taken back: a customer has had as many as the running balance ever held thresholds.
        granted_by_then = _running_max(np.maximum(running // plan.threshold, 0), batch)
        if granted_by_then is None:
            return None
        before = np.concatenate(([0], granted_by_then[:-1]))
        before[starts] = 0
        grants_here = granted_by_then - before
        balances = running - plan.threshold * granted_by_then
    else:
        grants_here = np.zeros(len(points), dtype=np.int64)
        balances = running
    return Figures(plan, batch, points, reversed_points, grants_here, balances)


def add_up(figures: Figures, end: int, tracker: Tracker, totals: Totals, standings: Standings,
           activity: Activity | None, month_tz: Any) -> None:
    """Add the batch's customers up, replayed to ``end``, as the per-customer replay would."""
    plan, batch = figures.plan, figures.batch
    n_customers = len(batch.customers)
    if n_customers == 0:
        return
    starts, counts, amounts, purchases = batch.starts, batch.counts, batch.amounts, batch.purchases
    points, reversed_points = figures.points, figures.reversed_points
    grants_here, balances = figures.grants_here, figures.balances
    ends = starts + counts - 1
    final_balance = balances[ends]
    rewards = _per_customer_sum(grants_here, batch)
    lifetime = _per_customer_sum(points, batch)
    spend = _per_customer_sum(np.where(purchases, amounts, -amounts), batch)
    bought = _per_customer_sum(purchases.astype(np.int64), batch)
    tier_names = plan.compiled.tier_names
    final_tier = tier_ranks(plan, batch, end)

    # Final figures: totals and standings.
    totals.customers += n_customers
    totals.earned += int(lifetime.sum())
    totals.reversed += int(reversed_points.sum())
    total_grants = int(rewards.sum())
    totals.spent += (plan.threshold or 0) * total_grants
    totals.outstanding += int(final_balance.sum())
    totals.sales += int(spend.sum())
    totals.cost += plan.reward_value * total_grants
    reward = plan.reward
    if reward is not None and total_grants:
        totals.rewards[reward] += total_grants
    for rank, count in enumerate(np.bincount(final_tier, minlength=len(tier_names)).tolist()):
        if count:
            totals.tiers[tier_names[rank] or "none"] += count
    value = plan.reward_value
    standings.add_columns(StandingColumns(
        batch.customers, final_balance, lifetime, list(tier_names), final_tier, rewards, spend, bought,
        batch.instants[starts], batch.instants[ends], reward, value))

    # The month series: flows in the month they happen in, stocks at each month's end. Only the months in
    # which something can change are visited — those of an event, of a purchase leaving a tier's window, and
    # the last — so a gap of years between two events costs nothing.
    months = local_months(batch.instants, month_tz)
    last_month = month_index(end, month_tz)
    marks = [months, np.array([last_month], dtype=np.int64)]
    for window in {test.window for test in plan.tiers if test.window is not None}:
        exits = _exits(plan, batch, window)
        marks.append(local_months(exits[exits <= end], month_tz))
    visited = np.unique(np.concatenate(marks))
    visited = visited[visited <= last_month]
    at = np.searchsorted(visited, months)
    by_month = {}
    for name, values in (("earned", points), ("reversed", reversed_points), ("grants", grants_here)):
        acc = np.zeros(len(visited), dtype=np.int64)
        np.add.at(acc, at, values)
        by_month[name] = acc.tolist()
    # Stocks at each visited month's end (each customer's figures after its last event by then), worked out
    # for all months at once: what each row changes, added up by the first month whose end it is before.
    month_ends = np.array([end if index == last_month else day_start_us(next_month(month_date(index)), month_tz) - 1
                           for index in visited.tolist()], dtype=np.int64)
    count = len(visited)
    entered = np.searchsorted(month_ends, batch.instants, side="left")  # the first month-end not before the row
    firsts = np.zeros(len(balances), dtype=bool)
    firsts[starts] = True
    moved = balances - np.where(firsts, 0, np.concatenate(([0], balances[:-1])))
    balance_by_month = np.zeros(count, dtype=np.int64)
    np.add.at(balance_by_month, entered, moved)
    customers_by_month = np.bincount(entered[starts], minlength=count)
    tier_counts = _tier_counts(plan, batch, month_ends, entered)
    stock_tiers: Counter[str] = Counter()
    if activity is not None:
        activity_months = _activity_months(batch, at, count)
    for offset, index in enumerate(visited.tolist()):
        start = month_date(index)
        change = tracker.months.get(start)
        if change is None:
            change = tracker.months[start] = MonthChange()
        grants = by_month["grants"][offset]
        change.earned += by_month["earned"][offset]
        change.reversed += by_month["reversed"][offset]
        change.spent += (plan.threshold or 0) * grants
        if reward is not None and grants:
            change.rewards[reward] += grants
        change.cost += value * grants
        tiers = Counter({tier_names[rank] or "none": count for rank, count in
                         enumerate(tier_counts[offset].tolist()) if count})
        change.outstanding += int(balance_by_month[offset])
        change.customers += int(customers_by_month[offset])
        for name in set(tiers) | set(stock_tiers):
            change.tiers[name] += tiers.get(name, 0) - stock_tiers.get(name, 0)
        stock_tiers = tiers
        if activity is not None and activity_months[0][offset]:
            entry = activity._month(start)
            entry.purchases += int(activity_months[1][offset])
            entry.spend += money.from_units(int(activity_months[2][offset]))
            entry.purchasers += int(activity_months[3][offset])
            entry.active += int(activity_months[4][offset])
    if activity is not None:
        _periods(activity, batch)


def _first_of_runs(keys: np.ndarray) -> np.ndarray:
    """Where a run of equal ``keys`` begins."""
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return first


def _activity_months(batch: Batch, at: np.ndarray, count: int) -> tuple[np.ndarray, ...]:
    """Per month (``at``: each row's month, 0 … count-1): rows (0: the month is not touched), purchases, spend,
    distinct buying customers and distinct active customers, for every month at once."""
    rows_by_month = np.bincount(at, minlength=count)
    bought = batch.purchases
    purchases = np.bincount(at[bought], minlength=count)
    spend = np.zeros(count, dtype=np.int64)
    np.add.at(spend, at[bought], batch.amounts[bought])
    owner = np.repeat(np.arange(len(batch.customers), dtype=np.int64), batch.counts)
    pair = owner * count + at  # rows of a customer are in time order: one run per customer and month
    purchasers = np.bincount(at[bought][_first_of_runs(pair[bought])], minlength=count)
    active = np.bincount(at[_first_of_runs(pair)], minlength=count)
    return rows_by_month, purchases, spend, purchasers, active


def _tier_counts(plan: Plan, batch: Batch, month_ends: np.ndarray, entered: np.ndarray) -> np.ndarray:
    """How many customers hold each tier rank at each month's end (customers with a row by then): row m is
    ``bincount(tier_ranks(plan, batch, month_ends[m])[known])``, for every month at once.

    A row counts from the first month whose end is not before it, until the first whose end is not before
    its exit from the window; a customer's values change only in those months, so its rank is worked out
    there and held until its next change.
    """
    count, n_tiers = len(month_ends), len(plan.compiled.tier_names)
    owner = np.repeat(np.arange(len(batch.customers), dtype=np.int64), batch.counts)
    keys = list(dict.fromkeys((test.quantity, test.window) for test in plan.tiers))
    purchases = batch.purchases
    # Events: each customer's first row (it is known from then on), each row entering and leaving a window.
    who_parts, when_parts = [owner[batch.starts]], [entered[batch.starts]]
    delta_parts: list[list[np.ndarray]] = [[np.zeros(len(batch.starts), dtype=np.int64)] for _ in keys]
    for k, (quantity, window) in enumerate(keys):
        if quantity == "spend":  # net of refunds: a refund counts while its purchase is inside
            weights = np.where(purchases, batch.amounts, -batch.amounts)
        else:
            weights = purchases.astype(np.int64)
        blocks = [(owner, entered, weights)]
        if window is not None:
            left = np.searchsorted(month_ends, _exits(plan, batch, window), side="left")
            left = np.maximum(left, entered)  # a refund whose purchase left before it: never inside
            gone = left < count
            blocks.append((owner[gone], left[gone], -weights[gone]))
        for block_owner, block_month, block_delta in blocks:
            who_parts.append(block_owner)
            when_parts.append(block_month)
            for j in range(len(keys)):
                delta_parts[j].append(block_delta if j == k else np.zeros(len(block_delta), dtype=np.int64))
    who, when = np.concatenate(who_parts), np.concatenate(when_parts)
    order = np.argsort(who * count + when, kind="stable")
    who, when = who[order], when[order]
    first_of_owner = np.maximum.accumulate(np.where(_first_of_runs(who), np.arange(len(who)), 0))
    last_of_point = np.ones(len(who), dtype=bool)
    last_of_point[:-1] = (who[1:] != who[:-1]) | (when[1:] != when[:-1])
    values = {}
    for key, blocks_of_key in zip(keys, delta_parts):
        delta = np.concatenate(blocks_of_key)[order]
        total = np.cumsum(delta)
        values[key] = (total - (total - delta)[first_of_owner])[last_of_point]
    who, when = who[last_of_point], when[last_of_point]
    ranks = np.zeros(len(who), dtype=np.int64)
    for test in plan.tiers:
        held = values[(test.quantity, test.window)]
        if test.quantity == "spend":
            holds = _OPS[test.op](held, test.value)
        else:
            holds = _OPS[test.op](held * test.exact.denominator, test.exact.numerator)
        ranks = np.where(holds & (test.rank > ranks), test.rank, ranks)
    changes = np.zeros((count + 1, n_tiers), dtype=np.int64)
    np.add.at(changes, (when, ranks), 1)
    again = ~_first_of_runs(who)  # a later change of a customer: its rank before leaves
    previous = np.concatenate(([0], ranks[:-1]))
    np.add.at(changes, (when[again], previous[again]), -1)
    return np.cumsum(changes[:count], axis=0)


def _periods(activity: Activity, batch: Batch) -> None:
    """The program-effect measures: purchases, spend, customers and repeat customers per period; the cohort
    of customers who bought in both periods; purchases by membership flag (see ``summary.Activity``)."""
    pivot = activity._pivot
    purchases = batch.purchases
    slices = [("all", purchases)]
    if pivot is not None:
        slices += [("before", purchases & (batch.instants < pivot)), ("after", purchases & (batch.instants >= pivot))]
    bought = {}
    for name, mask in slices:
        period = activity.periods[name]
        per_customer = bought[name] = _per_customer_sum(mask.astype(np.int64), batch)
        period.purchases += int(mask.sum())
        period.spend += int(batch.amounts[mask].sum())
        period.customers += int((per_customer >= 1).sum())
        period.repeaters += int((per_customer >= 2).sum())
    if pivot is not None:
        both = (bought["before"] > 0) & (bought["after"] > 0)
        spent = {name: _per_customer_sum(np.where(mask, batch.amounts, 0), batch) for name, mask in slices[1:]}
        for slot, value in enumerate((both, bought["before"], bought["after"], spent["before"], spent["after"])):
            activity.cohort[slot] += int(value[both].sum()) if slot else int(both.sum())
    flags = batch.member if batch.member is not None else np.full(len(purchases), -1, dtype=np.int8)
    activity.unflagged += int((purchases & (flags < 0)).sum())
    for code, name in ((1, "member"), (0, "non_member")):
        mask = purchases & (flags == code)
        group = activity.groups[name]
        group.purchases += int(mask.sum())
        group.spend += int(batch.amounts[mask].sum())
        group.customers += int((_per_customer_sum(mask.astype(np.int64), batch) > 0).sum())


def tier_ranks(plan: Plan, batch: Batch, when: int) -> np.ndarray:
    """Each customer's tier rank at instant ``when`` (the highest tier whose condition holds; 0: none)."""
    ranks = np.zeros(len(batch.customers), dtype=np.int64)
    if not plan.tiers:
        return ranks
    started = batch.instants <= when
    purchases = batch.purchases
    cache: dict[tuple[str, Any], np.ndarray] = {}
    for test in plan.tiers:
        key = (test.quantity, test.window)
        values = cache.get(key)
        if values is None:
            inside = started
            if test.window is not None:
                inside = started & (_exits(plan, batch, test.window) > when)
            if test.quantity == "spend":  # net of refunds: a refund counts while its purchase is inside
                weights = np.where(purchases, batch.amounts, -batch.amounts)
            else:
                weights = purchases.astype(np.int64)
            values = cache[key] = _per_customer_sum(np.where(inside, weights, 0), batch)
        if test.quantity == "spend":
            holds = _OPS[test.op](values, test.value)
        else:
            holds = _OPS[test.op](values * test.exact.denominator, test.exact.numerator)
        ranks = np.where(holds & (test.rank > ranks), test.rank, ranks)
    return ranks


def _exits(plan: Plan, batch: Batch, window: Duration) -> np.ndarray:
    """When each row stops counting in ``window``: a purchase at p + W, its refund with it."""
    key = (window, plan.tz)  # the batch is shared by both programs, whose zones may differ
    exits = batch.exits.get(key)
    if exits is None:
        exits = window_exits(batch.instants, window, plan.tz)
        refunds = batch.refund_of >= 0
        exits[refunds] = exits[batch.refund_of[refunds]]
        batch.exits[key] = exits
    return exits


__all__ = ["Batch", "Figures", "Plan", "add_up", "figures", "plan"]
