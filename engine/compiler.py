"""Compile a checked program into runnable rule objects.

``compile_program(checked) -> CompiledProgram``. Each rule becomes a small
object with its numbers, filters and conditions resolved into closures;
rules are grouped by the processing step and event type that runs them, so
the interpreter does no tree walking and no name lookups per event.
"""

from __future__ import annotations

import enum
import functools
import math
from datetime import timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Callable
from zoneinfo import ZoneInfo

import attrs

from poletti.dsl import ast, classes
from poletti.dsl.dependencies import source_text, status_order
from poletti.dsl.program import BuiltinQuantity, CheckedProgram
from poletti.engine.expressions import Ctx, Evaluator, ExpressionCompiler, WindowSpec, duration_of, literal_date
from poletti.engine.money import SCALE
from poletti.engine.timecalc import Duration, day_start_us

if TYPE_CHECKING:
    import networkx as nx

_ROUNDING = {"down": ROUND_FLOOR, "up": ROUND_CEILING, "nearest": ROUND_HALF_UP}


def make_rounder(mode: str) -> Callable[[Decimal], int]:
    how = _ROUNDING[mode]
    return lambda value: int(value.to_integral_value(rounding=how))


@classes.frozen
class Cap:
    """``limit N points|times per PERIOD``: a calendar period or a rolling window."""

    amount: int
    unit: str  # "points" or "times"
    period: str | None  # day/week/month/year
    window: Duration | None

    def describe(self) -> str:
        per = self.period or str(self.window)
        return f"limit {self.amount} {self.unit} per {per}"


class Blocked(enum.Enum):
    """Why a rule's options stop it from firing now (see ``Guard.check``)."""

    NOT_STARTED = "not-started"  # before its `during`
    ENDED = "ended"  # after its `during`
    CONDITION = "condition"  # its `if` is false


@classes.frozen
class ConditionPart:
    """One part of an ``and`` chain in an ``if``, for explanations: its text, its test and what it reads."""

    text: str
    test: Evaluator
    # (name as written, how to read it, how to show its value), for "spend_30d is 43.20 EUR".
    shown: tuple[tuple[str, Evaluator, Callable[[object], str]], ...]


@classes.frozen
class Guard:
    """The options every earn or grant rule may carry."""

    condition: Evaluator | None = None
    condition_text: str = ""
    during: tuple[int, int] | None = None  # [start, end) as instants (µs)
    during_text: str = ""
    cap: Cap | None = None
    once: bool = False
    once_window: Duration | None = None
    condition_parts: tuple[ConditionPart, ...] = ()  # the `if` as an and-chain (explanations only)

    def check(self, ctx: Ctx) -> Blocked | None:
        """Why the rule cannot fire now (campaign dates, then the condition), or None."""
        if self.during is not None:
            start, end = self.during
            if ctx.now < start:
                return Blocked.NOT_STARTED
            if ctx.now >= end:
                return Blocked.ENDED
        if self.condition is not None and not self.condition(ctx):
            return Blocked.CONDITION
        return None

    def failed_part(self, ctx: Ctx) -> tuple[int | None, tuple[object, ...]]:
        """The first false part of the condition and the values it reads (None when only the whole is false)."""
        for index, part in enumerate(self.condition_parts):
            if not part.test(ctx):
                return index, tuple(read(ctx) for _, read, _ in part.shown)
        return None, ()


@classes.frozen
class Rule:
    index: int  # position among the program's rules; keys cap usage and trigger memory
    line: int
    text: str  # the rule as written, for explain


@classes.frozen
class PerRule(Rule):
    """``earn R points per …``: spend-based or unit-based points, multiplied by multipliers."""

    rate: Decimal
    base: str  # "money", "purchase", "visit", "item"
    divisor: Decimal | None  # per N EUR: full units of N; None: proportional (per EUR)
    filter: tuple[str, str] | None  # ("category"|"sku", value)
    guard: Guard


@classes.frozen
class FixedRule(Rule):
    """``earn N points on TYPE``: a fixed award, never multiplied."""

    event_type: str
    points: int
    guard: Guard


