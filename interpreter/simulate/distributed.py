"""Simulate on a Dask cluster: the same shards as ``--workers``, as Dask tasks.

``simulate_dask(rules, path, address, …) -> SimulationResult`` shares the
customers out over shards by the same hash as the forked workers and runs
each shard as Dask tasks — read the shard's rows, find its last accepted
event, replay it to the end of the whole history — on ``address`` (a
scheduler such as ``tcp://10.0.0.5:8786``, or ``local`` for a cluster of
processes on this machine). The shards' sums come back and are added up
exactly as the forked workers' are, so the summary is the same, byte for
byte.

Where the data is: every worker reads the history itself, so the path must
be one every worker can open (a shared disk, or this machine with
``local``). A folder written by ``poletti generate --partitions N`` holds
each customer in one file (by that hash): then each shard reads only its
file. Any other history is read whole by every shard, which keeps its own
customers' rows.

Programs travel as their rule text and are compiled on each worker (a
compiled program holds code objects, which do not travel).
"""

from __future__ import annotations

import functools
import os
from datetime import date, datetime
from typing import Any, Callable

import numpy as np

from poletti.engine.program import Program
from poletti.engine.timecalc import to_us
from poletti.interpreter.simulate.columns import (
    NO_INSTANT, Columns, _from_table, arrange, dataset_files, dataset_partitions, load, read_parquet,
)
from poletti.interpreter.simulate.replay import ShardReplay, ShardResult, find_end, merge
from poletti.interpreter.simulate.summary import Rejected, SimulationResult, parse_instant

Progress = Callable[[str, int, "int | None"], None]


class ClusterUnavailable(Exception):
    """The Dask scheduler cannot be reached (nothing was replayed)."""


@functools.lru_cache(maxsize=8)
def _programs(texts: tuple[str, ...]) -> list[Program]:
    """The programs of a task, compiled once per worker process."""
    import poletti

    return [poletti.compile(text) for text in texts]


def _crc_shard(key: str, shards: int) -> int:
    from poletti.interpreter.simulate.columnar import shard_of

    return shard_of(key, shards)


class ShardData:
    """One shard's rows (kept on the worker that read them) and what the client needs to know of them."""

    def __init__(self, columns: Columns, ordered: bool, first: int | None, last: int | None, rows: int) -> None:
        self.columns = columns
        self.ordered = ordered  # the shard's own rows are in time order (by row number)
        self.first, self.last = first, last  # its first and last readable instants (for the global check)
        self.rows = rows  # the rows the shard's file or files hold in all


def _known_span(instants: np.ndarray) -> tuple[bool, int | None, int | None]:
    known = instants[instants != NO_INSTANT]
    if known.size == 0:
        return True, None, None
    return not bool(np.any(np.diff(known) < 0)), int(known[0]), int(known[-1])


def read_shard(path: str, number: int, shards: int, zone: str, bool_columns: frozenset[str],
               partitioned: bool, row_offset: int, dialect: Any = None) -> ShardData:
    """A shard's rows: its own file of a partitioned folder, or its customers' rows of the whole history."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    if partitioned:
        columns = _from_table(read_parquet(dataset_files(path)[number]), tz, bool_columns)
        columns.rows = columns.rows + row_offset
        ordered, first, last = _known_span(columns.instant)
        return ShardData(columns, ordered, first, last, columns.count)
    whole = load(path, tz, bool_columns=bool_columns, dialect=dialect)
    grouping = arrange(whole)
    keep = np.zeros(whole.count, dtype=bool)
    for group, key in enumerate(grouping.keys):  # customers who share an event id stay together
        if _crc_shard(key, shards) == number:
            keep[grouping.group(group)] = True
    return ShardData(whole.subset(keep), whole.in_time_order(), None, None, whole.count)


def shard_end(texts: tuple[str, ...], data: ShardData, until: int | None) -> int | None:
    """The shard's last accepted event (None: it accepts none)."""
    programs = _programs(texts)
    probe = ShardReplay(programs, until=until, effect_from=None)
    return find_end(probe, data.columns, arrange(data.columns))


