"""Money as integers: millionths of the program currency.

The engine keeps every amount as an ``int`` of micro-units (12.50 EUR is
12_500_000), so sums, windows and comparisons are exact integer arithmetic
and cheap; ``Decimal`` is used at the edges (reading events, rule literals,
reports). Six decimal places hold every currency's minor unit and the
fractions of a cent that unit prices sometimes have; an amount that needs
more is rejected rather than rounded, since rounding money silently is a bug.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

DIGITS: Final = 6
SCALE: Final = 10**DIGITS
_PER_CENT: Final = SCALE // 100


def to_units(value: Decimal) -> int:
    """An exact decimal amount → micro-units; ``ValueError`` beyond six decimal places."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -DIGITS:
        trimmed = value.normalize()
        if trimmed.as_tuple().exponent < -DIGITS:  # type: ignore[operator]
            raise ValueError(f"{value} has more than {DIGITS} decimal places")
        value = trimmed
    return int(value.scaleb(DIGITS))


def from_units(units: int) -> Decimal:
    """Micro-units → the exact decimal amount, written as people write money: 12.50, 0.125."""
    if units % _PER_CENT == 0:
        return Decimal(units // _PER_CENT).scaleb(-2)
    return Decimal(units).scaleb(-DIGITS).normalize()  # not whole cents: no exponent notation can come out


def show(units: int) -> str:
    """An amount as text: at least two decimals, no trailing zeros beyond them (12.50, 0.125)."""
    return format(from_units(units), "f")