@classes.frozen
class MultiplierRule(Rule):
    factor: Decimal
    guard: Guard


@classes.frozen
class ConvertRule(Rule):
    threshold: int
    target: str | int  # a reward name, or points
    guard: Guard


@classes.frozen
class StampRule(Rule):
    slot: int
    every: int
    event_type: str  # "purchase" or "visit"
    filter: tuple[str, str] | None
    target: str | int
    guard: Guard


@classes.frozen
class TierRule(Rule):
    rank: int
    name: str
    condition: Evaluator
    keep: Duration | None


@classes.frozen
class SegmentRule(Rule):
    slot: int
    name: str
    condition: Evaluator


# ----------------------------------------------- wallets, perks, partners (issue 13)


@classes.frozen
class WalletTerms:
    """How a held reward is worth and ends: ``value 10% max 20 EUR expires after 3m``."""

    percent: Decimal | None  # of the amount of the purchase that uses it; None: its fixed value (or none)
    max_units: int | None  # cap on a percentage value, in micro-units
    expires: Duration | None  # a held reward ends at grant + this


@classes.frozen
class PerkRule:
    """``perk early_access "Early access" when tier >= vip``: held while the condition holds."""

    name: str
    label: str | None
    line: int
    text: str  # the declaration as written, for explain
    condition: Evaluator
    parts: tuple[ConditionPart, ...]  # the condition as an and-chain, to say which part is false

    def failed_part(self, ctx: Ctx) -> tuple[int | None, tuple[object, ...]]:
        """The first false part of the condition and the values it reads (None when only the whole is false)."""
        for index, part in enumerate(self.parts):
            if not part.test(ctx):
                return index, tuple(read(ctx) for _, read, _ in part.shown)
        return None, ()


@classes.frozen
class OnRule(Rule):
    event_type: str
    target: str | int
    guard: Guard


@classes.frozen
class WhenRule(Rule):
    slot: int
    condition: Evaluator
    target: str | int
    guard: Guard


@classes.frozen
class ReferralRule(Rule):
    """``referral grant … to referrer|friend|both when friend buys``: paid at a referred friend's first
    purchase that passes the guard, once per friend; the cap counts per referrer (in the referrer's state)."""

    target: str | int
    side: str  # "referrer", "friend" or "both"
    guard: Guard

    @property
    def to_referrer(self) -> bool:
        return self.side != "friend"

    @property
    def to_friend(self) -> bool:
        return self.side != "referrer"


@classes.frozen
class MetricSpec:
    slot: int
    name: str
    event_type: str
    field: str | None  # None: count events
    filter: tuple[str, str] | None
    window: Duration | None


@classes.frozen
class WindowWatch:
    """While a rolling window's exits can change a time-driven condition (``TimeSources.watches``).

    A window's figures only fall as its entries leave (amounts are never
    negative, and a refund is taken off at once). So a comparison of the
    figure with a number, ``spend_12m > 1000``, once false, stays false
    until an event, and ``purchases_30d < 1``, once true, stays true: the
    clock need not stop at the exits after that (they change nothing), and
    a customer with nothing else to come is not scheduled at all. Each such
    comparison is true-or-false-for-good below a bound on the figure, in
    the window's own units (micro-units of money, or a count): an exit can
    change it only while the figure is at least the bound. ``always``: the
    window is read some other way (in arithmetic, against another quantity),
    and every exit may change something.
    """

    spend_from: int | None = None  # an exit matters while ``spend >= spend_from`` (None: no such comparison)
    count_from: int | None = None  # ... or while ``count >= count_from``
    always: bool = False

    def live(self, spend: int, count: int) -> bool:
        """Whether the window's next exit can change a condition, its figures being these."""
        return self.always or (self.spend_from is not None and spend >= self.spend_from) or (
            self.count_from is not None and count >= self.count_from)


