"""Synthetic purchase histories of a café loyalty program, for examples, tests and benchmarks.

``generate_history(customers, days, seed, start) -> Iterator[dict]`` yields
event dicts in the shape ``poletti.Engine.process`` takes, in time order,
streamed: each customer's timeline is generated lazily and the timelines
are merged with a heap, so memory holds only the customers active at the
moment, never the history.

The same arguments always give the same events, on any machine: every draw
comes from ``random.Random`` instances seeded from ``seed`` (one for the
arrivals, one per customer, so one customer's draws never depend on how the
timelines interleave); nothing reads the clock or the global generator.

The model, with the parameters the tests rely on:

* **Arrivals.** ``customers`` customers sign up during the history:
  ``LAUNCH_SHARE`` of them in the first ``LAUNCH_DAYS`` days (the program's
  launch), the rest uniformly over the whole history. Each starts with a
  ``signup``; ``BIRTHDAY_SHARE`` of signups carry a birthday. With
  probability ``FIRST_PURCHASE_AT_SIGNUP`` a customer who signs up while
  the café is open buys straight away (members join at the till).
* **Heterogeneity.** A customer's purchase rate (purchases per week in an
  average week) is log-normal with median ``RATE_MEDIAN`` and shape
  ``RATE_SIGMA``, clipped to [``RATE_MIN``, ``RATE_MAX``]: most customers
  come now and then, a few every day.
* **Churn.** A customer stops after a lifetime drawn at signup:
  exponential with mean ``TRIAL_LIFETIME_DAYS`` for the ``TRIAL_SHARE``
  who only try the program, ``REGULAR_LIFETIME_DAYS`` for the rest.
  Refunds and reviews of earlier purchases may still follow.
* **Seasonality.** The chance of an activity on a day is scaled by
  ``WEEKDAY_FACTOR`` (Monday first) times ``MONTH_FACTOR`` (January
  first): busy weekends, a December peak, a summer dip. The café is closed
  on the ``CLOSED_DAYS`` (month, day). Opening hours are
  ``WEEKDAY_HOURS`` / ``WEEKEND_HOURS``.
* **Purchases.** A basket of catalogue items (``CATALOGUE``: coffee, tea,
  pastry, food, beans, merch), each with a sku, category and price;
  ``amount`` is the sum of price × quantity, a 2-place decimal string.
* **Other events.** ``VISIT_USER_SHARE`` of customers also check in with
  the app without buying (``visit``); some customers write reviews or share
  a purchase (``review``, ``share``, soon after a purchase).
* **Refunds.** ``REFUND_RATE`` of purchases are refunded within
  ``REFUND_MAX_DAYS`` days: ``REFUND_PARTIAL_SHARE`` partially (one item
  line, or a part of a single-item basket), the rest in full. A partial
  refund is followed by a refund of the rest with probability
  ``REFUND_REST_SHARE``. A refund "of the rest" carries no ``amount`` (the
  contract's "the rest of it"), as do ``FULL_REFUND_NO_AMOUNT_SHARE`` of the
  full refunds; an explicit amount never exceeds what is left.
* No ``redeem`` events: which rewards can be redeemed, and when a balance
  suffices, depends on the program, and this history serves any program
  (but see below).

Program-driven histories (``program=``, ``poletti generate --rules``): the
café history above, in the program's currency (catalogue prices scaled by
``generate_plan.PRICE_SCALE``) and time zone, plus what the program reads
(``generate_plan.plan_for`` works it out; its docstring says how):

* **Items.** Each customer has an affinity (``CATEGORY_AFFINITY``,
  ``SKU_AFFINITY``) for each category and SKU the rules name; a purchase
  adds such an item with that chance. Categories and SKUs the café does
  not sell get products of their own.
* **Feedback**, when read: ``FEEDBACK_SHARE`` of customers give feedback
  after ``FEEDBACK_RATE`` of their purchases, within two days.
* **Referrals**, when read: ``REFERRED_SHARE`` of customers were referred
  by a customer who signed up at least two days before them; the referral
  (an event of the referrer, with ``friend``) comes 1 … ``REFERRAL_LEAD_DAYS``
  days before the friend's signup.
* **Declared event types** (``event NAME``): ``CUSTOM_USER_SHARE`` of
  customers have them, at ``CUSTOM_RATE`` a week, with the seasons and
  opening hours of visits, until they churn.
* **Attributes** the program declares ride on the events that read them,
  drawn per ``generate_plan.AttributePlan``; a customer has a habitual text
  value (``ATTRIBUTE_HABIT``), and a yes/no attribute is mostly true for
  ``BOOL_TRUE_SHARE`` of customers.
* **Redeems** of the rewards with ``costs``: every event is given to the
  program (``poletti.Engine``) as it is emitted; after a purchase or visit
  whose balance pays for a reward, a customer among ``REDEEMER_SHARE``
  redeems one they can afford with their propensity (``REDEEM_PROPENSITY``),
  ``REDEEM_DELAY_SECONDS`` later. A redeem the program would reject is left
  out, so every redeem in the history is accepted.

Those draws come from a second generator per customer (and one for the
referrals), so the café draws, and the café history without a program,
stay exactly as they were.

Timestamps are ISO 8601 with the offset of ``tz`` (``Europe/Helsinki`` by
default), to the second, strictly increasing per customer; all fall in
opening hours or the evening, never in the hour a DST change skips or
repeats. Event ids are ``<customer>-<n>``, unique. The history covers
``days`` calendar days from ``start`` (midnight in ``tz``).

``write_csv`` / ``write_jsonl`` / ``write_parquet`` write events in the three
history formats ``poletti simulate`` reads: one row per event with the
columns ``HISTORY_COLUMNS``; in CSV and Parquet every cell is a string (or
empty / null when absent) and ``items`` is JSON text; JSON Lines holds the
event dicts as they are.
"""

