"""Reading histories: CSV, JSON Lines and Parquet give the same event dicts; time order; bad rows."""

from __future__ import annotations

import io
import json
import random
import sys
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import simulate_cases as cases

from poletti.interpreter.simulate.history import History, HistoryError, Record, detect_format

UTC = ZoneInfo("UTC")
HELSINKI = ZoneInfo("Europe/Helsinki")

EVENTS: list[dict[str, Any]] = [
    {"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00+00:00", "amount": "12.50",
     "items": [{"sku": "esp", "category": "coffee", "quantity": 2, "price": "3.20"}]},
    {"id": "s1", "type": "signup", "customer": "c2", "at": "2026-01-06", "birthday": "1990-02-28"},
    {"id": "r1", "type": "refund", "customer": "c1", "at": "2026-01-07T10:00:00+02:00", "original": "p1"},
    {"id": "x1", "type": "redeem", "customer": "c1", "at": "2026-01-08T10:00:00Z", "reward": "mug"},
]


def read_all(path: Path, tz: ZoneInfo = UTC, **options: Any) -> list[Record]:
    with History(str(path), tz, **options) as history:
        return list(history)


def events_of(records: list[Record]) -> list[dict[str, Any]]:
    return [r.event for r in records if r.event is not None]


# ------------------------------------------------------------------ formats


def test_format_from_the_extension() -> None:
    assert detect_format("a.csv") == "csv"
    assert detect_format("a.JSONL") == "jsonl"
    assert detect_format("a.ndjson") == "jsonl"
    assert detect_format("a.parquet") == "parquet"
    assert detect_format("-") == "jsonl"
    with pytest.raises(HistoryError, match="format"):
        detect_format("a.xlsx")


def test_every_format_gives_the_same_event_dicts(tmp_path: Path) -> None:
    jsonl = events_of(read_all(cases.write_jsonl(tmp_path / "h.jsonl", EVENTS)))
    csv_ = events_of(read_all(cases.write_csv(tmp_path / "h.csv", EVENTS)))
    parquet = events_of(read_all(cases.write_parquet(tmp_path / "h.parquet", EVENTS)))
    parquet_text = events_of(read_all(cases.write_parquet(tmp_path / "t.parquet", EVENTS, items_as_text=True)))
    assert jsonl == EVENTS
    assert csv_ == EVENTS
    assert parquet_text == EVENTS
    # Parquet items as a list of structs: the same, with quantity a number as Parquet stores it.
    assert parquet == EVENTS


def test_csv_empty_cells_are_absent_and_other_columns_are_attributes(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("\ufeffid,type,customer,at,amount,channel,vip\n"
                    "e1,purchase,c1,2026-01-05T10:00:00Z,12.50,app,TRUE\n"
                    "e2,visit,c1,2026-01-06T10:00:00Z,,,\n", encoding="utf-8")
    events = events_of(read_all(path, bool_columns={"vip"}))
    assert events == [
        {"id": "e1", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00Z", "amount": "12.50",
         "channel": "app", "vip": True},
        {"id": "e2", "type": "visit", "customer": "c1", "at": "2026-01-06T10:00:00Z"},
    ]
    # Without declaring the column boolean, the text stays text for the engine to judge.
    assert events_of(read_all(path))[0]["vip"] == "TRUE"


def test_parquet_typed_columns_become_what_a_json_line_would_hold(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "id": pa.array([1, 2], pa.int64()),
        "type": ["purchase", "signup"],
        "customer": ["c1", "c2"],
        "at": pa.array([datetime(2026, 1, 5, 10, tzinfo=timezone.utc), datetime(2026, 1, 6, 9, tzinfo=timezone.utc)],
                       pa.timestamp("ns", tz="UTC")),
        "amount": pa.array([Decimal("12.50"), None], pa.decimal128(10, 2)),
        "birthday": pa.array([None, date(1990, 2, 28)], pa.date32()),
        "score": pa.array([1.5, float("nan")], pa.float64()),
    })
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    events = events_of(read_all(path))
    assert events == [
        {"id": 1, "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00+00:00", "amount": "12.50",
         "score": 1.5},
        {"id": 2, "type": "signup", "customer": "c2", "at": "2026-01-06T09:00:00+00:00", "birthday": "1990-02-28"},
    ]


