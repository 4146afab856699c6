"""Events that change two customers (a referral, a friend's purchase paying the referrer; a contact and their
account) under threads: every store must apply each whole, with no lost update and no deadlock.

PostgreSQL's lock mode locks both customers in key order (``PostgresStore.transaction(customer, others)``):
the races below put a referrer's own purchases, their friends' purchases and new referrals on one
referrer at once, and many contacts on one account's pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

import poletti
from poletti.engine.stores import MemoryStore, SQLiteStore
from tests.engine.test_concurrency import run_threads

THREADS = 6


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres-lock", marks=pytest.mark.postgres),
                        pytest.param("postgres-serializable", marks=pytest.mark.postgres)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    if request.param == "memory":
        store = MemoryStore()
        return lambda: store
    if request.param == "sqlite":
        path = str(tmp_path / "loyalty.db")
        return lambda: SQLiteStore(path)
    from poletti.engine.stores.postgres import PostgresStore

    dsn = request.getfixturevalue("postgres_schema")
    mode = request.param.split("-")[1]
    return lambda: PostgresStore(dsn, mode=mode)


REFERRALS = """earn 1 point per EUR
referral grant 100 points to both when friend buys
"""


def test_friends_buying_while_their_referrer_buys_and_refers(make_store: Callable[[], Any]) -> None:
    program = poletti.compile(REFERRALS)
    engine = poletti.Engine(program, make_store(), explain=False)
    # ann refers f0…f5 first (serially); then, at once: each friend buys 10.00 (6 × 100 to ann), ann buys
    # 1.00 six times (6 points), and ann refers six new friends g0…g5 (no points).
    for i in range(THREADS):
        engine.process({"id": f"r{i}", "type": "referral", "customer": "ann", "friend": f"f{i}",
                        "at": "2026-01-01T10:00:00+00:00"})

    def work(i: int) -> None:
        engine.process({"id": f"p{i}", "type": "purchase", "customer": f"f{i}", "amount": "10.00",
                        "at": "2026-01-02T10:00:00+00:00"})
        engine.process({"id": f"a{i}", "type": "purchase", "customer": "ann", "amount": "1.00",
                        "at": "2026-01-03T10:00:00+00:00"})
        engine.process({"id": f"s{i}", "type": "referral", "customer": "ann", "friend": f"g{i}",
                        "at": "2026-01-03T10:00:00+00:00"})

    run_threads(work, THREADS)
    # ann: 6 × 100 (her friends' first purchases) + 6 × 1 = 606. Each friend: 10 + 100 = 110.
    assert engine.customer("ann").points == 606
    assert [engine.customer(f"f{i}").points for i in range(THREADS)] == [110] * THREADS


POOLED = """points pooled by account
earn 1 point per EUR
"""


def test_many_contacts_earn_into_one_pool_at_once(make_store: Callable[[], Any]) -> None:
    engine = poletti.Engine(poletti.compile(POOLED), make_store(), explain=False)

    def work(i: int) -> None:
        for n in range(3):
            engine.process({"id": f"p{i}-{n}", "type": "purchase", "customer": f"c{i}", "account": "acme",
                            "amount": "10.00", "at": f"2026-01-0{n + 1}T10:00:00+00:00"})

    run_threads(work, THREADS)
    # 6 contacts × 3 purchases × 10 points = 180 in acme's pool, shown by every contact.
    assert engine.account("acme").points == 180
    assert {engine.customer(f"c{i}").points for i in range(THREADS)} == {180}
