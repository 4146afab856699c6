"""``SQLiteStore(path)``: the embedded store — one file, durable, safe for threads and processes.

Schema (version 1; ``meta.schema_version`` says which a file has, and
``_MIGRATIONS`` brings an older file up to date when it is opened):

* ``customers(id, state, next_change)``: the state as JSON (the cattrs
  converter of ``engine.serial``) and the schedule ``advance_to`` reads;
* ``events(id, customer, fingerprint, content)``: the receipt of every
  applied event (in the order applied: the rowid) — the same id again is a
  duplicate or a conflict, across restarts;
* ``ledger(seq, customer, event_id, at, kind, points, balance, pending,
  program, rule, reward, count, lot, expires_at, available_at)``:
  append-only, every point movement and reward;
* ``programs(seq, hash, source, first_entry, opened_at)``: each program
  that ran, from the ledger entry it first produced;
* ``meta(key, value)``.

Every transaction is ``BEGIN IMMEDIATE``: it takes SQLite's write lock at
once, so writers (threads here, or other processes on the same file) go
one at a time and never lose an update; readers are not blocked (WAL).
Each thread has its own connection. ``synchronous=NORMAL`` in WAL mode
survives the process being killed at any point (a committed event is
kept, an uncommitted one is gone whole); ``durability="full"`` also
survives the machine losing power, at an fsync per event.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from poletti.engine.stores.base import StoreError
from poletti.engine.stores.sql import SQLStore

SCHEMA_VERSION = 1

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    next_change INTEGER
);
CREATE INDEX IF NOT EXISTS customers_due ON customers (next_change) WHERE next_change IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    content TEXT
);
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    customer TEXT NOT NULL,
    event_id TEXT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    points INTEGER NOT NULL,
    balance INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    program TEXT NOT NULL,
    rule TEXT,
    reward TEXT,
    count INTEGER NOT NULL DEFAULT 0,
    lot TEXT,
    expires_at INTEGER,
    available_at INTEGER
);
CREATE INDEX IF NOT EXISTS ledger_customer ON ledger (customer, seq);
CREATE TABLE IF NOT EXISTS programs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    hash TEXT NOT NULL,
    source TEXT NOT NULL,
    first_entry INTEGER NOT NULL,
    opened_at TEXT NOT NULL
);
"""

# From each version to the next; a file of version v runs _MIGRATIONS[v:] when opened.
_MIGRATIONS: list[str] = [_SCHEMA_V1]



class SQLiteStore(SQLStore):
    """Customer state, receipts, the schedule and the ledger in one SQLite file."""

    def __init__(self, path: str, *, ledger: bool = True, durability: str = "normal", timeout: float = 60.0) -> None:
        """``ledger``: keep every point movement; ``durability``: "normal" (survives a killed process)
        or "full" (survives power loss too: an fsync per event); ``timeout``: how long a writer waits for
        another's transaction before giving up, in seconds."""
        if durability not in ("normal", "full"):
            raise ValueError(f"durability must be 'normal' or 'full', got {durability!r}")
        self.path = os.fspath(path)
        self.keeps_ledger = ledger
        self._durability = durability.upper()
        self._timeout = timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._migrate()

    # -- connections and transactions

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._local.pid != os.getpid():
            connection = None  # a forked child must not use its parent's connection: it opens its own
        if connection is None:
            try:
                connection = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None,
                                             check_same_thread=False)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute(f"PRAGMA synchronous={self._durability}")
                connection.execute("PRAGMA foreign_keys=ON")
            except sqlite3.DatabaseError as err:
                raise StoreError(f"cannot open '{self.path}' as a poletti store: {err}") from None
            self._local.connection = connection
            self._local.pid = os.getpid()
            self._local.depth = 0
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def transaction(self, customer: str | None = None, others: tuple[str, ...] = ()) -> Iterator[None]:
        """One write transaction (nested calls join the outer one); ``customer`` (and ``others``, the customers
        the event changes besides its own) are locked with the file."""
        connection = self._connection()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        connection.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield
        except BaseException:
            self._local.depth = 0
            connection.execute("ROLLBACK")
            raise
        self._local.depth = 0
        connection.execute("COMMIT")

    def _migrate(self) -> None:
        connection = self._connection()
        with self.transaction():
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "meta" not in tables:
                raise StoreError(f"'{self.path}' is an SQLite database, but not a poletti store "
                                 f"(it has tables {', '.join(sorted(tables))})")
            self._upgrade(tables, f"'{self.path}'", _MIGRATIONS, SCHEMA_VERSION)

    def _execute(self, query: str, params: Any = ()) -> sqlite3.Cursor:
        return self._connection().execute(query, params)

    def _executemany(self, query: str, rows: list[tuple[Any, ...]]) -> None:
        self._connection().executemany(query, rows)

    def _housekeeping(self) -> Any:
        return self.transaction()

    def retryable(self, error: BaseException) -> bool:
        # BEGIN IMMEDIATE makes writers wait their turn (up to ``timeout``): nothing to try again.
        return False

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()
