"""The six processing steps of LANGUAGE.md "How an event is processed", and the clock.

``Processor(compiled)`` runs them on a ``CustomerState``:

* ``advance(state, until, rec)`` — step 1: every time-driven change between
  the state's clock and ``until``, in time order, each at its exact instant;
* ``apply(state, event, rec)`` — steps 2–6 for one validated event;
* ``next_change(state)`` — the instant of the customer's next time-driven
  change, so the engine can schedule customers instead of scanning them.

Validation that needs state (order, refunds, redeem balances) is done by
the engine before anything changes; the steps here assume a valid event.
"""

from __future__ import annotations

import heapq
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Iterable

from poletti.engine.compiler import (
    Cap, CompiledProgram, ConvertRule, Guard, PerRule, Rule, SegmentRule, StampRule,
)
from poletti.engine.expressions import Ctx, day_start
from poletti.engine.state import CapUsage, CustomerState, PurchaseRecord, WindowTotals
from poletti.engine.timecalc import add, next_birthday, period_key, window_end
from poletti.interpreter.events import Event, Item
from poletti.interpreter.outcome import Recorder

ONE_DAY = timedelta(days=1)


def _matches(item: Item, item_filter: tuple[str, str] | None) -> bool:
    if item_filter is None:
        return True
    kind, value = item_filter
    return (item.category if kind == "category" else item.sku) == value


