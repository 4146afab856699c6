"""The abstract syntax tree of a rule file.

One frozen attrs class per grammar production, each with a ``span``. Nodes
carry no behaviour: the checker, formatter and compiler are passes over them,
and what a pass learns (types, resolved names) lives in side tables keyed by
node, not on the nodes.

Numbers are kept as ``Decimal`` exactly as written (``3.50`` stays ``3.50``)
so the formatter can print them back unchanged; dates are kept as their text
so that an impossible date such as ``2026-02-30`` still reaches the checker,
which reports it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Union

from poletti.dsl import classes


@classes.frozen
class Span:
    """Where a node stands in its file: 1-based line and column, and offsets."""

    line: int
    column: int
    end_line: int
    end_column: int
    start: int
    end: int


# An invisible span for nodes made by passes (e.g. module expansion defaults).
NO_SPAN = Span(0, 0, 0, 0, 0, 0)


@classes.frozen
class Ident:
    """A name as written at one place: a declaration or a reference."""

    name: str
    span: Span


# ------------------------------------------------------------------ expressions


@classes.frozen
class NumberLit:
    value: Decimal
    span: Span


@classes.frozen
class NameRef:
    """A bare name in an expression or in a literal's amount slot (a module parameter)."""

    name: str
    span: Span


@classes.frozen
class MoneyLit:
    amount: NumberLit | NameRef
    currency: str
    span: Span


@classes.frozen
class PointsLit:
    amount: NumberLit | NameRef
    span: Span


@classes.frozen
class DurationLit:
    """``30d`` ``12w`` ``12m`` ``1y``: unit d/w/m/y (days, weeks, calendar months, years)."""

    amount: int
    unit: str
    span: Span


@classes.frozen
class DateLit:
    text: str
    span: Span


@classes.frozen
class TextLit:
    value: str
    span: Span


@classes.frozen
class BoolLit:
    value: bool
    span: Span


@classes.frozen
class EventAttr:
    """``event.channel``: an attribute of the event being processed."""

    name: str
    span: Span


@classes.frozen
class AccountQuantity:
    """``account.spend_12m``: a built-in quantity over the events of every contact of the event's account."""

    name: str
    span: Span


@classes.frozen
class PresenceTest:
    """``event.channel is missing`` / ``event.channel is present``."""

    attribute: EventAttr
    present: bool
    span: Span


@classes.frozen
class Compare:
    op: str  # one of > >= < <= == !=
    left: Expr
    right: Expr
    span: Span


@classes.frozen
class BinaryOp:
    op: str  # one of + - * /
    left: Expr
    right: Expr
    span: Span


@classes.frozen
class AndOp:
    left: Expr
    right: Expr
    span: Span


@classes.frozen
class OrOp:
    left: Expr
    right: Expr
    span: Span


@classes.frozen
class NotOp:
    operand: Expr
    span: Span


Expr = Union[
    NumberLit, NameRef, MoneyLit, PointsLit, DurationLit, DateLit, TextLit, BoolLit,
    EventAttr, PresenceTest, Compare, BinaryOp, AndOp, OrOp, NotOp, AccountQuantity,
]
Window = Union[DurationLit, NameRef]
Count = Union[NumberLit, NameRef]

# ------------------------------------------------------------------ rule parts


@classes.frozen
class ItemFilter:
    """``on category "beans"`` / ``on sku "esp-250"``."""

    kind: str  # "category" or "sku"
    value: TextLit | NameRef
    span: Span


@classes.frozen
class Multiplier:
    """``x2`` in ``earn x2 if tier >= gold``."""

    factor: Decimal
    span: Span


@classes.frozen
class PerCurrency:
    """``per EUR``: points for every currency unit of the amount."""

    currency: str
    filter: ItemFilter | None
    span: Span


@classes.frozen
class PerMoney:
    """``per 10 EUR``: points for every full 10 EUR."""

    money: MoneyLit
    filter: ItemFilter | None
    span: Span


@classes.frozen
class PerUnit:
    """``per purchase`` / ``per visit`` / ``per item``."""

    unit: str
    filter: ItemFilter | None
    span: Span


@classes.frozen
class OnEvent:
    """``on signup``: a fixed award for each event of a type."""

    event: Ident
    span: Span


EarnBasis = Union[PerCurrency, PerMoney, PerUnit, OnEvent]
GrantTarget = Union[Ident, PointsLit]


@classes.frozen
class IfOption:
    condition: Expr
    span: Span


@classes.frozen
class DuringOption:
    """``during 2026-12-01..2026-12-24``, inclusive calendar dates; one date means one day."""

    start: DateLit
    end: DateLit | None
    span: Span


@classes.frozen
class LimitOption:
    """``limit 500 points per day`` / ``limit 3 times per 30d``."""

    count: Count
    unit: str  # "points" or "times"
    period: str | DurationLit | NameRef  # day/week/month/year, or a rolling window
    span: Span


@classes.frozen
class OnceOption:
    """``once`` (ever) or ``once per 12m``."""

    window: Window | None
    span: Span


RuleOption = Union[IfOption, DuringOption, LimitOption, OnceOption]

# ----------------------------------------------------------------- declarations


@classes.frozen
class ProgramDecl:
    title: str
    span: Span


@classes.frozen
class CurrencyDecl:
    code: str
    span: Span


@classes.frozen
class RoundingDecl:
    mode: str  # down / nearest / up
    span: Span


@classes.frozen
class TimezoneDecl:
    zone: str
    span: Span


@classes.frozen
class PointValueDecl:
    """``point value 0.05 EUR``: what one point is worth to the business, for reports."""

    money: MoneyLit
    span: Span


