"""Typed trace records: what processing one event (or a clock step) did, and why rules did not fire.

The processing steps emit these records — enums, numbers and the compiled
rule they concern, never prose — into a list when explanations are wanted;
with explain off no record is built at all. ``poletti.interpreter.explain``
is the one module that turns them into sentences.

Instants are integer microseconds since the epoch and money is integer
micro-units, as in the customer state.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar, Union

from poletti.dsl import classes
from poletti.engine.compiler import MultiplierRule, Rule, SegmentRule, TierRule


class Reason(enum.Enum):
    """Why a rule did not fire (or fired for less)."""

    CAMPAIGN_NOT_STARTED = "campaign-not-started"  # before its `during`
    CAMPAIGN_ENDED = "campaign-ended"  # after its `during`
    CONDITION_FALSE = "condition-false"  # `part`: the first false part of the `if`; `values`: what it read
    NO_MATCHING_ITEMS = "no-matching-items"  # an `on category`/`on sku` rule, and no such item
    NOT_A_FULL_UNIT = "not-a-full-unit"  # `per 10 EUR` and less than 10 EUR; `base`: the amount
    ROUNDS_TO_ZERO = "rounds-to-zero"  # `per EUR` × a small amount rounds to 0; `base`: the amount
    ZERO_POINTS = "zero-points"
    TIMES_LIMIT_REACHED = "times-limit-reached"  # `limit N times per …` used up
    POINTS_LIMIT_REACHED = "points-limit-reached"  # `limit N points per …` used up; `used`, `asked`
    ONCE = "once"  # `once`, granted before at `last`
    ONCE_PER_WINDOW = "once-per-window"  # `once per W`: granted at `last`, not again before `again`
    BALANCE_SHORT = "balance-short"  # an `at` rule: `needed`, `had`
    STAMP_COUNTED = "stamp-counted"  # a stamp without a grant: `count`; the next grant at stamp `next_at`


class Occasion(enum.Enum):
    """What made a grant rule fire."""

    TRIGGER = "grant"  # an `on` or `when` rule
    STAMP = "stamp"  # a stamp card's Nth stamp
    BIRTHDAY = "birthday"  # `on birthday`, at the start of the birthday


@classes.frozen
class Earned:
    """Points an earn rule gave in step 3 (``fixed``: an award on the event, never multiplied)."""

    kind: ClassVar[str] = "earn"
    at: int
    rule: Rule
    points: int
    fixed: bool = False


@classes.frozen
class Multiplied:
    """Multipliers scaled the spend-based points of a purchase from ``before`` to ``after``."""

    kind: ClassVar[str] = "multiplier"
    at: int
    rules: tuple[MultiplierRule, ...]
    before: int
    after: int


@classes.frozen
class Skipped:
    """A rule that did not fire, and why (the numbers ``reason`` needs; the rest stay None)."""

    kind: ClassVar[str] = "skip"
    at: int
    rule: Rule
    reason: Reason
    stamp: bool = False  # the rule is a stamp card that did not count this event
    part: int | None = None
    values: tuple[Any, ...] = ()
    base: int | None = None
    used: int | None = None
    asked: int | None = None
    needed: int | None = None
    had: int | None = None
    count: int | None = None
    next_at: int | None = None
    last: int | None = None
    again: int | None = None


@classes.frozen
class Capped:
    """An award cut by its rule's ``limit N points``: ``asked`` became ``granted`` (``used`` before)."""

    kind: ClassVar[str] = "cap"
    at: int
    rule: Rule
    asked: int
    granted: int
    used: int


@classes.frozen
class Converted:
    """An `at` rule turned ``count`` × ``points`` into as many of its target (a reward name, or points)."""

    kind: ClassVar[str] = "convert"
    at: int
    rule: Rule
    points: int
    target: str | int
    count: int = 1


@classes.frozen
class Granted:
    """A grant rule fired: an `on`/`when` rule, a stamp card (``count``-th stamp of ``every``), a birthday."""

    kind: ClassVar[str] = "grant"
    at: int
    rule: Rule
    target: str | int
    occasion: Occasion = Occasion.TRIGGER
    count: int | None = None
    every: int | None = None


