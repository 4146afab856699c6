"""The reward wallet and partner figures (issue 13): what the processing steps do with them.

A granted or redeemed reward is held until a purchase uses it or it
expires. Rewards that cannot expire are held by count (granted − used −
expired, ``CustomerState.held``); those with ``expires after W`` are also
kept one by one in ``state.wallet``, a heap of (ends at, granted at,
reward), so that the clock can end each at its instant (grant + W, the same
calendar arithmetic as a lot's expiry) and a use can take the one that ends
first.

The worth of a used reward (``cost_used``): its fixed ``value``; or, for
``value N%``, N % of the amount of the purchase that uses it, capped by
``max``, rounded to the cent with halves rounded up (a percentage of
12.345 EUR → 1.2345 → 1.23; of 12.35 → 1.235 → 1.24).

Partners: points a purchase (or any event) at a partner earns in step 3
are charged to it; the points a refund of such a purchase takes back are
taken off its charge; the points of a redeem event at a partner are
credited to it. ``settlement`` = (earned − reversed − redeemed) × the
partner's rate, summed exactly and rounded to the cent (halves up) once per
partner: positive means the partner owes the program, negative that the
program owes the partner.

Nothing here validates: ``Stepper.check`` rejects what cannot be applied
before anything changes.
"""

from __future__ import annotations

import heapq
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from poletti.engine.compiler import CompiledProgram
from poletti.engine.money import from_units, to_units
from poletti.engine.state import CustomerState
from poletti.engine.timecalc import add_us
from poletti.interpreter.trace import PartnerPoints, RewardExpired, RewardUsed

CENT = Decimal("0.01")


def to_cent(amount: Decimal) -> Decimal:
    """Money rounded to the cent, halves up (the rounding of percentage values, conversions and settlements)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def hold(state: CustomerState, cp: CompiledProgram, reward: str, at: int, count: int) -> None:
    """Rewards just granted (or redeemed): the ones that expire go into the wallet heap with their end."""
    terms = cp.wallet.get(reward)
    if terms is None or terms.expires is None:
        return  # held by count
    if not isinstance(state.wallet, list):
        state.wallet = []
    ends = add_us(at, terms.expires, cp.tz)
    for _ in range(count):
        heapq.heappush(state.wallet, (ends, at, reward))


def expire_until(state: CustomerState, instant: int, tally: Any) -> None:
    """End every held reward whose end is at or before ``instant`` (the clock's step 1)."""
    wallet = state.wallet
    while wallet and wallet[0][0] <= instant:
        ends, granted_at, reward = heapq.heappop(wallet)  # type: ignore[arg-type]
        if state.rewards_expired is None:
            state.rewards_expired = {}
        state.rewards_expired[reward] = state.rewards_expired.get(reward, 0) + 1
        tally.note(RewardExpired(ends, reward, granted_at))


def next_end(state: CustomerState) -> int | None:
    """When the next held reward ends (None: none can)."""
    return state.wallet[0][0] if state.wallet else None


def held_now(state: CustomerState, cp: CompiledProgram, reward: str) -> int:
    """How many of ``reward`` are held (after the clock step up to now has been applied).

    Always granted − used − expired: the wallet heap only says when each instance that can expire ends. (An
    instance granted before its reward had `expires after` — a program changed on a persistent store — is
    in the count but not in the heap: held until used.)
    """
    return state.held(reward)


def worth(cp: CompiledProgram, reward: str, amount: int) -> tuple[int | None, bool]:
    """What using ``reward`` on a purchase of ``amount`` (micro-units) gives away, and whether ``max`` cut it."""
    terms = cp.wallet.get(reward)
    if terms is not None and terms.percent is not None:
        value = to_units(to_cent(from_units(amount) * terms.percent / 100))
        if terms.max_units is not None and value > terms.max_units:
            return terms.max_units, True
        return value, False
    fixed = cp.rewards.get(reward, (None, None))[0]
    return (None if fixed is None else to_units(fixed)), False


def use(state: CustomerState, cp: CompiledProgram, rewards: tuple[str, ...], amount: int, at: int,
        tally: Any) -> None:
    """A purchase uses held rewards (checked beforehand): for each, the instance that ends first."""
    for reward in rewards:
        granted_at = ends_at = None
        terms = cp.wallet.get(reward)
        wallet = state.wallet
        mine = [i for i, entry in enumerate(wallet) if entry[2] == reward]
        if mine:
            # The first one of this reward in heap order ends first (ties: granted first); one that never
            # ends (see ``held_now``) is used only when none that ends is left.
            index = min(mine, key=lambda i: wallet[i])
            ends_at, granted_at, _ = wallet[index]
            wallet[index] = wallet[-1]
            wallet.pop()
            heapq.heapify(wallet)
        if state.rewards_used is None:
            state.rewards_used = {}
        state.rewards_used[reward] = state.rewards_used.get(reward, 0) + 1
        value, capped = worth(cp, reward, amount)
        if value is not None:
            state.total_cost_used += value
        percent = terms.percent if terms is not None else None
        tally.note(RewardUsed(at, reward, value, amount, percent, capped, granted_at, ends_at))


# ---------------------------------------------------------------- partners


def _figures(state: CustomerState, partner: str) -> list[int]:
    if state.partner_points is None:
        state.partner_points = {}
    figures = state.partner_points.get(partner)
    if figures is None:
        figures = state.partner_points[partner] = [0, 0, 0]
    return figures


def charge(state: CustomerState, partner: str, earned: int, at: int, tally: Any,
           converted: tuple[str, int] | None = None) -> None:
    """Points an event at ``partner`` earned in step 3: charged to the partner."""
    _figures(state, partner)[0] += earned
    tally.note(PartnerPoints(at, partner, earned=earned, converted=converted))


def reverse(state: CustomerState, partner: str, points: int, at: int, tally: Any) -> None:
    """A refund of a purchase made at ``partner`` took ``points`` back: no longer charged to it."""
    if points > 0:
        _figures(state, partner)[1] += points
        tally.note(PartnerPoints(at, partner, reversed=points))


def credit(state: CustomerState, partner: str, points: int, at: int, tally: Any) -> None:
    """Points redeemed at ``partner``: credited to it."""
    _figures(state, partner)[2] += points
    tally.note(PartnerPoints(at, partner, redeemed=points))


def settlement(figures: list[int], rate: Decimal) -> Decimal:
    """(earned − reversed − redeemed) × rate, to the cent: positive, the partner owes the program."""
    earned, reversed_, redeemed = figures
    return to_cent((earned - reversed_ - redeemed) * rate)
