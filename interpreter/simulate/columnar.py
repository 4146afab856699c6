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

A CSV file is streamed instead (``spill``): read in blocks into customer
shards on disk, then replayed a shard at a time, so memory holds a block or
a shard, not the history. With ``workers`` (this process and forked ones:
``crew``) the processes read byte ranges of the file side by side and
then replay the shards, one task a shard taken by whichever process is
free, the largest first (so they end close together), to the latest
instant read; the shards holding it also
work out the end they give, and should the latest row be rejected, the true
end is found and the shards replayed again to it. The shards' results are
added up in shard order, whatever order they end in. Files the stream
cannot take as the whole-file reader would (irregular rows, an event id two
customers share, …) and Parquet and JSON Lines are read whole, as before: workers are
then forked after the file is read, so they share its columns without
copying them; each returns only its sums and its customers' standings.

Each customer's final standing (``--customers``, the report's
distributions) is kept only with ``keep_standings``; without it every
shard is folded into sums as it ends, so the summary's memory is one
shard's, whatever the length of the history.
"""

from __future__ import annotations

import os
import zlib
from datetime import date, datetime
from typing import Any, Callable

import numpy as np

from poletti.engine.program import Program
from poletti.engine.timecalc import from_us, to_us
from poletti.interpreter.simulate.columns import Columns, arrange, load
from poletti.interpreter.simulate.crew import Crew
from poletti.interpreter.simulate.history import STDIN, CsvDialect, HistoryError, csv_dialect, detect_format
from poletti.interpreter.simulate.spill import Spilled, is_parquet, load_shard, partition, release_unused, shard_count
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
                 generated: bool | None, keep_standings: bool = True) -> None:
        self.programs = programs
        self.columns = columns
        self.until = until
        self.effect_from = effect_from
        self.generated = generated
        self.keep_standings = keep_standings
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
        replay = ShardReplay(self.programs, until=self.until, effect_from=self.effect_from, generated=self.generated,
                             keep_standings=self.keep_standings)
        return replay.run(self.columns, self.grouping, self.shard_groups(shard, shards), self.end, tick)


# What a forked worker inherits: the job, and a counter of rows done that this process shows.
_FORKED: Job | None = None
_DONE: Any = None


def _count(rows: int) -> None:
    with _DONE.get_lock():
        _DONE.value += rows


def _run_forked(task: tuple[int, int]) -> ShardResult:
    assert _FORKED is not None
    return _FORKED.run(*task, tick=_count)


def run_sharded(job: Job, workers: int, progress: Progress | None = None) -> ShardResult:
    """The job's shards on ``workers`` processes (this one and forked ones; or here alone, for one), added up."""
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

    def report() -> None:
        if progress is not None:
            progress("simulate", _DONE.value, total)

    _FORKED, _DONE = job, _rows_done_counter()
    try:
        with Crew(workers) as crew:
            shards = crew.map(_run_forked, [(k, workers) for k in range(workers)], between=report)
    finally:
        _FORKED, _DONE = None, None
    return merge(shards)


def map_shards(crew: Crew, function: Callable[[Any], Any], tasks: list[Any], total: int,
               progress: Progress | None, counter: Any) -> list[Any]:
    """``crew.map`` of a task a shard, showing the rows replayed as the workers add them to ``counter``
    (``_rows_done_counter``'s); the results in shard order (each result starts with its shard's number)."""
    def report() -> None:
        if progress is not None:
            progress("simulate", counter.value, total)

    if progress is not None:
        progress("simulate", 0, total)
    return sorted(crew.map(function, tasks, between=report), key=lambda item: item[0])


def _rows_done_counter() -> Any:
    """A count of rows replayed that forked workers add to (made before they are forked: they inherit it)."""
    import multiprocessing  # (only with workers: one process needs none of it)

    return multiprocessing.get_context("fork").Value("q", 0)


def _spillable(path: str) -> bool:
    """Whether a history is a file (CSV, JSON Lines or Parquet) or a folder of Parquet files, which ``spill``
    streams into customer shards."""
    if path == STDIN:
        return False
    if os.path.isdir(path):
        return True
    if not os.path.isfile(path):
        return False
    try:
        return detect_format(path) in ("csv", "parquet", "jsonl")
    except HistoryError:
        return False