from __future__ import annotations

import bisect
import csv
import heapq
import io
import itertools
import json
import math
import os
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from random import Random
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from poletti.interpreter.simulate.generate_plan import AttributePlan, HistoryPlan

__all__ = [
    "CATALOGUE",
    "DEFAULT_START",
    "HISTORY_COLUMNS",
    "generate_history",
    "history_row",
    "write_csv",
    "write_jsonl",
    "write_parquet",
]

DEFAULT_START = date(2025, 1, 1)
DEFAULT_TIMEZONE = "Europe/Helsinki"

# Issue 13: customers who also buy at one partner, the share of their purchases made there, and the share of
# purchases by a customer holding a reward that use one.
PARTNER_CUSTOMER_SHARE = 0.4
PARTNER_PURCHASE_SHARE = 0.3
USE_HELD_REWARD_SHARE = 0.6

HISTORY_COLUMNS = ("id", "type", "customer", "at", "amount", "currency", "items", "original", "reward", "birthday")

# ---------------------------------------------------------------- parameters

LAUNCH_SHARE = 0.2
LAUNCH_DAYS = 14
BIRTHDAY_SHARE = 0.7
FIRST_PURCHASE_AT_SIGNUP = 0.6

RATE_MEDIAN = 0.8  # purchases per week
RATE_SIGMA = 0.9
RATE_MIN = 0.05
RATE_MAX = 14.0

TRIAL_SHARE = 0.3
TRIAL_LIFETIME_DAYS = 21.0
REGULAR_LIFETIME_DAYS = 540.0

#: Monday … Sunday.
WEEKDAY_FACTOR = (0.9, 0.9, 0.95, 1.0, 1.1, 1.3, 1.15)
#: January … December.
MONTH_FACTOR = (0.95, 0.95, 1.0, 1.0, 1.0, 0.85, 0.6, 0.8, 1.05, 1.05, 1.1, 1.45)
CLOSED_DAYS = frozenset({(12, 25), (1, 1)})
#: Opening hours (first hour, last hour), inclusive.
WEEKDAY_HOURS = (7, 19)
WEEKEND_HOURS = (9, 18)
#: Relative weight of each opening hour 7 … 19: the morning rush, lunch, the afternoon break.
HOUR_WEIGHT = {7: 6, 8: 10, 9: 8, 10: 6, 11: 7, 12: 10, 13: 8, 14: 6, 15: 7, 16: 6, 17: 5, 18: 3, 19: 1}
HABIT_SHARE = 0.6  # share of a customer's activities at their habitual hour (±1)

VISIT_USER_SHARE = 0.35
VISIT_RATIO = (0.2, 1.0)  # app users' visits per purchase, uniform
REVIEWER_SHARE = 0.25
REVIEW_RATE = (0.01, 0.08)  # reviews per purchase of a reviewer, uniform
SHARER_SHARE = 0.15
SHARE_RATE = (0.02, 0.08)

REFUND_RATE = 0.015
REFUND_MAX_DAYS = 14
REFUND_PARTIAL_SHARE = 0.6
REFUND_REST_SHARE = 0.25
FULL_REFUND_NO_AMOUNT_SHARE = 0.5

# With a program (``program=``, ``poletti generate --rules``): see "Program-driven histories" above.
CATEGORY_AFFINITY = (0.0, 0.03, 0.08, 0.2)  # a customer's chance per purchase of an item of a category the rules name
SKU_AFFINITY = (0.0, 0.02, 0.06, 0.15)  # … of a SKU the rules name
FEEDBACK_SHARE = 0.3
FEEDBACK_RATE = (0.05, 0.25)  # feedback per purchase of a customer who gives feedback, uniform
REFERRED_SHARE = 0.15
REFERRAL_LEAD_DAYS = 7  # a referral comes 1 … 7 days before the friend signs up
CONTACTS_PER_ACCOUNT = 3  # a pooled program's history: customers 1–3 are one account's contacts, 4–6 the next…
CUSTOM_USER_SHARE = 0.4
CUSTOM_RATE = (0.05, 0.5)  # events per week of a declared type, of a customer who has them, uniform
REDEEMER_SHARE = 0.7
REDEEM_PROPENSITY = (0.2, 0.8)  # chance to redeem at a purchase or visit when the balance pays for a reward
REDEEM_DELAY_SECONDS = (20, 600)
ATTRIBUTE_HABIT = 0.7  # share of a customer's events carrying their habitual text value
BOOL_TRUE_SHARE = 0.2  # customers for whom a yes/no attribute is mostly true
BOOL_TRUE_RATE = (0.95, 0.05)  # chance of true for those customers, and for the others
GRADE_WEIGHTS = (1, 1, 2, 4, 4)  # scores 1 … 5

_CENT = Decimal("0.01")


def _d(text: str) -> Decimal:
    return Decimal(text)


