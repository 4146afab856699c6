"""poletti.Engine's events per second with each store, on the CDNOW-like history of bench.py's program 1.

    .venv/bin/python benchmarks/bench_stores.py                          # 20,000 events, every local store
    .venv/bin/python benchmarks/bench_stores.py --events 69659 --repeat 3
    .venv/bin/python benchmarks/bench_stores.py --postgres postgresql://user@host/db [--postgres-modes lock,serializable]

The program is ``programs/cdnow.loyalty`` (1 point per USD, a reward at 50
points, gold above 1000 USD of 12-month spend) and the events are the first
``--events`` of ``cdnow_history.generate`` — the history bench.py's
``Engine.process`` contender replays — built before any timing, as the
dicts a host sends. For each store a fresh ``poletti.Engine(program, store,
explain=False)`` gets every event through ``process``, one at a time, then
``advance_to`` the last event's time. The stores:

* ``MemoryStore()`` and ``MemoryStore(ledger=True)``;
* ``SQLiteStore(path)`` (ledger on, the default) and ``SQLiteStore(path,
  ledger=False)``, each on a new file (durability "normal": WAL,
  ``synchronous=NORMAL``);
* with ``--postgres DSN``: ``PostgresStore(dsn)`` and ``PostgresStore(dsn,
  ledger=False)``, once per ``--postgres-modes`` entry (default ``lock``).
  Each runs in a schema of its own that this script creates in that
  database and drops afterwards (the DSN's role needs CREATE on it).

A store that keeps a ledger makes the engine run the interpreter (the
ledger is written from its trace records); the others run the generated
code. The "code" column says which.

Timed: the ``process`` loop (wall: ``time.perf_counter``; CPU of this
process: ``time.process_time``, which does not include a PostgreSQL
server's work) and, on its own, the final ``advance_to``. Best of
``--repeat`` runs, each on a fresh store.

Checked before anything is printed as a result: every store's figures —
each customer's points, pending points, lifetime points, rewards and tier,
read back with ``engine.customer(id)``, and the number of rejected events —
must equal ``MemoryStore()``'s; a store that persists is also closed,
opened again and read back by a new Engine, and must still agree; a store
with a ledger must have ledger entries and a store without one none. Any
difference is printed (``DISAGREE``) and the exit status is 1.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import cdnow_history  # noqa: E402
from loops_common import end_of  # noqa: E402

import poletti  # noqa: E402

RULES = os.path.join(HERE, "programs", "cdnow.loyalty")
DEFAULT_EVENTS = 20_000

Figures = dict[str, tuple[int, int, int, dict[str, int], "str | None"]]


# ------------------------------------------------------------------ the stores


@dataclass
class StoreSpec:
    key: str
    label: str  # as a host writes it
    open: Callable[[], Any]  # a store on the same place every time (files and schemas are made by prepare)
    prepare: Callable[[], None] = lambda: None  # a fresh, empty place for a new run
    cleanup: Callable[[], None] = lambda: None  # remove what prepare made
    persistent: bool = False  # closed and opened again, it still holds the figures
    ledger: bool = False


def sqlite_spec(key: str, folder: str, ledger: bool) -> StoreSpec:
    path = os.path.join(folder, f"bench_stores-{key}.sqlite")

    def remove() -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)

    if ledger:
        return StoreSpec(key, "SQLiteStore(path)", lambda: poletti.SQLiteStore(path), remove, remove, True, True)
    return StoreSpec(key, "SQLiteStore(path, ledger=False)", lambda: poletti.SQLiteStore(path, ledger=False),
                     remove, remove, True, False)


def postgres_class() -> Any:
    """``poletti.PostgresStore``, imported only when --postgres asks for it (it needs psycopg)."""
    try:
        return poletti.PostgresStore
    except (ImportError, AttributeError) as err:
        raise SystemExit(f"bench_stores.py: --postgres needs poletti.PostgresStore and psycopg: {err}") from None


def postgres_spec(dsn: str, mode: str, ledger: bool) -> StoreSpec:
    """A PostgresStore in a schema of its own (created by prepare, dropped by cleanup) of the DSN's database."""
    store_class = postgres_class()  # first: it says what is missing when psycopg is
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    schema = f"bench_stores_{uuid.uuid4().hex[:12]}"
    options = conninfo_to_dict(dsn).get("options") or ""
    scoped = make_conninfo(dsn, options=f"{options} -c search_path={schema}".strip())

    def run(statement: sql.Composed) -> None:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(statement)

    def prepare() -> None:
        run(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        run(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))

    def cleanup() -> None:
        run(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))

    arguments = [] if ledger else ["ledger=False"]
    if mode != "lock":
        arguments.append(f"mode={mode!r}")
    label = f"PostgresStore(dsn{''.join(', ' + a for a in arguments)})"
    key = f"postgres-{mode}" + ("" if ledger else "-noledger")
    return StoreSpec(key, label, lambda: store_class(scoped, ledger=ledger, mode=mode), prepare, cleanup, True, ledger)