class ShardJob:
    """One replay of a history streamed into customer shards on disk (``spill``): each shard read on its own."""

    def __init__(self, programs: list[Program], spilled: Spilled, tz: Any, bool_columns: frozenset[str],
                 until: int | None, effect_from: datetime | None, generated: bool | None,
                 keep_standings: bool = True, *, end: Any = ...) -> None:
        """``end``: the end of the replay when known (else worked out: ``--until``, or the last accepted event)."""
        self.programs = programs
        self.spilled = spilled
        self.tz = tz
        self.bool_columns = bool_columns
        self.until = until
        self.effect_from = effect_from
        self.generated = generated
        self.keep_standings = keep_standings
        self._held: tuple[int, Columns, Any] | None = None  # the shard read last (find_end's, for the replay)
        self.end = end if end is not ... else until if until is not None else self._find_end()

    def shard(self, number: int) -> tuple[Columns, Any]:
        held = self._held
        if held is not None and held[0] == number:
            return held[1], held[2]
        self._held = None
        columns = load_shard(self.spilled, number, self.tz, self.bool_columns)
        grouping = arrange(columns)
        self._held = (number, columns, grouping)
        return columns, grouping

    def _find_end(self, among: list[int] | None = None, best: int | None = None) -> int | None:
        """The last accepted event of the whole history (of shards ``among``; ``best``: one known already): the
        latest shards' ends, until no later row is left.

        A shard's end is at most its latest instant, so the shards are tried latest first and the search
        stops at a shard whose latest instant is not after the end found (usually after one shard).
        """
        latest = self.spilled.latest
        for number in sorted((k for k in (range(self.spilled.shards) if among is None else among)
                              if latest[k] is not None), key=lambda k: -latest[k]):  # type: ignore[operator]
            if best is not None and latest[number] <= best:  # type: ignore[operator]
                break
            columns, grouping = self.shard(number)
            probe = ShardReplay(self.programs, until=self.until, effect_from=None, generated=self.generated)
            found = find_end(probe, columns, grouping)
            if found is not None and (best is None or found > best):
                best = found
        return best

    def order(self, among: list[int] | None = None) -> list[int]:
        """The shards (``among``), the one held first (it is read already)."""
        numbers = list(range(self.spilled.shards)) if among is None else list(among)
        if self._held is not None and self._held[0] in numbers:
            numbers.remove(self._held[0])
            numbers.insert(0, self._held[0])
        return numbers

    def run(self, numbers: list[int], tick: Callable[[int], None] | None = None) -> ShardResult:
        replay = ShardReplay(self.programs, until=self.until, effect_from=self.effect_from, generated=self.generated,
                             keep_standings=self.keep_standings)
        for number in numbers:
            columns, grouping = self.shard(number)
            self._held = None  # let go once replayed
            replay.run(columns, grouping, np.arange(len(grouping), dtype=np.int64), self.end, tick)
            del columns, grouping
            release_unused()
        return replay.result


# What forked workers of a spilled replay inherit: the programs and settings (a compiled program does not travel).
_SPILL_SETTINGS: tuple[Any, ...] | None = None


def _spill_job(spilled: Spilled, end: int | None) -> ShardJob:
    """A ``ShardJob`` of ``spilled`` with the settings of the replay under way (``_SPILL_SETTINGS``), to ``end``."""
    assert _SPILL_SETTINGS is not None
    return ShardJob(*_SPILL_SETTINGS[:1], spilled, *_SPILL_SETTINGS[1:], end=end)


def _replay_shard(task: tuple[Spilled, int | None, int, bool]) -> tuple[int, ShardResult, int | None]:
    """One shard replayed to ``end`` (in a worker); with ``check``, also the end the shard gives (see
    ``_simulate_spilled``), worked out first on the shard it reads anyway."""
    spilled, end, number, check = task
    job = _spill_job(spilled, end)
    own_end = job._find_end([number]) if check else None
    return number, job.run([number], tick=_count), own_end