@classes.frozen
class RewardValue:
    money: MoneyLit
    span: Span


@classes.frozen
class RewardCost:
    points: PointsLit
    span: Span


# ---- wallet terms of a reward (issue 13): `value 10%`, `max 20 EUR`, `expires after 3m`


@classes.frozen
class RewardPercent:
    """``value 10%``: the reward is worth this share of the purchase that uses it (the number as written)."""

    percent: Decimal
    span: Span


@classes.frozen
class RewardMax:
    """``max 20 EUR``: a cap on a percentage value."""

    money: MoneyLit
    span: Span


@classes.frozen
class RewardExpiry:
    """``expires after 3m``: a held reward ends at the instant grant + W."""

    window: Window
    span: Span


RewardPart = Union[RewardValue, RewardCost, RewardPercent, RewardMax, RewardExpiry]


@classes.frozen
class RewardDecl:
    """``reward free_drink "Free drink" value 3.50 EUR costs 50 points``."""

    name: Ident
    label: str | None
    parts: tuple[RewardPart, ...]
    span: Span


@classes.frozen
class SegmentDecl:
    name: Ident
    condition: Expr
    span: Span


@classes.frozen
class MetricDecl:
    """``metric beans_30d = sum of amount of purchase on category "beans" over 30d``.

    ``field`` is None in the short forms ``count of review over 90d`` (count
    events of a type) and ``max of amount over 12m`` (a field of purchases):
    which of the two the single name is, the checker decides.
    """

    name: Ident
    aggregate: str
    field: Ident | None
    event: Ident
    filter: ItemFilter | None
    window: Window
    span: Span


@classes.frozen
class AttributeDecl:
    """``attribute channel: text``: a custom event attribute and its type."""

    name: Ident
    type_name: str
    span: Span


@classes.frozen
class EventDecl:
    """``event checkin``: a custom event type."""

    name: Ident
    span: Span


@classes.frozen
class ParamDecl:
    """``param every: count = 10``: a parameter of a stdlib module."""

    name: Ident
    type_name: str
    default: Expr | None
    span: Span


@classes.frozen
class UseArg:
    name: Ident
    value: Expr
    span: Span


@classes.frozen
class UseDecl:
    """``use stamp_card with every = 10, reward = free_coffee``."""

    module: Ident
    args: tuple[UseArg, ...]
    span: Span


# ------------------------------------------------------------------------ rules


@classes.frozen
class EarnRule:
    amount: PointsLit | Multiplier
    basis: EarnBasis | None
    options: tuple[RuleOption, ...]
    span: Span


@classes.frozen
class ConvertRule:
    """``at 50 points grant free_drink``."""

    threshold: PointsLit
    target: GrantTarget
    options: tuple[RuleOption, ...]
    span: Span


@classes.frozen
class StampRule:
    """``every 10 purchases on category "coffee" grant free_coffee``."""

    count: Count
    unit: str  # "purchases" or "visits"
    filter: ItemFilter | None
    target: GrantTarget
    options: tuple[RuleOption, ...]
    span: Span


@classes.frozen
class TierRule:
    name: Ident
    condition: Expr
    keep: Window | None
    span: Span


@classes.frozen
class OnRule:
    """``on review grant thank_you``."""

    event: Ident
    target: GrantTarget
    options: tuple[RuleOption, ...]
    span: Span


@classes.frozen
class WhenRule:
    """``when spend_lifetime > 5000 grant vip_gift once``."""

    condition: Expr
    target: GrantTarget
    options: tuple[RuleOption, ...]
    span: Span


@classes.frozen
class ReferralRule:
    """``referral grant ten_off to both when friend buys if event.amount >= 20 EUR limit 5 times per year``.

    Pays at a referred friend's first purchase that passes the options, once
    per friend; ``side`` is who receives it: "referrer", "friend" or "both".
    """

    target: GrantTarget
    side: str
    options: tuple[RuleOption, ...]
    span: Span


@classes.frozen
class PoolRule:
    """``points pooled by account``: balance, lots, pending points and tier belong to the event's account."""

    span: Span


@classes.frozen
class ExpireRule:
    window: Window
    span: Span


@classes.frozen
class PendingRule:
    window: Window
    span: Span


# ------------------------------------------------- perks and partners (issue 13)


@classes.frozen
class PerkDecl:
    """``perk early_access "Early access" when tier >= vip``: held while the condition holds."""

    name: Ident
    label: str | None
    condition: Expr
    span: Span


@classes.frozen
class PartnerDecl:
    """``partner kulma "Kahvila Kulma" pays 0.02 EUR per point``."""

    name: Ident
    label: str | None
    rate: MoneyLit  # what the partner pays per point earned with it (and is paid per point redeemed)
    span: Span


@classes.frozen
class RateDecl:
    """``rate SEK 0.087 EUR``: one unit of ``currency`` is worth ``value`` in the program currency."""

    currency: str
    value: MoneyLit
    span: Span


Statement = Union[
    ProgramDecl, CurrencyDecl, RoundingDecl, TimezoneDecl, PointValueDecl, RewardDecl, SegmentDecl,
    MetricDecl, AttributeDecl, EventDecl, ParamDecl, UseDecl,
    EarnRule, ConvertRule, StampRule, TierRule, OnRule, WhenRule, ExpireRule, PendingRule, ReferralRule, PoolRule,
    PerkDecl, PartnerDecl, RateDecl,
]


@classes.frozen
class Comment:
    """A ``#`` comment; kept beside the tree so the formatter can put it back."""

    text: str  # including the leading '#'
    span: Span


@classes.frozen
class RuleFile:
    """A whole parsed file: its statements in file order."""

    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...]
    span: Span
