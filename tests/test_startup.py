"""Start-up stays light: ``import poletti`` and ``poletti check`` load none of the heavy libraries.

An editor runs ``poletti check`` on every keystroke. matplotlib, pyarrow,
numpy, networkx and dask are for reports, columnar and distributed simulation
and the rule-graph printout; each is imported where it is used. Each test
runs a fresh interpreter, since this test session has imported everything.
Speed is measured by benchmarks/bench_check.py, not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("matplotlib", "pyarrow", "numpy", "networkx", "dask")
CAFE = Path(__file__).resolve().parent.parent / "examples" / "cafe" / "rules_v2.loyalty"

# Prints, as the process ends (also through sys.exit), which heavy modules it imported.
_REPORT = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: print('HEAVY=' + json.dumps(sorted(\n"
    f"    {{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))))\n"
)


def heavy_after(code: str) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    done = subprocess.run([sys.executable, "-c", _REPORT + code], capture_output=True, text=True, timeout=120)
    marker = [line for line in done.stdout.splitlines() if line.startswith("HEAVY=")]
    assert marker, done.stdout + done.stderr
    return json.loads(marker[-1][len("HEAVY="):]), done


def test_import_poletti_loads_no_heavy_module() -> None:
    heavy, _ = heavy_after("import poletti")
    assert heavy == []


def test_poletti_check_loads_no_heavy_module(tmp_path: Path) -> None:
    rules = tmp_path / "rules.loyalty"
    rules.write_text(CAFE.read_text(encoding="utf-8") + "\nsegment big when spend_12m > 1000\ntier vip when big\n",
                     encoding="utf-8")
    heavy, done = heavy_after(f"import sys\nsys.argv = ['poletti', 'check', {str(rules)!r}]\n"
                              "from poletti.cli import main\nmain()\n")
    assert "no problems found" in done.stdout
    assert heavy == []


def test_poletti_check_of_a_circle_loads_no_heavy_module(tmp_path: Path) -> None:
    rules = tmp_path / "rules.loyalty"
    rules.write_text("segment a when tier >= gold\ntier gold when a\n", encoding="utf-8")
    heavy, done = heavy_after(f"import sys\nsys.argv = ['poletti', 'check', {str(rules)!r}]\n"
                              "from poletti.cli import main\nmain()\n")
    assert "E127" in done.stdout
    assert heavy == []


def test_compile_loads_no_heavy_module_and_the_graph_loads_networkx_when_asked_for() -> None:
    heavy, done = heavy_after(
        "import sys, poletti\n"
        f"program = poletti.load({str(CAFE)!r})\n"
        "print('BEFORE=' + str('networkx' in sys.modules))\n"
        "print('NODES=' + str(program.graph.number_of_nodes() > 0))\n")
    assert "BEFORE=False" in done.stdout and "NODES=True" in done.stdout
    assert heavy == ["networkx"]
