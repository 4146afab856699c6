"""Every registered diagnostic code is triggered by a rule file and documented.

``tests/data/diagnostics/<CODE>.loyalty`` is a small rule file whose first
line is a comment saying what the mistake is; checking it must report that
code (at the line and column given in the file's ``# expect: LINE:COL``
comment) and no other error.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from poletti.dsl.diagnostics import CODES, ERROR
from poletti.engine.program import build_bytes

CASES = Path(__file__).parent.parent / "data" / "diagnostics"
DOCS = Path(__file__).parent.parent.parent / "docs" / "language.md"
# E124 (too many diagnostics) is triggered by tests/dsl/test_checker.py (test_too_many_problems_are_capped_E124),
# P008 (a file or statement too large) by tests/dsl/test_limits.py: its files are made by the test.
GENERATED_ELSEWHERE = {"E124", "P008"}


def test_every_code_has_a_case() -> None:
    missing = sorted(set(CODES) - GENERATED_ELSEWHERE - {p.stem for p in CASES.glob("*.loyalty")})
    assert not missing, f"codes without a trigger file in {CASES}: {missing}"


@pytest.mark.parametrize("path", sorted(CASES.glob("*.loyalty")), ids=lambda p: p.stem)
def test_case_triggers_its_code(path: Path) -> None:
    code = path.stem
    raw = path.read_bytes()
    match = re.search(rb"# expect: (\d+):(\d+)", raw)
    assert match, f"{path} needs a '# expect: LINE:COL' comment"
    line, column = int(match.group(1)), int(match.group(2))
    result = build_bytes(raw, str(path))  # the whole pipeline, compile included
    hits = [d for d in result.diagnostics if d.code == code]
    assert hits, f"{code} not reported; got {[(d.code, d.message) for d in result.diagnostics]}"
    assert (hits[0].line, hits[0].column) == (line, column)
    assert hits[0].severity == CODES[code].severity
    other_errors = [d for d in result.diagnostics if d.severity == ERROR and d.code != code]
    assert not other_errors, f"unexpected extra errors: {[(d.code, d.message) for d in other_errors]}"


def test_every_code_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    undocumented = [code for code in CODES if code not in text]
    assert not undocumented, f"docs/language.md does not explain {undocumented}"
