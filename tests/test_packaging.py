"""The wheel ships the grammar and the standard-library rule modules.

Slow: it builds a real wheel (``pip wheel . --no-deps``) from a copy of the
source tree, so the working tree gets no build/ or egg-info debris.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                              ".hypothesis", ".mypy_cache", "tests", "benchmarks")


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=SKIP)
    out = work / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-input", "--disable-pip-version-check",
         "-q", "-w", str(out)],
        cwd=source, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    wheels = list(out.glob("poletti-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as archive:
        return set(archive.namelist())


@pytest.mark.slow
def test_wheel_has_the_grammar(wheel_names: set[str]) -> None:
    assert "poletti/grammar/loyalty.lark" in wheel_names


@pytest.mark.slow
def test_wheel_has_every_stdlib_module(wheel_names: set[str]) -> None:
    modules = sorted(p.name for p in (ROOT / "stdlib_rules").glob("*.loyalty"))
    assert modules, "stdlib_rules/ has no *.loyalty modules"
    missing = [m for m in modules if f"poletti/stdlib_rules/{m}" not in wheel_names]
    assert not missing, missing


@pytest.mark.slow
def test_wheel_has_every_subpackage_and_no_stray_top_level(wheel_names: set[str]) -> None:
    for package in ("poletti", "poletti/dsl", "poletti/engine", "poletti/grammar", "poletti/interpreter",
                    "poletti/stdlib_rules"):
        assert f"{package}/__init__.py" in wheel_names, package
    assert "poletti/cli.py" in wheel_names and "poletti/dsl/render.py" in wheel_names
    top = {name.split("/", 1)[0] for name in wheel_names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"poletti"}
