"""Compile checked expressions into plain Python closures.

``ExpressionCompiler(program).compile(expr) -> Callable[[Ctx], value]``.
Every name is resolved here, once: a closure reads a list slot or a ledger
attribute, never a name. Values: Money and Number are ``Decimal``, Points
and Count ``int``, tiers their rank (0 = no tier), dates ``date``.

``None`` stands for "no value": an event attribute the event lacks (the
contract calls it *missing*), and what is computed from one, a division by
zero or an empty ``avg``. Arithmetic passes it on; ``==``, ``<``, ``<=``,
``>`` and ``>=`` with it are false and ``!=`` is true, so that
``not (a == "x")`` and ``a != "x"`` always agree; ``is missing`` and
``is present`` test for it.
"""

from __future__ import annotations

import operator
from datetime import date
from decimal import Decimal
from typing import Any, Callable
from zoneinfo import ZoneInfo

import attrs

from poletti.dsl import ast, classes
from poletti.dsl.program import BuiltinQuantity, CheckedProgram, Type
from poletti.engine.state import CustomerState
from poletti.engine.money import from_units
from poletti.engine.timecalc import DAY_US, Duration, day_start_us, local_date

Evaluator = Callable[["Ctx"], Any]



@classes.frozen
class WindowSpec:
    """A rolling window some rule reads: over purchases (spend and count) or visits (count)."""

    slot: int
    source: str  # "purchase" or "visit"
    duration: Duration


# A pooled program's contacts (docs/language.md "Shared accounts"): id(contact state) → the account's state,
# for as long as the contact is being processed with its account's pool (interpreter/accounts.py). Keyed by
# the state object, so threads processing other contacts never see each other's entries.
POOLS: dict[int, CustomerState] = {}


class Ctx:
    """What an expression is evaluated against: one customer at one instant.

    ``last_purchase`` is the reference of ``days_since_last_purchase``: the
    latest purchase before the event being processed (or the first event).
    Window totals are read from the state as they are: the clock has applied
    every window exit up to ``now`` before anything is evaluated.
    """

    __slots__ = ("state", "now", "event", "last_purchase", "tz", "_local_day")

    def __init__(self, state: CustomerState, now: int, event: Any, tz: ZoneInfo) -> None:
        self.state = state
        self.now = now  # an instant: microseconds since the epoch
        self.event = event
        last = state.last_purchase_at
        self.last_purchase = last if last is not None else state.first_seen if state.first_seen is not None else now
        self.tz = tz
        self._local_day: int | None = None

    @property
    def account(self) -> CustomerState:
        """The state ``account.`` quantities read: the contact's account's (the state itself outside a pool)."""
        return POOLS.get(id(self.state), self.state)

    @property
    def local_day(self) -> int:
        """The calendar day of ``now`` in the program zone, as an ordinal (worked out when first read)."""
        if self._local_day is None:
            self._local_day = local_date(self.now, self.tz).toordinal()
        return self._local_day


def duration_of(lit: ast.DurationLit) -> Duration:
    return Duration(lit.amount, lit.unit)


def literal_date(lit: ast.DateLit) -> date:
    return date.fromisoformat(lit.text)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}


