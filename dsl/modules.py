"""Standard-library rule modules: loading ``stdlib_rules/*.loyalty`` and expanding ``use``.

A module is an ordinary rule file that starts with ``param NAME: TYPE [= DEFAULT]``
declarations and uses the parameter names where a value belongs::

    param every: count = 10
    param reward: reward
    every every purchases grant reward

``use stamp_card with reward = free_coffee`` is replaced, in the checked
program, by the module's statements with each parameter replaced by its
argument (or default): ``every 10 purchases grant free_coffee``.

Input of ``expand``: one ``UseDecl``. Output: the expanded statements, each
with the ``Origin`` it came from, and the diagnostics about the ``use``
itself (E112 unknown module, E113 bad argument). The checker then checks the
expanded statements as if they were written at the ``use``.

Spans: every node that comes from the module file gets the span of the
``use`` statement, so whatever the checker reports about it points at the
``use`` (the checker adds a note naming the module line). Argument values
keep their own spans, so a problem with an argument (``every = 0``) points at
that argument.

Substitution rules, by the parameter's type:

* ``number`` takes a number; ``count`` a whole number; ``money`` an amount
  such as ``5 EUR`` or a bare number; ``points`` ``50 points`` or a bare
  number (``cap = 50`` in ``limit cap points per month`` means 50 points);
  ``duration`` ``30d``/``12w``/``12m``/``1y``; ``date`` a date; ``text`` a text
  in quotes; ``bool`` ``true``/``false``; ``tier`` a tier name.
* ``reward`` takes a reward name or an amount of points, like ``grant`` does
  (``use birthday_gift with reward = 100 points``).
* An item filter whose text parameter is left as the empty text ``""``
  (``on category category`` with ``category = ""``) is dropped: that is how a
  module makes a filter optional.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from decimal import Decimal
from typing import Any, Mapping

import attrs

from poletti.dsl import ast, classes
from poletti.dsl.diagnostics import Diagnostic, did_you_mean, make
from poletti.dsl.formatter import format_expr, format_statement
from poletti.dsl.parser import parse
from poletti.dsl.program import TYPE_NAMES, Type

PACKAGE = "poletti.stdlib_rules"
SUFFIX = ".loyalty"

# Statements a module may not contain: settings belong to the program that
# uses the module, and modules do not nest.
_FORBIDDEN_IN_MODULE = (ast.ProgramDecl, ast.CurrencyDecl, ast.RoundingDecl, ast.TimezoneDecl, ast.PointValueDecl,
                        ast.UseDecl)


@classes.frozen
class Module:
    """A parsed stdlib module."""

    name: str
    text: str
    params: Mapping[str, ast.ParamDecl]  # in declaration order
    statements: tuple[ast.Statement, ...]  # everything but the params
    problems: tuple[str, ...]  # why the module file itself is broken (empty for a good module)

    def line(self, number: int) -> str:
        lines = self.text.splitlines()
        return lines[number - 1].strip() if 0 < number <= len(lines) else ""


@classes.frozen
class Origin:
    """Where an expanded statement comes from: a module line, brought in by a ``use``."""

    module: str
    line: int  # line in the module file
    source: str  # that line's text, parameters and all
    use: ast.UseDecl
    expanded: str  # the statement as this ``use`` makes it, with the user's values

    def note(self) -> str:
        # The user's own values, never the module's parameter names: "every 0 purchases grant gold",
        # not "every every purchases on category category grant reward".
        return f"from module '{self.module}': {self.expanded}"


@classes.frozen
class Expansion:
    statements: tuple[tuple[ast.Statement, Origin], ...]
    diagnostics: tuple[Diagnostic, ...]


@functools.lru_cache(maxsize=1)
def available() -> tuple[str, ...]:
    """Names of the modules shipped in ``stdlib_rules/``, sorted."""
    root = importlib.resources.files(PACKAGE)
    return tuple(sorted(p.name[: -len(SUFFIX)] for p in root.iterdir() if p.name.endswith(SUFFIX)))


@functools.lru_cache(maxsize=None)
def load(name: str) -> Module | None:
    """The module called ``name``, parsed once per process; None if there is no such module."""
    if name not in available():
        return None
    text = (importlib.resources.files(PACKAGE) / f"{name}{SUFFIX}").read_text(encoding="utf-8")
    parsed = parse(text)
    problems = [f"line {d.line}: {d.code} {d.message}" for d in parsed.diagnostics]
    params: dict[str, ast.ParamDecl] = {}
    statements: list[ast.Statement] = []
    for statement in parsed.rule_file.statements:
        if isinstance(statement, ast.ParamDecl):
            if statement.name.name in params:
                problems.append(f"line {statement.span.line}: parameter '{statement.name.name}' declared twice")
            params[statement.name.name] = statement
        elif isinstance(statement, _FORBIDDEN_IN_MODULE):
            problems.append(f"line {statement.span.line}: a module cannot contain this statement")
        else:
            statements.append(statement)
    for param in params.values():
        if param.default is not None and isinstance(_conform(param.default, TYPE_NAMES[param.type_name]), str):
            problems.append(f"line {param.span.line}: the default of '{param.name.name}' is not a {param.type_name}")
    return Module(name, text, params, tuple(statements), tuple(problems))


def expand(use: ast.UseDecl) -> Expansion:
    """Replace ``use MODULE with …`` by the module's statements with the arguments substituted."""
    name = use.module.name
    module = load(name)
    if module is None:
        modules = available()
        return Expansion((), (make(
            "E112", f"there is no standard-library module '{name}'", use.module.span,
            [did_you_mean(name, modules), "the modules are: " + ", ".join(modules)],
        ),))
    if module.problems:  # a broken stdlib file: a bug in poletti, not in the user's rules
        return Expansion((), (make(
            "E112", f"module '{name}' cannot be loaded", use.module.span, module.problems,
        ),))

    problems: list[Diagnostic] = []
    values: dict[str, ast.Expr] = {}
    params = module.params
    takes = f"'{name}' takes: " + ", ".join(_describe_param(p) for p in params.values())
    for arg in use.args:
        key = arg.name.name
        if key not in params:
            problems.append(make("E113", f"module '{name}' has no parameter '{key}'", arg.name.span,
                                 [did_you_mean(key, params), takes]))
            continue
        if key in values:
            problems.append(make("E113", f"'{key}' is given twice", arg.name.span, [takes]))
            continue
        expected = TYPE_NAMES[params[key].type_name]
        conformed = _conform(arg.value, expected)
        if isinstance(conformed, str):
            problems.append(make("E113", f"'{key}' needs {_TYPE_WORDS[expected]}, not {conformed}",
                                 arg.value.span, [f"for example: {_with_arg(use, key, _example(expected, arg.value))}", takes]))
            values[key] = arg.value  # known, so it is not also reported missing
            continue
        values[key] = conformed

    relocate = _Substitution({}, use.span)
    for key, param in params.items():
        if key in values:
            continue
        if param.default is None:
            example = _EXAMPLES[TYPE_NAMES[param.type_name]]
            problems.append(make("E113", f"module '{name}' needs a value for '{key}'", use.span,
                                 [f"add it, for example: {_with_arg(use, key, example)}", takes]))
        else:
            conformed = _conform(param.default, TYPE_NAMES[param.type_name])
            assert not isinstance(conformed, str)  # checked when the module was loaded
            values[key] = relocate.rewrite(conformed)
    if problems:
        # Expanding with missing or wrong values would only repeat the same
        # mistake as other errors inside the module.
        return Expansion((), tuple(problems))

    substitution = _Substitution(values, use.span)
    expanded = []
    for statement in module.statements:
        rewritten = substitution.rewrite(statement)
        line = statement.span.line
        expanded.append((rewritten, Origin(name, line, module.line(line), use, format_statement(rewritten))))
    return Expansion(tuple(expanded), ())


