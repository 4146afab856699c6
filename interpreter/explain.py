"""Explanations: the one place that turns typed trace records into sentences.

``describe(record, program, count)`` says in plain words what one record
(``poletti.interpreter.trace``) means — which rule gave which points, and why
the others did not fire ("needed 50 points, had 43", "campaign ended
2026-12-24", the false part of a condition with the values it read);
``story(outcome)`` renders a whole outcome. Nothing here decides anything:
the records carry every number, the compiled program every name.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from poletti.engine.compiler import Cap, CompiledProgram, MultiplierRule, Rule
from poletti.engine.money import show as show_money
from poletti.engine.timecalc import from_us, local_date
from poletti.interpreter.trace import (
    Capped, Converted, Earned, Expired, Granted, Multiplied, Occasion, PartnerPoints, Reason, Record, Redeemed,
    Released, RewardExpired, RewardUsed,
    Reversed, SegmentChanged, Skipped, TierChanged, TierKept,
)
from poletti.interpreter.trace import ReferralPaid, Referred

if TYPE_CHECKING:
    from poletti.interpreter.outcome import Outcome


def points(n: int) -> str:
    return f"{n} point{'' if abs(n) == 1 else 's'}"


def _by(rule: Rule | None) -> str:
    """`` by 'earn 1 point per EUR' (line 3)``."""
    if rule is None:
        return ""
    return f" by '{rule.text}'" + (f" (line {rule.line})" if rule.line else "")


def _ref(rule: Rule) -> str:
    """`` ('tier gold when …', line 5)``."""
    return f" ('{rule.text}'" + (f", line {rule.line})" if rule.line else ")")


def _cap_scope(cap: Cap) -> str:
    return f"this {cap.period}" if cap.period else f"in the last {cap.window}"


def _source(source: str) -> str:
    return "by a grant" if source == "grant" else f"by {source}"


def _target(target: str | int) -> str:
    return target if isinstance(target, str) else points(target)


class _Words:
    """Names and dates of one program, for the sentences."""

    def __init__(self, program: CompiledProgram) -> None:
        self.program = program
        self.currency = program.checked.currency

    def day(self, instant: int) -> str:
        return local_date(instant, self.program.tz).isoformat()

    def tier(self, rank: int) -> str:
        return self.program.tier_names[rank] or "none"

    def money(self, units: int) -> str:
        return f"{show_money(units)} {self.currency}"


def _skip_reason(record: Skipped, words: _Words) -> str:
    rule, reason = record.rule, record.reason
    guard = getattr(rule, "guard", None)
    text = ""
    if reason is Reason.CAMPAIGN_NOT_STARTED:
        text = f"campaign starts {guard.during_text.split('..')[0]}"
    elif reason is Reason.CAMPAIGN_ENDED:
        text = f"campaign ended {guard.during_text.split('..')[-1]}"
    elif reason is Reason.CONDITION_FALSE:
        if record.part is None:
            text = f"condition not met: {guard.condition_text}"
        else:
            part = guard.condition_parts[record.part]
            values = ", ".join(f"{name} is {show(value)}"
                               for (name, _, show), value in zip(part.shown, record.values))
            text = f"condition not met: {part.text}" + (f" ({values})" if values else "")
    elif reason is Reason.NO_MATCHING_ITEMS:
        kind, value = rule.filter  # type: ignore[attr-defined]
        text = f'no items of {kind} "{value}" in this purchase'
    elif reason in (Reason.NOT_A_FULL_UNIT, Reason.ROUNDS_TO_ZERO):
        what = f' on {rule.filter[0]} "{rule.filter[1]}"' if rule.filter else ""  # type: ignore[attr-defined]
        spent = words.money(record.base or 0) + what
        if reason is Reason.NOT_A_FULL_UNIT:
            text = f"{spent} is not a full {rule.divisor} {words.currency}"  # type: ignore[attr-defined]
        else:
            base = show_money(record.base or 0)
            product = rule.rate * type(rule.rate)(base)  # type: ignore[attr-defined]
            text = f"{spent} × {rule.rate} = {product} rounds {words.program.checked.rounding} to 0 points"  # type: ignore[attr-defined]
    elif reason is Reason.ZERO_POINTS:
        text = "0 points"
    elif reason is Reason.TIMES_LIMIT_REACHED:
        cap = guard.cap
        if isinstance(rule, MultiplierRule):
            text = f"{cap.describe()} reached"
        else:
            text = f"{cap.describe()} reached: used {cap.amount} times {_cap_scope(cap)}"
    elif reason is Reason.POINTS_LIMIT_REACHED:
        cap = guard.cap
        text = f"{cap.describe()}: {record.used} already earned {_cap_scope(cap)}, so {record.asked} cut to 0"
    elif reason is Reason.ONCE:
        text = f"once: already granted on {words.day(record.last or 0)}"
    elif reason is Reason.ONCE_PER_WINDOW:
        text = (f"once per {guard.once_window}: last granted on {words.day(record.last or 0)}, "
                f"not again before {words.day(record.again or 0)}")
    elif reason is Reason.BALANCE_SHORT:
        text = f"needed {record.needed} points, had {record.had}"
    elif reason is Reason.STAMP_COUNTED:
        text = f"stamp {record.count}; the next grant comes with stamp {record.next_at}"
    return f"no stamp: {text}" if record.stamp else text


def describe(record: Record, program: CompiledProgram, count: int = 1) -> str:
    """One record (``count`` identical ones in a row) as a sentence."""
    words = _Words(program)
    if isinstance(record, Earned):
        return f"+{points(record.points)}{_by(record.rule)}"
    if isinstance(record, Multiplied):
        names = " × ".join(f"x{m.factor} ('{m.text}', line {m.line})" for m in record.rules)
        return f"+{points(record.after - record.before)} from multipliers {names}: {record.before} → {record.after}"
    if isinstance(record, Converted):
        count *= record.count
        if count > 1:
            return (f"-{points(record.points * count)} converted into {count} × {_target(record.target)}"
                    f"{_by(record.rule)}")
        return f"-{points(record.points)} converted into {_target(record.target)}{_by(record.rule)}"
    if isinstance(record, Granted):
        occasion = " for the birthday" if record.occasion is Occasion.BIRTHDAY else ""
        extra = f": stamp {record.count}, every {record.every}" if record.occasion is Occasion.STAMP else ""
        return f"granted {_target(record.target)}{occasion}{_by(record.rule)}{extra}"
    if isinstance(record, Redeemed):
        return f"-{points(record.points)} redeemed for {record.reward}"
    if isinstance(record, Expired):
        pending = ", still pending" if record.pending else ""
        return (f"-{points(record.points)} expired (lot earned {words.day(record.earned_at)} "
                f"{_source(record.source)}{pending}; points expire after {program.expire_after})")
    if isinstance(record, Released):
        return (f"{points(record.points)} pending became spendable (earned {words.day(record.earned_at)} "
                f"{_source(record.source)}; points pending for {program.pending_for})")
    if isinstance(record, Reversed):
        before = record.target - record.points
        earlier = f", {before} of them reversed before" if before else ""
        detail = (f"refund of {words.money(record.refund)} on purchase {record.purchase}, which earned "
                  f"{record.purchase_points} points for {words.money(record.purchase_amount)}: "
                  f"{show_money(record.refunded)} refunded so far → floor({record.purchase_points} × "
                  f"{show_money(record.refunded)} ÷ {show_money(record.purchase_amount)}) = {record.target} "
                  f"reversed in all{earlier}")
        if not record.points:
            return f"no points reversed ({detail})"
        return f"-{points(record.points)} reversed ({detail})"
    if isinstance(record, TierChanged):
        text = f"{words.tier(record.old)} → {words.tier(record.new)}" + (" (kept by keep)" if record.kept else "")
        if record.new < record.old:
            lost = record.rule
            why = (f"the keep {lost.keep} of {lost.name} ran out" if record.keep_ended
                   else f"the condition of {lost.name} no longer holds")
            text += f" ({why})"
        return f"tier {text}{_ref(record.rule)}"
    if isinstance(record, TierKept):
        tier = record.rule
        until = from_us(record.until).astimezone(program.tz).isoformat()
        return (f"tier {tier.name} kept until {until}: its condition no longer holds, and keep {tier.keep} "
                f"holds it{_ref(tier)}")
    if isinstance(record, SegmentChanged):
        segment = record.segment
        return f"segment {'entered' if record.entered else 'left'} {segment.name} (line {segment.line})"
    if isinstance(record, Capped):
        cap = record.rule.guard.cap  # type: ignore[attr-defined]
        return (f"{points(record.asked - record.granted)} cut{_by(record.rule)}: {cap.describe()}: {record.used} "
                f"already earned {_cap_scope(cap)}, so {record.asked} cut to {record.granted}")
    if isinstance(record, (Referred, ReferralPaid)):
        return _referral_sentence(record, words)
    if isinstance(record, Skipped):
        return f"not fired{_by(record.rule)}: {_skip_reason(record, words)}"
    if isinstance(record, (RewardUsed, RewardExpired, PartnerPoints)):
        return _describe_issue13(record, program, words)
    raise TypeError(f"no explanation for {type(record).__name__}")  # pragma: no cover - every record is covered


def _describe_issue13(record: RewardUsed | RewardExpired | PartnerPoints, program: CompiledProgram,
                      words: _Words) -> str:
    """The wallet's and partners' records (issue 13)."""
    if isinstance(record, RewardUsed):
        if record.value is None:
            worth = "no declared value"
        elif record.percent is not None:
            worth = (f"worth {words.money(record.value)}: {record.percent}% of {words.money(record.amount)}, "
                     "to the cent" + (", capped by its max" if record.capped else ""))
        else:
            worth = f"worth {words.money(record.value)}"
        held = ""
        if record.ends_at is not None and record.granted_at is not None:
            held = (f"; the one granted {words.day(record.granted_at)}, held until "
                    f"{from_us(record.ends_at).astimezone(program.tz).isoformat()}")
        return f"used reward {record.reward} ({worth}{held})"
    if isinstance(record, RewardExpired):
        terms = program.wallet.get(record.reward)
        after = f"expires after {terms.expires}" if terms is not None and terms.expires is not None else "its expiry"
        return f"reward {record.reward} expired (granted {words.day(record.granted_at)}; {after})"
    partner = record.partner
    rate = program.partners.get(partner)
    each = f" at {rate} {program.checked.currency} a point" if rate is not None else ""
    if record.redeemed:
        return f"{points(record.redeemed)} redeemed at partner {partner}: credited to it{each}"
    if record.reversed:
        return f"{points(record.reversed)} reversed on a purchase at partner {partner}: no longer charged to it"
    paid = ""
    if record.converted is not None:
        currency, amount = record.converted
        paid = f" (paid {show_money(amount)} {currency}, converted at the rate of {currency})"
    return f"{points(record.earned)} earned at partner {partner}: charged to it{each}{paid}"
def _referral_sentence(record: Referred | ReferralPaid, words: _Words) -> str:
    """Who referred whom, and which friend earned what for whom."""
    if isinstance(record, Referred):
        return f"referred {record.friend}: their first purchase can pay this program's referral rules"
    if record.receiver == "referrer":
        late = ("" if record.at == record.purchase_at else
                f" (given at the referrer's own latest instant: they were past the purchase of "
                f"{words.day(record.purchase_at)})")
        return (f"granted {_target(record.target)} for referring {record.friend}, whose purchase qualified,"
                f"{_by(record.rule)}{late}")
    return f"granted {_target(record.target)} as a friend referred by {record.referrer}{_by(record.rule)}"


def grouped(trace: tuple[Record, ...]) -> list[tuple[Record, int]]:
    """Consecutive identical records of one conversion collapse into one line with a count."""
    out: list[tuple[Record, int]] = []
    for record in trace:
        if out and isinstance(record, Converted) and out[-1][0] == record:
            out[-1] = (record, out[-1][1] + 1)
        else:
            out.append((record, 1))
    return out


def story(outcome: Outcome, tz: tzinfo | None = None) -> str:
    """An outcome in plain words, one line per happening (instants shown in ``tz``, UTC when None).

    A happening at another instant than the event (an expiry or a tier
    change applied by the clock in step 1) is shown with its own time.
    """
    def show(instant: Any) -> str:
        return (instant.astimezone(tz) if tz is not None else instant).isoformat()

    when = show(outcome.at)
    if outcome.status == "duplicate":
        return (f"{when} {outcome.type} {outcome.event_id} (customer {outcome.customer}): duplicate id, "
                "already processed; nothing changed\n")
    title = "clock advanced" if outcome.type == "clock" else f"{outcome.type} {outcome.event_id}"
    out = [f"{when} {title} (customer {outcome.customer})"]
    program = outcome.program
    if program is not None:
        for record, count in grouped(outcome.trace):
            at = from_us(record.at)
            prefix = f"at {show(at)}: " if at != outcome.at else ""
            out.append("  " + prefix + describe(record, program, count))
    tier_text = outcome.tier or "none"
    if outcome.tier_before != outcome.tier:
        tier_text = f"{outcome.tier_before or 'none'} → {tier_text}"
    pending = f", {outcome.pending_points} pending" if outcome.pending_points else ""
    debt = f" ({points(-outcome.points)} of debt, paid first by later earnings)" if outcome.points < 0 else ""
    out.append(f"  = balance {points(outcome.points)}{debt}{pending}, lifetime {outcome.lifetime_points}, "
               f"tier {tier_text}")
    text = "\n".join(out) + "\n"
    for other in outcome.linked:  # another customer the event changed (a referrer paid for this friend)
        text += story(other, tz)
    return text


def record_dict(record: Record, program: CompiledProgram) -> dict[str, Any]:
    """A record as JSON-ready data: its kind, instant, the numbers a tool may want, and the sentence."""
    data: dict[str, Any] = {"kind": record.kind, "at": from_us(record.at).isoformat()}
    rule = getattr(record, "rule", None)
    if isinstance(rule, Rule):
        data["rule"] = rule.text
        data["line"] = rule.line
    for name in ("points", "target", "reward", "reason"):
        value = getattr(record, name, None)
        if value is not None:
            data[name] = value.value if isinstance(value, Reason) else value
    data["text"] = describe(record, program)
    return data
