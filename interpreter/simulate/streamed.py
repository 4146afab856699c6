"""The event-at-a-time replay of a history file, a shard of customers at a time.

``replay_streamed(programs, path, …) -> SimulationResult | None`` is what
``poletti simulate --sequential`` runs, and what a program that pools
points by account runs (the per-customer replays do not take it: one event
changes a contact and their account). The file is streamed into shards on
disk (``spill.partition``; for pooled points by account, so that an
account's contacts share a shard), and each shard's events go, in time
order, through an ``Engine`` per program (``sequential.EventReplay``) that
holds that shard's customers only: memory holds one shard, not every
customer of the history.

Shards hold customers that share nothing — no account, no event id — so
each customer gets the very steps the whole replay gives them: their
events in time order, their time-driven changes at the month ends that
come before their next event, then the clock to the end of the whole
replay. That end (``until``, else the last accepted event) is known once
the shard holding the latest instant has been replayed: the shards are
replayed latest first, and each is taken to the end as soon as it is known
(a shard is held only while it is not: usually the first alone). The
shards' sums are added up in shard order (``replay.merge``), and the
summary is the one the whole replay gives (checked by the tests on the
examples and on random histories).

With ``workers`` (this process and forked ones, ``crew``), the processes
read the file's byte ranges side by side, then take the shards one at a
time, the largest first, each to the latest instant read (the end, unless
the latest row is refused: then every shard is replayed again to the end
the shards found), and the sums are added up in shard order, as the
per-customer replay does (``columnar``).

None: the file cannot be streamed so (standard input, referrals, customers
that share an event id, rows the whole reader would read otherwise): the
caller replays it whole (``sequential.replay_file``).
"""

from __future__ import annotations

import gc
from datetime import datetime
from typing import Any, Callable, Iterator

import numpy as np

from poletti.engine.program import Program
from poletti.engine.timecalc import from_us, to_us
from poletti.interpreter.simulate.columns import NO_INSTANT
from poletti.interpreter.simulate.crew import Crew
from poletti.interpreter.simulate.history import CsvDialect, Record, csv_dialect, detect_format
from poletti.interpreter.simulate.replay import ShardResult, collector_paused, merge
from poletti.interpreter.simulate.sequential import EventReplay, Progress
from poletti.interpreter.simulate.spill import (
    Spilled, held_records, is_parquet, load_shard, partition, release_unused, shard_count,
)
from poletti.interpreter.simulate.summary import GroupChanges, Rejected, SimulationResult, Standings


def replay_streamed(programs: list[Program], path: str, *, until_at: datetime | None, effect_at: datetime | None,
                    bool_columns: frozenset[str] = frozenset(), dialect: CsvDialect | None = None,
                    progress: Progress | None = None, on_rejected: Callable[[Rejected], None] | None = None,
                    keep_rejections: int | None = None, keep_standings: bool = True,
                    generated: bool | None = None, workers: int = 1) -> SimulationResult | None:
    """Replay a history file event at a time, a shard of customers at a time (see the module docstring).

    ``programs``: the program, then the baseline if any; ``workers``: processes in all. None: the file
    cannot be streamed so.
    """
    from poletti.interpreter.simulate.columnar import _spillable, assemble

    if not _spillable(path):
        return None
    tz = programs[0].compiled.tz
    if not is_parquet(path) and detect_format(path) == "csv":
        dialect = dialect or csv_dialect(path)
    until_us = None if until_at is None else to_us(until_at)
    by_account = any(p.compiled.pooled for p in programs)
    with collector_paused():
        if workers > 1:
            found = _replay_on_workers(workers, programs, path, tz, bool_columns, dialect, until_at, until_us,
                                       effect_at, generated, keep_standings, progress, by_account)
            if found is None:
                return None
            total, end, in_order = found
        else:
            spilled = partition(path, tz, shard_count(path, 1), until_us, dialect=dialect, bool_columns=bool_columns,
                                progress=progress, by_account=by_account)
            if spilled is None:
                return None
            with spilled:
                total, end = _replay_shards(programs, spilled, bool_columns, until_at, effect_at, generated,
                                            keep_standings, progress)
                in_order = spilled.time_ordered
    return assemble(programs, total, end, until_at, in_order, on_rejected, keep_rejections)


