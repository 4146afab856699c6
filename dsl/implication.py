"""Does one condition imply another? A sound but incomplete test, for the checker's trap checks.

``implies(a, b, segments)`` is True only when every state of a customer that
makes ``a`` true makes ``b`` true as well; False means "not shown", never
"shown not to". The checker uses it to find a tier that a later (higher
ranked) tier always outranks: ``tier gold when spend_12m > 1000`` declared
before ``tier silver when spend_12m > 300``.

What it can show:

* the same condition written twice (compared as the formatter prints it);
* a comparison of one quantity with a number inside another's range:
  ``x > 1000`` implies ``x > 300`` and ``x >= 1000``, ``x == 5`` implies
  ``x != 4``; the number may stand on either side (``1000 < x``) and may be
  money or points (``1000 EUR``); ``not`` in front of a comparison flips it;
* ``a and b`` implies each part, ``a or b`` implies what both parts imply,
  anything implies ``true``; a segment stands for its condition.

It treats numbers as real numbers, so ``visits_30d > 9`` does not imply
``visits_30d >= 10`` even though visits are whole: missing that is
harmless, claiming a false implication would not be. Conditions in tiers
and segments never read an event attribute (E125), so no value there is
ever missing and ``not (x > 1)`` is ``x <= 1``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from poletti.dsl import ast, classes
from poletti.dsl.formatter import format_expr

# How deep segments are followed into their definitions (a cycle is E127, reported elsewhere),
# how deep and/or/not are taken apart, and how many steps one question may take: conditions
# people write are far smaller, and a file written to be slow must not make `check` slow.
_MAX_SEGMENT_DEPTH = 8
_MAX_DEPTH = 24
_MAX_STEPS = 2000

_FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}
_NEGATED = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "==": "!=", "!=": "=="}


@classes.frozen
class _Bound:
    """``quantity op value``, with the quantity printed as the formatter prints it."""

    quantity: str
    op: str
    value: Decimal


class Budget:
    """Steps shared by many questions (one pass of the checker): past it every answer is "not shown".

    A file with thousands of tiers asks about millions of pairs; a budget
    for the whole pass keeps ``check`` near-linear in the file's size, and
    files people write use a tiny part of it.
    """

    def __init__(self, steps: int) -> None:
        self.steps_left = steps

    @property
    def spent(self) -> bool:
        return self.steps_left <= 0


def implies(a: Any, b: Any, segments: Mapping[str, Any], texts: dict[int, tuple[Any, str]] | None = None,
            budget: Budget | None = None) -> bool:
    """True if condition ``a`` makes condition ``b`` true in every state (see the module docstring).

    ``texts`` may be shared between calls on the same trees: it keeps each
    node's printed form, so asking about many pairs of tiers stays cheap.
    ``budget`` is shared by the calls of one pass (each call also has its own
    limit, ``_MAX_STEPS``).
    """
    if budget is not None and budget.spent:
        return False
    prover = _Prover(segments, {} if texts is None else texts)
    try:
        return prover.same(a, b) or prover.implies(a, b, 0)
    finally:
        if budget is not None:
            budget.steps_left -= 1 + _MAX_STEPS - max(prover.steps_left, 0)


class _Prover:
    """One question's search, with a budget: past it the answer is "not shown", which is always safe."""

    def __init__(self, segments: Mapping[str, Any], texts: dict[int, tuple[Any, str]]) -> None:
        self.segments = segments
        self.steps_left = _MAX_STEPS
        self.texts = texts

    def same(self, a: Any, b: Any) -> bool:
        return self.text(a) is not None and self.text(a) == self.text(b)

    def text(self, node: Any) -> str | None:
        """The node as the formatter prints it; None for what is not an expression."""
        key = id(node)
        if key not in self.texts:
            try:
                text = format_expr(node)
            except TypeError:
                text = ""
            # The node is kept with its text: while it is alive, no other node can take its id.
            self.texts[key] = (node, text)
        return self.texts[key][1] or None

    def implies(self, a: Any, b: Any, depth: int) -> bool:
        self.steps_left -= 1
        if depth > _MAX_DEPTH or self.steps_left < 0:
            return False
        a, b = _unwrap(a, self.segments, 0), _unwrap(b, self.segments, 0)
        deeper = depth + 1
        if isinstance(b, ast.BoolLit) and b.value:
            return True
        if isinstance(b, ast.AndOp):
            return self.implies(a, b.left, deeper) and self.implies(a, b.right, deeper)
        if isinstance(a, ast.OrOp):
            return self.implies(a.left, b, deeper) and self.implies(a.right, b, deeper)
        if isinstance(a, ast.AndOp) and (self.implies(a.left, b, deeper) or self.implies(a.right, b, deeper)):
            return True
        if isinstance(b, ast.OrOp) and (self.implies(a, b.left, deeper) or self.implies(a, b.right, deeper)):
            return True
        return self.same(a, b) or _bound_implies(_bound(a), _bound(b))


