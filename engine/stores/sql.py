"""What the SQLite and PostgreSQL stores share: one table layout, the same queries.

A subclass supplies the connection handling — ``_execute`` and
``_executemany`` (queries are written with ``?`` placeholders; PostgreSQL's
subclass turns them into ``%s``), ``transaction`` and ``_housekeeping``
(the transaction that changes the programs list) — and its own schema.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, ContextManager, Iterable, Iterator

from poletti.engine.serial import converter
from poletti.engine.state import CustomerState
from poletti.engine.stores.base import LEDGER_COLUMNS, LedgerEntry, Receipt, StoreError, content_dict, fingerprint

_LEDGER_SELECT = f"SELECT seq, {', '.join(LEDGER_COLUMNS)} FROM ledger"
_LEDGER_INSERT = f"INSERT INTO ledger ({', '.join(LEDGER_COLUMNS)}) VALUES ({', '.join('?' * len(LEDGER_COLUMNS))})"


def _entry(row: tuple[Any, ...]) -> LedgerEntry:
    return LedgerEntry(**dict(zip(LEDGER_COLUMNS, row[1:])), seq=row[0])


class SQLStore:
    """Customer state, receipts, the schedule, the ledger, meta and programs in SQL tables."""

    shared = True  # other processes may write the same tables: the engine keeps no copy
    keeps_ledger: bool

    # -- supplied by each database's store

    def _execute(self, query: str, params: Any = ()) -> Any:
        raise NotImplementedError

    def _executemany(self, query: str, rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def _housekeeping(self) -> ContextManager[Any]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _upgrade(self, tables: set[str], where: str, migrations: list[str], latest: int) -> None:
        """Bring the tables from the version they carry to ``latest`` (inside the caller's transaction).

        ``where`` names the store in messages; ``migrations[v]`` takes a store from version v to v + 1.
        """
        version = 0
        if "meta" in tables:
            row = self._execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
        if version > latest:
            raise StoreError(f"{where} has store schema version {version}; this poletti knows up to "
                             f"{latest}: upgrade poletti to open it")
        for step in migrations[version:]:
            for statement in step.split(";"):
                if statement.strip():
                    self._execute(statement)
        SQLStore.set_meta(self, "schema_version", str(latest))  # the plain write: no store's own locking

    # -- state and schedule

    def load(self, customer: str) -> CustomerState | None:
        row = self._execute("SELECT state FROM customers WHERE id = ?", (customer,)).fetchone()
        return None if row is None else converter.structure(json.loads(row[0]), CustomerState)

    def save(self, state: CustomerState, next_change: int | None) -> None:
        text = json.dumps(converter.unstructure(state), separators=(",", ":"))
        self._execute("INSERT INTO customers (id, state, next_change) VALUES (?, ?, ?) "
                      "ON CONFLICT (id) DO UPDATE SET state = excluded.state, next_change = excluded.next_change",
                      (state.customer, text, next_change))

    def due(self, until: int) -> list[str]:
        rows = self._execute("SELECT id FROM customers WHERE next_change IS NOT NULL AND next_change <= ? "
                             "ORDER BY next_change, id", (until,))
        return [row[0] for row in rows]

    def customers(self) -> Iterator[str]:
        return iter([row[0] for row in self._execute("SELECT id FROM customers ORDER BY id")])

    # -- receipts

    def receipt(self, event_id: str) -> Receipt | None:
        row = self._execute("SELECT customer, fingerprint, content FROM events WHERE id = ?", (event_id,)).fetchone()
        if row is None:
            return None
        return Receipt(row[0], bytes(row[1]), json.loads(row[2]) if row[2] is not None else None)

    def record(self, event_id: str, customer: str, key: tuple[Any, ...]) -> None:
        self._execute("INSERT INTO events (id, customer, fingerprint, content) VALUES (?, ?, ?, ?)",
                      (event_id, customer, fingerprint(key), json.dumps(content_dict(key), ensure_ascii=False)))

    # -- ledger

    def append(self, entries: Iterable[LedgerEntry]) -> None:
        if not self.keeps_ledger:
            return
        rows = [tuple(getattr(entry, name) for name in LEDGER_COLUMNS) for entry in entries]
        if rows:
            self._executemany(_LEDGER_INSERT, rows)

    def history(self, customer: str) -> list[LedgerEntry]:
        return [_entry(row) for row in self._execute(f"{_LEDGER_SELECT} WHERE customer = ? ORDER BY seq",
                                                     (customer,))]

    def entries(self, after: int = 0, limit: int | None = None) -> list[LedgerEntry]:
        """Every customer's ledger entries after ``after`` (a seq), oldest first."""
        query, params = f"{_LEDGER_SELECT} WHERE seq > ? ORDER BY seq", (after,)
        if limit is not None:
            query, params = query + " LIMIT ?", (after, limit)
        return [_entry(row) for row in self._execute(query, params)]

    # -- meta and programs

    def get_meta(self, key: str) -> str | None:
        row = self._execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self._execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                      (key, value))

    def use_program(self, digest: str, source: str) -> None:
        with self._housekeeping():
            row = self._execute("SELECT hash FROM programs ORDER BY seq DESC LIMIT 1").fetchone()
            if row is None or row[0] != digest:
                self._execute("INSERT INTO programs (hash, source, first_entry, opened_at) "
                              "VALUES (?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM ledger), ?)",
                              (digest, source, datetime.now(timezone.utc).isoformat(timespec="seconds")))

    def programs(self) -> list[tuple[str, str, int]]:
        """Each program that ran, in order: (hash, source, the first ledger seq it produced)."""
        return [(row[0], row[1], row[2]) for row in
                self._execute("SELECT hash, source, first_entry FROM programs ORDER BY seq")]

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
