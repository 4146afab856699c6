"""Shared pytest fixtures.

Golden files: a test compares some output with ``tests/data/<stage>/<name>.<ext>``.
After a deliberate change, regenerate them all with

    python -m pytest --update-goldens

and review the diff before committing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", help="rewrite golden files instead of comparing")


class Golden:
    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, actual: str, path: Path) -> None:
        """Assert ``actual`` equals the golden file at ``path`` (or rewrite it with --update-goldens)."""
        if self.update:
            path.write_text(actual, encoding="utf-8")
            return
        assert path.exists(), f"missing golden file {path}; run pytest --update-goldens and review it"
        expected = path.read_text(encoding="utf-8")
        assert actual == expected, f"output differs from {path}; if the change is deliberate, run pytest --update-goldens"


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    return Golden(bool(request.config.getoption("--update-goldens")))


@pytest.fixture
def data_dir() -> Path:
    return DATA