def _replay_shards(programs: list[Program], spilled: Spilled, bool_columns: frozenset[str],
                   until_at: datetime | None, effect_at: datetime | None, generated: bool | None,
                   keep_standings: bool, progress: Progress | None) -> tuple[ShardResult, int | None]:
    """Every shard replayed to the end of the replay and added up; and that end (µs; None: no event taken)."""
    tz = programs[0].compiled.tz
    latest = spilled.latest
    # Latest first: the end is the latest accepted instant, so it is known once no shard left has a later row.
    numbers = sorted((k for k in range(spilled.shards) if spilled.rows[k]),
                     key=lambda k: (latest[k] is None, -(latest[k] or 0)))
    end = None if until_at is None else to_us(until_at)
    known = until_at is not None
    held: list[tuple[int, _Shard]] = []  # replayed, waiting for the end
    results: dict[int, ShardResult] = {}
    done = 0
    if progress is not None:
        progress("simulate", 0, spilled.count)
    for number in numbers:
        if not known and (latest[number] is None or (end is not None and latest[number] <= end)):  # type: ignore
            known = True  # no shard left has an accepted event after `end`
            for waiting, shard in held:
                results[waiting] = shard.finish(end, keep_standings)
            held = []
            _let_go()
        shard = _Shard(programs, until_at, effect_at, generated)
        done = shard.replay.feed(_records(spilled, number, tz, bool_columns), progress, spilled.count, done)
        if known:
            results[number] = shard.finish(end, keep_standings)
            _let_go()
            continue
        last = shard.replay.last
        if last is not None and (end is None or to_us(last) > end):
            end = to_us(last)
        held.append((number, shard))
    for waiting, shard in held:
        results[waiting] = shard.finish(end, keep_standings)
    if progress is not None:
        progress("simulate", done, spilled.count)
    if not results:  # (no rows: a replay of nothing)
        return _Shard(programs, until_at, effect_at, generated).finish(end, keep_standings), end
    return merge([results[k] for k in sorted(results)]), end


# What forked workers inherit: the replay's settings (a compiled program does not travel), and a count of the
# rows they replayed, which this process shows.
_SETTINGS: tuple[Any, ...] | None = None
_DONE: Any = None


def _replay_on_workers(workers: int, programs: list[Program], path: str, tz: Any, bool_columns: frozenset[str],
                       dialect: CsvDialect | None, until_at: datetime | None, until_us: int | None,
                       effect_at: datetime | None, generated: bool | None, keep_standings: bool,
                       progress: Progress | None, by_account: bool) -> tuple[ShardResult, int | None, bool] | None:
    """The shards on ``workers`` processes (see the module docstring): their sums, the end, and whether the
    history was in time order. None: the file cannot be streamed so."""
    global _SETTINGS, _DONE
    from poletti.interpreter.simulate.columnar import _rows_done_counter, map_shards

    _SETTINGS = (programs, tz, bool_columns, until_at, effect_at, generated, keep_standings)
    _DONE = _rows_done_counter()
    try:
        with Crew(workers) as crew:
            spilled = partition(path, tz, shard_count(path, workers), until_us, parts=workers, crew=crew,
                                dialect=dialect, bool_columns=bool_columns, progress=progress,
                                by_account=by_account)
            if spilled is None:
                return None
            with spilled:
                end, numbers = spilled.latest_read(until_us), spilled.largest_first()
                while True:
                    done = map_shards(crew, _replay_shard, [(spilled, k, end) for k in numbers], spilled.count,
                                      progress, _DONE)
                    lasts = [last for _, _, last in done if last is not None]
                    found = until_us if until_us is not None else max(lasts) if lasts else None
                    if found == end:
                        results = [result for _, result, _ in done]
                        if not results:  # (no rows: a replay of nothing)
                            results = [_Shard(programs, until_at, effect_at, generated).finish(end, keep_standings)]
                        return merge(results), end, spilled.time_ordered
                    end = found  # the latest row was refused: every shard again, to the true end
                    _DONE.value = 0
    finally:
        _SETTINGS, _DONE = None, None


