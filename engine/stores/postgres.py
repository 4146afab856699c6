"""``PostgresStore(dsn)``: the shared store — many processes and threads on one database (psycopg 3).

The tables are SQLite's (see ``sqlite``), with PostgreSQL's types, in
the connection's schema (``search_path``); ``meta.schema_version`` and the
migrations work the same way.

Two ways to keep concurrent writers from losing updates; ``mode`` picks:

* ``"lock"`` (the default, and the faster one with several writers at
  once; docs/performance.md): READ COMMITTED transactions that take
  a transaction-scoped advisory lock on the customer before reading it.
  Writers of one customer go one at a time; writers of different
  customers run side by side. Every customer transaction also holds a
  shared lock on the clock, which moving the engine clock
  (``advance_to``) takes exclusively: the clock moves between events,
  never under one.
* ``"serializable"``: SERIALIZABLE transactions and no explicit locks;
  PostgreSQL aborts one of two transactions that could not run one after
  the other, and the engine runs the aborted event again
  (``retryable``).

Either way, the same event id sent by two writers at once is inserted by
one; the other's insert fails on the primary key, the engine tries it
again and finds the receipt: a duplicate or a conflict.

Each thread has its own connection (and a forked child opens its own).
A connection lost part way rolls the event back on the server — nothing
of it is kept — and raises ``StoreError``; send the event again when the
database is back (a receipt makes that safe even if the commit had gone
through). The next call opens a new connection.
"""

from __future__ import annotations

import hashlib
import os
import threading
from contextlib import contextmanager
from typing import Any, ContextManager, Iterator

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError as err:  # pragma: no cover — exercised only where psycopg is absent
    raise ImportError("PostgresStore needs psycopg 3: pip install 'poletti[postgres]'") from err

from poletti.engine.stores.base import StoreError
from poletti.engine.stores.sql import SQLStore

