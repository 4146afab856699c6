"""Shards on a Dask cluster, and the partitioned Parquet folders ``poletti generate --partitions`` writes.

A local Dask cluster takes seconds to start: the tests that start one are
marked slow (CI runs them).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import poletti
from poletti.cli import cli
from poletti.engine.timecalc import parse_timestamp
from poletti.interpreter.simulate.columnar import simulate_file

ROOT = Path(__file__).resolve().parents[2] / "examples" / "cafe"
HELSINKI = ZoneInfo("Europe/Helsinki")


def generate_folder(tmp_path: Path, partitions: int) -> Path:
    folder = tmp_path / "history"
    result = CliRunner().invoke(cli, ["generate", "--customers", "120", "--days", "90", "--seed", "7", "--out",
                                      str(folder), "--partitions", str(partitions)])
    assert result.exit_code == 0, result.output
    return folder


def test_partitions_hold_each_customer_in_the_file_of_its_hash(tmp_path: Path) -> None:
    folder = generate_folder(tmp_path, 3)
    files = sorted(folder.glob("*.parquet"))
    assert [f.name for f in files] == [f"part-0000{k}-of-00003.parquet" for k in range(3)]
    assert json.loads((folder / "_poletti.json").read_text()) == {"partitioned_by": "customer", "hash": "crc32",
                                                                 "partitions": 3}
    seen: dict[str, int] = {}
    for k, file in enumerate(files):
        table = pq.read_table(file)
        instants = [parse_timestamp(t, HELSINKI) for t in table.column("at").to_pylist()]
        assert instants == sorted(instants)  # each file in time order
        for customer in set(table.column("customer").to_pylist()):
            assert customer not in seen
            seen[customer] = k
            assert zlib.crc32(customer.encode()) % 3 == k
    assert len(seen) == 120


def test_a_partitioned_folder_simulates_as_one_file_would(tmp_path: Path) -> None:
    folder = generate_folder(tmp_path, 4)
    whole = tmp_path / "whole.csv"
    CliRunner().invoke(cli, ["generate", "--customers", "120", "--days", "90", "--seed", "7", "--out", str(whole)])
    program = poletti.load(ROOT / "rules_v2.loyalty")
    from_folder = simulate_file(program, str(folder))
    from_file = simulate_file(program, str(whole))
    for key in ("events", "customers", "points", "rewards", "tiers", "cost"):
        assert from_folder.summary[key] == from_file.summary[key], key


def test_generate_refuses_partitions_where_a_folder_cannot_go(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["generate", "--customers", "5", "--days", "5", "--seed", "1", "--partitions", "2"]
    assert runner.invoke(cli, base).exit_code == 2  # standard output
    assert runner.invoke(cli, base + ["--out", str(tmp_path / "x"), "--format", "csv"]).exit_code == 2
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    refused = runner.invoke(cli, base + ["--out", str(tmp_path / "full")])
    assert refused.exit_code == 2 and (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_dask_options_that_cannot_work_are_refused() -> None:
    runner = CliRunner()
    args = ["simulate", str(ROOT / "rules_v2.loyalty"), str(ROOT / "history.csv"), "--json"]
    assert runner.invoke(cli, args + ["--dask", "local", "--sequential"]).exit_code == 2
    assert runner.invoke(cli, ["simulate", str(ROOT / "rules_v2.loyalty"), "-", "--dask", "local"],
                         input="").exit_code == 2


@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_summary_byte_for_byte(tmp_path: Path) -> None:
    folder = generate_folder(tmp_path, 3)
    runner = CliRunner()
    for history in (str(folder), str(ROOT / "history.csv")):
        args = ["simulate", str(ROOT / "rules_v2.loyalty"), history, "--baseline", str(ROOT / "rules_v1.loyalty"),
                "--json"]
        here = runner.invoke(cli, args)
        dask = runner.invoke(cli, args + ["--dask", "local", "--workers", "2"])
        assert here.exit_code == 0 and dask.exit_code == 0, dask.output
        assert dask.output == here.output


@pytest.mark.slow
def test_an_unreachable_scheduler_is_a_clear_error() -> None:
    result = CliRunner().invoke(cli, ["simulate", str(ROOT / "rules_v1.loyalty"), str(ROOT / "history.csv"),
                                      "--dask", "tcp://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.output
