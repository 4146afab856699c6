"""Parse rule-file text into an AST, collecting syntax diagnostics.

``parse(text) -> ParseResult`` never raises for bad input. The file is first
split into statements (at newlines and ``;`` outside strings and
parentheses) and each statement is parsed on its own with the LALR grammar,
so that one typo does not hide the problems in the lines after it.
"""

from __future__ import annotations

import bisect
import functools
from decimal import Decimal
from typing import Any, Iterator

import attrs
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedInput, VisitError

from poletti.dsl import ast, syntax
from poletti.dsl.diagnostics import Diagnostic, finish, make

STATEMENT_KEYWORDS = syntax.STATEMENT_KEYWORDS


@functools.lru_cache(maxsize=1)
def grammar() -> Lark:
    """The compiled grammar, built once per process."""
    return Lark.open_from_package(
        "poletti.grammar",
        "loyalty.lark",
        parser="lalr",
        lexer="contextual",
        strict=True,
        propagate_positions=True,
        maybe_placeholders=False,
    )


@attrs.frozen
class ParseResult:
    rule_file: ast.RuleFile
    diagnostics: tuple[Diagnostic, ...]


class LineIndex:
    """Turns offsets into 1-based line/column pairs."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset) - 1
        return line + 1, offset - self.starts[line] + 1

    def span(self, start: int, end: int) -> ast.Span:
        line, column = self.position(start)
        end_line, end_column = self.position(end)
        return ast.Span(line, column, end_line, end_column, start, end)


@attrs.frozen
class _Chunk:
    start: int
    end: int


def _split(text: str, index: LineIndex) -> tuple[list[_Chunk], list[ast.Comment], list[Diagnostic]]:
    """Cut the file into statement chunks; collect comments and lexical errors on the way."""
    chunks: list[_Chunk] = []
    comments: list[ast.Comment] = []
    problems: list[Diagnostic] = []
    i, n = 0, len(text)
    start = 0
    open_parens: list[int] = []
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] not in '"\n':
                # A backslash escapes the next character, but never the end of the line.
                j += 2 if text[j] == "\\" and j + 1 < n and text[j + 1] != "\n" else 1
            if j >= n or text[j] != '"':
                problems.append(make("P004", "this text in quotes is not closed", index.span(i, min(j, n)),
                                     ["a text must end with \" on the same line"]))
                # Skip the broken statement: resume at the next line.
                start, i, open_parens = _next_line(text, i), _next_line(text, i), []
                continue
            i = j + 1
        elif ch == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
            body = text[i:j].rstrip()  # a CRLF file leaves "\r" before the "\n"
            comments.append(ast.Comment(body, index.span(i, i + len(body))))
            i = j
        elif ch == "(":
            open_parens.append(i)
            i += 1
        elif ch == ")":
            if open_parens:
                open_parens.pop()
            i += 1
        elif ch in "\n;" and not open_parens:
            chunks.append(_Chunk(start, i))
            i += 1
            start = i
        else:
            i += 1
        if i >= n and open_parens:
            where = open_parens[0]
            problems.append(make("P005", "this '(' is never closed", index.span(where, where + 1),
                                 ["close it with ')' before the end of the statement"]))
            # Give up on that statement only: resume splitting at the next line.
            resume = _next_line(text, where)
            comments = [c for c in comments if c.span.start < resume]
            start, i, open_parens = resume, resume, []
    chunks.append(_Chunk(start, n))
    return [c for c in chunks if _has_code(text, c, comments)], comments, problems


def _next_line(text: str, offset: int) -> int:
    j = text.find("\n", offset)
    return len(text) if j < 0 else j + 1


def _has_code(text: str, chunk: _Chunk, comments: list[ast.Comment]) -> bool:
    body = text[chunk.start:chunk.end]
    for c in comments:
        if chunk.start <= c.span.start < chunk.end:
            body = body.replace(c.text, "", 1)
    return bool(body.strip())


def parse(text: str) -> ParseResult:
    """Parse a rule file. Input: its text. Output: the AST and syntax diagnostics."""
    index = LineIndex(text)
    chunks, comments, diagnostics = _split(text, index)
    statements: list[ast.Statement] = []
    for chunk in chunks:
        result = _parse_statement(text, chunk, index)
        if isinstance(result, Diagnostic):
            diagnostics.append(result)
        else:
            statements.append(result)
    return ParseResult(
        ast.RuleFile(tuple(statements), tuple(comments), index.span(0, len(text))),
        finish(diagnostics),
    )


# Deeper than this no rule a person writes goes; every later stage walks the
# tree recursively, so the limit keeps them far from Python's recursion limit.
MAX_NESTING = 100


def _parse_statement(text: str, chunk: _Chunk, index: LineIndex) -> ast.Statement | Diagnostic:
    source = text[chunk.start:chunk.end]
    too_deep = make("P001", f"this statement is nested too deeply (more than {MAX_NESTING} levels)",
                    index.span(chunk.start, chunk.end), ["split the condition with a segment or a metric"])
    try:
        tree = grammar().parse(source)
        if _depth(tree) > MAX_NESTING:
            return too_deep
        statement = _ToAst(chunk.start, index).transform(tree)
    except UnexpectedInput as err:
        return _syntax_diagnostic(err, source, chunk, index)
    except VisitError as err:  # a literal the transformer cannot read, e.g. a huge duration
        if isinstance(err.orig_exc, _Unreadable):
            return err.orig_exc.diagnostic
        return make("P001", "cannot read this statement", index.span(chunk.start, chunk.end),
                    ["check its numbers, durations and dates"])
    except RecursionError:
        return too_deep
    return statement  # type: ignore[no-any-return]


def _depth(tree: Tree) -> int:
    """The tree's depth, measured without recursion (the tree may be very deep)."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
    return deepest


