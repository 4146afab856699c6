"""``check`` stays near-linear in the size of the file, and refuses what is too large to check (P008).

Each test is a case that once took minutes or was quadratic: unclosed
parentheses rescanned to the end of the file, ``at`` rules compared with all
before them, every pair of tiers given to the prover, did-you-mean over
thousands of names, huge files and conditions. Nothing here times anything
(benchmarks/bench_check.py does): the tests pin what the bounded versions
answer.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poletti
from poletti.dsl import checker, parser
from poletti.dsl.diagnostics import ERROR, MAX_DIAGNOSTICS, make
from poletti.dsl.formatter import format_expr, format_text
from poletti.dsl.frontend import analyze
from poletti.dsl.parser import LineIndex, parse


def codes(text: str) -> list[str]:
    return [d.code for d in poletti.diagnose(text)]


# ------------------------------------------------------------------ P008


def test_a_file_with_too_many_statements_is_refused_where_the_limit_is_passed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parser, "MAX_STATEMENTS", 5)
    text = "".join(f"event e{i}\n" for i in range(5))
    assert codes(text) == []
    result = parse(text + "  event e5 # one too many\nevent e6\n")
    (refused,) = result.diagnostics
    assert (refused.code, refused.line, refused.column) == ("P008", 6, 3)
    assert "7 statements" in refused.message and "at most 5" in refused.message
    assert result.rule_file.statements == ()  # nothing is checked


def test_a_statement_too_long_is_refused_and_the_others_are_still_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parser, "MAX_STATEMENT_LENGTH", 100)
    condition = " and ".join(f"spend_12m > {i}" for i in range(10))
    comment = "a long comment does not count " * 10
    text = f"earn 1 point per EUR # {comment}\nsegment big when {condition}\nearn x2 if nope\n"
    found = poletti.diagnose(text)
    assert [(d.code, d.line, d.column) for d in found] == [("P008", 2, 1), ("E101", 3, 12)]
    assert "characters long" in found[0].message and "at most 100" in found[0].message


def test_a_file_with_too_much_code_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parser, "MAX_CODE_LENGTH", 100)
    text = "".join(f"earn {i} points on signup # {'comments do not count ' * 5}\n" for i in range(1, 5))
    assert codes(text) == []
    (refused,) = poletti.diagnose(text + "earn 9 points on review\nearn 10 points on review\n")
    assert (refused.code, refused.line) == ("P008", 5)


def test_a_megabyte_condition_is_refused_at_once() -> None:
    condition = " and ".join(f"spend_12m > {i}" for i in range(70_000))
    result = parse(f"earn 1 point per EUR\nsegment big when {condition}\n")
    assert [(d.code, d.line, d.column) for d in result.diagnostics] == [("P008", 2, 1)]
    assert len(result.rule_file.statements) == 1
    text = poletti.CompileError(result.diagnostics, f"earn 1 point per EUR\nsegment big when {condition}\n",
                                "big.loyalty").args[0]
    assert len(text) < 2000  # the megabyte line is shown as a window around the caret


def test_past_the_shown_diagnostics_syntax_errors_are_counted_not_explained() -> None:
    text = "".join(f"tier t{i} when spend_12m >> {i}\n" for i in range(MAX_DIAGNOSTICS + 30))
    found = parse(text).diagnostics
    assert len(found) == MAX_DIAGNOSTICS + 1
    assert all(d.code == "P001" and d.notes for d in found[:-1])  # the shown ones say what was expected
    assert found[-1].code == "E124" and "30 more" in found[-1].message and found[-1].severity == ERROR


# ------------------------------------------------------------------ the splitter


def _split_by_rescanning(text: str) -> tuple[list[tuple[int, int]], list[tuple[str, int]], list[tuple[str, int]]]:
    """The obvious splitter (the one poletti had): rescans to the end of the file after every unclosed '('."""
    chunks, comments, problems = [], [], []
    i, n, start, open_parens = 0, len(text), 0, []

    def next_line(offset: int) -> int:
        j = text.find("\n", offset)
        return n if j < 0 else j + 1

    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] not in '"\n':
                j += 2 if text[j] == "\\" and j + 1 < n and text[j + 1] != "\n" else 1
            if j >= n or text[j] != '"':
                problems.append(("P004", i))
                start, i, open_parens = next_line(i), next_line(i), []
                continue
            i = j + 1
        elif ch == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
            comments.append((text[i:j].rstrip(), i))
            i = j
        elif ch == "(":
            open_parens.append(i)
            i += 1
        elif ch == ")":
            if open_parens:
                open_parens.pop()
            i += 1
        elif ch in "\n;" and not open_parens:
            chunks.append((start, i))
            i += 1
            start = i
        else:
            i += 1
        if i >= n and open_parens:
            where = open_parens[0]
            problems.append(("P005", where))
            resume = next_line(where)
            comments = [c for c in comments if c[1] < resume]
            start, i, open_parens = resume, resume, []
    chunks.append((start, n))
    return chunks, comments, problems


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(['(', ')', '"', '\\', '#', '\n', ';', ' ', 'x', 'earn 1', '\r']), max_size=40))
def test_the_linear_splitter_cuts_as_the_rescanning_one_did(pieces: list[str]) -> None:
    text = "".join(pieces)
    chunks, comments, problems = parser._split(text, LineIndex(text))
    expected_chunks, expected_comments, expected_problems = _split_by_rescanning(text)
    comment_spans = [(c.text, c.span.start) for c in comments]
    assert comment_spans == expected_comments
    assert [(p.code, p.span.start) for p in problems] == expected_problems
    kept = [(c.start, c.end) for c in chunks]
    assert kept == [c for c in expected_chunks if c in kept] and set(kept) <= set(expected_chunks)


def test_thousands_of_unclosed_parentheses_are_each_reported_once() -> None:
    text = "".join(f"earn 1 point per EUR if (spend_12m > {i}\n" for i in range(3000))
    found = parse(text).diagnostics
    assert [d.code for d in found[:-1]] == ["P005"] * MAX_DIAGNOSTICS
    assert [d.line for d in found[:3]] == [1, 2, 3]
    assert "2950 more" in found[-1].message


# ------------------------------------------------------------------ whole-program passes


def test_at_rules_name_the_first_earlier_unconditional_rule_that_converts_first() -> None:
    text = ("reward r \"R\" value 1 EUR\nearn 1 point per EUR\nat 100 points grant r\nat 50 points grant r\n"
            "at 70 points grant r\nat 50 points grant r\nat 30 points grant r if spend_12m > 1\nat 40 points grant r\n")
    found = [(d.line, d.notes[0].split("'")[1]) for d in poletti.diagnose(text) if d.code == "W202"]
    assert found == [(5, "at 50 points"), (6, "at 50 points")]


def test_ten_thousand_falling_at_rules_hide_nothing() -> None:
    text = "reward r \"R\" value 1 EUR\nearn 1 point per EUR\n" + "".join(
        f"at {5000 - i} points grant r\n" for i in range(4000))
    assert "W202" not in codes(text)


def test_the_unreachable_tier_check_still_finds_what_people_write_in_a_huge_file() -> None:
    tiers = "".join(f"tier t{i} when spend_12m > {i * 10}\n" for i in range(3000))
    assert codes("earn 1 point per EUR\n" + tiers) == []
    # Declared from high to low before 3,000 rising tiers: each of the two is outranked (the first by the
    # second, the second by the first rising tier), and both are found although the pass stops early.
    reversed_first = "tier top when spend_12m > 100000\ntier next when spend_12m > 50000\n"
    found = [(d.code, d.line) for d in poletti.diagnose("earn 1 point per EUR\n" + reversed_first + tiers)]
    assert found == [("E128", 2), ("E128", 3)]


def test_did_you_mean_notes_are_kept_for_the_first_of_thousands_of_unknown_names() -> None:
    declared = "".join(f"segment seg_{i} when purchases_30d > 1\n" for i in range(2000))
    used = "".join(f"earn 1 point per EUR if seg_{i}x\n" for i in range(2000))
    found = [d for d in poletti.diagnose(declared + used) if d.code == "E101"]
    assert len(found) == MAX_DIAGNOSTICS
    assert found[0].notes[0] == "did you mean 'seg_0'?"


def test_the_suggestion_budget_is_shared_and_then_spent() -> None:
    state = checker._Checker(None)
    state.comparisons_left = 10
    assert state._did_you_mean("spnd", ["spend", "send"]) == "did you mean 'spend'?"
    assert state._did_you_mean("spnd", list("abcdefghij")) == ""  # cannot afford 10 more
    assert state._did_you_mean("spnd", ["spend"]) == ""  # and no later note is made


def test_an_error_inside_a_tier_is_found_by_position() -> None:
    state = checker._Checker(None)
    text = "tier a when x > 1\ntier b when y > 1\n"
    statements = parse(text).rule_file.statements
    state.diagnostics.append(make("E101", "unknown name 'y'", statements[1].condition.left.span))
    assert state._has_error_inside(statements) and not state._has_error_inside(statements[:1])


def test_random_large_programs_check_without_error() -> None:
    rng = random.Random(7)
    lines = ["reward r \"R\" value 1 EUR", "earn 1 point per EUR"]
    for i in range(1500):
        lines.append(rng.choice([
            f"segment s{i} when purchases_30d > {rng.randint(0, 9)}",
            f"earn {rng.randint(1, 5)} points per EUR on category \"c{i}\"",
            f"when visits_30d >= {rng.randint(1, 20)} grant r once per 30d",
            f"every {rng.randint(2, 9)} purchases grant r",
        ]))
    assert [d for d in poletti.diagnose("\n".join(lines)) if d.severity == ERROR] == []


# ------------------------------------------------------------------ the shapes of issue 4b


def test_twenty_thousand_tiers_are_refused_where_the_statement_limit_is_passed() -> None:
    text = "earn 1 point per EUR\n" + "".join(f"tier t{i} when spend_12m > {i}\n" for i in range(20_000))
    (refused,) = poletti.diagnose(text)
    assert (refused.code, refused.line, refused.column) == ("P008", 10_001, 1)
    assert "20,001 statements" in refused.message


def test_a_hundred_thousand_rules_are_refused_where_the_statement_limit_is_passed() -> None:
    text = "".join(f'earn 1 point per EUR on category "c{i}"\n' for i in range(100_000))
    (refused,) = poletti.diagnose(text)
    assert (refused.code, refused.line) == ("P008", 10_001)
    assert "100,000 statements" in refused.message


def test_a_megabyte_and_chain_is_refused_and_the_statements_around_it_are_checked() -> None:
    condition = " and ".join(["spend_30d > 1"] * 60_000)  # 1.08 MB
    found = poletti.diagnose(f"earn 1 point per EUR\nsegment big when {condition}\nearn x2 if nope\n")
    assert [(d.code, d.line, d.column) for d in found] == [("P008", 2, 1), ("E101", 3, 12)]


def test_ten_thousand_brackets_around_one_comparison_are_no_deeper_than_none() -> None:
    # Brackets add no level to the tree: this is a plain condition.
    text = "earn 1 point per EUR\nsegment big when " + "(" * 10_000 + "spend_30d > 1" + ")" * 10_000 + "\n"
    result = analyze(text)
    assert result.diagnostics == () and result.program is not None
    assert format_expr(result.program.segments["big"].condition) == "spend_30d > 1"


@pytest.mark.parametrize("condition", [
    " and ".join(["spend_30d > 1"] * 150),
    "(spend_30d > 1 or " * 150 + "visits_30d > 1" + ")" * 150,
    "not " * 3000 + "spend_30d > 1",
    "spend_30d" + " + 1" * 150 + " > 1",
])
def test_a_condition_past_the_nesting_limit_is_one_located_error_not_a_recursion_error(condition: str) -> None:
    found = poletti.diagnose(f"earn 1 point per EUR\nsegment big when {condition}\nearn x2 if nope\n")
    assert [(d.code, d.line, d.column) for d in found] == [("P001", 2, 1), ("E101", 3, 12)]
    assert f"nested too deeply (more than {parser.MAX_NESTING} levels)" in found[0].message


def test_a_condition_just_inside_the_nesting_limit_compiles_and_formats() -> None:
    condition = " and ".join(["spend_30d > 1"] * 90)
    program = poletti.compile(f"earn 1 point per EUR\nsegment big when {condition}\n")
    assert list(program.compiled.segment_names) == ["big"]
    formatted = format_text(f"segment big when {condition}\n").text
    assert formatted == f"segment big when {condition}\n"


def test_five_hundred_segments_declared_backwards_are_evaluated_each_after_the_one_it_reads() -> None:
    n = 500
    lines = [f"segment s{i} when s{i - 1} and purchases_30d > 0" for i in range(n - 1, 0, -1)]
    lines += ["segment s0 when spend_30d > 10", f"tier gold when s{n - 1}", "segment after_gold when tier >= gold",
              "earn 1 point per EUR"]
    program = poletti.compile("\n".join(lines) + "\n")
    assert [s.name for s in program.compiled.segments_before_tiers] == [f"s{i}" for i in range(n)]
    assert [s.name for s in program.compiled.segments_after_tiers] == ["after_gold"]
    # One purchase of 20 EUR: s0 holds, so each later segment holds in the same step (read after the one
    # before it was updated), then gold, then after_gold. Evaluated in file order only s0 would hold.
    engine = poletti.Engine(program)
    engine.process({"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00+00:00",
                    "amount": "20.00"})
    engine.process({"id": "p2", "type": "purchase", "customer": "c2", "at": "2026-01-05T10:00:00+00:00",
                    "amount": "5.00"})
    rich, poor = engine.customer("c1"), engine.customer("c2")
    assert rich.segments == {f"s{i}" for i in range(n)} | {"after_gold"} and rich.tier == "gold"
    assert poor.segments == frozenset() and poor.tier is None


def test_the_rule_graph_of_thousands_of_tiers_reads_the_tier_not_the_tier_names() -> None:
    n = 3000
    text = "earn 1 point per EUR\n" + "".join(f"tier t{i} when spend_12m > {i}\n" for i in range(n))
    text += f"earn x2 if tier >= t{n - 1}\n"
    graph = poletti.compile(text).graph
    assert sum(1 for _, data in graph.nodes(data=True) if data["kind"] == "tier") == n
    assert list(graph.successors("rule:1")) == ["tier:t0"]
    assert list(graph.predecessors("rule:1")) == ["step:5", "quantity:spend_12m"]
    assert list(graph.predecessors(f"rule:{n + 1}")) == ["step:3", "quantity:tier"]  # t2999 is a constant rank
    assert len(list(graph.successors("quantity:spend_12m"))) == n