def _simulate_spilled(programs: list[Program], path: str, tz: Any, bool_columns: frozenset[str], until: int | None,
                      effect_from: datetime | None, generated: bool | None, workers: int,
                      progress: Progress | None, dialect: CsvDialect | None = None, keep_standings: bool = True
                      ) -> tuple[ShardResult, int | None, bool] | None:
    """A CSV file streamed into customer shards and replayed shard by shard (``spill``); None: it cannot be.

    With several workers (this process and forked ones, ``Crew``), they read the file's byte ranges side by
    side, then replay the shards, each shard a task of its own (to the end they check, see below).
    """
    global _SPILL_SETTINGS, _DONE
    shards = shard_count(path, workers)
    if workers <= 1:
        spilled = partition(path, tz, shards, until, dialect=dialect, bool_columns=bool_columns, progress=progress)
        if spilled is None:
            return None
        with spilled:
            job = ShardJob(programs, spilled, tz, bool_columns, until, effect_from, generated, keep_standings)
            if progress is not None:
                progress("simulate", 0, spilled.count)
            done = 0

            def tick(rows: int) -> None:
                nonlocal done
                done += rows
                if progress is not None:
                    progress("simulate", done, spilled.count)  # type: ignore[union-attr]

            return job.run(job.order(), tick=tick), job.end, spilled.time_ordered
    _SPILL_SETTINGS = (programs, tz, bool_columns, until, effect_from, generated, keep_standings)
    _DONE = _rows_done_counter()
    # Arrow's modules imported, and its first conversions done, before the workers are forked: they inherit
    # them instead of each doing them again (about 0.07 s of CPU a worker, on cores the others are using).
    import pyarrow.ipc  # noqa: F401

    if is_parquet(path):
        import pyarrow.parquet  # noqa: F401
    else:
        import pyarrow.csv  # noqa: F401

    from poletti.interpreter.simulate import arrow_functions

    arrow_functions.warm_up()
    try:
        with Crew(workers) as crew:
            spilled = partition(path, tz, shards, until, parts=workers, crew=crew, dialect=dialect,
                                bool_columns=bool_columns, progress=progress)
            if spilled is None:
                return None
            with spilled:
                # The end of the replay is not worked out first, which would read a shard in this process
                # while the others wait: all replay to the latest instant read (the end unless the latest
                # row is rejected), and the shards holding it say the end they give; if none gives the one
                # assumed, the true end is found from there (``_find_end``) and the shards replayed again.
                end = spilled.latest_read(until)
                check = until is None and end is not None
                # A task a shard, handed out as workers come free, largest first (a fixed share of the shards
                # each ended up to a second apart). The shards are added up in their order, whatever order
                # they end in.
                numbers = spilled.largest_first()
                while True:
                    tasks = [(spilled, end, k, check and spilled.latest[k] == end) for k in numbers]
                    done = map_shards(crew, _replay_shard, tasks, spilled.count, progress, _DONE)
                    ends = [own for _, _, own in done if own is not None]
                    found = max(ends) if ends else None
                    if not check or found == end:
                        results = [result for _, result, _ in done]
                        if not results:  # (no rows: a replay of nothing)
                            results = [_spill_job(spilled, end).run([])]
                        return merge(results), end, spilled.time_ordered
                    # The latest row is rejected: the shards not checked may still hold an end after ``found``.
                    rest = [k for k in numbers if spilled.latest[k] != end]
                    end = _spill_job(spilled, None)._find_end(rest, found)
                    check = False
                    _DONE.value = 0
    finally:
        _SPILL_SETTINGS, _DONE = None, None


def simulate_file(program: Program, path: str, *, baseline: Program | None = None,
                  until: str | date | datetime | None = None, effect_from: str | date | datetime | None = None,
                  bool_columns: frozenset[str] = frozenset(), workers: int = 1, generated: bool | None = None,
                  progress: Progress | None = None, on_rejected: Callable[[Rejected], None] | None = None,
                  keep_rejections: int | None = None, dialect: CsvDialect | None = None,
                  keep_standings: bool = True) -> SimulationResult:
    """Replay a history file through ``program`` (and ``baseline``): see the module docstring.

    ``dialect``: a CSV file's delimiter and decimal mark (None: ``history.csv_dialect`` finds them).
    ``keep_standings``: keep each customer's final figures (``customer_rows()``, ``deltas()``); without
    them the result has the summary and the month series, and memory does not grow with the customers.
    (A program with shared accounts is replayed event at a time: ``sequential.replay_file``.)"""
    tz = program.compiled.tz
    until_at = parse_instant(until, tz) if until is not None else None
    effect_at = parse_instant(effect_from, tz) if effect_from is not None else None
    if progress is not None:
        progress("read", 0, None)
    programs = [program] if baseline is None else [program, baseline]
    if any(p.compiled.pooled for p in programs):
        from poletti.interpreter.simulate.sequential import replay_file

        return replay_file(programs, path, until=until, effect_from=effect_from, bool_columns=bool_columns,
                           progress=progress, on_rejected=on_rejected, keep_rejections=keep_rejections,
                           dialect=dialect, keep_standings=keep_standings, generated=generated, workers=workers)
    until_us = None if until_at is None else to_us(until_at)
    if _spillable(path):
        if not is_parquet(path) and detect_format(path) == "csv":
            dialect = dialect or csv_dialect(path)
        with collector_paused():
            spilled_run = _simulate_spilled(programs, path, tz, bool_columns, until_us, effect_at, generated,
                                            workers, progress, dialect, keep_standings)
        if spilled_run is not None:
            total, end, in_order = spilled_run
            return assemble(programs, total, end, until_at, in_order, on_rejected, keep_rejections)
    with collector_paused():
        columns = load(path, tz, bool_columns=bool_columns, dialect=dialect)
        if progress is not None:
            progress("read", columns.count, columns.count)
        job = Job(programs, columns, until_us, effect_at, generated, keep_standings)
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
    if total.groups is not None:
        summary["groups"] = total.groups.figures()
    figures = [ProgramFigures(p, total.trackers[i].series(months, p),
                              total.standings[i] if total.standings is not None else None)
               for i, p in enumerate(programs)]
    return SimulationResult(summary, figures[0], figures[1] if baseline else None, rejections, total.activity,
                            first, end, not in_time_order)
