"""The six processing steps of LANGUAGE.md "How an event is processed", and the clock: the interpreter.

``Processor(compiled)`` runs them on a ``CustomerState``:

* ``advance(state, until, tally)`` — step 1: every time-driven change between
  the state's clock and ``until``, in time order, each at its exact instant;
* ``record_facts``, ``refund``, ``redeem``, ``earn``, ``stamps``, ``convert``,
  ``status``, ``triggers`` — steps 2–6 for one validated event (the engine
  calls them in order);
* ``next_change(state)`` — the instant of the customer's next time-driven
  change, so the engine can schedule customers instead of scanning them.

This is the readable reference implementation of the language: the code
generated for a program (``poletti.engine.codegen``) must agree with it on
every state and outcome, and explanations come from here. When the tally
carries a trace list, every step appends typed records
(``poletti.interpreter.trace``) saying what it did and why rules did not
fire; without one, no record is built.

Instants are integer microseconds since the epoch and money is integer
micro-units (see ``poletti.engine.state``); rule arithmetic on money is done
in ``Decimal``, exactly, from those units.

Validation that needs state (order, refunds, redeem balances) is done by
the engine before anything changes; the steps here assume a valid event.
"""

from __future__ import annotations

import heapq
import weakref
from datetime import date
from decimal import Decimal
from typing import Callable, Iterable

import attrs

from poletti.engine.compiler import (
    Blocked, Cap, CompiledProgram, ConvertRule, FixedRule, Guard, MultiplierRule, PerRule, Rule, SegmentRule,
    StampRule, WhenRule,
)
from poletti.engine.expressions import POOLS, Ctx
from poletti.engine.money import EXACT, from_units, to_units
from poletti.engine.state import (AT, EXIT_SHIFT, CapUsage, CustomerState, WindowTotals, exit_index, exit_leaves,
                                  replaced, window_exit)
from poletti.engine.timecalc import add_us, day_start_us, local_date, next_birthday_us, period_key_us
from poletti.interpreter import wallet
from poletti.interpreter.events import Event, Item
from poletti.interpreter.trace import (
    Capped, Converted, Earned, Expired, Granted, Multiplied, Occasion, Reason, Record, Redeemed, Released,
    Reversed, SegmentChanged, Skipped, TierChanged, TierKept,
)

_BLOCKED = {
    Blocked.NOT_STARTED: Reason.CAMPAIGN_NOT_STARTED,
    Blocked.ENDED: Reason.CAMPAIGN_ENDED,
    Blocked.CONDITION: Reason.CONDITION_FALSE,
}


class Tally:
    """What processing one event (or one clock step) did: the outcome's counters, and the trace.

    ``trace`` is a list of records when explanations are wanted, else None
    (and then nothing builds a record). ``changed`` says whether anything
    happened that a host would want to hear about (for clock outcomes).
    """

    __slots__ = ("trace", "granted", "expired", "reversed", "spent", "changed", "event_start")

    def __init__(self, explain: bool) -> None:
        self.trace: list[Record] | None = [] if explain else None
        self.granted: dict[str, int] = {}
        self.expired = 0
        self.reversed = 0
        self.spent = 0
        self.changed = False
        self.event_start = 0  # trace records before this one are the clock's (the step up to the event)

    def note(self, record: Record) -> None:
        """A record of something that changed the state."""
        self.changed = True
        if self.trace is not None:
            self.trace.append(record)


# The function that builds a new state, per compiled program (kept out of the Processor, which stays picklable).
_STATE_MAKERS: "weakref.WeakKeyDictionary[CompiledProgram, Callable[[str], CustomerState]]" = weakref.WeakKeyDictionary()


def _state_maker(cp: CompiledProgram) -> Callable[[str], CustomerState]:
    """A function building ``Processor._new_state_slowly``'s state for this program: literal lists, no loops, and
    each field set on a bare instance (``_new_state_slowly`` is the reference; test_codegen checks the two)."""
    def many(count: int, each: str) -> str:
        return f"[{', '.join([each] * count)}]" if count else "()"

    def fixed(count: int, each: str) -> str:
        return f"({', '.join([each] * count)},)" if count else "()"

    given = {"customer": "customer", "windows": many(len(cp.windows), "WindowTotals()"),
             "metric_events": many(len(cp.metrics), "[]"), "stamps": many(len(cp.stamps), "0"),
             "tier_held": fixed(len(cp.tiers), "False"), "tier_keep_until": fixed(len(cp.tiers), "None"),
             "segments": many(len(cp.segments), "False"), "when_active": many(len(cp.when_rules), "False")}
    namespace: dict[str, object] = {"new": object.__new__, "CustomerState": CustomerState, "WindowTotals": WindowTotals}
    # Every field set on a bare instance, as attrs' ``__init__`` would set it (a factory called, a default
    # shared: they are None, numbers and empty tuples): matching 8 keywords among 42 parameters cost as much
    # as setting all 42 fields (1.14 µs a state; 0.70 µs this way).
    lines = ["def new_state(customer):", "    state = new(CustomerState)"]
    for number, field in enumerate(attrs.fields(CustomerState)):
        value = given.get(field.name)
        if value is None:
            if isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
                assert not field.default.takes_self  # type: ignore[union-attr]
                namespace[f"factory_{number}"] = field.default.factory  # type: ignore[union-attr]
                value = f"factory_{number}()"
            else:
                assert isinstance(field.default, (type(None), int, str, tuple)), field.name  # (shared by all)
                namespace[f"default_{number}"] = field.default
                value = f"default_{number}"
        lines.append(f"    state.{field.name} = {value}")
    lines.append("    return state")
    exec("\n".join(lines) + "\n", namespace)  # noqa: S102 — only counts and field names go into the text
    return namespace["new_state"]  # type: ignore[return-value]