@classes.frozen
class TimeSources:
    """What can change a customer's tiers, segments or `when` rules with no event.

    The clock schedules only these: windows whose edges move, day-count
    thresholds that can be crossed, streaks, birthdays, campaign edges.
    """

    windows: tuple[int, ...] = ()  # slots of the rolling windows such conditions read
    watches: tuple[WindowWatch, ...] = ()  # for each of ``windows``, in its order: when its exits matter
    metric_windows: tuple[int, ...] = ()  # slots of the windowed metrics they read
    # (kind, day counts at which a condition can change); kind is
    # days_since_last_purchase or member_days. `daily` kinds change every day.
    day_thresholds: tuple[tuple[str, tuple[int, ...]], ...] = ()
    daily: frozenset[str] = frozenset()
    streak_days: bool = False
    streak_weeks: bool = False
    campaign_edges: tuple[int, ...] = ()

    @property
    def reads_last_purchase(self) -> bool:
        """Whether a status or `when` condition reads days_since_last_purchase."""
        return "days_since_last_purchase" in self.daily or any(
            kind == "days_since_last_purchase" for kind, _ in self.day_thresholds)


@classes.frozen
class PointValue:
    """What one point is worth to the business, for reports: ``value`` (money) for every ``points`` points.

    Declared (``point value 0.05 EUR``: value 0.05, points 1, reward None) or
    derived from a reward (``reward gift value 2.50 EUR`` with ``at 50 points
    grant gift``: value 2.50, points 50, reward "gift"). Kept as the pair so
    that money computed from it (outstanding points × point value) is exact
    even when value ÷ points has no finite decimal (3.50 EUR for 30 points).
    """

    value: Decimal
    points: int
    reward: str | None  # None when declared

    @property
    def per_point(self) -> Decimal:
        """value ÷ points as a Decimal (exact when it has a finite decimal, else to 28 digits)."""
        return self.value / self.points

    @property
    def source(self) -> str:
        """"declared" or "derived from REWARD"."""
        return "declared" if self.reward is None else f"derived from {self.reward}"


def point_value_of(checked: CheckedProgram) -> PointValue | None:
    """The program's point value: declared, or the lowest value ÷ points among its rewards, or None.

    The rewards considered are those an ``at`` rule grants (value ÷ the
    rule's threshold) and those with ``costs`` (value ÷ cost), each with a
    declared value; the lowest ratio wins, the first in file order on a tie.
    None when the program declares none and no reward qualifies.
    """
    if checked.point_value is not None:
        return PointValue(checked.point_value, 1, None)
    candidates: list[PointValue] = []
    for rule in checked.rules:
        if isinstance(rule, ast.ConvertRule) and isinstance(rule.target, ast.Ident):
            info = checked.rewards.get(rule.target.name)
            if info is not None and info.value is not None:
                candidates.append(PointValue(info.value, int(_number(rule.threshold.amount)), info.name))
    for info in checked.rewards.values():
        if info.value is not None and info.cost is not None:
            candidates.append(PointValue(info.value, info.cost, info.name))
    best: PointValue | None = None
    for candidate in candidates:
        # candidate.value / candidate.points < best.value / best.points, without dividing
        if best is None or candidate.value * best.points < best.value * candidate.points:
            best = candidate
    return best