def local_specs(folder: str) -> list[StoreSpec]:
    return [
        StoreSpec("memory", "MemoryStore()", lambda: poletti.MemoryStore()),
        StoreSpec("memory-ledger", "MemoryStore(ledger=True)", lambda: poletti.MemoryStore(ledger=True), ledger=True),
        sqlite_spec("sqlite", folder, ledger=True),
        sqlite_spec("sqlite-noledger", folder, ledger=False),
    ]


# ------------------------------------------------------------------ one store


@dataclass
class Result:
    spec: StoreSpec
    code: str = ""
    events: int = 0
    wall: float = float("inf")
    cpu: float = float("inf")
    advance: float = float("inf")
    rejected: int = 0
    figures: Figures = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def read_figures(engine: Any) -> Figures:
    """Every customer's standing as a host reads it back."""
    figures: Figures = {}
    for customer in engine.customers():
        view = engine.customer(customer)
        figures[customer] = (view.points, view.pending_points, view.lifetime_points,
                             {name: count for name, count in view.rewards.items() if count}, view.tier)
    return figures


def differences(expected: Figures, actual: Figures, limit: int = 5) -> list[str]:
    """Which customers differ (the count, then the first ``limit``); empty when none does."""
    differing = [c for c in sorted(set(expected) | set(actual)) if expected.get(c) != actual.get(c)]
    shown = [f"{c}: MemoryStore() {expected.get(c, '(no such customer)')}, this store {actual.get(c, '(no such customer)')}"
             for c in differing[:limit]]
    return [f"{len(differing)} of {len(expected)} customers differ, e.g.:", *shown] if differing else []


def measure(spec: StoreSpec, program: Any, events: list[dict[str, Any]], end: str, repeat: int) -> Result:
    result = Result(spec, events=len(events))
    for attempt in range(repeat):
        spec.prepare()
        store = spec.open()
        try:
            engine = poletti.Engine(program, store, explain=False)
            result.code = "interpreter" if engine.runtime is None else "generated"
            process = engine.process
            rejected = 0
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            for event in events:
                try:
                    process(event)
                except poletti.EventError:
                    rejected += 1
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            advancing = time.perf_counter()
            engine.advance_to(end)
            advance = time.perf_counter() - advancing
            if wall < result.wall:
                result.wall, result.cpu, result.advance = wall, cpu, advance
            figures = read_figures(engine)
            if attempt == 0:
                result.figures, result.rejected = figures, rejected
            elif figures != result.figures or rejected != result.rejected:
                result.problems.append(f"run {attempt + 1} gave other figures than run 1")
            first = next(iter(figures), None)
            entries = len(engine.history(first)) if first is not None else 0
            if spec.ledger and not entries:
                result.problems.append(f"a store with a ledger has no ledger entries for customer {first}")
            if not spec.ledger and entries:
                result.problems.append(f"a store without a ledger has {entries} ledger entries for customer {first}")
        finally:
            store.close()
            del store
        if spec.persistent and attempt == 0:
            # What the store kept, read by a new Engine after closing it: what a host restarting would see.
            store = spec.open()
            try:
                again = read_figures(poletti.Engine(program, store, explain=False))
            finally:
                store.close()
            problems = differences(result.figures, again)
            if problems:
                result.problems += ["opened again, the store no longer gives the figures it gave:", *problems]
        spec.cleanup()
    return result


# ------------------------------------------------------------------ the run


def history(count: int, seed: int) -> list[dict[str, Any]]:
    """The first ``count`` events of the CDNOW-like history sized for them (a prefix: refunds follow their purchase).

    The generator's event count only approximates the purchases asked for,
    so the size grows by 5% until there are enough events to cut.
    """
    purchases = max(1, round(count / cdnow_history.EVENTS_PER_PURCHASE))
    while len(events := cdnow_history.generate(purchases, seed)) < count:
        purchases = math.ceil(purchases * 1.05) + 1
    return events[:count]


