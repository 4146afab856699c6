"""What a simulation adds up to: the summary, the month series, the activity, each customer's standing.

Every replay — event at a time, per customer, in parallel shards — feeds
the same accumulators, which are built to be merged: a shard's figures
cover a disjoint set of customers, so totals, month flows and stock
changes simply add up, and the merged result is the same, byte for byte,
whatever the number of shards. Money is kept in integer micro-units until
it is shown.

* ``Tracker``: one program's month series, from each customer's changes
  (flows in the month they happen, stocks as running changes);
* ``Totals``: one program's final figures, from each customer's final state;
* ``Activity``: purchases by month and the program-effect measures;
* ``Standing``: one customer's final figures, for ``--customers`` and the
  report's distributions;
* ``SimulationResult``: all of it, with ``customer_rows()``, ``deltas()`` and
  ``group_changes()`` (who gains and loses by tier and by segment).

Segments are counted like tiers: from the engine's own flags
(``CustomerState.segments``), at the end (``Totals``, ``Standing``) and as
month-end stocks (``Tracker``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any, Iterable, Iterator
from zoneinfo import ZoneInfo

import attrs

from poletti.dsl import classes
from poletti.engine.compiler import CompiledProgram
from poletti.engine.money import SCALE, from_units
from poletti.engine.program import Program
from poletti.engine.state import CustomerState
from poletti.engine.timecalc import day_start_us, from_us, local_date, parse_timestamp, require_aware
from poletti.interpreter.events import FIRST_YEAR, LAST_YEAR

CENT = Decimal("0.01")
ONE_MICROSECOND = timedelta(microseconds=1)
DAYS_PER_MONTH = 365.25 / 12


def money(value: Decimal) -> str:
    """A money figure as the summary writes it: a decimal string with two places."""
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _round_half_up(value: Fraction, places: int) -> Decimal:
    """``value`` rounded half away from zero to ``places`` decimals, exactly (no "-0")."""
    scaled = abs(value) * 10 ** places
    whole = int(scaled)  # floor of a non-negative number
    if scaled - whole >= Fraction(1, 2):
        whole += 1
    if value < 0:
        whole = -whole
    return Decimal(whole).scaleb(-places) if whole else Decimal(0).quantize(Decimal(1).scaleb(-places))


def fraction_money(value: Fraction) -> str:
    """An exact amount (a Fraction of the currency) as the summary writes money: two places, half up."""
    return str(_round_half_up(value, 2))


def percent(share: Fraction, places: int) -> str:
    """``share`` (0.0031 for 0.31 %) as a percentage with ``places`` decimals, half up: "0.31"."""
    return str(_round_half_up(share * 100, places))


POINT_VALUE_PLACES = 6  # a point value with no finite decimal (3.50 EUR ÷ 30 points) is shown to this many places


def point_value_text(value: Decimal, points: int = 1) -> str:
    """What one point is worth, as text: exact with at least two places ("0.05", "0.005", "1.00"); a value
    with no finite decimal, or more places than ``POINT_VALUE_PLACES``, rounded half up to that many."""
    exact = Fraction(value) / points
    shown = _round_half_up(exact, POINT_VALUE_PLACES)
    if Fraction(shown) == exact:
        shown = shown.normalize()
        if shown.as_tuple().exponent > -2:  # type: ignore[operator]
            shown = shown.quantize(CENT)
    return f"{shown:f}"


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``tz``."""
    return from_us(day_start_us(day, tz))


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


def month_of_us(instant: int, tz: ZoneInfo) -> date:
    return local_date(instant, tz).replace(day=1)


def next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def months_between(first: date, last: date) -> Iterator[date]:
    """Every month start from ``first`` to ``last``, both included."""
    month = first
    while month <= last:
        yield month
        month = next_month(month)


QUIET_MONTHS_SHOWN = 12  # a quiet stretch of at most this many months is shown (as zeros); a longer one is left out


def _months_apart(a: date, b: date) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def shown_months(first: date | None, last: date | None, trackers: Iterable[Tracker], activity: Activity) -> list[date]:
    """The months of the month series: those with activity, and the quiet months between them, up to a year.

    A month has activity when an accepted event falls in it or a program's
    figures change in it (an expiry, a tier lapsing). ``first`` and
    ``last`` (the months of the first event and of the end) are always
    there. A quiet stretch of up to ``QUIET_MONTHS_SHOWN`` months is filled
    in; a longer one is left out, so the series grows with the activity,
    never with the calendar span (one row dated 8999 adds one month, not
    84,000).
    """
    if first is None or last is None:
        return []
    marks = {first, last}
    for tracker in trackers:
        marks.update(month for month, change in tracker.months.items() if first <= month <= last and change.moved())
    marks.update(month for month in activity.by_month if first <= month <= last)
    shown: list[date] = []
    for month in sorted(marks):
        if shown and 1 < _months_apart(shown[-1], month) <= QUIET_MONTHS_SHOWN + 1:
            shown.extend(months_between(next_month(shown[-1]), month))
            continue
        shown.append(month)
    return shown


# ------------------------------------------------------------------ records


@classes.frozen
class Rejected:
    """A rejected event. ``rules``: which program rejected it — new, baseline or both."""

    row: int
    event_id: str | None
    customer: str | None
    reason: str
    rules: str = "new"


@classes.define
class Month:
    """One program's figures for one calendar month.

    Flows (earned … cost) count what happened in the month; ``outstanding``,
    ``tiers``, ``customers`` and ``segments`` (customers in each declared
    segment) are stocks at its end (for the last month: at the final clock).
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
    segments: dict[str, int] = attrs.Factory(dict)


@classes.define
class ActivityMonth:
    start: date
    purchases: int = 0
    spend: Decimal = Decimal(0)
    purchasers: int = 0  # distinct customers with a purchase in the month
    active: int = 0  # distinct customers with any accepted event in the month


# ------------------------------------------------------------ month series


@classes.define
class MonthChange:
    """What one program's customers did in one month, and how its stocks moved (money in micro-units)."""

    earned: int = 0
    spent: int = 0
    expired: int = 0
    reversed: int = 0
    rewards: Counter[str] = attrs.Factory(Counter)
    cost: int = 0
    outstanding: int = 0  # change of the stock
    tiers: Counter[str] = attrs.Factory(Counter)  # change of the count per tier ("none" for no tier)
    customers: int = 0  # customers seen for the first time
    segments: Counter[str] = attrs.Factory(Counter)  # change of the count of customers in each segment

    def moved(self) -> bool:
        """Whether anything happened: a flow, or a change of a stock."""
        return bool(self.earned or self.spent or self.expired or self.reversed or self.cost or self.outstanding
                    or self.customers or any(self.rewards.values()) or any(self.tiers.values())
                    or any(self.segments.values()))


