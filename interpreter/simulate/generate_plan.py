"""What a program reads, as a plan for ``generate_history(program=…)``: program-driven histories.

``plan_for(program) -> HistoryPlan`` reads a compiled ``poletti.Program``
and says what a synthetic history for it must hold beyond the café
history: the program's currency and time zone, the event kinds its rules
read (``feedback``, ``referral``, each ``event NAME`` it declares, ``redeem``
of the rewards with ``costs``), the declared attributes with the event
kinds that carry them and the values to draw them from, and the categories
and SKUs its rules name (products are added to the catalogue for those the
café does not sell).

Where an attribute is read decides which events carry it: an ``if`` of an
``earn … per`` rule, a multiplier or a stamp card of purchases → purchases
(and visits for ``per visit`` / ``every … visits``); ``earn … on TYPE`` and
``on TYPE grant`` → TYPE; a metric ``sum of NAME of TYPE`` → TYPE. An
attribute declared but read nowhere rides on purchases.

Values follow the declared kind and the literals the rules compare the
attribute with, so that every branch of a condition is taken by some
events: a text is one of the texts compared with (plus one that matches
none), a number, amount or count spreads from 0 to half again above the
largest threshold (without one: 0–10, an amount 0–20 EUR at the currency's
price level) (a ``score``/``rating``/``stars`` number is a 1–5 grade
leaning high), a date falls around the dates compared with. Attributes of
kind ``duration``, ``tier`` and ``reward`` are left out: events cannot carry
them (the engine rejects such values). An attribute that a rule tests with
``is missing`` / ``is present`` is absent from some events.
"""

from __future__ import annotations

import math
import re
from datetime import date
from decimal import Decimal
from typing import Any, Iterator

import attrs

from poletti.dsl import ast, classes
from poletti.dsl.program import BUILTIN_EVENT_TYPES, Type

__all__ = ["AttributePlan", "HistoryPlan", "PRICE_SCALE", "plan_for"]

#: Rough price level of a café in each currency, relative to EUR, so that
#: `earn 1 point per 10 SEK` or `spend_12m > 10000 SEK` meet baskets of a
#: plausible size. Other currencies keep the EUR prices.
PRICE_SCALE: dict[str, Decimal] = {
    "EUR": Decimal(1), "USD": Decimal("1.1"), "GBP": Decimal("0.85"), "CHF": Decimal(1),
    "CAD": Decimal("1.5"), "AUD": Decimal("1.6"), "NZD": Decimal("1.8"), "SEK": Decimal(11),
    "NOK": Decimal(11), "DKK": Decimal("7.5"), "ISK": Decimal(150), "PLN": Decimal("4.3"),
    "CZK": Decimal(25), "HUF": Decimal(390), "JPY": Decimal(160), "KRW": Decimal(1450),
    "CNY": Decimal("7.8"), "INR": Decimal(90), "BRL": Decimal(6), "MXN": Decimal(20),
    "ZAR": Decimal(20), "SGD": Decimal("1.45"), "HKD": Decimal("8.5"), "TRY": Decimal(35),
}

#: Prices (before scaling) of the products added for a category the café does not sell.
NEW_CATEGORY_PRICES = (Decimal("4.50"), Decimal("7.90"), Decimal("12.00"))
#: Price (before scaling) of a product added for a SKU the café does not sell.
NEW_SKU_PRICE = Decimal("9.90")
NEW_SKU_CATEGORY = "other"

#: Event fields that are not attributes (an attribute of such a name is never generated).
CORE_FIELDS = frozenset({"id", "type", "customer", "at", "amount", "currency", "items", "original", "reward",
                         "birthday", "friend", "rewards_used"})
_GRADE_NAMES = re.compile(r"score|rating|stars|grade|nps|satisfaction")
_KNOWN_TEXTS = {"channel": ("app", "till", "web")}
_UNSUPPORTED = frozenset({Type.DURATION, Type.TIER, Type.REWARD})


@classes.frozen
class AttributePlan:
    """A declared attribute: its kind, the event kinds that carry it and what its values are drawn from."""

    name: str
    kind: Type
    events: frozenset[str]
    presence: float  # share of those events that carry it
    texts: tuple[str, ...] = ()  # TEXT: the values
    low: Decimal = Decimal(0)  # NUMBER, MONEY, COUNT, POINTS: the range
    high: Decimal = Decimal(10)
    whole: bool = True  # whole numbers only
    grade: bool = False  # a 1–5 grade leaning high
    dates: tuple[date, date] | None = None  # DATE: the range (None: up to a year before the event)


