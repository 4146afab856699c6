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

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from poletti.engine.serial import converter
from poletti.engine.state import CustomerState
from poletti.engine.stores.base import LEDGER_COLUMNS, LedgerEntry, Receipt, StoreError, content_dict, fingerprint

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



class SQLiteStore:
    """Customer state, receipts, the schedule and the ledger in one SQLite file."""

    shared = True  # other processes may write the same file: the engine keeps no copy

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
    def transaction(self, customer: str | None = None) -> Iterator[None]:
        """One write transaction (nested calls join the outer one); ``customer`` is locked with the file."""
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
            version = 0
            if "meta" in tables:
                row = connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(f"'{self.path}' has store schema version {version}; this poletti knows up to "
                                 f"{SCHEMA_VERSION}: upgrade poletti to open it")
            for step in _MIGRATIONS[version:]:
                for statement in step.split(";"):
                    if statement.strip():
                        connection.execute(statement)
            connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                               (str(SCHEMA_VERSION),))

    # -- state and schedule

    def load(self, customer: str) -> CustomerState | None:
        row = self._connection().execute("SELECT state FROM customers WHERE id = ?", (customer,)).fetchone()
        return None if row is None else converter.structure(json.loads(row[0]), CustomerState)

    def save(self, state: CustomerState, next_change: int | None) -> None:
        text = json.dumps(converter.unstructure(state), separators=(",", ":"))
        self._connection().execute(
            "INSERT INTO customers (id, state, next_change) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET state = excluded.state, next_change = excluded.next_change",
            (state.customer, text, next_change))

    def due(self, until: int) -> list[str]:
        rows = self._connection().execute(
            "SELECT id FROM customers WHERE next_change IS NOT NULL AND next_change <= ? ORDER BY next_change, id",
            (until,))
        return [row[0] for row in rows]

    def customers(self) -> Iterator[str]:
        return iter([row[0] for row in self._connection().execute("SELECT id FROM customers ORDER BY id")])

    # -- receipts

    def receipt(self, event_id: str) -> Receipt | None:
        row = self._connection().execute("SELECT customer, fingerprint, content FROM events WHERE id = ?",
                                         (event_id,)).fetchone()
        if row is None:
            return None
        return Receipt(row[0], bytes(row[1]), json.loads(row[2]) if row[2] is not None else None)

    def record(self, event_id: str, customer: str, key: tuple[Any, ...]) -> None:
        self._connection().execute(
            "INSERT INTO events (id, customer, fingerprint, content) VALUES (?, ?, ?, ?)",
            (event_id, customer, fingerprint(key), json.dumps(content_dict(key), ensure_ascii=False)))

    # -- ledger

    def append(self, entries: Iterable[LedgerEntry]) -> None:
        if not self.keeps_ledger:
            return
        rows = [tuple(getattr(entry, name) for name in LEDGER_COLUMNS) for entry in entries]
        if rows:
            self._connection().executemany(
                f"INSERT INTO ledger ({', '.join(LEDGER_COLUMNS)}) VALUES ({', '.join('?' * len(LEDGER_COLUMNS))})",
                rows)

    def history(self, customer: str) -> list[LedgerEntry]:
        rows = self._connection().execute(
            f"SELECT seq, {', '.join(LEDGER_COLUMNS)} FROM ledger WHERE customer = ? ORDER BY seq", (customer,))
        return [LedgerEntry(**dict(zip(LEDGER_COLUMNS, row[1:])), seq=row[0]) for row in rows]

    def entries(self, after: int = 0, limit: int | None = None) -> list[LedgerEntry]:
        """Every customer's ledger entries after ``after`` (a seq), oldest first."""
        query = f"SELECT seq, {', '.join(LEDGER_COLUMNS)} FROM ledger WHERE seq > ? ORDER BY seq"
        params: tuple[Any, ...] = (after,)
        if limit is not None:
            query += " LIMIT ?"
            params += (limit,)
        return [LedgerEntry(**dict(zip(LEDGER_COLUMNS, row[1:])), seq=row[0])
                for row in self._connection().execute(query, params)]

    # -- meta and programs

    def get_meta(self, key: str) -> str | None:
        row = self._connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self._connection().execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def use_program(self, digest: str, source: str) -> None:
        with self.transaction():
            connection = self._connection()
            row = connection.execute("SELECT hash FROM programs ORDER BY seq DESC LIMIT 1").fetchone()
            if row is None or row[0] != digest:
                connection.execute(
                    "INSERT INTO programs (hash, source, first_entry, opened_at) "
                    "VALUES (?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM ledger), ?)",
                    (digest, source, datetime.now(timezone.utc).isoformat(timespec="seconds")))

    def programs(self) -> list[tuple[str, str, int]]:
        """Each program that ran, in order: (hash, source, the first ledger seq it produced)."""
        return [(row[0], row[1], row[2]) for row in
                self._connection().execute("SELECT hash, source, first_entry FROM programs ORDER BY seq")]

    def retryable(self, error: BaseException) -> bool:
        # BEGIN IMMEDIATE makes writers wait their turn (up to ``timeout``): nothing to try again.
        return False

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