class Tracker:
    """One program's month series, fed with each customer's figures after each event or clock step.

    ``absorb`` takes the customer's held points (balance + pending), lifetime
    points, tier and segment flags (``CustomerState.segments``) after the
    step, and what the step did (points spent, expired, reversed, rewards
    granted); the month's flows and the changes of its stocks follow from
    the customer's previous figures.
    """

    def __init__(self, compiled: CompiledProgram, reward_values: Mapping[str, int | None]) -> None:
        self.tier_names = compiled.tier_names
        self.segment_names = compiled.segment_names
        self.values = {name: value or 0 for name, value in reward_values.items()}
        # customer → (held, lifetime, tier rank, segment flags)
        self.last: dict[str, tuple[int, int, int, tuple[bool, ...]]] = {}
        self.months: dict[date, MonthChange] = {}
        self._outside = (False,) * len(self.segment_names)  # a new customer is in no segment yet

    def absorb(self, month: date, customer: str, held: int, lifetime: int, tier: int, spent: int, expired: int,
               reversed_: int, granted: Mapping[str, int], segments: Iterable[bool] = ()) -> None:
        change = self.months.get(month)
        if change is None:
            change = self.months[month] = MonthChange()
        last = self.last.get(customer)
        if last is None:
            last = (0, 0, 0, self._outside)
            change.customers += 1
            change.tiers["none"] += 1
        self._flows(change, last, held, lifetime, spent, expired, reversed_, granted)
        if tier != last[2]:
            change.tiers[self.tier_names[last[2]] or "none"] -= 1
            change.tiers[self.tier_names[tier] or "none"] += 1
        if not self.segment_names:  # (the usual case: no segments, nothing to compare)
            self.last[customer] = (held, lifetime, tier, self._outside)
            return
        inside = tuple(segments)
        assert len(inside) == len(self.segment_names), "absorb needs the state's segment flags"
        if inside != last[3]:
            for name, was, now in zip(self.segment_names, last[3], inside):
                if was != now:
                    change.segments[name] += 1 if now else -1
        self.last[customer] = (held, lifetime, tier, inside)

    def settle(self) -> None:
        """Forget the customers' last figures: every customer absorbed so far has had their last step (a replay
        calls this after each set of whole customers, so it holds one shard's customers, not all of them)."""
        self.last.clear()

    def absorb_pool(self, month: date, account: str, held: int, lifetime: int, spent: int, expired: int,
                    reversed_: int, granted: Mapping[str, int]) -> None:
        """An account's pool after an event or a clock step: stocks and flows, but no customer and no tier
        (its contacts are ``absorb``ed with nothing held)."""
        change = self.months.get(month)
        if change is None:
            change = self.months[month] = MonthChange()
        last = self.last.get(account, (0, 0, 0, self._outside))
        self._flows(change, last, held, lifetime, spent, expired, reversed_, granted)
        self.last[account] = (held, lifetime, last[2], last[3])

    def _flows(self, change: MonthChange, last: tuple[int, int, int, tuple[bool, ...]], held: int, lifetime: int,
               spent: int, expired: int, reversed_: int, granted: Mapping[str, int]) -> None:
        """The month's flows of one step, and the change of the points held (against the ``last`` figures)."""
        change.outstanding += held - last[0]
        change.earned += lifetime - last[1]
        change.spent += spent
        change.expired += expired
        change.reversed += reversed_
        for reward, count in granted.items():
            change.rewards[reward] += count
            change.cost += self.values.get(reward, 0) * count

    def merge(self, other: Tracker) -> None:
        """Add another shard's series (its customers are not this one's)."""
        self.last.update(other.last)
        for month, theirs in other.months.items():
            mine = self.months.get(month)
            if mine is None:
                self.months[month] = theirs
                continue
            for name in ("earned", "spent", "expired", "reversed", "cost", "outstanding", "customers"):
                setattr(mine, name, getattr(mine, name) + getattr(theirs, name))
            mine.rewards.update(theirs.rewards)
            mine.tiers.update(theirs.tiers)
            mine.segments.update(theirs.segments)

    def series(self, months: Iterable[date], program: Program) -> list[Month]:
        """The ``months`` (in order; see ``shown_months``): flows of each, stocks at each one's end.

        A month left out must have no change (``shown_months`` keeps every one that has).
        """
        tier_order = [tier.name for tier in program.tiers] + ["none"]
        rewards = list(program.rewards)
        outstanding = customers = 0
        tiers: Counter[str] = Counter()
        segments: Counter[str] = Counter()
        out = []
        for start in months:
            change = self.months.get(start, MonthChange())
            outstanding += change.outstanding
            customers += change.customers
            tiers.update(change.tiers)
            segments.update(change.segments)
            month_rewards = {name: 0 for name in rewards}
            month_rewards.update({k: v for k, v in change.rewards.items()})
            out.append(Month(start, change.earned, change.spent, change.expired, change.reversed, month_rewards,
                             from_units(change.cost), outstanding, {name: tiers.get(name, 0) for name in tier_order},
                             customers, {name: segments.get(name, 0) for name in program.segments}))
        return out


# ------------------------------------------------------------ final figures


@classes.frozen
class Standing:
    """One customer's final figures under one program (money in micro-units, instants in µs)."""

    points: int
    pending_points: int
    lifetime_points: int
    debt: int
    tier: str | None
    rewards: tuple[tuple[str, int], ...]
    reward_value: int
    spend: int
    purchases: int
    first_event: int | None
    last_event: int | None
    segments: tuple[str, ...] = ()  # the segments the customer is in at the end, in the rules' order

    @property
    def reward_count(self) -> int:
        return sum(count for _, count in self.rewards)


