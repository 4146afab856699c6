"""The PostgreSQL test server works: a real connection, a table, a row."""

from __future__ import annotations

import pytest


@pytest.mark.postgres
# Twice: had the two runs shared a database, the second would find the
# first's table and fail to create it.
@pytest.mark.parametrize("run", [1, 2])
def test_round_trip(postgres_database: str, run: int) -> None:
    import psycopg  # only the postgres tests need it

    with psycopg.connect(postgres_database) as conn:
        conn.execute("CREATE TABLE members (id text PRIMARY KEY, points integer NOT NULL)")
        conn.execute("INSERT INTO members VALUES (%s, %s)", ("c1", 50 * run))
        assert conn.execute("SELECT id, points FROM members").fetchall() == [("c1", 50 * run)]
