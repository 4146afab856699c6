"""The benchmarks stay runnable, and their hand-written loops agree with the engine.

The hand loops of ``benchmarks/`` (``loops_cdnow.py``, ``loops_richer.py``)
implement the benchmark programs from LANGUAGE.md alone, so running them
against ``poletti.Engine`` on a few thousand generated events is a
differential test of the engine (interpreter and generated code) on
realistic histories: windows sliding across clock changes, refunds, caps,
the tier multiplier, pending points and expiry. ``benchmarks/bench.py``
refuses to time a contender whose figures differ; the last tests check that
it does, end to end.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import pickle
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import poletti

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import bench  # noqa: E402
import bench_stores  # noqa: E402
import cdnow_history  # noqa: E402
import loops_cdnow  # noqa: E402
import loops_richer  # noqa: E402
from loops_common import end_of, months_later  # noqa: E402

from poletti.interpreter.simulate.generate import generate_history  # noqa: E402

EVENTS = 4_000


def cdnow_events(n: int = EVENTS, seed: int = 1) -> list[dict[str, Any]]:
    return cdnow_history.generate(round(n / cdnow_history.EVENTS_PER_PURCHASE), seed)


def cafe_events(n: int = EVENTS, seed: int = 1) -> list[dict[str, Any]]:
    customers = -(-n // bench.EVENTS_PER_CAFE_CUSTOMER)
    return list(itertools.islice(generate_history(customers, bench.CAFE_DAYS, seed, bench.CAFE_START), n))


@pytest.fixture(scope="module")
def histories() -> dict[str, tuple[list[dict[str, Any]], str]]:
    cdnow, cafe = cdnow_events(), cafe_events()
    return {"cdnow": (cdnow, end_of(cdnow)), "richer": (cafe, end_of(cafe))}


LOOPS = {"cdnow": loops_cdnow, "richer": loops_richer}


def engine_figures(rules: str, events: list[dict[str, Any]], end: str, generated: bool) -> dict[str, Any]:
    run = bench.engine_runner(rules, generated)
    figures, extra = run(events, end)
    assert extra["rejected"] == 0
    return figures


# ------------------------------------------------------------------ the hand loops against the engine


@pytest.mark.parametrize("generated", [True, False], ids=["generated", "interpreter"])
@pytest.mark.parametrize("program", ["cdnow", "richer"])
def test_the_hand_loop_and_the_engine_agree_on_every_customer(
        histories: dict[str, tuple[list[dict[str, Any]], str]], program: str, generated: bool) -> None:
    events, end = histories[program]
    loops = LOOPS[program]
    expected, summary = loops.hand_loop(events, end)
    actual = engine_figures(loops.RULES, events, end, generated)
    count, shown = bench.differences(expected, actual)
    assert count == 0, "\n".join(shown)
    assert summary["rejected"] == 0 and summary["customers"] == len(actual)


def test_the_histories_exercise_what_the_programs_do(histories: dict[str, tuple[list[dict[str, Any]], str]]) -> None:
    # The comparison above means most when every part of each program decides something.
    events, end = histories["cdnow"]
    figures, summary = loops_cdnow.hand_loop(events, end)
    assert summary["tiers"]["gold"] > 0  # the 12-month window decides a tier
    assert summary["points"]["reversed"] > 0  # refunds reverse points
    assert any(points < 0 for points, *_ in figures.values())  # a refund after a conversion leaves a debt
    assert summary["rewards"]["reward"] > 0

    events, end = histories["richer"]
    figures, summary = loops_richer.hand_loop(events, end)
    assert summary["tiers"]["silver"] > 0 and summary["tiers"]["gold"] > 0
    assert summary["points"]["expired"] > 0 and summary["points"]["reversed"] > 0
    assert any(pending > 0 for _p, pending, *_ in figures.values())  # points still inside their 14 days
    assert summary["rewards"]["free_drink"] > 0
    # The daily caps cut some purchases' points, and gold members earn double.
    zone = ZoneInfo("Europe/Helsinki")
    days: dict[tuple[str, Any], int] = {}
    for event in events:
        if event["type"] == "purchase":
            key = (event["customer"], datetime.fromisoformat(event["at"]).astimezone(zone).date())
            days[key] = days.get(key, 0) + int(float(event["amount"]))
    assert any(total > loops_richer.BASE_CAP for total in days.values())


@pytest.mark.parametrize("program", ["cdnow", "richer"])
@pytest.mark.parametrize("peer", ["zen", "rule_engine"])
def test_the_peer_loops_agree_with_the_hand_loop(histories: dict[str, tuple[list[dict[str, Any]], str]],
                                                 program: str, peer: str) -> None:
    pytest.importorskip(peer)
    events, end = histories[program]
    loops = LOOPS[program]
    events = events[:1_500]
    end = end_of(events)
    expected, summary = loops.hand_loop(events, end)
    actual, peer_summary = getattr(loops, f"{peer}_loop")(events, end)
    count, shown = bench.differences(expected, actual)
    assert count == 0, "\n".join(shown)
    assert peer_summary == summary


# ------------------------------------------------------------------ the pieces of the hand loops


def test_months_later_follows_the_contract_on_clock_changes() -> None:
    new_york = ZoneInfo("America/New_York")
    utc = timezone.utc

    def later(text: str, months: int = 12) -> datetime:
        return datetime.fromtimestamp(months_later(datetime.fromisoformat(text), months, new_york), utc)

    # 02:30 on 5 April 1998 does not exist in New York (02:00 → 03:00): the end of the gap, 03:00 EDT.
    assert later("1997-04-05T02:30:00-05:00") == datetime(1998, 4, 5, 7, 0, tzinfo=utc)
    # 01:30 on 25 October 1998 happens twice: the first of the two (EDT).
    assert later("1997-10-25T01:30:00-04:00") == datetime(1998, 10, 25, 5, 30, tzinfo=utc)
    # The second 01:30 of 26 October 1997 (EST) lands on an ordinary 01:30 EST a year later.
    assert later("1997-10-26T01:30:00-05:00") == datetime(1998, 10, 26, 6, 30, tzinfo=utc)
    # The wall time is kept across a change of offset, the day of month clamped.
    assert later("1997-01-15T12:00:00-05:00", 6) == datetime(1997, 7, 15, 16, 0, tzinfo=utc)
    assert later("1997-01-31T10:00:00-05:00", 1) == datetime(1997, 2, 28, 15, 0, tzinfo=utc)
    assert later("1996-02-29T10:00:00-05:00") == datetime(1997, 2, 28, 15, 0, tzinfo=utc)


@pytest.mark.parametrize("generated", [True, False], ids=["generated", "interpreter"])
@pytest.mark.parametrize(("bought", "leaves"), [
    ("1997-04-05T02:30:00-05:00", "1998-04-05T03:00:00-04:00"),  # lands in the hour New York skips
    ("1997-10-25T01:30:00-04:00", "1998-10-25T01:30:00-04:00"),  # lands in the hour it repeats: the first
    ("1997-10-26T01:30:00-05:00", "1998-10-26T01:30:00-05:00"),  # the second 01:30 of a repeated hour
])
def test_a_purchase_leaves_the_window_at_the_same_instant_for_the_hand_loop_and_the_engine(
        bought: str, leaves: str, generated: bool) -> None:
    events = [{"id": "p1", "type": "purchase", "customer": "c1", "at": bought, "amount": "1500.00", "currency": "USD"}]
    leaves_at = datetime.fromisoformat(leaves).timestamp()
    for until, tier in ((leaves_at - 1, "gold"), (leaves_at, None)):
        end = datetime.fromtimestamp(until, timezone.utc).isoformat()
        expected, _summary = loops_cdnow.hand_loop(events, end)
        assert expected["c1"][4] == tier
        assert engine_figures(loops_cdnow.RULES, events, end, generated) == expected


@pytest.mark.parametrize("generated", [True, False], ids=["generated", "interpreter"])
def test_a_refund_after_the_purchase_left_the_window_changes_no_window(generated: bool) -> None:
    # The purchase leaves the window at its net amount then; the later refund must not leave it twice.
    events = [
        {"id": "p1", "type": "purchase", "customer": "c1", "at": "1997-01-10T10:00:00-05:00", "amount": "1500.00"},
        {"id": "p2", "type": "purchase", "customer": "c1", "at": "1997-12-10T10:00:00-05:00", "amount": "600.00"},
        {"id": "r1", "type": "refund", "customer": "c1", "at": "1998-02-10T10:00:00-05:00", "original": "p1"},
        {"id": "p3", "type": "purchase", "customer": "c1", "at": "1998-02-11T10:00:00-05:00", "amount": "300.00"},
    ]
    end = events[-1]["at"]
    expected, summary = loops_cdnow.hand_loop(events, end)
    assert expected["c1"][4] is None  # 600 + 300 in the window (not 2,400: the refunded 1,500 left in January)
    assert summary["points"]["reversed"] == 1500
    assert engine_figures(loops_cdnow.RULES, events, end, generated) == expected


def test_the_cdnow_like_history_is_reproducible_and_shaped_like_cdnow() -> None:
    first = cdnow_history.generate(20_000, seed=3)
    assert first == cdnow_history.generate(20_000, seed=3)
    assert first != cdnow_history.generate(20_000, seed=4)
    purchases = [e for e in first if e["type"] == "purchase"]
    refunds = [e for e in first if e["type"] == "refund"]
    per_customer: dict[str, int] = {}
    for event in purchases:
        per_customer[event["customer"]] = per_customer.get(event["customer"], 0) + 1
    assert len(per_customer) == cdnow_history.customers_for(20_000)
    assert 0.4 < sum(1 for n in per_customer.values() if n == 1) / len(per_customer) < 0.6  # many buy once
    assert max(per_customer.values()) > 30  # a few buy very often
    assert 0.01 < len(refunds) / len(purchases) < 0.03
    assert all(re.fullmatch(r"\d+\.\d\d", e["amount"]) for e in purchases)
    assert first[0]["at"] >= "1997-01-01" and first[-1]["at"] < "1998-07-01"
    times = [datetime.fromisoformat(e["at"]) for e in first]
    assert times == sorted(times)
    # Refunds name an earlier purchase of the same customer.
    ids = {e["id"]: e for e in purchases}
    assert all(ids[r["original"]]["customer"] == r["customer"] for r in refunds)


# ------------------------------------------------------------------ the benchmark refuses disagreeing figures


def test_a_contender_that_disagrees_is_reported_with_its_differences(tmp_path: Path) -> None:
    events = cdnow_events(600)
    with open(tmp_path / "cdnow.jsonl", "w", encoding="utf-8") as stream:
        cdnow_history.write_jsonl(events, stream)
    (tmp_path / "cdnow.meta.json").write_text(json.dumps({"end": end_of(events)}), encoding="utf-8")
    report = bench.worker({"program": "cdnow", "contender": "hand", "data": str(tmp_path)})
    assert report["agree"]
    reference = tmp_path / "cdnow.reference.pickle"
    figures = pickle.loads(reference.read_bytes())
    customer = sorted(figures)[0]
    points, pending, lifetime, rewards, tier = figures[customer]
    figures[customer] = (points + 1, pending, lifetime, rewards, tier)
    reference.write_bytes(pickle.dumps(figures))
    report = bench.worker({"program": "cdnow", "contender": "engine", "data": str(tmp_path)})
    assert not report["agree"] and report["disagreeing"] == 1
    assert report["differences"][0].startswith(f"{customer}: hand loop points {points + 1},")


def test_simulate_summaries_are_compared_figure_by_figure() -> None:
    expected = {"events": 3, "rejected": 0, "customers": 2, "points": {"earned": 10}, "rewards": {"r": 1},
                "tiers": {"gold": 0, "none": 2}, "cost": "0.00"}
    assert bench.compare_summary(expected, dict(expected, extra=1)) == []
    problems = bench.compare_summary(expected, dict(expected, points={"earned": 11}))
    assert problems == ["points: hand loop {'earned': 10}, simulate {'earned': 11}"]


def test_the_benchmark_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    status = bench.main(["--events", "1500", "--repeat", "1", "--no-goals", "--only", "engine,simulate"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "DISAGREE" not in out
    for title in ('Program 1, "CDNOW-like"', 'Program 2, "richer"'):
        assert title in out
    assert re.search(r"hand-written Python loop .* 1\.00 +1\.00", out), out
    assert re.search(r"poletti Engine\.process, generated code +[0-9.]+ ", out), out
    assert re.search(r"poletti simulate --json \(default: per customer\) +[0-9.]+ ", out), out
    assert "Goals of issue 8" in out


@pytest.mark.slow
def test_the_full_benchmark_agrees_on_every_contender(capsys: pytest.CaptureFixture[str]) -> None:
    status = bench.main(["--events", "20000", "--repeat", "1", "--advance-customers", "2000"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "DISAGREE" not in out


def load_bench_engine() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_engine", BENCHMARKS / "bench_engine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cafe_v1_benchmark_runs_and_both_sides_agree(capsys: pytest.CaptureFixture[str]) -> None:
    status = load_bench_engine().main(["--events", "3000", "--seed", "1"])
    out = capsys.readouterr().out
    gold = re.search(r"([0-9,]+) gold members at the end", out)
    assert gold is not None and int(gold.group(1).replace(",", "")) > 0, out
    assert "DISAGREE" not in out
    assert "every side agrees for every customer" in out
    assert status == 0


# ------------------------------------------------------------------ bench_stores.py: the same figures from every store


STORE_LABELS = ("MemoryStore()", "MemoryStore(ledger=True)", "SQLiteStore(path)", "SQLiteStore(path, ledger=False)")


def test_the_store_benchmark_times_every_store_and_their_figures_agree(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = bench_stores.main(["--events", "50", "--dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "DISAGREE" not in out
    assert "every store agrees with MemoryStore() for every customer (4 stores)" in out
    for label in STORE_LABELS:
        row = re.search(rf"^  {re.escape(label)} +(generated|interpreter) +50 +[0-9.]+ +[0-9.]+ +[0-9,]+ ", out,
                        re.MULTILINE)
        assert row is not None, f"no row for {label}:\n{out}"
        # A ledger is written from the interpreter's trace records; without one the generated code runs.
        assert row.group(1) == ("interpreter" if "ledger=True" in label or label == "SQLiteStore(path)"
                                else "generated")
    figures = re.search(r"MemoryStore\(\)'s figures: ([0-9,]+) customers, ([0-9,]+) points outstanding", out)
    assert figures is not None and int(figures.group(1)) > 0 and int(figures.group(2)) > 0, out
    assert not list(tmp_path.glob("bench_stores-*"))  # its SQLite files are removed


def test_the_store_benchmark_fails_when_a_store_gives_other_figures(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    honest = bench_stores.read_figures

    def one_point_off_in_sqlite(engine: Any) -> Any:
        figures = honest(engine)
        if isinstance(engine.store, poletti.SQLiteStore) and not engine.store.keeps_ledger:
            customer = sorted(figures)[0]
            points, *rest = figures[customer]
            figures[customer] = (points + 1, *rest)
        return figures

    monkeypatch.setattr(bench_stores, "read_figures", one_point_off_in_sqlite)
    status = bench_stores.main(["--events", "50", "--dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 1, out
    assert "DISAGREE: SQLiteStore(path, ledger=False):" in out
    assert "1 of " in out and "customers differ" in out
    assert out.count("DISAGREE:") == 1  # the other three stores agree


@pytest.mark.postgres
def test_the_store_benchmark_times_postgres_in_a_schema_it_drops(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], postgres_database: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    status = bench_stores.main(["--events", "50", "--dir", str(tmp_path), "--postgres", postgres_database])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "every store agrees with MemoryStore() for every customer (6 stores)" in out
    for label in ("PostgresStore(dsn)", "PostgresStore(dsn, ledger=False)"):
        assert re.search(rf"^  {re.escape(label)} +(generated|interpreter) +50 ", out, re.MULTILINE), out
    with psycopg.connect(postgres_database) as connection:
        left = connection.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench_stores_%'").fetchall()
    assert left == []


def test_speed_is_the_median_of_the_rounds_ratios() -> None:
    # Rounds of a drifting machine: the hand loop's best (1.6 s) and the engine's best (3.6 s) come from
    # different minutes; round by round the engine ran at 1.6/3.6, 2.2/3.6 and 2.2/3.7 of the hand loop's speed.
    hand = bench.Row(bench.CONTENDERS[0], seconds=1.6, rounds=[1.6, 2.2, 2.2])
    engine = bench.Row(bench.CONTENDERS[1], seconds=3.6, rounds=[3.6, 3.6, 3.7])
    assert bench.round_ratio(hand, engine) == pytest.approx(2.2 / 3.7)  # 0.444, 0.611, 0.595: the middle one
    rows = {"hand": hand, "engine": engine}
    assert bench.speed(rows, "engine") == pytest.approx(2.2 / 3.7)
    # A round one of them failed in is left out; with an even count the two middle ratios are averaged.
    engine.rounds = [3.6, None, 3.7]
    assert bench.round_ratio(hand, engine) == pytest.approx((1.6 / 3.6 + 2.2 / 3.7) / 2)
    engine.rounds = []  # no rounds (a row built otherwise): the best times
    assert bench.speed(rows, "engine") == pytest.approx(1.6 / 3.6)


def test_memory_growth_is_judged_from_a_million_events_when_larger_sizes_were_run() -> None:
    # 100,000 events do not fill what the stream holds at most (8 MiB of rows, 4 MiB shards): growth is
    # judged from the first size of at least a million events, when a larger one was measured too.
    assert bench.growth_sizes([100_000, 1_000_000, 10_000_000]) == (1_000_000, 10_000_000)
    assert bench.growth_sizes([100_000, 10_000_000]) == (100_000, 10_000_000)
    assert bench.growth_sizes([1_000_000, 3_000_000, 10_000_000]) == (1_000_000, 10_000_000)
    assert bench.growth_sizes([100_000, 300_000]) == (100_000, 300_000)
    assert bench.COLUMNAR_MODES == ("simulate", "simulate-workers-2")  # the columnar path; every mode: 2 GiB