def _replay_shard(task: tuple[Spilled, int, int | None]) -> tuple[int, ShardResult, int | None]:
    """One shard replayed to ``end`` (in a worker); with its number and its last accepted instant (µs)."""
    assert _SETTINGS is not None
    spilled, number, end = task
    programs, tz, bool_columns, until_at, effect_at, generated, keep_standings = _SETTINGS
    shard = _Shard(programs, until_at, effect_at, generated)
    shard.replay.feed(_records(spilled, number, tz, bool_columns))
    last = shard.replay.last
    result = shard.finish(end, keep_standings)
    _let_go()
    with _DONE.get_lock():
        _DONE.value += spilled.rows[number]
    return number, result, None if last is None else to_us(last)


def _let_go() -> None:
    """Free what the shards replayed so far held. An engine's objects refer to each other (the engine, its
    store, its processor), so only the cyclic collector frees them, and it is paused for the replay
    (``collector_paused``): it is run here, over the youngest generation — what was made since the last
    shard — and the memory handed back (``release_unused``)."""
    gc.collect(0)
    release_unused()


class _Shard:
    """One shard's event-at-a-time replay, and what it adds up to once taken to the end."""

    def __init__(self, programs: list[Program], until_at: datetime | None, effect_at: datetime | None,
                 generated: bool | None) -> None:
        self.programs = programs
        self.rejections: list[tuple[int, int, bool, Rejected]] = []
        self.replay = EventReplay(programs[0], programs[1] if len(programs) > 1 else None, until_at, effect_at,
                                  generated, self._reject)

    def _reject(self, item: Rejected, instant: int | None) -> None:
        self.rejections.append((NO_INSTANT if instant is None else instant, item.row, item.rules == "baseline",
                                item))

    def finish(self, end: int | None, keep_standings: bool) -> ShardResult:
        """Every customer to ``end`` (µs), then the shard's sums (``ShardResult``); the engines are let go."""
        replay = self.replay
        replay.close(from_us(end) if end is not None else None)
        totals, standings = [], []
        for run in replay.runs:
            run_totals, figures = run.figures()
            totals.append(run_totals)
            kept = Standings()
            for customer, standing in (figures.standings or {}).items():
                kept[customer] = standing
            standings.append(kept)
            run.tracker.settle()
        groups = None
        if len(self.programs) == 2:
            groups = GroupChanges(self.programs[0])
            groups.add(standings[0], standings[1])
        replay.activity.settle()
        first, last = replay.first, replay.last
        result = ShardResult([run.tracker for run in replay.runs], totals, standings if keep_standings else None,
                             replay.activity, groups, self.rejections, replay.events, replay.after_until,
                             None if first is None else to_us(first), None if last is None else to_us(last))
        self.replay = None  # type: ignore[assignment]  # (its engines hold every state of the shard)
        return result


def _records(spilled: Spilled, number: int, tz: Any, bool_columns: frozenset[str]) -> Iterator[Record]:
    """Shard ``number``'s rows as the ``Record``s ``History.in_time_order()`` gives of them, in that order:
    file order for a history in time order, else by instant (rows without one first), then by row."""
    if spilled.records:  # JSON Lines: the records themselves (``partition_records``)
        held = held_records(spilled, number)
        if not spilled.time_ordered:
            held.sort(key=lambda item: (item[3], item[0]))
        for row, event, error, instant in held:
            yield Record(row, event, error, None if instant == NO_INSTANT else from_us(instant))
        return
    columns = load_shard(spilled, number, tz, bool_columns)
    rows, instants, errors = columns.rows, columns.instant, columns.errors
    order = np.argsort(rows, kind="stable") if spilled.time_ordered else np.lexsort((rows, instants))
    for index in order.tolist():
        error = errors.get(index)
        instant = int(instants[index])
        yield Record(int(rows[index]), None if error is not None else columns.raw(index), error,
                     None if instant == NO_INSTANT else from_us(instant))


__all__ = ["replay_streamed"]
