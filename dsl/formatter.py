"""The canonical layout of a rule file: the engine behind ``poletti fmt``.

``format_rule_file(rule_file) -> str`` prints an AST (with the comments the
parser kept beside it) in the one canonical layout; ``format_text(text) ->
FormatResult`` parses text first and returns ``text=None`` with the syntax
diagnostics when the file does not parse (a file that does not parse is never
rewritten). Both are pure functions. For every file that parses,
``parse(fmt(x))`` equals ``parse(x)`` up to spans and the order of reward
parts and rule options (which carry no meaning), and ``fmt(fmt(x)) == fmt(x)``.

The layout
----------

* One statement per line. Statements joined with ``;`` go onto lines of their
  own; a statement written over several lines (inside parentheses) is joined
  onto one line. Lines are never wrapped: there is no line-length limit.
* Statements keep their order (it has meaning: tiers rank by it, ``at`` rules
  convert in it). No statement is indented.
* Words are separated by one space; ``x: type`` in ``attribute`` and
  ``param``, ``a = 1, b = 2`` in ``use``, ``2026-12-01..2026-12-24`` in
  ``during`` and ``event.name`` have no space where shown.
* Reward parts come in the order label, ``value``, ``costs``; rule options in
  the order ``if``, ``during``, ``limit``, ``once`` (a sort that keeps the
  relative order of repeated options, so the checker still sees them).
* Parentheses are the fewest the grammar needs to read the same tree back.
  Precedence, loosest first: ``or``, ``and``, ``not``, comparisons, ``+ -``,
  ``* /``; the binary operators are left-associative, so ``(a - b) - c``
  prints as ``a - b - c`` while ``a - (b - c)`` keeps its parentheses;
  comparisons do not chain, so a comparison inside a comparison keeps them.
  ``event.x is missing`` / ``is present`` is a comparison and prints as
  ``event.x is missing``.
* Numbers print exactly as the AST holds them (``3.50`` stays ``3.50``; never
  an exponent), durations as amount and unit (``30d``), dates as written.
  Texts are re-quoted with ``\\\\``, ``\\"``, ``\\n`` and ``\\t`` escaped.
  ``1 point`` / ``2 points`` and ``limit 1 time`` / ``limit 3 times`` follow
  the amount (the parser reads either word the same).

Comments and blank lines
------------------------

No comment is ever dropped, and comments keep their order.

* A comment on a line of its own stays on a line of its own, above the
  statement that follows it (or at the end of the file), unindented.
* A comment after code on the line where a statement ends stays at the end of
  that statement's line, after two spaces. When ``;`` split that line into
  several statements, it follows the last of them.
* A comment inside a statement (in a parenthesised condition written over
  several lines) cannot stay where it was once the statement is on one line,
  so it moves onto its own line directly above the statement.
* Blank lines: where the source had one or more blank lines between two
  statements or comments, the output has exactly one; where it had none, the
  output has none. Blank lines at the start and end of the file are dropped,
  so a file is either empty or ends with exactly one newline. Statements
  split off a ``;``-joined line follow each other without blank lines. The
  formatter adds no grouping of its own: the author's blank lines are the
  grouping. Line endings are ``\\n``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Callable, Sequence

from poletti.dsl import ast, classes
from poletti.dsl.diagnostics import Diagnostic, has_errors
from poletti.dsl.parser import parse

__all__ = ["FormatResult", "format_expr", "format_rule_file", "format_statement", "format_text"]

TRAILING_COMMENT_GAP = "  "


@classes.frozen
class FormatResult:
    """``text`` is the formatted file, or None when the input has syntax errors."""

    text: str | None
    diagnostics: tuple[Diagnostic, ...]


def format_text(text: str) -> FormatResult:
    """Format rule-file text. Input: the text. Output: the canonical text (None on syntax errors) and the parse diagnostics.

    The text is read exactly as ``poletti.diagnose`` reads it: a byte-order
    mark is dropped where a file's bytes are decoded (``poletti fmt``, like
    ``poletti check``, drops one), so one left in the text is a character
    that does not belong (P002) and the text is refused. Dropping it here
    too would turn a file that starts with two marks, which check refuses,
    into one that passes.
    """
    parsed = parse(text)
    if has_errors(parsed.diagnostics):
        return FormatResult(None, parsed.diagnostics)
    return FormatResult(format_rule_file(parsed.rule_file), parsed.diagnostics)


def format_rule_file(rule_file: ast.RuleFile) -> str:
    """Print a rule file (statements and comments) in the canonical layout. Output: the file's text."""
    placement = _place_comments(rule_file)
    lines: list[str] = []
    previous_end: int | None = None  # last source line of what was printed last

    def gap_before(line: int) -> None:
        # One blank line where the source had at least one; never at the top of the file.
        if previous_end is not None and line - previous_end > 1:
            lines.append("")

    for position, statement in enumerate(rule_file.statements):
        for comment in placement.above[position]:
            gap_before(comment.span.line)
            lines.append(comment.text)
            previous_end = comment.span.end_line
        gap_before(statement.span.line)
        lines.extend(c.text for c in placement.inside[position])
        text = format_statement(statement)
        trailing = placement.trailing.get(position)
        if trailing is not None:
            text += TRAILING_COMMENT_GAP + trailing.text
        lines.append(text)
        previous_end = statement.span.end_line
    for comment in placement.at_end:
        gap_before(comment.span.line)
        lines.append(comment.text)
        previous_end = comment.span.end_line
    return "".join(line + "\n" for line in lines)