def print_table(results: list[Result]) -> None:
    header = (f"  {'store':<54} {'code':<11} {'events':>8} {'wall s':>8} {'CPU s':>8} {'events/s':>9} "
              f"{'÷ memory':>8} {'advance_to s':>12}")
    print(header)
    print("  " + "-" * (len(header) - 2))
    base = results[0].wall if results else None
    for result in results:
        ratio = f"{result.wall / base:>8.2f}" if base else f"{'':>8}"
        line = (f"  {result.spec.label:<54} {result.code:<11} {result.events:>8,} {result.wall:>8.3f} "
                f"{result.cpu:>8.3f} {result.events / result.wall:>9,.0f} {ratio} {result.advance:>12.3f}")
        if result.problems:
            line += "  DISAGREES (its time does not count)"
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS,
                        help=f"replay at most this many events (default {DEFAULT_EVENTS:,})")
    parser.add_argument("--seed", type=int, default=1, help="history seed (default 1)")
    parser.add_argument("--repeat", type=int, default=1, help="time each store R times, keep the best (default 1)")
    parser.add_argument("--dir", metavar="DIR", default=None,
                        help="put the SQLite files here (default: a temporary directory); files named "
                             "bench_stores-*.sqlite there are replaced")
    parser.add_argument("--postgres", metavar="DSN", default=None,
                        help="also time PostgresStore on this database (in a schema the script creates and drops)")
    parser.add_argument("--postgres-modes", default="lock", metavar="MODES",
                        help="PostgresStore modes to time, comma-separated: lock,serializable (default lock)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.repeat < 1:
        parser.error("--events and --repeat must be at least 1")
    modes = [mode for mode in args.postgres_modes.split(",") if mode]
    if not modes or set(modes) - {"lock", "serializable"}:
        parser.error("--postgres-modes takes lock, serializable or both")

    postgres: list[StoreSpec] = []
    if args.postgres:
        postgres_class()
        import psycopg

        try:  # before anything is timed: a wrong address should not cost the local stores' run first
            psycopg.connect(args.postgres, connect_timeout=10).close()
        except psycopg.Error as err:
            print(f"bench_stores.py: cannot connect to --postgres: {err}", file=sys.stderr)
            return 2
        for mode in modes:
            postgres += [postgres_spec(args.postgres, mode, ledger=True),
                         postgres_spec(args.postgres, mode, ledger=False)]

    started = time.perf_counter()
    events = history(args.events, args.seed)
    end = end_of(events)
    with open(RULES, encoding="utf-8") as stream:
        program = poletti.compile(stream.read())  # compiled once, before any clock starts
    print(f"{os.path.relpath(RULES, os.path.dirname(HERE))} on the CDNOW-like history (cdnow_history.py, seed "
          f"{args.seed}): {len(events):,} events of {len({e['customer'] for e in events}):,} customers, "
          f"{events[0]['at'][:10]} to {end[:10]} (built in {time.perf_counter() - started:.1f} s); "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; best of {args.repeat}")
    gc.collect()
    gc.freeze()  # the loaded history is not the engine's garbage (as in bench.py)

    folder = args.dir or tempfile.mkdtemp(prefix="poletti-bench-stores-")
    os.makedirs(folder, exist_ok=True)
    specs = local_specs(folder) + postgres
    results: list[Result] = []
    status = 0
    try:
        for spec in specs:
            print(f"  {spec.label} …", file=sys.stderr, end="", flush=True)
            result = measure(spec, program, events, end, args.repeat)
            print(f" {result.wall:.2f} s", file=sys.stderr)
            if results:
                reference = results[0]
                result.problems += differences(reference.figures, result.figures)
                if result.rejected != reference.rejected:
                    result.problems.append(f"{result.rejected} events rejected; MemoryStore() rejected "
                                           f"{reference.rejected}")
            results.append(result)
    finally:
        for spec in specs:
            try:
                spec.cleanup()
            except Exception as err:  # noqa: BLE001 — a cleanup failure must not hide the run's own error
                print(f"cleaning up {spec.label} failed: {err}", file=sys.stderr)
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
        gc.unfreeze()  # main may run inside a longer-lived process (the tests)

    print()
    print_table(results)
    reference = results[0]
    customers = len(reference.figures)
    gold = sum(1 for *_rest, tier in reference.figures.values() if tier)
    points = sum(figures[0] for figures in reference.figures.values())
    print(f"\n  MemoryStore()'s figures: {customers:,} customers, {points:,} points outstanding, {gold:,} gold, "
          f"{reference.rejected} events rejected")
    for result in results:
        if result.problems:
            status = 1
            print(f"\nDISAGREE: {result.spec.label}:")
            for problem in result.problems:
                print(f"  {problem}")
    if status:
        print("\nAt least one store's figures differ: the timings above mean nothing until they agree.")
    else:
        print(f"  every store agrees with MemoryStore() for every customer ({len(results)} stores)")
    if args.postgres:
        print("  (CPU s is this process's CPU time: a PostgreSQL server's work is not in it)")
    return status


if __name__ == "__main__":
    sys.exit(main())
