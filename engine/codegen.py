"""Generate Python source specialised to one compiled program: the engine's fast path.

``generate(compiled) -> Generated`` writes a module of plain functions for
one program — ``apply`` (steps 1–6 of one validated event), ``advance``
(the clock, each instant's changes written out in its loop),
``next_change``, ``status``, ``convert``, and
``make_lane``, which makes the memory store's ``Engine.process`` for the
common event: read, applied with ``apply``'s steps written out in place, and
its outcome returned, in one function (``_Generator._lane_maker``) —
with the program's rules unrolled into straight-line code: numbers are
constants, money is integer micro-units, instants are integer
microseconds, conditions are Python expressions over the customer state,
and work the program does not need (streak days it never reads, windows it
does not have, expiry it does not declare) is simply not there. ``apply``
reads the event's type once and branches: each type the program names gets
steps 2–6 written out for it alone (no step tests the type again), and every
other type one branch more. The
interpreter (``poletti.interpreter.processing``) stays the reference: the
generated code must leave exactly the same state and counters (a property
test runs both on random programs and histories), and whatever the
generator does not specialise — caps, ``once``, metrics, streaks, parts of
conditions with arithmetic — it hands to the interpreter's own methods
through the names ``P`` (the processor) and ``E`` (compiled expressions).

Safety, as in Jinja2's code generator: the source is built from the typed
AST and the compiled rules only. Every identifier in it is one this module
invents; every value from the rule file (a reward name, a category, an
attribute name) is emitted as a literal with ``repr`` of a ``str`` or an
``int``, and every other value (a ``Decimal`` rate, a rule object, a date)
is passed in the constants tuple ``K`` and referred to by its index. No rule
text is ever spliced into the source; ``tests/engine/test_codegen.py``
checks the generated module's AST for anything else.

The module runs with this namespace (``poletti.interpreter.generated``
provides it): ``P`` the interpreter's processor, ``K`` the constants, ``E``
compiled expressions, ``Ctx``, ``TZ``, ``heappush``, ``heappop``,
``add_us``, ``day_start_us``, ``local_date``, ``date``, ``replaced``, and
for the lane ``quick_fields`` (the event reader), ``Tally``, ``Event``,
``Outcome``, ``new_outcome`` and ``pack`` (``marshal.dumps``, the receipt). A state's purchases
are flat, as ``engine/state.py`` describes: the seven fields of each (id, at, amount, refunded, points,
reversed, partner) one after the other.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable

from poletti.dsl import ast, classes
from poletti.dsl.program import Type
from poletti.engine import money
from poletti.engine.compiler import (
    CompiledProgram, ConvertRule, FixedRule, Guard, MultiplierRule, OnRule, PerRule, StampRule, WhenRule,
)
from poletti.engine.expressions import duration_of
from poletti.engine.ledger import NEXT_CHANGE_UNKNOWN
from poletti.engine.state import AMOUNT, EXIT_INDEX_MASK, EXIT_SHIFT, POINTS, PURCHASE_FIELDS, REFUNDED
from poletti.engine.timecalc import DAY_US, WEEK_US, MonthShift, PeriodKeys

__all__ = ["Generated", "generate"]

# The only builtins the generated source calls (its namespace has no others).
BUILTINS = ("len", "sum", "any", "bool", "min", "max")
# Names the generated source may use beside its own locals: the namespace it runs in.
NAMESPACE = BUILTINS + ("P", "K", "E", "Ctx", "TZ", "heappush", "heappop", "add_us", "day_start_us", "local_date", "date",
             "replaced", "DAY",
             # the lane's (``_lane_maker``): the quick reader, the classes it builds, the receipt's packing
             "quick_fields", "Tally", "Event", "Outcome", "new_outcome", "pack")
# The local holding the key of the event's calendar period, by period (``_period_keys``).
_PERIOD_KEY = {"day": "day_key", "week": "week_key", "month": "month_key", "year": "year_key"}
# Locals and functions the generator invents (the AST test checks for nothing else).
INVENTED = ("st", "ev", "tally", "now", "at", "until", "instant", "led", "pts", "per_total", "total", "earned",
            "granted_points", "released", "expired", "lot", "item", "items", "exits", "totals", "index", "record",
            "clock", "memo", "nxt", "candidates", "first", "ref", "prev", "amount", "bal", "count", "rank", "holds",
            "was", "active", "until_keep", "keep_started", "keep_ended", "old", "kept", "inside", "year", "leaves",
            "units", "base", "cost", "apply", "advance", "next_change", "status", "convert",
            "ctx", "_ctx", "earn", "triggers", "record_facts", "purchase_index", "day", "monday", "last",
            "birthday_rules_due", "t", "i", "n", "reward", "when_rules", "limit", "kind", "held", "day_key", "week_key",
            "month_key", "year_key",
            # the lane's (``_lane_maker``)
            "make_lane", "lane", "engine", "slow", "store", "lock", "receipts", "states", "upcoming", "save",
            "new_state", "compiled", "names", "currency", "plain_types", "raw", "read", "ev_id", "customer",
            "ev_amount", "ev_currency", "ev_items", "ev_original", "ev_reward", "ev_birthday", "friend", "account",
            "key", "extra", "packed", "fresh", "watermark", "last_at", "tier_before", "spare", "outcome", "left",
            "refund_index", "refused",
            "caps", "usage", "used", "room")  # (a calendar cap written out: ``_calendar_cap_inline``)


@classes.frozen
class Generated:
    """The generated source of one program, its constants, and a hash that names it."""

    source: str
    constants: tuple[Any, ...]
    evaluators: tuple[Callable[..., Any], ...]
    digest: str


class _Source:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def line(self, text: str = "") -> None:
        self.lines.append("    " * self.depth + text if text else "")

    def indent(self) -> "_Block":
        return _Block(self)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class _Block:
    def __init__(self, source: _Source) -> None:
        self.source = source

    def __enter__(self) -> None:
        self.source.depth += 1

    def __exit__(self, *exc: object) -> None:
        self.source.depth -= 1


def _lit(value: object) -> str:
    """A user value as a Python literal: only ints, strs, bools and None are ever written into the source."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    raise TypeError(f"not a literal: {type(value).__name__}")  # pragma: no cover - a generator bug


def _ratio(value: Decimal) -> tuple[int, int]:
    fraction = Fraction(value)
    return fraction.numerator, fraction.denominator


def _rounded(numerator: str, denominator: int, mode: str) -> str:
    """Integer rounding of numerator ÷ denominator (both ≥ 0) as the program's ``rounding`` says."""
    if denominator == 1:
        return numerator
    if mode == "down":
        return f"({numerator}) // {denominator}"
    if mode == "up":
        return f"-(-({numerator}) // {denominator})"
    return f"(2 * ({numerator}) + {denominator}) // {2 * denominator}"  # nearest, halves up


# The event's fields as the lane (``_Generator._lane_maker``) reads them into its locals.
_LANE_FIELDS = {"at": "at", "type": "kind", "amount": "ev_amount", "id": "ev_id", "birthday": "ev_birthday",
                "items": "ev_items", "original": "ev_original"}
_EVENT_NAME = re.compile(r"\bev\b")


