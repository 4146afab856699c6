"""Hypothesis strategies for valid rule files, as AST and as text, plus AST comparison helpers.

What is here
------------

* ``expressions()``, ``statements()``, ``rule_files()``: AST nodes with
  ``NO_SPAN`` everywhere, covering every statement kind, every rule option,
  nested ``and``/``or``/``not``/comparisons/arithmetic and every literal.
* ``programs()``: a ``GeneratedProgram`` — an AST, a deliberately messy text
  for it (odd spacing and tabs, ``;``-joined statements, blank lines,
  redundant and nested parentheses, conditions broken over lines inside
  parentheses, leading zeros, ``point``/``points`` and ``time``/``times``
  chosen at random, escapes in texts, option order as in the AST) and the
  comments that text contains, in order. ``parse(program.text)`` must give
  ``program.rule_file`` back (up to spans) and exactly ``program.comments``.
* ``shape(node, canonical=False)``: a span-free, hashable picture of a node for
  comparisons. Decimals are compared by their exact text (``3.50`` is not
  ``3.5``), which attrs' ``==`` would not do. With ``canonical=True`` rule
  options and reward parts are put in the formatter's canonical order (a
  stable sort by kind), the one difference ``fmt`` may make to a tree.

How test modules load it
------------------------

pytest puts ``tests/support`` on the import path (``pythonpath`` in
pyproject.toml), so a test module says ``import program_strategies``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Callable

import attrs
from hypothesis import strategies as st

from poletti.dsl import ast

S = ast.NO_SPAN

# Every keyword of the grammar: generated names avoid them all (a keyword is a
# name only where the contextual lexer does not expect the keyword, which is
# too subtle to rely on in a generator), except the built-in quantities
# `points` and `tier`, which are names at the start of an operand.
KEYWORDS = frozenset(
    "after and at attribute avg bool category costs count currency date day down duration during earn "
    "event every expire false for grant if is item keep limit max metric min missing money month nearest not number "
    "of on once or over param pending per point points present program purchase purchases reward rounding segment "
    "sku sum text tier time times timezone true up use value visit visits week when with year "
    "expires perk partner pays rate".split()
)
BUILTIN_NAMES = ("points", "tier", "spend_12m", "spend_30d", "lifetime_points", "days_since_last_purchase",
                 "member_days", "streak_days", "purchases_30d", "visits_12m")


def _usable(name: str) -> bool:
    # `x2` would lex as a multiplier after `earn`.
    return name not in KEYWORDS and not re.fullmatch(r"x[0-9]+", name)


names = st.one_of(
    st.sampled_from(["gold", "silver", "free_drink", "lapsed", "beans", "threshold", "_tmp", "vip2"]),
    st.from_regex(r"[a-z_][a-z0-9_]{0,7}", fullmatch=True),
).filter(_usable)
expr_names = st.one_of(st.sampled_from(BUILTIN_NAMES), names)
event_names = st.one_of(st.sampled_from(["signup", "review", "birthday", "referral", "visit", "purchase"]), names)
idents = names.map(lambda n: ast.Ident(n, S))

decimals = st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,3})?|0\.0{5,7}[1-9]", fullmatch=True).map(Decimal)
number_lits = decimals.map(lambda d: ast.NumberLit(d, S))
name_refs = names.map(lambda n: ast.NameRef(n, S))
amounts = st.one_of(number_lits, number_lits, name_refs)
currencies = st.sampled_from(["EUR", "USD", "GBP", "SEK"])
money_lits = st.builds(lambda a, c: ast.MoneyLit(a, c, S), amounts, currencies)
points_lits = amounts.map(lambda a: ast.PointsLit(a, S))
duration_lits = st.builds(lambda n, u: ast.DurationLit(n, u, S), st.integers(0, 400), st.sampled_from("dwmy"))
date_lits = st.from_regex(r"20[0-9]{2}-[01][0-9]-[0-3][0-9]", fullmatch=True).map(lambda t: ast.DateLit(t, S))
TEXT_ALPHABET = st.sampled_from(list("abcXYZ019 _-.,;:#()[]'\"\\\t\néö€"))
text_values = st.text(TEXT_ALPHABET, max_size=12)
text_lits = text_values.map(lambda v: ast.TextLit(v, S))
bool_lits = st.booleans().map(lambda b: ast.BoolLit(b, S))
event_attrs = names.map(lambda n: ast.EventAttr(n, S))
windows = st.one_of(duration_lits, name_refs)
counts = st.one_of(number_lits, name_refs)

leaf_exprs = st.one_of(
    number_lits, expr_names.map(lambda n: ast.NameRef(n, S)), money_lits, points_lits, duration_lits,
    date_lits, text_lits, bool_lits, event_attrs,
)


COMPARATORS = [">", ">=", "<", "<=", "==", "!="]


@st.composite
def _expression(draw: Callable[[st.SearchStrategy[Any]], Any], depth: int) -> ast.Expr:
    # Mostly operators, so that nesting (and the parentheses it needs) is common.
    if depth == 0 or draw(st.integers(0, 9)) < 3:
        return draw(leaf_exprs)  # type: ignore[no-any-return]
    kind = draw(st.sampled_from(["compare", "arith", "arith", "and", "or", "not", "presence"]))
    if kind == "not":
        return ast.NotOp(draw(_expression(depth - 1)), S)
    if kind == "presence":
        return ast.PresenceTest(draw(event_attrs), draw(st.booleans()), S)
    left, right = draw(_expression(depth - 1)), draw(_expression(depth - 1))
    if kind == "compare":
        return ast.Compare(draw(st.sampled_from(COMPARATORS)), left, right, S)
    if kind == "arith":
        return ast.BinaryOp(draw(st.sampled_from(["+", "-", "*", "/"])), left, right, S)
    return ast.AndOp(left, right, S) if kind == "and" else ast.OrOp(left, right, S)


def expressions(max_depth: int = 4) -> st.SearchStrategy[ast.Expr]:
    """Any expression tree the grammar can express (types are the checker's business, not the parser's)."""
    return _expression(max_depth)


# Values allowed after `=` in `param` and `use` (no operators, no parentheses).
arg_values = st.one_of(number_lits, money_lits, points_lits, duration_lits, date_lits, text_lits, name_refs)

item_filters = st.builds(lambda k, v: ast.ItemFilter(k, v, S), st.sampled_from(["category", "sku"]),
                         st.one_of(text_lits, name_refs))
optional_filters = st.one_of(st.none(), item_filters)
grant_targets = st.one_of(idents, idents, points_lits)

rule_options = st.one_of(
    expressions(3).map(lambda e: ast.IfOption(e, S)),
    st.builds(lambda a, b: ast.DuringOption(a, b, S), date_lits, st.one_of(st.none(), date_lits)),
    st.builds(lambda c, u, p: ast.LimitOption(c, u, p, S), counts, st.sampled_from(["points", "times"]),
              st.one_of(st.sampled_from(["day", "week", "month", "year"]), duration_lits, name_refs)),
    st.one_of(st.none(), windows).map(lambda w: ast.OnceOption(w, S)),
)
option_lists = st.lists(rule_options, max_size=3).map(tuple)

earn_bases = st.one_of(
    st.none(),
    st.builds(lambda c, f: ast.PerCurrency(c, f, S), currencies, optional_filters),
    st.builds(lambda m, f: ast.PerMoney(m, f, S), money_lits, optional_filters),
    st.builds(lambda u, f: ast.PerUnit(u, f, S), st.sampled_from(["purchase", "visit", "item"]), optional_filters),
    event_names.map(lambda n: ast.OnEvent(ast.Ident(n, S), S)),
)

TYPE_NAMES = ["number", "money", "points", "count", "duration", "date", "bool", "text", "reward", "tier"]

statement_strategies: dict[type, st.SearchStrategy[Any]] = {
    ast.ProgramDecl: text_values.map(lambda t: ast.ProgramDecl(t, S)),
    ast.CurrencyDecl: st.from_regex(r"[A-Z]{3}", fullmatch=True).map(lambda c: ast.CurrencyDecl(c, S)),
    ast.RoundingDecl: st.sampled_from(["down", "nearest", "up"]).map(lambda m: ast.RoundingDecl(m, S)),
    ast.TimezoneDecl: st.sampled_from(["UTC", "Europe/Helsinki", "America/New_York"]).map(lambda z: ast.TimezoneDecl(z, S)),
    ast.PointValueDecl: money_lits.map(lambda m: ast.PointValueDecl(m, S)),
    ast.RewardDecl: st.builds(
        lambda n, label, parts: ast.RewardDecl(n, label, parts, S), idents, st.one_of(st.none(), text_values),
        st.lists(st.one_of(money_lits.map(lambda m: ast.RewardValue(m, S)), points_lits.map(lambda p: ast.RewardCost(p, S)),
                           decimals.map(lambda d: ast.RewardPercent(d, S)), money_lits.map(lambda m: ast.RewardMax(m, S)),
                           windows.map(lambda w: ast.RewardExpiry(w, S))),
                 max_size=3).map(tuple)),
    # Issue 13: perks, partners, currency rates.
    ast.PerkDecl: st.builds(lambda n, label, e: ast.PerkDecl(n, label, e, S), idents, st.one_of(st.none(), text_values),
                            expressions()),
    ast.PartnerDecl: st.builds(lambda n, label, m: ast.PartnerDecl(n, label, m, S), idents,
                               st.one_of(st.none(), text_values), money_lits),
    ast.RateDecl: st.builds(lambda c, m: ast.RateDecl(c, m, S), currencies, money_lits),
    ast.SegmentDecl: st.builds(lambda n, e: ast.SegmentDecl(n, e, S), idents, expressions()),
    ast.MetricDecl: st.builds(
        lambda n, agg, field, event, f, w: ast.MetricDecl(n, agg, field, event, f, w, S),
        idents, st.sampled_from(["sum", "count", "max", "min", "avg"]), st.one_of(st.none(), idents),
        event_names.map(lambda n: ast.Ident(n, S)), optional_filters, windows),
    ast.AttributeDecl: st.builds(lambda n, t: ast.AttributeDecl(n, t, S), idents, st.sampled_from(TYPE_NAMES)),
    ast.EventDecl: idents.map(lambda n: ast.EventDecl(n, S)),
    ast.ParamDecl: st.builds(lambda n, t, d: ast.ParamDecl(n, t, d, S), idents, st.sampled_from(TYPE_NAMES),
                             st.one_of(st.none(), arg_values)),
    ast.UseDecl: st.builds(
        lambda m, args: ast.UseDecl(m, args, S), idents,
        st.lists(st.builds(lambda n, v: ast.UseArg(n, v, S), idents, arg_values), max_size=3).map(tuple)),
    ast.EarnRule: st.builds(
        lambda a, b, o: ast.EarnRule(a, b, o, S),
        st.one_of(points_lits, decimals.map(lambda d: ast.Multiplier(d, S))), earn_bases, option_lists),
    ast.ConvertRule: st.builds(lambda p, t, o: ast.ConvertRule(p, t, o, S), points_lits, grant_targets, option_lists),
    ast.StampRule: st.builds(
        lambda c, u, f, t, o: ast.StampRule(c, u, f, t, o, S),
        counts, st.sampled_from(["purchases", "visits"]), optional_filters, grant_targets, option_lists),
    ast.TierRule: st.builds(lambda n, e, k: ast.TierRule(n, e, k, S), idents, expressions(), st.one_of(st.none(), windows)),
    ast.OnRule: st.builds(lambda n, t, o: ast.OnRule(ast.Ident(n, S), t, o, S), event_names, grant_targets, option_lists),
    ast.WhenRule: st.builds(lambda e, t, o: ast.WhenRule(e, t, o, S), expressions(), grant_targets, option_lists),
    ast.ExpireRule: windows.map(lambda w: ast.ExpireRule(w, S)),
    ast.PendingRule: windows.map(lambda w: ast.PendingRule(w, S)),
}


def statements() -> st.SearchStrategy[ast.Statement]:
    """One statement of any kind; those with conditions and options a little more often."""
    conditional = [statement_strategies[t] for t in (ast.SegmentDecl, ast.TierRule, ast.WhenRule, ast.EarnRule)]
    return st.one_of(*statement_strategies.values(), *conditional)


def rule_files(max_statements: int = 8) -> st.SearchStrategy[ast.RuleFile]:
    """A rule file without comments, as an AST with NO_SPAN."""
    return st.lists(statements(), max_size=max_statements).map(lambda s: ast.RuleFile(tuple(s), (), S))


# ------------------------------------------------------------- messy text


@attrs.frozen
class GeneratedProgram:
    rule_file: ast.RuleFile  # statements only; spans are NO_SPAN
    text: str
    comments: tuple[str, ...]  # comment texts in file order, as the parser keeps them


comment_texts = st.text(st.sampled_from(list("abc XYZ09#;()\"'\\:é")), max_size=10).map(lambda t: ("#" + t).rstrip())

# Precedence, loosest first, written independently of the formatter: the parser is the oracle.
_PREC = {ast.OrOp: 1, ast.AndOp: 2, ast.NotOp: 3, ast.Compare: 4, ast.PresenceTest: 4}


def _prec(e: ast.Expr) -> int:
    if isinstance(e, ast.BinaryOp):
        return 5 if e.op in ("+", "-") else 6
    return _PREC.get(type(e), 7)


class _Writer:
    """Renders nodes as token lists, drawing every free choice from hypothesis."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
        self.draw = draw

    def coin(self, p_true: float = 0.5) -> bool:
        return bool(self.draw(st.integers(0, 99)) < p_true * 100)

    def number(self, d: Decimal) -> str:
        return "0" * self.draw(st.sampled_from([0, 0, 0, 1, 2])) + format(d, "f")

    def amount(self, a: ast.NumberLit | ast.NameRef) -> list[str]:
        return [self.number(a.value)] if isinstance(a, ast.NumberLit) else [a.name]

    def text(self, value: str) -> str:
        out = []
        for ch in value:
            if ch in '"\\' or ch == "\n":
                out.append({'"': '\\"', "\\": "\\\\", "\n": "\\n"}[ch])
            elif ch == "\t":
                out.append("\\t" if self.coin() else "\t")
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'

    def atom(self, e: Any) -> list[str]:
        if isinstance(e, ast.NumberLit):
            return [self.number(e.value)]
        if isinstance(e, ast.NameRef):
            return [e.name]
        if isinstance(e, ast.MoneyLit):
            return self.amount(e.amount) + [e.currency]
        if isinstance(e, ast.PointsLit):
            return self.amount(e.amount) + [self.draw(st.sampled_from(["point", "points"]))]
        if isinstance(e, ast.DurationLit):
            return ["0" * self.draw(st.sampled_from([0, 0, 1])) + f"{e.amount}{e.unit}"]
        if isinstance(e, ast.DateLit):
            return [e.text]
        if isinstance(e, ast.TextLit):
            return [self.text(e.value)]
        if isinstance(e, ast.BoolLit):
            return ["true" if e.value else "false"]
        if isinstance(e, ast.EventAttr):
            return ["event", ".", e.name]
        raise TypeError(type(e))

    def expr(self, e: ast.Expr, at_least: int = 1) -> list[str]:
        if isinstance(e, ast.OrOp):
            body = self.expr(e.left, 1) + ["or"] + self.expr(e.right, 2)
        elif isinstance(e, ast.AndOp):
            body = self.expr(e.left, 2) + ["and"] + self.expr(e.right, 3)
        elif isinstance(e, ast.NotOp):
            body = ["not"] + self.expr(e.operand, 3)
        elif isinstance(e, ast.Compare):
            body = self.expr(e.left, 5) + [e.op] + self.expr(e.right, 5)
        elif isinstance(e, ast.PresenceTest):
            body = self.expr(e.attribute, 5) + ["is", "present" if e.present else "missing"]
        elif isinstance(e, ast.BinaryOp):
            body = self.expr(e.left, _prec(e)) + [e.op] + self.expr(e.right, _prec(e) + 1)
        else:
            body = self.atom(e)
        needed = _prec(e) < at_least
        extra = self.draw(st.sampled_from([0, 0, 0, 0, 1, 2]))
        wraps = extra + (1 if needed else 0)
        return ["("] * wraps + body + [")"] * wraps

    def window(self, w: ast.Window) -> list[str]:
        return self.atom(w)

    def filter(self, f: ast.ItemFilter | None) -> list[str]:
        return [] if f is None else ["on", f.kind] + self.atom(f.value)

    def target(self, t: ast.GrantTarget) -> list[str]:
        return [t.name] if isinstance(t, ast.Ident) else self.atom(t)

    def option(self, o: ast.RuleOption) -> list[str]:
        if isinstance(o, ast.IfOption):
            return ["if"] + self.expr(o.condition)
        if isinstance(o, ast.DuringOption):
            return ["during", o.start.text] + ([] if o.end is None else ["..", o.end.text])
        if isinstance(o, ast.LimitOption):
            unit = self.draw(st.sampled_from(["time", "times"] if o.unit == "times" else ["point", "points"]))
            period = [o.period] if isinstance(o.period, str) else self.window(o.period)
            return ["limit"] + self.atom(o.count) + [unit, "per"] + period
        return ["once"] + ([] if o.window is None else ["per"] + self.window(o.window))

    def options(self, options: tuple[ast.RuleOption, ...]) -> list[str]:
        return [tok for o in options for tok in self.option(o)]

    def statement(self, s: ast.Statement) -> list[str]:
        if isinstance(s, ast.ProgramDecl):
            return ["program", self.text(s.title)]
        if isinstance(s, ast.CurrencyDecl):
            return ["currency", s.code]
        if isinstance(s, ast.RoundingDecl):
            return ["rounding", s.mode]
        if isinstance(s, ast.TimezoneDecl):
            return ["timezone", self.text(s.zone)]
        if isinstance(s, ast.PointValueDecl):
            return ["point", "value"] + self.atom(s.money)
        if isinstance(s, ast.RewardDecl):
            toks = ["reward", s.name.name] + ([] if s.label is None else [self.text(s.label)])
            for p in s.parts:
                if isinstance(p, ast.RewardValue):
                    toks += ["value"] + self.atom(p.money)
                elif isinstance(p, ast.RewardPercent):
                    toks += ["value", self.number(p.percent) + "%"]
                elif isinstance(p, ast.RewardMax):
                    toks += ["max"] + self.atom(p.money)
                elif isinstance(p, ast.RewardExpiry):
                    toks += ["expires", "after"] + self.window(p.window)
                else:
                    toks += ["costs"] + self.atom(p.points)
            return toks
        if isinstance(s, ast.PerkDecl):
            return ["perk", s.name.name] + ([] if s.label is None else [self.text(s.label)]) + ["when"] + self.expr(
                s.condition)
        if isinstance(s, ast.PartnerDecl):
            return (["partner", s.name.name] + ([] if s.label is None else [self.text(s.label)]) + ["pays"]
                    + self.atom(s.rate) + ["per", self.draw(st.sampled_from(["point", "points"]))])
        if isinstance(s, ast.RateDecl):
            return ["rate", s.currency] + self.atom(s.value)
        if isinstance(s, ast.SegmentDecl):
            return ["segment", s.name.name, "when"] + self.expr(s.condition)
        if isinstance(s, ast.MetricDecl):
            toks = ["metric", s.name.name, "=", s.aggregate, "of"]
            toks += [] if s.field is None else [s.field.name, "of"]
            return toks + [s.event.name] + self.filter(s.filter) + ["over"] + self.window(s.window)
        if isinstance(s, ast.AttributeDecl):
            return ["attribute", s.name.name, ":", s.type_name]
        if isinstance(s, ast.EventDecl):
            return ["event", s.name.name]
        if isinstance(s, ast.ParamDecl):
            return ["param", s.name.name, ":", s.type_name] + ([] if s.default is None else ["="] + self.atom(s.default))
        if isinstance(s, ast.UseDecl):
            toks = ["use", s.module.name]
            for i, arg in enumerate(s.args):
                toks += (["with"] if i == 0 else [","]) + [arg.name.name, "="] + self.atom(arg.value)
            return toks
        if isinstance(s, ast.EarnRule):
            if isinstance(s.amount, ast.Multiplier):
                amount = ["x" + self.number(s.amount.factor)]
            else:
                amount = self.atom(s.amount)
            basis: list[str] = []
            if isinstance(s.basis, ast.PerCurrency):
                basis = ["per", s.basis.currency] + self.filter(s.basis.filter)
            elif isinstance(s.basis, ast.PerMoney):
                basis = ["per"] + self.atom(s.basis.money) + self.filter(s.basis.filter)
            elif isinstance(s.basis, ast.PerUnit):
                basis = ["per", s.basis.unit] + self.filter(s.basis.filter)
            elif isinstance(s.basis, ast.OnEvent):
                basis = ["on", s.basis.event.name]
            return ["earn"] + amount + basis + self.options(s.options)
        if isinstance(s, ast.ConvertRule):
            return ["at"] + self.atom(s.threshold) + ["grant"] + self.target(s.target) + self.options(s.options)
        if isinstance(s, ast.StampRule):
            return (["every"] + self.atom(s.count) + [s.unit] + self.filter(s.filter) + ["grant"]
                    + self.target(s.target) + self.options(s.options))
        if isinstance(s, ast.TierRule):
            return ["tier", s.name.name, "when"] + self.expr(s.condition) + ([] if s.keep is None else ["keep"] + self.window(s.keep))
        if isinstance(s, ast.OnRule):
            return ["on", s.event.name, "grant"] + self.target(s.target) + self.options(s.options)
        if isinstance(s, ast.WhenRule):
            return ["when"] + self.expr(s.condition) + ["grant"] + self.target(s.target) + self.options(s.options)
        if isinstance(s, ast.ExpireRule):
            return ["points", "expire", "after"] + self.window(s.window)
        if isinstance(s, ast.PendingRule):
            return ["points", "pending", "for"] + self.window(s.window)
        raise TypeError(type(s))

    def join(self, tokens: list[str], comments: list[str]) -> str:
        """Tokens with random whitespace; line breaks and comments only inside parentheses."""
        out = [tokens[0]]
        depth = 1 if tokens[0] == "(" else 0
        for previous, token in zip(tokens, tokens[1:]):
            choices = [" ", " ", "  ", "\t"]
            if previous == "(" or token in (")", ",", ":", ".", "..") or previous in (".", ".."):
                choices.append("")
            if depth > 0:
                choices += ["\n", "\n    "]
                if self.coin(0.3):
                    comment = self.draw(comment_texts)
                    comments.append(comment)
                    choices = [f" {comment}\n  "]
            out.append(self.draw(st.sampled_from(choices)))
            out.append(token)
            depth += (token == "(") - (token == ")")
        return "".join(out)