@classes.frozen(eq=False)
class CompiledProgram:
    checked: CheckedProgram
    tz: ZoneInfo
    round: Callable[[Decimal], int]
    per_rules: dict[str, tuple[PerRule, ...]]  # by event type
    fixed_rules: dict[str, tuple[FixedRule, ...]]
    multipliers: tuple[MultiplierRule, ...]
    converts: tuple[ConvertRule, ...]
    stamps: tuple[StampRule, ...]
    tiers: tuple[TierRule, ...]  # ascending rank
    segments: tuple[SegmentRule, ...]  # in dependency order
    # Step 5 in dependency order: segments the tiers may read, the tiers, then
    # segments that read the tier (directly or through other segments).
    segments_before_tiers: tuple[SegmentRule, ...]
    segments_after_tiers: tuple[SegmentRule, ...]
    on_rules: dict[str, tuple[OnRule, ...]]
    when_rules: tuple[WhenRule, ...]
    metrics: tuple[MetricSpec, ...]
    windows: tuple[WindowSpec, ...]  # the rolling windows rules read, by slot
    expire_after: Duration | None
    pending_for: Duration | None
    rewards: dict[str, tuple[Decimal | None, int | None]]  # name → (value, cost)
    tier_names: tuple[str | None, ...]  # by rank; rank 0 is None
    segment_names: tuple[str, ...]  # by slot
    time_sources: TimeSources
    tracks_activity: bool  # some rule reads streak_days or streak_weeks: keep the active days and weeks
    source: str | None = None  # the rule file's text, for the rule graph's labels
    point_value: PointValue | None = None  # declared or derived (``point_value_of``); None: unknown
    # Issue 13. ``wallet``: the rewards with a percentage value or an expiry (others are held by count);
    # ``partners``: name → money per point; ``rates``: currency → value of one unit in the program currency.
    wallet: dict[str, WalletTerms] = attrs.field(factory=dict)
    perks: tuple[PerkRule, ...] = ()
    partners: dict[str, Decimal] = attrs.field(factory=dict)
    rates: dict[str, Decimal] = attrs.field(factory=dict)
    # Referral rules (docs/language.md "Referrals"): they change two customers on one event, so the
    # per-customer fast paths (numpy kernels) do not take programs that have them.
    referrals: tuple[ReferralRule, ...] = ()
    # `points pooled by account` (interpreter/accounts.py): run by the interpreter, an event at a time.
    pooled: bool = False

    @functools.cached_property
    def expiring_rewards(self) -> bool:
        """Some held reward can expire: the clock must stop at its end (the interpreter's clock does)."""
        return any(terms.expires is not None for terms in self.wallet.values())

    @functools.cached_property
    def graph(self) -> nx.DiGraph:
        """The rule graph (engine/graph.py), built on first use: only tools need it, and it needs networkx."""
        return rule_graph(self.checked, self.source)

    def make_ctx(self, state: object, now: int, event: object) -> Ctx:
        return Ctx(state, now, event, self.tz)  # type: ignore[arg-type]


class _Builder:
    def __init__(self, checked: CheckedProgram, source_lines: list[str] | None) -> None:
        self.checked = checked
        self.tz = ZoneInfo(checked.timezone)
        self.lines = source_lines
        segment_names = list(checked.segments)
        self.exprs = ExpressionCompiler(
            checked,
            self.tz,
            segment_index={name: i for i, name in enumerate(segment_names)},
            metric_index={name: i for i, name in enumerate(checked.metrics)},
            tier_rank={**{t.name: t.rank for t in checked.tiers}, "none": 0},
        )

    def text_of(self, node: object) -> str:
        return source_text(self.lines, node)

    def condition_parts(self, condition: ast.Expr) -> tuple[ConditionPart, ...]:
        """The parts of an ``and`` chain, each with its text, test and the values it reads (for explain)."""
        parts: list[ast.Expr] = []
        pending = [condition]
        while pending:
            node = pending.pop()
            if isinstance(node, ast.AndOp):
                pending.extend((node.right, node.left))
            else:
                parts.append(node)
        return tuple(ConditionPart(self.text_of(part), self.exprs.compile(part), tuple(self._shown_values(part)))
                     for part in parts)

    def _shown_values(self, expr: ast.Expr) -> list[tuple[str, Evaluator, Callable[[object], str]]]:
        """The customer quantities and event attributes an expression reads, each with a formatter."""
        from poletti.dsl.parser import iter_nodes
        from poletti.dsl.program import Type

        shown: dict[str, tuple[str, Evaluator, Callable[[object], str]]] = {}
        tier_names = {t.rank: t.name for t in self.checked.tiers}
        currency = self.checked.currency
        for node in iter_nodes(expr):
            if isinstance(node, ast.NameRef):
                name = node.name
                if name in shown or not (name in self.checked.builtins or name in self.checked.metrics
                                         or name in self.checked.segments):
                    continue  # tier names and `none` are constants
            elif isinstance(node, ast.EventAttr):
                name = f"event.{node.name}"
                if name in shown:
                    continue
            else:
                continue
            kind = self.checked.types.get(node)
            if name in self.checked.segments:
                kind = Type.BOOL
            elif name in self.checked.builtins and self.checked.builtins[name].kind == "tier":
                kind = Type.TIER
            shown[name] = (name, self.exprs.compile(node), _value_formatter(kind, currency, tier_names))
        return list(shown.values())

    def guard(self, options: tuple[ast.RuleOption, ...]) -> Guard:
        fields: dict[str, object] = {}
        for option in options:
            if isinstance(option, ast.IfOption):
                fields["condition"] = self.exprs.compile(option.condition)
                fields["condition_text"] = self.text_of(option.condition)
                fields["condition_parts"] = self.condition_parts(option.condition)
            elif isinstance(option, ast.DuringOption):
                first = literal_date(option.start)
                last = literal_date(option.end) if option.end is not None else first
                fields["during"] = (day_start_us(first, self.tz), day_start_us(last + timedelta(days=1), self.tz))
                fields["during_text"] = f"{first.isoformat()}..{last.isoformat()}"
            elif isinstance(option, ast.LimitOption):
                amount = int(option.count.value) if isinstance(option.count, ast.NumberLit) else 0
                period = option.period
                fields["cap"] = Cap(
                    amount,
                    option.unit,
                    period if isinstance(period, str) else None,
                    duration_of(period) if isinstance(period, ast.DurationLit) else None,
                )
            elif isinstance(option, ast.OnceOption):
                fields["once"] = True
                if isinstance(option.window, ast.DurationLit):
                    fields["once_window"] = duration_of(option.window)
        return Guard(**fields)  # type: ignore[arg-type]