@classes.frozen(eq=False)
class HistoryPlan:
    program: Any  # poletti.Program
    currency: str
    timezone: str
    price_scale: Decimal
    new_products: tuple[tuple[str, str, Decimal], ...]  # (sku, category, unscaled price)
    categories: tuple[str, ...]  # named by the rules, in order of first mention
    skus: tuple[str, ...]
    feedback: bool
    referral: bool
    friend: bool  # referrals carry `friend`, the referred customer
    custom_events: tuple[str, ...]
    redeemable: tuple[tuple[str, int], ...]  # (reward, points it costs), cheapest first
    attributes: tuple[AttributePlan, ...]
    # Issue 13: the partners purchases may be made at, and whether purchases use held rewards (only for a
    # program that gives its rewards wallet terms: a history for any other program stays as it was).
    partners: tuple[str, ...] = ()
    uses_rewards: bool = False
    # `points pooled by account`: every event carries `account`, the company of three contacts in a row.
    account: bool = False

    @property
    def extra_columns(self) -> tuple[str, ...]:
        """Columns of a CSV or Parquet history beyond ``HISTORY_COLUMNS``."""
        issue13 = (("rewards_used",) if self.uses_rewards else ()) + (("partner",) if self.partners else ())
        return (("friend",) if self.friend else ()) + (("account",) if self.account else ()) + \
            tuple(a.name for a in self.attributes) + issue13

    @property
    def bool_columns(self) -> frozenset[str]:
        return frozenset(a.name for a in self.attributes if a.kind is Type.BOOL)

    def attributes_of(self, event_type: str) -> tuple[AttributePlan, ...]:
        return tuple(a for a in self.attributes if event_type in a.events)


def _nodes(node: Any) -> Iterator[Any]:
    """Every AST node under ``node`` (itself included), depth first."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (tuple, list)):
            stack.extend(reversed(current))
            continue
        if not attrs.has(type(current)):
            continue
        yield current
        for field in attrs.fields(type(current)):
            if field.name != "span":
                stack.append(getattr(current, field.name))


def _literal(node: Any) -> Any:
    if isinstance(node, ast.NumberLit):
        return node.value
    if isinstance(node, (ast.MoneyLit, ast.PointsLit)) and isinstance(node.amount, ast.NumberLit):
        return node.amount.value
    if isinstance(node, ast.TextLit):
        return node.value
    if isinstance(node, ast.DateLit):
        try:
            return date.fromisoformat(node.text)
        except ValueError:
            return None
    return None


def _contexts(statement: Any, per_visit: bool) -> frozenset[str]:
    """The event kinds whose processing evaluates this statement's ``if`` (empty: none)."""
    if isinstance(statement, ast.EarnRule):
        basis = statement.basis
        if isinstance(basis, ast.OnEvent):
            return frozenset({basis.event.name})
        if isinstance(basis, ast.PerUnit) and basis.unit == "visit":
            return frozenset({"visit"})
        if basis is None:  # a multiplier scales the per points of purchases (and visits)
            return frozenset({"purchase", "visit"} if per_visit else {"purchase"})
        return frozenset({"purchase"})
    if isinstance(statement, ast.StampRule):
        return frozenset({"visit" if statement.unit == "visits" else "purchase"})
    if isinstance(statement, ast.OnRule):
        return frozenset({statement.event.name})
    return frozenset()