#: (sku, category, price in the program currency).
CATALOGUE: tuple[tuple[str, str, Decimal], ...] = (
    ("cof-espresso", "coffee", _d("2.90")),
    ("cof-americano", "coffee", _d("3.40")),
    ("cof-filter", "coffee", _d("2.80")),
    ("cof-cappuccino", "coffee", _d("4.20")),
    ("cof-latte", "coffee", _d("4.50")),
    ("cof-flatwhite", "coffee", _d("4.40")),
    ("cof-mocha", "coffee", _d("4.90")),
    ("tea-black", "tea", _d("3.00")),
    ("tea-green", "tea", _d("3.20")),
    ("tea-chai", "tea", _d("4.60")),
    ("pas-cinnamon-bun", "pastry", _d("3.80")),
    ("pas-croissant", "pastry", _d("3.20")),
    ("pas-blueberry-pie", "pastry", _d("4.50")),
    ("pas-cookie", "pastry", _d("2.50")),
    ("pas-karelian-pie", "pastry", _d("2.20")),
    ("food-sandwich", "food", _d("7.90")),
    ("food-salad", "food", _d("9.50")),
    ("food-soup", "food", _d("8.90")),
    ("bns-house-250", "beans", _d("11.90")),
    ("bns-ethiopia-250", "beans", _d("14.90")),
    ("bns-decaf-250", "beans", _d("12.50")),
    ("bns-house-1kg", "beans", _d("39.00")),
    ("mer-mug", "merch", _d("14.00")),
    ("mer-tote", "merch", _d("12.00")),
    ("mer-keepcup", "merch", _d("22.00")),
)

_BY_CATEGORY: dict[str, tuple[tuple[str, str, Decimal], ...]] = {}
for _product in CATALOGUE:
    _BY_CATEGORY[_product[1]] = _BY_CATEGORY.get(_product[1], ()) + (_product,)
# Within a category, earlier products sell more (espresso and americano over mocha).
_CATEGORY_CUM_WEIGHTS = {cat: tuple(itertools.accumulate(range(len(ps) + 1, 1, -1))) for cat, ps in _BY_CATEGORY.items()}


def _scaled(price: Decimal, scale: Decimal) -> Decimal:
    """A catalogue price in a currency of another price level, rounded as a café would price it."""
    if scale == 1:
        return price
    value = price * scale
    if scale >= 50:  # whole tens (JPY, HUF, KRW …)
        return (value / 10).quantize(Decimal(1), ROUND_HALF_UP) * 10
    if scale >= 5:  # whole units (SEK, NOK, CZK …)
        return value.quantize(Decimal(1), ROUND_HALF_UP).quantize(_CENT)
    return value.quantize(Decimal("0.1"), ROUND_HALF_UP).quantize(_CENT)


# ----------------------------------------------------------------- generation


class _Hours:
    """The opening hours of a day, with the weights to draw an hour from."""

    __slots__ = ("hours", "cum_weights")

    def __init__(self, first: int, last: int) -> None:
        self.hours = tuple(range(first, last + 1))
        self.cum_weights = tuple(itertools.accumulate(HOUR_WEIGHT[h] for h in self.hours))


_WEEKDAY_OPEN = _Hours(*WEEKDAY_HOURS)
_WEEKEND_OPEN = _Hours(*WEEKEND_HOURS)


def _opening(day: date) -> _Hours:
    return _WEEKEND_OPEN if day.weekday() >= 5 else _WEEKDAY_OPEN


def _day_factor(day: date) -> float:
    """How busy a day is, relative to an average one (0 when the café is closed)."""
    if (day.month, day.day) in CLOSED_DAYS:
        return 0.0
    return WEEKDAY_FACTOR[day.weekday()] * MONTH_FACTOR[day.month - 1]


_MAX_FACTOR = max(WEEKDAY_FACTOR) * max(MONTH_FACTOR)


class _Pending:
    """An event of one customer's timeline, waiting in the customer's heap until its turn."""

    __slots__ = ("at", "fields", "purchase", "id")

    def __init__(self, at: datetime, fields: dict[str, Any], purchase: _Pending | None = None) -> None:
        self.at = at  # naive wall-clock time in the history's zone
        self.fields = fields
        self.purchase = purchase  # for a refund: the refunded purchase
        self.id: str | None = None  # set when the event is emitted