def _unwrap(node: Any, segments: Mapping[str, Any], depth: int) -> Any:
    """A segment name stands for its condition; ``not`` is pushed into what it negates."""
    if depth > _MAX_SEGMENT_DEPTH:
        return node
    if isinstance(node, ast.NameRef) and node.name in segments:
        return _unwrap(segments[node.name], segments, depth + 1)
    if isinstance(node, ast.NotOp):
        negated = _negate(_unwrap(node.operand, segments, depth + 1))
        return node if negated is None else _unwrap(negated, segments, depth + 1)
    return node


def _negate(node: Any) -> Any:
    """``not node`` without the ``not``, or None when that cannot be written (De Morgan, flipped comparisons)."""
    if isinstance(node, ast.NotOp):
        return node.operand
    if isinstance(node, ast.AndOp):
        return ast.OrOp(ast.NotOp(node.left, node.span), ast.NotOp(node.right, node.span), node.span)
    if isinstance(node, ast.OrOp):
        return ast.AndOp(ast.NotOp(node.left, node.span), ast.NotOp(node.right, node.span), node.span)
    if isinstance(node, ast.Compare) and _bound(node) is not None:
        return ast.Compare(_NEGATED[node.op], node.left, node.right, node.span)
    if isinstance(node, ast.BoolLit):
        return ast.BoolLit(not node.value, node.span)
    return None


def _number(node: Any) -> Decimal | None:
    """The value of a number, money or points literal."""
    if isinstance(node, (ast.MoneyLit, ast.PointsLit)):
        node = node.amount
    return node.value if isinstance(node, ast.NumberLit) else None


def _bound(node: Any) -> _Bound | None:
    """``node`` as a quantity compared with a number, the quantity on the left; None if it is not one."""
    if not isinstance(node, ast.Compare):
        return None
    right, left = _number(node.right), _number(node.left)
    if right is not None and left is None:
        return _Bound(format_expr(node.left), node.op, right)
    if left is not None and right is None:
        return _Bound(format_expr(node.right), _FLIPPED[node.op], left)
    return None


def _bound_implies(a: _Bound | None, b: _Bound | None) -> bool:
    """True if every value satisfying ``a`` satisfies ``b`` (same quantity; real numbers)."""
    if a is None or b is None or a.quantity != b.quantity:
        return False
    if a.op == "!=":
        return b.op == "!=" and a.value == b.value
    if b.op == "!=":
        return not _satisfies(b.value, a)
    low, low_open, high, high_open = _interval(a)
    if b.op in (">", ">="):
        if low is None:
            return False
        return low > b.value or (low == b.value and (b.op == ">=" or low_open))
    if b.op in ("<", "<="):
        if high is None:
            return False
        return high < b.value or (high == b.value and (b.op == "<=" or high_open))
    # b is ==: only a single point implies it
    return a.op == "==" and a.value == b.value


def _interval(bound: _Bound) -> tuple[Decimal | None, bool, Decimal | None, bool]:
    """(low, low is open, high, high is open); None for an unbounded end."""
    v, op = bound.value, bound.op
    return {
        ">": (v, True, None, False),
        ">=": (v, False, None, False),
        "<": (None, False, v, True),
        "<=": (None, False, v, False),
        "==": (v, False, v, False),
    }[op]


def _satisfies(value: Decimal, bound: _Bound) -> bool:
    """Whether ``value`` lies in ``bound``'s range."""
    return {
        ">": value > bound.value, ">=": value >= bound.value, "<": value < bound.value,
        "<=": value <= bound.value, "==": value == bound.value, "!=": value != bound.value,
    }[bound.op]
