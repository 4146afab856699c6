"""Circles of definitions (E127) and the order of step 5 (dsl/dependencies.py): plain dicts, linear, no recursion."""

from __future__ import annotations

import poletti
from poletti.dsl.dependencies import dependency_graph, status_order
from poletti.dsl.frontend import analyze


def cycles(text: str) -> list[str]:
    return [d.message.split(": ", 1)[1] for d in poletti.diagnose(text) if d.code == "E127"]


def order(text: str) -> tuple[list[str], list[str]]:
    result = analyze(text)
    assert result.program is not None, result.diagnostics
    return status_order(result.program)


def test_a_segment_defined_through_itself() -> None:
    assert cycles("segment a when a or spend_12m > 1\n") == ["segment a → segment a"]


def test_each_separate_circle_is_reported_at_its_first_definition() -> None:
    text = "segment a when b\nsegment b when a\nsegment c when d and spend_12m > 1\nsegment d when c\n"
    found = poletti.diagnose(text)
    assert [(d.code, d.line, d.column) for d in found] == [("E127", 1, 9), ("E127", 3, 9)]
    assert [d.message.split(": ", 1)[1] for d in found] == ["segment a → segment b → segment a",
                                                            "segment c → segment d → segment c"]


def test_a_web_of_circles_is_one_diagnostic_with_a_shortest_circle() -> None:
    # a, b, c and d all reach each other: one knot to untie, named by a shortest circle through a.
    text = "segment a when b\nsegment b when c\nsegment c when a and d\nsegment d when b\n"
    assert cycles(text) == ["segment a → segment c → segment b → segment a"]


def test_a_circle_through_a_tier_quotes_the_tier_rule() -> None:
    text = "segment vip when tier >= gold and spend_12m > 10\ntier gold when vip\n"
    assert cycles(text) == ["tier → segment vip → rule 'tier gold when vip' → tier gold → tier"]


def test_a_circle_through_thousands_of_segments_is_named_by_its_ends() -> None:
    n = 3000
    text = "".join(f"segment s{i} when s{(i + 1) % n} and purchases_30d > 1\n" for i in range(n))
    (message,) = cycles(text)
    assert message.startswith("segment s0 → segment s2999 → segment s2998")
    assert "(2,990 more)" in message and message.endswith("segment s1 → segment s0")


def test_a_dense_web_of_segments_is_checked_without_enumerating_its_circles() -> None:
    n = 400
    text = "".join(f"segment s{i} when " + " or ".join(f"s{(i + k) % n}" for k in range(1, 8)) + "\n"
                   for i in range(n))
    assert len(cycles(text)) == 1


def test_a_long_chain_needs_no_recursion_and_keeps_its_order() -> None:
    n = 5000
    text = "earn 1 point per EUR\nsegment s0 when spend_12m > 1\n" + "".join(
        f"segment s{i} when s{i - 1} and purchases_30d > 1\n" for i in range(1, n))
    text += f"tier gold when s{n - 1}\nsegment after when tier >= gold\n"
    before, after = order(text)
    assert before == [f"s{i}" for i in range(n)] and after == ["after"]


def test_independent_segments_keep_file_order() -> None:
    text = ("segment visitors when visits_30d > 1\nsegment recent when days_since_last_purchase < 5\n"
            "segment big when spend_12m > 100\nsegment active when streak_days > 3\n")
    assert order(text) == (["visitors", "recent", "big", "active"], [])


def test_a_segment_comes_after_the_segments_it_reads_and_after_the_tiers_if_it_reads_tier() -> None:
    text = ("segment top when loyal and tier >= gold\nsegment loyal when regular and spend_12m > 500\n"
            "segment regular when purchases_30d > 3\nsegment gold_regular when top\n"
            "tier gold when loyal\nsegment other when visits_30d > 1\n")
    assert order(text) == (["regular", "loyal", "other"], ["top", "gold_regular"])


def test_the_compiled_program_evaluates_segments_in_that_order() -> None:
    text = "segment b when a and spend_12m > 1\nsegment a when purchases_30d > 1\ntier gold when b\n" \
           "segment c when tier >= gold\n"
    program = poletti.compile(text)
    assert [s.name for s in program.compiled.segments_before_tiers] == ["a", "b"]
    assert [s.name for s in program.compiled.segments_after_tiers] == ["c"]


def test_the_dependency_graph_uses_the_rule_graph_names() -> None:
    result = analyze("segment a when tier >= gold\ntier gold when a and spend_12m > 1\n")
    assert result.program is None  # a circle
    checked = analyze("segment a when spend_12m > 1\ntier gold when a\nsegment b when tier >= gold\n").program
    assert checked is not None
    assert dependency_graph(checked) == {
        "segment:a": {"rule:0": None}, "segment:b": {}, "rule:0": {"tier:gold": None},
        "tier:gold": {"quantity:tier": None}, "quantity:tier": {"segment:b": None},
    }
