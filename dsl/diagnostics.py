"""Diagnostics: the one type every stage reports problems with, and the code registry.

Codes are stable: tools and docs refer to them, so a code is never reused for
a different problem. ``P`` codes come from the parser, ``E`` codes are errors
found by the checker, ``W`` codes are warnings (the program still runs).
docs/language.md lists every code with a fix; tests/dsl/test_diagnostic_codes.py makes sure
each one is triggered by at least one test and documented.
"""

from __future__ import annotations

import difflib
from typing import Iterable

from poletti.dsl import classes
from poletti.dsl.ast import Span

ERROR = "error"
WARNING = "warning"

# The most diagnostics one run reports: past this, a file is so broken that
# more messages bury the first (and usually causal) ones.
MAX_DIAGNOSTICS = 50


@classes.frozen
class Code:
    code: str
    slug: str
    severity: str
    summary: str


_CODES = [
    # -- parsing
    Code("P001", "syntax-error", ERROR, "the statement does not follow the grammar"),
    Code("P002", "unexpected-character", ERROR, "a character that has no meaning in a rule file"),
    Code("P003", "incomplete-statement", ERROR, "the statement stops before it is complete"),
    Code("P004", "unterminated-string", ERROR, "a text in quotes is not closed on its line"),
    Code("P005", "unclosed-parenthesis", ERROR, "a '(' has no matching ')'"),
    Code("P006", "not-utf8", ERROR, "the file is not UTF-8 text"),
    Code("P007", "unknown-statement", ERROR, "a statement starts with a word that is not a statement keyword"),
    Code("P008", "too-large", ERROR, "a file with more statements, or a statement longer, than poletti checks"),
    # -- checking
    Code("E101", "unknown-name", ERROR, "a name that is neither built in nor declared"),
    Code("E102", "duplicate-declaration", ERROR, "the same name is declared twice"),
    Code("E103", "type-mismatch", ERROR, "values of incompatible types are combined or compared"),
    Code("E104", "tier-compared-with-number", ERROR, "a tier is compared with something that is not a tier"),
    Code("E105", "invalid-date", ERROR, "a date that does not exist in the calendar"),
    Code("E106", "invalid-duration", ERROR, "a window or duration of zero length, or in a place that needs another unit"),
    Code("E107", "campaign-ends-before-start", ERROR, "a 'during' range whose end is before its start"),
    Code("E108", "not-a-reward", ERROR, "'grant' names something that is not a reward"),
    Code("E109", "currency-mismatch", ERROR, "money in a currency other than the program's"),
    Code("E110", "unknown-timezone", ERROR, "a time zone that is not an IANA zone name"),
    Code("E111", "unknown-event-type", ERROR, "an event type that is neither built in nor declared"),
    Code("E112", "unknown-module", ERROR, "'use' names a module that is not in the standard library"),
    Code("E113", "bad-module-argument", ERROR, "a module argument that is unknown, missing or of the wrong type"),
    Code("E114", "not-a-condition", ERROR, "a condition that is not a yes/no value"),
    Code("E115", "option-not-allowed", ERROR, "an option that this kind of rule cannot carry"),
    Code("E116", "duplicate-option", ERROR, "the same option is given twice on one rule"),
    Code("E117", "invalid-amount", ERROR, "an amount that must be positive (or whole) is not"),
    Code("E118", "unknown-attribute", ERROR, "an event attribute used without an 'attribute' declaration"),
    Code("E119", "unsupported-operator", ERROR, "an operator that does not apply to these values"),
    Code("E120", "duplicate-setting", ERROR, "a program setting given more than once"),
    Code("E121", "unknown-currency", ERROR, "a currency code that is not ISO 4217"),
    Code("E122", "param-outside-module", ERROR, "'param' is only for standard-library modules"),
    Code("E123", "invalid-metric", ERROR, "a metric that cannot be computed as written"),
    Code("E124", "too-many-diagnostics", ERROR, "more problems than are worth listing"),
    Code("E125", "event-attribute-without-event", ERROR, "an event attribute where no single event is being processed (segments, tiers, 'when' and 'at' rules)"),
    Code("E126", "earn-rule-without-basis", ERROR, "an earn rule that does not say what its points are for, or a multiplier with 'per'/'on'"),
    Code("E127", "dependency-cycle", ERROR, "segments or tiers that are defined through each other in a circle"),
    Code("E128", "unreachable-tier", ERROR, "a tier that a later, higher-ranked tier always outranks"),
    Code("E129", "number-out-of-range", ERROR, "a number or date too large (or too precise) to compute with exactly"),
    # -- wallets, perks, partners (issue 13)
    Code("E140", "invalid-reward-value", ERROR, "a reward's percentage value, 'max' or 'expires after' that cannot apply as written"),
    Code("E141", "duplicate-partner", ERROR, "a partner or a perk declared twice"),
    Code("E142", "invalid-rate", ERROR, "a currency rate for the program's own currency, given twice, or not above zero"),
    # -- shared accounts and referrals
    Code("E150", "account-quantity-without-pooling", ERROR, "an account. figure in a program that does not pool points by account"),
    Code("E151", "not-an-account-quantity", ERROR, "account. followed by something that is not a spend, purchases or visits figure"),
    Code("E152", "pooled-tier-reads-contact", ERROR, "a tier of a pooled program reads one contact's figures instead of the account's"),
    Code("E153", "referral-with-pooling", ERROR, "a referral rule in a program that pools points by account"),
    # -- warnings
    Code("W201", "implicit-reward", WARNING, "a granted reward that has no 'reward' declaration"),
    Code("W202", "unreachable-rule", WARNING, "a rule that can never fire"),
    Code("W203", "unused-reward", WARNING, "a declared reward that is never granted and cannot be redeemed"),
    Code("W204", "expires-before-available", WARNING, "points expire before their pending period ends"),
    Code("W205", "multiplier-without-spend-rule", WARNING, "a multiplier with no spend-based earn rule to multiply"),
]

