"""Parse rule-file text into an AST, collecting syntax diagnostics.

``parse(text) -> ParseResult`` never raises for bad input. The file is first
split into statements (at newlines and ``;`` outside strings and
parentheses) and each statement is parsed on its own with the LALR grammar,
so that one typo does not hide the problems in the lines after it.
"""

from __future__ import annotations

import bisect
import functools
import importlib.resources
import io
import pickle
import re
from decimal import Decimal
from typing import Any, Iterator

import attrs
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from poletti.dsl import ast, classes, syntax, usercache
from poletti.dsl.diagnostics import MAX_DIAGNOSTICS, Diagnostic, finish, make

STATEMENT_KEYWORDS = syntax.STATEMENT_KEYWORDS


GRAMMAR_PACKAGE = "poletti.grammar"
GRAMMAR_FILE = "loyalty.lark"
_LARK_OPTIONS: dict[str, Any] = {
    "parser": "lalr",
    "lexer": "contextual",
    "strict": True,
    "propagate_positions": True,
    "maybe_placeholders": False,
}


@functools.lru_cache(maxsize=1)
def grammar() -> Lark:
    """The compiled grammar, built once per process, and once per grammar for all processes.

    Building the LALR tables from ``grammar/loyalty.lark`` (the source of
    truth) takes a few tenths of a second, most of a small ``poletti check``;
    so the tables are kept in the user's cache (dsl/usercache.py) under a
    hash of the grammar text, the options, the Lark version and the Python
    version. A changed grammar has another hash, so a stale table is never
    read; a cache that is missing, damaged or not writable costs only the
    rebuild.
    """
    text = _grammar_text()
    key = _cache_key(text)
    name = f"grammar-{key[:32]}.lark"
    header = f"poletti grammar tables {key}\n".encode("ascii")
    cached = usercache.read(name)
    if cached is not None and cached.startswith(header):
        loaded = _load_tables(cached[len(header):])
        if loaded is not None:
            return loaded
    built = Lark(text, source_path=GRAMMAR_FILE, **_LARK_OPTIONS)
    buffer = io.BytesIO()
    buffer.write(header)
    built.save(buffer)
    usercache.write(name, buffer.getvalue())
    return built


def _grammar_text() -> str:
    return importlib.resources.files(GRAMMAR_PACKAGE).joinpath(GRAMMAR_FILE).read_text(encoding="utf-8")


