"""The parser: statement splitting, every statement kind and option, comments, syntax errors.

Expectations are written by hand as AST nodes with NO_SPAN and compared with
``shape`` (span-free; decimals by exact text). The golden tests at the end
dump whole files to JSON, spans included, so span regressions show too.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import cattrs
import pytest

from poletti.dsl import ast
from poletti.dsl.ast import NO_SPAN as S
from poletti.dsl.parser import grammar, parse
from program_strategies import shape


PARSE_DATA = Path(__file__).parent.parent / "data" / "parse"


# ------------------------------------------------------------------ builders


def num(text: str) -> ast.NumberLit:
    return ast.NumberLit(Decimal(text), S)


def name(n: str) -> ast.NameRef:
    return ast.NameRef(n, S)


def ident(n: str) -> ast.Ident:
    return ast.Ident(n, S)


def pts(amount: str) -> ast.PointsLit:
    return ast.PointsLit(num(amount), S)


def money(amount: str, currency: str = "EUR") -> ast.MoneyLit:
    return ast.MoneyLit(num(amount), currency, S)


def dur(amount: int, unit: str) -> ast.DurationLit:
    return ast.DurationLit(amount, unit, S)


def date(text: str) -> ast.DateLit:
    return ast.DateLit(text, S)


def text(value: str) -> ast.TextLit:
    return ast.TextLit(value, S)


def cmp(left: ast.Expr, op: str, right: ast.Expr) -> ast.Compare:
    return ast.Compare(op, left, right, S)


def binop(left: ast.Expr, op: str, right: ast.Expr) -> ast.BinaryOp:
    return ast.BinaryOp(op, left, right, S)


def parse_one(source: str) -> ast.Statement:
    result = parse(source)
    assert result.diagnostics == (), [(d.code, d.message) for d in result.diagnostics]
    assert len(result.rule_file.statements) == 1
    return result.rule_file.statements[0]


def assert_parses(source: str, expected: Any) -> None:
    assert shape(parse_one(source)) == shape(expected)


# ------------------------------------------------------------- the brief


def test_the_brief_line_parses_to_three_statements() -> None:
    result = parse("earn 1 point per EUR; at 50 points grant free_drink; tier gold when spend_12m > 1000")
    assert result.diagnostics == ()
    assert shape(result.rule_file.statements) == shape((
        ast.EarnRule(pts("1"), ast.PerCurrency("EUR", None, S), (), S),
        ast.ConvertRule(pts("50"), ident("free_drink"), (), S),
        ast.TierRule(ident("gold"), cmp(name("spend_12m"), ">", num("1000")), None, S),
    ))


# ------------------------------------------------------------- declarations

DECLARATIONS = [
    ('program "Café Aroma"', ast.ProgramDecl("Café Aroma", S)),
    (r'program "say \"hi\" \\ \n\t"', ast.ProgramDecl('say "hi" \\ \n\t', S)),
    ("currency SEK", ast.CurrencyDecl("SEK", S)),
    ("rounding nearest", ast.RoundingDecl("nearest", S)),
    ("rounding up", ast.RoundingDecl("up", S)),
    ('timezone "Europe/Helsinki"', ast.TimezoneDecl("Europe/Helsinki", S)),
    ("point value 0.05 EUR", ast.PointValueDecl(money("0.05"), S)),
    ('reward free_drink "Free drink" value 3.50 EUR costs 50 points',
     ast.RewardDecl(ident("free_drink"), "Free drink",
                    (ast.RewardValue(money("3.50"), S), ast.RewardCost(pts("50"), S)), S)),
    ("reward mug costs 1 point value 5 EUR",
     ast.RewardDecl(ident("mug"), None, (ast.RewardCost(pts("1"), S), ast.RewardValue(money("5"), S)), S)),
    ("reward sticker", ast.RewardDecl(ident("sticker"), None, (), S)),
    ("segment lapsed when days_since_last_purchase > 60",
     ast.SegmentDecl(ident("lapsed"), cmp(name("days_since_last_purchase"), ">", num("60")), S)),
    ('metric beans_spend_30d = sum of amount of purchase on category "beans" over 30d',
     ast.MetricDecl(ident("beans_spend_30d"), "sum", ident("amount"), ident("purchase"),
                    ast.ItemFilter("category", text("beans"), S), dur(30, "d"), S)),
    ("metric reviews_90d = count of review over 90d",
     ast.MetricDecl(ident("reviews_90d"), "count", None, ident("review"), None, dur(90, "d"), S)),
    ("metric biggest = max of amount over window",
     ast.MetricDecl(ident("biggest"), "max", None, ident("amount"), None, name("window"), S)),
    ("attribute channel: text", ast.AttributeDecl(ident("channel"), "text", S)),
    ("attribute basket : money", ast.AttributeDecl(ident("basket"), "money", S)),
    ("event checkin", ast.EventDecl(ident("checkin"), S)),
    ("param every: count = 10", ast.ParamDecl(ident("every"), "count", num("10"), S)),
    ("param prize: reward", ast.ParamDecl(ident("prize"), "reward", None, S)),
    ("param window: duration = 12m", ast.ParamDecl(ident("window"), "duration", dur(12, "m"), S)),
    ("use stamp_card", ast.UseDecl(ident("stamp_card"), (), S)),
    ('use stamp_card with every = 10, reward = free_coffee, label = "x", bonus = 5 points, '
     "worth = 2.00 EUR, start = 2026-01-01, span = 1y",
     ast.UseDecl(ident("stamp_card"), (
         ast.UseArg(ident("every"), num("10"), S),
         ast.UseArg(ident("reward"), name("free_coffee"), S),
         ast.UseArg(ident("label"), text("x"), S),
         ast.UseArg(ident("bonus"), pts("5"), S),
         ast.UseArg(ident("worth"), money("2.00"), S),
         ast.UseArg(ident("start"), date("2026-01-01"), S),
         ast.UseArg(ident("span"), dur(1, "y"), S),
     ), S)),
]


@pytest.mark.parametrize(("source", "expected"), DECLARATIONS, ids=[d[0][:40] for d in DECLARATIONS])
def test_declarations(source: str, expected: Any) -> None:
    assert_parses(source, expected)


# --------------------------------------------------------------------- rules

RULES = [
    ("earn 1 point per EUR", ast.EarnRule(pts("1"), ast.PerCurrency("EUR", None, S), (), S)),
    ("earn 1 point per 10 EUR", ast.EarnRule(pts("1"), ast.PerMoney(money("10"), None, S), (), S)),
    ('earn 2 points per EUR on category "beans"',
     ast.EarnRule(pts("2"), ast.PerCurrency("EUR", ast.ItemFilter("category", text("beans"), S), S), (), S)),
    ('earn 3 points per 2.50 EUR on sku "esp-250"',
     ast.EarnRule(pts("3"), ast.PerMoney(money("2.50"), ast.ItemFilter("sku", text("esp-250"), S), S), (), S)),
    ("earn 10 points per purchase", ast.EarnRule(pts("10"), ast.PerUnit("purchase", None, S), (), S)),
    ("earn 5 points per visit", ast.EarnRule(pts("5"), ast.PerUnit("visit", None, S), (), S)),
    ("earn 1 point per item on category cups",
     ast.EarnRule(pts("1"), ast.PerUnit("item", ast.ItemFilter("category", name("cups"), S), S), (), S)),
    ("earn 100 points on signup", ast.EarnRule(pts("100"), ast.OnEvent(ident("signup"), S), (), S)),
    ("earn x2 if tier >= gold",
     ast.EarnRule(ast.Multiplier(Decimal("2"), S), None,
                  (ast.IfOption(cmp(name("tier"), ">=", name("gold")), S),), S)),
    ("earn x1.50", ast.EarnRule(ast.Multiplier(Decimal("1.50"), S), None, (), S)),
    ("earn bonus points per EUR", ast.EarnRule(ast.PointsLit(name("bonus"), S), ast.PerCurrency("EUR", None, S), (), S)),
    ("at 50 points grant free_drink", ast.ConvertRule(pts("50"), ident("free_drink"), (), S)),
    ("at 100 points grant 10 points", ast.ConvertRule(pts("100"), pts("10"), (), S)),
    ("every 10 purchases grant free_coffee",
     ast.StampRule(num("10"), "purchases", None, ident("free_coffee"), (), S)),
    ('every 5 visits on category "coffee" grant free_coffee',
     ast.StampRule(num("5"), "visits", ast.ItemFilter("category", text("coffee"), S), ident("free_coffee"), (), S)),
    ("tier gold when spend_12m > 1000", ast.TierRule(ident("gold"), cmp(name("spend_12m"), ">", num("1000")), None, S)),
    ("tier gold when spend_12m > 1000 keep 12m",
     ast.TierRule(ident("gold"), cmp(name("spend_12m"), ">", num("1000")), dur(12, "m"), S)),
    ("on review grant thank_you", ast.OnRule(ident("review"), ident("thank_you"), (), S)),
    ("on birthday grant birthday_cake", ast.OnRule(ident("birthday"), ident("birthday_cake"), (), S)),
    ("when spend_lifetime > 5000 grant vip_gift once",
     ast.WhenRule(cmp(name("spend_lifetime"), ">", num("5000")), ident("vip_gift"), (ast.OnceOption(None, S),), S)),
    ("when lapsed grant comeback once per 12m",
     ast.WhenRule(name("lapsed"), ident("comeback"), (ast.OnceOption(dur(12, "m"), S),), S)),
    ("points expire after 12m", ast.ExpireRule(dur(12, "m"), S)),
    ("points pending for 14d", ast.PendingRule(dur(14, "d"), S)),
    ("points expire after lifetime", ast.ExpireRule(name("lifetime"), S)),
]


@pytest.mark.parametrize(("source", "expected"), RULES, ids=[r[0][:40] for r in RULES])
def test_rules(source: str, expected: Any) -> None:
    assert_parses(source, expected)


OPTIONS = [
    ("during 2026-12-01..2026-12-24", ast.DuringOption(date("2026-12-01"), date("2026-12-24"), S)),
    ("during 2026-12-01 .. 2026-12-24", ast.DuringOption(date("2026-12-01"), date("2026-12-24"), S)),
    ("during 2026-12-24", ast.DuringOption(date("2026-12-24"), None, S)),
    ("limit 500 points per day", ast.LimitOption(num("500"), "points", "day", S)),
    ("limit 1 point per week", ast.LimitOption(num("1"), "points", "week", S)),
    ("limit 3 times per month", ast.LimitOption(num("3"), "times", "month", S)),
    ("limit 1 time per year", ast.LimitOption(num("1"), "times", "year", S)),
    ("limit 2 times per 30d", ast.LimitOption(num("2"), "times", dur(30, "d"), S)),
    ("limit cap points per window", ast.LimitOption(name("cap"), "points", name("window"), S)),
    ("once", ast.OnceOption(None, S)),
    ("once per 12m", ast.OnceOption(dur(12, "m"), S)),
    ('if event.channel == "app"', ast.IfOption(cmp(ast.EventAttr("channel", S), "==", text("app")), S)),
]


@pytest.mark.parametrize(("source", "expected"), OPTIONS, ids=[o[0] for o in OPTIONS])
@pytest.mark.parametrize("rule", ["earn 1 point per EUR", "at 50 points grant x", "every 3 visits grant x",
                                  "on review grant x", "when lapsed grant x"])
def test_each_option_on_each_rule_kind(rule: str, source: str, expected: Any) -> None:
    statement = parse_one(f"{rule} {source}")
    assert shape(statement.options) == shape((expected,))  # type: ignore[union-attr]


def test_options_keep_their_written_order() -> None:
    statement = parse_one("earn 1 point per EUR once limit 3 times per day if lapsed during 2026-12-01")
    assert [type(o).__name__ for o in statement.options] == [  # type: ignore[union-attr]
        "OnceOption", "LimitOption", "IfOption", "DuringOption"]


# --------------------------------------------------------------- expressions

EXPRESSIONS = [
    ("a or b and not c",
     ast.OrOp(name("a"), ast.AndOp(name("b"), ast.NotOp(name("c"), S), S), S)),
    ("(a or b) and c", ast.AndOp(ast.OrOp(name("a"), name("b"), S), name("c"), S)),
    ("a and b and c", ast.AndOp(ast.AndOp(name("a"), name("b"), S), name("c"), S)),
    ("not a > b", ast.NotOp(cmp(name("a"), ">", name("b")), S)),
    ("not not a", ast.NotOp(ast.NotOp(name("a"), S), S)),
    ("a - b - c", binop(binop(name("a"), "-", name("b")), "-", name("c"))),
    ("a - (b - c)", binop(name("a"), "-", binop(name("b"), "-", name("c")))),
    ("1 + 2 * 3 >= 4 / (5 - 6)",
     cmp(binop(num("1"), "+", binop(num("2"), "*", num("3"))), ">=",
         binop(num("4"), "/", binop(num("5"), "-", num("6"))))),
    ("spend_12m + 12.50 EUR <= 100 EUR", cmp(binop(name("spend_12m"), "+", money("12.50")), "<=", money("100"))),
    ("points != 1 point", cmp(name("points"), "!=", pts("1"))),
    ("points < threshold points", cmp(name("points"), "<", ast.PointsLit(name("threshold"), S))),
    ("member_days > 30d", cmp(name("member_days"), ">", dur(30, "d"))),
    ("signup_date < 2026-12-01", cmp(name("signup_date"), "<", date("2026-12-01"))),
    ('event.channel == "app"', cmp(ast.EventAttr("channel", S), "==", text("app"))),
    ("event . channel == true", cmp(ast.EventAttr("channel", S), "==", ast.BoolLit(True, S))),
    ("false", ast.BoolLit(False, S)),
    ("((x))", name("x")),
    ("0.0000001 > 007", cmp(num("0.0000001"), ">", num("7"))),
    ("event.channel is missing", ast.PresenceTest(ast.EventAttr("channel", S), False, S)),
    ("event.channel is present", ast.PresenceTest(ast.EventAttr("channel", S), True, S)),
    ("not event.channel is missing and x",
     ast.AndOp(ast.NotOp(ast.PresenceTest(ast.EventAttr("channel", S), False, S), S), name("x"), S)),
    # Any operand parses, so that the checker can say only an event attribute can be missing (E119).
    ("spend_12m is missing", ast.PresenceTest(name("spend_12m"), False, S)),
    # `missing` and `present` are keywords only after `is`: elsewhere they are names.
    ("missing or present", ast.OrOp(name("missing"), name("present"), S)),
]


@pytest.mark.parametrize(("source", "expected"), EXPRESSIONS, ids=[e[0] for e in EXPRESSIONS])
def test_expressions(source: str, expected: Any) -> None:
    assert_parses(f"segment s when {source}", ast.SegmentDecl(ident("s"), expected, S))


def test_numbers_keep_their_digits() -> None:
    statement = parse_one("reward r value 3.50 EUR")
    value = statement.parts[0].money.amount.value  # type: ignore[union-attr]
    assert str(value) == "3.50"


# ---------------------------------------------------------------- splitting


def _kinds(source: str) -> list[str]:
    result = parse(source)
    assert result.diagnostics == (), [(d.code, d.message) for d in result.diagnostics]
    return [type(s).__name__ for s in result.rule_file.statements]


def test_statements_split_at_newlines_and_semicolons() -> None:
    assert _kinds("currency EUR\nrounding up; timezone \"UTC\"\n\n;;\n  ;\nevent x;") == [
        "CurrencyDecl", "RoundingDecl", "TimezoneDecl", "EventDecl"]


def test_no_split_inside_strings() -> None:
    statement = parse_one('program "a;b # not a comment (x"')
    assert statement == ast.ProgramDecl("a;b # not a comment (x", statement.span)
    assert parse('program "a;b # c"').rule_file.comments == ()


def test_no_split_inside_parentheses() -> None:
    source = "segment s when (a > 1\n  or b > 2)\nearn 1 point per EUR"
    assert _kinds(source) == ["SegmentDecl", "EarnRule"]
    segment = parse(source).rule_file.statements[0]
    assert (segment.span.line, segment.span.end_line) == (1, 2)


def test_semicolon_inside_parentheses_is_one_error_not_a_split() -> None:
    result = parse("segment s when (a > 1; b > 2)\nearn 1 point per EUR")
    assert [(d.code, d.line, d.column) for d in result.diagnostics] == [("P002", 1, 22)]
    assert [type(s).__name__ for s in result.rule_file.statements] == ["EarnRule"]


def test_crlf_line_endings() -> None:
    assert _kinds("currency EUR\r\nrounding up\r\n") == ["CurrencyDecl", "RoundingDecl"]


def test_spans_are_absolute_in_the_file() -> None:
    result = parse("currency EUR\n  earn 1 point per EUR; at 50 points grant x")
    earn, convert = result.rule_file.statements[1:]
    assert (earn.span.line, earn.span.column, earn.span.end_column) == (2, 3, 23)
    assert (convert.span.line, convert.span.column) == (2, 25)
    assert convert.target.span == ast.Span(2, 44, 2, 45, 56, 57)  # type: ignore[union-attr]


# ----------------------------------------------------------------- comments


def test_comments_are_captured_with_spans() -> None:
    source = "# head\nearn 1 point per EUR  # why ; not split\nsegment s when (a # inside\n  or b)\n#end   "
    result = parse(source)
    assert result.diagnostics == ()
    assert len(result.rule_file.statements) == 2
    assert [(c.text, c.span.line, c.span.column) for c in result.rule_file.comments] == [
        ("# head", 1, 1), ("# why ; not split", 2, 23), ("# inside", 3, 19), ("#end", 5, 1)]


def test_a_file_of_only_comments_has_no_statements() -> None:
    result = parse("# one\n\n   # two\n")
    assert result.rule_file.statements == ()
    assert [c.text for c in result.rule_file.comments] == ["# one", "# two"]


# ------------------------------------------------------------ syntax errors

ERRORS = [
    ("earn 1 point per EUR grant x", "P001", 1, 22),
    ("currency EUR\nsegment s when a = 1", "P001", 2, 18),
    ("earn 1 point per €", "P002", 1, 18),
    ("earn 1 point per", "P003", 1, 17),
    ("earn 1 point per euro", "P003", 1, 22),
    ('currency EUR\nprogram "abc', "P004", 2, 9),
    ("segment s when (a > 1\nearn 1 point per EUR", "P005", 1, 16),
    ("Earn 1 point per EUR", "P007", 1, 1),
    ("currency EUR; eran 1 point per EUR", "P007", 1, 15),
]


@pytest.mark.parametrize(("source", "code", "line", "column"), ERRORS, ids=[e[0][:30] for e in ERRORS])
def test_syntax_error_positions(source: str, code: str, line: int, column: int) -> None:
    diagnostics = parse(source).diagnostics
    assert [(d.code, d.line, d.column) for d in diagnostics] == [(code, line, column)]


def test_a_broken_statement_does_not_hide_the_next() -> None:
    result = parse("earn 1 point per\nearn 2 points per EUR\nat 5 points grant\ntier gold when x > 1")
    assert [d.code for d in result.diagnostics] == ["P003", "P003"]
    assert [type(s).__name__ for s in result.rule_file.statements] == ["EarnRule", "TierRule"]


def test_misspelt_keyword_gets_a_hint() -> None:
    (diagnostic,) = parse("eran 1 point per EUR").diagnostics
    assert "did you mean 'earn'?" in diagnostic.notes


# ------------------------------------------------------------------- goldens


def _json_converter() -> cattrs.Converter:
    """AST → JSON-ready data: every node tagged with its class, spans as 'line:col-line:col'."""
    converter = cattrs.Converter()
    converter.register_unstructure_hook(Decimal, lambda d: format(d, "f"))  # exact, as written
    converter.register_unstructure_hook(
        ast.Span, lambda s: f"{s.line}:{s.column}-{s.end_line}:{s.end_column}")

    def node_hook(cls: type) -> Any:
        fields = attrs.fields(cls)

        def unstructure(node: Any) -> dict[str, Any]:
            # Unstructure by the value's own class: fields are unions of node types.
            return {"node": cls.__name__, **{f.name: converter.unstructure(getattr(node, f.name)) for f in fields}}

        return unstructure

    converter.register_unstructure_hook_factory(lambda t: attrs.has(t) and t is not ast.Span, node_hook)
    return converter


def ast_json(source: str) -> str:
    result = parse(source)
    data = {
        "rule_file": _json_converter().unstructure(result.rule_file),
        "diagnostics": [f"{d.line}:{d.column} {d.code} {d.message}" for d in result.diagnostics],
    }
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("path", sorted(PARSE_DATA.glob("*.loyalty")), ids=lambda p: p.stem)
def test_golden_parse(path: Path, golden: Any) -> None:
    golden.check(ast_json(path.read_text(encoding="utf-8")), path.with_suffix(".ast.json"))


def test_golden_files_cover_every_node_class() -> None:
    seen: set[str] = set()
    for path in PARSE_DATA.glob("*.loyalty"):
        result = parse(path.read_text(encoding="utf-8"))
        if result.rule_file.comments:
            seen.add("Comment")
        for statement in result.rule_file.statements:
            seen |= {type(node).__name__ for node in _walk(statement)}
    node_classes = {name for name, obj in vars(ast).items()
                    if isinstance(obj, type) and attrs.has(obj) and name not in ("Span", "RuleFile")}
    assert node_classes - seen == set()


def test_golden_files_use_every_keyword_and_symbol() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in PARSE_DATA.glob("*.loyalty"))
    source = re.sub(r"#[^\n]*", "", source)
    words = {t.pattern.value for t in grammar().terminals if t.pattern.type == "str"}
    missing = sorted(w for w in words
                     if not re.search((r"\b%s\b" if w.isidentifier() else "%s") % re.escape(w), source))
    assert missing == []


def _walk(node: Any) -> Any:
    yield node
    if attrs.has(type(node)):
        for field in attrs.fields(type(node)):
            value = getattr(node, field.name)
            for item in value if isinstance(value, tuple) else (value,):
                if attrs.has(type(item)) and not isinstance(item, ast.Span):
                    yield from _walk(item)


# ------------------------------------------------------------ edge cases of the splitter


@pytest.mark.parametrize("nested", [
    "not " * 3000 + "true",
    "points > " + "1 + " * 3000 + "1",
    "true and " * 3000 + "true",
])
def test_absurdly_deep_statement_is_one_diagnostic(nested: str) -> None:
    result = parse("earn 1 point per EUR if " + nested + "\nearn 2 points per visit\n")
    assert [(d.code, d.line, d.column) for d in result.diagnostics] == [("P001", 1, 1)]
    assert "nested too deeply" in result.diagnostics[0].message
    assert len(result.rule_file.statements) == 1  # the next statement still parses


def test_backslash_at_end_of_line_does_not_continue_a_text() -> None:
    # The text on line 1 is unterminated: the backslash must not swallow the newline
    # and let the quote on line 2 close it.
    result = parse('reward a "x\\\n"\nearn 1 point per EUR\n')
    assert [(d.code, d.line) for d in result.diagnostics] == [("P004", 1), ("P004", 2)]
    assert len(result.rule_file.statements) == 1


def test_comment_span_in_a_crlf_file_stops_before_the_carriage_return() -> None:
    result = parse("# hello\r\nearn 1 point per EUR\r\n")
    (comment,) = result.rule_file.comments
    assert comment.text == "# hello"
    assert comment.span.end - comment.span.start == len("# hello")