@classes.define
class StandingColumns:
    """Final standings of a batch the arrays replayed, column by column; ``standing(i)`` makes one a Standing.

    Three hundred thousand Standing objects cost a second to make; a
    summary reads none of them, a customer table reads each once.
    """

    customers: list[str]
    points: Any
    lifetime: Any
    tiers: list[str | None]
    tier_of: Any  # index into ``tiers``
    granted: Any
    spend: Any
    purchases: Any
    first: Any
    last: Any
    reward: str | None
    value: int  # micro-units per grant

    def standing(self, i: int) -> Standing:
        granted, balance = int(self.granted[i]), int(self.points[i])
        return Standing(balance, 0, int(self.lifetime[i]), -balance if balance < 0 else 0,
                        self.tiers[int(self.tier_of[i])],
                        ((self.reward, granted),) if granted and self.reward is not None else (), self.value * granted,
                        int(self.spend[i]), int(self.purchases[i]), int(self.first[i]), int(self.last[i]))


class Standings(Mapping[str, Standing]):
    """Every customer's final standing under one program: Standing objects, and columns from the arrays.

    A mapping from customer to ``Standing`` like a dict; ``update`` takes in
    another shard's (customers never repeat across shards).
    """

    def __init__(self) -> None:
        self._objects: dict[str, Standing] = {}
        self._columns: list[StandingColumns] = []
        self._where: dict[str, tuple[int, int]] | None = None  # customer → (block, row), made when first asked

    def __setitem__(self, customer: str, standing: Standing) -> None:
        self._objects[customer] = standing

    def add_columns(self, block: StandingColumns) -> None:
        self._columns.append(block)
        self._where = None

    def update(self, other: Standings) -> None:  # type: ignore[override]
        self._objects.update(other._objects)
        self._columns.extend(other._columns)
        self._where = None

    def _index(self) -> dict[str, tuple[int, int]]:
        if self._where is None:
            self._where = {customer: (b, i) for b, block in enumerate(self._columns)
                           for i, customer in enumerate(block.customers)}
        return self._where

    def __getitem__(self, customer: str) -> Standing:
        found = self._objects.get(customer)
        if found is not None:
            return found
        b, i = self._index()[customer]
        return self._columns[b].standing(i)

    def __contains__(self, customer: object) -> bool:
        return customer in self._objects or (bool(self._columns) and customer in self._index())

    def __iter__(self) -> Iterator[str]:
        yield from self._objects
        for block in self._columns:
            yield from block.customers

    def __len__(self) -> int:
        return len(self._objects) + sum(len(block.customers) for block in self._columns)


def standing_of(state: CustomerState, compiled: CompiledProgram) -> Standing:
    ledger = state.ledger
    return Standing(
        ledger.balance, ledger.pending, ledger.lifetime, ledger.debt, compiled.tier_names[state.tier],
        tuple(sorted((name, count) for name, count in state.granted.items() if count)), state.totals.cost,
        state.spend_total, state.purchase_count, state.first_seen, state.last_event_at,
        segments_of(state, compiled))


def segments_of(state: CustomerState, compiled: CompiledProgram) -> tuple[str, ...]:
    """The segments ``state`` is in, as the engine last evaluated them (in the order the rules declare them)."""
    return tuple(name for name, inside in zip(compiled.segment_names, state.segments) if inside)