def _value_formatter(kind: object, currency: str, tier_names: dict[int, str]) -> Callable[[object], str]:
    """How explain shows a value of one type: 43.20 EUR, 43 points, gold, true."""
    from poletti.dsl.program import Type

    def show(value: object) -> str:
        if value is None:
            return "unknown"
        if kind is Type.TIER and isinstance(value, int):
            return tier_names.get(value, "none")
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, Decimal):
            if kind is Type.MONEY:
                cents = value.quantize(Decimal("0.01"))
                return f"{format(cents if cents == value else value, 'f')} {currency}"
            return format(round(value, 4).normalize(), "f")
        if kind is Type.POINTS and isinstance(value, int):
            return f"{value} point{'s' if value != 1 else ''}"
        return str(value)

    return show


def _number(node: ast.NumberLit | ast.NameRef) -> Decimal:
    if isinstance(node, ast.NumberLit):
        return node.value
    raise ValueError(f"module parameter {node.name!r} was not substituted")


def _target(node: ast.GrantTarget) -> str | int:
    if isinstance(node, ast.Ident):
        return node.name
    return int(_number(node.amount))


def _filter(item_filter: ast.ItemFilter | None) -> tuple[str, str] | None:
    if item_filter is None:
        return None
    value = item_filter.value.value if isinstance(item_filter.value, ast.TextLit) else item_filter.value.name
    return (item_filter.kind, value)


def rule_graph(checked: CheckedProgram, source: str | None = None) -> nx.DiGraph:
    """The rule graph (a networkx DiGraph), its rules labelled with their text in ``source``."""
    from poletti.engine.graph import build_graph

    lines = source.splitlines() if source is not None else None
    return build_graph(checked, lambda node: source_text(lines, node))


