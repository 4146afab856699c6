"""Numbers stay exact or are refused: rule literals out of range are E129 at check time, event money is bounded.

Bounds (docs/language.md, E129): numbers in rules at most 10^12 with at most
6 decimals, multipliers at most x10^6, dates in the years 1900–9000; event
amounts and item prices at most 10^12 with at most 6 decimals.
"""

from __future__ import annotations

from typing import Any

import pytest

import poletti
from poletti.dsl.frontend import analyze

ZEROS = "0" * 5000
ENGINES = [pytest.param(dict(explain=True), id="interpreter-explain"),
           pytest.param(dict(explain=False, generated=False), id="interpreter"),
           pytest.param(dict(explain=False, generated=True), id="generated")]


@pytest.mark.parametrize(("source", "line", "column"), [
    (f"earn 1 point per EUR\nearn x1{ZEROS}\n", 2, 6),  # a multiplier of 5,001 digits
    ("earn 1 point per EUR\nearn x1000000.5\n", 2, 6),  # above x1,000,000
    ("earn 1 point per EUR\nearn x1.0000001\n", 2, 6),  # 7 decimals
    (f"every 1{ZEROS} purchases grant gift\n", 1, 7),
    ("earn 1 point per EUR during 2026-01-01..9999-12-31\n", 1, 41),
    ("earn 1 point per EUR during 1899-12-31\n", 1, 29),
    ("earn 1 point per EUR; at 1000000000001 points grant gift\n", 1, 26),  # 10^12 + 1
    ("earn 1000000000001 points per purchase\n", 1, 6),
    ("earn 0.0000001 points per EUR\n", 1, 6),
    ("earn 1 point per 1000000000001 EUR\n", 1, 18),
    ('reward gift "Gift" value 1000000000001 EUR\nat 5 points grant gift\nearn 1 point per EUR\n', 1, 26),
    (f"earn 1 point per EUR; tier gold when spend_12m > 1{ZEROS}\n", 1, 50),
    ("earn 1 point per EUR limit 1000000000001 points per day\n", 1, 28),
    (f"use stamp_card with every = 1{ZEROS}, reward = gift\n", 1, 29),
])
def test_numbers_beyond_exact_arithmetic_are_E129_with_their_place(source: str, line: int, column: int) -> None:
    result = analyze(source, "rules.loyalty")  # `check` must not crash either
    errors = [d for d in result.diagnostics if d.code == "E129"]
    assert errors, [(d.code, d.message) for d in result.diagnostics]
    assert (errors[0].line, errors[0].column) == (line, column)
    with pytest.raises(poletti.CompileError):
        poletti.compile(source)


def test_numbers_at_the_bounds_compile_and_run() -> None:
    source = ("earn 1000000000000 points per purchase\nearn x1000000 if points > 1\n"
              "earn 1 point per EUR during 1900-01-01..9000-12-31\nat 1000000000000 points grant gift\n")
    program = poletti.compile(source)
    for generated in (False, True):
        engine = poletti.Engine(program, explain=False, generated=generated)
        outcome = engine.process({"id": "e1", "type": "purchase", "customer": "c", "at": "2026-01-01",
                                  "amount": "2"})
        # 10^12 per purchase + 2 per EUR: 1,000,000,000,002; no multiplier (points were 0 before);
        # one gift of 10^12 leaves 2.
        assert outcome.earned == 1_000_000_000_002
        assert outcome.granted == {"gift": 1} and outcome.points == 2


def test_a_window_name_of_thousands_of_digits_is_an_error_not_a_crash() -> None:
    result = analyze(f"earn 1 point per EUR; tier gold when spend_1{ZEROS}d > 5\n")
    assert [d.code for d in result.diagnostics] == ["E106"]


@pytest.mark.parametrize("options", ENGINES)
def test_rate_times_amount_is_exact_beyond_28_digits(options: dict[str, Any]) -> None:
    # rate R = 10^12 − 10^-6, amount A = 10^11 + 10^-6 (both in range):
    # R × A = 10^23 + 10^6 − (10^5 + 10^-12) = 100000000000000000899999.999999999999 (36 digits),
    # so rounding down gives 100000000000000000899999. Decimal's default 28 digits would round the
    # product up to ...900000 first.
    engine = poletti.Engine(poletti.compile("earn 999999999999.999999 points per EUR\n"), **options)
    outcome = engine.process({"id": "e1", "type": "purchase", "customer": "c", "at": "2026-01-01T10:00:00Z",
                              "amount": "100000000000.000001"})
    assert outcome.earned == 100_000_000_000_000_000_899_999


@pytest.mark.parametrize("options", ENGINES)
def test_rest_refund_of_the_largest_purchase_refunds_exactly_what_it_cost(options: dict[str, Any]) -> None:
    engine = poletti.Engine(poletti.compile("earn 1 point per EUR\n"), **options)
    bought = engine.process({"id": "p1", "type": "purchase", "customer": "c", "at": "2026-01-01T10:00:00Z",
                             "amount": "999999999999.999999"})
    assert bought.earned == 999_999_999_999  # rounded down
    refund = engine.process({"id": "r1", "type": "refund", "customer": "c", "at": "2026-01-02T10:00:00Z",
                             "original": "p1"})  # the rest: all of it
    assert refund.reversed == 999_999_999_999 and refund.points == 0
    with pytest.raises(poletti.EventError, match="fully refunded"):  # nothing is left
        engine.process({"id": "r2", "type": "refund", "customer": "c", "at": "2026-01-03T10:00:00Z",
                        "original": "p1", "amount": "0.000001"})


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("amount", "1000000000000.000001", "too large"),  # just above 10^12
    ("amount", "1" * 25 + ".123456", "too large"),  # 31 digits
    ("amount", 10**15, "too large"),
    ("amount", "1E+100000000", "too large"),
    ("amount", "12.0000001", "decimal places"),
    ("amount", "1E-100000000", "decimal places"),
    ("items", [{"sku": "a", "price": "1000000000000.01"}], "too large"),
    ("items", [{"sku": "a", "price": "1000000", "quantity": 1000001}], "add up to more than"),
])
def test_event_money_beyond_the_bounds_is_rejected_with_a_reason(field: str, value: Any, reason: str) -> None:
    engine = poletti.Engine(poletti.compile("earn 1 point per EUR\n"))
    event = {"id": "e1", "type": "purchase", "customer": "c", "at": "2026-01-01T10:00:00Z", "amount": "1"}
    with pytest.raises(poletti.EventError, match=reason):
        engine.process({**event, field: value})
    assert engine.customer("c").points == 0


def test_the_largest_event_amount_is_accepted() -> None:
    engine = poletti.Engine(poletti.compile("earn 1 point per EUR\n"))
    outcome = engine.process({"id": "e1", "type": "purchase", "customer": "c", "at": "2026-01-01T10:00:00Z",
                              "amount": "1000000000000"})
    assert outcome.earned == 10**12
