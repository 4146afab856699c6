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


# Prints, as the process ends, how many objects the collector holds frozen and the BLAS thread setting.
_EXIT_STATE = (
    "import atexit, gc, os\n"
    "atexit.register(lambda: print('EXIT=' + json.dumps([gc.get_freeze_count(),\n"
    "                                                    os.environ.get('OPENBLAS_NUM_THREADS')])))\n"
)


def _exit_state(code: str) -> tuple[int, str | None]:
    import os

    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", "import json\n" + _EXIT_STATE + code], capture_output=True,
                          text=True, timeout=120, env=env)
    marker = [line for line in done.stdout.splitlines() if line.startswith("EXIT=")]
    assert marker, done.stdout + done.stderr
    frozen, blas = json.loads(marker[-1][len("EXIT="):])
    return frozen, blas


def test_the_console_script_skips_the_shutdown_collections_and_keeps_blas_to_one_thread() -> None:
    # The console script calls main() with no arguments: the process ends next, so its objects are frozen
    # (the interpreter's shutdown collections skip them) and numpy's BLAS starts one thread.
    frozen, blas = _exit_state(f"import sys\nsys.argv = ['poletti', 'check', {str(CAFE)!r}]\n"
                               "from poletti.cli import main\nmain()\n")
    assert frozen > 1000 and blas == "1"


def test_a_host_calling_main_keeps_its_objects_collectable_and_its_environment() -> None:
    frozen, blas = _exit_state(f"from poletti.cli import main\nmain(['check', {str(CAFE)!r}])\n")
    assert frozen == 0 and blas is None