def compile_program(checked: CheckedProgram, source: str | None = None) -> CompiledProgram:
    """Checked program (and its source text, for explain) → compiled rules.

    Raises ``ValueError`` only for programs the checker should have
    rejected; dependency cycles are found by the checker (E127,
    dsl/dependencies.py). The rule graph is built on first use of
    ``CompiledProgram.graph``.
    """
    b = _Builder(checked, source.splitlines() if source is not None else None)
    per: dict[str, list[PerRule]] = {}
    fixed: dict[str, list[FixedRule]] = {}
    on_rules: dict[str, list[OnRule]] = {}
    multipliers: list[MultiplierRule] = []
    converts: list[ConvertRule] = []
    stamps: list[StampRule] = []
    whens: list[WhenRule] = []
    referrals: list[ReferralRule] = []
    tier_rules: dict[str, ast.TierRule] = {t.name: t.rule for t in checked.tiers}
    time_exprs: list[ast.Expr] = []
    campaign_edges: list[int] = []

    for index, rule in enumerate(checked.rules):
        line, text = rule.span.line, b.text_of(rule)
        if isinstance(rule, ast.EarnRule):
            guard = b.guard(rule.options)
            if isinstance(rule.amount, ast.Multiplier):
                multipliers.append(MultiplierRule(index, line, text, rule.amount.factor, guard))
                continue
            points = _number(rule.amount.amount)
            basis = rule.basis
            if isinstance(basis, ast.OnEvent):
                fixed.setdefault(basis.event.name, []).append(
                    FixedRule(index, line, text, basis.event.name, int(points), guard))
            elif isinstance(basis, ast.PerCurrency):
                per.setdefault("purchase", []).append(
                    PerRule(index, line, text, points, "money", None, _filter(basis.filter), guard))
            elif isinstance(basis, ast.PerMoney):
                per.setdefault("purchase", []).append(
                    PerRule(index, line, text, points, "money", _number(basis.money.amount), _filter(basis.filter), guard))
            elif isinstance(basis, ast.PerUnit):
                event_type = "visit" if basis.unit == "visit" else "purchase"
                per.setdefault(event_type, []).append(
                    PerRule(index, line, text, points, basis.unit, None, _filter(basis.filter), guard))
            else:  # `earn N points` with no basis: a fixed award on every purchase
                fixed.setdefault("purchase", []).append(FixedRule(index, line, text, "purchase", int(points), guard))
        elif isinstance(rule, ast.ConvertRule):
            threshold = int(_number(rule.threshold.amount))
            converts.append(ConvertRule(index, line, text, threshold, _target(rule.target), b.guard(rule.options)))
        elif isinstance(rule, ast.StampRule):
            stamps.append(StampRule(
                index, line, text, len(stamps), int(_number(rule.count)),
                "visit" if rule.unit == "visits" else "purchase", _filter(rule.filter),
                _target(rule.target), b.guard(rule.options)))
        elif isinstance(rule, ast.OnRule):
            on_rules.setdefault(rule.event.name, []).append(
                OnRule(index, line, text, rule.event.name, _target(rule.target), b.guard(rule.options)))
        elif isinstance(rule, ast.ReferralRule):
            referrals.append(ReferralRule(index, line, text, _target(rule.target), rule.side, b.guard(rule.options)))
        elif isinstance(rule, ast.WhenRule):
            guard = b.guard(rule.options)
            whens.append(WhenRule(index, line, text, len(whens), b.exprs.compile(rule.condition), _target(rule.target), guard))
            time_exprs.append(rule.condition)
            time_exprs.extend(o.condition for o in rule.options if isinstance(o, ast.IfOption))
            if guard.during is not None:
                campaign_edges.extend(guard.during)

    # Each tier rule's index among the rules, found by identity (rules are compared structurally, and
    # `checked.rules` is built on each use: an index() per tier would be quadratic).
    rule_index = {id(rule): index for index, rule in enumerate(checked.rules)}
    tiers = tuple(
        TierRule(
            rule_index[id(info.rule)], info.rule.span.line, b.text_of(info.rule), info.rank, info.name,
            b.exprs.compile(info.rule.condition),
            duration_of(info.rule.keep) if isinstance(info.rule.keep, ast.DurationLit) else None,
        )
        for info in checked.tiers
    )
    time_exprs.extend(rule.condition for rule in tier_rules.values())

    segment_slots = {name: i for i, name in enumerate(checked.segments)}

    def segment_rule(name: str) -> SegmentRule:
        decl = checked.segments[name]
        return SegmentRule(-1, decl.span.line, b.text_of(decl), segment_slots[name], name,
                           b.exprs.compile(decl.condition))

    before_names, after_names = status_order(checked)
    segments_before = tuple(segment_rule(name) for name in before_names)
    segments_after = tuple(segment_rule(name) for name in after_names)
    time_exprs.extend(decl.condition for decl in checked.segments.values())

    metrics = tuple(
        MetricSpec(i, name, info.event, info.field, _filter(info.decl.filter),
                   duration_of(info.decl.window) if isinstance(info.decl.window, ast.DurationLit) else None)
        for i, (name, info) in enumerate(checked.metrics.items())
    )

    perks = tuple(PerkRule(info.name, info.label, info.decl.span.line, b.text_of(info.decl),
                           b.exprs.compile(info.decl.condition), b.condition_parts(info.decl.condition))
                  for info in checked.perks.values())
    # A perk is read off the standing at the customer's clock: what its condition reads must move the clock
    # (a purchase leaving spend_30d), or a customer with nothing else due would keep a perk they lost.
    time_exprs.extend(info.decl.condition for info in checked.perks.values())

    # Before the program is built: finding the time sources may add windows.
    time_sources = _time_sources(checked, time_exprs, metrics, campaign_edges, b.exprs)
    return CompiledProgram(
        checked=checked,
        tz=b.tz,
        round=make_rounder(checked.rounding),
        per_rules={k: tuple(v) for k, v in per.items()},
        fixed_rules={k: tuple(v) for k, v in fixed.items()},
        multipliers=tuple(multipliers),
        converts=tuple(converts),
        stamps=tuple(stamps),
        tiers=tiers,
        segments=segments_before + segments_after,
        segments_before_tiers=segments_before,
        segments_after_tiers=segments_after,
        on_rules={k: tuple(v) for k, v in on_rules.items()},
        when_rules=tuple(whens),
        metrics=metrics,
        expire_after=duration_of(checked.expire_after) if checked.expire_after else None,
        pending_for=duration_of(checked.pending_for) if checked.pending_for else None,
        rewards={name: (info.value, info.cost) for name, info in checked.rewards.items()},
        tier_names=(None, *(t.name for t in checked.tiers)),
        segment_names=tuple(checked.segments),
        time_sources=time_sources,
        tracks_activity=any(q.kind in ("streak_days", "streak_weeks") for q in checked.builtins.values()),
        windows=tuple(b.exprs.windows),
        source=source,
        point_value=point_value_of(checked),
        wallet=_wallet_terms(checked),
        perks=perks,
        partners={name: info.rate for name, info in checked.partners.items()},
        rates=dict(checked.rates),
        referrals=tuple(referrals),
        pooled=checked.pooled,
    )