@classes.frozen
class Redeemed:
    kind: ClassVar[str] = "redeem"
    at: int
    reward: str
    points: int


@classes.frozen
class Expired:
    """A lot's remaining ``points`` expired (``pending``: before they ever became spendable)."""

    kind: ClassVar[str] = "expire"
    at: int
    points: int
    earned_at: int
    source: str
    pending: bool


@classes.frozen
class Released:
    """Pending points became spendable."""

    kind: ClassVar[str] = "release"
    at: int
    points: int
    earned_at: int
    source: str


@classes.frozen
class Reversed:
    """A refund of ``refund`` on ``purchase`` (which earned ``purchase_points`` for ``purchase_amount``):
    ``refunded`` so far, so floor(P × refunded ÷ amount) = ``target`` reversed in all, ``points`` of them now."""

    kind: ClassVar[str] = "reverse"
    at: int
    points: int
    purchase: str
    refund: int
    purchase_points: int
    purchase_amount: int
    refunded: int
    target: int


@classes.frozen
class TierChanged:
    """The tier went from rank ``old`` to rank ``new`` (0: none); ``rule`` is the tier rule that decided it.

    ``kept``: the new tier holds only by its `keep`; ``keep_ended``: the old
    tier was lost because its keep ran out (else its condition stopped holding).
    """

    kind: ClassVar[str] = "tier"
    at: int
    old: int
    new: int
    rule: TierRule
    kept: bool = False
    keep_ended: bool = False


@classes.frozen
class TierKept:
    """The tier's condition stopped holding, and its `keep` holds it until ``until``."""

    kind: ClassVar[str] = "tier"
    at: int
    rule: TierRule
    until: int


@classes.frozen
class SegmentChanged:
    kind: ClassVar[str] = "segment"
    at: int
    segment: SegmentRule
    entered: bool


# ---------------------------------------------- wallets and partners (issue 13)


@classes.frozen
class RewardUsed:
    """A purchase used a held ``reward``, worth ``value`` (micro-units; None: the reward has no value).

    ``percent`` and ``capped``: a percentage value, and whether its ``max``
    cut it; ``granted_at``/``ends_at``: the held instance used (the one
    ending first), for rewards that expire.
    """

    kind: ClassVar[str] = "use"
    at: int
    reward: str
    value: int | None
    amount: int  # the purchase's amount, what a percentage is taken of
    percent: Any = None  # Decimal
    capped: bool = False
    granted_at: int | None = None
    ends_at: int | None = None


@classes.frozen
class RewardExpired:
    """A held ``reward`` granted at ``granted_at`` expired at ``at`` (its grant + ``expires after``)."""

    kind: ClassVar[str] = "reward-expire"
    at: int
    reward: str
    granted_at: int


@classes.frozen
class PartnerPoints:
    """Points earned (``earned``), reversed or redeemed at ``partner``; ``converted``: (currency, amount paid)."""

    kind: ClassVar[str] = "partner"
    at: int
    partner: str
    earned: int = 0
    reversed: int = 0
    redeemed: int = 0
    converted: tuple[str, int] | None = None  # the purchase's own currency and amount, before the rate


# -- referrals (interpreter/referrals.py)


@classes.frozen
class Referred:
    """A referral linked ``friend`` to ``referrer`` (recorded on the referrer's event)."""

    kind: ClassVar[str] = "referral"
    at: int
    referrer: str
    friend: str


@classes.frozen
class ReferralPaid:
    """A referral rule paid ``target`` to ``receiver`` ("referrer" or "friend") for ``friend``'s purchase at
    ``purchase_at``; ``at`` is when it was given (the referrer's own latest instant when they were already past
    the purchase, see docs/language.md "Referrals")."""

    kind: ClassVar[str] = "referral"
    at: int
    rule: Rule
    target: str | int
    receiver: str
    friend: str
    referrer: str
    purchase_at: int


Record = Union[Earned, Multiplied, Skipped, Capped, Converted, Granted, Redeemed, Expired, Released, Reversed,
               TierChanged, TierKept, SegmentChanged, RewardUsed, RewardExpired, PartnerPoints, Referred, ReferralPaid]

# Records that only explain (a rule that did not fire, an award cut): they change nothing.
EXPLANATIONS = (Skipped, Capped)
