"""``crew.Crew``: tasks shared between this process and forked workers, the results in task order."""

from __future__ import annotations

import os
import time

import pytest

from poletti.interpreter.simulate.crew import Crew


def _square_slowly(number: int) -> tuple[int, int]:
    time.sleep(0.02)  # (long enough that no one process takes every task before the others start)
    return number * number, os.getpid()


def _fail_on_three(number: int) -> int:
    if number == 3:
        raise ValueError("task three")
    return number


def test_results_come_in_task_order_and_this_process_works_too() -> None:
    with Crew(2) as crew:
        got = crew.map(_square_slowly, list(range(12)))
    assert [square for square, _ in got] == [n * n for n in range(12)]
    pids = {pid for _, pid in got}
    assert os.getpid() in pids  # the parent took tasks itself
    assert len(pids) == 2  # and one forked worker: two processes in all for --workers 2


def test_three_workers_are_two_forked_processes_and_this_one() -> None:
    with Crew(3) as crew:
        got = crew.map(_square_slowly, list(range(30)))
    assert [square for square, _ in got] == [n * n for n in range(30)]
    assert os.getpid() in {pid for _, pid in got}
    assert len({pid for _, pid in got}) <= 3


def test_one_crew_maps_again_from_the_first_task() -> None:
    with Crew(2) as crew:
        assert [s for s, _ in crew.map(_square_slowly, [1, 2, 3])] == [1, 4, 9]
        assert [s for s, _ in crew.map(_square_slowly, [4, 5])] == [16, 25]
        assert crew.map(_square_slowly, []) == []


def test_a_task_that_raises_raises_in_the_caller() -> None:
    with Crew(2) as crew, pytest.raises(ValueError, match="task three"):
        crew.map(_fail_on_three, list(range(8)))


def test_between_is_called_after_each_of_this_process_s_tasks() -> None:
    calls = []
    with Crew(2) as crew:
        got = crew.map(_square_slowly, list(range(6)), between=lambda: calls.append(1))
    mine = sum(1 for _, pid in got if pid == os.getpid())
    assert mine >= 1 and len(calls) >= mine