def _wallet_terms(checked: CheckedProgram) -> dict[str, WalletTerms]:
    """The rewards whose worth or life the wallet must know (a percentage value, a cap, an expiry)."""
    from poletti.engine.money import to_units

    return {
        name: WalletTerms(info.percent, None if info.max_value is None else to_units(info.max_value),
                          duration_of(info.expires) if info.expires is not None else None)
        for name, info in checked.rewards.items()
        if info.percent is not None or info.expires is not None
    }


def _time_sources(checked: CheckedProgram, exprs: list[ast.Expr], metrics: tuple[MetricSpec, ...],
                  campaign_edges: list[int], compiler: ExpressionCompiler) -> TimeSources:
    """Find what in the time-driven conditions can change as time passes."""
    windows: set[int] = set()
    bounds: dict[int, dict[str, int]] = {}  # slot → figure → least bound of its comparisons (WindowWatch)
    read_otherwise: set[int] = set()  # slots read other than in such a comparison
    metric_windows: set[int] = set()
    thresholds: dict[str, set[int]] = {}
    daily: set[str] = set()
    streak_days = streak_weeks = False
    metric_slot = {m.name: m for m in metrics}
    pending = list(exprs)
    seen_segments: set[str] = set()
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Compare):
            atom = _window_comparison(checked, node, compiler, metric_slot)
            if atom is not None:
                slot, figure, bound = atom
                windows.add(slot)
                least = bounds.setdefault(slot, {})
                least[figure] = min(bound, least.get(figure, bound))
                continue
            for mine, other in ((node.left, node.right), (node.right, node.left)):
                quantity = _day_quantity(checked, mine)
                if quantity and isinstance(other, ast.NumberLit):
                    k = int(other.value.to_integral_value(rounding=ROUND_FLOOR))
                    thresholds.setdefault(quantity, set()).update({k, k + 1})
                    pending.append(other)
                    break
            else:
                pending.extend((node.left, node.right))
            continue
        if isinstance(node, ast.NameRef):
            name = node.name
            if name in checked.segments and name not in seen_segments:
                seen_segments.add(name)  # a segment read by a tier reads its own quantities too
                pending.append(checked.segments[name].condition)
            elif name in metric_slot and metric_slot[name].window is not None:
                spec = metric_slot[name]
                metric_windows.add(spec.slot)
            elif name in checked.builtins:
                quantity = checked.builtins[name]
                slot = _rolling_slot(quantity, compiler)
                if slot is not None:
                    windows.add(slot)
                    read_otherwise.add(slot)  # (not in a comparison with a number: every exit may matter)
                elif quantity.kind in ("days_since_last_purchase", "member_days"):
                    daily.add(quantity.kind)  # used outside a simple comparison
                elif quantity.kind == "streak_days":
                    streak_days = True
                elif quantity.kind == "streak_weeks":
                    streak_weeks = True
            continue
        for field in attrs.fields(type(node)):
            value = getattr(node, field.name)
            if attrs.has(type(value)) and field.name != "span":
                pending.append(value)
    watches = tuple(WindowWatch(always=True) if slot in read_otherwise
                    else WindowWatch(bounds[slot].get("spend"), bounds[slot].get("count")) for slot in sorted(windows))
    return TimeSources(
        windows=tuple(sorted(windows)),
        watches=watches,
        metric_windows=tuple(sorted(metric_windows)),
        day_thresholds=tuple(sorted((k, tuple(sorted(v))) for k, v in thresholds.items() if k not in daily)),
        daily=frozenset(daily),
        streak_days=streak_days,
        streak_weeks=streak_weeks,
        campaign_edges=tuple(sorted(set(campaign_edges))),
    )