# ------------------------------------------------------------------- comments


@classes.frozen
class _Placement:
    above: list[list[ast.Comment]]  # per statement: own-line comments before it
    inside: list[list[ast.Comment]]  # per statement: comments within its span, moved above it
    trailing: dict[int, ast.Comment]  # statement position → the comment ending its line
    at_end: list[ast.Comment]  # own-line comments after the last statement


def _place_comments(rule_file: ast.RuleFile) -> _Placement:
    statements = rule_file.statements
    above: list[list[ast.Comment]] = [[] for _ in statements]
    inside: list[list[ast.Comment]] = [[] for _ in statements]
    trailing: dict[int, ast.Comment] = {}
    at_end: list[ast.Comment] = []
    for comment in sorted(rule_file.comments, key=lambda c: c.span.start):
        start = comment.span.start
        within = next((i for i, s in enumerate(statements) if s.span.start < start < s.span.end), None)
        if within is not None:
            inside[within].append(comment)
            continue
        # The last statement that ends on this comment's line, before it.
        ending_here = [i for i, s in enumerate(statements)
                       if s.span.end_line == comment.span.line and s.span.end <= start]
        if ending_here and ending_here[-1] not in trailing:
            trailing[ending_here[-1]] = comment
            continue
        following = next((i for i, s in enumerate(statements) if s.span.start > start), None)
        if following is None:
            at_end.append(comment)
        else:
            above[following].append(comment)
    return _Placement(above, inside, trailing, at_end)


# ----------------------------------------------------------------- statements


def format_statement(statement: ast.Statement) -> str:
    """One statement on one line, without comments."""
    printer = _STATEMENT_PRINTERS.get(type(statement))
    if printer is None:
        raise TypeError(f"not a statement node: {type(statement).__name__}")
    return printer(statement)


def _program(s: ast.ProgramDecl) -> str:
    return f"program {_text(s.title)}"


def _currency(s: ast.CurrencyDecl) -> str:
    return f"currency {s.code}"


def _rounding(s: ast.RoundingDecl) -> str:
    return f"rounding {s.mode}"


def _timezone(s: ast.TimezoneDecl) -> str:
    return f"timezone {_text(s.zone)}"


def _point_value(s: ast.PointValueDecl) -> str:
    return f"point value {_money(s.money)}"


_REWARD_PART_ORDER = {ast.RewardValue: 0, ast.RewardPercent: 0, ast.RewardMax: 1, ast.RewardCost: 2,
                      ast.RewardExpiry: 3}


def _reward(s: ast.RewardDecl) -> str:
    words = ["reward", s.name.name]
    if s.label is not None:
        words.append(_text(s.label))
    for part in sorted(s.parts, key=lambda p: _REWARD_PART_ORDER[type(p)]):
        if isinstance(part, ast.RewardValue):
            words += ["value", _money(part.money)]
        elif isinstance(part, ast.RewardPercent):
            words += ["value", f"{_number(part.percent)}%"]
        elif isinstance(part, ast.RewardMax):
            words += ["max", _money(part.money)]
        elif isinstance(part, ast.RewardExpiry):
            words += ["expires", "after", _window(part.window)]
        else:
            words += ["costs", _points(part.points)]
    return " ".join(words)


# ------------------------------------------------- perks and partners (issue 13)


def _perk(s: ast.PerkDecl) -> str:
    label = f" {_text(s.label)}" if s.label is not None else ""
    return f"perk {s.name.name}{label} when {format_expr(s.condition)}"


def _partner(s: ast.PartnerDecl) -> str:
    label = f" {_text(s.label)}" if s.label is not None else ""
    return f"partner {s.name.name}{label} pays {_money(s.rate)} per point"


def _rate(s: ast.RateDecl) -> str:
    return f"rate {s.currency} {_money(s.value)}"


def _segment(s: ast.SegmentDecl) -> str:
    return f"segment {s.name.name} when {format_expr(s.condition)}"