def _mentions_event(lines: list[str]) -> bool:
    """Whether generated lines use the name ``ev`` (the event, or what a function was handed as it)."""
    return any(_EVENT_NAME.search(line) for line in lines)


class _Generator:
    def __init__(self, cp: CompiledProgram) -> None:
        self.cp = cp
        self.checked = cp.checked
        # (``checked.rules`` builds its tuple anew on every read: read once, not once per rule)
        self.rule_nodes = cp.checked.rules
        self.out = _Source()
        self.constants: list[Any] = []
        self.evaluators: list[Callable[..., Any]] = []
        self._constant_index: dict[int, int] = {}
        self._shifts: dict[tuple[int, str], MonthShift] = {}
        self._period_key_fns: dict[str, PeriodKeys] = {}  # (``_period_keys``)
        # (instant expression, amount, unit) → a local holding that shift, while the code being written has one
        self._shifted: dict[tuple[str, int, str], str] = {}
        self.rounding = cp.checked.rounding
        # While the lane's steps are written (``_lane``): the event's fields are its locals (``_LANE_FIELDS``).
        self._lane = False
        # Whether ``convert`` and ``when_rules`` read their ``ev`` (the lane passes None to one that does not, and
        # builds no ``Event`` unless something it runs reads one; ``status``' steps it writes out in place).
        self._reads_event: dict[str, bool] = {}
        self.window_slot = {(w.source, str(w.duration)): w.slot for w in cp.windows}
        self.segment_slot = {name: i for i, name in enumerate(cp.segment_names)}
        self.tier_rank = {name: rank for rank, name in enumerate(cp.tier_names) if name is not None}
        self.tier_rank["none"] = 0
        from poletti.engine.expressions import ExpressionCompiler
        self.exprs = ExpressionCompiler(
            self.checked, cp.tz, segment_index=self.segment_slot,
            metric_index={name: i for i, name in enumerate(self.checked.metrics)},
            tier_rank=self.tier_rank, windows=list(cp.windows))

    # ------------------------------------------------------------ plumbing

    def plus(self, at: str, duration: Any) -> str:
        """An expression for ``add_us(at, duration, TZ)``: days and weeks as integer arithmetic, months and
        years through the program's ``MonthShift`` for that duration (which caches the shift per hour)."""
        known = self._shifted.get((at, duration.amount, duration.unit))
        if known is not None:
            return known  # worked out once already, in a local (``_share_purchase_shift``)
        if duration.unit in ("d", "w"):
            step = duration.amount * (DAY_US if duration.unit == "d" else WEEK_US)
            return f"({at} + {_lit(step)})" if step else at
        shift = self._shifts.get((duration.amount, duration.unit))
        if shift is None:
            shift = self._shifts[(duration.amount, duration.unit)] = MonthShift(duration, self.cp.tz)
        return f"{self.const(shift)}({at})"

    def const(self, value: Any) -> str:
        key = id(value)
        if key not in self._constant_index:
            self._constant_index[key] = len(self.constants)
            self.constants.append(value)
        return f"K[{self._constant_index[key]}]"

    def fallback(self, expr: ast.Expr) -> str:
        """An expression the generator does not inline: the interpreter's compiled closure, given a context."""
        self.evaluators.append(self.exprs.compile(expr))
        return f"E[{len(self.evaluators) - 1}](_ctx(st, now, ev))"

    def _ev(self, field: str) -> str:
        """An expression for the event's ``field``: ``ev.field``, or in the lane the local it was read into."""
        return _LANE_FIELDS[field] if self._lane else f"ev.{field}"

    def _ev_for(self, function: str) -> str:
        """What ``apply`` hands ``convert`` or ``when_rules`` as their ``ev``: the event, or in the lane None when
        the function never reads it (the ``Event`` is then not built at all)."""
        return "ev" if not self._lane or self._reads_event[function] else "None"

    # --------------------------------------------------------- expressions

    def condition(self, expr: ast.Expr) -> str:
        """A Python boolean expression for a condition (inlined where it can be, the interpreter's otherwise)."""
        inline = self._cond(expr)
        return inline if inline is not None else f"bool({self.fallback(expr)})"

    def _cond(self, e: ast.Expr) -> str | None:
        if isinstance(e, ast.BoolLit):
            return "True" if e.value else "False"
        if isinstance(e, ast.AndOp):
            return f"({self.condition(e.left)} and {self.condition(e.right)})"
        if isinstance(e, ast.OrOp):
            return f"({self.condition(e.left)} or {self.condition(e.right)})"
        if isinstance(e, ast.NotOp):
            return f"(not {self.condition(e.operand)})"
        if isinstance(e, ast.NameRef) and e.name in self.segment_slot:
            return f"st.segments[{self.segment_slot[e.name]}]"
        if isinstance(e, ast.PresenceTest):
            read = self._value(e.attribute)
            if read is None:
                return None
            return f"(({read[0]}) is {'not ' if e.present else ''}None)"
        if isinstance(e, ast.Compare):
            return self._compare(e)
        return None

    def _compare(self, e: ast.Compare) -> str | None:
        left, right = self._value(e.left), self._value(e.right)
        if left is None or right is None:
            return None
        (a, a_kind, a_null), (b, b_kind, b_null) = left, right
        if a_kind != b_kind and "number" not in (a_kind, b_kind):
            return None
        if a_kind == "number" and b_kind == "number":
            return None  # two bare numbers: leave it to the interpreter
        test = f"{a} {e.op} {b}"
        nullable = [x for x, null in ((a, a_null), (b, b_null)) if null]
        if not nullable:
            return f"({test})"
        if e.op == "!=":  # a missing value is unequal to everything
            return "(" + " or ".join(f"{x} is None" for x in nullable) + f" or {test})"
        return "(" + " and ".join(f"{x} is not None" for x in nullable) + f" and {test})"

    def _number(self, node: ast.NumberLit, kind: Type | None) -> tuple[str, str, bool]:
        value = node.value
        if kind is Type.MONEY:
            return _lit(money.to_units(value)), "units", False
        if value == value.to_integral_value():
            return _lit(int(value)), "number", False
        return self.const(value), "number", False

    def _value(self, e: ast.Expr) -> tuple[str, str, bool] | None:
        """(Python expression, kind, may be None) for an operand, or None when not inlined.

        Kinds: "units" (money in micro-units), "int" (points, counts, days,
        tier ranks), "number" (a bare literal that fits either), "text", "bool".
        """
        types = self.checked.types
        if isinstance(e, ast.NumberLit):
            return self._number(e, types.get(e))
        if isinstance(e, ast.MoneyLit) and isinstance(e.amount, ast.NumberLit):
            return _lit(money.to_units(e.amount.value)), "units", False
        if isinstance(e, ast.PointsLit) and isinstance(e.amount, ast.NumberLit):
            return _lit(int(e.amount.value)), "int", False
        if isinstance(e, ast.TextLit):
            return _lit(e.value), "text", False
        if isinstance(e, ast.BoolLit):
            return ("True" if e.value else "False"), "bool", False
        if isinstance(e, ast.NameRef):
            return self._name(e.name)
        if isinstance(e, ast.EventAttr):
            if e.name == "amount":
                return "(ev.amount if ev is not None else None)", "units", True
            if e.name == "type":
                return "(ev.type if ev is not None else None)", "text", True
            kind = self.checked.attributes.get(e.name)
            if kind in (Type.TEXT, Type.BOOL, Type.COUNT, Type.POINTS):
                as_kind = {Type.TEXT: "text", Type.BOOL: "bool"}.get(kind, "int")
                return f"(ev.attributes.get({_lit(e.name)}) if ev is not None else None)", as_kind, True
        return None

    def _name(self, name: str) -> tuple[str, str, bool] | None:
        if name in self.segment_slot:
            return f"st.segments[{self.segment_slot[name]}]", "bool", False
        if name in self.tier_rank and name not in self.checked.builtins:
            return _lit(self.tier_rank[name]), "int", False
        quantity = self.checked.builtins.get(name)
        if quantity is None:
            return None  # a metric
        kind = quantity.kind
        simple = {"points": "st.ledger.balance", "pending_points": "st.ledger.pending",
                  "lifetime_points": "st.ledger.earned_total", "tier": "st.tier",
                  "member_days": "(now - (st.first_seen if st.first_seen is not None else now)) // DAY",
                  "days_since_last_purchase":
                      "(now - (st.last_purchase_at if st.last_purchase_at is not None else "
                      "st.first_seen if st.first_seen is not None else now)) // DAY"}
        if kind in simple:
            return simple[kind], "int", False
        if kind in ("spend", "purchases", "visits"):
            if quantity.window is None:
                read = {"spend": "st.spend_total", "purchases": f"len(st.purchases) // {PURCHASE_FIELDS}", "visits": "st.visit_count"}[kind]
            else:
                source = "visit" if kind == "visits" else "purchase"
                slot = self.window_slot[(source, str(duration_of(quantity.window)))]
                read = f"st.windows[{slot}].{'spend' if kind == 'spend' else 'count'}"
            return read, ("units" if kind == "spend" else "int"), False
        return None  # streaks: the interpreter's closures work out the local day

    # ---------------------------------------------------------- the module

    def module(self) -> str:
        out = self.out
        out.line("# Generated by poletti.engine.codegen: do not edit. See that module's docstring.")
        out.line()
        out.line("def _ctx(st, now, ev):")
        with out.indent():
            out.line("return Ctx(st, now, ev, TZ)")
        out.line()
        self._next_change()
        self._advance()
        self._status()
        for name, write in (("convert", self._convert), ("when_rules", self._when_rules)):
            start = len(out.lines)
            write()
            self._reads_event[name] = _mentions_event(out.lines[start + 1:])  # (after its ``def`` line)
        self._apply()
        self._lane_maker()
        return out.text()

    # ------------------------------------------------------------ the lane

    def _lane_maker(self) -> None:
        """``make_lane(engine, slow)``: the engine's whole ``process`` for the common event, in one function.

        For the memory store and the generated code (``Engine._plain``), ``lane(raw)`` reads the event with
        ``quick_fields`` into its locals, checks the receipt and the clock, runs ``apply``'s steps written out
        in place with the event's fields as locals, schedules the next change, keeps the receipt and returns
        the ``Outcome``: the work of ``Engine.process``, ``EventReader.read``, ``Engine._apply_once`` and ``apply``
        without their calls, and without an ``Event`` unless a step hands one to the interpreter. Whatever is
        not the common case (an event the quick reader leaves alone or gives no content key, a duplicate, an
        event before the clock or the customer's last one) goes to ``slow(raw)``, the engine's own path,
        before anything has changed.
        """
        out = self.out
        out.line("def make_lane(engine, slow):")
        with out.indent():
            out.line("store = engine.store")
            out.line("lock = store._lock")
            out.line("receipts = store._receipts")
            out.line("states = store._states")
            out.line("upcoming = store._next")
            out.line("save = store.save")
            out.line("new_state = engine._new_state")
            out.line("compiled = engine.compiled")
            out.line("names = compiled.tier_names")
            out.line("currency = engine.reader.currency")
            out.line("plain_types = engine.reader.plain_types")
            # A tally that recorded nothing, for the next event: taken under the lock, given back clean at the end
            # (its counters back to 0, a new ``granted`` dict: the old one went into the outcome). An event whose
            # steps raise never gives it back, so the next one starts with a new tally. Building a ``Tally`` for
            # every event cost a fifth of a microsecond.
            out.line("spare = Tally(False)")
            out.line()
            out.line("def lane(raw):")
            with out.indent():
                out.line("nonlocal spare")
                out.line("read = quick_fields(raw, currency, plain_types)")
                out.line("if read is None:")
                with out.indent():
                    out.line("return slow(raw)")
                out.line("(ev_id, kind, customer, at, ev_amount, ev_currency, ev_items, ev_original, ev_reward, "
                         "ev_birthday, friend, account, key, extra) = read")
                # A content key means the type rules passed (``quick_fields``): no redeem, no friend,
                # account, partner, rewards used or attributes. Its values are texts, ints, None and tuples of
                # them, which ``pack`` always packs: packed before anything changes all the same.
                out.line("if key is None:")
                with out.indent():
                    out.line("return slow(raw)")
                out.line("packed = pack(key, 2) if ev_items else pack(key)")  # (``pack_receipt``: the version)
                out.line("with lock:")  # the memory store's transaction (``MemoryStore.transaction``)
                with out.indent():
                    out.line("if ev_id in receipts:")  # a duplicate or a conflict: the engine says which
                    with out.indent():
                        out.line("return slow(raw)")
                    out.line("st = states.get(customer)")
                    out.line("fresh = st is None")
                    out.line("if fresh:")
                    with out.indent():
                        out.line("st = new_state(customer)")  # (kept by ``save`` below, or dropped by ``slow``)
                    out.line("watermark = engine._watermark")
                    out.line("clock = st.clock")
                    out.line("last_at = st.last_event_at")
                    # Before the clock or the customer's last event: ``_check_clock`` and ``Stepper.check`` decide.
                    out.line("if ((watermark is not None and at < watermark) or (clock is not None and at < clock) "
                             "or (last_at is not None and at < last_at)):")
                    with out.indent():
                        out.line("return slow(raw)")
                    # A refund ``Stepper.check`` rejects (``CustomerState.refund_refusal``: a purchase not this
                    # customer's, or without that much left) goes to ``slow`` too, which says why: before anything
                    # has changed.
                    out.line("if kind == 'refund':")
                    with out.indent():
                        # (kept for the refund step below: the clock step's window exits reuse ``index``)
                        out.line("refund_index, left, refused = st.refund_refusal(ev_original, ev_amount)")
                        out.line("if refused is not None:")
                        with out.indent():
                            out.line("return slow(raw)")
                    out.line("tier_before = st.tier")
                    out.line("tally = spare")
                    out.line("if tally is None:")
                    with out.indent():
                        out.line("tally = Tally(False)")
                    out.line("spare = None")
                    out.line("now = at")
                    steps = _Source()
                    steps.depth = out.depth
                    self.out, self._lane = steps, True
                    try:
                        self._apply_steps()
                    finally:
                        self.out, self._lane = out, False
                    if _mentions_event(steps.lines):  # a step hands the event to the interpreter: build it
                        out.line("ev = Event(ev_id, kind, customer, at, ev_amount, ev_currency, ev_items, ev_original, "
                                 "ev_reward, ev_birthday, {}, None, None, (), None, None, key)")
                    out.lines.extend(steps.lines)
                    # ``next_change(st)`` (``Stepper.schedule``), in place: the steps have set the clock
                    out.line("clock = st.clock")
                    self._next_change_steps()
                    out.line("instant = nxt")
                    out.line("st.next_change_clock = st.clock")
                    out.line("st.next_change_at = instant")
                    # ``store.save``: nothing to do for a state it holds whose next change did not move (most)
                    out.line("if fresh or upcoming.get(customer) != instant:")
                    with out.indent():
                        out.line("save(st, instant)")
                    out.line("receipts[ev_id] = packed")  # ``store.record``: the key begins with the customer
                    out.line("led = st.ledger")
                    out.line("outcome = new_outcome(Outcome, (ev_id, customer, kind, at, 'applied', earned, "
                             "tally.granted, tally.expired, tally.reversed, tally.spent, names[tier_before], "
                             "names[st.tier], led.free + led._spendable_in_lots - led.owed, led._pending, "
                             "led.earned_total, (), compiled, ()))")
                    # The tally made clean for the next event (``Tally(False)``'s fields; no trace without explain)
                    out.line("tally.granted = {}")
                    out.line("if tally.expired or tally.reversed or tally.spent or tally.changed:")
                    with out.indent():
                        out.line("tally.expired = tally.reversed = tally.spent = 0")
                        out.line("tally.changed = False")
                    out.line("spare = tally")
                    out.line("return outcome")
            out.line("return lane")
        out.line()

    # ------------------------------------------------------- guards (inline)

    def _guard_simple(self, guard: Guard, rule_node: Any) -> bool:
        """Whether a rule's options can be written inline: no cap, no once (the interpreter keeps those)."""
        return guard.cap is None and not guard.once

    @staticmethod
    def _calendar_capped(guard: Guard) -> bool:
        """Whether a rule's only option beyond `if`/`during` is a calendar `limit` (written inline too)."""
        return guard.cap is not None and guard.cap.period is not None and not guard.once

    def _calendar_cap_inline(self, index: int, cap: Any) -> None:
        """``pts`` cut down to what is left of rule ``index``'s calendar ``limit`` and counted (the key of the
        period was worked out by ``_period_keys``): ``Processor._capped`` for a calendar period, written out,
        with the same usage record, read and counted the same way."""
        out, key, amount = self.out, _PERIOD_KEY[cap.period], _lit(cap.amount)
        out.line("if pts > 0:")
        with out.indent():
            out.line("caps = st.caps")
            out.line(f"usage = caps.get({_lit(index)}) if caps else None")
            out.line(f"used = usage.used if usage is not None and usage.period == {key} else 0")
            if cap.unit == "times":
                out.line(f"if used >= {amount}:")
                with out.indent():
                    out.line("pts = 0")
            else:
                out.line(f"room = {amount} - used")
                out.line("if pts > room:")
                with out.indent():
                    out.line("pts = room if room > 0 else 0")
            out.line("if pts > 0:")
            with out.indent():
                out.line("if usage is None:")
                with out.indent():
                    out.line(f"usage = st.cap_usage({_lit(index)})")
                out.line(f"if usage.period != {key}:")
                with out.indent():
                    out.line(f"usage.period = {key}")
                    out.line("usage.used = 0")
                out.line(f"usage.used += {'1' if cap.unit == 'times' else 'pts'}")

    def _period_keys(self, kind: str) -> None:
        """The key of each calendar period whose caps the earn rules of ``kind`` check inline, worked out once
        for the event (before any rule's own block, so that every block can read it)."""
        rules = [*self.cp.per_rules.get(kind, ()), *self.cp.fixed_rules.get(kind, ())]
        periods = sorted({rule.guard.cap.period for rule in rules if self._calendar_capped(rule.guard)})
        for period in periods:
            keys = self._period_key_fns.get(period)
            if keys is None:
                keys = self._period_key_fns[period] = PeriodKeys(period, self.cp.tz)
            self.out.line(f"{_PERIOD_KEY[period]} = {self.const(keys)}(now)  # period_key_us(now, {_lit(period)}, TZ)")

    def _guard_test(self, guard: Guard, rule_node: Any) -> str:
        """A Python condition that is true when the rule's `during` and `if` let it fire now."""
        parts = []
        if guard.during is not None:
            start, end = guard.during
            parts.append(f"{_lit(start)} <= now < {_lit(end)}")
        for option in getattr(rule_node, "options", ()):
            if isinstance(option, ast.IfOption):
                parts.append(self.condition(option.condition))
        return " and ".join(parts) if parts else "True"

    def _when(self, test: str) -> Any:
        """``if test:`` and the block it opens (the block alone, not indented, when the test is ``True``)."""
        if test == "True":
            return contextlib.nullcontext()
        self.out.line(f"if {test}:")
        return self.out.indent()

    def _rule_node(self, rule: Any) -> Any:
        return self.rule_nodes[rule.index]

    # ------------------------------------------------------------ the clock

    def _next_change(self) -> None:
        cp, ts, out = self.cp, self.cp.time_sources, self.out
        out.line("def next_change(st):")
        with out.indent():
            out.line("clock = st.clock")
            out.line("if clock is None:")
            with out.indent():
                out.line("return None")
            self._next_change_steps()
            out.line("return nxt")
        out.line()

    def _next_change_steps(self) -> None:
        """``next_change``' body once ``clock`` is read and known: it leaves the answer in ``nxt`` (the lane
        writes it out in place of the call, after ``apply``'s steps, which always set the clock)."""
        cp, ts, out = self.cp, self.cp.time_sources, self.out
        out.line("nxt = None")
        first = True  # (until a candidate is written, nxt is None: the first one need not compare)

        def candidate(expr: str, nullable: bool = True) -> None:
            nonlocal first
            out.line(f"t = {expr}")
            tests = ["t is not None"] if nullable else []
            tests.append("t > clock")
            if not first:
                tests.append("(nxt is None or t < nxt)")
            first = False
            out.line(f"if {' and '.join(tests)}:")
            with out.indent():
                out.line("nxt = t")

        if cp.expire_after is not None or cp.pending_for is not None:
            # ``st.ledger.next_change()``, its kept answer read here (worked out only when it is unknown)
            out.line("led = st.ledger")
            candidate(f"led._next if led._next != {_lit(NEXT_CHANGE_UNKNOWN)} else led.next_change()")
        for slot, watch in zip(ts.windows, ts.watches, strict=True):
            out.line(f"totals = st.windows[{slot}]")
            out.line("exits = totals")  # (a window is its own heap of exits: ``WindowTotals``)
            # The next exit counts only while it can change a condition (``WindowWatch.live``, written out).
            tests = ["exits"]
            if not watch.always:
                live = [f"totals.{figure} >= {_lit(bound)}" for figure, bound in
                        (("spend", watch.spend_from), ("count", watch.count_from)) if bound is not None]
                tests.append(live[0] if len(live) == 1 else f"({' or '.join(live)})")
            out.line(f"if {' and '.join(tests)}:")
            with out.indent():
                candidate(f"exits[0] >> {EXIT_SHIFT}", nullable=False)
            first = False  # (the block above may not have run)
        needs_first = bool(ts.day_thresholds or ts.daily)
        if needs_first:
            out.line("first = st.first_seen if st.first_seen is not None else clock")
            out.line("last = st.last_purchase_at if st.last_purchase_at is not None else first")
        for kind, days in ts.day_thresholds:
            ref = "last" if kind == "days_since_last_purchase" else "first"
            out.line(f"for n in ({''.join(_lit(day) + ', ' for day in days)}):")
            with out.indent():
                out.line(f"t = {ref} + n * DAY")
                out.line("if t > clock:")
                with out.indent():
                    out.line("if nxt is None or t < nxt:")
                    with out.indent():
                        out.line("nxt = t")
                    out.line("break")
            first = False
        for kind in sorted(ts.daily):
            ref = "last" if kind == "days_since_last_purchase" else "first"
            candidate(f"{ref} + ((clock - {ref}) // DAY + 1) * DAY")
        if ts.metric_windows or ts.streak_days or ts.streak_weeks or "birthday" in cp.on_rules:
            candidate("P.rare_next_change(st)")  # metrics, streaks, birthdays: the interpreter's
        if cp.tiers and any(t.keep is not None for t in cp.tiers):
            out.line("for t in st.tier_keep_until:")
            with out.indent():
                out.line("if t is not None and t > clock and (nxt is None or t < nxt):")
                with out.indent():
                    out.line("nxt = t")
            first = False
        for edge in ts.campaign_edges:
            candidate(_lit(edge))
        # Issue 13: the next held reward to end (any state may hold some: its program may have changed).
        out.line("if st.wallet:")
        with out.indent():
            candidate("st.wallet[0][0]")

    def _leave_windows(self, at: str) -> None:
        """Inline: take out of every window what leaves it at or before ``at``."""
        out = self.out
        for spec in self.cp.windows:
            out.line(f"totals = st.windows[{spec.slot}]")
            out.line("exits = totals")  # (a window is its own heap of exits: ``WindowTotals``)
            out.line(f"limit = ({at} + 1) << {EXIT_SHIFT}  # the first exit entry after {at} (state.window_exit)")
            out.line("while exits and exits[0] < limit:")
            with out.indent():
                out.line(f"index = (heappop(exits) & {EXIT_INDEX_MASK}) - 1")
                out.line("totals.count -= 1")
                if spec.source == "purchase":
                    # (flat purchases: state.PurchaseRecord) amount - refunded
                    out.line(f"record = index * {PURCHASE_FIELDS}")
                    out.line(f"totals.spend -= st.purchases[record + {AMOUNT}] - st.purchases[record + {REFUNDED}]")
        if any(m.window is not None for m in self.cp.metrics):
            out.line(f"P.leave_metric_windows(st, {at})")

    def _instant_steps(self) -> None:
        """The changes due at one ``instant`` of the clock (``Processor._apply_instant``), written out in
        ``advance``'s loop, with ``status``' steps in place of its call."""
        cp, out = self.cp, self.out
        out.line("now = instant")
        out.line("ev = None")
        out.line("released = False")
        out.line("if st.wallet:")  # issue 13: held rewards end at grant + `expires after`
        with out.indent():
            out.line("P.expire_held(st, instant, tally)")
        # The ledger's methods are called only when its kept soonest expiry or release is due: most
        # instants are one or the other (or a window exit), and each call found nothing to do at once.
        # The ledger's "work it out again" (NEXT_CHANGE_UNKNOWN) is below every instant: it calls them.
        if cp.expire_after is not None or cp.pending_for is not None:
            out.line("led = st.ledger")
        if cp.expire_after is not None:
            out.line("if led._expiry is not None and led._expiry <= instant:")
            with out.indent():
                out.line("for lot in led.expire_until(instant):")
                with out.indent():
                    out.line("tally.expired += lot.points")
                    out.line("st.total_expired += lot.points")
                    out.line("tally.changed = True")
        if cp.pending_for is not None:
            out.line("if led._pending and led._release is not None and led._release <= instant and "
                     "led.release_due(instant):")
            with out.indent():
                out.line("released = True")
                out.line("tally.changed = True")
        self._leave_windows("instant")
        out.line("granted_points = False")
        if cp.on_rules.get("birthday"):
            out.line("granted_points = P.birthday(st, instant, tally)")
        self._status_steps()
        if cp.when_rules:
            out.line("granted_points = when_rules(st, now, ev, tally) or granted_points")
        out.line("if released or granted_points:")
        with out.indent():
            out.line("convert(st, now, ev, tally)")

    def _advance(self) -> None:
        out = self.out
        # It returns the next change after ``until`` (what ``next_change`` then gives): the first change after
        # the last one applied, found by the loop, is after ``until``, so it is also the first after ``until``.
        out.line("def advance(st, until, tally):")
        with out.indent():
            out.line("clock = st.clock")
            out.line("if clock is None:")
            with out.indent():
                out.line("st.clock = until")
                out.line("return next_change(st)")
            out.line("memo = st.next_change_clock")
            out.line("st.next_change_clock = None")
            out.line("while True:")
            with out.indent():
                out.line("if memo is not None and memo == st.clock:")
                with out.indent():
                    out.line("instant = st.next_change_at")
                out.line("else:")
                with out.indent():  # ``next_change(st)``, in place (the clock is set here)
                    out.line("clock = st.clock")
                    self._next_change_steps()
                    out.line("instant = nxt")
                out.line("memo = None")
                out.line("if instant is None or instant > until:")
                with out.indent():
                    out.line("break")
                self._instant_steps()  # (one call fewer per instant, two with ``status``)
                out.line("st.clock = instant")
            out.line("if until > st.clock:")
            with out.indent():
                self._leave_windows("until")
                out.line("st.clock = until")
            out.line("return instant")
        out.line()

    # ------------------------------------------------------------- step 5

    def _status(self) -> None:
        out = self.out
        out.line("def status(st, now, ev, tally):")
        with out.indent():
            self._status_steps()
            out.line("return None")
        out.line()

    def _status_steps(self) -> None:
        """``status``' body (written out in the lane in place of the call: it has no ``return`` of its own)."""
        cp = self.cp
        self._segments(cp.segments_before_tiers)
        if cp.tiers:
            self._tiers()
        self._segments(cp.segments_after_tiers)

    def _segments(self, segments: tuple[Any, ...]) -> None:
        out = self.out
        for segment in segments:
            decl = self.checked.segments[segment.name]
            out.line(f"inside = {self.condition(decl.condition)}")
            out.line(f"if inside != st.segments[{segment.slot}]:")
            with out.indent():
                out.line(f"st.segments[{segment.slot}] = inside")
                out.line("tally.changed = True")

    def _tiers(self) -> None:
        cp, out = self.cp, self.out
        if all(tier.keep is None for tier in cp.tiers):
            # No tier has `keep`: unless the state kept a deadline from a program that had one, the tier is the
            # highest whose condition holds, and nothing else is to be done (the general steps below, with no
            # deadline, come to the same).
            nones = ", ".join(["None"] * len(cp.tiers))
            out.line(f"if st.tier_keep_until == ({nones},):")
            with out.indent():
                out.line("held = st.tier_held")
                out.line("rank = 0")
                for tier in cp.tiers:
                    i = tier.rank - 1
                    out.line(f"if {self.condition(self._rule_node(tier).condition)}:")
                    with out.indent():
                        out.line(f"rank = {tier.rank}")
                        out.line(f"if not held[{i}]:")
                        with out.indent():
                            out.line(f"st.tier_held = held = replaced(held, {i}, True)")
                    out.line(f"elif held[{i}]:")
                    with out.indent():
                        out.line(f"st.tier_held = held = replaced(held, {i}, False)")
                self._set_rank()
            out.line("else:")
            with out.indent():
                self._tiers_with_keep()
        else:
            self._tiers_with_keep()

    def _tiers_with_keep(self) -> None:
        cp, out = self.cp, self.out
        out.line("rank = 0")
        out.line("keep_started = 0")  # bit i: tier i's keep began now (the interpreter reports that)
        for tier in cp.tiers:
            i = tier.rank - 1
            node = self._rule_node(tier)
            # The state's tier tuples are replaced only when a value changes (state.replaced).
            out.line(f"if {self.condition(node.condition)}:")
            with out.indent():
                out.line(f"if not st.tier_held[{i}]:")
                with out.indent():
                    out.line(f"st.tier_held = replaced(st.tier_held, {i}, True)")
                out.line(f"if st.tier_keep_until[{i}] is not None:")
                with out.indent():
                    out.line(f"st.tier_keep_until = replaced(st.tier_keep_until, {i}, None)")
                out.line(f"rank = {tier.rank}")
            out.line("else:")
            with out.indent():
                out.line(f"if st.tier_held[{i}]:")
                with out.indent():
                    if tier.keep is not None:
                        keep_until = self.plus("now", tier.keep)
                        out.line(f"st.tier_keep_until = replaced(st.tier_keep_until, {i}, {keep_until})")
                        out.line(f"keep_started |= {1 << i}")
                    out.line(f"st.tier_held = replaced(st.tier_held, {i}, False)")
                out.line(f"until_keep = st.tier_keep_until[{i}]")
                out.line("if until_keep is not None and until_keep <= now:")
                with out.indent():
                    out.line(f"st.tier_keep_until = replaced(st.tier_keep_until, {i}, None)")
                    out.line("until_keep = None")
                out.line("if until_keep is not None:")
                with out.indent():
                    out.line(f"rank = {tier.rank}")
        self._set_rank()
        out.line("elif rank and keep_started >> (rank - 1) & 1:")
        with out.indent():
            out.line("tally.changed = True")

    def _set_rank(self) -> None:
        """The tier worked out (``rank``) becomes the customer's: a change is something a host hears about."""
        out = self.out
        out.line("if rank != st.tier:")
        with out.indent():
            out.line("st.tier = rank")
            out.line("tally.changed = True")

    # ------------------------------------------------------------- step 4

    def _give(self, target: str | int, count: str = "1") -> None:
        """Inline: grant a reward ``count`` times, or points once."""
        out = self.out
        if isinstance(target, str):
            out.line(f"st.grant_reward({_lit(target)}, {count})")
            terms = self.cp.wallet.get(target)
            if terms is not None and terms.expires is not None:  # issue 13: held one by one until it ends
                out.line(f"P.hold_reward(st, {_lit(target)}, now, {count})")
            value = self.cp.rewards.get(target, (None, None))[0]
            if value is not None:
                out.line(f"st.total_cost += {_lit(money.to_units(value))} * {count}")
            out.line(f"tally.granted[{_lit(target)}] = tally.granted.get({_lit(target)}, 0) + {count}")
        else:
            self._add_points(_lit(target), "now", "'grant'", pending=False)

    def _add_points(self, points: str, at: str, source: str, pending: bool) -> None:
        cp, out = self.cp, self.out
        expires = self.plus(at, cp.expire_after) if cp.expire_after is not None else "None"
        available = (self.plus(at, cp.pending_for)
                     if pending and cp.pending_for is not None else "None")
        if expires == "None" and available == "None":
            # Points that neither expire nor wait: the ledger's ``earn`` comes down to two additions unless a
            # debt is to be paid first (written out: this runs once per purchase of most programs).
            out.line("led = st.ledger")
            out.line(f"if led.owed or {points} < 0:")
            with out.indent():
                out.line(f"led.earn({points}, {at}, None, None, {source})")
            out.line("else:")
            with out.indent():
                out.line(f"led.earned_total += {points}")
                out.line(f"led.free += {points}")
        else:
            out.line(f"st.ledger.earn({points}, {at}, {expires}, {available}, {source})")
        out.line(f"st.total_earned += {points}")

    def _convert(self) -> None:
        out = self.out
        out.line("def convert(st, now, ev, tally):")
        with out.indent():
            self._convert_steps()
            out.line("return None")
        out.line()

    def _convert_steps(self) -> None:
        """``convert``'s body (written out in the lane's step 4 in place of the call: no ``return`` of its own)."""
        cp, out = self.cp, self.out
        out.line("led = st.ledger")
        for rule in cp.converts:
            node = self._rule_node(rule)
            if not self._guard_simple(rule.guard, node):
                out.line(f"P._convert_rule(st, _ctx(st, now, ev), {self.const(rule)}, tally)")
                continue
            out.line("bal = led.free + led._spendable_in_lots - led.owed")  # ``led.balance``, inline
            out.line(f"if bal >= {_lit(rule.threshold)} and {self._guard_test(rule.guard, node)}:")
            with out.indent():
                count = "1" if isinstance(rule.target, int) else f"bal // {_lit(rule.threshold)}"
                out.line(f"count = {count}")
                out.line(f"pts = {_lit(rule.threshold)} * count")
                # ``led.spend(pts)``: pts is within the balance; free points first, as spend takes them.
                out.line("if pts <= led.free:")
                with out.indent():
                    out.line("led.free -= pts")
                    out.line("led.spent_total += pts")
                out.line("else:")
                with out.indent():
                    out.line("led.spend(pts)")
                out.line("tally.spent += pts")
                out.line("st.total_spent += pts")
                out.line("tally.changed = True")
                self._give(rule.target, "count")

    def _convert_step(self) -> None:
        """Step 4's call of ``convert``, made only when the balance reaches the lowest threshold: below it no
        `at` rule converts (``convert`` tests each rule's, as ``Processor._convert_rule`` does), and most events
        leave the balance below it. Nothing when the program has no `at` rules."""
        cp, out = self.cp, self.out
        if not cp.converts:
            return
        lowest = min(rule.threshold for rule in cp.converts)
        out.line("led = st.ledger")
        out.line(f"if led.free + led._spendable_in_lots - led.owed >= {_lit(lowest)}:  # ``led.balance``, inline")
        with out.indent():
            if self._lane:
                self._convert_steps()  # (in place: one call fewer when the balance reaches a threshold)
            else:
                out.line("convert(st, now, ev, tally)")

    # ------------------------------------------------------------- step 6

    def _when_rules(self) -> None:
        cp, out = self.cp, self.out
        out.line("def when_rules(st, now, ev, tally):")
        with out.indent():
            out.line("granted_points = False")
            for rule in cp.when_rules:
                node = self._rule_node(rule)
                if node.options:
                    out.line(f"granted_points = P.when_rule(st, _ctx(st, now, ev), {self.const(rule)}, tally) "
                             "or granted_points")
                    continue
                out.line(f"active = {self.condition(node.condition)}")
                out.line(f"was = st.when_active[{rule.slot}]")
                out.line(f"st.when_active[{rule.slot}] = active")
                out.line("if active and not was:")
                with out.indent():
                    self._fire_simple(rule)
            out.line("return granted_points")
        out.line()

    def _fire_simple(self, rule: WhenRule | OnRule | StampRule) -> None:
        """Inline grant of a rule without `once` or a cap (the guard was already checked)."""
        out = self.out
        out.line(f"st.note_grant({rule.index}, now)")
        out.line("tally.changed = True")
        self._give(rule.target)
        if isinstance(rule.target, int):
            out.line("granted_points = True")

    # ------------------------------------------------------------ an event

    def _apply(self) -> None:
        out = self.out
        out.line("def apply(st, ev, tally):")
        with out.indent():
            out.line("at = now = ev.at")
            self._apply_steps()
        out.line()

    def _apply_steps(self) -> None:
        """``apply``'s body after it has read ``at`` and ``now`` (the lane's too: ``_lane``)."""
        cp, out = self.cp, self.out
        # step 1: the clock
        if not self._lane:  # (the lane has read it)
            out.line("clock = st.clock")
        out.line("if clock is None:")
        with out.indent():
            out.line("st.clock = at")
        out.line("elif at > clock:")
        with out.indent():
            out.line("nxt = st.next_change_at if st.next_change_clock == clock else next_change(st)")
            out.line("if nxt is not None and nxt <= at:")
            with out.indent():
                out.line("advance(st, at, tally)")
            out.line("else:")
            with out.indent():
                out.line("st.next_change_clock = None")
                self._leave_windows("at")
                out.line("st.clock = at")
        # step 2: facts
        out.line("if st.first_seen is None:")
        with out.indent():
            out.line("st.first_seen = at")
        out.line(f"if {self._ev('birthday')} is not None:")
        with out.indent():
            out.line(f"st.birthday = {self._ev('birthday')}")
        # Steps 2 to 6 written out once per event type the program names (the type is known in each
        # branch, so no step tests it again), and once for any other type.
        named = self._named_types()
        if not self._lane:  # (the lane has read it)
            out.line("kind = ev.type")
        for number, kind in enumerate(named):
            out.line(f"{'if' if number == 0 else 'elif'} kind == {_lit(kind)}:")
            with out.indent():
                self._event_steps(kind)
        if named:
            out.line("else:")
            with out.indent():
                self._event_steps(None)
        else:
            self._event_steps(None)
        self._shifted.clear()  # (its locals end with the function)

    def _share_purchase_shift(self) -> None:
        """A purchase's window exit and its points' expiry, when both are the same calendar-month shift of the
        purchase (``spend_12m`` and ``points expire after 12m``): worked out once, into ``leaves``."""
        cp, expiry = self.cp, self.cp.expire_after
        if expiry is None or expiry.unit in ("d", "w") or not (cp.per_rules.get("purchase") or
                                                              cp.fixed_rules.get("purchase")):
            return
        if any(spec.source == "purchase" and (spec.duration.amount, spec.duration.unit) == (expiry.amount, expiry.unit)
               for spec in cp.windows):
            self.out.line(f"leaves = {self.plus('at', expiry)}")
            self._shifted[("at", expiry.amount, expiry.unit)] = "leaves"

    def _named_types(self) -> list[str]:
        """The event types some step of ``apply`` treats in its own way (in a fixed order: purchases first)."""
        cp = self.cp
        named = {"purchase", "visit", "refund"} | set(cp.per_rules) | set(cp.fixed_rules)
        named |= {kind for kind in cp.on_rules if kind != "birthday"}
        named |= {rule.event_type for rule in cp.stamps}
        return sorted(named, key=lambda kind: (kind != "purchase", kind))

    def _event_steps(self, kind: str | None) -> None:
        """Steps 2 (the event's own facts) to 6 of ``apply`` for an event of type ``kind`` (None: a type the
        program names nowhere)."""
        cp, out = self.cp, self.out
        ts = cp.time_sources
        self._shifted.clear()
        if kind == "purchase":
            self._share_purchase_shift()
            out.line(f"amount = {self._ev('amount')}")
            out.line(f"index = len(st.purchases) // {PURCHASE_FIELDS}")
            out.line(f"st.purchases += ({self._ev('id')}, at, amount, 0, 0, 0, None)  # state.add_purchase")
            out.line("st.spend_total += amount")
        elif kind == "visit":
            out.line("st.visit_count += 1")
        if kind in ("purchase", "visit"):
            for spec in cp.windows:
                if spec.source == kind:
                    out.line(f"totals = st.windows[{spec.slot}]")
                    out.line("totals.count += 1")
                    if kind == "purchase":
                        out.line("totals.spend += amount")
                    plus_index = " + index + 1" if kind == "purchase" else ""  # (a visit's index: -1)
                    out.line(f"heappush(totals, ({self.plus('at', spec.duration)} << {EXIT_SHIFT})"
                             f"{plus_index})  # state.window_exit")
            if cp.tracks_activity:
                out.line("P._mark_active(st, at)")
        if cp.metrics:
            out.line("P.record_metrics(st, ev)")
        if kind == "refund":  # the interpreter's own step (a redeem never comes here: the engine interprets those)
            if self._lane:  # the lane's check found the purchase and what is left of it (``_lane_maker``)
                out.line("index = refund_index")
                out.line("amount = ev_amount if ev_amount is not None else left")
            else:
                out.line(f"index = st.purchase_index({self._ev('original')})")
                out.line(f"amount = {self._ev('amount')} if {self._ev('amount')} is not None "
                         "else st.purchase_net(index)")
            out.line("P.refund(st, index, amount, at, tally)")
        # step 3
        if kind in cp.per_rules or kind in cp.fixed_rules:
            self._earn(kind)
            out.line("if earned:")
            with out.indent():
                self._add_points("earned", "at", self._ev("id"), pending=kind == "purchase")
                if kind == "purchase":
                    # The purchase's record, appended in step 2 (the last PURCHASE_FIELDS values), with what it
                    # earned (state.set_purchase_points).
                    out.line(f"st.purchases[{POINTS - PURCHASE_FIELDS}] = earned")
        else:
            out.line("earned = 0")
        # step 4: stamp cards count first, then `at` rules convert (what a card grants converts there: the
        # ``granted_points`` its code sets is not read again)
        if cp.stamps:
            out.line("granted_points = False")
        for rule in cp.stamps:
            self._stamp(rule, kind)
        self._convert_step()
        # step 5
        if self._lane:
            self._status_steps()  # (in place: one call fewer per event)
        else:
            out.line("status(st, now, ev, tally)")
        # step 6: `on` rules of this event type, then `when` rules; points they grant convert
        on_rules = cp.on_rules.get(kind, ()) if kind is not None and kind != "birthday" else ()  # (a clock event)
        if on_rules or cp.when_rules:
            out.line("granted_points = False")
            for rule in on_rules:
                self._on_rule(rule)
            if cp.when_rules:
                out.line(f"granted_points = when_rules(st, now, {self._ev_for('when_rules')}, tally) or granted_points")
            out.line("if granted_points:")
            with out.indent():
                out.line(f"convert(st, now, {self._ev_for('convert')}, tally)")
        out.line("st.last_event_at = at")
        if kind == "purchase":
            out.line("st.last_purchase_at = at")
            if ts.reads_last_purchase:
                # settle: straight after a purchase, days_since_last_purchase is 0
                out.line("status(st, now, None, tally)")
                if cp.when_rules:
                    out.line("if when_rules(st, now, None, tally):")
                    with out.indent():
                        out.line("convert(st, now, None, tally)")
        if not self._lane:
            out.line("return earned")  # (the lane goes on to what the engine does after ``apply``)

    def _earn(self, kind: str) -> None:
        cp, out = self.cp, self.out
        self._period_keys(kind)
        out.line("per_total = 0")
        for rule in cp.per_rules.get(kind, ()):
            node = self._rule_node(rule)
            if not self._guard_simple(rule.guard, node) and not self._calendar_capped(rule.guard):
                out.line(f"per_total += P.earn_per(st, _ctx(st, now, ev), {self.const(rule)}, ev, tally)")
                continue
            with self._when(self._guard_test(rule.guard, node)):
                self._sum_items(rule)
                out.line(f"pts = {self._per_points(rule)}")
                if rule.guard.cap is not None:
                    self._calendar_cap_inline(rule.index, rule.guard.cap)
                out.line("if pts > 0:")
                with out.indent():
                    out.line("per_total += pts")
        out.line("total = per_total")
        if cp.multipliers:
            out.line("if per_total > 0:")
            with out.indent():
                if all(self._guard_simple(m.guard, self._rule_node(m)) for m in cp.multipliers):
                    # Whole factors (x2, x3) multiply as ints: their product is a whole number of points, which
                    # rounding (any mode) leaves as it is. A fraction among them (x1.5) goes through Decimal.
                    whole = all(m.factor == m.factor.to_integral_value() for m in cp.multipliers)
                    out.line("n = 1")
                    for mult in cp.multipliers:
                        out.line(f"if {self._guard_test(mult.guard, self._rule_node(mult))}:")
                        with out.indent():
                            out.line(f"n *= {_lit(int(mult.factor)) if whole else self.const(mult.factor)}")
                    out.line("if n != 1:")
                    with out.indent():
                        out.line("total = per_total * n" if whole else "total = P.cp.round(per_total * n)")
                else:
                    out.line("total = P.multiply(st, _ctx(st, now, ev), per_total, tally)")
        for fixed in cp.fixed_rules.get(kind, ()):
            node = self._rule_node(fixed)
            if not self._guard_simple(fixed.guard, node) and not self._calendar_capped(fixed.guard):
                out.line(f"total += P.earn_fixed(st, _ctx(st, now, ev), {self.const(fixed)}, tally)")
                continue
            out.line(f"if {self._guard_test(fixed.guard, node)}:")
            with out.indent():
                if fixed.guard.cap is not None:
                    out.line(f"pts = {_lit(fixed.points)}")
                    self._calendar_cap_inline(fixed.index, fixed.guard.cap)
                    out.line("if pts > 0:")
                    with out.indent():
                        out.line("total += pts")
                else:
                    out.line(f"total += {_lit(fixed.points)}")
        out.line("earned = total")

    def _sum_items(self, rule: PerRule) -> None:
        """For a rule that counts items (their money, or their quantity), a loop adding them up into ``base``
        (a loop in the function, not a ``sum`` over a generator: no generator to build per purchase)."""
        if rule.base not in ("money", "item") or (rule.base == "money" and rule.filter is None):
            return
        out = self.out
        term = "item.price * item.quantity" if rule.base == "money" else "item.quantity"
        out.line("base = 0")
        out.line(f"for item in {self._ev('items')}:")
        with out.indent():
            if rule.filter is None:
                out.line(f"base += {term}")
            else:
                kind, value = rule.filter
                out.line(f"if item.{kind} == {_lit(value)}:")
                with out.indent():
                    out.line(f"base += {term}")

    def _per_points(self, rule: PerRule) -> str:
        """Python for one per rule's points, in integer arithmetic (the interpreter does it in Decimal); a rule
        that counts items reads ``base``, which ``_sum_items`` wrote just before."""
        p, q = _ratio(rule.rate)
        if rule.base == "money":
            base = self._ev("amount") if rule.filter is None else "base"
            if rule.divisor is None:  # rate × amount, amount in micro-units
                return _rounded(f"{p} * {base}", q * money.SCALE, self.rounding)
            step = money.to_units(rule.divisor)
            return _rounded(f"{p} * ({base} // {step})", q, self.rounding)
        if rule.base == "item":
            return _rounded(f"{p} * base", q, self.rounding)
        points = _lit(int(rule.rate))
        if rule.base == "purchase" and rule.filter is not None:
            kind, value = rule.filter
            return f"({points} if any(item.{kind} == {_lit(value)} for item in {self._ev('items')}) else 0)"
        return points

    def _stamp(self, rule: StampRule, kind: str | None) -> None:
        """A stamp card's step 4 in the steps of an event of type ``kind``."""
        out = self.out
        node = self._rule_node(rule)
        if node.options:
            out.line(f"granted_points = P.stamp(st, _ctx(st, now, ev), {self.const(rule)}, ev, tally) "
                     "or granted_points")
            return
        if kind != rule.event_type:
            return  # (it counts events of its own type only)
        test = "True"
        if rule.filter is not None:
            field, value = rule.filter
            test = f"any(item.{field} == {_lit(value)} for item in {self._ev('items')})"
        with self._when(test):
            out.line(f"st.stamps[{rule.slot}] += 1")
            out.line(f"if st.stamps[{rule.slot}] % {_lit(rule.every)} == 0:")
            with out.indent():
                self._fire_simple(rule)

    def _on_rule(self, rule: OnRule) -> None:
        out = self.out
        node = self._rule_node(rule)
        if not self._guard_simple(rule.guard, node):
            out.line(f"granted_points = P._fire(st, _ctx(st, now, ev), {self.const(rule)}, "
                     f"{self.const(rule.guard)}, {self.const(rule.target)}, tally) or granted_points")
            return
        out.line(f"if {self._guard_test(rule.guard, node)}:")
        with out.indent():
            self._fire_simple(rule)


def generate(compiled: CompiledProgram) -> Generated:
    """Compiled program → the source of its specialised module, with its constants."""
    generator = _Generator(compiled)
    source = generator.module()
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    return Generated(source, tuple(generator.constants), tuple(generator.evaluators), digest)