def _describe_param(param: ast.ParamDecl) -> str:
    return f"{param.name.name} ({param.type_name}{', optional' if param.default is not None else ''})"


_TYPE_WORDS = {
    Type.NUMBER: "a number",
    Type.COUNT: "a whole number such as 10",
    Type.MONEY: "an amount of money such as 5 EUR",
    Type.POINTS: "an amount of points such as 50 points",
    Type.DURATION: "a length of time such as 30d, 12w, 12m or 1y",
    Type.DATE: "a date such as 2026-12-01",
    Type.BOOL: "true or false",
    Type.TEXT: 'a text in quotes such as "beans"',
    Type.TIER: "a tier name",
    Type.REWARD: "a reward name or an amount of points",
    Type.SEGMENT: "a segment name",
}


# A value of each type, for the example in an E113 note.
_EXAMPLES = {
    Type.NUMBER: "2", Type.COUNT: "10", Type.MONEY: "5 EUR", Type.POINTS: "50 points", Type.DURATION: "12m",
    Type.DATE: "2026-12-01", Type.BOOL: "true", Type.TEXT: '"beans"', Type.TIER: "gold",
    Type.REWARD: "free_coffee", Type.SEGMENT: "lapsed",
}


def _given(value: ast.Expr) -> str:
    """The argument as the user wrote it, for "needs a whole number, not 1.5"."""
    try:
        return format_expr(value)
    except TypeError:
        return "this value"


def _with_arg(use: ast.UseDecl, key: str, value: str) -> str:
    """The user's ``use`` statement with ``key = value`` in place of their value for it (or added at the end)."""
    args = [f"{a.name.name} = {value if a.name.name == key else _given(a.value)}" for a in use.args]
    if not any(a.name.name == key for a in use.args):
        args.append(f"{key} = {value}")
    return f"use {use.module.name} with " + ", ".join(args)


