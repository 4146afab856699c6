"""One ``Engine`` shared by threads (and, for SQLite and PostgreSQL, one store shared by processes).

Every store must give exactly the figures of *some* serial order of the
calls. The first tests pin hand-worked answers for the races the stores
issue lists (one customer fed by 8 threads, one event id sent by 8
threads, 8 concurrent redeems of the same points); the last replays a
mixed run — purchases, redeems and ``advance_to`` from several threads —
serially in the order the store applied them, and requires the same
states.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

import poletti
from poletti.engine.serial import converter
from poletti.engine.stores import MemoryStore, SQLiteStore

RULES = """reward mug "Mug"
reward gift "Gift" costs 100 points
earn 1 point per EUR
at 1000 points grant mug
points pending for 2d
points expire after 10d
"""

THREADS = 8


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    """Opens the test's store (each call: another handle on the same one, as another process would)."""
    if request.param == "memory":
        store = MemoryStore(ledger=True)
        return lambda: store
    if request.param == "sqlite":
        path = str(tmp_path / "loyalty.db")
        return lambda: SQLiteStore(path)
    from poletti.engine.stores.postgres import PostgresStore

    dsn = request.getfixturevalue("postgres_schema")
    return lambda: PostgresStore(dsn)


def run_threads(work: Callable[[int], None], count: int = THREADS) -> None:
    """``work(i)`` in ``count`` threads started together; any exception fails the test."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(number: int) -> None:
        try:
            start.wait()
            work(number)
        except BaseException as err:  # noqa: BLE001 — reported below
            errors.append(err)

    threads = [threading.Thread(target=body, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def purchase(event_id: str, at: str, amount: str, customer: str = "c1") -> dict[str, Any]:
    return {"id": event_id, "type": "purchase", "customer": customer, "at": at, "amount": amount}


def test_eight_threads_feeding_one_customer_lose_nothing(make_store: Callable[[], Any]) -> None:
    engine = poletti.Engine(poletti.compile("reward mug \"Mug\"\nearn 1 point per EUR\nat 100 points grant mug\n"),
                            make_store(), explain=False)
    # 8 threads × 50 purchases of 7 EUR at one instant (so none is older than another): 400 × 7 = 2800 points
    # earned, converted into 28 mugs, none left over.
    run_threads(lambda n: [engine.process(purchase(f"p{n}-{i}", "2026-03-01T10:00:00Z", "7")) for i in range(50)])
    view = engine.customer("c1")
    assert (view.points, view.lifetime_points, view.rewards) == (0, 2800, {"mug": 28})
    # The ledger: an earn per purchase, and a spend of 100 points with its mug each time the balance reached 100.
    kinds = [entry.kind for entry in engine.history("c1")]
    assert (kinds.count("earn"), kinds.count("spend"), kinds.count("reward"), len(kinds)) == (400, 28, 28, 456)


def test_one_event_sent_by_eight_threads_is_applied_once(make_store: Callable[[], Any]) -> None:
    engine = poletti.Engine(poletti.compile(RULES), make_store(), explain=False)
    statuses: list[str] = []
    run_threads(lambda n: statuses.append(engine.process(purchase("p1", "2026-03-01T10:00:00Z", "40")).status))
    assert sorted(statuses) == ["applied"] + ["duplicate"] * 7
    view = engine.customer("c1")
    assert (view.pending_points, view.lifetime_points) == (40, 40)  # pending for 2 days


def test_threads_sending_overlapping_shares_of_the_events_end_with_exact_totals(
        make_store: Callable[[], Any]) -> None:
    engine = poletti.Engine(poletti.compile("reward mug \"Mug\"\nearn 1 point per EUR\nat 100 points grant mug\n"),
                            make_store(), explain=False)
    # 10 customers × 20 purchases of (k + 1) × 3 EUR, all at one instant (any order is a valid order).
    events = [purchase(f"c{k}-{i}", "2026-03-01T10:00:00Z", str((k + 1) * 3), f"c{k}")
              for k in range(10) for i in range(20)]
    shares = []
    for number in range(THREADS):  # each thread sends 60 % of the events, in its own order; together, all of them
        rng = random.Random(number)
        share = [event for index, event in enumerate(events) if index % THREADS == number or rng.random() < 0.55]
        rng.shuffle(share)
        shares.append(share)
    statuses: list[str] = []
    run_threads(lambda n: statuses.extend(engine.process(dict(event)).status for event in shares[n]))
    assert statuses.count("applied") == len(events) == 200
    assert statuses.count("duplicate") == sum(map(len, shares)) - 200
    for k in range(10):
        earned = 20 * (k + 1) * 3  # 60, 120, …, 600 points: a mug per 100, the rest kept
        view = engine.customer(f"c{k}")
        assert (view.lifetime_points, view.rewards.get("mug", 0), view.points) == (earned, earned // 100, earned % 100)


def test_concurrent_redeems_of_the_same_points_accept_one(make_store: Callable[[], Any]) -> None:
    engine = poletti.Engine(poletti.compile(RULES), make_store(), explain=False)
    engine.process(purchase("p1", "2026-03-01T10:00:00Z", "150"))  # 150 points, spendable from 3 March
    accepted: list[str] = []
    refused: list[str] = []

    def redeem(number: int) -> None:
        try:
            engine.process({"id": f"r{number}", "type": "redeem", "customer": "c1", "at": "2026-03-04T10:00:00Z",
                            "reward": "gift"})
            accepted.append(f"r{number}")
        except poletti.EventError as err:
            refused.append(err.reason)

    run_threads(redeem)
    assert len(accepted) == 1 and len(refused) == 7, (accepted, refused)
    assert all("points" in reason for reason in refused), refused  # not enough points left: 50 < 100
    view = engine.customer("c1")
    assert (view.points, view.rewards) == (50, {"gift": 1})


def test_mixed_threads_give_the_figures_of_the_order_the_store_applied(make_store: Callable[[], Any]) -> None:
    """Purchases and redeems from 6 threads on 6 shared customers, a 7th thread moving the clock day by day."""
    program = poletti.compile(RULES)
    store = make_store()
    engine = poletti.Engine(program, store, explain=False)
    applied: list[Any] = []  # ("event", event) or ("clock", instant), in the order the store took them
    log_lock = threading.Lock()
    sent: dict[str, dict[str, Any]] = {}
    record, set_meta = store.record, store.set_meta

    def logged_record(event_id: str, customer: str, key: Any) -> None:
        # Called inside the event's transaction, which excludes every other writer of that customer and the
        # clock: the log's order is the order the store applied them in.
        record(event_id, customer, key)
        with log_lock:
            applied.append(("event", event_id))

    def logged_set_meta(key: str, value: str) -> None:
        set_meta(key, value)
        with log_lock:
            applied.append(("clock", value))

    store.record, store.set_meta = logged_record, logged_set_meta  # type: ignore[method-assign]
    customers = [f"c{n}" for n in range(6)]
    plans: list[list[dict[str, Any]]] = []
    for worker in range(6):
        rng = random.Random(worker)
        events = []
        for step in range(40):
            day, hour = 1 + step * 20 // 40, rng.randrange(8, 20)
            at = f"2026-03-{day:02d}T{hour:02d}:{rng.randrange(60):02d}:00Z"
            customer = rng.choice(customers)
            if rng.random() < 0.2:
                event = {"id": f"w{worker}-{step}", "type": "redeem", "customer": customer, "at": at, "reward": "gift"}
            else:
                event = purchase(f"w{worker}-{step}", at, str(rng.randrange(5, 120)), customer)
            sent[event["id"]] = event
            events.append(event)
        plans.append(events)

    progress = [0] * 6  # events each worker has sent

    def work(number: int) -> None:
        if number == 6:
            for day in range(2, 22):
                # Day d's events are steps 2(d-1) and 2(d-1)+1: move the clock to midnight once the slowest
                # worker is about there, so that it races the workers rather than refusing all they send.
                while min(progress) < 2 * (day - 1) - 1:
                    time.sleep(0.0005)
                engine.advance_to(f"2026-03-{day:02d}T00:00:00Z")
            return
        for event in plans[number]:
            try:
                engine.process(dict(event))
            except poletti.EventError:
                pass  # too old for its customer or the clock, or not enough points: refused whole
            progress[number] += 1

    run_threads(work, 7)
    events_applied = [entry for kind, entry in applied if kind == "event"]
    assert len(events_applied) == len(set(events_applied)) and len(events_applied) > 20  # not all refused (most are: older than their customer's last event)

    serial = poletti.Engine(program, explain=False)
    for kind, value in applied:
        if kind == "event":
            serial.process(dict(sent[value]))  # must be accepted: it was, in this order
        else:
            serial.advance_to(value)
    assert sorted(serial.customers()) == sorted(engine.customers())
    for customer in serial.customers():
        assert converter.unstructure(engine.state(customer)) == converter.unstructure(serial.state(customer)), customer
