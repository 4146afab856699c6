"""Apply validated events and clock steps to customer states: the core under every way of running a program.

``Stepper(compiled, explain, generated)`` knows one program and nothing about
where states live: ``check(state, event)`` raises ``EventError`` for what the
contract rejects given the customer's state (out of order, a refund of an
unknown or fully refunded purchase, a redeem the customer cannot afford);
``apply(state, event)`` then carries out steps 1–6 and returns the tally and
the points earned; ``advance(state, until)`` is the clock alone;
``schedule(state)`` works out the customer's next time-driven change. The
``Engine`` wraps it with a store and outcomes; the simulate replays call it
directly on their own states.

The generated code (``poletti.engine.codegen``) does the work when
explanations are off; the interpreter when they are on, for redeems (rare,
and they need a trial run on a copy), and always when ``generated=False``.
"""

from __future__ import annotations

import copy

from poletti.engine.compiler import CompiledProgram
from poletti.engine.money import show
from poletti.engine.state import REFUND_NOTHING_LEFT, REFUND_UNKNOWN, CustomerState
from poletti.engine.timecalc import from_us
from poletti.interpreter.events import Event, EventError
from poletti.interpreter.events import _short as echoed  # a value echoed in a reason, cut when long
from poletti.interpreter import wallet
from poletti.interpreter.generated import Runtime, runtime_for
from poletti.interpreter.processing import Processor, Tally