@st.composite
def programs(draw: Callable[[st.SearchStrategy[Any]], Any], max_statements: int = 6) -> GeneratedProgram:
    """A valid rule file as AST, as messy text, and the comments in that text."""
    statement_list = draw(st.lists(statements(), max_size=max_statements))
    writer = _Writer(draw)
    comments: list[str] = []
    parts: list[str] = []

    def own_line_comment() -> str:
        comment = draw(comment_texts)
        comments.append(comment)
        return comment

    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(["\n", "\n\n  \n", ""])) + own_line_comment() + "\n")
    for i, statement in enumerate(statement_list):
        parts.append(draw(st.sampled_from(["", "", "  ", "\t"])))
        parts.append(writer.join(writer.statement(statement), comments))
        last = i == len(statement_list) - 1
        kind = draw(st.sampled_from(["newline", "blank", "semicolon", "trailing", "own_line", "semicolon_trailing"]))
        if kind == "newline":
            parts.append("\n")
        elif kind == "blank":
            parts.append(draw(st.sampled_from(["\n\n", "\n  \n\t\n", "\n\n\n"])))
        elif kind == "semicolon":
            parts.append(draw(st.sampled_from([";", " ; ", ";;", ";\n"])) if not last else "\n")
        elif kind == "trailing":
            parts.append(draw(st.sampled_from([" ", "  ", "\t"])) + own_line_comment() + "\n")
        elif kind == "semicolon_trailing":
            parts.append("; " + own_line_comment() + "\n")
        else:
            parts.append(draw(st.sampled_from(["\n", "\n\n"])) + own_line_comment()
                         + draw(st.sampled_from(["\n", "\n\n"])))
    if draw(st.booleans()):
        parts.append(own_line_comment())
    return GeneratedProgram(ast.RuleFile(tuple(statement_list), (), S), "".join(parts), tuple(comments))


# ------------------------------------------------------------- comparisons

_OPTION_ORDER = {ast.IfOption: 0, ast.DuringOption: 1, ast.LimitOption: 2, ast.OnceOption: 3,
                 ast.RewardValue: 0, ast.RewardPercent: 0, ast.RewardMax: 1, ast.RewardCost: 2, ast.RewardExpiry: 3}


def shape(node: Any, canonical: bool = False) -> Any:
    """A span-free, hashable picture of ``node``; Decimals by exact text.

    ``canonical=True`` sorts rule options and reward parts stably by kind, as
    the formatter prints them. Comments become their text.
    """
    if isinstance(node, ast.Span):
        return None
    if isinstance(node, ast.Comment):
        return node.text
    if isinstance(node, Decimal):
        return ("Decimal", str(node))
    if isinstance(node, tuple):
        items = list(node)
        if canonical and items and all(type(i) in _OPTION_ORDER for i in items):
            items.sort(key=lambda i: _OPTION_ORDER[type(i)])
        return tuple(shape(i, canonical) for i in items)
    if attrs.has(type(node)):
        return (type(node).__name__,) + tuple(
            (f.name, shape(getattr(node, f.name), canonical)) for f in attrs.fields(type(node)) if f.name != "span"
        )
    return node
