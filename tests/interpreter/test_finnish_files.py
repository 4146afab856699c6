"""Histories as Finnish businesses export them: ``;`` delimiters, decimal commas, a BOM, Windows line ends;
and one table of file suffixes for ``generate`` and every reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import poletti
from poletti.cli import cli
from poletti.interpreter.simulate.columnar import simulate_file
from poletti.interpreter.simulate.columns import load
from poletti.interpreter.simulate.history import CsvDialect, History, HistoryError, csv_dialect
from poletti.interpreter.simulate.sequential import replay

RULES = 'earn 1 point per EUR\nearn 1 point per EUR on category "beans"\n'

# Hand-worked: p1 12.50 → 12 points; p2 7.20 → 7, and beans 2 × 3.60 = 7.20 → 7 more; p3 100 → 100.
# Earned 12 + 14 + 100 = 126; sales 12.50 + 7.20 + 100 = 119.70. p4 writes a decimal point: rejected (row 4).
FINNISH = ('\ufeffid;type;customer;at;amount;items\r\n'
           'p1;purchase;a;2026-01-01T10:00:00Z;12,50;\r\n'
           'p2;purchase;a;2026-01-02T10:00:00Z;7,20;"[{""sku"":""x"",""category"":""beans"",""quantity"":2,'
           '""price"":""3,60""}]"\r\n'
           'p3;purchase;b;2026-01-03T10:00:00Z;100;\r\n'
           'p4;purchase;b;2026-01-04T10:00:00Z;3.50;\r\n')
# Without items (the Arrow readers take it): p1 12, p2 7, p3 100 → 119 points; sales 119.70.
FINNISH_PLAIN = ('\ufeffid;type;customer;at;amount\r\n'
                 'p1;purchase;a;2026-01-01T10:00:00Z;12,50\r\n'
                 'p2;purchase;a;2026-01-02T10:00:00Z;7,20\r\n'
                 'p3;purchase;b;2026-01-03T10:00:00Z;100\r\n'
                 'p4;purchase;b;2026-01-04T10:00:00Z;3.50\r\n')
REASON = "'amount' is '3.50': this file writes decimal commas (12,50), so a decimal point is unclear"


def write(tmp_path: Path, text: str, name: str = "h.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def every_way(path: Path, rules: str = RULES, **options: Any) -> list[Any]:
    program = poletti.compile(rules)
    results = [simulate_file(program, str(path), workers=w, **options) for w in (1, 2)]
    with History(str(path), program.compiled.tz, **options) as history:
        results.append(replay(program, history.in_time_order(), reordered=False))
    return results


@pytest.mark.parametrize("text, earned", [(FINNISH, 126), (FINNISH_PLAIN, 119)])
def test_a_finnish_file_is_read_every_way_alike(tmp_path: Path, text: str, earned: int) -> None:
    path = write(tmp_path, text)
    with pytest.raises(HistoryError, match="both with a decimal comma"):  # 12,50 and 3.50: which is it?
        csv_dialect(str(path))
    results = every_way(path, dialect=CsvDialect(";", True))
    for result in results:
        summary = result.summary
        assert summary["points"]["earned"] == earned
        assert summary["sales"] == "119.70"
        assert summary["rejected"] == 1 and summary["customers"] == 2
        assert [(r.row, r.reason.split(" (use")[0]) for r in result.rejections] == [(4, REASON)]
    assert json.dumps(results[1].summary) == json.dumps(results[0].summary)
    assert json.dumps(results[2].summary) == json.dumps(results[0].summary)


def test_the_arrow_reader_converts_the_amounts(tmp_path: Path) -> None:
    columns = load(str(write(tmp_path, FINNISH_PLAIN)), poletti.compile(RULES).compiled.tz,
                   dialect=CsvDialect(";", True))
    assert columns.amount[:3].tolist() == [12_500_000, 7_200_000, 100_000_000]  # micro-units
    assert columns.errors[3].startswith(REASON) and not columns.plain[3]


def test_the_spilled_reader_converts_the_amounts(tmp_path: Path) -> None:
    from poletti.interpreter.simulate.spill import load_shard, partition

    tz = poletti.compile(RULES).compiled.tz
    spilled = partition(str(write(tmp_path, FINNISH_PLAIN)), tz, 1, dialect=CsvDialect(";", True))
    assert spilled is not None
    with spilled:
        columns = load_shard(spilled, 0, tz, frozenset())
    assert sorted(columns.amount[columns.plain].tolist()) == [7_200_000, 12_500_000, 100_000_000]
    assert len(columns.errors) == 1


@pytest.mark.parametrize("text, dialect", [
    ("id,type,customer,at,amount\np1,purchase,a,2026-01-01,12.50\n", CsvDialect(",", False)),
    ("id;type;customer;at;amount\np1;purchase;a;2026-01-01;12,50\n", CsvDialect(";", True)),
    ("id;type;customer;at;amount\np1;purchase;a;2026-01-01;12.50\n", CsvDialect(";", False)),
    ("id;type;customer;at;amount\np1;purchase;a;2026-01-01;12\n", CsvDialect(";", True)),  # whole: the ; way
    ("\ufeffid;type;customer;at\r\np1;visit;a;2026-01-01\r\n", CsvDialect(";", True)),
])
def test_the_dialect_is_found(tmp_path: Path, text: str, dialect: CsvDialect) -> None:
    assert csv_dialect(str(write(tmp_path, text))) == dialect


def test_both_decimal_marks_are_refused_with_the_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "id;type;customer;at;amount\np1;purchase;a;2026-01-01;3.20\n"
                           "p2;purchase;a;2026-01-02;12,50\n")
    with pytest.raises(HistoryError, match=r"decimal comma \(row 2: '12,50'\) and with a decimal point \(row 1: "
                                           r"'3.20'\).*--decimal-comma or --decimal-point"):
        csv_dialect(str(path))
    assert csv_dialect(str(path), decimal_comma=False) == CsvDialect(";", False)  # chosen: no question


def test_a_decimal_comma_needs_the_semicolon(tmp_path: Path) -> None:
    path = write(tmp_path, "id,type,customer,at,amount\np1,purchase,a,2026-01-01,12\n")
    with pytest.raises(HistoryError, match="needs ';' as the delimiter"):
        csv_dialect(str(path), decimal_comma=True)


def test_a_comma_in_a_comma_separated_file_is_never_a_decimal_comma(tmp_path: Path) -> None:
    path = write(tmp_path, "id,type,customer,at,amount\np1,purchase,a,2026-01-01T10:00:00Z,1,234\n"
                           "p2,purchase,a,2026-01-02T10:00:00Z,10\n")
    for result in every_way(path):
        assert result.summary["points"]["earned"] == 10 and result.summary["rejected"] == 1
        assert result.rejections[0].row == 1 and "6 cells but the header names 5" in result.rejections[0].reason


def test_a_wrong_delimiter_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, FINNISH_PLAIN)
    with pytest.raises(HistoryError, match=r"is the delimiter ';'\? \(--delimiter\)"):
        simulate_file(poletti.compile(RULES), str(path), dialect=CsvDialect(",", False))


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_the_options_on_simulate_run_and_explain(tmp_path: Path) -> None:
    rules = tmp_path / "r.loyalty"
    rules.write_text(RULES, encoding="utf-8")
    ambiguous = write(tmp_path, "id;type;customer;at;amount\np1;purchase;a;2026-01-01T10:00:00Z;3.20\n"
                                "p2;purchase;a;2026-01-02T10:00:00Z;12,50\n", "both.csv")
    refused = run("simulate", str(rules), str(ambiguous), "--json")
    assert refused.exit_code == 2 and "--decimal-comma or --decimal-point" in refused.output
    chosen = run("simulate", str(rules), str(ambiguous), "--json", "--decimal-comma")
    assert chosen.exit_code == 0, chosen.output
    summary = json.loads(chosen.output)
    assert summary["points"]["earned"] == 12 and summary["rejected"] == 1  # 12,50 read; 3.20 rejected
    sequential = run("simulate", str(rules), str(ambiguous), "--json", "--decimal-comma", "--sequential")
    assert sequential.output == chosen.output
    pointed = json.loads(run("simulate", str(rules), str(ambiguous), "--json", "--delimiter", ";",
                             "--decimal-point").output)
    assert pointed["points"]["earned"] == 3 and pointed["rejected"] == 1  # 3.20 read; "12,50" is no decimal
    ran = run("run", str(rules), str(ambiguous), "--decimal-comma", "--json")
    assert ran.exit_code == 0 and '"points": 12' in ran.output.replace('"points":12', '"points": 12')
    told = run("explain", str(rules), str(ambiguous), "--customer", "a", "--decimal-comma")
    assert told.exit_code == 0 and "12.50" in told.output
    jsonl = tmp_path / "h.jsonl"
    jsonl.write_text('{"id": "p1", "type": "purchase", "customer": "a", "at": "2026-01-01", "amount": "1"}\n')
    wrong = run("simulate", str(rules), str(jsonl), "--decimal-comma")
    assert wrong.exit_code == 2 and "for CSV histories" in wrong.output


def test_generate_and_simulate_agree_on_every_suffix(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2] / "examples" / "cafe"
    outputs = []
    for name in ("h.csv", "h.jsonl", "h.ndjson", "h.parquet", "h.pq", "fi.csv"):
        extra = ["--delimiter", ";", "--decimal-comma"] if name == "fi.csv" else []
        made = run("generate", "--customers", "25", "--days", "60", "--seed", "5", "-o", str(tmp_path / name), *extra)
        assert made.exit_code == 0, made.output
        result = run("simulate", str(root / "rules_v2.loyalty"), str(tmp_path / name), "--json")
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert len(set(outputs)) == 1
    assert ";" in (tmp_path / "fi.csv").read_text(encoding="utf-8").splitlines()[0]
    for command in (["generate", "--customers", "2", "--days", "2", "--seed", "1", "-o", str(tmp_path / "h.txt")],
                    ["simulate", str(root / "rules_v2.loyalty"), str(tmp_path / "h.txt")]):
        refused = run(*command)
        assert refused.exit_code == 2
        assert ".csv, .jsonl, .ndjson, .parquet, .pq" in " ".join(refused.output.split())
    assert run("generate", "--customers", "2", "--days", "2", "--seed", "1", "-o", str(tmp_path / "x.txt"),
               "--format", "jsonl").exit_code == 0
    assert run("generate", "--customers", "2", "--days", "2", "--seed", "1", "-o", str(tmp_path / "y.csv"),
               "--decimal-comma").exit_code == 2  # a decimal comma needs ';'


def test_an_unclear_row_out_of_time_order_is_no_event_every_way(tmp_path: Path) -> None:
    # Row 2 (a decimal point) is dated before row 1: as no event it has no instant, so the file is in time order.
    path = write(tmp_path, "id;type;customer;at;amount\np1;purchase;a;2026-01-02T10:00:00Z;1,50\n"
                           "p0;purchase;b;2026-01-01T10:00:00Z;2.50\np2;purchase;b;2026-01-03T10:00:00Z;4\n")
    results = every_way(path, dialect=CsvDialect(";", True))
    with History(str(path), poletti.compile(RULES).compiled.tz, dialect=CsvDialect(";", True)) as history:
        history.scan()
        assert history.reordered is False
    for result in results:
        assert result.summary["points"]["earned"] == 5 and result.summary["rejected"] == 1  # 1 + 4
        assert result.summary.get("reordered") in (None, False)
    assert json.dumps(results[0].summary) == json.dumps(results[1].summary)