def replay_shard(texts: tuple[str, ...], data: ShardData, end: int | None, until: int | None,
                 effect_from: datetime | None, keep_standings: bool = True) -> ShardResult:
    programs = _programs(texts)
    grouping = arrange(data.columns)
    replay = ShardReplay(programs, until=until, effect_from=effect_from, keep_standings=keep_standings)
    return replay.run(data.columns, grouping, np.arange(len(grouping), dtype=np.int64), end)


def simulate_dask(program: Program, path: str, address: str, *, baseline: Program | None = None,
                  until: str | date | datetime | None = None, effect_from: str | date | datetime | None = None,
                  bool_columns: frozenset[str] = frozenset(), workers: int = 2, progress: Progress | None = None,
                  on_rejected: Callable[[Rejected], None] | None = None,
                  keep_rejections: int | None = None, dialect: Any = None,
                  keep_standings: bool = True) -> SimulationResult:
    """Replay a history on a Dask cluster (see the module docstring); ``dialect`` and ``keep_standings`` as
    ``simulate_file``'s."""
    from dask.distributed import Client, LocalCluster, as_completed

    from poletti.interpreter.simulate.columnar import assemble

    if program.compiled.pooled or (baseline is not None and baseline.compiled.pooled):
        # Shared accounts join contacts the customer shards would part: the exact path, event at a time, here.
        from poletti.interpreter.simulate.sequential import replay_file

        return replay_file([program] if baseline is None else [program, baseline], path, until=until,
                           effect_from=effect_from, bool_columns=bool_columns, progress=progress,
                           on_rejected=on_rejected, keep_rejections=keep_rejections, dialect=dialect,
                           keep_standings=keep_standings)
    tz = program.compiled.tz
    until_at = parse_instant(until, tz) if until is not None else None
    effect_at = parse_instant(effect_from, tz) if effect_from is not None else None
    until_us = None if until_at is None else to_us(until_at)
    texts = (program.source,) if baseline is None else (program.source, baseline.source)
    programs = [program] if baseline is None else [program, baseline]
    partitions = dataset_partitions(path) if os.path.isdir(path) else None
    shards = partitions or max(workers, 1)
    offsets = [0] * shards
    if partitions:
        import pyarrow.parquet as pq

        counts = [pq.read_metadata(file).num_rows for file in dataset_files(path)]
        offsets = [sum(counts[:k]) for k in range(shards)]
    if address == "local":
        cluster: Any = LocalCluster(n_workers=max(workers, 1), threads_per_worker=1, processes=True,
                                    dashboard_address=None)
        client = Client(cluster)
    else:
        cluster = None
        try:
            client = Client(address, timeout="15s")
        except (OSError, TimeoutError, ValueError) as err:
            raise ClusterUnavailable(f"cannot reach the Dask scheduler at {address}: {err}") from None
    try:
        zone = program.timezone
        data = [client.submit(read_shard, path, k, shards, zone, bool_columns, partitions is not None, offsets[k],
                              dialect, pure=False) for k in range(shards)]
        if until_us is None:
            ends = client.gather([client.submit(shard_end, texts, d, None, pure=False) for d in data])
            known = [e for e in ends if e is not None]
            end = max(known) if known else None
        else:
            end = until_us
        futures = [client.submit(replay_shard, texts, d, end, until_us, effect_at, keep_standings, pure=False)
                   for d in data]
        results: list[ShardResult] = []
        done = 0
        for future in as_completed(futures):
            results.append(future.result())
            done += 1
            if progress is not None:
                progress("simulate", done, shards)
        spans = client.gather([client.submit(lambda d: (d.ordered, d.first, d.last), d, pure=False) for d in data])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    total = merge(results)
    if partitions:  # each file in order, and each one's last instant not after the next one's first
        in_order = all(ordered for ordered, _, _ in spans)
        bounds = [(first, last) for _, first, last in spans if first is not None]
        in_order = in_order and all(a[1] <= b[0] for a, b in zip(bounds, bounds[1:]))
    else:
        in_order = all(ordered for ordered, _, _ in spans)
    return assemble(programs, total, end, until_at, in_order, on_rejected, keep_rejections)
