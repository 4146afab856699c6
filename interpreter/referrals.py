"""Referrals: the links a ``referral`` event makes, and the referral rules that pay when the friend buys.

The contract (docs/language.md "Referrals"): a referral event of the
referrer carries ``friend`` and links the friend to the referrer; the first
link wins; a friend who already had an accepted event, or the referrer
themself, makes the referral rejected. A referral rule pays the referrer,
the friend or both at the friend's first purchase that passes the rule's
options, once per friend; its cap counts per referrer.

So an event may change two customers: a referral changes the friend (the
link, kept in the friend's state) and a friend's purchase may change the
referrer. ``Referrals`` does that work on states the caller loaded — the
``Engine`` inside one store transaction that locks both customers, the
simulate replays on the states of one link component (customers joined by
referrals are replayed together, ``columns.arrange``) — so the answer is
the same through every interface.

When the referrer changes: at the friend's purchase's instant, after the
referrer's clock is run up to it (their expiries, tier changes… before it),
exactly as if the grant were one of the referrer's own events at that
instant. In a simulation, which replays a history in time order, that is
always the case. The live engine takes events as hosts send them, so the
referrer may already have events (or a clock step) after the friend's
purchase: then the grant is given at the referrer's own latest instant —
a state never goes back in time — and explain says so.

Refunds: a referral grant is not undone by a refund of the purchase that
qualified (rewards already granted stay, and a referral's points are the
rule's grant, not the purchase's own earn, which is reversed as usual), and
the friend does not qualify again: the rule has paid for that friend.
"""

from __future__ import annotations

from typing import Callable

from poletti.engine.compiler import CompiledProgram, ReferralRule
from poletti.engine.state import CustomerState
from poletti.engine.timecalc import from_us
from poletti.interpreter.events import Event, EventError
from poletti.interpreter.events import _short as echoed
from poletti.interpreter.processing import Processor, Tally
from poletti.interpreter.trace import ReferralPaid, Referred, Skipped, Reason


def friend_of(event: Event) -> str | None:
    """The customer a referral event links (None for any other event)."""
    return event.friend if event.type == "referral" else None


class Referrals:
    """One program's referral work, on states the caller loaded and will save."""

    def __init__(self, processor: Processor) -> None:
        self.processor = processor
        self.cp: CompiledProgram = processor.cp
        self.rules: tuple[ReferralRule, ...] = processor.cp.referrals

    # ------------------------------------------------------------------ links

    @staticmethod
    def check_link(event: Event, friend: CustomerState | None) -> None:
        """Raise ``EventError`` if the referral cannot link its friend (the friend's state as stored, or None)."""
        if friend is None:
            return
        if friend.referred_by is not None:
            raise EventError(f"friend {echoed(event.friend)} was already referred by {echoed(friend.referred_by)}; "
                             "the first referral counts", event.id)
        if friend.last_event_at is not None:
            raise EventError(f"friend {echoed(event.friend)} is already a customer (an event on "
                             f"{from_us(friend.last_event_at).isoformat()}); only a new customer can be referred",
                             event.id)

    @staticmethod
    def link(event: Event, friend: CustomerState, tally: Tally) -> None:
        """Link the friend to the referrer (the referral event passed ``check_link``)."""
        friend.referred_by = event.customer
        tally.note(Referred(event.at, event.customer, friend.customer))

    # ------------------------------------------------------------------ payouts

    def referrer_to_load(self, event: Event, friend: CustomerState | None) -> str | None:
        """The referrer whose state this event of ``friend`` may change (None: it changes only the friend)."""
        if (not self.rules or event.type != "purchase" or friend is None or friend.referred_by is None
                or len(friend.referral_settled) == len(self.rules)):
            return None
        return friend.referred_by

    def pay(self, event: Event, friend: CustomerState, referrer: CustomerState, friend_tally: Tally,
            referrer_tally: Tally) -> bool:
        """The referral rules the friend's purchase qualifies for, after the purchase itself was applied.

        Returns whether the referrer's state changed (then the caller saves it).
        """
        processor, cp, now = self.processor, self.cp, event.at
        ctx = cp.make_ctx(friend, now, event)  # the rule's options read the friend's purchase and figures
        referrer_changed = False
        for rule in self.rules:
            if rule.index in friend.referral_settled:
                continue
            blocked = rule.guard.check(ctx)
            if blocked is not None:  # not this purchase: a later one may qualify
                if friend_tally.trace is not None:
                    processor._skipped(friend_tally, ctx, rule, blocked)
                continue
            friend.referral_settled = (*friend.referral_settled, rule.index)  # once per friend, whatever the cap
            referrer_at: int | None = None
            if rule.to_referrer or rule.guard.cap is not None:
                referrer_at = self._referrer_clock(referrer, now, referrer_tally)
                referrer_changed = True
            cap = rule.guard.cap
            if cap is not None:
                assert referrer_at is not None
                referrer_ctx = cp.make_ctx(referrer, referrer_at, None)
                if processor._cap_left(referrer, referrer_ctx, rule, cap) <= 0:
                    for tally in (friend_tally, referrer_tally):
                        if tally.trace is not None:
                            tally.trace.append(Skipped(now, rule, Reason.TIMES_LIMIT_REACHED, used=cap.amount))
                    continue
                processor._use_cap(referrer, referrer_ctx, rule, cap, 1)
            if rule.to_referrer:
                assert referrer_at is not None
                referrer_tally.note(ReferralPaid(referrer_at, rule, rule.target, "referrer", friend.customer,
                                                 referrer.customer, now))
                self._give(referrer, rule, referrer_at, referrer_tally)
            if rule.to_friend:
                friend_tally.note(ReferralPaid(now, rule, rule.target, "friend", friend.customer,
                                               referrer.customer, now))
                self._give(friend, rule, now, friend_tally)
        return referrer_changed

    def _referrer_clock(self, referrer: CustomerState, at: int, tally: Tally) -> int:
        """Bring the referrer to the friend's instant (when not past it); the instant their grant is given at."""
        if referrer.clock is not None and referrer.clock > at:
            referrer.next_change_clock = None  # the state is about to change
            return referrer.clock
        self.processor.advance(referrer, at, tally)
        if referrer.clock is None:
            referrer.clock = at
        return at

    def _give(self, state: CustomerState, rule: ReferralRule, at: int, tally: Tally) -> None:
        """A referral grant, and what follows from it at that instant as with any grant (convert, status, when)."""
        processor = self.processor
        target = rule.target
        state.next_change_clock = None  # a new lot may expire: the next change is worked out again
        if isinstance(target, str):
            processor._give_reward(state, target, tally, at=at)
        else:
            processor.add_points(state, target, at, source="grant", pending=False)
        state.note_grant(rule.index, at)
        ctx = self.cp.make_ctx(state, at, None)
        if isinstance(target, int):
            processor.convert(state, ctx, tally)
        processor.status(state, ctx, tally)
        if processor._when_rules(state, ctx, tally):
            processor.convert(state, ctx, tally)


def linked_customers(event: Event, load: Callable[[str], CustomerState | None],
                     referrals: Referrals) -> tuple[str, ...]:
    """Customers besides the event's own whose states the event may change, for locking them up front."""
    friend = friend_of(event)
    if friend is not None:
        return (friend,)
    referrer = referrals.referrer_to_load(event, load(event.customer)) if referrals.rules else None
    return (referrer,) if referrer is not None else ()


__all__ = ["Referrals", "friend_of", "linked_customers"]
