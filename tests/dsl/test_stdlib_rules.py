"""The standard-library modules: each one used, and what it expands to.

Expansions are compared with hand-written rule text through ``shape``
(span-free), so each test reads as "this ``use`` means exactly these rules".
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from poletti.dsl import ast, modules
from poletti.dsl.frontend import analyze
from poletti.dsl.parser import parse
from poletti.dsl.program import TYPE_NAMES, CheckedProgram, Type
from program_strategies import shape


TESTED = {"stamp_card", "welcome_bonus", "birthday_gift", "win_back", "review_points"}


def checked(text: str) -> CheckedProgram:
    result = analyze(text)
    assert result.program is not None, [(d.code, d.message) for d in result.diagnostics]
    return result.program


def expands_to(use: str, expected: str, prelude: str = "") -> CheckedProgram:
    """Check ``prelude + use``; the statements from the use must equal ``expected`` parsed."""
    program = checked(prelude + use)
    from_module = [s for s in program.statements if s in program.origins]
    wanted = parse(expected)
    assert wanted.diagnostics == ()
    assert [shape(s) for s in from_module] == [shape(s) for s in wanted.rule_file.statements]
    return program


def warnings(text: str) -> list[str]:
    return [d.code for d in analyze(text).diagnostics]


# ------------------------------------------------------------------ the library itself


def test_every_module_has_a_test() -> None:
    assert set(modules.available()) == TESTED


@pytest.mark.parametrize("name", sorted(TESTED))
def test_module_loads_cleanly_and_documents_its_parameters(name: str) -> None:
    module = modules.load(name)
    assert module is not None and module.problems == ()
    assert modules.load(name) is module  # parsed once per process
    header = module.text.split("\nparam", 1)[0]
    assert header.startswith(f"# {name}: ")
    assert f"use {name} with" in header
    for param in module.params:
        assert re.search(rf"^#\s+{param}\s", header, re.MULTILINE), f"{name}: parameter {param} is not explained"
        assert module.params[param].type_name in TYPE_NAMES


def test_an_unknown_module_loads_as_none() -> None:
    assert modules.load("no_such_module") is None


# ------------------------------------------------------------------ stamp_card


def test_stamp_card_defaults_to_ten_purchases() -> None:
    expands_to("use stamp_card with reward = free_coffee",
               "every 10 purchases grant free_coffee", prelude='reward free_coffee "Free coffee"\n')


def test_stamp_card_in_a_category() -> None:
    program = expands_to('use stamp_card with every = 8, reward = free_bag, category = "beans"',
                         'every 8 purchases on category "beans" grant free_bag', prelude="reward free_bag\n")
    assert program.rewards["free_bag"].implicit is False


def test_stamp_card_of_points_and_an_implicit_reward_warning() -> None:
    expands_to("use stamp_card with every = 5, reward = 50 points", "every 5 purchases grant 50 points")
    assert warnings("use stamp_card with reward = free_cofee") == ["W201"]


def test_stamp_card_argument_spans_point_into_the_user_file() -> None:
    text = "reward free_coffee\nuse stamp_card with every = 8, reward = free_coffee"
    program = checked(text)
    stamp = program.statements[1]
    assert isinstance(stamp, ast.StampRule) and isinstance(stamp.count, ast.NumberLit)
    assert (stamp.count.span.line, stamp.count.span.column) == (2, 29)
    assert (stamp.span.line, stamp.span.column) == (2, 1)  # module nodes take the use's span
    assert program.types[stamp.count] is Type.COUNT


# ------------------------------------------------------------------ welcome_bonus


def test_welcome_bonus() -> None:
    expands_to("use welcome_bonus with points = 100", "earn 100 points on signup")
    expands_to("use welcome_bonus with points = 100 points", "earn 100 points on signup")
    expands_to("use welcome_bonus", "earn 50 points on signup")


# ------------------------------------------------------------------ birthday_gift


def test_birthday_gift() -> None:
    expands_to("use birthday_gift with reward = birthday_cake", "on birthday grant birthday_cake",
               prelude='reward birthday_cake "Birthday cake" value 4 EUR\n')
    expands_to("use birthday_gift with reward = 100 points", "on birthday grant 100 points")


def test_birthday_gift_needs_a_reward() -> None:
    result = analyze("use birthday_gift")
    assert [(d.code, d.message) for d in result.diagnostics] == [
        ("E113", "module 'birthday_gift' needs a value for 'reward'")]


# ------------------------------------------------------------------ win_back


def test_win_back_declares_the_lapsed_segment_and_grants_once_per_window() -> None:
    program = expands_to(
        "use win_back with days = 90, reward = comeback_coffee, once_per = 6m",
        "segment lapsed when days_since_last_purchase > 90\nwhen lapsed grant comeback_coffee once per 6m",
        prelude="reward comeback_coffee\n",
    )
    assert set(program.segments) == {"lapsed"}
    assert program.builtins["days_since_last_purchase"].type is Type.COUNT


def test_win_back_defaults_and_its_segment_is_usable() -> None:
    expands_to("use win_back with reward = 200 points",
               "segment lapsed when days_since_last_purchase > 60\nwhen lapsed grant 200 points once per 12m")
    assert warnings("use win_back with reward = 200 points\nearn 1 point per EUR\nearn x2 if lapsed") == []


# ------------------------------------------------------------------ review_points


def test_review_points_caps_per_calendar_month() -> None:
    expands_to("use review_points with points = 20, cap = 60",
               "earn 20 points on review limit 60 points per month")
    expands_to("use review_points with cap = 60 points", "earn 10 points on review limit 60 points per month")
    expands_to("use review_points", "earn 10 points on review limit 50 points per month")


def test_a_zero_cap_points_at_the_argument() -> None:
    text = "use review_points with cap = 0"
    result = analyze(text)
    assert [(d.code, d.line, d.column) for d in result.diagnostics] == [("E117", 1, 30)]
    assert "from module 'review_points': earn 10 points on review limit 0 points per month" in result.diagnostics[0].notes


# ------------------------------------------------------------------ together


def test_all_modules_in_one_program() -> None:
    text = (
        'reward free_coffee "Free coffee" value 2.80 EUR\n'
        "earn 1 point per EUR\n"
        "use stamp_card with reward = free_coffee\n"
        "use welcome_bonus with points = 100\n"
        "use birthday_gift with reward = free_coffee\n"
        "use win_back with reward = free_coffee\n"
        "use review_points\n"
    )
    result = analyze(text)
    assert result.diagnostics == ()
    program = result.program
    assert program is not None
    kinds: list[Any] = [type(s).__name__ for s in program.statements]
    assert kinds == ["RewardDecl", "EarnRule", "StampRule", "EarnRule", "OnRule", "SegmentDecl", "WhenRule",
                     "EarnRule"]
    assert {o.module for o in program.origins.values()} == TESTED
