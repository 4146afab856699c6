"""Where customer state lives between events: memory, SQLite (the embedded default) and PostgreSQL.

``open_store(location)`` picks one from a location as the CLI's ``--db``
takes it: ``postgresql://…`` (or ``postgres://…``) for PostgreSQL, any
other text as the path of an SQLite file. See ``base`` for what every
store keeps and guarantees.
"""

from __future__ import annotations

from typing import Any

from poletti.engine.stores.base import LedgerEntry, Receipt, Store, StoreError


def open_store(location: str, **options: Any) -> Store:
    """An SQLite store for a path, a PostgreSQL store for a ``postgresql://`` address."""
    if location.startswith(("postgresql://", "postgres://")):
        from poletti.engine.stores.postgres import PostgresStore

        return PostgresStore(location, **options)
    from poletti.engine.stores.sqlite import SQLiteStore

    return SQLiteStore(location, **options)


def __getattr__(name: str) -> Any:
    # Each store is imported when it is asked for: PostgresStore needs psycopg, which SQLite and memory users
    # need not install; and whoever only reads ``base`` (the event reader, ``poletti simulate``) loads neither
    # sqlite3 nor the SQL stores.
    if name == "PostgresStore":
        from poletti.engine.stores.postgres import PostgresStore

        return PostgresStore
    if name == "SQLiteStore":
        from poletti.engine.stores.sqlite import SQLiteStore

        return SQLiteStore
    if name == "MemoryStore":
        from poletti.engine.stores.memory import MemoryStore

        return MemoryStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LedgerEntry", "MemoryStore", "PostgresStore", "Receipt", "SQLiteStore", "Store", "StoreError",
           "open_store"]
