"""``arrow_functions``: Arrow's kernels called by name give what ``pyarrow.compute`` gives, and a simulate
never imports ``pyarrow.compute`` (its import is 0.045 s of every simulate's serial start)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from poletti.interpreter.simulate import arrow_functions as af

ROOT = Path(__file__).resolve().parents[2]
TEXT = pa.array(["12.50", None, "3", "", "  ", "7,25", "abc.def"])
NUMBERS = pa.array([1, None, -3, 40], pa.int64())
CHUNKED = pa.chunked_array([["a", None], ["b", "a"]])

# (stand-in, pyarrow.compute's function, arguments): the same call through both.
CASES = [
    (af.add, pc.add, (NUMBERS, 5)),
    (af.multiply, pc.multiply, (NUMBERS, 100)),
    (af.equal, pc.equal, (TEXT, "3")),
    (af.invert, pc.invert, (pa.array([True, None, False]),)),
    (af.is_valid, pc.is_valid, (TEXT,)),
    (af.if_else, pc.if_else, (pa.array([True, False, None]), "0", pa.array(["x", "y", "z"]))),
    (af.fill_null, pc.fill_null, (NUMBERS, 0)),
    (af.fill_null, pc.fill_null, (pa.array([True, None]), False)),
    (af.fill_null, pc.fill_null, (pa.array([1, None], pa.int32()), -1)),
    (af.fill_null, pc.fill_null, (NUMBERS, pa.scalar(9, pa.int32()))),  # another type: made the values' own
    (af.cast, pc.cast, (pa.array(["1", None, "250"]), pa.int64())),
    (af.max, pc.max, (NUMBERS,)),
    (af.max, pc.max, (pa.array([], pa.int64()),)),
    (af.utf8_length, pc.utf8_length, (TEXT,)),
    (af.utf8_rpad, pc.utf8_rpad, (pa.array(["5", None, "25"]), 2, "0")),
    (af.match_substring, pc.match_substring, (TEXT, ".")),
    (af.match_substring_regex, pc.match_substring_regex, (TEXT, r"^\s*$")),
    (af.replace_substring, pc.replace_substring, (TEXT, ",", ".")),
    (af.extract_regex, pc.extract_regex, (TEXT, r"^(?P<whole>\d+)(?:\.(?P<fraction>\d*))?$")),
    (af.dictionary_encode, pc.dictionary_encode, (CHUNKED,)),
    (af.take, pc.take, (TEXT, pa.array([6, 0, 1]))),
    (af.take, pc.take, (pa.record_batch([NUMBERS], names=["n"]), pa.array([3, 1]))),
    (af.filter, pc.filter, (pa.table({"n": NUMBERS}), pa.array([True, None, False, True]))),
]


@pytest.mark.parametrize(("mine", "arrows", "arguments"), CASES,
                         ids=[f"{case[0].__name__}-{i}" for i, case in enumerate(CASES)])
def test_each_stand_in_gives_what_pyarrow_compute_gives(mine, arrows, arguments) -> None:  # noqa: ANN001
    expected = arrows(*arguments)
    got = mine(*arguments)
    assert type(got) is type(expected)
    assert got.equals(expected)


def test_struct_field_takes_the_fields_of_a_match() -> None:
    match = pc.extract_regex(TEXT, r"^(?P<whole>\d+)(?:\.(?P<fraction>\d*))?$")
    assert af.struct_field(match, [0]).equals(pc.struct_field(match, [0]))
    assert af.struct_field(match, [1]).to_pylist() == ["50", None, "", None, None, None, None]


def test_a_numpy_array_is_taken_as_arrow_takes_it() -> None:
    rows = np.array([2, 0])
    assert af.take(NUMBERS, rows).to_pylist() == [-3, 1]
    assert af.filter(pa.table({"n": NUMBERS}), np.array([False, True, True, False])).column("n").to_pylist() \
        == [None, -3]


def test_a_safe_cast_refuses_what_does_not_fit() -> None:
    with pytest.raises(pa.ArrowInvalid):
        af.cast(pa.array(["99999999999999999999"]), pa.int64())


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_simulate_does_not_import_pyarrow_compute(workers: str) -> None:
    code = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print('LOADED=' + json.dumps(sorted(m for m in sys.modules"
        " if m.startswith('pyarrow')))))\n"
        "from poletti.cli import main\n"
        f"sys.argv = ['poletti', 'simulate', 'examples/cafe/rules_v2.loyalty', 'examples/cafe/history.csv',"
        f" '--json', '--workers', {workers!r}]\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    marker = [line for line in done.stdout.splitlines() if line.startswith("LOADED=")]
    assert done.returncode == 0 and marker, done.stdout[-2000:] + done.stderr[-2000:]
    loaded = json.loads(marker[-1][len("LOADED="):])
    assert "pyarrow.csv" in loaded  # the columnar path ran
    assert "pyarrow.compute" not in loaded