def _metric(s: ast.MetricDecl) -> str:
    words = ["metric", s.name.name, "=", s.aggregate, "of"]
    if s.field is not None:
        words += [s.field.name, "of"]
    words.append(s.event.name)
    if s.filter is not None:
        words.append(_filter(s.filter))
    words += ["over", _window(s.window)]
    return " ".join(words)


def _attribute(s: ast.AttributeDecl) -> str:
    return f"attribute {s.name.name}: {s.type_name}"


def _event(s: ast.EventDecl) -> str:
    return f"event {s.name.name}"


def _param(s: ast.ParamDecl) -> str:
    text = f"param {s.name.name}: {s.type_name}"
    if s.default is not None:
        text += f" = {format_expr(s.default)}"
    return text


def _use(s: ast.UseDecl) -> str:
    text = f"use {s.module.name}"
    if s.args:
        text += " with " + ", ".join(f"{a.name.name} = {format_expr(a.value)}" for a in s.args)
    return text


def _earn(s: ast.EarnRule) -> str:
    amount = f"x{_number(s.amount.factor)}" if isinstance(s.amount, ast.Multiplier) else _points(s.amount)
    words = ["earn", amount]
    if s.basis is not None:
        words.append(_basis(s.basis))
    return _with_options(" ".join(words), s.options)


def _convert(s: ast.ConvertRule) -> str:
    return _with_options(f"at {_points(s.threshold)} grant {_target(s.target)}", s.options)


def _stamp(s: ast.StampRule) -> str:
    words = ["every", _count(s.count), s.unit]
    if s.filter is not None:
        words.append(_filter(s.filter))
    words += ["grant", _target(s.target)]
    return _with_options(" ".join(words), s.options)


def _tier(s: ast.TierRule) -> str:
    text = f"tier {s.name.name} when {format_expr(s.condition)}"
    if s.keep is not None:
        text += f" keep {_window(s.keep)}"
    return text


def _on(s: ast.OnRule) -> str:
    return _with_options(f"on {s.event.name} grant {_target(s.target)}", s.options)


def _when(s: ast.WhenRule) -> str:
    return _with_options(f"when {format_expr(s.condition)} grant {_target(s.target)}", s.options)


def _pool(s: ast.PoolRule) -> str:
    return "points pooled by account"


def _referral(s: ast.ReferralRule) -> str:
    return _with_options(f"referral grant {_target(s.target)} to {s.side} when friend buys", s.options)


def _expire(s: ast.ExpireRule) -> str:
    return f"points expire after {_window(s.window)}"


def _pending(s: ast.PendingRule) -> str:
    return f"points pending for {_window(s.window)}"


_STATEMENT_PRINTERS: dict[type, Callable[..., str]] = {
    ast.ProgramDecl: _program,
    ast.CurrencyDecl: _currency,
    ast.RoundingDecl: _rounding,
    ast.TimezoneDecl: _timezone,
    ast.PointValueDecl: _point_value,
    ast.RewardDecl: _reward,
    ast.SegmentDecl: _segment,
    ast.MetricDecl: _metric,
    ast.AttributeDecl: _attribute,
    ast.EventDecl: _event,
    ast.ParamDecl: _param,
    ast.UseDecl: _use,
    ast.EarnRule: _earn,
    ast.ConvertRule: _convert,
    ast.StampRule: _stamp,
    ast.TierRule: _tier,
    ast.OnRule: _on,
    ast.WhenRule: _when,
    ast.ExpireRule: _expire,
    ast.PendingRule: _pending,
    ast.PerkDecl: _perk,
    ast.PartnerDecl: _partner,
    ast.RateDecl: _rate,
    ast.ReferralRule: _referral,
    ast.PoolRule: _pool,
}

# ------------------------------------------------------------------ rule parts

_OPTION_ORDER = {ast.IfOption: 0, ast.DuringOption: 1, ast.LimitOption: 2, ast.OnceOption: 3}


def _with_options(head: str, options: Sequence[ast.RuleOption]) -> str:
    words = [head]
    for option in sorted(options, key=lambda o: _OPTION_ORDER[type(o)]):  # sorted() is stable
        words.append(_option(option))
    return " ".join(words)


def _option(option: ast.RuleOption) -> str:
    if isinstance(option, ast.IfOption):
        return f"if {format_expr(option.condition)}"
    if isinstance(option, ast.DuringOption):
        return f"during {option.start.text}" + (f"..{option.end.text}" if option.end is not None else "")
    if isinstance(option, ast.LimitOption):
        unit = option.unit.rstrip("s") if _is_one(option.count) else option.unit
        period = option.period if isinstance(option.period, str) else _window(option.period)
        return f"limit {_count(option.count)} {unit} per {period}"
    return "once" + (f" per {_window(option.window)}" if option.window is not None else "")


