"""``poletti fmt``'s engine: golden layouts and the layout rules one by one.

Golden files: ``tests/data/fmt/NAME.loyalty`` (messy but valid) beside
``NAME.expected`` (its canonical layout, reviewed by hand).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poletti
from poletti.cli import EXIT_ERRORS, EXIT_OK, cli
from poletti.dsl import ast
from poletti.dsl.ast import NO_SPAN as S
from poletti.dsl.diagnostics import has_errors
from poletti.dsl.formatter import FormatResult, format_expr, format_rule_file, format_statement, format_text
from poletti.dsl.parser import parse

FMT_DATA = Path(__file__).parent.parent / "data" / "fmt"
CASES = sorted(FMT_DATA.glob("*.loyalty"))


def fmt(text: str) -> str:
    result = format_text(text)
    assert result.text is not None, [(d.code, d.message) for d in result.diagnostics]
    return result.text


# ------------------------------------------------------------------- goldens


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_golden_format(path: Path, golden: Any) -> None:
    golden.check(fmt(path.read_text(encoding="utf-8")), path.with_suffix(".expected"))


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_golden_output_is_a_fixed_point(path: Path) -> None:
    expected = path.with_suffix(".expected")
    if expected.exists():
        assert fmt(expected.read_text(encoding="utf-8")) == expected.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_golden_keeps_every_comment_in_order(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    before = [c.text for c in parse(source).rule_file.comments]
    assert [c.text for c in parse(fmt(source)).rule_file.comments] == before


# --------------------------------------------------------------------- API


def test_syntax_errors_give_no_text_and_the_diagnostics() -> None:
    result = format_text("earn 1 point per\ncurrency EUR\n")
    assert isinstance(result, FormatResult)
    assert result.text is None
    assert [(d.code, d.line) for d in result.diagnostics] == [("P003", 1)]


def test_clean_input_has_no_diagnostics() -> None:
    assert format_text("currency EUR").diagnostics == ()


def test_empty_and_blank_files() -> None:
    assert fmt("") == ""
    assert fmt("\n\n  \n;;\n") == ""


def test_a_byte_order_mark_in_text_is_refused_as_check_refuses_it() -> None:
    # poletti.diagnose(str) reports a mark left in the text (P002); format_text must not drop it and pass.
    assert [d.code for d in poletti.diagnose("\ufeffcurrency EUR\n")] == ["P002"]
    result = format_text("\ufeffcurrency EUR\n")
    assert result.text is None and [(d.code, d.line, d.column) for d in result.diagnostics] == [("P002", 1, 1)]


def test_fmt_drops_one_byte_order_mark_from_a_file_as_check_does(tmp_path: Path) -> None:
    path = tmp_path / "rules.loyalty"
    path.write_bytes(b"\xef\xbb\xbfcurrency EUR\n")
    assert CliRunner().invoke(cli, ["check", str(path)]).exit_code == EXIT_OK
    result = CliRunner().invoke(cli, ["fmt", str(path)])
    assert (result.exit_code, result.stdout) == (EXIT_OK, "currency EUR\n")


def test_fmt_keeps_a_file_with_two_byte_order_marks_failing(tmp_path: Path) -> None:
    path = tmp_path / "rules.loyalty"
    original = b"\xef\xbb\xbf\xef\xbb\xbfcurrency EUR\n"
    path.write_bytes(original)
    assert CliRunner().invoke(cli, ["check", str(path)]).exit_code == EXIT_ERRORS
    for args in (["fmt", str(path)], ["fmt", "--write", str(path)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == EXIT_ERRORS and "P002" in result.output and result.stdout == ""
    assert path.read_bytes() == original  # --write left it alone


_PIECES = ["earn 1 point per EUR", "earn 2 points per visit", " if ", " and ", " or ", "not ", "spend_30d > 1", "(", ")",
           "\n", ";", " ", "\t", "\r", "\ufeff", "# c", '"', '"x"', "tier gold when spend_12m > 100",
           "tier silver when spend_12m > 1", "segment s when s", "segment a when b\n", "segment b when a",
           "currency EUR", "currency USD", 'program "P"', 'reward r "R" value 1 EUR', "at 50 points grant r",
           'timezone "Europe/Paris"', 'timezone "localtime"', "earn x2 if tier >= gold", "1", "-", "\u00a0",
           "\u2028", "\x0c", "\x85", "\\", "earn 1 point per EUR limit 5 points per day", "once per 30d",
           ' on category "a"', "points expire after 12m", "during 2026-01-01..2026-02-01",
           "metric m = count of review over 90d", "event review", "rounding up", "\u200b", "é"]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(_PIECES) | st.text(max_size=2), max_size=12))
def test_fmt_never_turns_a_failing_file_into_a_passing_one(pieces: list[str]) -> None:
    text = "".join(pieces)
    result = format_text(text)
    if result.text is not None:  # fmt refusing is always allowed
        assert has_errors(poletti.diagnose(result.text)) == has_errors(poletti.diagnose(text)), result.text


def test_crlf_becomes_lf() -> None:
    assert fmt("currency EUR\r\n\r\n# c\r\nrounding up\r\n") == "currency EUR\n\n# c\nrounding up\n"


def test_format_rule_file_accepts_trees_without_spans() -> None:
    tree = ast.RuleFile((
        ast.CurrencyDecl("EUR", S),
        ast.EarnRule(ast.PointsLit(ast.NumberLit(Decimal("1"), S), S), ast.PerCurrency("EUR", None, S), (), S),
    ), (), S)
    assert format_rule_file(tree) == "currency EUR\nearn 1 point per EUR\n"


# ------------------------------------------------------------------ layout


def test_one_statement_per_line_and_single_spaces() -> None:
    assert fmt("  earn   1  point\tper EUR ;at 50 points   grant x;;") == (
        "earn 1 point per EUR\nat 50 points grant x\n")


def test_multi_line_statement_joins_onto_one_line() -> None:
    assert fmt("tier gold when (spend_12m > 1000\n    or visits_12m > 20)\n") == (
        "tier gold when spend_12m > 1000 or visits_12m > 20\n")


def test_blank_lines_collapse_to_one_and_vanish_at_the_edges() -> None:
    assert fmt("\n\n\ncurrency EUR\n\n\n\nrounding up\nevent x\n\n\n") == "currency EUR\n\nrounding up\nevent x\n"


def test_statements_keep_their_order() -> None:
    source = "tier silver when x > 1\ntier gold when x > 2\nat 50 points grant b\nat 10 points grant a\n"
    assert fmt(source) == source


def test_reward_parts_in_canonical_order() -> None:
    assert fmt('reward r "R" costs 5 points value 1 EUR') == 'reward r "R" value 1 EUR costs 5 points\n'


def test_options_in_canonical_order_keeping_repeats_in_place() -> None:
    source = "earn 1 point per EUR once limit 2 times per week during 2026-12-01 if a limit 9 points per day if b"
    assert fmt(source) == (
        "earn 1 point per EUR if a if b during 2026-12-01 limit 2 times per week limit 9 points per day once\n")


# --------------------------------------------------------------- comments


def test_own_line_comment_stays_above_its_statement() -> None:
    assert fmt("currency EUR\n   # why\nrounding up\n") == "currency EUR\n# why\nrounding up\n"


def test_trailing_comment_stays_on_its_line() -> None:
    assert fmt("currency EUR    # euro\n") == "currency EUR  # euro\n"


def test_trailing_comment_follows_the_last_statement_of_a_split_line() -> None:
    assert fmt("currency EUR; rounding up # both\n") == "currency EUR\nrounding up  # both\n"


def test_trailing_comment_after_a_final_semicolon() -> None:
    assert fmt("currency EUR; # c\nrounding up\n") == "currency EUR  # c\nrounding up\n"


def test_comments_inside_a_condition_move_above_it() -> None:
    source = "segment s when (a > 1 # first\n  # second\n  or b > 2) # last\n"
    assert fmt(source) == "# first\n# second\nsegment s when a > 1 or b > 2  # last\n"


def test_comments_at_the_end_of_the_file() -> None:
    assert fmt("currency EUR\n\n# end one\n# end two") == "currency EUR\n\n# end one\n# end two\n"


def test_comment_text_is_kept_verbatim() -> None:
    assert fmt("#!  odd   spacing ; (x \"y\n") == "#!  odd   spacing ; (x \"y\n"


def test_hash_inside_a_string_is_not_a_comment() -> None:
    assert fmt('program "a # b"   ') == 'program "a # b"\n'


# ------------------------------------------------------------- expressions


def _condition(text: str) -> str:
    statement = fmt(f"segment s when {text}")
    assert statement.startswith("segment s when ") and statement.endswith("\n")
    return statement[len("segment s when "):-1]


@pytest.mark.parametrize(("written", "canonical"), [
    ("(a - b) - c", "a - b - c"),
    ("a - (b - c)", "a - (b - c)"),
    ("a + (b + c)", "a + (b + c)"),
    ("(a * b) / c", "a * b / c"),
    ("a / (b * c)", "a / (b * c)"),
    ("a * (b + c)", "a * (b + c)"),
    ("(a * b) + (c * d)", "a * b + c * d"),
    ("(a + b) > (c)", "a + b > c"),
    ("(a > b) == c", "(a > b) == c"),
    ("a == (b > c)", "a == (b > c)"),
    ("(a and b) or (c and d)", "a and b or c and d"),
    ("(a or b) and c", "(a or b) and c"),
    ("a and (b and c)", "a and (b and c)"),
    ("(a and b) and c", "a and b and c"),
    ("a or (b or c)", "a or (b or c)"),
    ("not (a > b)", "not a > b"),
    ("not (a and b)", "not (a and b)"),
    ("(not a) and (not b)", "not a and not b"),
    ("not (not a)", "not not a"),
    ("((((a))))", "a"),
    ("(a + b) * 2 > (c)", "(a + b) * 2 > c"),
    ("(event.x is missing)", "event.x is missing"),
    ("(event.x) is present", "event.x is present"),
    ("not (event.x is missing) and (event.y is present)", "not event.x is missing and event.y is present"),
])
def test_minimal_parentheses(written: str, canonical: str) -> None:
    assert _condition(written) == canonical


@pytest.mark.parametrize(("written", "canonical"), [
    ("3.50", "3.50"),
    ("0.0000001", "0.0000001"),
    ("007", "7"),
    ("00.50", "0.50"),
    ("1000000000000000000000000000001", "1000000000000000000000000000001"),
    ("12.50 EUR", "12.50 EUR"),
    ("1 points", "1 point"),
    ("1.00 points", "1.00 point"),
    ("2 point", "2 points"),
    ("n point", "n points"),
    ("030d", "30d"),
    ("2026-02-30", "2026-02-30"),
    ('"a\\"b\\\\c\\nd\\te"', '"a\\"b\\\\c\\nd\\te"'),
    ('"raw\ttab"', '"raw\\ttab"'),
    ("true", "true"),
    ("event . channel", "event.channel"),
])
def test_literals(written: str, canonical: str) -> None:
    assert _condition(written) == canonical


def test_limit_unit_follows_the_count() -> None:
    assert fmt("on r grant x limit 1 times per day limit 3 time per week limit 1 points per month") == (
        "on r grant x limit 1 time per day limit 3 times per week limit 1 point per month\n")


def test_format_expr_and_format_statement_on_built_trees() -> None:
    one = ast.NumberLit(Decimal("1"), S)
    a = ast.NameRef("a", S)
    nested = ast.BinaryOp("-", a, ast.BinaryOp("-", a, one, S), S)
    assert format_expr(ast.NotOp(ast.AndOp(nested, a, S), S)) == "not (a - (a - 1) and a)"
    assert format_statement(ast.ExpireRule(ast.DurationLit(12, "m", S), S)) == "points expire after 12m"
    with pytest.raises(TypeError):
        format_statement(a)  # type: ignore[arg-type]