def plan_for(program: Any) -> HistoryPlan:
    """The plan of a history for ``program`` (a ``poletti.Program``)."""
    from poletti.interpreter.simulate.generate import CATALOGUE

    checked = program.checked
    compiled = program.compiled
    declared = dict(checked.attributes)

    # Event kinds the rules react to.
    reads: set[str] = set(compiled.per_rules) | set(compiled.fixed_rules) | set(compiled.on_rules)
    reads |= {stamp.event_type for stamp in compiled.stamps}
    reads |= {metric.event_type for metric in compiled.metrics}
    if compiled.referrals:  # referral rules pay when a referred friend buys: the history needs referrals
        reads.add("referral")

    # Attributes: where they are read and what they are compared with.
    where: dict[str, set[str]] = {name: set() for name in declared}
    literals: dict[str, list[Any]] = {name: [] for name in declared}
    presence_tested: set[str] = set()
    per_visit = "visit" in compiled.per_rules
    for statement in checked.statements:
        contexts = _contexts(statement, per_visit) - {"birthday"}
        for node in _nodes(statement):
            if isinstance(node, ast.EventAttr) and node.name in where:
                where[node.name] |= contexts
            elif isinstance(node, ast.PresenceTest) and node.attribute.name in where:
                presence_tested.add(node.attribute.name)
            elif isinstance(node, ast.Compare):
                for side, other in ((node.left, node.right), (node.right, node.left)):
                    if isinstance(side, ast.EventAttr) and side.name in literals:
                        value = _literal(other)
                        if value is not None:
                            literals[side.name].append(value)
    for metric in checked.metrics.values():
        if metric.field in where:
            where[metric.field].add(metric.event)
    reads |= {kind for kinds in where.values() for kind in kinds}

    scale = PRICE_SCALE.get(checked.currency, Decimal(1))
    attributes = []
    for name, kind in declared.items():
        if kind in _UNSUPPORTED or name in CORE_FIELDS:
            continue
        events = frozenset(where[name] or {"purchase"})
        presence = 0.8 if name in presence_tested else 1.0
        attributes.append(_attribute(name, kind, events, presence, literals[name], scale))

    # Categories and SKUs the rules name.
    filters: list[tuple[str, str]] = []
    for rules in compiled.per_rules.values():
        filters.extend(rule.filter for rule in rules if rule.filter is not None)
    filters.extend(stamp.filter for stamp in compiled.stamps if stamp.filter is not None)
    filters.extend(metric.filter for metric in compiled.metrics if metric.filter is not None)
    categories = tuple(dict.fromkeys(value for kind, value in filters if kind == "category" and value))
    skus = tuple(dict.fromkeys(value for kind, value in filters if kind == "sku" and value))
    known_categories = {category for _sku, category, _price in CATALOGUE}
    known_skus = {sku for sku, _category, _price in CATALOGUE}
    new_products: list[tuple[str, str, Decimal]] = []
    taken = set(known_skus) | set(skus)
    for category in categories:
        if category in known_categories:
            continue
        stem = re.sub(r"[^a-z0-9]+", "-", category.lower()).strip("-") or "item"
        for n, price in enumerate(NEW_CATEGORY_PRICES, 1):
            sku = f"{stem}-{n}"
            while sku in taken:
                sku += "x"
            taken.add(sku)
            new_products.append((sku, category, price))
    new_products.extend((sku, NEW_SKU_CATEGORY, NEW_SKU_PRICE) for sku in skus if sku not in known_skus)

    redeemable = tuple(sorted(((name, cost) for name, (_value, cost) in compiled.rewards.items() if cost),
                              key=lambda pair: (pair[1], pair[0])))
    custom = tuple(sorted(checked.event_types - BUILTIN_EVENT_TYPES))
    return HistoryPlan(
        program=program, currency=checked.currency, timezone=checked.timezone,
        price_scale=scale,
        new_products=tuple(new_products), categories=categories, skus=skus,
        feedback="feedback" in reads, referral="referral" in reads,
        friend="referral" in reads and declared.get("friend", Type.TEXT) is Type.TEXT, custom_events=custom,
        redeemable=redeemable, attributes=tuple(attributes), account=compiled.pooled,
        partners=tuple(compiled.partners), uses_rewards=bool(compiled.wallet),
    )


def _attribute(name: str, kind: Type, events: frozenset[str], presence: float, literals: list[Any],
               scale: Decimal) -> AttributePlan:
    if kind is Type.BOOL:
        return AttributePlan(name, kind, events, presence)
    if kind is Type.TEXT:
        texts = [v for v in literals if isinstance(v, str)]
        texts.extend(_KNOWN_TEXTS.get(name, ()))
        texts = list(dict.fromkeys(texts))
        other = f"{name}_other" if texts else f"{name}_a"
        while other in texts:
            other += "_"
        if not texts:
            texts = [other, f"{name}_b"]
        else:
            texts.append(other)
        return AttributePlan(name, kind, events, presence, texts=tuple(texts))
    if kind is Type.DATE:
        dates = sorted(v for v in literals if isinstance(v, date))
        span = (date.fromordinal(max(1, dates[0].toordinal() - 60)),
                date.fromordinal(dates[-1].toordinal() + 60)) if dates else None
        return AttributePlan(name, kind, events, presence, dates=span)
    numbers = [v for v in literals if isinstance(v, Decimal)]
    whole = kind in (Type.COUNT, Type.POINTS) or all(v == v.to_integral_value() for v in numbers)
    if kind is Type.NUMBER and _GRADE_NAMES.search(name) and all(0 <= v <= 5 for v in numbers):
        return AttributePlan(name, kind, events, presence, low=Decimal(1), high=Decimal(5), whole=True, grade=True)
    if numbers:
        top = max(max(numbers), Decimal(1))
        high = top * Decimal("1.5")
        high = Decimal(math.ceil(high)) if whole else high.quantize(Decimal("0.01"))
        low = min(Decimal(0), min(numbers))
    elif kind is Type.MONEY:  # amounts of the size of a basket, in the program currency
        low, high, whole = Decimal(0), Decimal(20) * scale, scale >= 50
    else:
        low, high = Decimal(0), Decimal(10)
    if kind is Type.MONEY and numbers:
        whole = scale >= 50 and whole
    return AttributePlan(name, kind, events, presence, low=low, high=high, whole=whole)