class Stepper:
    def __init__(self, compiled: CompiledProgram, *, explain: bool, generated: bool | None = None) -> None:
        if generated and explain:
            raise ValueError("the generated code keeps no explanations: use explain=False with generated=True")
        self.compiled = compiled
        self.processor = Processor(compiled)
        self.explain = explain
        self.runtime: Runtime | None = None
        # The generated code knows nothing of pooled accounts: a pooled program is always interpreted.
        if (generated or (generated is None and not explain)) and not compiled.pooled:
            self.runtime = runtime_for(compiled, self.processor)

    def new_state(self, customer: str) -> CustomerState:
        return self.processor.new_state(customer)

    # ------------------------------------------------------------------ checks

    def check(self, state: CustomerState, event: Event) -> None:
        """Raise ``EventError`` if the contract rejects the event given this customer's state; change nothing."""
        kind = event.type
        if (kind != "refund" and kind != "redeem" and not event.rewards_used
                and (state.last_event_at is None or event.at >= state.last_event_at)):
            return  # the common case: nothing below applies

        def reject(reason: str) -> None:
            raise EventError(reason, event.id)

        if state.last_event_at is not None and event.at < state.last_event_at:
            reject(f"older than this customer's last processed event ({from_us(state.last_event_at).isoformat()}); "
                   "events of one customer must come in time order")
        if event.type == "refund":
            _, left, refused = state.refund_refusal(event.original or "", event.amount)
            if refused == REFUND_UNKNOWN:
                reject(f"refund of unknown purchase {echoed(event.original)} for customer {echoed(event.customer)}")
            elif refused == REFUND_NOTHING_LEFT:
                reject(f"purchase '{event.original}' is already fully refunded")
            elif refused is not None:
                reject(f"refund of {show(event.amount)} is more than is left of purchase '{event.original}' "
                       f"({show(left)})")
        elif event.type == "redeem":
            rewards = self.compiled.rewards
            reward = event.reward or ""
            if reward not in rewards:
                known = ", ".join(sorted(rewards)) or "none"
                reject(f"unknown reward {echoed(reward)} (rewards: {known})")
            cost = rewards[reward][1]
            if cost is None:
                reject(f"reward '{reward}' cannot be redeemed: it has no `costs`")
                return
            if self.compiled.pooled:
                return  # the balance is the account's: interpreter/accounts.py checks it on the pool
            # The balance is checked after the clock step (lots may expire at this very instant): on a copy.
            trial = copy.deepcopy(state)
            self.processor.advance(trial, event.at, Tally(False))
            if trial.ledger.balance < cost:
                reject(f"balance {trial.ledger.balance} points is short of {cost} for {reward}")
        if event.rewards_used:
            self._check_rewards_used(state, event)

    def _check_rewards_used(self, state: CustomerState, event: Event) -> None:
        """Each reward a purchase uses must be held at its instant (after the clock step: one may just have
        expired); a name listed twice uses two."""
        wanted: dict[str, int] = {}
        for name in event.rewards_used:
            wanted[name] = wanted.get(name, 0) + 1
        # Held as of the event's instant: the clock step may grant (a birthday, a `when` turned true by time)
        # or end held rewards before the purchase. Worked out on a copy, like a redeem's balance.
        trial = copy.deepcopy(state)
        self.processor.advance(trial, event.at, Tally(False))
        for name, count in wanted.items():
            held = wallet.held_now(trial, self.compiled, name)
            if held < count:
                # Only what the state is at the purchase's instant, not what an earlier ``advance_to`` already
                # applied: the reason must not depend on when the host moved the clock (a simulation moves it
                # at month ends; comparing with the state before this clock step did, and said "expired" or
                # not depending on it).
                expired = (trial.rewards_expired or {}).get(name, 0)
                if held <= 0 and expired:
                    why = f"the customer holds no {name} ({expired} expired by {from_us(event.at).isoformat()})"
                elif held <= 0:
                    why = f"the customer holds no {name}"
                else:
                    why = f"the customer holds {held} {name}, and the purchase uses {count}"
                raise EventError(f"cannot use reward '{name}': {why}", event.id)

    # ------------------------------------------------------------------ steps

    def apply(self, state: CustomerState, event: Event, tally: Tally | None = None) -> tuple[Tally, int]:
        """Steps 1–6 for an event that passed ``check``: the tally of what happened and the points earned.

        ``tally``: one to go on with (an account's clock step taken first, interpreter/accounts.py).
        """
        runtime = self.runtime
        # Redeems, events that use rewards or happen at a partner (issue 13), and an event going on from an
        # account's clock step (``tally`` given) are interpreted.
        if (runtime is not None and event.type != "redeem" and not event.rewards_used and event.partner is None
                and tally is None):
            tally = Tally(False)
            return tally, runtime.apply(state, event, tally)
        tally = tally if tally is not None else Tally(self.explain)
        return tally, self._interpret(state, event, tally)

    def _interpret(self, state: CustomerState, event: Event, tally: Tally) -> int:
        processor, cp = self.processor, self.compiled
        processor.advance(state, event.at, tally)
        if tally.trace is not None:
            tally.event_start = len(tally.trace)
        processor.record_facts(state, event)
        if event.type == "refund":
            index = state.purchase_index(event.original or "")
            assert index is not None
            amount = event.amount if event.amount is not None else state.purchase_net(index)
            processor.refund(state, index, amount, event.at, tally)
        elif event.type == "redeem":
            assert event.reward is not None
            cost = cp.rewards[event.reward][1]
            assert cost is not None
            processor.redeem(state, event.reward, cost, event.at, tally)
            if event.partner is not None:
                wallet.credit(state, event.partner, cost, event.at, tally)
        if event.rewards_used:
            # Handed in at the till: used before anything this purchase grants (which it cannot use).
            wallet.use(state, cp, event.rewards_used, event.amount or 0, event.at, tally)
        ctx = cp.make_ctx(state, event.at, event)
        earned = processor.earn(state, ctx, event, tally)
        if earned:
            processor.add_points(state, earned, event.at, source=event.id, pending=event.type == "purchase")
        if event.partner is not None and (earned or event.type != "redeem"):
            wallet.charge(state, event.partner, earned, event.at, tally, event.paid)
        if event.type == "purchase":
            state.set_purchase_points(-1, earned)
        # Step 4: stamp cards count first, so the points a card grants convert on this event.
        processor.stamps(state, ctx, event, tally)
        processor.convert(state, ctx, tally)
        processor.status(state, ctx, tally)
        processor.triggers(state, ctx, event, tally)
        state.last_event_at = event.at
        if event.type == "purchase":
            state.last_purchase_at = event.at
            processor.settle(state, event.at, tally)
        return earned

    def advance(self, state: CustomerState, until: int) -> Tally:
        """Every time-driven change of one customer up to ``until``."""
        tally = Tally(self.explain)
        if self.runtime is not None:
            self.runtime.advance(state, until, tally)
        else:
            self.processor.advance(state, until, tally)
        return tally

    def schedule(self, state: CustomerState) -> int | None:
        """The customer's next time-driven change, remembered on the state for its next clock step."""
        instant = (self.runtime or self.processor).next_change(state)
        state.remember_next_change(instant)
        return instant
