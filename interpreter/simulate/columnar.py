"""Simulate a history file: read it as columns, replay customer by customer, in one process or several.

``simulate_file(program, path, …) -> SimulationResult`` is what ``poletti
simulate`` runs. It reads the file with Arrow (``columns``), works out the
end of the replay (``replay.find_end``), then replays the customer groups —
all in this process, or sharded by a hash of the customer over ``workers``
processes — and adds the shards up (``replay.merge``). Shards hold disjoint
customers and every figure is a sum over customers, so the summary is the
same, byte for byte, whatever the number of workers; and it is the summary
the event-at-a-time replay (``sequential``) gives, which the tests check on
random programs and histories.

Workers are forked after the file is read, so they share its columns
without copying them; each returns only its sums and its customers'
standings.
"""

from __future__ import annotations

import multiprocessing
import zlib
from datetime import date, datetime
from typing import Any, Callable

import numpy as np

from poletti.engine.program import Program
from poletti.engine.timecalc import from_us, to_us
from poletti.interpreter.simulate.columns import Columns, arrange, load
from poletti.interpreter.simulate.replay import (
    ShardReplay, ShardResult, collector_paused, find_end, in_replay_order, merge,
)
from poletti.interpreter.simulate.summary import (
    ProgramFigures, Rejected, SimulationResult, finish_summary, month_of, parse_instant, shown_months,
)

Progress = Callable[[str, int, "int | None"], None]


def shard_of(key: str, shards: int) -> int:
    """A stable shard for a customer (the same in every process and every run)."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % shards


class Job:
    """One replay of a file: its columns and groups, the programs and the end, ready to shard."""

    def __init__(self, programs: list[Program], columns: Columns, until: int | None, effect_from: datetime | None,
                 generated: bool | None) -> None:
        self.programs = programs
        self.columns = columns
        self.until = until
        self.effect_from = effect_from
        self.generated = generated
        self.grouping = arrange(columns)
        probe = ShardReplay(programs, until=until, effect_from=None, generated=generated)
        self.end = until if until is not None else find_end(probe, columns, self.grouping)

    def shard_groups(self, shard: int, shards: int) -> np.ndarray:
        """The group numbers of one shard (all of them for one shard)."""
        numbers = np.arange(len(self.grouping), dtype=np.int64)
        if shards == 1:
            return numbers
        keys = self.grouping.keys
        return numbers[np.array([shard_of(keys[g], shards) == shard for g in range(len(keys))], dtype=bool)]

    def run(self, shard: int = 0, shards: int = 1, tick: Callable[[int], None] | None = None) -> ShardResult:
        replay = ShardReplay(self.programs, until=self.until, effect_from=self.effect_from, generated=self.generated)
        return replay.run(self.columns, self.grouping, self.shard_groups(shard, shards), self.end, tick)


# What a forked worker inherits: the job, and a counter of rows done that the parent shows.
_FORKED: Job | None = None
_DONE: Any = None


def _count(rows: int) -> None:
    with _DONE.get_lock():
        _DONE.value += rows


def _run_forked(task: tuple[int, int]) -> ShardResult:
    assert _FORKED is not None
    return _FORKED.run(*task, tick=_count)


def run_sharded(job: Job, workers: int, progress: Progress | None = None) -> ShardResult:
    """The job's shards on ``workers`` forked processes (or here, for one), added up."""
    global _FORKED, _DONE
    total = job.columns.count
    if workers <= 1:
        done = 0

        def tick(rows: int) -> None:
            nonlocal done
            done += rows
            if progress is not None:
                progress("simulate", done, total)

        return job.run(tick=tick)
    context = multiprocessing.get_context("fork")
    _FORKED, _DONE = job, context.Value("q", 0)
    try:
        with context.Pool(workers) as pool:
            pending = pool.map_async(_run_forked, [(k, workers) for k in range(workers)], chunksize=1)
            while not pending.ready():
                pending.wait(0.25)
                if progress is not None:
                    progress("simulate", _DONE.value, total)
            shards = pending.get()
    finally:
        _FORKED, _DONE = None, None
    return merge(shards)


def simulate_file(program: Program, path: str, *, baseline: Program | None = None,
                  until: str | date | datetime | None = None, effect_from: str | date | datetime | None = None,
                  bool_columns: frozenset[str] = frozenset(), workers: int = 1, generated: bool | None = None,
                  progress: Progress | None = None, on_rejected: Callable[[Rejected], None] | None = None,
                  keep_rejections: int | None = None) -> SimulationResult:
    """Replay a history file through ``program`` (and ``baseline``): see the module docstring."""
    tz = program.compiled.tz
    until_at = parse_instant(until, tz) if until is not None else None
    effect_at = parse_instant(effect_from, tz) if effect_from is not None else None
    if progress is not None:
        progress("read", 0, None)
    with collector_paused():
        columns = load(path, tz, bool_columns=bool_columns)
        if progress is not None:
            progress("read", columns.count, columns.count)
        programs = [program] if baseline is None else [program, baseline]
        job = Job(programs, columns, None if until_at is None else to_us(until_at), effect_at, generated)
        if progress is not None:
            progress("simulate", 0, columns.count)
        total = run_sharded(job, workers, progress)
    return assemble(programs, total, job.end, until_at, columns.in_time_order(), on_rejected, keep_rejections)


def assemble(programs: list[Program], total: ShardResult, end_us: int | None, until_at: datetime | None,
             in_time_order: bool, on_rejected: Callable[[Rejected], None] | None,
             keep_rejections: int | None) -> SimulationResult:
    """The simulation's result from its shards added up: the summary, month series, activity, rejections."""
    program = programs[0]
    baseline = programs[1] if len(programs) > 1 else None
    tz = program.compiled.tz
    rejections = in_replay_order(total.rejections, in_time_order)
    if on_rejected is not None:
        for item in rejections:
            on_rejected(item)
    if keep_rejections is not None:
        rejections = rejections[:keep_rejections]
    first = from_us(total.first) if total.first is not None else None
    end = from_us(end_us) if end_us is not None and total.first is not None else until_at
    first_month = month_of(first, tz) if first is not None else None
    last_month = month_of(end, tz) if end is not None and first is not None else None
    months = shown_months(first_month, last_month, total.trackers, total.activity)
    total.activity.finish(months)
    extras: dict[str, Any] = {}
    if until_at is not None:
        extras["after_until"] = total.after_until
    extras["reordered"] = not in_time_order
    extras["period"] = {"from": first.astimezone(tz).isoformat() if first else None,
                        "to": end.astimezone(tz).isoformat() if end else None}
    extras["effect"] = total.activity.measures(first, end)
    summary = finish_summary(total.totals[0], program, total.totals[1] if baseline else None, baseline,
                             total.events, extras)
    figures = [ProgramFigures(p, total.trackers[i].series(months, p), total.standings[i])
               for i, p in enumerate(programs)]
    return SimulationResult(summary, figures[0], figures[1] if baseline else None, rejections, total.activity,
                            first, end, not in_time_order)