def _basis(basis: ast.EarnBasis) -> str:
    if isinstance(basis, ast.OnEvent):
        return f"on {basis.event.name}"
    if isinstance(basis, ast.PerCurrency):
        text = f"per {basis.currency}"
    elif isinstance(basis, ast.PerMoney):
        text = f"per {_money(basis.money)}"
    else:
        text = f"per {basis.unit}"
    return text + (f" {_filter(basis.filter)}" if basis.filter is not None else "")


def _filter(item_filter: ast.ItemFilter) -> str:
    return f"on {item_filter.kind} {_atom(item_filter.value)}"


def _target(target: ast.GrantTarget) -> str:
    return target.name if isinstance(target, ast.Ident) else _points(target)


def _window(window: ast.Window) -> str:
    return _atom(window)


def _count(count: ast.Count) -> str:
    return _atom(count)


# ---------------------------------------------------------------- expressions

# Binding strength, loosest first; an atom binds tightest.
_OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _ATOM = range(1, 8)


def _strength(expr: ast.Expr) -> int:
    if isinstance(expr, ast.OrOp):
        return _OR
    if isinstance(expr, ast.AndOp):
        return _AND
    if isinstance(expr, ast.NotOp):
        return _NOT
    if isinstance(expr, (ast.Compare, ast.PresenceTest)):
        return _COMPARE
    if isinstance(expr, ast.BinaryOp):
        return _SUM if expr.op in "+-" else _PRODUCT
    return _ATOM


def format_expr(expr: ast.Expr) -> str:
    """An expression with the fewest parentheses that parse back to the same tree."""
    return _expr(expr, _OR)


def _expr(expr: ast.Expr, at_least: int) -> str:
    """``expr`` in a slot that the grammar fills with something binding at least ``at_least``."""
    text = _bare(expr)
    return f"({text})" if _strength(expr) < at_least else text


def _bare(expr: ast.Expr) -> str:
    # Each operand slot asks for what the grammar rule allows there:
    # or_expr: or_expr "or" and_expr; and_expr: and_expr "and" not_expr;
    # not_expr: "not" not_expr; comparison: sum op sum | sum "is" presence; sum: sum op product;
    # product: product op atom.
    if isinstance(expr, ast.OrOp):
        return f"{_expr(expr.left, _OR)} or {_expr(expr.right, _AND)}"
    if isinstance(expr, ast.AndOp):
        return f"{_expr(expr.left, _AND)} and {_expr(expr.right, _NOT)}"
    if isinstance(expr, ast.NotOp):
        return f"not {_expr(expr.operand, _NOT)}"
    if isinstance(expr, ast.Compare):
        return f"{_expr(expr.left, _SUM)} {expr.op} {_expr(expr.right, _SUM)}"
    if isinstance(expr, ast.PresenceTest):
        return f"{_expr(expr.attribute, _SUM)} is {'present' if expr.present else 'missing'}"
    if isinstance(expr, ast.BinaryOp):
        level = _strength(expr)
        return f"{_expr(expr.left, level)} {expr.op} {_expr(expr.right, level + 1)}"
    return _atom(expr)


def _atom(expr: ast.Expr) -> str:
    if isinstance(expr, ast.NumberLit):
        return _number(expr.value)
    if isinstance(expr, ast.NameRef):
        return expr.name
    if isinstance(expr, ast.MoneyLit):
        return _money(expr)
    if isinstance(expr, ast.PointsLit):
        return _points(expr)
    if isinstance(expr, ast.DurationLit):
        return f"{expr.amount}{expr.unit}"
    if isinstance(expr, ast.DateLit):
        return expr.text
    if isinstance(expr, ast.TextLit):
        return _text(expr.value)
    if isinstance(expr, ast.BoolLit):
        return "true" if expr.value else "false"
    if isinstance(expr, ast.EventAttr):
        return f"event.{expr.name}"
    if isinstance(expr, ast.AccountQuantity):
        return f"account.{expr.name}"
    raise TypeError(f"not an expression node: {type(expr).__name__}")


# -------------------------------------------------------------------- literals


def _number(value: Decimal) -> str:
    # Fixed-point, never scientific: Decimal('1E-7') was written 0.0000001.
    return format(value, "f")


def _is_one(amount: ast.NumberLit | ast.NameRef) -> bool:
    return isinstance(amount, ast.NumberLit) and amount.value == 1


def _amount(amount: ast.NumberLit | ast.NameRef) -> str:
    return _number(amount.value) if isinstance(amount, ast.NumberLit) else amount.name


def _money(money: ast.MoneyLit) -> str:
    return f"{_amount(money.amount)} {money.currency}"


def _points(points: ast.PointsLit) -> str:
    return f"{_amount(points.amount)} {'point' if _is_one(points.amount) else 'points'}"


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}


def _text(value: str) -> str:
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'