# ------------------------------------------------------------- syntax messages


def _syntax_diagnostic(err: UnexpectedInput, source: str, chunk: _Chunk, index: LineIndex) -> Diagnostic:
    problem = syntax.explain(err, source, grammar())
    return make(problem.code, problem.message, index.span(chunk.start + problem.start, chunk.start + problem.end),
                problem.notes)


# --------------------------------------------------------------- tree → AST


def _unquote(token: str) -> str:
    body = token[1:-1]
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# More digits than any duration up to 100 years has; the checker reports the
# ones in between (E106).
_MAX_DURATION_DIGITS = 9


class _Unreadable(Exception):
    """A literal the transformer cannot turn into a value: carries its diagnostic."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


@v_args(meta=True)
class _ToAst(Transformer[Token, Any]):
    """Lark tree of one statement → AST node, with spans made absolute."""

    def __init__(self, base: int, index: LineIndex) -> None:
        super().__init__(visit_tokens=False)
        self.base = base
        self.index = index

    def _span(self, meta: Any) -> ast.Span:
        return self.index.span(self.base + meta.start_pos, self.base + meta.end_pos)

    def _tspan(self, token: Token) -> ast.Span:
        start = self.base + (token.start_pos or 0)
        return self.index.span(start, start + len(str(token)))

    # -- leaves that arrive as raw tokens (from `?` rules)

    def _ident(self, token: Token) -> ast.Ident:
        return ast.Ident(str(token), self._tspan(token))

    def _number_or_name(self, token: Token) -> ast.NumberLit | ast.NameRef:
        if token.type == "NAME":
            return ast.NameRef(str(token), self._tspan(token))
        return ast.NumberLit(Decimal(str(token)), self._tspan(token))

    def _duration(self, token: Token) -> ast.DurationLit:
        digits = str(token)[:-1]
        if len(digits.lstrip("0")) > _MAX_DURATION_DIGITS:  # Python will not even read some of these as int
            shown = str(token) if len(str(token)) <= 20 else str(token)[:12] + "…"
            raise _Unreadable(make("P001", f"'{shown}' is far too long for a length of time", self._tspan(token),
                                   ["expected a length of time of at most 100 years, such as 30d, 12m or 1y"]))
        return ast.DurationLit(int(digits), str(token)[-1], self._tspan(token))

    def _window(self, token: Token) -> ast.Window:
        if token.type == "DURATION":
            return self._duration(token)
        return ast.NameRef(str(token), self._tspan(token))

    def _text(self, token: Token) -> ast.TextLit | ast.NameRef:
        if token.type == "STRING":
            return ast.TextLit(_unquote(str(token)), self._tspan(token))
        return ast.NameRef(str(token), self._tspan(token))

    def _options(self, children: list[Any]) -> tuple[ast.RuleOption, ...]:
        return tuple(c for c in children if isinstance(c, (ast.IfOption, ast.DuringOption, ast.LimitOption, ast.OnceOption)))

    def _target(self, child: Any) -> ast.GrantTarget:
        return child  # type: ignore[no-any-return]

    # -- keyword choices (`!` rules) become plain strings

    def _keyword(self, meta: Any, children: list[Token]) -> str:
        return str(children[0])

    aggregate = type_name = rounding_mode = unit_word = stamp_unit = filter_kind = _keyword
    limit_unit = point_word = period_name = comparator = add_op = mul_op = presence = _keyword

    def bool(self, meta: Any, children: list[Token]) -> str:
        return str(children[0])

    def start(self, meta: Any, children: list[Any]) -> Any:
        return children[0]

    # -- literals and expressions

    def number(self, meta: Any, children: list[Token]) -> ast.NumberLit:
        return ast.NumberLit(Decimal(str(children[0])), self._span(meta))

    def money(self, meta: Any, children: list[Token]) -> ast.MoneyLit:
        amount, currency = children
        return ast.MoneyLit(self._number_or_name(amount), str(currency), self._span(meta))

    def points_lit(self, meta: Any, children: list[Any]) -> ast.PointsLit:
        return ast.PointsLit(self._number_or_name(children[0]), self._span(meta))

    def duration_lit(self, meta: Any, children: list[Token]) -> ast.DurationLit:
        return self._duration(children[0])

    def date_lit(self, meta: Any, children: list[Token]) -> ast.DateLit:
        return ast.DateLit(str(children[0]), self._span(meta))

    def text_lit(self, meta: Any, children: list[Token]) -> ast.TextLit:
        return ast.TextLit(_unquote(str(children[0])), self._span(meta))

    def bool_lit(self, meta: Any, children: list[str]) -> ast.BoolLit:
        return ast.BoolLit(children[0] == "true", self._span(meta))

    def name_ref(self, meta: Any, children: list[Token]) -> ast.NameRef:
        return ast.NameRef(str(children[0]), self._span(meta))

    def event_attr(self, meta: Any, children: list[Token]) -> ast.EventAttr:
        return ast.EventAttr(str(children[0]), self._span(meta))

    def compare(self, meta: Any, children: list[Any]) -> ast.Compare:
        left, op, right = children
        return ast.Compare(op, left, right, self._span(meta))

    def presence_test(self, meta: Any, children: list[Any]) -> ast.PresenceTest:
        # The operand may be something other than event.x: the checker reports that, with a fix.
        operand, word = children
        return ast.PresenceTest(operand, word == "present", self._span(meta))

    def binary(self, meta: Any, children: list[Any]) -> ast.BinaryOp:
        left, op, right = children
        return ast.BinaryOp(op, left, right, self._span(meta))

    def and_op(self, meta: Any, children: list[Any]) -> ast.AndOp:
        return ast.AndOp(children[0], children[1], self._span(meta))

    def or_op(self, meta: Any, children: list[Any]) -> ast.OrOp:
        return ast.OrOp(children[0], children[1], self._span(meta))

    def not_op(self, meta: Any, children: list[Any]) -> ast.NotOp:
        return ast.NotOp(children[0], self._span(meta))

    # -- declarations

    def program_decl(self, meta: Any, children: list[Token]) -> ast.ProgramDecl:
        return ast.ProgramDecl(_unquote(str(children[0])), self._span(meta))

    def currency_decl(self, meta: Any, children: list[Token]) -> ast.CurrencyDecl:
        return ast.CurrencyDecl(str(children[0]), self._span(meta))

    def rounding_decl(self, meta: Any, children: list[str]) -> ast.RoundingDecl:
        return ast.RoundingDecl(children[0], self._span(meta))

    def timezone_decl(self, meta: Any, children: list[Token]) -> ast.TimezoneDecl:
        return ast.TimezoneDecl(_unquote(str(children[0])), self._span(meta))

    def reward_value(self, meta: Any, children: list[Any]) -> ast.RewardValue:
        return ast.RewardValue(children[0], self._span(meta))

    def reward_cost(self, meta: Any, children: list[Any]) -> ast.RewardCost:
        return ast.RewardCost(children[0], self._span(meta))

    def reward_decl(self, meta: Any, children: list[Any]) -> ast.RewardDecl:
        name, rest = children[0], children[1:]
        label = None
        if rest and isinstance(rest[0], Token):
            label = _unquote(str(rest[0]))
            rest = rest[1:]
        return ast.RewardDecl(self._ident(name), label, tuple(rest), self._span(meta))

    def segment_decl(self, meta: Any, children: list[Any]) -> ast.SegmentDecl:
        return ast.SegmentDecl(self._ident(children[0]), children[1], self._span(meta))

    def metric_decl(self, meta: Any, children: list[Any]) -> ast.MetricDecl:
        name, aggregate, *rest = children
        window = self._window(rest.pop())
        item_filter = rest.pop() if rest and isinstance(rest[-1], ast.ItemFilter) else None
        names = [self._ident(t) for t in rest]
        field, event = (names[0], names[1]) if len(names) == 2 else (None, names[0])
        return ast.MetricDecl(self._ident(name), aggregate, field, event, item_filter, window, self._span(meta))

    def attribute_decl(self, meta: Any, children: list[Any]) -> ast.AttributeDecl:
        return ast.AttributeDecl(self._ident(children[0]), children[1], self._span(meta))

    def event_decl(self, meta: Any, children: list[Token]) -> ast.EventDecl:
        return ast.EventDecl(self._ident(children[0]), self._span(meta))

    def param_decl(self, meta: Any, children: list[Any]) -> ast.ParamDecl:
        default = children[2] if len(children) > 2 else None
        return ast.ParamDecl(self._ident(children[0]), children[1], default, self._span(meta))

    def use_arg(self, meta: Any, children: list[Any]) -> ast.UseArg:
        return ast.UseArg(self._ident(children[0]), children[1], self._span(meta))

    def use_decl(self, meta: Any, children: list[Any]) -> ast.UseDecl:
        return ast.UseDecl(self._ident(children[0]), tuple(children[1:]), self._span(meta))

    # -- rule parts

    def multiplier(self, meta: Any, children: list[Token]) -> ast.Multiplier:
        return ast.Multiplier(Decimal(str(children[0])[1:]), self._span(meta))

    def item_filter(self, meta: Any, children: list[Any]) -> ast.ItemFilter:
        return ast.ItemFilter(children[0], self._text(children[1]), self._span(meta))

    def per_currency(self, meta: Any, children: list[Any]) -> ast.PerCurrency:
        return ast.PerCurrency(str(children[0]), children[1] if len(children) > 1 else None, self._span(meta))

    def per_money(self, meta: Any, children: list[Any]) -> ast.PerMoney:
        return ast.PerMoney(children[0], children[1] if len(children) > 1 else None, self._span(meta))

    def per_unit(self, meta: Any, children: list[Any]) -> ast.PerUnit:
        unit = children[0]
        if isinstance(unit, Token):  # the `per_unit` keyword rule shares the alias' name
            unit = str(unit)
        return ast.PerUnit(unit, children[1] if len(children) > 1 else None, self._span(meta))

    def on_event(self, meta: Any, children: list[Token]) -> ast.OnEvent:
        return ast.OnEvent(self._ident(children[0]), self._span(meta))

    def reward_ref(self, meta: Any, children: list[Token]) -> ast.Ident:
        return self._ident(children[0])

    def if_option(self, meta: Any, children: list[Any]) -> ast.IfOption:
        return ast.IfOption(children[0], self._span(meta))

    def during_option(self, meta: Any, children: list[Token]) -> ast.DuringOption:
        start = ast.DateLit(str(children[0]), self._tspan(children[0]))
        end = ast.DateLit(str(children[1]), self._tspan(children[1])) if len(children) > 1 else None
        return ast.DuringOption(start, end, self._span(meta))

    def limit_option(self, meta: Any, children: list[Any]) -> ast.LimitOption:
        count, unit, period = children
        unit = "times" if unit in ("times", "time") else "points"
        if isinstance(period, Token):
            period = self._window(period)
        return ast.LimitOption(self._number_or_name(count), unit, period, self._span(meta))

    def once_option(self, meta: Any, children: list[Token]) -> ast.OnceOption:
        return ast.OnceOption(self._window(children[0]) if children else None, self._span(meta))

    def keep_clause(self, meta: Any, children: list[Token]) -> ast.Window:
        return self._window(children[0])

    # -- rules

    def earn_rule(self, meta: Any, children: list[Any]) -> ast.EarnRule:
        amount, *rest = children
        basis = rest.pop(0) if rest and not isinstance(rest[0], (ast.IfOption, ast.DuringOption, ast.LimitOption, ast.OnceOption)) else None
        return ast.EarnRule(amount, basis, self._options(rest), self._span(meta))

    def convert_rule(self, meta: Any, children: list[Any]) -> ast.ConvertRule:
        return ast.ConvertRule(children[0], children[1], self._options(children[2:]), self._span(meta))

    def stamp_rule(self, meta: Any, children: list[Any]) -> ast.StampRule:
        count, unit, *rest = children
        item_filter = rest.pop(0) if isinstance(rest[0], ast.ItemFilter) else None
        target = rest.pop(0)
        return ast.StampRule(self._number_or_name(count), unit, item_filter, target, self._options(rest), self._span(meta))

    def tier_rule(self, meta: Any, children: list[Any]) -> ast.TierRule:
        keep = children[2] if len(children) > 2 else None
        return ast.TierRule(self._ident(children[0]), children[1], keep, self._span(meta))

    def on_rule(self, meta: Any, children: list[Any]) -> ast.OnRule:
        return ast.OnRule(self._ident(children[0]), children[1], self._options(children[2:]), self._span(meta))

    def when_rule(self, meta: Any, children: list[Any]) -> ast.WhenRule:
        return ast.WhenRule(children[0], children[1], self._options(children[2:]), self._span(meta))

    def expire_rule(self, meta: Any, children: list[Token]) -> ast.ExpireRule:
        return ast.ExpireRule(self._window(children[0]), self._span(meta))

    def pending_rule(self, meta: Any, children: list[Token]) -> ast.PendingRule:
        return ast.PendingRule(self._window(children[0]), self._span(meta))


def iter_nodes(node: Any) -> Iterator[Any]:
    """Every AST node below (and including) ``node``, depth first, in field order."""
    yield node
    if attrs.has(type(node)):
        for field in attrs.fields(type(node)):
            if field.name == "span":
                continue
            value = getattr(node, field.name)
            if isinstance(value, tuple):
                for item in value:
                    yield from iter_nodes(item)
            elif attrs.has(type(value)):
                yield from iter_nodes(value)
