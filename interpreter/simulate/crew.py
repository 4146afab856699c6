"""Tasks shared out between this process and forked workers: ``--workers N`` is N processes in all.

``Crew(workers)`` forks ``workers - 1`` processes; ``crew.map(function,
tasks)`` runs ``function(task)`` for every task and returns the results in
task order. Each process (this one too) takes the next task not yet taken
whenever it is free, so tasks given largest first end close together.

This process works rather than waits: on two cores, two forked workers and
a waiting parent are three processes, and the second worker paid again
for what the parent had already done (its own imports, a copy of each
page of the parent's memory it wrote to). The parent still reports
progress, between its own tasks and while it waits for the others.

Failures end a map, never hang it:
- a task that raises stops every process from taking more tasks; the
  error is raised here once the others have finished the task in hand;
- a worker that dies (killed by the system when memory runs out, say)
  is noticed within a quarter of a second, and the map raises
  ``WorkerDied`` instead of waiting for a result that will never come.
The task counter is new for each crew: a worker ended while it held the
counter's lock (when an earlier crew was left by an error) cannot block a
later crew. (multiprocessing.Pool is not used: it cannot tell that a
worker died, and it replaces the worker and waits forever for the result.)
"""

from __future__ import annotations

import signal
import traceback
from typing import Any, Callable

_NEXT: Any = None  # the next task to take: a lock-guarded counter, inherited by the workers (it cannot be sent)
_WAIT_SECONDS = 0.25  # how often this process looks at the others (and calls ``between``) while it waits
_EXIT_SECONDS = 30  # how long a worker told to stop may take before it is ended (it has no task left by then)


class WorkerDied(RuntimeError):
    """A forked worker ended without sending its result."""


class RemoteTraceback(Exception):
    """The traceback of an error raised in a forked worker, as text (set as the error's ``__cause__``)."""

    def __str__(self) -> str:
        return "\n" + str(self.args[0])


class Crew:
    """``workers`` processes (at least 2): this one and ``workers - 1`` forked ones (see the module docstring).

    Use it as a context manager: leaving it ends the forked workers.
    """

    def __init__(self, workers: int) -> None:
        global _NEXT
        import multiprocessing  # (only with workers: one process needs none of it)

        self.workers = max(2, workers)
        context = multiprocessing.get_context("fork")
        _NEXT = context.Value("q", 0)  # before the fork, so that the workers inherit it
        self._members: list[tuple[Any, Any]] = []  # (process, this end of its pipe)
        self._broken: str | None = None
        for _ in range(self.workers - 1):
            here, there = context.Pipe()
            process = context.Process(target=_serve, args=(there,), daemon=True)
            process.start()
            there.close()
            self._members.append((process, here))

    def __enter__(self) -> Crew:
        return self

    def __exit__(self, kind: Any, *exc: Any) -> None:
        for process, connection in self._members:
            if kind is None and process.is_alive():
                try:
                    connection.send(None)  # done: the worker returns
                except OSError:
                    pass
            connection.close()
        for process, _ in self._members:
            process.join(timeout=_EXIT_SECONDS if kind is None else 0)
            if process.is_alive():  # (left by an error: it may be in the middle of a task)
                process.terminate()
                process.join()

    def map(self, function: Callable[[Any], Any], tasks: list[Any],
            between: Callable[[], None] | None = None) -> list[Any]:
        """``function(task)`` of every task (taken in the order given), the results in task order.

        ``function`` must be a module's function (the workers are handed its name). ``between()``, if given, is
        called in this process after each of its own tasks and every quarter of a second while it waits.
        A task that raises raises here, once every process has stopped taking tasks. A worker that dies
        raises ``WorkerDied`` here, and the crew takes no more maps.
        """
        if self._broken is not None:
            raise WorkerDied(self._broken)
        if not tasks:
            return []
        with _NEXT.get_lock():
            _NEXT.value = 0
        for _, connection in self._members:
            connection.send((function, tasks))
        failure: BaseException | None = None
        try:
            done = dict(_take_tasks(function, tasks, between))
        except Exception as error:  # (raised below, once the workers have stopped)
            failure, done = error, {}
        for process, connection in self._members:
            sent = self._result_of(process, connection, between)
            if isinstance(sent, BaseException):
                failure = failure or sent
            else:
                done.update(sent)
        if failure is not None:
            raise failure
        return [done[number] for number in range(len(tasks))]

    def _result_of(self, process: Any, connection: Any, between: Callable[[], None] | None) -> Any:
        """What one worker sent for this map: its (task number, result) pairs, or the error it raised."""
        from multiprocessing.connection import wait

        while not connection.poll():
            if process.sentinel in wait([connection, process.sentinel], _WAIT_SECONDS) and not connection.poll():
                _stop_taking_tasks()  # (the others stop: this map has failed)
                self._broken = _death_of(process)
                return WorkerDied(self._broken)
            if between is not None:
                between()
        try:
            succeeded, sent, text = connection.recv()
        except EOFError:  # (it died while sending)
            self._broken = _death_of(process)
            return WorkerDied(self._broken)
        if succeeded:
            return sent
        sent.__cause__ = RemoteTraceback(text)
        return sent


def _death_of(process: Any) -> str:
    """Why a worker ended, for the error that says so."""
    process.join(timeout=1)
    code = process.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        how = f"was killed by {name}"
        if -code == signal.SIGKILL:
            how += ("; the system kills a process this way when memory runs out,"
                    " and a run with fewer --workers needs less memory")
    else:
        how = f"exited with code {code}"
    return f"a worker process (pid {process.pid}) {how} before it sent its results"


def _serve(connection: Any) -> None:
    """A forked worker: take part in each map it is sent, until told to stop (None) or the pipe closes."""
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        function, tasks = job
        try:
            reply = (True, _take_tasks(function, tasks), "")
        except BaseException as error:  # (sent to the parent, which raises it)
            reply = (False, error, traceback.format_exc())
        try:
            connection.send(reply)
        except Exception as unsent:  # the error (or a result) cannot be pickled: say so, as text
            what = f"{type(reply[1]).__name__}: {reply[1]}" if not reply[0] else "its results"
            connection.send((False, RuntimeError(f"a worker could not send back {what} ({unsent})"), reply[2]))


def _take_tasks(function: Callable[[Any], Any], tasks: list[Any],
                between: Callable[[], None] | None = None) -> list[tuple[int, Any]]:
    """Take the next task not yet taken, run it, until none is left: (task number, result) of each one run.

    A task that raises stops every process from taking more (the map has failed).
    """
    done = []
    while True:
        with _NEXT.get_lock():
            number = _NEXT.value
            if number >= len(tasks):
                return done
            _NEXT.value = number + 1
        try:
            done.append((number, function(tasks[number])))
        except BaseException:
            _stop_taking_tasks()
            raise
        if between is not None:
            between()


def _stop_taking_tasks() -> None:
    """No process takes another task of this map."""
    with _NEXT.get_lock():
        _NEXT.value = 2**62


__all__ = ["Crew", "WorkerDied"]
