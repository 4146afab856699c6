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
"""

from __future__ import annotations

from typing import Any, Callable

_NEXT: Any = None  # the next task to take: a lock-guarded counter, inherited by the workers (it cannot be sent)


class Crew:
    """``workers`` processes (at least 2): this one and ``workers - 1`` forked ones (see the module docstring).

    Use it as a context manager: leaving it ends the forked workers.
    """

    def __init__(self, workers: int) -> None:
        global _NEXT
        import multiprocessing  # (only with workers: one process needs none of it)

        self.workers = max(2, workers)
        context = multiprocessing.get_context("fork")
        if _NEXT is None:
            _NEXT = context.Value("q", 0)
        self._pool = context.Pool(self.workers - 1)

    def __enter__(self) -> Crew:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._pool.terminate()
        self._pool.join()

    def map(self, function: Callable[[Any], Any], tasks: list[Any],
            between: Callable[[], None] | None = None) -> list[Any]:
        """``function(task)`` of every task (taken in the order given), the results in task order.

        ``function`` must be a module's function (the workers are handed its name). ``between()``, if given, is
        called in this process after each of its own tasks and every quarter of a second while it waits.
        A task that raises raises here, once every process has stopped taking tasks.
        """
        if not tasks:
            return []
        with _NEXT.get_lock():
            _NEXT.value = 0
        others = [self._pool.apply_async(_take_tasks, (function, tasks)) for _ in range(self.workers - 1)]
        done = dict(_take_tasks(function, tasks, between))
        for pending in others:
            while not pending.ready():
                pending.wait(0.25)
                if between is not None:
                    between()
            done.update(pending.get())
        return [done[number] for number in range(len(tasks))]


def _take_tasks(function: Callable[[Any], Any], tasks: list[Any],
                between: Callable[[], None] | None = None) -> list[tuple[int, Any]]:
    """Take the next task not yet taken, run it, until none is left: (task number, result) of each one run."""
    done = []
    while True:
        with _NEXT.get_lock():
            number = _NEXT.value
            if number >= len(tasks):
                return done
            _NEXT.value = number + 1
        done.append((number, function(tasks[number])))
        if between is not None:
            between()


__all__ = ["Crew"]