def _cache_key(text: str) -> str:
    """What the tables depend on, hashed: the grammar, the options, the Lark and Python versions."""
    import hashlib
    import sys

    import lark

    key = "\0".join((text, repr(sorted(_LARK_OPTIONS.items())), lark.__version__, sys.version))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class _PlainData(pickle.Unpickler):
    """Unpickles only plain data (dicts, lists, strings, numbers): a cache file can never run code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"not plain data: {module}.{name}")


def _load_tables(data: bytes) -> Lark | None:
    try:
        _PlainData(io.BytesIO(data)).load()
        return Lark.load(io.BytesIO(data))
    except Exception:  # noqa: BLE001 — a damaged cache file is rebuilt, whatever is wrong with it
        return None


@classes.frozen
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


@classes.frozen
class _Chunk:
    start: int
    end: int


# What matters for cutting a file into statements; everything else is skipped at C speed.
_SPECIAL = re.compile(r'["#()\n;]')
# The inside of a text in quotes: a backslash escapes the next character, but never the end of the line.
_STRING_BODY = re.compile(r'(?:[^"\\\n]|\\[^\n]|\\)*')


def _split(text: str, index: LineIndex) -> tuple[list[_Chunk], list[ast.Comment], list[Diagnostic]]:
    """Cut the file into statement chunks; collect comments and lexical errors on the way.

    A statement ends at a newline or ``;`` outside texts in quotes and
    parentheses. A text not closed on its line (P004) drops its statement up
    to the end of that line; a ``(`` never closed (P005) drops its statement
    up to the end of the ``(``'s line; splitting resumes after either.

    Linear in the file: one pass finds the texts, comments, parentheses and
    separators; a second works out once, for every ``(``, where it closes
    (its ``)``, an unclosed text that drops it, or never); a third cuts,
    jumping over each parenthesised part instead of scanning it again.
    """
    n = len(text)
    comments: list[ast.Comment] = []
    problems: list[Diagnostic] = []
    # 1. The events: (offset, kind) for "(", ")", "\n", ";" and "!" (an unclosed text; resume[k] says where
    # its statement resumes).
    offsets: list[int] = []
    kinds: list[str] = []
    resume: dict[int, int] = {}
    i = 0
    while True:
        found = _SPECIAL.search(text, i)
        if found is None:
            break
        i = found.start()
        ch = text[i]
        if ch == '"':
            j = _STRING_BODY.match(text, i + 1).end()  # type: ignore[union-attr]
            if j < n and text[j] == '"':
                i = j + 1
                continue
            problems.append(make("P004", "this text in quotes is not closed", index.span(i, j),
                                 ["a text must end with \" on the same line"]))
            resume[len(offsets)] = _next_line(text, i)
            offsets.append(i)
            kinds.append("!")
            i = _next_line(text, i)
        elif ch == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
            body = text[i:j].rstrip()  # a CRLF file leaves "\r" before the "\n"
            comments.append(ast.Comment(body, index.span(i, i + len(body))))
            i = j
        else:
            offsets.append(i)
            kinds.append(ch)
            i += 1
    # 2. Where each "(" ends: the event of its ")", of the unclosed text that drops it, or None (never).
    ends: dict[int, int | None] = {}
    open_parens: list[int] = []
    for k, kind in enumerate(kinds):
        if kind == "(":
            open_parens.append(k)
        elif kind == ")":
            if open_parens:
                ends[open_parens.pop()] = k
        elif kind == "!":
            for opened in open_parens:
                ends[opened] = k
            open_parens.clear()
    for opened in open_parens:
        ends[opened] = None
    # 3. The statements.
    chunks: list[_Chunk] = []
    start = 0
    k = 0
    while k < len(kinds):
        kind = kinds[k]
        if kind == "\n" or kind == ";":
            chunks.append(_Chunk(start, offsets[k]))
            start = offsets[k] + 1
            k += 1
        elif kind == "!":
            start = resume[k]
            k = bisect.bisect_left(offsets, start, k + 1)
        elif kind == "(":
            end = ends[k]
            if end is None:
                where = offsets[k]
                problems.append(make("P005", "this '(' is never closed", index.span(where, where + 1),
                                     ["close it with ')' before the end of the statement"]))
                # Give up on that statement only: resume splitting at the next line.
                start = _next_line(text, where)
                k = bisect.bisect_left(offsets, start, k + 1)
            elif kinds[end] == "!":
                k = end  # the unclosed text drops this statement
            else:
                k = end + 1
        else:  # a ")" with nothing open: the parser reports it
            k += 1
    chunks.append(_Chunk(start, n))
    comment_starts = [c.span.start for c in comments]
    return [c for c in chunks if _has_code(text, c, comments, comment_starts)], comments, problems


def _next_line(text: str, offset: int) -> int:
    j = text.find("\n", offset)
    return len(text) if j < 0 else j + 1


def _has_code(text: str, chunk: _Chunk, comments: list[ast.Comment], comment_starts: list[int]) -> bool:
    """Whether the chunk holds more than white space and comments (found by bisection: no pass over all)."""
    first = bisect.bisect_left(comment_starts, chunk.start)
    last = bisect.bisect_left(comment_starts, chunk.end)
    at = chunk.start
    for comment in comments[first:last]:
        if text[at:comment.span.start].strip():
            return True
        at = comment.span.end
    return bool(text[at:chunk.end].strip())


# Files and statements past these limits are refused with P008 instead of
# checked (comments do not count). The parser takes a fraction of a
# millisecond per statement and per hundred characters, so a file within them
# checks in seconds, and one far past them (a generated file with a rule per
# product, a megabyte condition) is told so at once instead of keeping an
# editor busy for minutes.
MAX_STATEMENTS = 10_000
MAX_STATEMENT_LENGTH = 50_000
MAX_CODE_LENGTH = 1_000_000


def parse(text: str) -> ParseResult:
    """Parse a rule file. Input: its text. Output: the AST and syntax diagnostics."""
    index = LineIndex(text)
    chunks, comments, diagnostics = _split(text, index)
    whole_file = index.span(0, len(text))
    refused = _refuse_file(text, chunks, comments, index)
    if refused is not None:
        return ParseResult(ast.RuleFile((), tuple(comments), whole_file), finish([*diagnostics, refused]))
    comment_starts = [c.span.start for c in comments]
    statements: list[ast.Statement] = []
    syntax_errors = 0
    for chunk in chunks:
        if chunk.end - chunk.start > MAX_STATEMENT_LENGTH:
            length = _code_length(text, chunk, comments, comment_starts)
            if length > MAX_STATEMENT_LENGTH:
                diagnostics.append(make(
                    "P008", f"this statement is {length:,} characters long; poletti reads statements of at most "
                            f"{MAX_STATEMENT_LENGTH:,}", _first_line(text, chunk, index),
                    ["split a long condition into segments (segment big_spenders when …) and combine them"]))
                continue
        # Past the first MAX_DIAGNOSTICS syntax errors a short message does: only the first are shown.
        result = _parse_statement(text, chunk, index, explain=syntax_errors < MAX_DIAGNOSTICS)
        if isinstance(result, Diagnostic):
            diagnostics.append(result)
            syntax_errors += 1
        else:
            statements.append(result)
    return ParseResult(ast.RuleFile(tuple(statements), tuple(comments), whole_file), finish(diagnostics))


def _refuse_file(text: str, chunks: list[_Chunk], comments: list[ast.Comment], index: LineIndex) -> Diagnostic | None:
    """P008 for a file with too many statements or too much code (statements too long on their own aside)."""
    advice = ("one rule per category (earn 2 points per EUR on category \"beans\") instead of one per product "
              "keeps a program small")
    if len(chunks) > MAX_STATEMENTS:
        return make("P008", f"this file has {len(chunks):,} statements; poletti checks at most "
                            f"{MAX_STATEMENTS:,} in one file", _first_line(text, chunks[MAX_STATEMENTS], index),
                    [f"statement {MAX_STATEMENTS + 1:,} starts here; nothing in the file was checked", advice])
    comment_starts = [c.span.start for c in comments]
    total = 0
    for chunk in chunks:
        length = _code_length(text, chunk, comments, comment_starts)
        if length <= MAX_STATEMENT_LENGTH:
            total += length
        if total > MAX_CODE_LENGTH:
            return make("P008", f"this file has more than {MAX_CODE_LENGTH:,} characters of rules (comments not "
                                f"counted); poletti checks at most {MAX_CODE_LENGTH:,} in one file",
                        _first_line(text, chunk, index),
                        ["the limit is passed in this statement; nothing in the file was checked", advice])
    return None


def _first_line(text: str, chunk: _Chunk, index: LineIndex) -> ast.Span:
    """The span of a statement's code on its first line (for statements too large to underline whole)."""
    body = text[chunk.start:chunk.end]
    start = chunk.start + len(body) - len(body.lstrip())
    end = text.find("\n", start, chunk.end)
    return index.span(start, chunk.end if end < 0 else end)


def _code_length(text: str, chunk: _Chunk, comments: list[ast.Comment], comment_starts: list[int]) -> int:
    """A statement's length without its comments."""
    first = bisect.bisect_left(comment_starts, chunk.start)
    last = bisect.bisect_left(comment_starts, chunk.end)
    return chunk.end - chunk.start - sum(len(c.text) for c in comments[first:last])


# Deeper than this no rule a person writes goes; every later stage walks the
# tree recursively, so the limit keeps them far from Python's recursion limit
# (they manage about 400 levels; docs/language.md, P001, documents the limit).
# `a and b and c` is a tree two levels deep, so a chain of about 100 `and`s is too deep.
MAX_NESTING = 100


def _parse_statement(text: str, chunk: _Chunk, index: LineIndex, *, explain: bool = True) -> ast.Statement | Diagnostic:
    """One statement's AST, or its diagnostic (``explain=False``: a short one for a syntax error)."""
    source = text[chunk.start:chunk.end]
    try:
        tree = grammar().parse(source)
        statement = _ToAst(chunk.start, index).convert(tree)
    except UnexpectedInput as err:
        if not explain:
            return make("P001", "this statement does not follow the grammar", _first_line(text, chunk, index))
        return _syntax_diagnostic(err, source, chunk, index)
    except _Unreadable as err:  # a literal the converter cannot read, e.g. a huge duration
        return err.diagnostic
    except (_TooDeep, RecursionError):
        return _too_deep(chunk, index)
    except Exception:  # noqa: BLE001 — any other literal Python cannot take (as lark's VisitError was)
        return make("P001", "cannot read this statement", index.span(chunk.start, chunk.end),
                    ["check its numbers, durations and dates"])
    return statement  # type: ignore[no-any-return]


def _too_deep(chunk: _Chunk, index: LineIndex) -> Diagnostic:
    return make("P001", f"this statement is nested too deeply (more than {MAX_NESTING} levels)",
                index.span(chunk.start, chunk.end),
                ["every 'and', 'or', 'not' and arithmetic operator in a row is one level deeper; "
                 "split the condition with a segment or a metric"])


class _TooDeep(Exception):
    """The statement's tree is deeper than MAX_NESTING."""


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


class _ToAst:
    """Lark tree of one statement → AST node, with spans made absolute.

    Each public method handles the tree nodes of the grammar rule (or alias)
    it is named after, given the node's positions (``meta``) and its children,
    already converted; ``convert`` calls them bottom up.
    """

    def __init__(self, base: int, index: LineIndex) -> None:
        self.base = base
        self.index = index
        # The statement's first line, where most spans lie: found once, not per node.
        line = bisect.bisect_right(index.starts, base) - 1
        self.line = line + 1
        self.line_start = index.starts[line]
        self.line_end = index.starts[line + 1] if line + 1 < len(index.starts) else len(index.text) + 1

    def convert(self, tree: Tree) -> Any:
        """The tree as an AST node: children before parents, with no recursion and no per-node wrappers.

        Raises ``_TooDeep`` for a tree deeper than MAX_NESTING, before building anything.
        """
        order = []
        pending = [(tree, 1)]
        while pending:
            node, depth = pending.pop()
            if depth > MAX_NESTING:
                raise _TooDeep()
            order.append(node)
            pending.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
        done: dict[int, Any] = {}
        handlers = _HANDLERS
        for node in reversed(order):
            children = [done.pop(id(child)) if isinstance(child, Tree) else child for child in node.children]
            handler = handlers.get(node.data)
            done[id(node)] = handler(self, node.meta, children) if handler else Tree(node.data, children, node.meta)
        return done[id(tree)]

    def _at(self, start: int, end: int) -> ast.Span:
        if self.line_start <= start and end < self.line_end:
            line, first = self.line, self.line_start
            return ast.Span(line, start - first + 1, line, end - first + 1, start, end)
        return self.index.span(start, end)

    def _span(self, meta: Any) -> ast.Span:
        return self._at(self.base + meta.start_pos, self.base + meta.end_pos)

    def _tspan(self, token: Token) -> ast.Span:
        start = self.base + (token.start_pos or 0)
        return self._at(start, start + len(str(token)))

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

    def account_quantity(self, meta: Any, children: list[Token]) -> ast.AccountQuantity:
        return ast.AccountQuantity(str(children[0]), self._span(meta))

    def pool_rule(self, meta: Any, children: list[Token]) -> ast.PoolRule:
        return ast.PoolRule(self._span(meta))

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

    def point_value_decl(self, meta: Any, children: list[Any]) -> ast.PointValueDecl:
        return ast.PointValueDecl(children[0], self._span(meta))

    def reward_value(self, meta: Any, children: list[Any]) -> ast.RewardValue:
        return ast.RewardValue(children[0], self._span(meta))

    def reward_cost(self, meta: Any, children: list[Any]) -> ast.RewardCost:
        return ast.RewardCost(children[0], self._span(meta))

    # -- wallet terms, perks and partners (issue 13)

    def reward_percent(self, meta: Any, children: list[Token]) -> ast.RewardPercent:
        return ast.RewardPercent(Decimal(str(children[0])[:-1]), self._span(meta))

    def reward_max(self, meta: Any, children: list[Any]) -> ast.RewardMax:
        return ast.RewardMax(children[0], self._span(meta))

    def reward_expiry(self, meta: Any, children: list[Token]) -> ast.RewardExpiry:
        return ast.RewardExpiry(self._window(children[0]), self._span(meta))

    def perk_decl(self, meta: Any, children: list[Any]) -> ast.PerkDecl:
        name, *rest = children
        label = _unquote(str(rest.pop(0))) if len(rest) == 2 else None
        return ast.PerkDecl(self._ident(name), label, rest[0], self._span(meta))

    def partner_decl(self, meta: Any, children: list[Any]) -> ast.PartnerDecl:
        name, *rest = children
        label = _unquote(str(rest.pop(0))) if isinstance(rest[0], Token) else None
        return ast.PartnerDecl(self._ident(name), label, rest[0], self._span(meta))

    def rate_decl(self, meta: Any, children: list[Any]) -> ast.RateDecl:
        return ast.RateDecl(str(children[0]), children[1], self._span(meta))

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

    def referral_rule(self, meta: Any, children: list[Any]) -> ast.ReferralRule:
        return ast.ReferralRule(children[0], str(children[1]), self._options(children[2:]), self._span(meta))

    def referral_side(self, meta: Any, children: list[Token]) -> str:
        return str(children[0])

    def expire_rule(self, meta: Any, children: list[Token]) -> ast.ExpireRule:
        return ast.ExpireRule(self._window(children[0]), self._span(meta))

    def pending_rule(self, meta: Any, children: list[Token]) -> ast.PendingRule:
        return ast.PendingRule(self._window(children[0]), self._span(meta))


# Grammar rule (or alias) → the _ToAst method that builds its node.
_HANDLERS: dict[str, Any] = {
    name: method for name, method in vars(_ToAst).items() if not name.startswith("_") and name != "convert"
}


def iter_nodes(node: Any) -> Iterator[Any]:
    """Every AST node below (and including) ``node``, depth first, in field order.

    Iterative: a condition nested as deep as the parser allows costs no
    recursion, and each node is yielded once (not passed up through every
    level above it, as nested generators would).
    """
    stack = [node]
    while stack:
        node = stack.pop()
        yield node
        fields = _CHILD_FIELDS.get(type(node))
        if fields is None:
            fields = _CHILD_FIELDS[type(node)] = _child_fields(type(node))
        if not fields:
            continue
        children: list[Any] = []
        for name in fields:
            value = getattr(node, name)
            if isinstance(value, tuple):
                children.extend(value)
            elif attrs.has(type(value)):
                children.append(value)
        stack.extend(reversed(children))


# AST class → the names of its fields that may hold nodes (all but the span).
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def _child_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in attrs.fields(cls) if f.name != "span") if attrs.has(cls) else ()
