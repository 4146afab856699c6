"""The checked program: what the type checker hands to the compiler.

A ``CheckedProgram`` is the rule file after ``use`` modules are expanded and
every name is resolved and typed. Types of expression nodes live in the side
table ``types`` (keyed by node), never on the nodes themselves.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any, Mapping

import attrs

from poletti.dsl import ast, classes


class Type(enum.Enum):
    NUMBER = "Number"
    MONEY = "Money"
    POINTS = "Points"
    COUNT = "Count"
    DURATION = "Duration"
    DATE = "Date"
    BOOL = "Bool"
    TEXT = "Text"
    TIER = "Tier"
    REWARD = "Reward"
    SEGMENT = "Segment"
    # The type of an expression whose error was already reported: it combines
    # with anything, so one mistake produces one diagnostic, not a cascade.
    ERROR = "Error"

    def __str__(self) -> str:
        return self.value


# The words of `attribute x: TYPE` and `param x: TYPE`.
TYPE_NAMES: Mapping[str, Type] = {
    "number": Type.NUMBER,
    "money": Type.MONEY,
    "points": Type.POINTS,
    "count": Type.COUNT,
    "duration": Type.DURATION,
    "date": Type.DATE,
    "bool": Type.BOOL,
    "text": Type.TEXT,
    "reward": Type.REWARD,
    "tier": Type.TIER,
}

BUILTIN_EVENT_TYPES = frozenset(
    {"purchase", "visit", "signup", "review", "share", "feedback", "referral", "refund", "redeem"}
)
# `on birthday grant …` reacts to the customer's birthday, a clock event.
CLOCK_EVENT_TYPES = frozenset({"birthday"})


@classes.frozen
class RewardInfo:
    name: str
    label: str | None
    value: Decimal | None  # what one grant costs the business, in the program currency
    cost: int | None  # points to redeem it on request; None: not redeemable
    implicit: bool  # granted somewhere but never declared
    span: ast.Span
    # Wallet terms (issue 13): `value 10%` (then ``value`` is None: the worth depends on the purchase that
    # uses it), `max 20 EUR` caps it, `expires after 3m` ends a held reward at grant + W.
    percent: Decimal | None = None
    max_value: Decimal | None = None
    expires: ast.DurationLit | None = None


@classes.frozen
class PerkInfo:
    """``perk early_access "Early access" when tier >= vip``."""

    name: str
    label: str | None
    decl: ast.PerkDecl


@classes.frozen
class PartnerInfo:
    """``partner kulma "Kahvila Kulma" pays 0.02 EUR per point``: ``rate`` money per point."""

    name: str
    label: str | None
    rate: Decimal


@classes.frozen
class TierInfo:
    name: str
    rank: int  # 1 for the lowest tier; "no tier" is rank 0
    rule: ast.TierRule


@classes.frozen
class MetricInfo:
    """A user metric, with the checker's reading of its short forms."""

    name: str
    aggregate: str  # sum / count / max / min / avg
    field: str | None  # None for count of events
    event: str  # the event type it aggregates
    type: Type
    decl: ast.MetricDecl
    # The window; None for `over lifetime` (where decl.window is the name `lifetime`).
    window: ast.DurationLit | None = None


@classes.frozen(eq=False)
class CheckedProgram:
    """A rule file that passed the checker (possibly with warnings).

    ``statements`` are in file order with ``use`` modules expanded in place;
    declarations are also indexed by name below. ``types`` maps every
    expression node to its type. ``builtins`` maps a built-in quantity name
    used in the file (``spend_12m``) to its parsed meaning, for the compiler.
    """

    statements: tuple[ast.Statement, ...]
    title: str | None
    currency: str
    rounding: str
    timezone: str
    rewards: Mapping[str, RewardInfo]
    tiers: tuple[TierInfo, ...]  # ascending rank
    segments: Mapping[str, ast.SegmentDecl]
    metrics: Mapping[str, MetricInfo]
    attributes: Mapping[str, Type]
    event_types: frozenset[str]
    expire_after: ast.DurationLit | None
    pending_for: ast.DurationLit | None
    types: Mapping[Any, Type]
    builtins: Mapping[str, "BuiltinQuantity"]
    source_name: str | None = None
    # What each NameRef in an expression names: "builtin" (see ``builtins``),
    # "tier", "none" (no tier), "segment", "metric" or "reward".
    references: Mapping[Any, str] = attrs.field(factory=dict)
    # For statements that come from a `use`d module: the module line and the `use`.
    origins: Mapping[Any, Any] = attrs.field(factory=dict)
    # `point value 0.05 EUR`, in the program currency; None when the file does not declare one.
    point_value: Decimal | None = None
    # Issue 13: perks in file order, partners by name, and `rate SEK 0.087 EUR` as currency → value of one unit.
    perks: Mapping[str, PerkInfo] = attrs.field(factory=dict)
    partners: Mapping[str, PartnerInfo] = attrs.field(factory=dict)
    rates: Mapping[str, Decimal] = attrs.field(factory=dict)
    # `points pooled by account`: balance, lots, pending points and tier belong to the event's account.
    pooled: bool = False

    @property
    def rules(self) -> tuple[ast.Statement, ...]:
        """The statements that are rules (earn, at, every, tier, on, when, expire, pending)."""
        return tuple(s for s in self.statements if isinstance(s, RULE_TYPES))


RULE_TYPES = (
    ast.EarnRule, ast.ConvertRule, ast.StampRule, ast.TierRule, ast.OnRule, ast.WhenRule,
    ast.ExpireRule, ast.PendingRule, ast.ReferralRule, ast.PoolRule,
)


@classes.frozen
class BuiltinQuantity:
    """A built-in name resolved: ``spend_12m`` → kind "spend", window 12m.

    kind is one of: points, pending_points, lifetime_points, spend, purchases,
    visits, days_since_last_purchase, member_days, streak_days, streak_weeks,
    tier. ``window`` is None for quantities without one and for ``_lifetime``.
    """

    name: str
    kind: str
    window: ast.DurationLit | None
    type: Type