class _History:
    def __init__(self, customers: int, days: int, seed: int, start: date, tz: ZoneInfo, currency: str,
                 plan: HistoryPlan | None = None) -> None:
        self.customers = customers
        self.days = days
        self.seed = seed
        self.start = start
        self.tz = tz
        self.currency = currency
        self.factors = [_day_factor(start + timedelta(days=d)) for d in range(days)]
        self.end = datetime.combine(start + timedelta(days=days), time())  # exclusive, wall clock
        self.width = max(4, len(str(customers)))
        self.plan = plan
        self.by_category = _BY_CATEGORY
        self.cum_weights = _CATEGORY_CUM_WEIGHTS
        self.engine: Any = None
        self.referrals: dict[int, list[tuple[int, float]]] = {}
        if plan is not None:
            self._prepare(plan)

    # -- the merge

    def events(self) -> Iterator[dict[str, Any]]:
        arrivals_rng = Random(f"poletti-history:{self.seed}:arrivals")
        launch_days = min(LAUNCH_DAYS, self.days)
        arrivals = sorted(
            arrivals_rng.uniform(0, launch_days if arrivals_rng.random() < LAUNCH_SHARE else self.days)
            for _ in range(self.customers)
        )
        heap: list[tuple[float, int, int, dict[str, Any], Iterator[tuple[float, int, dict[str, Any]]]]] = []
        next_customer, total = 0, len(arrivals)
        # A customer's timeline starts once the merge reaches the midnight before their signup:
        # no event before that instant can be theirs.
        starts = math.inf if total == 0 else self._epoch_of_day(arrivals[0])
        if self.plan is not None and self.plan.referral:
            self._plan_referrals(arrivals)
        while True:
            while next_customer < total and (not heap or starts <= heap[0][0]):
                timeline = self._timeline(next_customer, arrivals[next_customer])
                first = next(timeline, None)
                if first is not None:
                    heapq.heappush(heap, (first[0], next_customer, first[1], first[2], timeline))
                next_customer += 1
                if next_customer < total:
                    starts = self._epoch_of_day(arrivals[next_customer])
            if not heap:
                return
            epoch, index, _n, event, timeline = heap[0]
            yield event
            following = next(timeline, None)
            if following is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (following[0], index, following[1], following[2], timeline))

    def _epoch_of_day(self, offset: float) -> float:
        day = int(offset)
        return datetime.combine(self.start + timedelta(days=day), time()).replace(tzinfo=self.tz).timestamp()

    # -- one customer

    def _timeline(self, index: int, arrival: float) -> Iterator[tuple[float, int, dict[str, Any]]]:
        """One customer's events in time order, as (epoch seconds, sequence number, event)."""
        rng = Random(f"poletti-history:{self.seed}:customer:{index}")
        customer = f"c{index + 1:0{self.width}d}"
        factors, start, end = self.factors, self.start, self.end
        arrival_day = int(arrival)
        purchase_rate = min(RATE_MAX, max(RATE_MIN, rng.lognormvariate(math.log(RATE_MEDIAN), RATE_SIGMA)))
        visit_rate = purchase_rate * rng.uniform(*VISIT_RATIO) if rng.random() < VISIT_USER_SHARE else 0.0
        review_rate = rng.uniform(*REVIEW_RATE) if rng.random() < REVIEWER_SHARE else 0.0
        share_rate = rng.uniform(*SHARE_RATE) if rng.random() < SHARER_SHARE else 0.0
        mean_life = TRIAL_LIFETIME_DAYS if rng.random() < TRIAL_SHARE else REGULAR_LIFETIME_DAYS
        leave_day = min(len(factors), arrival_day + 1 + int(rng.expovariate(1 / mean_life)))
        habit_hour = rng.choices(tuple(HOUR_WEIGHT), weights=tuple(HOUR_WEIGHT.values()))[0]
        beans_affinity = rng.choice((0.0, 0.01, 0.03, 0.08))
        # What the program adds (--rules) draws from its own generator: the café draws above stay as they are.
        plan = self.plan
        prng = Random(f"poletti-history:{self.seed}:customer:{index}:program")
        profile = self._profile(prng) if plan is not None else None

        pending: list[tuple[datetime, int, _Pending]] = []
        order = 0

        def push(item: _Pending) -> None:
            nonlocal order
            order += 1
            heapq.heappush(pending, (item.at, order, item))

        def purchase_at(at: datetime) -> None:
            fields, items = self._basket(rng, at, beans_affinity)
            if profile is not None:
                self._more_items(prng, fields, items, profile)
            purchase = _Pending(at, fields)
            push(purchase)
            self._follow_ups(rng, push, purchase, items, review_rate, share_rate)
            if profile is not None:
                self._program_follow_ups(prng, push, purchase, profile)

        # The signup: any time from 08:00 to 21:59 (members also join in the app).
        signup_day = start + timedelta(days=arrival_day)
        signup_at = datetime.combine(signup_day, time(rng.randint(8, 21), rng.randrange(60), rng.randrange(60)))
        signup: dict[str, Any] = {"type": "signup"}
        if rng.random() < BIRTHDAY_SHARE:
            year = rng.randint(1950, 2007)
            signup["birthday"] = (date(year, 1, 1) + timedelta(days=rng.randrange(366 if year % 4 == 0 else 365))).isoformat()
        push(_Pending(signup_at, signup))
        open_hours = _opening(signup_day).hours
        if rng.random() < FIRST_PURCHASE_AT_SIGNUP and factors[arrival_day] and signup_at.hour in open_hours[:-1]:
            purchase_at(signup_at + timedelta(seconds=rng.randint(30, 600)))
        if profile is not None:
            self._schedule(prng, push, index, arrival_day, leave_day, habit_hour, profile)

        emitted = 0
        last: datetime | None = None

        def emit_until(limit: datetime) -> Iterator[tuple[float, int, dict[str, Any]]]:
            nonlocal emitted, last
            while pending and pending[0][0] < limit:
                at, _order, item = heapq.heappop(pending)
                if last is not None and at <= last:
                    at = last + timedelta(seconds=1)  # strictly increasing per customer
                if at >= end or (item.purchase is not None and item.purchase.id is None):
                    continue  # past the end, or a refund of a purchase that was
                event_id = f"{customer}-{emitted + 1}"
                aware = at.replace(tzinfo=self.tz)
                event = {"id": event_id, "type": item.fields["type"], "customer": customer, "at": aware.isoformat()}
                if plan is not None and plan.account:
                    event["account"] = f"a{index // CONTACTS_PER_ACCOUNT + 1:0{self.width}d}"
                for key, value in item.fields.items():
                    if key != "type":
                        event[key] = value
                if item.purchase is not None:
                    event["original"] = item.purchase.id
                if profile is not None:
                    self._attributes(prng, event, at.date(), profile)
                    if event["type"] == "purchase" and self.plan is not None:
                        self._issue13_fields(prng, event, profile)
                    if self.engine is not None and not self._apply(prng, push, event, at, profile):
                        continue  # a redeem the balance no longer pays for: left out
                last = at
                emitted += 1
                item.id = event_id
                yield aware.timestamp(), emitted, event

        # Purchases and visits: a Poisson process in days, thinned by the day's factor.
        activity_rate = (purchase_rate + visit_rate) / 7.0
        visit_share = visit_rate / (purchase_rate + visit_rate)
        t = float(arrival_day + 1)
        while True:
            t += rng.expovariate(activity_rate * _MAX_FACTOR)
            d = int(t)
            if d >= leave_day:
                break
            if rng.random() * _MAX_FACTOR >= factors[d]:
                continue
            day = start + timedelta(days=d)
            at = datetime.combine(day, self._time_of_day(rng, _opening(day), habit_hour))
            yield from emit_until(datetime.combine(day, time()))
            if rng.random() < visit_share:
                push(_Pending(at, {"type": "visit"}))
            else:
                purchase_at(at)
        yield from emit_until(end)

    # -- what a program adds (``program=``)

    def _prepare(self, plan: HistoryPlan) -> None:
        """The catalogue in the program's currency, with the products of categories and SKUs it names."""
        products = [(sku, category, _scaled(price, plan.price_scale))
                    for sku, category, price in CATALOGUE + plan.new_products]
        by_category: dict[str, tuple[tuple[str, str, Decimal], ...]] = {}
        for product in products:
            by_category[product[1]] = by_category.get(product[1], ()) + (product,)
        self.by_category = by_category
        self.cum_weights = {c: tuple(itertools.accumulate(range(len(ps) + 1, 1, -1))) for c, ps in by_category.items()}
        self.by_sku = {product[0]: product for product in products}
        if plan.redeemable or plan.uses_rewards:
            # Redeems are decided on the balance, and the rewards a purchase uses on what the customer holds:
            # every event goes through the program as it is emitted.
            from poletti.interpreter.engine import Engine

            self.engine = Engine(plan.program, explain=False)

    def _plan_referrals(self, arrivals: Sequence[float]) -> None:
        """Who referred whom: REFERRED_SHARE of customers by one who signed up at least two days earlier."""
        rng = Random(f"poletti-history:{self.seed}:referrals")
        days = [int(arrival) for arrival in arrivals]
        for friend, day in enumerate(days):
            if rng.random() >= REFERRED_SHARE:
                continue
            eligible = bisect.bisect_right(days, day - 2)
            if not eligible:
                continue
            referrer = rng.randrange(eligible)
            when = rng.randint(max(days[referrer] + 1, day - REFERRAL_LEAD_DAYS), day - 1)
            seconds = rng.randint(9 * 3600, 21 * 3600 - 1)
            self.referrals.setdefault(referrer, []).append((friend, when + seconds / 86400))

    def _profile(self, prng: Random) -> dict[str, Any]:
        """A customer's habits for what the program reads."""
        plan = self.plan
        assert plan is not None
        profile: dict[str, Any] = {
            "categories": [(c, prng.choice(CATEGORY_AFFINITY)) for c in plan.categories],
            "skus": [(s, prng.choice(SKU_AFFINITY)) for s in plan.skus],
            "feedback": prng.uniform(*FEEDBACK_RATE) if plan.feedback and prng.random() < FEEDBACK_SHARE else 0.0,
            "redeem": prng.uniform(*REDEEM_PROPENSITY) if plan.redeemable and prng.random() < REDEEMER_SHARE else 0.0,
            "custom": [(name, prng.uniform(*CUSTOM_RATE) if prng.random() < CUSTOM_USER_SHARE else 0.0)
                       for name in plan.custom_events],
            "habits": {},
        }
        if plan.partners and prng.random() < PARTNER_CUSTOMER_SHARE:
            profile["partner"] = prng.choice(plan.partners)
        for attribute in plan.attributes:
            if attribute.texts:
                profile["habits"][attribute.name] = prng.choice(attribute.texts)
            elif attribute.kind.name == "BOOL":
                profile["habits"][attribute.name] = BOOL_TRUE_RATE[0 if prng.random() < BOOL_TRUE_SHARE else 1]
        return profile

    def _more_items(self, prng: Random, fields: dict[str, Any], items: list[dict[str, Any]],
                    profile: dict[str, Any]) -> None:
        """Items of the categories and SKUs the rules name, by the customer's affinities; the amount follows."""
        added = [self.by_category[c] for c, a in profile["categories"] if a and prng.random() < a]
        added += [(self.by_sku[s],) for s, a in profile["skus"] if a and prng.random() < a]
        if not added:
            return
        for products in added:
            sku, category, price = products[prng.randrange(len(products))]
            for line in items:
                if line["sku"] == sku:
                    line["quantity"] += 1
                    break
            else:
                items.append({"sku": sku, "category": category, "quantity": 1, "price": str(price)})
        amount = sum((Decimal(line["price"]) * line["quantity"] for line in items), Decimal(0))
        fields["amount"] = str(amount.quantize(_CENT))

    def _program_follow_ups(self, prng: Random, push: Callable[[_Pending], None], purchase: _Pending,
                            profile: dict[str, Any]) -> None:
        if profile["feedback"] and prng.random() < profile["feedback"]:
            push(_Pending(self._later(prng, purchase.at, 0, 2, (8, 21)), {"type": "feedback"}))

    def _schedule(self, prng: Random, push: Callable[[_Pending], None], index: int, arrival_day: int,
                  leave_day: int, habit_hour: int, profile: dict[str, Any]) -> None:
        """The customer's events of declared types (seasonal, like visits) and the referrals they make."""
        factors, start = self.factors, self.start
        for name, rate in profile["custom"]:
            if not rate:
                continue
            t = float(arrival_day + 1)
            while True:
                t += prng.expovariate(rate / 7.0 * _MAX_FACTOR)
                d = int(t)
                if d >= leave_day:
                    break
                if prng.random() * _MAX_FACTOR >= factors[d]:
                    continue
                day = start + timedelta(days=d)
                push(_Pending(datetime.combine(day, self._time_of_day(prng, _opening(day), habit_hour)), {"type": name}))
        for friend, offset in self.referrals.get(index, ()):
            day, seconds = int(offset), round((offset - int(offset)) * 86400)
            at = datetime.combine(start + timedelta(days=day), time()) + timedelta(seconds=seconds)
            fields: dict[str, Any] = {"type": "referral"}
            if self.plan is not None and self.plan.friend:
                fields["friend"] = f"c{friend + 1:0{self.width}d}"
            push(_Pending(at, fields))

    def _attributes(self, prng: Random, event: dict[str, Any], day: date, profile: dict[str, Any]) -> None:
        """The declared attributes that events of this type carry, drawn as the plan says."""
        assert self.plan is not None
        for attribute in self.plan.attributes_of(event["type"]):
            if attribute.presence < 1 and prng.random() >= attribute.presence:
                continue
            event[attribute.name] = _attribute_value(prng, attribute, day, profile["habits"].get(attribute.name))

    def _apply(self, prng: Random, push: Callable[[_Pending], None], event: dict[str, Any], at: datetime,
               profile: dict[str, Any]) -> bool:
        """Give the event to the program; after a purchase or visit, maybe redeem. False: leave the event out."""
        from poletti.interpreter.events import EventError

        try:
            outcome = self.engine.process(event)
        except EventError:
            if event.pop("rewards_used", None) is None:
                return event["type"] != "redeem"  # only a redeem is ever left out: the balance falls short
            try:  # the reward the customer meant to use ended first: the purchase without it
                outcome = self.engine.process(event)
            except EventError:
                return True
        if event["type"] in ("purchase", "visit") and profile["redeem"] and prng.random() < profile["redeem"]:
            assert self.plan is not None
            affordable = [name for name, cost in self.plan.redeemable if cost <= outcome.points]
            if affordable:
                later = at + timedelta(seconds=prng.randint(*REDEEM_DELAY_SECONDS))
                fields = {"type": "redeem", "reward": prng.choice(affordable)}
                if profile.get("partner") is not None and prng.random() < PARTNER_PURCHASE_SHARE:
                    fields["partner"] = profile["partner"]  # issue 13: redeemed with the partner
                push(_Pending(later, fields))
        return True

    def _issue13_fields(self, prng: Random, event: dict[str, Any], profile: dict[str, Any]) -> None:
        """Issue 13: a share of purchases at the customer's usual partner; a held reward used now and then."""
        plan = self.plan
        assert plan is not None
        partner = profile.get("partner")
        if partner is not None and prng.random() < PARTNER_PURCHASE_SHARE:
            event["partner"] = partner
        if plan.uses_rewards and self.engine is not None and prng.random() < USE_HELD_REWARD_SHARE:
            at = datetime.fromisoformat(event["at"])
            held = [h.reward for h in self.engine.customer(event["customer"]).held if h.until is None or h.until > at]
            if held:
                event["rewards_used"] = [held[0]]  # the first listed: by name, then the expiring ones, first to end

    def _time_of_day(self, rng: Random, day: _Hours, habit_hour: int) -> time:
        if rng.random() < HABIT_SHARE:
            hour = habit_hour + rng.choice((-1, 0, 0, 1))
            if not day.hours[0] <= hour <= day.hours[-1]:
                hour = rng.choices(day.hours, cum_weights=day.cum_weights)[0]
        else:
            hour = rng.choices(day.hours, cum_weights=day.cum_weights)[0]
        minute, second = divmod(rng.randrange(3600), 60)
        return time(hour, minute, second)

    def _basket(self, rng: Random, at: datetime, beans_affinity: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        gifts = 2.5 if at.month == 12 else 1.0
        lunch = 11 <= at.hour <= 14
        lines: list[tuple[str, str, Decimal, int]] = []

        def add(category: str, quantity: int = 1) -> None:
            products = self.by_category[category]
            sku, cat, price = rng.choices(products, cum_weights=self.cum_weights[category])[0]
            for i, line in enumerate(lines):
                if line[0] == sku:
                    lines[i] = (sku, cat, price, line[3] + quantity)
                    return
            lines.append((sku, cat, price, quantity))

        if rng.random() < 0.9:
            add("coffee" if rng.random() < 0.85 else "tea", 2 if rng.random() < 0.12 else 1)
        if rng.random() < 0.35:
            add("pastry", 2 if rng.random() < 0.1 else 1)
        if rng.random() < (0.3 if lunch else 0.05):
            add("food")
        if rng.random() < beans_affinity * gifts:
            add("beans")
        if rng.random() < 0.01 * gifts:
            add("merch")
        if not lines:
            add("coffee")
        items = [{"sku": sku, "category": cat, "quantity": q, "price": str(price)} for sku, cat, price, q in lines]
        amount = sum((price * q for _s, _c, price, q in lines), Decimal(0)).quantize(_CENT)
        fields = {"type": "purchase", "amount": str(amount), "currency": self.currency, "items": items}
        return fields, items

    def _follow_ups(self, rng: Random, push: Callable[[_Pending], None], purchase: _Pending,
                    items: list[dict[str, Any]], review_rate: float, share_rate: float) -> None:
        """Reviews, shares and refunds that a purchase leads to, each scheduled after it."""
        at = purchase.at
        if review_rate and rng.random() < review_rate:
            push(_Pending(self._later(rng, at, 0, 3, (8, 22)), {"type": "review"}))
        if share_rate and rng.random() < share_rate:
            push(_Pending(at + timedelta(seconds=rng.randint(60, 7200)), {"type": "share"}))
        if rng.random() >= REFUND_RATE:
            return
        amount = Decimal(purchase.fields["amount"])
        first_at = self._later(rng, at, 0, REFUND_MAX_DAYS, (9, 18))
        if rng.random() < REFUND_PARTIAL_SHARE:
            part = self._partial(rng, amount, items)
            push(_Pending(first_at, {"type": "refund", "amount": str(part), "currency": self.currency}, purchase))
            if rng.random() < REFUND_REST_SHARE:
                rest_at = self._later(rng, first_at, 0, REFUND_MAX_DAYS, (9, 18))
                push(_Pending(rest_at, {"type": "refund", "currency": self.currency}, purchase))
        elif rng.random() < FULL_REFUND_NO_AMOUNT_SHARE:
            push(_Pending(first_at, {"type": "refund", "currency": self.currency}, purchase))
        else:
            push(_Pending(first_at, {"type": "refund", "amount": str(amount), "currency": self.currency}, purchase))

    @staticmethod
    def _partial(rng: Random, amount: Decimal, items: list[dict[str, Any]]) -> Decimal:
        """Less than the whole purchase: one item line, one unit of a line, or a part of the amount."""
        if len(items) > 1:
            line = rng.choice(items)
            return (Decimal(line["price"]) * line["quantity"]).quantize(_CENT)
        if items[0]["quantity"] > 1:
            return Decimal(items[0]["price"]).quantize(_CENT)
        share = Decimal(rng.randint(20, 80)) / 100
        return max(_CENT, (amount * share).quantize(_CENT))

    def _later(self, rng: Random, after: datetime, min_days: int, max_days: int, hours: tuple[int, int]) -> datetime:
        """A wall-clock time some days after ``after``, within ``hours``; always after it."""
        day = after.date() + timedelta(days=rng.randint(min_days, max_days))
        at = datetime.combine(day, time(rng.randint(*hours), rng.randrange(60), rng.randrange(60)))
        if at <= after:
            at = after + timedelta(seconds=rng.randint(60, 3600))
        return at


def _attribute_value(prng: Random, attribute: AttributePlan, day: date, habit: Any) -> Any:
    """A value of a declared attribute: JSON-ready (bool, int, decimal text, date text)."""
    kind = attribute.kind.name
    if kind == "BOOL":
        return prng.random() < habit
    if attribute.texts:
        return habit if prng.random() < ATTRIBUTE_HABIT else prng.choice(attribute.texts)
    if kind == "DATE":
        if attribute.dates is None:
            return (day - timedelta(days=prng.randint(0, 365))).isoformat()
        first, last = attribute.dates
        return date.fromordinal(prng.randint(first.toordinal(), last.toordinal())).isoformat()
    if attribute.grade:
        return prng.choices((1, 2, 3, 4, 5), weights=GRADE_WEIGHTS)[0]
    if attribute.whole:
        return prng.randint(int(attribute.low), int(attribute.high))
    value = attribute.low + (attribute.high - attribute.low) * Decimal(prng.randrange(10001)) / 10000
    return str(value.quantize(_CENT))


def generate_history(customers: int, days: int, seed: int, start: date | str | None = None, *,
                     tz: str | None = None, currency: str | None = None,
                     program: Any = None) -> Iterator[dict[str, Any]]:
    """A reproducible synthetic café history: event dicts in time order (see the module docstring).

    ``customers`` customers sign up over ``days`` days from ``start`` (a date,
    ``YYYY-MM-DD`` text, or ``DEFAULT_START``), in the IANA zone ``tz``
    (default ``DEFAULT_TIMEZONE``) with amounts in ``currency`` (default EUR);
    ``seed`` fixes every random choice. With ``program`` (a ``poletti.Program``,
    or a ``HistoryPlan`` of one) the history also holds every event kind,
    attribute, category and SKU the program reads, in its currency and zone
    (``tz`` and ``currency``, if given, must be the program's); see
    "Program-driven histories". Raises ``ValueError`` for bad arguments.
    """
    plan = None
    if program is not None:
        from poletti.interpreter.simulate.generate_plan import HistoryPlan, plan_for

        plan = program if isinstance(program, HistoryPlan) else plan_for(program)
        if tz is not None and tz != plan.timezone:
            raise ValueError(f"the program's time zone is {plan.timezone}, not {tz}: leave the time zone out")
        if currency is not None and currency != plan.currency:
            raise ValueError(f"the program's currency is {plan.currency}, not {currency}: leave the currency out")
        tz, currency = plan.timezone, plan.currency
    tz = DEFAULT_TIMEZONE if tz is None else tz
    currency = "EUR" if currency is None else currency
    if isinstance(customers, bool) or not isinstance(customers, int) or customers < 1:
        raise ValueError(f"customers must be a whole number of at least 1, got {customers!r}")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a whole number of at least 1, got {days!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be a whole number, got {seed!r}")
    if start is None:
        start = DEFAULT_START
    elif isinstance(start, str):
        start = date.fromisoformat(start)
    elif isinstance(start, datetime) or not isinstance(start, date):
        raise ValueError(f"start must be a date, got {start!r}")
    if days > (date(9999, 1, 1) - start).days - 2 * REFUND_MAX_DAYS:
        raise ValueError(f"a history of {days} days from {start.isoformat()} would run past the year 9999")
    if plan is not None and (start.year < 1900 or (start + timedelta(days=days)).year > 9000):
        raise ValueError("the engine takes events in the years 1900 to 9000: choose a start and days within them")
    return _History(customers, days, seed, start, ZoneInfo(tz), currency, plan).events()


# -------------------------------------------------------------------- writers


def history_row(event: dict[str, Any], columns: Sequence[str] = HISTORY_COLUMNS) -> list[Any]:
    """An event as one row of ``columns``: strings (``items`` as JSON text), yes/no as bool, None when absent."""
    row: list[Any] = []
    for column in columns:
        value = event.get(column)
        if value is None or isinstance(value, bool):
            row.append(value)
        elif column in ("items", "rewards_used"):
            row.append(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
        else:
            row.append(str(value))
    return row


def _csv_cell(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    return cell  # type: ignore[no-any-return]


def _with_commas(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its amount and its items' prices written with a decimal comma (12,50)."""
    event = dict(event)
    if isinstance(event.get("amount"), str):
        event["amount"] = event["amount"].replace(".", ",")
    if isinstance(event.get("items"), list):
        event["items"] = [{**item, "price": item["price"].replace(".", ",")}
                          if isinstance(item, dict) and isinstance(item.get("price"), str) else item
                          for item in event["items"]]
    return event


def write_csv(events: Iterable[dict[str, Any]], stream: IO[str], progress: Callable[[dict[str, Any]], None] | None = None,
              columns: Sequence[str] = HISTORY_COLUMNS, *, delimiter: str = ",", decimal_comma: bool = False) -> int:
    """Write a header and one row per event (empty cells for absent fields); returns the number of events.

    ``columns``: ``HISTORY_COLUMNS`` and, for a program-driven history, the
    extra columns of its plan (``friend``, attributes); yes/no is ``true``/``false``.
    ``delimiter`` and ``decimal_comma``: a file as Finnish businesses export
    them (``;``, amounts and prices ``12,50``).
    """
    writer = csv.writer(stream, lineterminator="\n", delimiter=delimiter)
    writer.writerow(columns)
    count = 0
    for event in events:
        if decimal_comma:
            event = _with_commas(event)
        writer.writerow([_csv_cell(cell) for cell in history_row(event, columns)])
        count += 1
        if progress is not None:
            progress(event)
    return count


def write_jsonl(events: Iterable[dict[str, Any]], stream: IO[str], progress: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Write one JSON object per line, absent fields left out; returns the number of events."""
    count = 0
    for event in events:
        stream.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
        stream.write("\n")
        count += 1
        if progress is not None:
            progress(event)
    return count


PARQUET_BATCH_ROWS = 65536


def _parquet_schema(columns: Sequence[str], bool_columns: Iterable[str]) -> Any:
    import pyarrow as pa

    bools = frozenset(bool_columns)
    return pa.schema([(column, pa.bool_() if column in bools else pa.string()) for column in columns])


def write_parquet(events: Iterable[dict[str, Any]], target: str | IO[bytes],
                  progress: Callable[[dict[str, Any]], None] | None = None,
                  columns: Sequence[str] = HISTORY_COLUMNS, bool_columns: Iterable[str] = ()) -> int:
    """Write a Parquet file with string columns ``columns`` (null when absent), in row groups.

    ``bool_columns`` (declared yes/no attributes) are boolean columns.

    Needs pyarrow. Returns the number of events.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema(columns, bool_columns)
    names = tuple(columns)
    count = 0
    with pq.ParquetWriter(target, schema) as writer:
        cells: list[list[Any]] = [[] for _ in names]

        def flush() -> None:
            if cells[0]:
                writer.write_table(pa.table([pa.array(c, f.type) for c, f in zip(cells, schema)], schema=schema))
                for column in cells:
                    column.clear()

        for event in events:
            for column, cell in zip(cells, history_row(event, names)):
                column.append(cell)
            count += 1
            if progress is not None:
                progress(event)
            if len(cells[0]) >= PARQUET_BATCH_ROWS:
                flush()
        flush()
    return count


def write_parquet_dataset(events: Iterable[dict[str, Any]], folder: str, partitions: int,
                          progress: Callable[[dict[str, Any]], None] | None = None,
                          columns: Sequence[str] = HISTORY_COLUMNS, bool_columns: Iterable[str] = ()) -> int:
    """Write a folder of ``partitions`` Parquet files, each customer's events in one file (by a hash).

    ``part-00003-of-00008.parquet`` holds the customers whose CRC-32 of the
    name leaves 3 when divided by 8 — the hash ``poletti simulate`` shards
    customers by, so that with ``--dask`` each shard reads only its own
    file. ``_poletti.json`` says so. Each file is in time order. Returns the
    number of events.
    """
    import json as _json
    import zlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema(columns, bool_columns)
    names = tuple(columns)
    width = max(5, len(str(partitions)))
    paths = [os.path.join(folder, f"part-{k:0{width}d}-of-{partitions:0{width}d}.parquet") for k in range(partitions)]
    writers = [pq.ParquetWriter(path, schema) for path in paths]
    buffers: list[list[list[Any]]] = [[[] for _ in names] for _ in range(partitions)]
    shard_of: dict[str, int] = {}
    count = 0

    def flush(k: int) -> None:
        columns = buffers[k]
        if columns[0]:
            writers[k].write_table(pa.table([pa.array(c, f.type) for c, f in zip(columns, schema)], schema=schema))
            for column in columns:
                column.clear()

    try:
        for event in events:
            customer = str(event["customer"])
            k = shard_of.get(customer)
            if k is None:
                k = shard_of[customer] = zlib.crc32(customer.encode("utf-8", "surrogatepass")) % partitions
            for column, cell in zip(buffers[k], history_row(event, names)):
                column.append(cell)
            count += 1
            if progress is not None:
                progress(event)
            if len(buffers[k][0]) >= PARQUET_BATCH_ROWS:
                flush(k)
        for k in range(partitions):
            flush(k)
    finally:
        for writer in writers:
            writer.close()
    with open(os.path.join(folder, "_poletti.json"), "w", encoding="utf-8") as handle:
        _json.dump({"partitioned_by": "customer", "hash": "crc32", "partitions": partitions}, handle)
        handle.write("\n")
    return count


def history_text(events: Iterable[dict[str, Any]], fmt: str = "csv", columns: Sequence[str] = HISTORY_COLUMNS) -> str:
    """The whole history as CSV or JSON Lines text (for small histories in tests)."""
    buffer = io.StringIO()
    if fmt == "csv":
        write_csv(events, buffer, columns=columns)
    else:
        write_jsonl(events, buffer)
    return buffer.getvalue()