def _arith(op: str) -> Callable[[Any, Any], Any]:
    def div(a: Any, b: Any) -> Any:
        return None if b == 0 else Decimal(a) / Decimal(b)

    return {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": div}[op]


@classes.define
class ExpressionCompiler:
    """Resolves names of one program and compiles its expressions."""

    program: CheckedProgram
    tz: ZoneInfo
    segment_index: dict[str, int]
    metric_index: dict[str, int]
    tier_rank: dict[str, int]
    windows: list[WindowSpec] = attrs.Factory(list)

    def window_slot(self, source: str, duration: Duration) -> int:
        """The slot of the rolling window over ``source`` events of length ``duration`` (made on first use)."""
        for spec in self.windows:
            if spec.source == source and spec.duration == duration:
                return spec.slot
        self.windows.append(WindowSpec(len(self.windows), source, duration))
        return len(self.windows) - 1

    def compile(self, expr: ast.Expr) -> Evaluator:
        method = getattr(self, "_" + type(expr).__name__)
        return method(expr)  # type: ignore[no-any-return]

    # -- literals

    def _NumberLit(self, node: ast.NumberLit) -> Evaluator:
        value = node.value
        return lambda ctx: value

    def _MoneyLit(self, node: ast.MoneyLit) -> Evaluator:
        value = node.amount.value if isinstance(node.amount, ast.NumberLit) else Decimal(0)
        return lambda ctx: value

    def _PointsLit(self, node: ast.PointsLit) -> Evaluator:
        value = int(node.amount.value) if isinstance(node.amount, ast.NumberLit) else 0
        return lambda ctx: value

    def _DurationLit(self, node: ast.DurationLit) -> Evaluator:
        value = duration_of(node)
        return lambda ctx: value

    def _DateLit(self, node: ast.DateLit) -> Evaluator:
        value = literal_date(node)
        return lambda ctx: value

    def _TextLit(self, node: ast.TextLit) -> Evaluator:
        value = node.value
        return lambda ctx: value

    def _BoolLit(self, node: ast.BoolLit) -> Evaluator:
        value = node.value
        return lambda ctx: value

    # -- names

    def _NameRef(self, node: ast.NameRef) -> Evaluator:
        name = node.name
        if name in self.segment_index:
            index = self.segment_index[name]
            return lambda ctx: ctx.state.segments[index]
        if name in self.metric_index:
            return self._metric(name)
        if name in self.tier_rank:
            rank = self.tier_rank[name]
            return lambda ctx: rank
        if name in self.program.builtins:
            return self.builtin(self.program.builtins[name])
        raise ValueError(f"unresolved name {name!r} reached the compiler")  # the checker rejects these

    def _EventAttr(self, node: ast.EventAttr) -> Evaluator:
        name = node.name
        if name == "amount":
            def amount(ctx: Ctx) -> Decimal | None:
                units = ctx.event.amount if ctx.event is not None else None
                return None if units is None else from_units(units)
            return amount
        if name == "type":
            return lambda ctx: ctx.event.type if ctx.event is not None else None
        return lambda ctx: ctx.event.attributes.get(name) if ctx.event is not None else None

    def _AccountQuantity(self, node: ast.AccountQuantity) -> Evaluator:
        """``account.spend_12m``: the quantity read from the account's state instead of the contact's."""
        quantity = self.program.builtins[node.name]
        kind = quantity.kind
        if quantity.window is None:
            if kind == "spend":
                return lambda ctx: from_units(ctx.account.spend_total)
            if kind == "purchases":
                return lambda ctx: ctx.account.purchase_count
            return lambda ctx: ctx.account.visit_count
        slot = self.window_slot("visit" if kind == "visits" else "purchase", duration_of(quantity.window))
        if kind == "spend":
            return lambda ctx: from_units(ctx.account.windows[slot].spend)
        return lambda ctx: ctx.account.windows[slot].count

    def builtin(self, quantity: BuiltinQuantity) -> Evaluator:
        kind, tz = quantity.kind, self.tz
        if kind == "points":
            return lambda ctx: ctx.state.ledger.balance
        if kind == "pending_points":
            return lambda ctx: ctx.state.ledger.pending
        if kind == "lifetime_points":
            return lambda ctx: ctx.state.ledger.lifetime
        if kind == "tier":
            return lambda ctx: ctx.state.tier
        if kind == "days_since_last_purchase":
            return lambda ctx: (ctx.now - ctx.last_purchase) // DAY_US  # whole 24-hour days
        if kind == "member_days":
            return lambda ctx: (ctx.now - _first_seen(ctx)) // DAY_US
        if kind == "streak_days":
            def days(ctx: Ctx) -> int:
                # Alive through today while yesterday was active; 0 once a whole day passed without activity.
                last = ctx.state.last_active_day
                return ctx.state.day_run if last is not None and last >= ctx.local_day - 1 else 0
            return days
        if kind == "streak_weeks":
            def weeks(ctx: Ctx) -> int:
                last = ctx.state.last_active_week
                monday = ctx.local_day - date.fromordinal(ctx.local_day).weekday()
                return ctx.state.week_run if last is not None and last >= monday - 7 else 0
            return weeks
        if kind in ("spend", "purchases", "visits"):
            return self._windowed(quantity)
        raise ValueError(f"unknown built-in quantity kind {kind!r}")

    def _windowed(self, quantity: BuiltinQuantity) -> Evaluator:
        kind = quantity.kind
        if quantity.window is None:  # lifetime
            if kind == "spend":
                return lambda ctx: from_units(ctx.state.spend_total)
            if kind == "purchases":
                return lambda ctx: ctx.state.purchase_count
            return lambda ctx: ctx.state.visit_count
        slot = self.window_slot("visit" if kind == "visits" else "purchase", duration_of(quantity.window))
        if kind == "spend":
            return lambda ctx: from_units(ctx.state.windows[slot].spend)
        return lambda ctx: ctx.state.windows[slot].count

    def _metric(self, name: str) -> Evaluator:
        info = self.program.metrics[name]
        index = self.metric_index[name]
        aggregate = info.aggregate
        as_int = info.type in (Type.COUNT, Type.POINTS)

        def evaluate(ctx: Ctx) -> Any:
            now = ctx.now
            # An entry counts from its instant until it leaves the window (None: never).
            values = [v for (_, leaves, v) in ctx.state.metric_events[index] if leaves is None or leaves > now]
            if aggregate == "count":
                return len(values)
            if aggregate == "sum":
                total = sum(values, Decimal(0))
                return int(total) if as_int else total
            if not values:
                return None
            if aggregate == "max":
                return max(values)
            if aggregate == "min":
                return min(values)
            return sum(values, Decimal(0)) / len(values)

        return evaluate

    # -- operators

    def _Compare(self, node: ast.Compare) -> Evaluator:
        left, right, test = self.compile(node.left), self.compile(node.right), _COMPARE[node.op]
        when_missing = node.op == "!="  # a missing value is unequal to everything, and nothing else

        def evaluate(ctx: Ctx) -> bool:
            a, b = left(ctx), right(ctx)
            if a is None or b is None:
                return when_missing
            return test(a, b)

        return evaluate

    def _PresenceTest(self, node: Any) -> Evaluator:
        attribute, present = self.compile(node.attribute), node.present
        return lambda ctx: (attribute(ctx) is not None) is present

    def _BinaryOp(self, node: ast.BinaryOp) -> Evaluator:
        left, right, apply = self.compile(node.left), self.compile(node.right), _arith(node.op)

        def evaluate(ctx: Ctx) -> Any:
            a, b = left(ctx), right(ctx)
            return None if a is None or b is None else apply(a, b)

        return evaluate

    def _AndOp(self, node: ast.AndOp) -> Evaluator:
        left, right = self.compile(node.left), self.compile(node.right)
        return lambda ctx: bool(left(ctx)) and bool(right(ctx))

    def _OrOp(self, node: ast.OrOp) -> Evaluator:
        left, right = self.compile(node.left), self.compile(node.right)
        return lambda ctx: bool(left(ctx)) or bool(right(ctx))

    def _NotOp(self, node: ast.NotOp) -> Evaluator:
        operand = self.compile(node.operand)
        return lambda ctx: not operand(ctx)


def _first_seen(ctx: Ctx) -> int:
    first = ctx.state.first_seen
    return ctx.now if first is None else first


def day_start(day: date, tz: ZoneInfo) -> int:
    """The first instant of ``day`` in ``tz`` (µs since the epoch)."""
    return day_start_us(day, tz)
