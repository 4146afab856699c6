"""Replaying a history file both ways — per customer (``columnar``) and event at a time — and comparing.

``write`` puts events in a CSV, JSON Lines or Parquet file as a host's
export would; ``compare`` replays it through a program (and a baseline)
with ``simulate_file`` (or another replay of files: ``simulate``) and with
``sequential.replay`` of the whole file and fails, with the program, the
history and a diff, unless every figure is the same.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Callable

import poletti
from poletti.interpreter.simulate.columnar import simulate_file
from poletti.interpreter.simulate.history import History
from poletti.interpreter.simulate.sequential import replay

COLUMNS = ["id", "type", "customer", "at", "amount", "currency", "items", "original", "reward", "birthday", "channel",
           "rewards_used", "partner"]  # issue 13


def write(events: list[dict[str, Any]], path: Path, columns: list[str] = COLUMNS) -> None:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(e) + "\n" if isinstance(e, dict) else e for e in events), encoding="utf-8")
        return
    rows = []
    for event in events:
        if not isinstance(event, dict):
            continue
        row = {key: (json.dumps(value) if key in ("items", "rewards_used") else value) for key, value in event.items()}
        rows.append(row)
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({name: pa.array([None if row.get(name) is None else str(row[name]) for row in rows],
                                     pa.string()) for name in columns})
    pq.write_table(table, path)


BASELINE = "earn 1 point per EUR\nat 30 points grant gift\ntier gold when spend_30d > 50\n"


EFFECT_FROM = "2027-03-01"  # splits the histories of rich_programs: the cohort is compared too


def compare(text: str, events: list[Any], tmp: Path, suffix: str, until: str | None, workers: int,
            baseline_text: str = BASELINE, effect_from: str | None = EFFECT_FROM,
            simulate: Callable[..., Any] | None = None, columns: list[str] = COLUMNS) -> None:
    """``simulate(program, path, baseline=, until=, effect_from=)``: the replay checked (``simulate_file``
    with ``workers`` when None)."""
    program = poletti.compile(text)
    baseline = poletti.compile(baseline_text)
    path = tmp / f"history{suffix}"
    write(events, path, columns)
    with History(str(path), program.compiled.tz) as history:
        history.scan()
        expected = replay(program, history.in_time_order(), baseline=baseline, until=until, effect_from=effect_from,
                          reordered=history.reordered)
    if simulate is None:
        got = simulate_file(program, str(path), baseline=baseline, until=until, workers=workers,
                            effect_from=effect_from)
    else:
        got = simulate(program, str(path), baseline=baseline, until=until, effect_from=effect_from)
    shown = "\n".join(json.dumps(e) for e in events) if suffix == ".parquet" else path.read_text()[:3000]
    where = f"\nprogram:\n{text}\nhistory ({suffix}):\n{shown}"
    if got.summary != expected.summary:
        import difflib

        diff = difflib.unified_diff(json.dumps(expected.summary, indent=1).splitlines(),
                                    json.dumps(got.summary, indent=1).splitlines(), lineterm="", n=2)
        raise AssertionError("summary differs (- event at a time, + per customer):\n" + "\n".join(diff) + where)
    assert json.dumps(got.summary) == json.dumps(expected.summary), where  # the same key order too
    assert got.new.months == expected.new.months, where
    assert got.baseline.months == expected.baseline.months, where  # type: ignore[union-attr]
    assert got.activity.months == expected.activity.months, where
    assert got.rejections == expected.rejections, where
    assert list(got.customer_rows()) == list(expected.customer_rows()), where
