"""A memory store kept in a file: ``save(store, path)`` and ``restore(path)``.

The file is an SQLite store (``SQLiteStore``'s schema), so a snapshot can
also be opened as a database (``poletti customer ID --db snapshot.db``), and
any SQLite store's file can be restored into memory. ``save`` writes a new
file beside the target and renames it over it, so a crash while saving
leaves the previous snapshot whole.
"""

from __future__ import annotations

import json
import os
import tempfile

from poletti.engine.serial import converter
from poletti.engine.state import CustomerState
from poletti.engine.stores.base import LEDGER_COLUMNS, content_dict, content_key_of, fingerprint
from poletti.engine.stores.memory import MemoryStore
from poletti.engine.stores.sqlite import SQLiteStore


_LEDGER_KEY = "snapshot_ledger"  # whether the saved memory store kept a ledger


def save(store: object, path: str) -> None:
    """Write a memory store's whole contents to ``path`` (replaced atomically)."""
    if not isinstance(store, MemoryStore):
        raise TypeError(f"save() keeps a memory store in a file; a {type(store).__name__} keeps itself already")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".poletti-snapshot-", suffix=".db", dir=folder)
    os.close(handle)
    os.unlink(temporary)  # SQLite makes the file itself
    try:
        target = SQLiteStore(temporary, ledger=store.keeps_ledger, durability="full")
        try:
            with store.transaction(), target.transaction():
                states, schedule, receipts, meta, entries, programs = store.contents()
                connection = target._connection()
                connection.executemany(
                    "INSERT INTO customers (id, state, next_change) VALUES (?, ?, ?)",
                    ((customer, json.dumps(converter.unstructure(state), separators=(",", ":")),
                      schedule.get(customer)) for customer, state in states.items()))
                connection.executemany(
                    "INSERT INTO events (id, customer, fingerprint, content) VALUES (?, ?, ?, ?)",
                    ((event_id, customer, fingerprint(key), json.dumps(content_dict(key), ensure_ascii=False))
                     for event_id, (customer, key) in receipts.items()))
                for key, value in meta.items():
                    target.set_meta(key, value)
                target.set_meta(_LEDGER_KEY, "on" if store.keeps_ledger else "off")
                connection.executemany(
                    f"INSERT INTO ledger (seq, {', '.join(LEDGER_COLUMNS)}) "
                    f"VALUES (?, {', '.join('?' * len(LEDGER_COLUMNS))})",
                    ((entry.seq, *(getattr(entry, name) for name in LEDGER_COLUMNS)) for entry in entries))
                connection.execute("DELETE FROM programs")
                connection.executemany("INSERT INTO programs (hash, source, first_entry, opened_at) "
                                       "VALUES (?, ?, ?, '')", programs)
            target._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            target.close()
        os.replace(temporary, path)
    finally:
        for leftover in (temporary, temporary + "-wal", temporary + "-shm"):
            if os.path.exists(leftover):
                os.unlink(leftover)


def restore(path: str) -> MemoryStore:
    """A memory store with the contents of a file ``save`` (or any SQLite store) wrote."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no snapshot at '{path}'")
    source = SQLiteStore(path)
    try:
        with source.transaction():
            connection = source._connection()
            states, schedule = {}, {}
            for customer, text, next_change in connection.execute("SELECT id, state, next_change FROM customers"):
                states[customer] = converter.structure(json.loads(text), CustomerState)
                if next_change is not None:
                    schedule[customer] = next_change
            receipts = {event_id: (customer, content_key_of(json.loads(content))) for event_id, customer, content in
                        connection.execute("SELECT id, customer, content FROM events ORDER BY rowid")}
            meta = {key: value for key, value in connection.execute("SELECT key, value FROM meta")
                    if key not in ("schema_version", _LEDGER_KEY)}
            entries = source.entries()
            programs = source.programs()
        kept = source.get_meta(_LEDGER_KEY)
        keeps_ledger = kept == "on" if kept is not None else True  # a store's own file: it kept one
    finally:
        source.close()
    store = MemoryStore(ledger=keeps_ledger)
    store.load_contents(states, schedule, receipts, meta, entries, programs)
    return store
