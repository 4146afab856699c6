"""E128: tiers declared from high to low, and the implication test behind it.

Hand-written cases fix the message and where the check must stay quiet (keep
windows, broken conditions, correctly ordered programs); two properties
check the implication test itself: it is sound (whenever it says ``a``
implies ``b``, no value makes ``a`` true and ``b`` false), and tiers written
from lowest to highest threshold never get E128.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poletti.dsl import ast
from poletti.dsl.frontend import analyze
from poletti.dsl.implication import implies
from poletti.dsl.parser import parse

ROOT = Path(__file__).parent.parent.parent


def e128(text: str) -> list[tuple[int, int, str]]:
    return [(d.line, d.column, d.message) for d in analyze(text).diagnostics if d.code == "E128"]


def test_the_issue_example_is_an_error_that_says_to_declare_from_lowest_to_highest() -> None:
    result = analyze("tier gold when spend_12m > 1000\ntier silver when spend_12m > 300\n")
    (d,) = result.diagnostics
    assert (d.code, d.severity, d.line, d.column) == ("E128", "error", 1, 6)
    assert d.message == "tier 'gold' can never be reached: 'silver' ranks higher and holds whenever 'gold' does"
    assert d.notes == (
        "tiers declared later rank higher, so 'silver' (line 2) outranks 'gold'",
        "declare tiers from lowest to highest: put 'tier gold when spend_12m > 1000' after "
        "'tier silver when spend_12m > 300'",
    )
    assert result.program is None


@pytest.mark.parametrize("text", [
    "tier gold when spend_12m >= 1000\ntier silver when spend_12m >= 300",
    "tier gold when 1000 < spend_12m\ntier silver when spend_12m > 300 EUR",
    "tier gold when spend_12m > 1000 and visits_12m > 10\ntier silver when spend_12m > 300",
    "tier gold when spend_12m > 1000\ntier silver when spend_12m > 300 or visits_12m > 10",
    "tier gold when not (spend_12m <= 1000)\ntier silver when spend_12m > 300",
    "segment big when spend_12m > 1000\ntier gold when big\ntier silver when spend_12m > 300",
    "tier gold when spend_12m > 1000\ntier silver when true",
    "tier gold when points == 500\ntier silver when points != 400",
    "tier gold when spend_12m > 1000 keep 12m\ntier silver when spend_12m > 300 keep 1y",
    "tier gold when spend_12m > 1000 keep 30d\ntier silver when spend_12m > 300 keep 2m",
])
def test_a_tier_implied_by_a_later_one_is_unreachable(text: str) -> None:
    gold_line = next(n for n, line in enumerate(text.splitlines(), start=1) if line.startswith("tier gold"))
    assert [line for line, _, _ in e128(text)] == [gold_line]


@pytest.mark.parametrize("text", [
    "tier silver when spend_12m > 300\ntier gold when spend_12m > 1000",          # lowest first: right
    "tier gold when spend_12m > 1000\ntier silver when visits_12m > 3",           # different quantities
    "tier gold when spend_12m > 1000\ntier silver when spend_12m < 300",          # disjoint
    "tier gold when spend_12m > 300\ntier silver when spend_12m > 300 and visits_12m > 1",
    "tier gold when visits_30d > 9\ntier silver when visits_30d >= 10",           # whole numbers: not shown
    "tier gold when spend_12m > 1000 keep 12m\ntier silver when spend_12m > 300",  # gold's keep outlasts
    "tier gold when spend_12m > 1000 keep 12m\ntier silver when spend_12m > 300 keep 6m",
    "tier gold when spend_12m > 1000 keep 1m\ntier silver when spend_12m > 300 keep 30d",
    "tier gold when spend_12m > 1000 or visits_12m > 10\ntier silver when spend_12m > 300",
    "tier gold when spend_12m > 100 points\ntier silver when spend_12m > 3",     # broken: E103 only
    "tier gold when false\ntier silver when spend_12m > 3",                      # W202 only
])
def test_no_e128_where_the_lower_tier_can_be_reached_or_nothing_is_shown(text: str) -> None:
    assert e128(text) == []


SHIPPED = sorted(ROOT.glob("examples/**/*.loyalty")) + sorted(
    p for p in (ROOT / "tests" / "data").glob("**/*.loyalty") if p.name != "E128.loyalty")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_programs_have_no_e128(path: Path) -> None:
    assert e128(path.read_text(encoding="utf-8", errors="replace")) == []


# ------------------------------------------------------------------ properties

QUANTITIES = ["spend_12m", "visits_30d"]
OPS = [">", ">=", "<", "<=", "==", "!="]
numbers = st.integers(0, 6).map(lambda n: Decimal(n * 50))


@st.composite
def conditions(draw: st.DrawFn, depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        quantity, op, value = draw(st.sampled_from(QUANTITIES)), draw(st.sampled_from(OPS)), draw(numbers)
        flipped = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}
        return (f"{value} {flipped[op]} {quantity}" if draw(st.booleans()) else f"{quantity} {op} {value}")
    kind = draw(st.sampled_from(["and", "or", "not"]))
    if kind == "not":
        return f"not ({draw(conditions(depth - 1))})"
    return f"({draw(conditions(depth - 1))}) {kind} ({draw(conditions(depth - 1))})"


def condition_of(text: str) -> Any:
    (segment,) = parse(f"segment s when {text}").rule_file.statements
    assert isinstance(segment, ast.SegmentDecl)
    return segment.condition


def evaluate(node: Any, values: dict[str, Decimal]) -> bool:
    if isinstance(node, ast.AndOp):
        return evaluate(node.left, values) and evaluate(node.right, values)
    if isinstance(node, ast.OrOp):
        return evaluate(node.left, values) or evaluate(node.right, values)
    if isinstance(node, ast.NotOp):
        return not evaluate(node.operand, values)
    assert isinstance(node, ast.Compare)
    left, right = (values[n.name] if isinstance(n, ast.NameRef) else n.value for n in (node.left, node.right))
    return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right,
            "==": left == right, "!=": left != right}[node.op]


# Every threshold, and a point on either side of each: enough to separate any two of these conditions.
SAMPLES = sorted({Decimal(n * 50) + d for n in range(7) for d in (Decimal(-1), Decimal(0), Decimal(1))})


@settings(max_examples=300, deadline=None)
@given(conditions(), conditions())
def test_implication_is_sound(a_text: str, b_text: str) -> None:
    a, b = condition_of(a_text), condition_of(b_text)
    if not implies(a, b, {}):
        return
    for x in SAMPLES:
        for y in SAMPLES:
            values = {"spend_12m": x, "visits_30d": y}
            assert not evaluate(a, values) or evaluate(b, values), (a_text, b_text, values)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=2, max_size=5, unique=True), st.sampled_from([">", ">="]))
def test_tiers_from_lowest_to_highest_threshold_are_never_unreachable(thresholds: list[int], op: str) -> None:
    lines = [f"tier t{i} when spend_12m {op} {n}" for i, n in enumerate(sorted(thresholds))]
    assert e128("\n".join(lines)) == []
    reversed_lines = [f"tier t{i} when spend_12m {op} {n}" for i, n in enumerate(sorted(thresholds, reverse=True))]
    assert [line for line, _, _ in e128("\n".join(reversed_lines))] == list(range(1, len(thresholds)))