def _matches(item: Item, item_filter: tuple[str, str] | None) -> bool:
    if item_filter is None:
        return True
    kind, value = item_filter
    return (item.category if kind == "category" else item.sku) == value


class Processor:
    def __init__(self, compiled: CompiledProgram) -> None:
        self.cp = compiled
        self.tz = compiled.tz
        self.settles = compiled.time_sources.reads_last_purchase  # worked out once, read per purchase
        # What a grant of each reward costs the business, in micro-units (None: no declared value).
        self.reward_cost = {name: None if value is None else to_units(value)
                            for name, (value, _) in compiled.rewards.items()}

    # ------------------------------------------------------------- state setup

    def new_state(self, customer: str) -> CustomerState:
        """A customer's state before any event (built by ``_state_maker``'s function: this runs once per customer)."""
        return self.state_maker()(customer)

    def state_maker(self) -> Callable[[str], CustomerState]:
        """The function ``new_state`` calls (a host of many new customers keeps it: one call instead of three)."""
        maker = _STATE_MAKERS.get(self.cp)
        if maker is None:
            maker = _STATE_MAKERS[self.cp] = _state_maker(self.cp)
        return maker

    def _new_state_slowly(self, customer: str) -> CustomerState:
        """What ``new_state`` builds, written plainly (the reference ``_state_maker``'s function is tested against)."""
        cp = self.cp
        # A rule list the program does not use is the empty tuple, not a list: each state is long-lived,
        # and every list in it is one more object each full garbage collection walks.
        return CustomerState(
            customer=customer,
            windows=[WindowTotals() for _ in cp.windows] if cp.windows else (),
            metric_events=[[] for _ in cp.metrics] if cp.metrics else (),
            stamps=[0] * len(cp.stamps) if cp.stamps else (),
            tier_held=(False,) * len(cp.tiers),
            tier_keep_until=(None,) * len(cp.tiers),
            segments=[False] * len(cp.segments) if cp.segments else (),
            when_active=[False] * len(cp.when_rules) if cp.when_rules else (),
        )

    # ------------------------------------------------------------------ step 1

    def advance(self, state: CustomerState, until: int, tally: Tally) -> None:
        """Apply every time-driven change in (state.clock, until], in time order."""
        if state.clock is None:
            state.clock = until
            return
        known = state.next_change_clock
        state.next_change_clock = None  # the state is about to change
        while True:
            if known is not None and known == state.clock:
                instant = state.next_change_at
            else:
                instant = self.next_change(state)
            known = None
            if instant is None or instant > until:
                break
            self._apply_instant(state, instant, tally)
            state.clock = instant
        if until > state.clock:
            # Windows no status or trigger condition reads have exits the clock
            # does not stop at: apply them before anything reads at `until`.
            self._leave_windows(state, until)
            state.clock = until

    def _apply_instant(self, state: CustomerState, instant: int, tally: Tally) -> None:
        cp = self.cp
        if state.wallet:
            wallet.expire_until(state, instant, tally)  # held rewards end at grant + `expires after`
        for lot in state.ledger.expire_until(instant):
            tally.expired += lot.points
            state.total_expired += lot.points
            tally.note(Expired(instant, lot.points, lot.earned_at, lot.source, lot.pending))
        released = state.ledger.release_pending_until(instant)
        for item in released:
            tally.note(Released(instant, item.points, item.earned_at, item.source))
        self._leave_windows(state, instant)
        ctx = cp.make_ctx(state, instant, None)
        granted_points = self.birthday(state, instant, tally, ctx)
        self.status(state, ctx, tally)
        granted_points |= self._when_rules(state, ctx, tally)
        if released or granted_points:
            # The spendable balance grew at this instant: `at` rules convert now (step 4).
            self.convert(state, ctx, tally)

    def birthday(self, state: CustomerState, instant: int, tally: Tally, ctx: Ctx | None = None) -> bool:
        """`on birthday` rules, if ``instant`` (the clock's next step) starts the customer's birthday.

        At most once a calendar year, even if the birthday was moved; True
        when points were granted.
        """
        rules = self.cp.on_rules.get("birthday", ())
        previous = state.clock
        if state.birthday is None or not rules or previous is None:
            return False
        if next_birthday_us(previous, state.birthday, self.tz) != instant:
            return False
        year = local_date(instant, self.tz).year
        if state.birthday_year == year:
            return False
        state.birthday_year = year
        ctx = ctx if ctx is not None else self.cp.make_ctx(state, instant, None)
        granted_points = False
        for rule in rules:
            granted_points |= self._fire(state, ctx, rule, rule.guard, rule.target, tally, Occasion.BIRTHDAY)
        return granted_points

    def _leave_windows(self, state: CustomerState, instant: int) -> None:
        """Take out of every rolling window what leaves it at or before ``instant``."""
        for totals in state.windows:
            exits = totals.exits
            limit = (instant + 1) << EXIT_SHIFT  # the first entry leaving after ``instant``
            while exits and exits[0] < limit:
                index = exit_index(heapq.heappop(exits))
                totals.count -= 1
                if index >= 0:
                    totals.spend -= state.purchase_net(index)
        self.leave_metric_windows(state, instant)

    def leave_metric_windows(self, state: CustomerState, instant: int) -> None:
        """Drop the metric entries that left their window at or before ``instant``."""
        for spec in self.cp.metrics:
            entries = state.metric_events[spec.slot]
            if spec.window is not None and entries and min(e[1] for e in entries) <= instant:  # type: ignore[type-var]
                state.metric_events[spec.slot] = [e for e in entries if e[1] > instant]  # type: ignore[operator]

    def schedule(self, state: CustomerState) -> int | None:
        """``next_change`` for a state about to be saved, remembered on it for its next clock step."""
        instant = self.next_change(state)
        state.remember_next_change(instant)
        return instant

    def next_change(self, state: CustomerState) -> int | None:
        """The earliest instant after the state's clock at which something can change by itself."""
        after = state.clock
        if after is None:
            return None
        cp, tz, ts = self.cp, self.tz, self.cp.time_sources
        candidates: list[int] = []
        ledger_next = state.ledger.next_change()
        if ledger_next is not None:
            candidates.append(ledger_next)
        for slot, watch in zip(ts.windows, ts.watches, strict=True):
            totals = state.windows[slot]
            exits = totals.exits
            # Every exit up to the clock has been applied; the next one only counts while it can change something.
            if exits and watch.live(totals.spend, totals.count):
                candidates.append(exit_leaves(exits[0]))
        first_seen = after if state.first_seen is None else state.first_seen
        last_purchase = first_seen if state.last_purchase_at is None else state.last_purchase_at
        for kind, days in ts.day_thresholds:
            ref = last_purchase if kind == "days_since_last_purchase" else first_seen
            for k in days:
                instant = ref + k * DAY
                if instant > after:
                    candidates.append(instant)
                    break
        for kind in ts.daily:
            ref = last_purchase if kind == "days_since_last_purchase" else first_seen
            candidates.append(ref + ((after - ref) // DAY + 1) * DAY)
        rare = self.rare_next_change(state)
        if rare is not None:
            candidates.append(rare)
        if state.wallet:
            candidates.append(state.wallet[0][0])
        candidates.extend(t for t in state.tier_keep_until if t is not None)
        candidates.extend(ts.campaign_edges)
        future = [t for t in candidates if t > after]
        return min(future, default=None)

    def rare_next_change(self, state: CustomerState) -> int | None:
        """The next change from the rarer time sources: metric windows, streaks, birthdays (or None)."""
        after = state.clock
        if after is None:
            return None
        cp, tz, ts = self.cp, self.tz, self.cp.time_sources
        candidates: list[int] = []
        for slot in ts.metric_windows:
            leaving = [leaves for _, leaves, _ in state.metric_events[slot] if leaves is not None and leaves > after]
            if leaving:
                candidates.append(min(leaving))
        # A streak survives the day after its last active day and ends when the one after that begins.
        if ts.streak_days and state.last_active_day is not None:
            candidates.append(day_start_us(date.fromordinal(state.last_active_day + 2), tz))
        if ts.streak_weeks and state.last_active_week is not None:
            candidates.append(day_start_us(date.fromordinal(state.last_active_week + 14), tz))
        if state.birthday is not None and "birthday" in cp.on_rules:
            candidates.append(next_birthday_us(after, state.birthday, tz))
        future = [t for t in candidates if t > after]
        return min(future, default=None)

    # ------------------------------------------------------------------ step 2

    def record_facts(self, state: CustomerState, event: Event) -> None:
        """Record the event so windowed quantities include it."""
        at = event.at
        if state.first_seen is None:
            state.first_seen = at
        if event.birthday is not None:
            state.birthday = event.birthday  # any event may carry it; a new value replaces the old from now on
        if event.type == "purchase":
            assert event.amount is not None
            index = state.add_purchase(event.id, at, event.amount, event.partner)
            state.spend_total += event.amount
            self._enter_windows(state, "purchase", at, index, event.amount)
            if self.cp.tracks_activity:
                self._mark_active(state, at)
        elif event.type == "visit":
            state.visit_count += 1
            self._enter_windows(state, "visit", at, -1, 0)
            if self.cp.tracks_activity:
                self._mark_active(state, at)
        self.record_metrics(state, event)
        if self.cp.pooled:
            account = POOLS.get(id(state))
            if account is not None:
                self._record_account_facts(account, event)

    # -- shared accounts (interpreter/accounts.py): what `account.` quantities read

    def _record_account_facts(self, account: CustomerState, event: Event) -> None:
        """A contact's purchase or visit counts in the account's windows too."""
        at = event.at
        if event.type == "purchase":
            assert event.amount is not None
            index = account.add_purchase(event.id, at, event.amount)
            account.spend_total += event.amount
            self._enter_windows(account, "purchase", at, index, event.amount)
        elif event.type == "visit":
            account.visit_count += 1
            self._enter_windows(account, "visit", at, -1, 0)

    def _refund_account_facts(self, account: CustomerState, purchase_id: str, amount: int, at: int) -> None:
        """A refund takes the refunded amount out of the account's windows as it does out of the contact's."""
        index = account.purchase_index(purchase_id)
        if index is None:
            return  # bought before the contact joined: the account never counted it
        bought = account.refund_purchase(index, amount)[AT]
        account.spend_total -= amount
        for spec, totals in zip(self.cp.windows, account.windows):
            if spec.source == "purchase" and add_us(bought, spec.duration, self.tz) > at:
                totals.spend -= amount

    def record_metrics(self, state: CustomerState, event: Event) -> None:
        """Add the event to every metric that aggregates its type (with the instant it leaves the window)."""
        at = event.at
        for spec in self.cp.metrics:
            if spec.event_type != event.type:
                continue
            value = self._metric_value(spec.field, spec.filter, event)
            if value is not None:
                leaves = add_us(at, spec.window, self.tz) if spec.window is not None else None
                state.metric_events[spec.slot].append((at, leaves, value))

    def _enter_windows(self, state: CustomerState, source: str, at: int, index: int, amount: int) -> None:
        """A purchase or visit at ``at`` counts in each window over its kind until ``at`` + W."""
        for spec, totals in zip(self.cp.windows, state.windows):
            if spec.source == source:
                totals.count += 1
                totals.spend += amount
                heapq.heappush(totals.exits, window_exit(add_us(at, spec.duration, self.tz), index))

    def _metric_value(self, field: str | None, item_filter: tuple[str, str] | None, event: Event) -> Decimal | None:
        items = [i for i in event.items if _matches(i, item_filter)]
        if field is None:
            return Decimal(1) if item_filter is None or items else None
        if field == "amount":
            if item_filter is None:
                return None if event.amount is None else from_units(event.amount)
            return from_units(sum(i.price * i.quantity for i in items)) if items else None
        if field == "quantity":
            return Decimal(sum(i.quantity for i in items)) if items else None
        value = event.attributes.get(field)
        return None if value is None or isinstance(value, bool) else Decimal(value)

    def _mark_active(self, state: CustomerState, at: int) -> None:
        day = local_date(at, self.tz).toordinal()
        if state.last_active_day != day:
            state.day_run = state.day_run + 1 if state.last_active_day == day - 1 else 1
            state.last_active_day = day
        monday = day - date.fromordinal(day).weekday()
        if state.last_active_week != monday:
            state.week_run = state.week_run + 1 if state.last_active_week == monday - 7 else 1
            state.last_active_week = monday

    def refund(self, state: CustomerState, index: int, amount: int, at: int, tally: Tally) -> None:
        """Apply a validated refund of purchase ``index``: the net amount drops, its points are reversed pro rata.

        Inside the purchase's pending window its own pending points are taken
        first, so a return does not touch points the customer could already spend.
        """
        purchase_id, bought, paid, refunded, points, reversed_points, partner = state.refund_purchase(index, amount)
        state.spend_total -= amount
        if self.cp.pooled and id(state) in POOLS:
            self._refund_account_facts(POOLS[id(state)], purchase_id, amount, at)
        for spec, totals in zip(self.cp.windows, state.windows):
            # Windows count the purchase at its net amount while they hold it.
            if spec.source == "purchase" and add_us(bought, spec.duration, self.tz) > at:
                totals.spend -= amount
        target = points * refunded // paid if paid > 0 else 0
        delta = target - reversed_points
        if delta > 0:
            state.ledger.deduct(delta, pending_source=purchase_id)
            state.reverse_purchase_points(index, target)
            tally.reversed += delta
            state.total_reversed += delta
            if partner is not None:
                wallet.reverse(state, partner, delta, at, tally)
        if tally.trace is not None or delta > 0:
            tally.note(Reversed(at, delta, purchase_id, amount, points, paid, refunded, target))

    def redeem(self, state: CustomerState, reward: str, cost: int, at: int, tally: Tally) -> None:
        state.ledger.spend(cost)
        tally.spent += cost
        state.total_spent += cost
        tally.note(Redeemed(at, reward, cost))
        self._give_reward(state, reward, tally, at=at)

    # ------------------------------------------------------------------ step 3

    def earn(self, state: CustomerState, ctx: Ctx, event: Event, tally: Tally) -> int:
        """Points the event earns: per rules (capped), scaled by multipliers, plus fixed awards."""
        cp = self.cp
        per_total = 0
        for rule in cp.per_rules.get(event.type, ()):
            per_total += self.earn_per(state, ctx, rule, event, tally)
        total = per_total
        if per_total > 0 and cp.multipliers:
            total = self.multiply(state, ctx, per_total, tally)
        for fixed in cp.fixed_rules.get(event.type, ()):
            total += self.earn_fixed(state, ctx, fixed, tally)
        return total

    def earn_per(self, state: CustomerState, ctx: Ctx, rule: PerRule, event: Event, tally: Tally) -> int:
        """What one `earn … per …` rule gives for the event (after its cap)."""
        blocked = rule.guard.check(ctx)
        if blocked is not None:
            self._skipped(tally, ctx, rule, blocked)
            return 0
        trace = tally.trace
        points = self._per_points(rule, event)
        if points <= 0 and trace is not None:
            reason, base = self._zero_reason(rule, event)
            trace.append(Skipped(ctx.now, rule, reason, base=base))
        points = self._capped(state, ctx, rule, rule.guard.cap, points, tally)
        if points > 0 and trace is not None:
            trace.append(Earned(ctx.now, rule, points))
        return max(points, 0)

    def multiply(self, state: CustomerState, ctx: Ctx, per_total: int, tally: Tally) -> int:
        """The `per` points after the multipliers that apply (rounded once)."""
        trace = tally.trace
        factor, applied = Decimal(1), []
        for mult in self.cp.multipliers:
            blocked = mult.guard.check(ctx)
            if blocked is not None:
                self._skipped(tally, ctx, mult, blocked)
                continue
            if mult.guard.cap is not None and self._cap_left(state, ctx, mult, mult.guard.cap) <= 0:
                if trace is not None:
                    trace.append(Skipped(ctx.now, mult, Reason.TIMES_LIMIT_REACHED))
                continue
            factor = EXACT.multiply(factor, mult.factor)
            applied.append(mult)
        if not applied:
            return per_total
        total = self.cp.round(EXACT.multiply(Decimal(per_total), factor))
        for mult in applied:
            if mult.guard.cap is not None:
                self._use_cap(state, ctx, mult, mult.guard.cap, 1)
        if trace is not None:
            trace.append(Multiplied(ctx.now, tuple(applied), per_total, total))
        return total

    def earn_fixed(self, state: CustomerState, ctx: Ctx, fixed: FixedRule, tally: Tally) -> int:
        """What one fixed award (`earn N points on …`) gives (after its cap)."""
        blocked = fixed.guard.check(ctx)
        if blocked is not None:
            self._skipped(tally, ctx, fixed, blocked)
            return 0
        points = self._capped(state, ctx, fixed, fixed.guard.cap, fixed.points, tally)
        if points > 0 and tally.trace is not None:
            tally.trace.append(Earned(ctx.now, fixed, points, fixed=True))
        return max(points, 0)

    def _base(self, rule: PerRule, event: Event) -> Decimal:
        """The money a spend-based rule pays for: the amount, or the matching items' price × quantity."""
        if rule.filter is None:
            return from_units(event.amount or 0)
        return from_units(sum(i.price * i.quantity for i in event.items if _matches(i, rule.filter)))

    def _per_points(self, rule: PerRule, event: Event) -> int:
        if rule.base == "money":
            base = self._base(rule, event)
            if rule.divisor is None:
                return self.cp.round(EXACT.multiply(rule.rate, base))
            units = EXACT.divide_int(base, rule.divisor)  # full units (both are positive: floor)
            return self.cp.round(EXACT.multiply(rule.rate, units))  # a fractional rate still rounds per `rounding`
        items = [i for i in event.items if _matches(i, rule.filter)]
        if rule.base == "item":
            return self.cp.round(EXACT.multiply(rule.rate, Decimal(sum(i.quantity for i in items))))
        if rule.base == "purchase" and rule.filter is not None and not items:
            return 0
        return int(rule.rate)

    def _zero_reason(self, rule: PerRule, event: Event) -> tuple[Reason, int | None]:
        """Why a matching per rule earned nothing (explain only), with the amount it looked at."""
        if rule.filter is not None and not any(_matches(i, rule.filter) for i in event.items):
            return Reason.NO_MATCHING_ITEMS, None
        if rule.base == "money":
            base = to_units(self._base(rule, event))
            return (Reason.NOT_A_FULL_UNIT if rule.divisor is not None else Reason.ROUNDS_TO_ZERO), base
        return Reason.ZERO_POINTS, None

    def _skipped(self, tally: Tally, ctx: Ctx, rule: Rule, blocked: Blocked, stamp: bool = False) -> None:
        """Trace a rule its options stopped (with the false part of its condition and what it read)."""
        if tally.trace is None:
            return
        part, values = rule.guard.failed_part(ctx) if blocked is Blocked.CONDITION else (None, ())  # type: ignore[attr-defined]
        tally.trace.append(Skipped(ctx.now, rule, _BLOCKED[blocked], stamp=stamp, part=part, values=values))

    # -- caps

    def _usage(self, state: CustomerState, rule: Rule) -> CapUsage:
        return state.cap_usage(rule.index)

    def _cap_left(self, state: CustomerState, ctx: Ctx, rule: Rule, cap: Cap) -> int:
        usage = state.caps.get(rule.index) if state.caps else None
        if usage is None:
            return cap.amount
        if cap.period is not None:
            used = usage.used if usage.period == period_key_us(ctx.now, cap.period, self.tz) else 0
        else:
            now = ctx.now  # a rolling cap counts each use until it leaves the window
            used = sum(amount for leaves, amount in usage.entries if leaves > now)
        return max(0, cap.amount - used)

    def _use_cap(self, state: CustomerState, ctx: Ctx, rule: Rule, cap: Cap, amount: int) -> None:
        usage = self._usage(state, rule)
        if cap.period is not None:
            key = period_key_us(ctx.now, cap.period, self.tz)
            if usage.period != key:
                usage.period, usage.used = key, 0
            usage.used += amount
        else:
            assert cap.window is not None
            now = ctx.now
            usage.entries = [(leaves, a) for leaves, a in usage.entries if leaves > now]
            usage.entries.append((add_us(now, cap.window, self.tz), amount))

    def _capped(self, state: CustomerState, ctx: Ctx, rule: Rule, cap: Cap | None, points: int, tally: Tally) -> int:
        """Cut an award to what is left under the rule's cap, and count it."""
        if cap is None or points <= 0:
            return points
        left = self._cap_left(state, ctx, rule, cap)
        trace = tally.trace
        if cap.unit == "times":
            if left <= 0:
                if trace is not None:
                    trace.append(Skipped(ctx.now, rule, Reason.TIMES_LIMIT_REACHED, used=cap.amount))
                return 0
            self._use_cap(state, ctx, rule, cap, 1)
            return points
        granted = min(points, left)
        if granted < points and trace is not None:
            used = cap.amount - left
            if granted == 0:
                trace.append(Skipped(ctx.now, rule, Reason.POINTS_LIMIT_REACHED, used=used, asked=points))
            else:
                trace.append(Capped(ctx.now, rule, points, granted, used))
        if granted > 0:
            self._use_cap(state, ctx, rule, cap, granted)
        return granted

    # ------------------------------------------------------------------ step 4

    def convert(self, state: CustomerState, ctx: Ctx, tally: Tally) -> None:
        """`at` rules in file order, each repeated while the balance allows."""
        for rule in self.cp.converts:
            self._convert_rule(state, ctx, rule, tally)

    def _convert_rule(self, state: CustomerState, ctx: Ctx, rule: ConvertRule, tally: Tally) -> None:
        """Convert as often as the balance allows, all at once: n = balance ÷ threshold (within the rule's cap).

        Taking n × threshold points in one go takes the same lots, oldest
        first, as n conversions one after another, and costs the same
        whatever n is. Converting points into points happens once per pass:
        the points it grants could otherwise convert again without end.
        """
        ledger = state.ledger
        balance = ledger.balance
        threshold = rule.threshold
        if balance < threshold:
            if balance > 0 and tally.trace is not None:
                tally.trace.append(Skipped(ctx.now, rule, Reason.BALANCE_SHORT, needed=threshold, had=balance))
            return
        blocked = rule.guard.check(ctx)
        if blocked is not None:
            self._skipped(tally, ctx, rule, blocked)
            return
        count = 1 if isinstance(rule.target, int) else balance // threshold
        cap = rule.guard.cap
        capped = False  # the cap stopped some conversions: said after the ones it let through
        if cap is not None:
            left = self._cap_left(state, ctx, rule, cap)
            if left < count:
                capped, count = True, left
            if count > 0:
                self._use_cap(state, ctx, rule, cap, count)
        if count > 0:
            points = threshold * count
            ledger.spend(points)
            tally.spent += points
            state.total_spent += points
            tally.note(Converted(ctx.now, rule, threshold, rule.target, count))
            if isinstance(rule.target, str):
                self._give_reward(state, rule.target, tally, count, at=ctx.now)
            else:
                self.add_points(state, rule.target, ctx.now, source="grant", pending=False)
        if capped and tally.trace is not None and cap is not None:
            tally.trace.append(Skipped(ctx.now, rule, Reason.TIMES_LIMIT_REACHED, used=cap.amount))

    def stamps(self, state: CustomerState, ctx: Ctx, event: Event, tally: Tally) -> None:
        for rule in self.cp.stamps:
            self.stamp(state, ctx, rule, event, tally)

    def stamp(self, state: CustomerState, ctx: Ctx, rule: StampRule, event: Event, tally: Tally) -> bool:
        """One stamp card and the event: count it, and grant on every Nth; True when points were granted."""
        if rule.event_type != event.type:
            return False
        if rule.filter is not None and not any(_matches(i, rule.filter) for i in event.items):
            return False
        blocked = rule.guard.check(ctx)
        if blocked is not None:
            self._skipped(tally, ctx, rule, blocked, stamp=True)
            return False
        state.stamps[rule.slot] += 1
        count = state.stamps[rule.slot]
        if count % rule.every == 0:
            return self._fire(state, ctx, rule, rule.guard, rule.target, tally, Occasion.STAMP, check_guard=False,
                              count=count)
        if tally.trace is not None:
            next_at = count + rule.every - count % rule.every
            tally.trace.append(Skipped(ctx.now, rule, Reason.STAMP_COUNTED, count=count, next_at=next_at))
        return False

    # ------------------------------------------------------------------ step 5

    def status(self, state: CustomerState, ctx: Ctx, tally: Tally) -> None:
        """Re-evaluate segments and tiers (with keep) in dependency order.

        Segments the tiers may read come first, so a tier that reads a
        segment sees its new value in the same step; segments that read the
        tier come after the tiers.
        """
        self._segments(state, ctx, self.cp.segments_before_tiers, tally)
        self._tiers(state, ctx, tally)
        self._segments(state, ctx, self.cp.segments_after_tiers, tally)

    def _segments(self, state: CustomerState, ctx: Ctx, segments: tuple[SegmentRule, ...], tally: Tally) -> None:
        for segment in segments:
            inside = bool(segment.condition(ctx))
            if inside != state.segments[segment.slot]:
                state.segments[segment.slot] = inside
                tally.note(SegmentChanged(ctx.now, segment, inside))

    def _tiers(self, state: CustomerState, ctx: Ctx, tally: Tally) -> None:
        cp, now = self.cp, ctx.now
        rank = 0
        keep_started: list[int] = []  # tiers whose keep began now
        keep_ended: list[int] = []  # tiers whose keep ran out now
        for tier in cp.tiers:
            i = tier.rank - 1
            holds = bool(tier.condition(ctx))
            if holds:
                if not state.tier_held[i]:
                    state.tier_held = replaced(state.tier_held, i, True)
                if state.tier_keep_until[i] is not None:
                    state.tier_keep_until = replaced(state.tier_keep_until, i, None)
            else:
                if state.tier_held[i]:
                    if tier.keep is not None:
                        state.tier_keep_until = replaced(state.tier_keep_until, i, add_us(now, tier.keep, self.tz))
                        keep_started.append(i)
                    state.tier_held = replaced(state.tier_held, i, False)
                until = state.tier_keep_until[i]
                if until is not None and until <= now:
                    state.tier_keep_until = replaced(state.tier_keep_until, i, None)
                    until = None
                    keep_ended.append(i)
                holds = until is not None
            if holds:
                rank = tier.rank
        if rank != state.tier:
            old = state.tier
            kept = bool(rank) and not state.tier_held[rank - 1]
            if rank < old:  # a step down is explained by the tier that was lost
                tally.note(TierChanged(now, old, rank, cp.tiers[old - 1], kept, keep_ended=old - 1 in keep_ended))
            else:
                tally.note(TierChanged(now, old, rank, cp.tiers[rank - 1], kept))
            state.tier = rank
        elif rank and rank - 1 in keep_started:
            until = state.tier_keep_until[rank - 1]
            assert until is not None
            tally.note(TierKept(now, cp.tiers[rank - 1], until))

    def settle(self, state: CustomerState, at: int, tally: Tally) -> None:
        """Re-evaluate status once the purchase just processed has become history.

        During the event, days_since_last_purchase counts from the purchase
        *before* it (the contract); straight after, that purchase is the
        latest one, so the count drops to 0. A win-back purchase therefore
        earns as "lapsed" and leaves the segment at the same instant.
        """
        if not self.settles:
            return
        ctx = self.cp.make_ctx(state, at, None)
        self.status(state, ctx, tally)
        if self._when_rules(state, ctx, tally):
            self.convert(state, ctx, tally)

    # ------------------------------------------------------------------ step 6

    def triggers(self, state: CustomerState, ctx: Ctx, event: Event, tally: Tally) -> None:
        granted_points = False
        for rule in self.cp.on_rules.get(event.type, ()):
            granted_points |= self._fire(state, ctx, rule, rule.guard, rule.target, tally)
        granted_points |= self._when_rules(state, ctx, tally)
        if granted_points:
            self.convert(state, ctx, tally)

    def _when_rules(self, state: CustomerState, ctx: Ctx, tally: Tally) -> bool:
        granted_points = False
        for rule in self.cp.when_rules:
            granted_points |= self.when_rule(state, ctx, rule, tally)
        return granted_points

    def when_rule(self, state: CustomerState, ctx: Ctx, rule: WhenRule, tally: Tally) -> bool:
        """A `when` rule fires as its condition turns true; True when it granted points."""
        active = bool(rule.condition(ctx)) and rule.guard.check(ctx) is None
        was = state.when_active[rule.slot]
        state.when_active[rule.slot] = active
        if active and not was:
            return self._fire(state, ctx, rule, rule.guard, rule.target, tally, check_guard=False)
        return False

    def _fire(self, state: CustomerState, ctx: Ctx, rule: Rule, guard: Guard, target: str | int, tally: Tally,
              occasion: Occasion = Occasion.TRIGGER, check_guard: bool = True, count: int | None = None) -> bool:
        """Grant a rule's target if its options allow; True when points were granted."""
        now, trace = ctx.now, tally.trace
        if check_guard:
            blocked = guard.check(ctx)
            if blocked is not None:
                self._skipped(tally, ctx, rule, blocked)
                return False
        if guard.once:
            last = state.last_granted(rule.index)
            if last is not None and (guard.once_window is None or add_us(last, guard.once_window, self.tz) > now):
                if trace is not None:
                    if guard.once_window is None:
                        trace.append(Skipped(now, rule, Reason.ONCE, last=last))
                    else:
                        again = add_us(last, guard.once_window, self.tz)
                        trace.append(Skipped(now, rule, Reason.ONCE_PER_WINDOW, last=last, again=again))
                return False
        if guard.cap is not None:
            asked = 1 if guard.cap.unit == "times" else _points_of(target)
            if self._capped(state, ctx, rule, guard.cap, asked, tally) == 0:
                return False
        state.note_grant(rule.index, now)
        every = rule.every if isinstance(rule, StampRule) else None
        tally.note(Granted(now, rule, target, occasion, count, every))
        self._grant_target(state, ctx, target, tally)
        return isinstance(target, int)

    def _grant_target(self, state: CustomerState, ctx: Ctx, target: str | int, tally: Tally) -> None:
        if isinstance(target, str):
            self._give_reward(state, target, tally, at=ctx.now)
        else:
            self.add_points(state, target, ctx.now, source="grant", pending=False)

    def _give_reward(self, state: CustomerState, reward: str, tally: Tally, count: int = 1, *, at: int) -> None:
        state.grant_reward(reward, count)
        if self.cp.wallet:
            wallet.hold(state, self.cp, reward, at, count)
        cost = self.reward_cost.get(reward)
        if cost is not None:
            state.total_cost += cost * count
        tally.granted[reward] = tally.granted.get(reward, 0) + count

    # -- the wallet (issue 13), also called by the generated code

    def hold_reward(self, state: CustomerState, reward: str, at: int, count: int) -> None:
        wallet.hold(state, self.cp, reward, at, count)

    def expire_held(self, state: CustomerState, instant: int, tally: Tally) -> None:
        wallet.expire_until(state, instant, tally)

    def add_points(self, state: CustomerState, points: int, at: int, source: str, pending: bool) -> None:
        """A new lot (debt is paid first), with the program's expiry and, for purchases, pending period."""
        if points <= 0:
            return
        cp = self.cp
        expires = add_us(at, cp.expire_after, self.tz) if cp.expire_after else None
        available = add_us(at, cp.pending_for, self.tz) if (pending and cp.pending_for) else None
        state.ledger.earn(points, at, expires_at=expires, available_at=available, source=source)
        state.total_earned += points


DAY = 86_400_000_000  # a day of 24 hours, in µs: days_since_last_purchase and member_days count these


def _points_of(target: str | int) -> int:
    return target if isinstance(target, int) else 1


def iter_rules(compiled: CompiledProgram) -> Iterable[Rule]:
    yield from (r for rules in compiled.per_rules.values() for r in rules)
    yield from (r for rules in compiled.fixed_rules.values() for r in rules)
    yield from compiled.multipliers
    yield from compiled.converts
    yield from compiled.stamps


__all__ = ["Processor", "StampRule", "Tally", "MultiplierRule"]
