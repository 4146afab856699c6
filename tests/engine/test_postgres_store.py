"""PostgresStore against a real server: processes sharing a database, both locking modes, lost connections.

The conformance cases (tests/engine/test_conformance.py) and the thread
races (test_concurrency.py) run on PostgreSQL too; these are what only a
server shared by processes can show.
"""

from __future__ import annotations

import multiprocessing
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

import poletti
from rich_programs import histories, programs
from store_checks import check_books, step_through

pytestmark = pytest.mark.postgres

RULES = """reward mug "Mug"
reward gift "Gift" costs 100 points
earn 1 point per EUR
at 100 points grant mug
"""

CUSTOMERS = 10
PER_CUSTOMER = 20


def all_events() -> list[dict[str, Any]]:
    # Customer k's 20 purchases of (k + 1) × 3 EUR share one instant: any order is a valid order.
    return [{"id": f"c{k}-{i}", "type": "purchase", "customer": f"c{k}", "at": "2026-03-01T10:00:00Z",
             "amount": str((k + 1) * 3)} for k in range(CUSTOMERS) for i in range(PER_CUSTOMER)]


def feed(dsn: str, mode: str, seed: int, results: Any) -> None:
    """One process: its own store and engine, every event in its own order."""
    from poletti.engine.stores.postgres import PostgresStore

    events = all_events()
    random.Random(seed).shuffle(events)
    engine = poletti.Engine(poletti.compile(RULES), PostgresStore(dsn, mode=mode), explain=False)
    statuses = [engine.process(event).status for event in events]
    results.put((statuses.count("applied"), statuses.count("duplicate")))


@pytest.mark.parametrize("mode", ["lock", "serializable"])
def test_four_processes_sending_the_same_events_apply_each_once(postgres_schema: str, mode: str) -> None:
    from poletti.engine.stores.postgres import PostgresStore

    context = multiprocessing.get_context("spawn")  # a fresh interpreter each, as separate app servers are
    results = context.Queue()
    workers = [context.Process(target=feed, args=(postgres_schema, mode, seed, results)) for seed in range(4)]
    for worker in workers:
        worker.start()
    counts = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert sum(applied for applied, _ in counts) == CUSTOMERS * PER_CUSTOMER
    assert sum(duplicate for _, duplicate in counts) == 3 * CUSTOMERS * PER_CUSTOMER
    engine = poletti.Engine(poletti.compile(RULES), PostgresStore(postgres_schema), explain=False)
    for k in range(CUSTOMERS):
        earned = PER_CUSTOMER * (k + 1) * 3  # 60, 120, …, 600 points
        view = engine.customer(f"c{k}")
        assert (view.lifetime_points, view.rewards.get("mug", 0), view.points) == (earned, earned // 100,
                                                                                  earned % 100), k
    assert len(engine.store.applied()) == CUSTOMERS * PER_CUSTOMER
    engine.store.close()