def _example(expected: Type, given: ast.Expr) -> str:
    """A value of the ``expected`` type for the fix: the user's own number made whole, where that is the problem."""
    if expected is Type.COUNT and isinstance(given, ast.NumberLit) and given.value > 0:
        return str(max(1, int(given.value.to_integral_value())))
    if expected is Type.POINTS and isinstance(given, ast.MoneyLit) and isinstance(given.amount, ast.NumberLit):
        return f"{format_expr(given.amount)} points"  # the user's number, in the right unit
    if expected is Type.DURATION and isinstance(given, ast.NumberLit) and _is_whole(given.value) and given.value > 0:
        return f"{int(given.value)}d"  # a bare number of days, most likely
    name = re.sub(r"[^a-z0-9_]+", "_", given.value.lower()).strip("_") if isinstance(given, ast.TextLit) else ""
    if expected in (Type.REWARD, Type.TIER, Type.SEGMENT) and re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        return name  # a name written in quotes: the same words as a name
    return _EXAMPLES[expected]


def _is_whole(value: Decimal) -> bool:
    return value == value.to_integral_value()


def _conform(value: ast.Expr, expected: Type) -> ast.Expr | str:
    """``value`` as a value of type ``expected``, or a description of what was given instead."""
    if expected is Type.BOOL and isinstance(value, ast.NameRef) and value.name in ("true", "false"):
        return ast.BoolLit(value.name == "true", value.span)
    accepted: dict[Type, tuple[type, ...]] = {
        Type.NUMBER: (ast.NumberLit,),
        Type.COUNT: (ast.NumberLit,),
        Type.MONEY: (ast.MoneyLit, ast.NumberLit),
        Type.POINTS: (ast.PointsLit, ast.NumberLit),
        Type.DURATION: (ast.DurationLit,),
        Type.DATE: (ast.DateLit,),
        Type.BOOL: (ast.BoolLit,),
        Type.TEXT: (ast.TextLit,),
        Type.TIER: (ast.NameRef,),
        Type.REWARD: (ast.NameRef, ast.PointsLit),
        Type.SEGMENT: (ast.NameRef,),
    }
    if not isinstance(value, accepted.get(expected, ())):
        return _given(value)
    if expected is Type.COUNT and isinstance(value, ast.NumberLit) and not _is_whole(value.value):
        return _given(value)
    return value


# Fields that hold a plain number (a literal's amount, a count): a parameter
# there stands for its number, `cap = 50 points` giving 50 in `limit cap points`.
_AMOUNT_SLOTS: Mapping[type, tuple[str, ...]] = {
    ast.PointsLit: ("amount",),
    ast.MoneyLit: ("amount",),
    ast.StampRule: ("count",),
    ast.LimitOption: ("count",),
}


class _Substitution:
    """Rewrites module nodes: parameters become their values, module spans become the use's."""

    def __init__(self, values: Mapping[str, ast.Expr], span: ast.Span) -> None:
        self.values = values
        self.span = span

    def rewrite(self, node: Any) -> Any:
        if isinstance(node, tuple):
            return tuple(self.rewrite(item) for item in node)
        if isinstance(node, ast.Span):
            return self.span
        if not attrs.has(type(node)):
            return node  # str, int, Decimal, bool, None
        if isinstance(node, ast.NameRef):
            return self.values.get(node.name, ast.NameRef(node.name, self.span))
        if isinstance(node, ast.PointsLit) and isinstance(self._param(node.amount), ast.PointsLit):
            return self._param(node.amount)
        if isinstance(node, ast.MoneyLit) and isinstance(self._param(node.amount), ast.MoneyLit):
            return self._param(node.amount)
        if isinstance(node, (ast.PointsLit, ast.MoneyLit)):
            number = self._param(node.amount)
            if isinstance(number, ast.NumberLit):
                return attrs.evolve(node, amount=number, span=number.span)
        changes: dict[str, Any] = {}
        for field in attrs.fields(type(node)):
            old = getattr(node, field.name)
            if field.name == "target" and isinstance(old, ast.Ident) and old.name in self.values:
                changes[field.name] = self._target(old)
            elif field.name == "filter" and isinstance(old, ast.ItemFilter) and self._is_empty_text(old.value):
                changes[field.name] = None
            elif field.name in _AMOUNT_SLOTS.get(type(node), ()) and self._param(old) is not None:
                changes[field.name] = self._amount(old)
            else:
                changes[field.name] = self.rewrite(old)
        return type(node)(**changes)

    def _amount(self, old: ast.NameRef) -> ast.NumberLit | ast.NameRef:
        """The number a parameter stands for in a slot that holds a plain number."""
        value = self._param(old)
        if isinstance(value, ast.NumberLit):
            return value
        if isinstance(value, (ast.PointsLit, ast.MoneyLit)) and isinstance(value.amount, ast.NumberLit):
            return value.amount
        return ast.NameRef(old.name, self.span)  # wrong type: the checker reports the name

    def _param(self, amount: Any) -> ast.Expr | None:
        if isinstance(amount, ast.NameRef):
            return self.values.get(amount.name)
        return None

    def _is_empty_text(self, value: Any) -> bool:
        substituted = self._param(value)
        return isinstance(substituted, ast.TextLit) and substituted.value == ""

    def _target(self, old: ast.Ident) -> ast.GrantTarget:
        value = self.values[old.name]
        if isinstance(value, ast.NameRef):
            return ast.Ident(value.name, value.span)
        if isinstance(value, ast.PointsLit):
            return value
        return ast.Ident(old.name, self.span)  # wrong type: already reported by _conform
