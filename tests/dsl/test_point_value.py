"""`point value 0.05 EUR`: parsed, checked (located diagnostics), formatted canonically, compiled."""

from __future__ import annotations

from decimal import Decimal

import pytest

import poletti
from poletti.dsl.formatter import format_text
from poletti.dsl.frontend import analyze
from poletti.dsl.parser import parse


def diagnostics(text: str) -> list[tuple[str, int, int, str]]:
    return [(d.code, d.line, d.column, d.message) for d in analyze(text).diagnostics]


def test_a_point_value_in_the_programs_currency_checks() -> None:
    assert diagnostics("currency SEK\npoint value 0.50 SEK\n") == []
    program = poletti.compile("currency SEK\npoint value 0.50 SEK\n")
    assert program.point_value == Decimal("0.50")


def test_money_in_another_currency_is_e109_at_the_money() -> None:
    # "point value " is 12 characters: the money starts at column 13 of line 2.
    assert diagnostics("earn 1 point per EUR\npoint value 0.05 USD\n") == [
        ("E109", 2, 13, "money in USD, but the program's currency is EUR")]


@pytest.mark.parametrize("amount", ["0", "0.00"])
def test_a_point_value_of_zero_is_e117(amount: str) -> None:
    (found,) = diagnostics(f"point value {amount} EUR\n")
    assert found[:3] == ("E117", 1, 13)
    assert "more than zero" in found[3]


def test_a_second_point_value_is_e120_at_the_second() -> None:
    (found,) = diagnostics("point value 0.05 EUR\nearn 1 point per EUR\npoint value 0.06 EUR\n")
    assert found == ("E120", 3, 1, "the point value is already set on line 1")


def test_a_point_value_that_is_not_money_is_a_syntax_error() -> None:
    (found,) = parse("point value 5 points\n").diagnostics
    assert (found.code, found.line, found.column) == ("P001", 1, 15)


def test_the_caret_underlines_the_money() -> None:
    (found,) = analyze("point value 0.05 USD\n").diagnostics
    assert (found.span.start, found.span.end) == (12, 20)  # "0.05 USD"


def test_the_formatter_prints_it_canonically_and_round_trips() -> None:
    formatted = format_text("point   value\t00.050   EUR ;earn 1 point per EUR\n").text
    assert formatted == "point value 0.050 EUR\nearn 1 point per EUR\n"
    assert format_text(formatted).text == formatted  # type: ignore[arg-type]


def test_a_module_cannot_set_the_point_value() -> None:
    from poletti.dsl import modules

    assert any(cls.__name__ == "PointValueDecl" for cls in modules._FORBIDDEN_IN_MODULE)
