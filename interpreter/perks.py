"""Perks (issue 13): standing benefits held while their condition holds.

A perk is not granted and not counted as a cost: it is read off the
customer's standing whenever it is asked for — by ``engine.customer(id)``,
by the simulate summary at the end of a replay, by explain — from the state
as of its clock (the customer's last event, or the last ``advance_to``),
exactly as the tier is. ``perk early_access when tier >= vip`` is held by a
customer whose tier is vip or above at that instant, and by no one else.
"""

from __future__ import annotations

from poletti.engine.compiler import CompiledProgram, PerkRule
from poletti.engine.state import CustomerState


def perks_held(compiled: CompiledProgram, state: CustomerState) -> tuple[PerkRule, ...]:
    """The perks whose condition holds for the customer now (none for a customer never seen)."""
    if not compiled.perks or state.clock is None:
        return ()
    ctx = compiled.make_ctx(state, state.clock, None)
    return tuple(perk for perk in compiled.perks if perk.condition(ctx))


def why_perk(compiled: CompiledProgram, state: CustomerState, perk: PerkRule) -> tuple[bool, str]:
    """Whether the customer holds ``perk``, and the sentence that says why (for explain)."""
    if state.clock is None:
        return False, f"lacks perk {perk.name}: no event yet ({perk.text})"
    ctx = compiled.make_ctx(state, state.clock, None)
    if perk.condition(ctx):
        reads = _reads(perk.parts, ctx)
        return True, f"has perk {perk.name}: {_condition_text(perk)} holds" + (f" ({reads})" if reads else "")
    index, values = perk.failed_part(ctx)
    if index is None:
        return False, f"lacks perk {perk.name}: {_condition_text(perk)} does not hold"
    part = perk.parts[index]
    shown = ", ".join(f"{name} is {show(value)}" for (name, _, show), value in zip(part.shown, values))
    return False, f"lacks perk {perk.name}: {part.text} does not hold" + (f" ({shown})" if shown else "")


def _condition_text(perk: PerkRule) -> str:
    return " and ".join(part.text for part in perk.parts)


def _reads(parts: tuple, ctx: object) -> str:
    seen: dict[str, str] = {}
    for part in parts:
        for name, read, show in part.shown:
            seen.setdefault(name, show(read(ctx)))
    return ", ".join(f"{name} is {value}" for name, value in seen.items())
