"""The embedding API: ``poletti.compile``, ``poletti.load``, ``CompileError``."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

import poletti
from poletti.dsl.diagnostics import CODES

ROOT = Path(__file__).parent.parent
CAFE = ROOT / "examples" / "cafe" / "rules.loyalty"
BRIEF_LINE = "earn 1 point per EUR; at 50 points grant free_drink; tier gold when spend_12m > 1000"


def test_public_names() -> None:
    assert set(poletti.__all__) >= {"compile", "load", "CompileError", "Diagnostic", "__version__"}
    for name in poletti.__all__:
        assert hasattr(poletti, name), name
    assert isinstance(poletti.__version__, str) and poletti.__version__


def test_version_matches_the_installed_distribution() -> None:
    from importlib.metadata import version

    assert poletti.__version__ == version("poletti")


def test_compile_brief_line() -> None:
    program = poletti.compile(BRIEF_LINE)
    assert program is not None
    assert [t.name for t in program.tiers] == ["gold"]
    assert "free_drink" in program.rewards


def test_warnings_do_not_raise() -> None:
    # free_drink is granted without a `reward` declaration: a warning (W201), not an error.
    program = poletti.compile(BRIEF_LINE)
    assert "free_drink" in program.rewards
    codes = [d.code for d in poletti.diagnose(BRIEF_LINE)]
    assert "W201" in codes
    if hasattr(program, "warnings"):
        assert "W201" in [d.code for d in program.warnings]


def test_compile_error_carries_diagnostics_with_positions() -> None:
    text = "earn 1 point per EUR\ntier gold when spend_12m > 100 points\nrounding sideways\n"
    with pytest.raises(poletti.CompileError) as caught:
        poletti.compile(text, "shop.loyalty")
    err = caught.value
    assert err.errors, err.diagnostics
    for d in err.diagnostics:
        assert isinstance(d, poletti.Diagnostic)
        assert d.code in CODES and d.severity in ("error", "warning") and d.message
        assert d.line >= 1 and d.column >= 1
    by_code = {d.code: d for d in err.diagnostics}
    assert (by_code["P001"].line, by_code["P001"].column) == (3, 10)
    assert by_code["E103"].line == 2  # Money and Points never mix


def test_compile_error_str_is_the_rendered_report() -> None:
    with pytest.raises(poletti.CompileError) as caught:
        poletti.compile("rounding sideways", "shop.loyalty")
    text = str(caught.value)
    assert text.startswith("shop.loyalty:1:10: P001 error: unexpected 'sideways'\n")
    assert "  1 | rounding sideways\n" in text
    assert "^~~~~~~~" in text
    assert text.endswith("1 error")


def test_compile_error_pickles() -> None:
    with pytest.raises(poletti.CompileError) as caught:
        poletti.compile("rounding sideways")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.diagnostics == caught.value.diagnostics and str(copy) == str(caught.value)


def test_compile_accepts_bytes_and_reports_bad_utf8() -> None:
    assert poletti.compile(BRIEF_LINE.encode()) is not None
    with pytest.raises(poletti.CompileError) as caught:
        poletti.compile(b'program "Caf\xe9"\n')
    assert [d.code for d in caught.value.errors] == ["P006"]


def test_compile_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        poletti.compile(42)  # type: ignore[arg-type]


def test_load_from_path(tmp_path: Path) -> None:
    program = poletti.load(CAFE)
    assert program.title == "Café Aroma"
    assert program.currency == "EUR" and program.timezone == "Europe/Helsinki"
    bad = tmp_path / "bad.loyalty"
    bad.write_text("earn 1 point per\n", encoding="utf-8")
    with pytest.raises(poletti.CompileError) as caught:
        poletti.load(str(bad))
    assert caught.value.filename == str(bad)
    assert str(caught.value).startswith(f"{bad}:1:17: P003 error")


def test_load_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        poletti.load(tmp_path / "missing.loyalty")


def test_the_cafe_example_has_no_diagnostics() -> None:
    assert poletti.diagnose(CAFE.read_bytes(), str(CAFE)) == ()


# ------------------------------------------------------------------ the documented examples

DOCS = ROOT / "docs" / "language.md"


def _doc_blocks() -> list[str]:
    return re.findall(r"```loyalty\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)


def _doc_error_rows() -> list[tuple[str, str]]:
    rows = []
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 4 and re.fullmatch(r"[PEW]\d{3}", cells[0]):
            example = re.match(r"`([^`]+)`", cells[2])
            if example:
                rows.append((cells[0], example.group(1)))
    return rows


@pytest.mark.parametrize("block", _doc_blocks(), ids=lambda b: b.strip().splitlines()[0][:40])
def test_every_language_example_compiles(block: str) -> None:
    poletti.compile(block, "docs/language.md")  # raises CompileError, with the report, if it does not


def test_the_error_table_lists_every_code_once() -> None:
    listed = [code for code, _ in _doc_error_rows()]
    assert len(listed) == len(set(listed))
    first_cells = {line.split(" | ")[0].strip("| ") for line in DOCS.read_text(encoding="utf-8").splitlines()}
    undocumented = set(CODES) - first_cells
    assert not undocumented, f"no row in the error table of docs/language.md for {sorted(undocumented)}"


@pytest.mark.parametrize("code, example", _doc_error_rows(), ids=[c for c, _ in _doc_error_rows()])
def test_each_error_table_example_triggers_its_code(code: str, example: str) -> None:
    found = [d.code for d in poletti.diagnose(example)]
    assert code in found, f"{example!r} gives {found}, not {code}"


def test_a_dependency_cycle_names_each_step_as_written() -> None:
    # gold reads segment a, which reads the tier: the circle goes through the
    # tier rule, which the message must quote as the user wrote it.
    text = "segment a when tier >= gold\ntier gold when a\n"
    (cycle,) = [d for d in poletti.diagnose(text) if d.code == "E127"]
    assert cycle.message.endswith("tier → segment a → rule 'tier gold when a' → tier gold → tier")