# ---------------------------------------------------------------- bad rows


def test_bad_json_lines_are_rejected_rows_with_reasons(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "e1", "type": "visit", "customer": "c1", "at": "2026-01-01T10:00:00Z"}\n'
                     b"\n"
                     b"{broken\n"
                     b'"just text"\n'
                     b'{"id": "e2", "type": "visit", "customer": "c1", "at": "2026-01-02T10:00:00Z", "x": null}\n'
                     b'{"id": "e3", "type": "visit", "customer": "c\xff", "at": "2026-01-03T10:00:00Z"}\n')
    records = read_all(path)
    assert [(r.row, r.error is None) for r in records] == [(1, True), (3, False), (4, False), (5, True), (6, False)]
    assert records[0].event is not None and records[0].event["id"] == "e1"  # a byte order mark is fine
    assert "not valid JSON" in (records[1].error or "")
    assert "a string" in (records[2].error or "")
    assert records[3].event == {"id": "e2", "type": "visit", "customer": "c1", "at": "2026-01-02T10:00:00Z"}
    assert "UTF-8" in (records[4].error or "")


def test_bad_csv_rows_are_rejected_rows_with_reasons(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("id,type,customer,at,items\n"
                    'e1,purchase,c1,2026-01-01T10:00:00Z,"[{""sku"": ""a""}]"\n'
                    "e2,purchase,c1,2026-01-02T10:00:00Z,[oops\n"
                    "e3,purchase,c1,2026-01-03T10:00:00Z,,extra\n", encoding="utf-8")
    records = read_all(path)
    assert records[0].event is not None and records[0].event["items"] == [{"sku": "a"}]
    assert (records[1].row, records[1].event) == (2, None)
    assert "'items' is not valid JSON" in (records[1].error or "")
    assert (records[2].row, records[2].event) == (3, None)
    assert "cells" in (records[2].error or "")


@pytest.mark.parametrize("content, words", [
    (b"when,who\n1,2\n", "no column 'id'"),
    (b"id,type,customer,at\n\xff\xfe,visit,c1,2026-01-01\n", "UTF-8"),
])
def test_unreadable_csv_files(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "h.csv"
    path.write_bytes(content)
    with pytest.raises(HistoryError, match=words):
        read_all(path)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="cannot read"):
        read_all(tmp_path / "missing.jsonl")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(HistoryError, match="Parquet"):
        read_all(broken)


def test_empty_files_have_no_records(tmp_path: Path) -> None:
    for name in ("e.csv", "e.jsonl"):
        (tmp_path / name).write_text("", encoding="utf-8")
        assert read_all(tmp_path / name) == []


# -------------------------------------------------------------- time order


def test_a_sorted_file_is_read_as_it_is(tmp_path: Path) -> None:
    path = cases.write_jsonl(tmp_path / "h.jsonl", cases.EVENTS)
    with History(str(path), UTC) as history:
        history.scan()
        assert (history.count, history.reordered) == (len(cases.EVENTS), False)
        assert events_of(list(history)) == cases.EVENTS


def test_order_compares_instants_not_text(tmp_path: Path) -> None:
    # b is 2026-01-02 00:30+02:00 = 01-01 22:30 UTC: before a (23:00 UTC) although its text sorts after it.
    # A date alone is midnight in the program zone: 2026-01-02 in Helsinki is 01-01 22:00 UTC (first of all),
    # in UTC it is 01-02 00:00 (last of all).
    events = [
        {"id": "a", "type": "visit", "customer": "c1", "at": "2026-01-01T23:00:00Z"},
        {"id": "b", "type": "visit", "customer": "c2", "at": "2026-01-02T00:30:00+02:00"},
        {"id": "c", "type": "visit", "customer": "c3", "at": "2026-01-02"},
    ]
    path = cases.write_jsonl(tmp_path / "h.jsonl", events)
    with History(str(path), HELSINKI) as history:
        ids = [r.event["id"] for r in history if r.event]
        assert history.reordered is True
    assert ids == ["c", "b", "a"]
    assert [r.event["id"] for r in read_all(path, UTC) if r.event] == ["b", "a", "c"]


def test_out_of_order_is_sorted_stably(tmp_path: Path) -> None:
    # A purchase and its refund at the same instant must keep their file order.
    same = "2026-01-05T10:00:00+00:00"
    events = [
        {"id": "late", "type": "visit", "customer": "c9", "at": "2026-03-01T00:00:00Z"},
        {"id": "p1", "type": "purchase", "customer": "c1", "at": same, "amount": "10"},
        {"id": "r1", "type": "refund", "customer": "c1", "at": same, "original": "p1"},
        {"id": "early", "type": "visit", "customer": "c9", "at": "2026-01-01T00:00:00Z"},
        {"id": "v1", "type": "visit", "customer": "c1", "at": same},
    ]
    path = cases.write_csv(tmp_path / "h.csv", events)
    assert [r.event["id"] for r in read_all(path) if r.event] == ["early", "p1", "r1", "v1", "late"]


@pytest.mark.parametrize("run_size", [1, 2, 3, 7, 1000])
def test_external_sort_with_tiny_runs_is_stable(tmp_path: Path, run_size: int) -> None:
    rng = random.Random(run_size)
    instants = [f"2026-01-{day:02d}T10:00:00Z" for day in range(1, 6)]  # many events share an instant
    events = [{"id": f"e{i}", "type": "visit", "customer": f"c{i % 4}", "at": rng.choice(instants)}
              for i in range(60)]
    events.append({"id": "no-time", "type": "visit", "customer": "c0", "at": "whenever"})
    path = cases.write_jsonl(tmp_path / "h.jsonl", events)
    with History(str(path), UTC, run_size=run_size) as history:
        records = list(history)
        spilled = history.runs
        workdir = history._work
    if run_size < len(events):
        assert spilled == -(-len(events) // run_size)  # ceil: every run went to disk
    else:
        assert spilled == 0  # one run: sorted in memory
    # A stable sort by instant: equal instants keep their rows in file order. The event whose time
    # cannot be read comes first (the engine rejects it anyway).
    expected = sorted(range(len(events) - 1), key=lambda i: (events[i]["at"], i))
    assert [r.row for r in records] == [len(events)] + [i + 1 for i in expected]
    assert records[0].instant is None
    assert all(r.event == events[r.row - 1] for r in records)
    assert workdir is None or not Path(workdir).exists()  # temporary runs removed


def test_sorting_keeps_rejected_rows(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text('{"id": "b", "type": "visit", "customer": "c1", "at": "2026-01-02T10:00:00Z"}\n'
                    "oops\n"
                    '{"id": "a", "type": "visit", "customer": "c1", "at": "2026-01-01T10:00:00Z"}\n',
                    encoding="utf-8")
    records = read_all(path, run_size=1)
    assert [(r.row, r.error is not None) for r in records] == [(2, True), (3, False), (1, False)]


def test_stdin_is_spooled_json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "".join(json.dumps(e) + "\n" for e in reversed(cases.EVENTS))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8")), encoding="utf-8"))
    with History("-", UTC) as history:
        assert history.name == "<stdin>"
        assert events_of(list(history)) == cases.EVENTS
        assert history.reordered is True


def test_progress_reports_each_phase(tmp_path: Path) -> None:
    events = [{"id": f"e{i}", "type": "visit", "customer": "c1", "at": f"2026-01-{28 - i % 27:02d}T10:00:00Z"}
              for i in range(10000)]
    path = cases.write_jsonl(tmp_path / "h.jsonl", events)
    calls: list[tuple[str, int, int | None]] = []
    with History(str(path), UTC, run_size=4000) as history:
        for _ in history.in_time_order(lambda phase, done, total: calls.append((phase, done, total))):
            pass
    phases = {phase for phase, _, _ in calls}
    assert phases == {"scan", "sort"}
    assert calls[-1] == ("sort", 10000, 10000)
    size = path.stat().st_size
    assert ("scan", size, size) in calls