class Processor:
    def __init__(self, compiled: CompiledProgram, keep_skips: bool = True) -> None:
        self.cp = compiled
        self.tz = compiled.tz
        self.keep_skips = keep_skips
        self.settles = compiled.time_sources.reads_last_purchase  # worked out once, read per purchase

    # ------------------------------------------------------------- state setup

    def new_state(self, customer: str) -> CustomerState:
        cp = self.cp
        return CustomerState(
            customer=customer,
            windows=[WindowTotals() for _ in cp.windows],
            metric_events=[[] for _ in cp.metrics],
            stamps=[0] * len(cp.stamps),
            tier_held=[False] * len(cp.tiers),
            tier_keep_until=[None] * len(cp.tiers),
            segments=[False] * len(cp.segments),
            when_active=[False] * len(cp.when_rules),
        )

    def _day(self, instant: datetime) -> str:
        """The calendar date of an instant in the program zone, for explanations."""
        return instant.astimezone(self.tz).date().isoformat()

    # ------------------------------------------------------------------ step 1

    def advance(self, state: CustomerState, until: datetime, rec: Recorder) -> None:
        """Apply every time-driven change in (state.clock, until], in time order."""
        if state.clock is None:
            state.clock = until
            return
        memo = state.next_change_memo
        state.next_change_memo = None  # the state is about to change
        while True:
            if memo is not None and memo[0] == state.clock:
                instant = memo[1]
            else:
                instant = self.next_change(state)
            memo = None
            if instant is None or instant > until:
                break
            self._apply_instant(state, instant, rec)
            state.clock = instant
        if until > state.clock:
            # Windows no status or trigger condition reads have exits the clock
            # does not stop at: apply them before anything reads at `until`.
            self._leave_windows(state, until)
            state.clock = until

    def _apply_instant(self, state: CustomerState, instant: datetime, rec: Recorder) -> None:
        cp = self.cp
        previous = state.clock
        for lot in state.ledger.expire_until(instant):
            rec.expired += lot.points
            state.totals.expired += lot.points
            pending = ", still pending" if lot.pending else ""
            rec.add("expire", instant, points=lot.points,
                    detail=f"lot earned {self._day(lot.earned_at)} {_source(lot.source)}{pending}; "
                           f"points expire after {cp.expire_after}")
        released = state.ledger.release_pending_until(instant)
        for lot in released:
            rec.add("release", instant, points=lot.points,
                    detail=f"earned {self._day(lot.earned_at)} {_source(lot.source)}; "
                           f"points pending for {cp.pending_for}")
        self._leave_windows(state, instant)
        ctx = cp.make_ctx(state, instant, None)
        granted_points = False
        birthday_rules = cp.on_rules.get("birthday", ())
        if state.birthday is not None and birthday_rules and previous is not None:
            if next_birthday(previous, state.birthday, self.tz) == instant:
                year = instant.astimezone(self.tz).year
                if state.birthday_year != year:  # once a year, even if the birthday was moved
                    state.birthday_year = year
                    for rule in birthday_rules:
                        granted_points |= self._fire(state, ctx, rule, rule.guard, rule.target, rec, kind="birthday")
        self.status(state, ctx, rec)
        granted_points |= self._when_rules(state, ctx, rec)
        if released or granted_points:
            # The spendable balance grew at this instant: `at` rules convert now (step 4).
            self.convert(state, ctx, rec)

    def _leave_windows(self, state: CustomerState, instant: datetime) -> None:
        """Take out of every rolling window what leaves it at or before ``instant``."""
        for totals in state.windows:
            exits = totals.exits
            while exits and exits[0][0] <= instant:
                _, index = heapq.heappop(exits)
                totals.count -= 1
                if index >= 0:
                    record = state.purchases[index]
                    totals.spend -= record.amount - record.refunded
        for spec in self.cp.metrics:
            entries = state.metric_events[spec.slot]
            if spec.window is not None and entries and min(e[1] for e in entries) <= instant:  # type: ignore[type-var]
                state.metric_events[spec.slot] = [e for e in entries if e[1] > instant]  # type: ignore[operator]

    def schedule(self, state: CustomerState) -> datetime | None:
        """``next_change`` for a state about to be saved, remembered on it for its next clock step."""
        instant = self.next_change(state)
        state.next_change_memo = None if state.clock is None else (state.clock, instant)
        return instant

    def next_change(self, state: CustomerState) -> datetime | None:
        """The earliest instant after the state's clock at which something can change by itself."""
        after = state.clock
        if after is None:
            return None
        cp, tz, ts = self.cp, self.tz, self.cp.time_sources
        candidates: list[datetime] = []
        ledger_next = state.ledger.next_change_after(after)
        if ledger_next is not None:
            candidates.append(ledger_next)
        for slot in ts.windows:
            exits = state.windows[slot].exits
            if exits:
                candidates.append(exits[0][0])  # every exit up to the clock has been applied
        for slot in ts.metric_windows:
            leaving = [leaves for _, leaves, _ in state.metric_events[slot] if leaves is not None and leaves > after]
            if leaving:
                candidates.append(min(leaving))
        first_seen = state.first_seen or after
        for kind, days in ts.day_thresholds:
            ref = (state.last_purchase_at or first_seen) if kind == "days_since_last_purchase" else first_seen
            for k in days:
                instant = ref + k * ONE_DAY
                if instant > after:
                    candidates.append(instant)
                    break
        for kind in ts.daily:
            ref = (state.last_purchase_at or first_seen) if kind == "days_since_last_purchase" else first_seen
            candidates.append(ref + ((after - ref) // ONE_DAY + 1) * ONE_DAY)
        # A streak survives the day after its last active day and ends when the one after that begins.
        if ts.streak_days and state.last_active_day is not None:
            candidates.append(day_start(date.fromordinal(state.last_active_day + 2), tz))
        if ts.streak_weeks and state.last_active_week is not None:
            candidates.append(day_start(date.fromordinal(state.last_active_week + 14), tz))
        if state.birthday is not None and "birthday" in cp.on_rules:
            candidates.append(next_birthday(after, state.birthday, tz))
        candidates.extend(t for t in state.tier_keep_until if t is not None)
        candidates.extend(ts.campaign_edges)
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
            index = len(state.purchases)
            state.purchases.append(PurchaseRecord(event.id, at, event.amount))
            state.spend_total += event.amount
            self._enter_windows(state, "purchase", at, index, event.amount)
            self._mark_active(state, at)
        elif event.type == "visit":
            state.visit_count += 1
            self._enter_windows(state, "visit", at, -1, Decimal(0))
            self._mark_active(state, at)
        for spec in self.cp.metrics:
            if spec.event_type != event.type:
                continue
            value = self._metric_value(spec.field, spec.filter, event)
            if value is not None:
                leaves = window_end(at, spec.window, self.tz) if spec.window is not None else None
                state.metric_events[spec.slot].append((at, leaves, value))

    def _enter_windows(self, state: CustomerState, source: str, at: datetime, index: int, amount: Decimal) -> None:
        """A purchase or visit at ``at`` counts in each window over its kind until ``window_end``."""
        for spec, totals in zip(self.cp.windows, state.windows):
            if spec.source == source:
                totals.count += 1
                totals.spend += amount
                heapq.heappush(totals.exits, (window_end(at, spec.duration, self.tz), index))

    def _metric_value(self, field: str | None, item_filter: tuple[str, str] | None, event: Event) -> Decimal | None:
        items = [i for i in event.items if _matches(i, item_filter)]
        if field is None:
            return Decimal(1) if item_filter is None or items else None
        if field == "amount":
            if item_filter is None:
                return event.amount
            return sum((i.price * i.quantity for i in items), Decimal(0)) if items else None
        if field == "quantity":
            return Decimal(sum(i.quantity for i in items)) if items else None
        value = event.attributes.get(field)
        return None if value is None or isinstance(value, bool) else Decimal(value)

    def _mark_active(self, state: CustomerState, at: datetime) -> None:
        day = at.astimezone(self.tz).date().toordinal()
        if state.last_active_day != day:
            state.day_run = state.day_run + 1 if state.last_active_day == day - 1 else 1
            state.last_active_day = day
        monday = day - date.fromordinal(day).weekday()
        if state.last_active_week != monday:
            state.week_run = state.week_run + 1 if state.last_active_week == monday - 7 else 1
            state.last_active_week = monday

    def refund(self, state: CustomerState, record: PurchaseRecord, amount: Decimal, at: datetime, rec: Recorder) -> None:
        """Apply a validated refund: the net amount drops, the purchase's points are reversed pro rata.

        Inside the purchase's pending window its own pending points are taken
        first, so a return does not touch points the customer could already spend.
        """
        record.refunded += amount
        state.spend_total -= amount
        for spec, totals in zip(self.cp.windows, state.windows):
            # Windows count the purchase at its net amount while they hold it.
            if spec.source == "purchase" and window_end(record.at, spec.duration, self.tz) > at:
                totals.spend -= amount
        target = 0
        if record.amount > 0:
            target = int((Decimal(record.points) * record.refunded / record.amount).to_integral_value(rounding=ROUND_FLOOR))
        delta = target - record.reversed
        if delta > 0:
            state.ledger.deduct(delta, at, pending_source=record.id)
            record.reversed = target
            rec.reversed += delta
            state.totals.reversed += delta
        if rec.keep_skips or delta > 0:
            currency = self.cp.checked.currency
            before = f", {target - delta} of them reversed before" if target - delta else ""
            rec.add("reverse", at, points=delta,
                    detail=(f"refund of {amount} {currency} on purchase {record.id}, which earned {record.points} points "
                            f"for {record.amount} {currency}: {record.refunded} refunded so far → "
                            f"floor({record.points} × {record.refunded} ÷ {record.amount}) = {target} reversed in all"
                            f"{before}"))

    def redeem(self, state: CustomerState, reward: str, cost: int, at: datetime, rec: Recorder) -> None:
        state.ledger.spend(cost, at)
        rec.spent += cost
        state.totals.spent += cost
        rec.add("redeem", at, points=cost, reward=reward)
        self._give_reward(state, reward, rec)

    # ------------------------------------------------------------------ step 3

    def earn(self, state: CustomerState, ctx: Ctx, event: Event, rec: Recorder) -> int:
        """Points the event earns: per rules (capped), scaled by multipliers, plus fixed awards."""
        cp, at = self.cp, event.at
        per_total = 0
        for rule in cp.per_rules.get(event.type, ()):
            why = rule.guard.blocked(ctx, self.keep_skips)
            if why:
                rec.add("skip", at, rule=rule.text, line=rule.line, detail=why)
                continue
            points = self._per_points(rule, event)
            if points <= 0 and self.keep_skips:
                rec.add("skip", at, rule=rule.text, line=rule.line, detail=self._why_zero(rule, event))
            points = self._capped(state, ctx, rule, rule.guard.cap, points, rec)
            if points > 0:
                rec.add("earn", at, points=points, rule=rule.text, line=rule.line)
                per_total += points
        total = per_total
        if per_total > 0 and cp.multipliers:
            factor, applied = Decimal(1), []
            for mult in cp.multipliers:
                why = mult.guard.blocked(ctx, self.keep_skips)
                if why is None and mult.guard.cap is not None and self._cap_left(state, ctx, mult, mult.guard.cap) <= 0:
                    why = f"{mult.guard.cap.describe()} reached"
                if why:
                    rec.add("skip", at, rule=mult.text, line=mult.line, detail=why)
                    continue
                factor *= mult.factor
                applied.append(mult)
            if applied:
                total = cp.round(Decimal(per_total) * factor)
                for mult in applied:
                    if mult.guard.cap is not None:
                        self._use_cap(state, ctx, mult, mult.guard.cap, 1)
                names = " × ".join(f"x{m.factor} ('{m.text}', line {m.line})" for m in applied)
                rec.add("multiplier", at, points=total - per_total, detail=f"{names}: {per_total} → {total}")
        for fixed in cp.fixed_rules.get(event.type, ()):
            why = fixed.guard.blocked(ctx, self.keep_skips)
            if why:
                rec.add("skip", at, rule=fixed.text, line=fixed.line, detail=why)
                continue
            points = self._capped(state, ctx, fixed, fixed.guard.cap, fixed.points, rec)
            if points > 0:
                rec.add("fixed", at, points=points, rule=fixed.text, line=fixed.line)
                total += points
        return total

    def _why_zero(self, rule: PerRule, event: Event) -> str:
        """Why a matching per rule earned nothing, in words (explain only)."""
        currency = self.cp.checked.currency
        what = f'{rule.filter[0]} "{rule.filter[1]}"' if rule.filter else ""
        if rule.filter is not None and not any(_matches(i, rule.filter) for i in event.items):
            return f"no items of {what} in this {event.type}"
        if rule.base == "money":
            base = event.amount or Decimal(0)
            if rule.filter is not None:
                base = sum((i.price * i.quantity for i in event.items if _matches(i, rule.filter)), Decimal(0))
            spent = f"{base} {currency}" + (f" on {what}" if what else "")
            if rule.divisor is not None:
                return f"{spent} is not a full {rule.divisor} {currency}"
            return f"{spent} × {rule.rate} = {rule.rate * base} rounds {self.cp.checked.rounding} to 0 points"
        return "0 points"

    def _per_points(self, rule: PerRule, event: Event) -> int:
        items = [i for i in event.items if _matches(i, rule.filter)]
        if rule.base == "money":
            base = event.amount or Decimal(0)
            if rule.filter is not None:
                base = sum((i.price * i.quantity for i in items), Decimal(0))
            if rule.divisor is None:
                return self.cp.round(rule.rate * base)
            units = (base / rule.divisor).to_integral_value(rounding=ROUND_FLOOR)
            return self.cp.round(rule.rate * units)  # whole units; a fractional rate still rounds per `rounding`
        if rule.base == "item":
            return self.cp.round(rule.rate * sum(i.quantity for i in items))
        if rule.base == "purchase" and rule.filter is not None and not items:
            return 0
        return int(rule.rate)

    # -- caps

    def _usage(self, state: CustomerState, rule: Rule) -> CapUsage:
        usage = state.caps.get(rule.index)
        if usage is None:
            usage = state.caps[rule.index] = CapUsage()
        return usage

    def _cap_left(self, state: CustomerState, ctx: Ctx, rule: Rule, cap: Cap) -> int:
        usage = state.caps.get(rule.index)
        if usage is None:
            return cap.amount
        if cap.period is not None:
            used = usage.used if usage.period == period_key(ctx.now, cap.period, self.tz) else 0
        else:
            now = ctx.now  # a rolling cap counts each use until it leaves the window
            used = sum(amount for leaves, amount in usage.entries if leaves > now)
        return max(0, cap.amount - used)

    def _use_cap(self, state: CustomerState, ctx: Ctx, rule: Rule, cap: Cap, amount: int) -> None:
        usage = self._usage(state, rule)
        if cap.period is not None:
            key = period_key(ctx.now, cap.period, self.tz)
            if usage.period != key:
                usage.period, usage.used = key, 0
            usage.used += amount
        else:
            assert cap.window is not None
            now = ctx.now
            usage.entries = [(leaves, a) for leaves, a in usage.entries if leaves > now]
            usage.entries.append((window_end(now, cap.window, self.tz), amount))

    def _capped(self, state: CustomerState, ctx: Ctx, rule: Rule, cap: Cap | None, points: int, rec: Recorder) -> int:
        """Cut an award to what is left under the rule's cap, and count it."""
        if cap is None or points <= 0:
            return points
        left = self._cap_left(state, ctx, rule, cap)
        if cap.unit == "times":
            if left <= 0:
                rec.add("skip", ctx.now, rule=rule.text, line=rule.line,
                        detail=f"{cap.describe()} reached: used {cap.amount} times {_cap_scope(cap)}")
                return 0
            self._use_cap(state, ctx, rule, cap, 1)
            return points
        granted = min(points, left)
        if granted < points:
            used = cap.amount - left
            rec.add("skip" if granted == 0 else "cap", ctx.now, rule=rule.text, line=rule.line, points=points - granted,
                    detail=f"{cap.describe()}: {used} already earned {_cap_scope(cap)}, so {points} cut to {granted}")
        if granted > 0:
            self._use_cap(state, ctx, rule, cap, granted)
        return granted

    # ------------------------------------------------------------------ step 4

    def convert(self, state: CustomerState, ctx: Ctx, rec: Recorder) -> None:
        """`at` rules in file order, each repeated while the balance allows."""
        for rule in self.cp.converts:
            self._convert_rule(state, ctx, rule, rec)

    def _convert_rule(self, state: CustomerState, ctx: Ctx, rule: ConvertRule, rec: Recorder) -> None:
        ledger = state.ledger
        if ledger.balance < rule.threshold:
            if ledger.balance > 0:
                rec.add("skip", ctx.now, rule=rule.text, line=rule.line,
                        detail=f"needed {rule.threshold} points, had {ledger.balance}")
            return
        why = rule.guard.blocked(ctx, self.keep_skips)
        if why:
            rec.add("skip", ctx.now, rule=rule.text, line=rule.line, detail=why)
            return
        while ledger.balance >= rule.threshold:
            if rule.guard.cap is not None and self._capped(state, ctx, rule, rule.guard.cap, 1, rec) == 0:
                return
            ledger.spend(rule.threshold, ctx.now)
            rec.spent += rule.threshold
            state.totals.spent += rule.threshold
            label = rule.target if isinstance(rule.target, str) else f"{rule.target} points"
            rec.add("convert", ctx.now, points=rule.threshold, reward=label, rule=rule.text, line=rule.line)
            self._grant_target(state, ctx, rule.target, rec)
            if isinstance(rule.target, int):
                return  # converting points into points: once per pass, never a loop

    def stamps(self, state: CustomerState, ctx: Ctx, event: Event, rec: Recorder) -> None:
        for rule in self.cp.stamps:
            if rule.event_type != event.type:
                continue
            if rule.filter is not None and not any(_matches(i, rule.filter) for i in event.items):
                continue
            why = rule.guard.blocked(ctx, self.keep_skips)
            if why:
                rec.add("skip", ctx.now, rule=rule.text, line=rule.line, detail=f"no stamp: {why}")
                continue
            state.stamps[rule.slot] += 1
            count = state.stamps[rule.slot]
            if count % rule.every == 0:
                self._fire(state, ctx, rule, rule.guard, rule.target, rec, kind="stamp",
                           detail=f"stamp {count}, every {rule.every}", check_guard=False)
            elif self.keep_skips:
                next_at = count + rule.every - count % rule.every
                rec.add("skip", ctx.now, rule=rule.text, line=rule.line,
                        detail=f"stamp {count}; the next grant comes with stamp {next_at}")

    # ------------------------------------------------------------------ step 5

    def status(self, state: CustomerState, ctx: Ctx, rec: Recorder) -> None:
        """Re-evaluate segments and tiers (with keep) in dependency order.

        Segments the tiers may read come first, so a tier that reads a
        segment sees its new value in the same step; segments that read the
        tier come after the tiers.
        """
        self._segments(state, ctx, self.cp.segments_before_tiers, rec)
        self._tiers(state, ctx, rec)
        self._segments(state, ctx, self.cp.segments_after_tiers, rec)

    def _segments(self, state: CustomerState, ctx: Ctx, segments: tuple[SegmentRule, ...], rec: Recorder) -> None:
        for segment in segments:
            inside = bool(segment.condition(ctx))
            if inside != state.segments[segment.slot]:
                state.segments[segment.slot] = inside
                rec.add("segment", ctx.now, detail=f"{'entered' if inside else 'left'} {segment.name}",
                        line=segment.line)

    def _tiers(self, state: CustomerState, ctx: Ctx, rec: Recorder) -> None:
        cp, now = self.cp, ctx.now
        rank = 0
        keep_started: list[int] = []  # tiers whose keep began now
        keep_ended: list[int] = []  # tiers whose keep ran out now
        for tier in cp.tiers:
            i = tier.rank - 1
            holds = bool(tier.condition(ctx))
            if holds:
                state.tier_held[i] = True
                state.tier_keep_until[i] = None
            else:
                if state.tier_held[i] and tier.keep is not None:
                    state.tier_keep_until[i] = add(now, tier.keep, self.tz)
                    keep_started.append(i)
                state.tier_held[i] = False
                until = state.tier_keep_until[i]
                if until is not None and until <= now:
                    state.tier_keep_until[i] = until = None
                    keep_ended.append(i)
                holds = until is not None
            if holds:
                rank = tier.rank
        if rank != state.tier:
            old, new = cp.tier_names[state.tier], cp.tier_names[rank]
            rule = cp.tiers[rank - 1] if rank else cp.tiers[state.tier - 1]
            kept = rank and not state.tier_held[rank - 1]
            detail = f"{old or 'none'} → {new or 'none'}" + (" (kept by keep)" if kept else "")
            if rank < state.tier:
                lost = cp.tiers[state.tier - 1]
                why = f"the keep {lost.keep} of {lost.name} ran out" if state.tier - 1 in keep_ended else \
                    f"the condition of {lost.name} no longer holds"
                detail += f" ({why})"
                rule = lost
            rec.add("tier", now, detail=detail, rule=rule.text, line=rule.line)
            state.tier = rank
        elif rank and rank - 1 in keep_started:
            tier = cp.tiers[rank - 1]
            until = state.tier_keep_until[rank - 1]
            assert until is not None
            rec.add("tier", now, rule=tier.text, line=tier.line,
                    detail=f"{tier.name} kept until {until.astimezone(self.tz).isoformat()}: its condition no longer "
                           f"holds, and keep {tier.keep} holds it")

    def settle(self, state: CustomerState, at: datetime, rec: Recorder) -> None:
        """Re-evaluate status once the purchase just processed has become history.

        During the event, days_since_last_purchase counts from the purchase
        *before* it (the contract); straight after, that purchase is the
        latest one, so the count drops to 0. A win-back purchase therefore
        earns as "lapsed" and leaves the segment at the same instant.
        """
        if not self.settles:
            return
        ctx = self.cp.make_ctx(state, at, None)
        self.status(state, ctx, rec)
        if self._when_rules(state, ctx, rec):
            self.convert(state, ctx, rec)

    # ------------------------------------------------------------------ step 6

    def triggers(self, state: CustomerState, ctx: Ctx, event: Event, rec: Recorder) -> None:
        granted_points = False
        for rule in self.cp.on_rules.get(event.type, ()):
            granted_points |= self._fire(state, ctx, rule, rule.guard, rule.target, rec)
        granted_points |= self._when_rules(state, ctx, rec)
        if granted_points:
            self.convert(state, ctx, rec)

    def _when_rules(self, state: CustomerState, ctx: Ctx, rec: Recorder) -> bool:
        granted_points = False
        for rule in self.cp.when_rules:
            active = bool(rule.condition(ctx)) and rule.guard.blocked(ctx) is None
            was = state.when_active[rule.slot]
            state.when_active[rule.slot] = active
            if active and not was:
                granted_points |= self._fire(state, ctx, rule, rule.guard, rule.target, rec, check_guard=False)
        return granted_points

    def _fire(self, state: CustomerState, ctx: Ctx, rule: Rule, guard: Guard, target: str | int, rec: Recorder,
              kind: str = "grant", detail: str = "", check_guard: bool = True) -> bool:
        """Grant a rule's target if its options allow; True when points were granted."""
        now = ctx.now
        if check_guard:
            why = guard.blocked(ctx, self.keep_skips)
            if why:
                rec.add("skip", now, rule=rule.text, line=rule.line, detail=why)
                return False
        if guard.once:
            last = state.last_grant.get(rule.index)
            if last is not None and (guard.once_window is None or add(last, guard.once_window, self.tz) > now):
                if guard.once_window is None:
                    when = f"once: already granted on {self._day(last)}"
                else:
                    again = self._day(add(last, guard.once_window, self.tz))
                    when = f"once per {guard.once_window}: last granted on {self._day(last)}, not again before {again}"
                rec.add("skip", now, rule=rule.text, line=rule.line, detail=when)
                return False
        if guard.cap is not None and self._capped(state, ctx, rule, guard.cap, 1 if guard.cap.unit == "times" else _points_of(target), rec) == 0:
            return False
        state.last_grant[rule.index] = now
        label = target if isinstance(target, str) else None
        rec.add(kind, now, points=0 if label else int(target), reward=label, rule=rule.text, line=rule.line, detail=detail)
        self._grant_target(state, ctx, target, rec, record=False)
        return isinstance(target, int)

    def _grant_target(self, state: CustomerState, ctx: Ctx, target: str | int, rec: Recorder, record: bool = True) -> None:
        if isinstance(target, str):
            self._give_reward(state, target, rec)
        else:
            self.add_points(state, target, ctx.now, rec, source="grant", pending=False)

    def _give_reward(self, state: CustomerState, reward: str, rec: Recorder) -> None:
        state.rewards[reward] = state.rewards.get(reward, 0) + 1
        value = self.cp.rewards.get(reward, (None, None))[0]
        if value is not None:
            state.totals.cost += value
        rec.grant(reward)

    def add_points(self, state: CustomerState, points: int, at: datetime, rec: Recorder, source: str, pending: bool) -> None:
        """A new lot (debt is paid first), with the program's expiry and, for purchases, pending period."""
        if points <= 0:
            return
        cp = self.cp
        expires = add(at, cp.expire_after, self.tz) if cp.expire_after else None
        available = add(at, cp.pending_for, self.tz) if (pending and cp.pending_for) else None
        state.ledger.earn(points, at, expires_at=expires, available_at=available, source=source)
        state.totals.earned += points


def _cap_scope(cap: Cap) -> str:
    return f"this {cap.period}" if cap.period else f"in the last {cap.window}"


def _source(source: str) -> str:
    return "by a grant" if source == "grant" else f"by {source}"


def _points_of(target: str | int) -> int:
    return target if isinstance(target, int) else 1


def iter_rules(compiled: CompiledProgram) -> Iterable[Rule]:
    yield from (r for rules in compiled.per_rules.values() for r in rules)
    yield from (r for rules in compiled.fixed_rules.values() for r in rules)
    yield from compiled.multipliers
    yield from compiled.converts
    yield from compiled.stamps


__all__ = ["Processor", "StampRule"]