def test_serializable_mode_keeps_redeems_apart(postgres_schema: str) -> None:
    import threading

    from poletti.engine.stores.postgres import PostgresStore

    engine = poletti.Engine(poletti.compile(RULES.replace("at 100 points grant mug\n", "")),
                            PostgresStore(postgres_schema, mode="serializable"), explain=False)
    engine.process({"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-03-01T10:00:00Z",
                    "amount": "250"})
    accepted = []
    barrier = threading.Barrier(6)

    def redeem(number: int) -> None:
        barrier.wait()
        try:
            engine.process({"id": f"r{number}", "type": "redeem", "customer": "c1", "at": "2026-03-02T10:00:00Z",
                            "reward": "gift"})
            accepted.append(number)
        except poletti.EventError:
            pass

    threads = [threading.Thread(target=redeem, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(accepted) == 2  # 250 points pay for two gifts of 100
    assert engine.customer("c1").points == 50
    engine.store.close()


def test_a_lost_connection_is_a_clear_error_and_the_event_can_be_sent_again(postgres_schema: str) -> None:
    import psycopg

    from poletti.engine.stores.postgres import PostgresStore

    store = PostgresStore(postgres_schema)
    engine = poletti.Engine(poletti.compile(RULES), store, explain=False)
    engine.process({"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-03-01T10:00:00Z", "amount": "60"})
    record = store.record

    def record_after_the_connection_drops(*args: Any) -> None:
        # The server ends this session mid-transaction: the state is already saved, the receipt not yet.
        with psycopg.connect(postgres_schema, autocommit=True) as admin:
            pid = store._connection().info.backend_pid
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        record(*args)

    store.record = record_after_the_connection_drops  # type: ignore[method-assign]
    event = {"id": "p2", "type": "purchase", "customer": "c1", "at": "2026-03-02T10:00:00Z", "amount": "70"}
    with pytest.raises(poletti.StoreError, match="lost the connection to PostgreSQL.*send it again"):
        engine.process(dict(event))
    store.record = record  # type: ignore[method-assign]
    # Nothing of p2 was kept (its state write was rolled back with it); the next call reconnects.
    assert engine.customer("c1").points == 60 and store.receipt("p2") is None
    outcome = engine.process(dict(event))
    assert (outcome.status, outcome.points) == ("applied", 30)  # 130 → a mug, 30 left
    assert engine.process(dict(event)).status == "duplicate"
    assert engine.customer("c1").rewards == {"mug": 1}
    store.close()


def test_an_unreachable_server_is_a_clear_error() -> None:
    from poletti.engine.stores.postgres import PostgresStore

    with pytest.raises(poletti.StoreError, match="cannot connect to PostgreSQL at 127.0.0.1:1/nowhere"):
        PostgresStore("postgresql://nobody@127.0.0.1:1/nowhere", connect_timeout=2)


def test_a_database_with_other_tables_is_refused(postgres_schema: str) -> None:
    import psycopg

    from poletti.engine.stores.postgres import PostgresStore

    with psycopg.connect(postgres_schema, autocommit=True) as admin:
        admin.execute("CREATE TABLE customers (id INT)")
    with pytest.raises(poletti.StoreError, match="not a poletti store"):
        PostgresStore(postgres_schema)


def test_the_store_survives_a_reopen_and_records_program_changes(postgres_schema: str) -> None:
    from poletti.engine.stores.postgres import PostgresStore

    first = poletti.Engine(poletti.compile(RULES), PostgresStore(postgres_schema), explain=False)
    first.process({"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-03-01T10:00:00Z", "amount": "60"})
    first.store.close()
    changed = RULES.replace("earn 1 point per EUR", "earn 2 points per EUR")
    second = poletti.Engine(poletti.compile(changed), PostgresStore(postgres_schema), explain=False)
    assert second.process({"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-03-01T10:00:00Z",
                           "amount": "60"}).status == "duplicate"
    with pytest.raises(poletti.EventError, match="p1"):  # same id, another amount: a conflict
        second.process({"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-03-01T10:00:00Z",
                        "amount": "61"})
    second.process({"id": "p2", "type": "purchase", "customer": "c1", "at": "2026-03-02T10:00:00Z", "amount": "10"})
    # 60 + 2 × 10 = 80 points; the ledger's entries name the program that made each.
    assert second.customer("c1").points == 80
    programs = second.store.programs()
    assert [digest for digest, _, _ in programs] == [first.digest, second.digest]
    assert [entry.program for entry in second.history("c1")] == [first.digest, second.digest]
    second.store.close()


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=programs(), steps=histories())
def test_postgres_gives_the_memory_stores_figures_states_and_ledger(text: str, steps: list[dict[str, Any]],
                                                                     postgres_dsn: str) -> None:
    """Parity: random programs and histories through PostgreSQL and the memory store with a ledger."""
    import uuid

    import psycopg
    from psycopg.conninfo import make_conninfo

    from poletti.engine.serial import converter
    from poletti.engine.stores import MemoryStore
    from poletti.engine.stores.postgres import PostgresStore

    schema = f"parity_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            program = poletti.compile(text)
            memory = poletti.Engine(program, MemoryStore(ledger=True), explain=False)
            store = PostgresStore(make_conninfo(postgres_dsn, options=f"-csearch_path={schema}"))
            shared = poletti.Engine(program, store, explain=False)
            for number, step in enumerate(steps):
                where = f"step {number} {step}\nprogram:\n{text}"
                assert step_through(shared, step) == step_through(memory, step), where
            assert list(shared.customers()) == list(memory.customers())
            for customer in memory.customers():
                assert shared.customer(customer) == memory.customer(customer), customer
                assert converter.unstructure(shared.state(customer)) == converter.unstructure(memory.state(customer))
                assert shared.history(customer) == memory.history(customer), customer
            check_books(shared, f"program:\n{text}")
            store.close()
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