CODES: dict[str, Code] = {c.code: c for c in _CODES}


@classes.frozen
class Diagnostic:
    """One problem found in a rule file.

    ``notes`` are extra lines shown under the caret (hints, did-you-mean,
    where something was first declared).
    """

    code: str
    severity: str
    message: str
    span: Span
    notes: tuple[str, ...] = ()

    @property
    def line(self) -> int:
        return self.span.line

    @property
    def column(self) -> int:
        return self.span.column


def make(code: str, message: str, span: Span, notes: Iterable[str] = ()) -> Diagnostic:
    """A diagnostic with the severity its code registers."""
    return Diagnostic(code, CODES[code].severity, message, span, tuple(n for n in notes if n))


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word``, or None when none is close enough to be a typo of it."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A 'did you mean …?' note for the closest candidate, or '' when none is close."""
    close = closest(word, candidates)
    return f"did you mean '{close}'?" if close else ""


def finish(diagnostics: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    """Sort by position (then code) and cap, so output is stable and readable.

    Safe to call again on its own output (a later stage adding problems):
    an earlier "more not shown" line is dropped and worked out afresh. The
    cap line is an error only when an error is among the hidden ones, so
    many warnings never stop a program from compiling.
    """
    fresh = {d for d in diagnostics if d.code != "E124"}
    ordered = sorted(fresh, key=lambda d: (d.span.line, d.span.column, d.code, d.message))
    if len(ordered) <= MAX_DIAGNOSTICS:
        return tuple(ordered)
    kept, hidden = ordered[:MAX_DIAGNOSTICS], ordered[MAX_DIAGNOSTICS:]
    severity = ERROR if has_errors(hidden) else WARNING
    message = f"{len(hidden)} more problem(s) not shown; fix the ones above first"
    return tuple(kept) + (Diagnostic("E124", severity, message, kept[-1].span),)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity == ERROR for d in diagnostics)
