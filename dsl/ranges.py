"""Numbers the engine computes with exactly: the bounds every literal of a rule file must keep (E129).

A number too large (or with too many decimals) for exact arithmetic would
pass the type checks and then crash or round the first event that reads
it; a date at the edge of the calendar cannot be moved by a window. These
bounds are far beyond any real loyalty program, and documented in
docs/language.md ("Error codes", E129):

* every number — points, counts, thresholds, caps, money, bare numbers in
  conditions, module settings — is at most ``MAX_NUMBER`` (10^12) in size and
  has at most ``MAX_DECIMALS`` (6) decimal places;
* a multiplier (``earn x2``) is at most ``MAX_FACTOR`` (10^6), with at most
  6 decimal places;
* a date is in the years ``FIRST_YEAR`` to ``LAST_YEAR`` (1900–9000), the
  years events may have (so any window of up to 100 years stays in the calendar).

``check(rule_file)`` returns the E129 diagnostics of one parsed file; the
front end runs it beside the checker.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Final

from poletti.dsl import ast
from poletti.dsl.diagnostics import Diagnostic, make

MAX_NUMBER: Final = Decimal(10) ** 12
MAX_DECIMALS: Final = 6
MAX_FACTOR: Final = Decimal(10) ** 6
FIRST_YEAR: Final = 1900
LAST_YEAR: Final = 9000


def _shown(value: Decimal) -> str:
    text = format(value, "f") if abs(value.adjusted()) < 40 else str(value)
    return text if len(text) <= 24 else text[:12] + "…" + text[-4:]


def decimal_places(value: Decimal) -> int:
    """Decimal places without trailing zeros (1.50 has 1), exactly: ``normalize`` would round to 28 digits."""
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or not any(digits):
        return 0
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + trailing))


def number_problem(value: Decimal, limit: Decimal = MAX_NUMBER, what: str = "numbers in rules") -> str | None:
    """Why a literal number is out of range (a sentence), or None when it is fine."""
    if not value.is_finite():
        return f"{value} is not a number poletti computes with"
    if value.copy_abs() > limit:
        return f"{_shown(value)} is too large: {what} are at most {limit:,f}"
    if decimal_places(value) > MAX_DECIMALS:
        return f"{_shown(value)} has more than {MAX_DECIMALS} decimal places"
    return None


def check(rule_file: ast.RuleFile) -> list[Diagnostic]:
    """E129 for every literal number, multiplier and date of the file that is out of range."""
    from poletti.dsl.parser import iter_nodes

    found: list[Diagnostic] = []
    for node in iter_nodes(rule_file):
        if isinstance(node, ast.NumberLit):
            problem = number_problem(node.value)
            if problem is not None:
                found.append(make("E129", problem, node.span,
                                  [f"points, counts and amounts are at most {MAX_NUMBER:,f}, "
                                   f"with at most {MAX_DECIMALS} decimal places"]))
        elif isinstance(node, ast.Multiplier):
            problem = number_problem(node.factor, MAX_FACTOR, "multipliers")
            if problem is not None:
                found.append(make("E129", f"multiplier x{problem}", node.span,
                                  [f"a multiplier is at most x{MAX_FACTOR:,f}, with at most {MAX_DECIMALS} "
                                   "decimal places"]))
        elif isinstance(node, ast.DateLit):
            try:
                year = date.fromisoformat(node.text).year
            except ValueError:
                continue  # not a date at all: E105
            if not FIRST_YEAR <= year <= LAST_YEAR:
                found.append(make("E129", f"{node.text} is outside the years poletti handles ({FIRST_YEAR} to "
                                          f"{LAST_YEAR})", node.span,
                                  [f"events are accepted from {FIRST_YEAR} to {LAST_YEAR}; for a campaign "
                                   f"without an end in sight, write an end such as {LAST_YEAR}-12-31"]))
    return found
