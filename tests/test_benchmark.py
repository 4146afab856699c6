"""benchmarks/bench_engine.py stays runnable, and its two sides agree.

The hand loop is an independent implementation of the café program, so this
is also a differential test of the engine on a realistic history.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_engine.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_engine", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_runs_and_both_sides_agree(capsys: pytest.CaptureFixture[str]) -> None:
    status = load_bench().main(["--events", "3000", "--seed", "1"])
    out = capsys.readouterr().out
    # The comparison means most when the 12-month window decides a tier somewhere.
    gold = re.search(r"([0-9,]+) gold members at the end", out)
    assert gold is not None and int(gold.group(1).replace(",", "")) > 0, out
    assert "DISAGREE" not in out
    assert "every side agrees for every customer" in out
    assert "ratio poletti / hand loop" in out
    assert status == 0