SCHEMA_VERSION = 1

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    next_change BIGINT
);
CREATE INDEX IF NOT EXISTS customers_due ON customers (next_change) WHERE next_change IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    fingerprint BYTEA NOT NULL,
    content TEXT,
    applied BIGSERIAL
);
CREATE TABLE IF NOT EXISTS ledger (
    seq BIGSERIAL PRIMARY KEY,
    customer TEXT NOT NULL,
    event_id TEXT,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    points BIGINT NOT NULL,
    balance BIGINT NOT NULL,
    pending BIGINT NOT NULL,
    program TEXT NOT NULL,
    rule TEXT,
    reward TEXT,
    count BIGINT NOT NULL DEFAULT 0,
    lot TEXT,
    expires_at BIGINT,
    available_at BIGINT
);
CREATE INDEX IF NOT EXISTS ledger_customer ON ledger (customer, seq);
CREATE TABLE IF NOT EXISTS programs (
    seq BIGSERIAL PRIMARY KEY,
    hash TEXT NOT NULL,
    source TEXT NOT NULL,
    first_entry BIGINT NOT NULL,
    opened_at TEXT NOT NULL
)
"""

_MIGRATIONS: list[str] = [_SCHEMA_V1]

MODES = ("lock", "serializable")

# Advisory lock keys (64-bit). Customers' keys are hashes of their ids (two ids sharing a key only wait for
# each other); these fixed keys are outside no hash's range, but a collision costs a wait, never a wrong answer.
_SCHEMA_LOCK = 0x706F6C6574746901  # "poletti" 01: creating or migrating the tables
_CLOCK_LOCK = 0x706F6C6574746902  # the engine clock: shared by customer transactions, exclusive to move it
_PROGRAMS_LOCK = 0x706F6C6574746903

_CONNECTION_LOST = (psycopg.OperationalError, psycopg.InterfaceError)


def _lock_key(customer: str) -> int:
    digest = hashlib.blake2b(customer.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresStore(SQLStore):
    """Customer state, receipts, the schedule and the ledger in a PostgreSQL database."""

    def __init__(self, dsn: str, *, ledger: bool = True, mode: str = "lock", connect_timeout: int = 10) -> None:
        """``dsn``: a libpq connection string or ``postgresql://`` URL; ``ledger``: keep every point
        movement; ``mode``: "lock" (per-customer locks) or "serializable" (see the module docstring)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.dsn = dsn
        self.keeps_ledger = ledger
        self.mode = mode
        # In lock mode each customer has a lock of its own: the engine names, up front, every customer an
        # event changes (``transaction(customer, others)``).
        self.locks_each_customer = mode == "lock"
        self._connect_timeout = connect_timeout
        self._local = threading.local()
        self._connections: list[psycopg.Connection[Any]] = []
        self._connections_lock = threading.Lock()
        self._migrate()

    # -- connections and transactions

    def _where(self) -> str:
        # The address without a password, for messages.
        try:
            info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        except psycopg.ProgrammingError:
            return "the database"
        host, port, name = info.get("host", "localhost"), info.get("port", "5432"), info.get("dbname", "")
        return f"PostgreSQL at {host}:{port}/{name}"

    def _connection(self) -> psycopg.Connection[Any]:
        local = self._local
        connection = getattr(local, "connection", None)
        if connection is not None and (local.pid != os.getpid() or connection.closed or connection.broken):
            connection = None  # a forked child, or a connection lost earlier: open a new one
        if connection is None:
            try:
                connection = psycopg.connect(self.dsn, autocommit=True, connect_timeout=self._connect_timeout)
            except psycopg.Error as err:
                raise StoreError(f"cannot connect to {self._where()}: {str(err).strip()}") from None
            local.connection, local.pid, local.depth = connection, os.getpid(), 0
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def _execute(self, query: str, params: Any = ()) -> psycopg.Cursor[Any]:
        connection = self._connection()
        try:
            return connection.execute(query.replace("?", "%s"), params)  # psycopg's placeholder (no ? in literals)
        except _CONNECTION_LOST as err:
            raise self._lost_or(err, connection) from None

    def _executemany(self, query: str, rows: list[tuple[Any, ...]]) -> None:
        connection = self._connection()
        try:
            with connection.cursor() as cursor:
                cursor.executemany(query.replace("?", "%s"), rows)
        except _CONNECTION_LOST as err:
            raise self._lost_or(err, connection) from None

    def _lost_or(self, err: BaseException, connection: psycopg.Connection[Any]) -> BaseException:
        # A serialization failure is an OperationalError too: only a connection gone is "lost".
        return self._lost(err) if connection.broken or connection.closed else err

    def _lost(self, err: BaseException) -> StoreError:
        self._local.depth = 0
        return StoreError(f"lost the connection to {self._where()} ({str(err).strip() or type(err).__name__}): "
                          "what was under way was applied whole or not at all; send it again when the "
                          "database is back (an event already applied is recognised as a duplicate)")

    @contextmanager
    def transaction(self, customer: str | None = None, others: tuple[str, ...] = ()) -> Iterator[None]:
        """One transaction (nested calls join the outer one); ``customer`` is locked against other writers.

        ``others``: the customers the event changes besides its own (a referral's friend, a buying friend's
        referrer). All of them are locked in one order — by lock key, ascending, one statement at a time — so
        two transactions that share customers wait for each other and never deadlock.
        """
        if self.mode == "serializable":
            with self._transaction("BEGIN ISOLATION LEVEL SERIALIZABLE"):
                yield
        elif customer is not None and others:
            keys = sorted({_lock_key(customer), *(_lock_key(other) for other in others)})
            with self._transaction("BEGIN", "SELECT pg_advisory_xact_lock_shared(%s)", (_CLOCK_LOCK,), keys):
                yield
        elif customer is not None:
            with self._transaction("BEGIN", "SELECT pg_advisory_xact_lock_shared(%s), pg_advisory_xact_lock(%s)",
                                   (_CLOCK_LOCK, _lock_key(customer))):
                yield
        else:
            with self._transaction("BEGIN"):
                yield

    def _locked(self, key: int) -> ContextManager[None]:
        # Store housekeeping (the schema, the programs list): READ COMMITTED under an exclusive advisory lock,
        # whatever the mode — a serializable snapshot would be taken before the lock is granted.
        return self._transaction("BEGIN ISOLATION LEVEL READ COMMITTED", "SELECT pg_advisory_xact_lock(%s)", (key,))

    @contextmanager
    def _transaction(self, begin: str, lock: str | None = None, keys: tuple[int, ...] = (),
                     more_keys: list[int] | tuple[int, ...] = ()) -> Iterator[None]:
        connection = self._connection()
        local = self._local
        if local.depth:
            local.depth += 1
            try:
                yield
            finally:
                local.depth -= 1
            return
        try:
            connection.execute(begin)
            if lock is not None:
                connection.execute(lock, keys)
            for key in more_keys:  # in the caller's order (ascending): see ``transaction``
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        except _CONNECTION_LOST as err:
            if not connection.broken:
                connection.execute("ROLLBACK")
            raise self._lost_or(err, connection) from None
        local.depth = 1
        try:
            yield
        except BaseException as failure:
            local.depth = 0
            if not connection.broken:
                try:
                    connection.execute("ROLLBACK")
                except _CONNECTION_LOST:
                    pass  # the server rolls back a transaction whose connection is gone
            if isinstance(failure, _CONNECTION_LOST) and (connection.broken or connection.closed):
                raise self._lost(failure) from None
            raise
        local.depth = 0
        try:
            connection.execute("COMMIT")
        except _CONNECTION_LOST as err:
            raise self._lost_or(err, connection) from None

    def _migrate(self) -> None:
        with self._locked(_SCHEMA_LOCK):
            tables = {row[0] for row in self._execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}
            if "meta" not in tables and tables & {"customers", "events", "ledger"}:
                raise StoreError(f"{self._where()} has tables ({', '.join(sorted(tables))}) but is not a poletti "
                                 "store")
            self._upgrade(tables, self._where(), _MIGRATIONS, SCHEMA_VERSION)

    def applied(self) -> list[str]:
        """The ids of applied events, in the order their transactions wrote them (for checks and audits)."""
        return [row[0] for row in self._execute("SELECT id FROM events ORDER BY applied")]

    def set_meta(self, key: str, value: str) -> None:
        if self.mode == "lock":
            # Waits for every customer transaction under way (they hold the clock shared) and keeps new ones out
            # until this transaction ends: the clock never moves under an event that has read it.
            self._execute("SELECT pg_advisory_xact_lock(?)", (_CLOCK_LOCK,))
        super().set_meta(key, value)

    def _housekeeping(self) -> ContextManager[None]:
        return self._locked(_PROGRAMS_LOCK)

    def retryable(self, error: BaseException) -> bool:
        # Serialization failures and deadlocks: the transaction was rolled back whole, try it again. A unique
        # violation: another writer inserted the same event id (or a new customer) first — again, and the
        # receipt is found.
        return isinstance(error, (pg_errors.SerializationFailure, pg_errors.DeadlockDetected,
                                  pg_errors.UniqueViolation))

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()