def _rolling_slot(quantity: BuiltinQuantity, compiler: ExpressionCompiler) -> int | None:
    """The slot of the rolling window a built-in quantity reads (``spend_12m``, ``visits_30d``), or None."""
    if quantity.window is None or quantity.kind not in ("spend", "purchases", "visits"):
        return None
    return compiler.window_slot("visit" if quantity.kind == "visits" else "purchase", duration_of(quantity.window))


_MIRRORED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}


def _window_comparison(checked: CheckedProgram, node: ast.Compare, compiler: ExpressionCompiler,
                       metric_slot: dict[str, MetricSpec]) -> tuple[int, str, int] | None:
    """``spend_12m > 1000`` or ``2 <= visits_30d`` (a rolling window's figure against a number): the window's slot,
    the figure ("spend" or "count") and ``_exit_bound``; None for any other comparison."""
    for mine, other, op in ((node.left, node.right, node.op), (node.right, node.left, _MIRRORED[node.op])):
        if not isinstance(mine, ast.NameRef) or mine.name in metric_slot or mine.name not in checked.builtins:
            continue
        quantity = checked.builtins[mine.name]
        slot = _rolling_slot(quantity, compiler)
        if slot is None:
            continue
        if isinstance(other, ast.MoneyLit):
            other = other.amount
        if not isinstance(other, ast.NumberLit):
            return None
        figure = "spend" if quantity.kind == "spend" else "count"
        return slot, figure, _exit_bound(op, other.value, SCALE if figure == "spend" else 1)
    return None


def _exit_bound(op: str, number: Decimal, scale: int) -> int:
    """The least figure, in units (``number`` × ``scale``), at which ``figure OP number`` can still change as the
    figure falls (``WindowWatch``): above ``number`` for > and <= (their truth changes when the figure drops to it),
    at it for the others (>= and < change when it drops below it, == and != when it reaches it or leaves it).
    (The checker bounds numbers in rules: at most 10^12, with at most 6 decimal places.)"""
    exact = Fraction(number) * scale
    return math.floor(exact) + 1 if op in (">", "<=") else math.ceil(exact)


def _day_quantity(checked: CheckedProgram, node: ast.Expr) -> str | None:
    if isinstance(node, ast.NameRef) and node.name in checked.builtins:
        quantity: BuiltinQuantity = checked.builtins[node.name]
        if quantity.kind in ("days_since_last_purchase", "member_days"):
            return quantity.kind
    return None