@classes.define
class Totals:
    """One program's final figures, summed over customers' final states (merge: add another shard's)."""

    customers: int = 0
    earned: int = 0
    spent: int = 0
    expired: int = 0
    reversed: int = 0
    outstanding: int = 0
    rewards: Counter[str] = attrs.Factory(Counter)
    tiers: Counter[str] = attrs.Factory(Counter)
    segments: Counter[str] = attrs.Factory(Counter)  # customers in each segment at the end
    cost: int = 0
    sales: int = 0  # accepted purchases less refunds, micro-units
    rejected: int = 0
    duplicates: int = 0
    # Issue 13: the wallet (used / expired per reward, the worth of those used), perks held at the end,
    # and per partner [points earned there, reversed by refunds, redeemed there].
    rewards_used: Counter[str] = attrs.Factory(Counter)
    rewards_expired: Counter[str] = attrs.Factory(Counter)
    cost_used: int = 0
    perks: Counter[str] = attrs.Factory(Counter)
    partners: dict[str, list[int]] = attrs.Factory(dict)

    def add_pool(self, account: CustomerState, compiled: CompiledProgram) -> None:
        """An account's pooled figures (``points pooled by account``): points, rewards, cost, and the wallet, perk
        and partner figures; its contacts are the customers (``add`` them with the account's tier)."""
        self._add_holdings(account, compiled)

    def add(self, state: CustomerState, compiled: CompiledProgram, tier: int | None = None) -> None:
        """A customer's final figures (``tier``: their account's, for a contact whose tier is pooled)."""
        self.customers += 1
        self.sales += state.spend_total
        self.tiers[compiled.tier_names[state.tier if tier is None else tier] or "none"] += 1
        self.segments.update(segments_of(state, compiled))  # a pooled contact's segments stay their own
        if tier is None:  # (a pooled contact's points, rewards and wallet are the account's: ``add_pool``)
            self._add_holdings(state, compiled)

    def _add_holdings(self, state: CustomerState, compiled: CompiledProgram) -> None:
        """What a state holds and did with points and rewards: a customer's own, or an account's pool."""
        totals = state.totals
        self.earned += totals.earned
        self.spent += totals.spent
        self.expired += totals.expired
        self.reversed += totals.reversed
        self.cost += totals.cost
        self.outstanding += state.ledger.outstanding
        if state.rewards:
            self.rewards.update(state.rewards)
        self.add_wallet(state, compiled)

    def merge(self, other: Totals) -> None:
        for name in ("customers", "earned", "spent", "expired", "reversed", "outstanding", "cost", "sales",
                     "rejected", "duplicates"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rewards.update(other.rewards)
        self.tiers.update(other.tiers)
        self.segments.update(other.segments)
        self.rewards_used.update(other.rewards_used)
        self.rewards_expired.update(other.rewards_expired)
        self.cost_used += other.cost_used
        self.perks.update(other.perks)
        self._add_partners(other.partners)

    def _add_partners(self, partners: Mapping[str, list[int]]) -> None:
        """Per partner [points earned there, reversed, redeemed there], added figure by figure."""
        for name, figures in partners.items():
            mine = self.partners.setdefault(name, [0, 0, 0])
            for i, value in enumerate(figures):
                mine[i] += value

    def add_wallet(self, state: CustomerState, compiled: CompiledProgram) -> None:
        """Issue 13's figures of one customer's final state."""
        if state.rewards_used:
            self.rewards_used.update(state.rewards_used)
        if state.rewards_expired:
            self.rewards_expired.update(state.rewards_expired)
        self.cost_used += state.total_cost_used
        if compiled.perks:
            from poletti.interpreter.perks import perks_held

            self.perks.update(perk.name for perk in perks_held(compiled, state))
        if state.partner_points:
            self._add_partners(state.partner_points)

    def wallet_summary(self, program: Program, rewards: dict[str, int]) -> dict[str, Any]:
        """``rewards_used``, ``rewards_expired``, ``rewards_held`` (granted − used − expired) and ``cost_used``;
        ``perks`` and ``partners`` when the program declares any."""
        from poletti.interpreter.wallet import settlement

        used = {name: self.rewards_used.get(name, 0) for name in rewards}
        expired = {name: self.rewards_expired.get(name, 0) for name in rewards}
        figures: dict[str, Any] = {
            "rewards_used": used,
            "rewards_expired": expired,
            "rewards_held": {name: granted - used[name] - expired[name] for name, granted in rewards.items()},
            "cost_used": money(from_units(self.cost_used)),
        }
        compiled = program.compiled
        if compiled.perks:
            figures["perks"] = {perk.name: self.perks.get(perk.name, 0) for perk in compiled.perks}
        if compiled.partners:
            partners = {}
            for name, rate in compiled.partners.items():
                earned, reversed_, redeemed = self.partners.get(name, [0, 0, 0])
                partners[name] = {"points_issued": earned - reversed_, "points_reversed": reversed_,
                                  "points_redeemed": redeemed,
                                  "settlement": str(settlement([earned, reversed_, redeemed], rate))}
            figures["partners"] = partners
        return figures

    def summary(self, program: Program, events: int) -> dict[str, Any]:
        """The contract's summary object for this program."""
        rewards = {name: 0 for name in program.rewards}
        rewards.update((name, count) for name, count in sorted(self.rewards.items()) if count)
        tiers = {tier.name: 0 for tier in program.tiers}
        tiers["none"] = 0
        tiers.update(self.tiers)
        infos = program.rewards
        cost_unknown = sorted(name for name, count in rewards.items()
                              if count and (name not in infos or infos[name].value is None))
        return {
            "events": events,
            "rejected": self.rejected,
            "customers": self.customers,
            "points": {"earned": self.earned, "spent": self.spent, "expired": self.expired,
                       "reversed": self.reversed, "outstanding": self.outstanding},
            "rewards": rewards,
            "tiers": tiers,
            "cost": money(from_units(self.cost)),
            "cost_unknown": cost_unknown,
            "currency": program.currency,
            "duplicates": self.duplicates,
            "segments": {name: self.segments.get(name, 0) for name in program.segments},
            **self.money_figures(program),
            **self.wallet_summary(program, rewards),
        }

    def money_figures(self, program: Program) -> dict[str, Any]:
        """The figures in money: the point value, sales, the points liability and the cost as a share of sales.

        Worked out here, from the totals alone, so every replay path gives
        them alike. The liability is points × the point value, exact (a
        derived value such as 3.50 EUR for 30 points is kept as the pair),
        rounded half up to cents only when written; null when the point value
        is unknown. ``cost_share_of_sales`` is cost ÷ sales as a percentage
        with two decimals, null when there are no sales.
        """
        found = program.compiled.point_value
        value = None if found is None else Fraction(found.value) / found.points

        def liability(points: int) -> str | None:
            return None if value is None else fraction_money(points * value)

        return {
            "point_value": None if found is None else point_value_text(found.value, found.points),
            "point_value_source": None if found is None else found.source,
            "sales": money(from_units(self.sales)),
            "liability": {"outstanding": liability(self.outstanding), "expired": liability(self.expired)},
            "cost_share_of_sales": percent(Fraction(self.cost, self.sales), 2) if self.sales else None,
        }


# ------------------------------------------------------------------ activity

US_PER_DAY = 86_400_000_000
FREQUENCY_DAYS = 30  # purchase frequency and spend per customer are per 30 days of the period
MEMBER_ATTRIBUTE = "member"  # a purchase's yes/no membership flag (see ``member_flag``)
SCORE_ATTRIBUTE = "score"  # a feedback event's 0–10 score (see ``nps_score``)
_YES, _NO = frozenset({"true", "yes", "1"}), frozenset({"false", "no", "0"})


def member_flag(value: Any) -> bool | None:
    """A ``member`` cell as yes/no: true/false (JSON, Parquet), the texts true/false/yes/no/1/0 (any case,
    spaces around), or the whole numbers 1/0; anything else (or absent) is unknown: None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return True if value == 1 else False if value == 0 else None
    if isinstance(value, str):
        text = value.strip().lower()
        return True if text in _YES else False if text in _NO else None
    return None


def nps_score(value: Any) -> int | None:
    """A feedback ``score`` cell as a whole number 0 … 10, or None (absent, not whole, out of range, a yes/no)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not (text.isdigit() and text.isascii() and len(text) <= 2):
            return None
        value = int(text)
    if isinstance(value, int) and 0 <= value <= 10:
        return value
    return None


def _days(start: datetime | None, end: datetime | None) -> Fraction:
    """The length of [start, end] in days of 24 hours, exact (0 when either end is unknown)."""
    if start is None or end is None:
        return Fraction(0)
    return Fraction((end - start) // ONE_MICROSECOND, US_PER_DAY)


def _rate(value: Fraction, places: int = 4) -> float:
    """An exact ratio shown as a JSON number, rounded half up (the same on every replay path)."""
    return float(_round_half_up(value, places))


@classes.define
class Period:
    start: datetime | None = None
    end: datetime | None = None
    purchases: int = 0
    spend: int = 0  # micro-units
    customers: int = 0
    repeaters: int = 0

    def add(self, other: Period) -> None:
        self.purchases += other.purchases
        self.spend += other.spend
        self.customers += other.customers
        self.repeaters += other.repeaters

    def measures(self) -> dict[str, Any]:
        days = (self.end - self.start).total_seconds() / 86400 if self.start and self.end else 0.0
        per_customer = self.purchases / self.customers if self.customers else None
        months = days / DAYS_PER_MONTH
        spend = from_units(self.spend)
        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "days": _rate(_days(self.start, self.end)),
            "purchases": self.purchases,
            "purchasing_customers": self.customers,
            "repeat_purchasers": self.repeaters,
            "repeat_purchase_rate": round(self.repeaters / self.customers, 4) if self.customers else None,
            "purchases_per_customer": round(per_customer, 4) if per_customer is not None else None,
            "purchases_per_customer_per_month":
                round(per_customer / months, 4) if per_customer is not None and months > 0 else None,
            "spend": money(spend),
            "average_basket": money(spend / self.purchases) if self.purchases else None,
        }


@classes.define
class Group:
    """Purchases of one membership group (members, non-members): counts, spend (micro-units), customers."""

    purchases: int = 0
    spend: int = 0
    customers: int = 0

    def add(self, other: Group) -> None:
        self.purchases += other.purchases
        self.spend += other.spend
        self.customers += other.customers

    def measures(self) -> dict[str, Any]:
        spend = Fraction(self.spend, SCALE)
        return {
            "customers": self.customers,
            "purchases": self.purchases,
            "spend": fraction_money(spend),
            "average_basket": fraction_money(spend / self.purchases) if self.purchases else None,
            "spend_per_customer": fraction_money(spend / self.customers) if self.customers else None,
            "purchases_per_customer": _rate(Fraction(self.purchases, self.customers)) if self.customers else None,
        }


def cohort_side(customers: int, purchases: int, spend_units: int, days: Fraction) -> dict[str, Any]:
    """One period's figures of the customers who bought in both periods: per customer, per 30 days."""
    spend = Fraction(spend_units, SCALE)
    per_30d = days / FREQUENCY_DAYS
    known = customers > 0 and per_30d > 0
    return {
        "days": _rate(days),
        "purchases": purchases,
        "spend": fraction_money(spend),
        "purchases_per_customer_per_30d": _rate(Fraction(purchases, customers) / per_30d) if known else None,
        "average_basket": fraction_money(spend / purchases) if purchases else None,
        "spend_per_customer_per_30d": fraction_money(spend / customers / per_30d) if known else None,
    }


def nps_kind(score: int) -> str:
    """"promoters" (9–10), "passives" (7–8) or "detractors" (0–6)."""
    return "promoters" if score >= 9 else "detractors" if score <= 6 else "passives"


def nps_of(tally: Mapping[str, int], responses: int) -> dict[str, Any]:
    """NPS over the respondents (one latest score per customer, counted by ``nps_kind``): % promoters − %
    detractors."""
    respondents = sum(tally.values())
    promoters, passives, detractors = (tally.get(kind, 0) for kind in ("promoters", "passives", "detractors"))
    return {
        "respondents": respondents,
        "responses": responses,
        "promoters": promoters,
        "passives": passives,
        "detractors": detractors,
        "nps": _rate(Fraction(promoters - detractors, respondents) * 100, 1) if respondents else None,
    }


_WHOLE_PERIOD = (("all", 0),)  # the periods (and count slots) a purchase counts in without an effect date


class Activity:
    """Purchases of the new program's run: by month, and the program-effect measures.

    A purchase is an accepted purchase event; its amount is the gross amount
    (refunds later are not netted). Periods: the whole history, and with
    ``effect_from`` the part before that instant and the part from it on.
    Each customer's events come in time order, so "distinct customers in a
    month" needs only each customer's last month.

    Besides the periods (see docs/simulate.md, "Effect measures"): the
    cohort of customers who bought in both periods (each customer's counts
    are kept until the end, when it is known who bought in both; a
    whole-array batch adds its finished sums to ``cohort``), the NPS of
    accepted feedback events' scores (each customer's latest per period),
    and purchases by membership flag. Shards hold disjoint customers, so
    ``merge`` adds the sums and joins the per-customer tables.
    """

    def __init__(self, tz: ZoneInfo, effect_from: datetime | None) -> None:
        self.tz = tz
        self.effect_from = effect_from
        self._pivot = None if effect_from is None else int((effect_from - from_us(0)) / ONE_MICROSECOND)
        self.periods = {"all": Period(), "before": Period(), "after": Period()}
        self.by_month: dict[date, ActivityMonth] = {}
        # customer → purchases in (all, before, after), spend before, spend after (micro-units)
        self._counts: dict[str, list[int]] = {}
        self._last_active: dict[str, date] = {}
        self._last_purchase: dict[str, date] = {}
        self.months: list[ActivityMonth] = []  # the series, once ``finish`` has run
        self.cohort = [0, 0, 0, 0, 0]  # finished sums: customers, purchases before/after, spend before/after
        self.groups = {"member": Group(), "non_member": Group()}
        self.unflagged = 0  # purchases without a readable membership flag
        self._groups_of: dict[str, int] = {}  # customer → groups bought in (bit 1: member, bit 2: non-member)
        self.scores: dict[str, list[int | None]] = {}  # customer → latest score in (all, before, after)
        self._settled_scores: list[Counter[str]] = [Counter(), Counter(), Counter()]  # ``settle``d customers' kinds
        self.responses = [0, 0, 0]  # scored feedback events in (all, before, after)
        self.unscored = 0  # accepted feedback events without a readable score
        self._decimals: dict[int, Decimal] = {}  # amount in micro-units → from_units(amount)

    def _month(self, month: date) -> ActivityMonth:
        entry = self.by_month.get(month)
        if entry is None:
            entry = self.by_month[month] = ActivityMonth(month)
        return entry

    def event(self, customer: str, month: date) -> None:
        if self._last_active.get(customer) != month:
            self._last_active[customer] = month
            self._month(month).active += 1

    def purchase(self, customer: str, at: int, amount: int, month: date, member: Any = None) -> None:
        """An accepted purchase; ``member``: the raw ``member`` cell of the event (see ``member_flag``)."""
        counts = self._counts.get(customer)
        if counts is None:
            counts = self._counts[customer] = [0, 0, 0, 0, 0]
        if self._pivot is None:
            slots: tuple[tuple[str, int], ...] = _WHOLE_PERIOD  # (the usual run: no effect date)
        else:
            slots = (("all", 0), ("before", 1) if at < self._pivot else ("after", 2))
            counts[2 + slots[1][1]] += amount
        for name, slot in slots:
            period = self.periods[name]
            period.purchases += 1
            period.spend += amount
            counts[slot] += 1
            if counts[slot] == 1:
                period.customers += 1
            elif counts[slot] == 2:
                period.repeaters += 1
        self._in_month(customer, amount, month, member)

    def _in_month(self, customer: str, amount: int, month: date, member: Any) -> None:
        """A purchase's part of the month series and of the membership groups."""
        entry = self.by_month.get(month) or self._month(month)
        entry.purchases += 1
        spend = self._decimals.get(amount)  # (a café's prices repeat: each amount made a Decimal once)
        if spend is None:
            if len(self._decimals) >= 4096:  # bounded: it travels with the activity between processes
                self._decimals.clear()
            spend = self._decimals[amount] = from_units(amount)
        entry.spend += spend
        if self._last_purchase.get(customer) != month:
            self._last_purchase[customer] = month
            entry.purchasers += 1
        if member is None:  # (no membership column: ``member_flag`` would say unknown)
            self.unflagged += 1
            return
        flag = member_flag(member)
        if flag is None:
            self.unflagged += 1
            return
        group, bit = (self.groups["member"], 1) if flag else (self.groups["non_member"], 2)
        group.purchases += 1
        group.spend += amount
        seen = self._groups_of.get(customer, 0)
        if not seen & bit:
            self._groups_of[customer] = seen | bit
            group.customers += 1

    def feedback(self, customer: str, at: int, score: Any) -> None:
        """An accepted feedback event; ``score``: its raw ``score`` cell (see ``nps_score``)."""
        value = nps_score(score)
        if value is None:
            self.unscored += 1
            return
        latest = self.scores.get(customer)
        if latest is None:
            latest = self.scores[customer] = [None, None, None]
        slots = [0] if self._pivot is None else [0, 1 if at < self._pivot else 2]
        for slot in slots:
            latest[slot] = value  # a customer's events come in time order: the last one is the latest
            self.responses[slot] += 1

    def merge(self, other: Activity) -> None:
        for name, period in other.periods.items():
            self.periods[name].add(period)
        for month, theirs in other.by_month.items():
            mine = self._month(month)
            mine.purchases += theirs.purchases
            mine.spend += theirs.spend
            mine.purchasers += theirs.purchasers
            mine.active += theirs.active
        self._counts.update(other._counts)
        self.cohort = [a + b for a, b in zip(self.cohort, other.cohort)]
        for name, group in other.groups.items():
            self.groups[name].add(group)
        self.unflagged += other.unflagged
        self.scores.update(other.scores)
        for mine, theirs in zip(self._settled_scores, other._settled_scores):
            mine.update(theirs)
        self.responses = [a + b for a, b in zip(self.responses, other.responses)]
        self.unscored += other.unscored

    def settle(self) -> None:
        """Fold the per-customer tables into sums: every customer seen so far has had their last event (a
        replay calls this after each set of whole customers, so the tables hold one shard's customers, not
        every customer of the history)."""
        self.cohort = self.cohort_sums()
        self._settled_scores = [self.nps_tally(slot) for slot in range(len(self._settled_scores))]
        for table in (self._counts, self._last_active, self._last_purchase, self._groups_of, self.scores):
            table.clear()

    def nps_tally(self, slot: int) -> Counter[str]:
        """Respondents by kind in period ``slot`` (0 all, 1 before, 2 after): settled and still tabled."""
        tally = Counter(self._settled_scores[slot])
        tally.update(nps_kind(latest[slot]) for latest in self.scores.values()  # type: ignore[arg-type]
                     if latest[slot] is not None)
        return tally

    def finish(self, months: Iterable[date]) -> None:
        """The month series over ``months`` (see ``shown_months``; a month without activity is zeros)."""
        self.months = [self.by_month.get(month) or ActivityMonth(month) for month in months]

    def cohort_sums(self) -> list[int]:
        """Customers who bought before and after ``effect_from``; their purchases and spend on each side."""
        sums = list(self.cohort)
        for counts in self._counts.values():
            if counts[1] and counts[2]:
                sums[0] += 1
                sums[1] += counts[1]
                sums[2] += counts[2]
                sums[3] += counts[3]
                sums[4] += counts[4]
        return sums

    def measures(self, first: datetime | None, end: datetime | None) -> dict[str, Any]:
        tz = self.tz
        local = (lambda t: t.astimezone(tz) if t is not None else None)  # noqa: E731
        all_, before, after = self.periods["all"], self.periods["before"], self.periods["after"]
        all_.start, all_.end = local(first), local(end)
        result: dict[str, Any] = {"all": all_.measures()}
        if self.effect_from is not None:
            pivot = local(self.effect_from)
            start, stop = local(first), local(end)
            before.start = start
            before.end = min(pivot, stop) if stop is not None and pivot is not None else pivot
            after.start = max(pivot, start) if start is not None and pivot is not None else pivot
            after.end = stop
            if before.start is not None and before.end is not None and before.end < before.start:
                before.end = before.start
            if after.start is not None and after.end is not None and after.end < after.start:
                after.end = after.start
            result["effect_from"] = pivot.isoformat() if pivot is not None else None
            result["before"] = before.measures()
            result["after"] = after.measures()
            customers, bought_before, bought_after, spent_before, spent_after = self.cohort_sums()
            result["cohort"] = {
                "customers": customers,
                "before": cohort_side(customers, bought_before, spent_before, _days(before.start, before.end)),
                "after": cohort_side(customers, bought_after, spent_after, _days(after.start, after.end)),
            }
        if self.responses[0] or self.unscored:
            nps: dict[str, Any] = {"all": nps_of(self.nps_tally(0), self.responses[0])}
            if self.effect_from is not None:
                for slot, name in ((1, "before"), (2, "after")):
                    nps[name] = nps_of(self.nps_tally(slot), self.responses[slot])
            nps["unscored"] = self.unscored
            result["nps"] = nps
        if self.groups["member"].purchases or self.groups["non_member"].purchases:
            result["members"] = {name: group.measures() for name, group in self.groups.items()}
            result["members"]["purchases_without_flag"] = self.unflagged
        return result


# -------------------------------------------------------------------- result


@classes.define
class ProgramFigures:
    """One program's side of a simulation: its month series and every customer's final standing (None: not
    kept, see ``simulate_file``'s ``keep_standings``)."""

    program: Program
    months: list[Month]
    standings: Mapping[str, Standing] | None


class StandingsNotKept(RuntimeError):
    """Per-customer figures asked of a simulation run without them (``keep_standings=False``)."""


CUSTOMER_COLUMNS = ("customer", "points", "pending_points", "lifetime_points", "debt", "tier", "segments",
                    "rewards", "reward_value", "spend", "purchases", "first_event", "last_event")
BASELINE_COLUMNS = ("baseline_points", "baseline_pending_points", "baseline_lifetime_points", "baseline_tier",
                    "baseline_segments", "baseline_rewards", "baseline_reward_value", "delta_points", "delta_held_points",
                    "delta_lifetime_points", "delta_rewards", "delta_reward_value", "tier_change", "change")
_NOTHING = Standing(0, 0, 0, 0, None, (), 0, 0, 0, None, None)


def change_of(mine: Standing, theirs: Standing) -> str:
    """"gains", "loses" or "same": what the new rules (``mine``) do for a customer against the baseline's.

    Reward value decides first, then points earned, then points held at the
    end: a customer who gets more rewards gains, even with fewer points left.
    """
    key = (mine.reward_value - theirs.reward_value, mine.lifetime_points - theirs.lifetime_points,
           mine.points + mine.pending_points - theirs.points - theirs.pending_points)
    return "gains" if key > (0, 0, 0) else "loses" if key < (0, 0, 0) else "same"


@classes.define
class GroupChange:
    """One group's customers under new against baseline rules: how many gain, lose or stay the same, and the
    change of their points earned and of their rewards' value (micro-units), summed."""

    customers: int = 0
    gain: int = 0
    lose: int = 0
    same: int = 0
    earned: int = 0
    value: int = 0

    def add(self, change: str, earned: int, value: int) -> None:
        self.customers += 1
        if change == "gains":
            self.gain += 1
        elif change == "loses":
            self.lose += 1
        else:
            self.same += 1
        self.earned += earned
        self.value += value

    def merge(self, other: GroupChange) -> None:
        self.customers += other.customers
        self.gain += other.gain
        self.lose += other.lose
        self.same += other.same
        self.earned += other.earned
        self.value += other.value

    def figures(self) -> dict[str, Any]:
        return {"customers": self.customers, "gain": self.gain, "lose": self.lose, "same": self.same,
                "earned_points_change": self.earned, "reward_value_change": money(from_units(self.value))}


def standing_pairs(new: Mapping[str, Standing], old: Mapping[str, Standing]) -> Iterator[tuple[Standing, Standing]]:
    """Each customer's (new, baseline) standing, in no set order; a customer only one side has is nothing on the
    other."""
    for customer in new:
        yield new[customer], old.get(customer, _NOTHING)
    for customer in old:
        if customer not in new:
            yield _NOTHING, old[customer]


class GroupChanges:
    """Who gains and who loses under the new rules, by tier and by segment, added up customer by customer.

    A customer's group is where the new rules leave them at the end: the
    tier they hold ("none" for no tier) and each segment they are in (a
    customer in two segments counts in both; one in none in no segment
    group). Every tier and segment the new rules declare is listed, zeros
    included, in the rules' order. Sums over customers: a replay adds up
    each shard's customers as it finishes them and merges the shards.
    """

    def __init__(self, program: Program) -> None:
        self.tiers = {tier.name: GroupChange() for tier in program.tiers}
        self.tiers["none"] = GroupChange()
        self.segments = {name: GroupChange() for name in program.segments}

    def add(self, new: Mapping[str, Standing], old: Mapping[str, Standing]) -> None:
        """The customers of ``new`` and ``old`` (the same customers' standings under each program)."""
        for mine, theirs in standing_pairs(new, old):
            change = change_of(mine, theirs)
            earned = mine.lifetime_points - theirs.lifetime_points
            value = mine.reward_value - theirs.reward_value
            groups = [self.tiers.setdefault(mine.tier or "none", GroupChange())]
            groups += [self.segments[name] for name in mine.segments if name in self.segments]
            for group in groups:
                group.add(change, earned, value)

    def merge(self, other: GroupChanges) -> None:
        for mine, theirs in ((self.tiers, other.tiers), (self.segments, other.segments)):
            for name, group in theirs.items():
                mine.setdefault(name, GroupChange()).merge(group)

    def figures(self) -> dict[str, Any]:
        return {"by": "new rules, at the end",
                "tiers": {name: group.figures() for name, group in self.tiers.items()},
                "segments": {name: group.figures() for name, group in self.segments.items()}}


@classes.define
class SimulationResult:
    summary: dict[str, Any]
    new: ProgramFigures
    baseline: ProgramFigures | None
    rejections: list[Rejected]
    activity: Activity
    first: datetime | None  # the first event's instant
    end: datetime | None  # where the clock was advanced to
    reordered: bool | None = None

    def __attrs_post_init__(self) -> None:
        # Here, so that every replay path adds the same figures: they come from the final standings alone
        # (a replay that does not keep them adds them up shard by shard and puts them in the summary).
        if self.baseline is not None and "groups" not in self.summary:
            self.summary["groups"] = self.group_changes()

    def _standings(self, figures: ProgramFigures) -> Mapping[str, Standing]:
        if figures.standings is None:
            raise StandingsNotKept("this simulation did not keep each customer's figures (keep_standings=False): "
                                   "run it with keep_standings=True for customer rows and their changes")
        return figures.standings

    @property
    def tz(self) -> ZoneInfo:
        return self.new.program.compiled.tz

    def _row(self, customer: str, standing: Standing, prefix: str) -> dict[str, Any]:
        tz = self.tz
        values = {
            "customer": customer,
            "points": standing.points,
            "pending_points": standing.pending_points,
            "lifetime_points": standing.lifetime_points,
            "debt": standing.debt,
            "tier": standing.tier,
            "segments": ";".join(standing.segments),
            "rewards": ";".join(f"{name}={count}" for name, count in standing.rewards),
            "reward_value": money(from_units(standing.reward_value)),
            "spend": money(from_units(standing.spend)),
            "purchases": standing.purchases,
            "first_event": "" if standing.first_event is None else from_us(standing.first_event).astimezone(tz).isoformat(),
            "last_event": "" if standing.last_event is None else from_us(standing.last_event).astimezone(tz).isoformat(),
        }
        return {prefix + key: value for key, value in values.items()}

    def customer_rows(self) -> Iterator[dict[str, Any]]:
        """One row per customer (sorted by id): final standing, and with a baseline the old one and the change."""
        new = self._standings(self.new)
        if self.baseline is None:
            for customer in sorted(new):
                yield self._row(customer, new[customer], "")
            return
        old = self._standings(self.baseline)
        for customer in sorted(set(new) | set(old)):
            mine, theirs = new.get(customer, _NOTHING), old.get(customer, _NOTHING)
            row = self._row(customer, mine, "")
            before = self._row(customer, theirs, "baseline_")
            row.update((k, v) for k, v in before.items() if k != "baseline_customer")
            held = mine.points + mine.pending_points - theirs.points - theirs.pending_points
            value = from_units(mine.reward_value - theirs.reward_value)
            earned = mine.lifetime_points - theirs.lifetime_points
            row["delta_points"] = mine.points - theirs.points
            row["delta_held_points"] = held
            row["delta_lifetime_points"] = earned
            row["delta_rewards"] = mine.reward_count - theirs.reward_count
            row["delta_reward_value"] = money(value)
            row["tier_change"] = "" if theirs.tier == mine.tier else f"{theirs.tier or 'none'}→{mine.tier or 'none'}"
            row["change"] = change_of(mine, theirs)
            yield row

    def group_changes(self) -> dict[str, Any]:
        """Who gains and who loses, by tier and by segment (see ``GroupChanges``); {} without a baseline."""
        if self.baseline is None:
            return {}
        changes = GroupChanges(self.new.program)
        changes.add(self._standings(self.new), self._standings(self.baseline))
        return changes.figures()

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


DELTA_KEYS = ("events", "rejected", "customers", "points", "rewards", "tiers", "segments", "cost", "duplicates", "sales",
              "liability", "cost_share_of_sales", "point_value",
              "rewards_used", "rewards_expired", "rewards_held", "cost_used", "perks", "partners")


def _difference(a: str | None, b: str | None, show: Any) -> str | None:
    """A figure that may be unknown (null): new minus old, or null when either side is unknown."""
    return None if a is None or b is None else show(Decimal(a) - Decimal(b))


def delta(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """New minus old for every figure of the summary (nested tables by key, missing = 0; cost as money).

    The liability, the share of sales and the point value are null when
    either side's is unknown; the share of sales changes in percentage
    points (two places), the point value as the summary writes point values.
    """

    def diff(a: Any, b: Any) -> Any:
        if isinstance(a, dict) or isinstance(b, dict):
            a, b = a or {}, b or {}
            keys = list(a) + [k for k in b if k not in a]
            return {k: diff(a.get(k), b.get(k)) for k in keys}
        if isinstance(a, str) or isinstance(b, str):
            return money(Decimal(a or 0) - Decimal(b or 0))
        return (a or 0) - (b or 0)

    def liability(a: Any, b: Any) -> dict[str, Any]:
        a, b = a or {}, b or {}
        return {k: _difference(a.get(k), b.get(k), money) for k in ("outstanding", "expired")}

    special = {
        "liability": liability,
        "cost_share_of_sales": lambda a, b: _difference(a, b, money),
        "point_value": lambda a, b: _difference(a, b, lambda d: point_value_text(d)),
    }
    return {key: special.get(key, diff)(new.get(key), old.get(key)) for key in DELTA_KEYS
            if key in new or key in old}


def delta_pct(changes: Any, old: Any) -> Any:
    """Every figure of ``delta`` as a percentage of the old figure: one decimal, as text.

    Null when the old figure is 0, missing or unknown, or the change is
    unknown. The percentage is of the old figure's size, so its sign is the
    change's: outstanding points going from -10 to -5 is +50.0.
    """
    if isinstance(changes, dict):
        old = old if isinstance(old, dict) else {}
        return {key: delta_pct(change, old.get(key)) for key, change in changes.items()}
    if changes is None or old is None:
        return None
    before = Fraction(Decimal(old))
    if before == 0:
        return None
    return percent(Fraction(Decimal(changes)) / abs(before), 1)


def finish_summary(new_totals: Totals, new: Program, old_totals: Totals | None, old: Program | None,
                   events: int, extras: dict[str, Any]) -> dict[str, Any]:
    """The whole summary object: the new program's figures, ``extras``, and the baseline and delta."""
    summary = new_totals.summary(new, events)
    summary.update(extras)
    if old_totals is not None and old is not None:
        summary["baseline"] = old_totals.summary(old, events)
        summary["delta"] = delta(summary, summary["baseline"])
        summary["delta_pct"] = delta_pct(summary["delta"], summary["baseline"])
    return summary


def iter_sorted(items: Iterable[str]) -> list[str]:
    return sorted(items)
