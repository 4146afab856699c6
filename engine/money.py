"""Money as integers: millionths of the program currency.

The engine keeps every amount as an ``int`` of micro-units (12.50 EUR is
12_500_000), so sums, windows and comparisons are exact integer arithmetic
and cheap; ``Decimal`` is used at the edges (reading events, rule literals,
reports). Six decimal places hold every currency's minor unit and the
fractions of a cent that unit prices sometimes have; an amount that needs
more is rejected rather than rounded, since rounding money silently is a bug.
"""

from __future__ import annotations

from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, DecimalException, DivisionByZero, Inexact, \
    InvalidOperation, Overflow
from typing import Final

DIGITS: Final = 6
SCALE: Final = 10**DIGITS
_PER_CENT: Final = SCALE // 100

#: The context of every Decimal operation on money and points (``EXACT.multiply(rate, amount)``, never
#: ``rate * amount`` in the thread's default 28-digit context): precision without limit, so a product, a
#: sum or a whole-number quotient (``divide_int``) is exact, and a trap for anything that would still
#: round or overflow, so an inexact result raises instead of being silently rounded. (True division is
#: never used on money: it could need infinitely many digits.)
EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN,
                       traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])


def to_units(value: Decimal) -> int:
    """An exact decimal amount → micro-units; ``ValueError`` beyond six decimal places."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite amount")
    try:
        units = EXACT.scaleb(value, DIGITS)
        if units != units.to_integral_value():
            raise ValueError(f"{value} has more than {DIGITS} decimal places")
        return int(units)
    except DecimalException:
        raise ValueError(f"{value} cannot be held exactly") from None


def from_units(units: int) -> Decimal:
    """Micro-units → the exact decimal amount, written as people write money: 12.50, 0.125."""
    if units % _PER_CENT == 0:
        return EXACT.scaleb(Decimal(units // _PER_CENT), -2)
    # Not whole cents: no exponent notation can come out.
    return EXACT.normalize(EXACT.scaleb(Decimal(units), -DIGITS))


def show(units: int) -> str:
    """An amount as text: at least two decimals, no trailing zeros beyond them (12.50, 0.125)."""
    return format(from_units(units), "f")
