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


# Failures must end a map, not hang it. Each case runs in a process of its own with a time limit, so that a
# regression fails the test instead of hanging the suite (the first version of Crew hung on the next crew
# after a failed map, in about one run in five: a worker ended while it held the task counter's lock).
_CASE_PRELUDE = """
import os, signal, sys, time
from poletti.interpreter.simulate.crew import Crew, WorkerDied
PARENT = os.getpid()
"""


def _run_case(code: str) -> str:
    import subprocess
    import sys

    ran = subprocess.run([sys.executable, "-c", _CASE_PRELUDE + code], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


def test_after_a_failed_map_the_next_crew_still_works() -> None:
    out = _run_case("""
def fail_on_three(n):
    if n == 3:
        raise ValueError("task three")
    return n

for round in range(40):
    try:
        with Crew(2) as crew:
            crew.map(fail_on_three, list(range(8)))
    except ValueError as error:
        assert str(error) == "task three"
    else:
        sys.exit("no error")
    with Crew(2) as crew:
        assert crew.map(abs, [-1, -2, -3]) == [1, 2, 3]
print("ok")
""")
    assert out == "ok\n"


def test_a_task_that_raises_in_a_worker_stops_this_process_too() -> None:
    # 400 tasks of 10 ms: if this process went on taking tasks after the worker's failure, it would run hundreds.
    out = _run_case("""
def fail_in_the_worker(n):
    if os.getpid() != PARENT:
        raise KeyError(f"worker task {n}")
    time.sleep(0.01)
    return os.getpid()

ran_here = []
with Crew(2) as crew:
    try:
        crew.map(fail_in_the_worker, list(range(400)), between=lambda: ran_here.append(1))
    except KeyError as error:
        print(type(error.__cause__).__name__, "fail_in_the_worker" in str(error.__cause__))
print(len(ran_here) < 100)
""")
    assert out == "RemoteTraceback True\nTrue\n"


def test_a_worker_that_dies_is_an_error_not_a_wait() -> None:
    out = _run_case("""
def die_in_the_worker(n):
    if os.getpid() != PARENT:
        os.kill(os.getpid(), signal.SIGKILL)  # as the system does when memory runs out
    time.sleep(0.01)
    return n

with Crew(2) as crew:
    for attempt in range(2):  # and the crew takes no more maps
        try:
            crew.map(die_in_the_worker, list(range(50)))
        except WorkerDied as error:
            print("SIGKILL" in str(error), "fewer --workers" in str(error))
""")
    assert out == "True True\nTrue True\n"


def test_an_error_that_cannot_be_sent_back_is_named() -> None:
    out = _run_case("""
class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("not picklable")

def fail_in_the_worker(n):
    if os.getpid() != PARENT:
        raise Unpicklable("the worker's own error")
    time.sleep(0.01)
    return n

with Crew(2) as crew:
    try:
        crew.map(fail_in_the_worker, list(range(50)))
    except RuntimeError as error:
        print(str(error).startswith("a worker could not send back Unpicklable: the worker's own error"))
""")
    assert out == "True\n"
