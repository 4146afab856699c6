"""The command line: exit codes, rendered diagnostics, fmt, and no traceback on any input.

Most tests drive the click group in-process with ``CliRunner``; one class
runs the installed ``poletti`` console script as a real subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poletti
from poletti.cli import EXIT_ERRORS, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, Unreadable, atomic_output, cli
from poletti.dsl.ast import Span
from poletti.dsl.diagnostics import make
from poletti.dsl.render import MAX_EXCERPT, diagnostics_to_json, render_diagnostics, summary_line

ROOT = Path(__file__).parent.parent
CAFE = ROOT / "examples" / "cafe" / "rules.loyalty"
BRIEF_LINE = "earn 1 point per EUR; at 50 points grant free_drink; tier gold when spend_12m > 1000\n"
# Line 2 has a syntax error at column 10, spanning the 8 letters of 'sideways'.
BROKEN = "earn 1 point per EUR\nrounding sideways\n"
UNFORMATTED = "earn   1 point per EUR ;at 50 points grant free_drink\n\n\n\ntier gold when (spend_12m > 1000)"



def run(*args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def write(tmp_path: Path, text: str | bytes, name: str = "rules.loyalty") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert "internal error" not in result.output
    assert result.exit_code != EXIT_INTERNAL, result.output
    # CliRunner stores escaped exceptions here; SystemExit is how click exits.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def cells(text: str) -> int:
    """Terminal cells a text takes (wide characters count two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def caret_under(output: str, line_number: int) -> tuple[str, str]:
    """The displayed source line (after the gutter) and the marker line under it."""
    lines = output.splitlines()
    source_index = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith(f"{line_number} | "))
    shown = lines[source_index].split(" | ", 1)[1]
    marker = lines[source_index + 1].split(" | ", 1)[1]
    return shown, marker


# ------------------------------------------------------------------ basics


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"poletti {poletti.__version__}"


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "check" in result.output and "fmt" in result.output


def test_unknown_command_and_option_are_usage_errors(tmp_path: Path) -> None:
    assert run("frobnicate").exit_code == EXIT_USAGE
    assert run("check", "--bogus", str(write(tmp_path, BRIEF_LINE))).exit_code == EXIT_USAGE
    assert run("check").exit_code == EXIT_USAGE  # no FILE


# ------------------------------------------------------------------ check


def test_check_clean_example_exits_0_without_warnings() -> None:
    result = run("check", str(CAFE))
    assert result.exit_code == EXIT_OK, result.output
    assert "warning" not in result.output
    assert "no problems found" in result.output


def test_check_brief_line_exits_0(tmp_path: Path) -> None:
    result = run("check", str(write(tmp_path, BRIEF_LINE)))
    assert result.exit_code == EXIT_OK, result.output
    no_traceback(result)


def test_check_error_location_source_line_and_caret(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    result = run("check", str(path))
    assert result.exit_code == EXIT_ERRORS
    assert f"{path}:2:10: P001 error: unexpected 'sideways'" in result.output
    shown, marker = caret_under(result.output, 2)
    assert shown == "rounding sideways"
    assert marker == " " * 9 + "^~~~~~~~"
    assert "  = note: expected 'down', 'nearest' or 'up'" in result.output
    assert result.output.rstrip().endswith("1 error")


def test_check_caret_after_tabs(tmp_path: Path) -> None:
    path = write(tmp_path, "\trounding\tsideways\n")
    result = run("check", str(path))
    assert f"{path}:1:11: P001" in result.output  # columns count characters
    shown, marker = caret_under(result.output, 1)
    assert "\t" not in shown
    assert marker.index("^") == shown.index("sideways")
    assert marker.strip() == "^~~~~~~~"


def test_check_caret_after_wide_characters(tmp_path: Path) -> None:
    path = write(tmp_path, 'program "日本語のカフェ" oops\n')
    result = run("check", str(path))
    assert result.exit_code == EXIT_ERRORS
    shown, marker = caret_under(result.output, 1)
    assert marker.index("^") == cells(shown[: shown.index("oops")])
    assert marker.strip() == "^~~~"


def test_check_does_not_echo_terminal_control_characters(tmp_path: Path) -> None:
    path = write(tmp_path, "earn 1 point per EUR \x1b[2J\u202e\n")
    result = run("check", str(path))
    assert result.exit_code == EXIT_ERRORS
    assert "\x1b" not in result.output and "\u202e" not in result.output


def test_check_several_files_and_json(tmp_path: Path) -> None:
    bad = write(tmp_path, BROKEN, "bad.loyalty")
    good = write(tmp_path, BRIEF_LINE, "good.loyalty")
    result = run("check", "--format", "json", str(good), str(bad))
    assert result.exit_code == EXIT_ERRORS
    data = json.loads(result.stdout)
    assert isinstance(data, list) and data
    fields = {"file", "line", "column", "end_line", "end_column", "code", "severity", "message", "notes"}
    assert all(set(item) == fields for item in data)
    error = next(d for d in data if d["severity"] == "error")
    where = (error["file"], error["line"], error["column"], error["end_column"], error["code"])
    assert where == (str(bad), 2, 10, 18, "P001")
    assert isinstance(error["notes"], list)


def test_check_json_clean_file_is_an_empty_list() -> None:
    result = run("check", "--format", "json", str(CAFE))
    assert result.exit_code == EXIT_OK
    assert json.loads(result.stdout) == []


def test_check_text_summary_counts_all_files(tmp_path: Path) -> None:
    result = run("check", str(write(tmp_path, BROKEN, "a.loyalty")), str(write(tmp_path, BROKEN, "b.loyalty")))
    assert result.exit_code == EXIT_ERRORS
    assert result.output.rstrip().endswith("2 errors in 2 files")


def test_check_missing_file_is_one_line_exit_2(tmp_path: Path) -> None:
    result = run("check", str(tmp_path / "nope.loyalty"))
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.strip().count("\n") == 0
    assert "cannot read" in result.stderr and "nope.loyalty" in result.stderr
    no_traceback_text(result.output)


def test_check_directory_is_exit_2(tmp_path: Path) -> None:
    result = run("check", str(tmp_path))
    assert result.exit_code == EXIT_USAGE
    assert "cannot read" in result.stderr
    no_traceback_text(result.output)


def test_check_missing_file_beside_good_one_still_checks_the_good_one(tmp_path: Path) -> None:
    bad = write(tmp_path, BROKEN)
    result = run("check", str(tmp_path / "nope.loyalty"), str(bad))
    assert result.exit_code == EXIT_USAGE
    assert f"{bad}:2:10: P001" in result.stdout


def test_check_reads_standard_input() -> None:
    result = run("check", "-", input=BROKEN)
    assert result.exit_code == EXIT_ERRORS
    assert "<stdin>:2:10: P001" in result.output


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n\n\n",
        b"# only a comment",
        b"\xef\xbb\xbf" + BRIEF_LINE.encode(),  # a byte-order mark
        bytes(range(256)) * 4,
        b"\x00" * 1000,
        b"\xff\xfe" + "earn 1 point per EUR".encode("utf-16-le"),
        b"earn " + b"9" * 100_000 + b" points per EUR",
        b"(" * 5000,
        b'"' * 5001,
        b"x" * 200_000,
        b"earn 1 point per EUR if " + b"(" * 1000 + b"true" + b")" * 1000,
        pytest.param(b"earn 1 point per EUR if " + b"not " * 3000 + b"true", id="deep-not"),
        pytest.param(b"earn 1 point per EUR if points > " + b"1 + " * 3000 + b"1", id="long-sum"),
        pytest.param(b"earn 1 point per EUR if " + b"true and " * 3000 + b"true", id="long-and"),
        b"earn 1 point per EUR; " * 2000,
        ("tier gold when spend_12m > 1000 # caf\u00e9 \u65e5\u672c\n" * 50).encode(),
    ],
    ids=["empty", "newlines", "comment", "bom", "all-bytes", "nuls", "utf16", "huge-number", "parens",
         "quotes", "huge-line", "deep-parens", "deep-not", "long-sum", "long-and", "many-statements",
         "unicode-comments"],
)
def test_odd_files_never_crash(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, content)
    for args in (["check", str(path)], ["check", "--format", "json", str(path)], ["fmt", str(path)],
                 ["fmt", "--check", str(path)]):
        result = run(*args)
        no_traceback(result)
        assert result.exit_code in (EXIT_OK, EXIT_ERRORS), (args, result.output[-2000:])


def test_huge_line_is_shown_cut(tmp_path: Path) -> None:
    path = write(tmp_path, "earn 1 point per EUR " + "x" * 100_000 + "\n")
    result = run("check", str(path))
    assert result.exit_code == EXIT_ERRORS
    assert all(len(line) < 4 * MAX_EXCERPT for line in result.output.splitlines())


def test_internal_error_is_reported_with_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import poletti.dsl.frontend as frontend

    def explode(raw: bytes, filename: str | None = None) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(frontend, "analyze_bytes", explode)
    result = run("check", str(write(tmp_path, BRIEF_LINE)))
    assert result.exit_code == EXIT_INTERNAL
    assert "internal error" in result.stderr and "report" in result.stderr
    assert "Traceback" not in result.output


def test_color_only_when_asked(tmp_path: Path) -> None:
    path = str(write(tmp_path, BROKEN))
    assert "\x1b[" not in run("check", path).output  # CliRunner is not a terminal
    colored = run("--color", "check", path)
    assert "\x1b[" in colored.output
    assert colored.exit_code == EXIT_ERRORS


# --------------------------------------------------------- options after the command

WARNS = "at 50 points grant free_drink\nearn 1 point per EUR\n"  # W201 only
HISTORY = "id,type,customer,at,amount\np1,purchase,c1,2026-11-01T10:00:00+00:00,60\n"


def every_command(tmp_path: Path) -> dict[str, list[str]]:
    """Arguments that make each command do its work on a program with a warning (shown on stderr in colour)."""
    rules = str(write(tmp_path, WARNS))
    history = str(write(tmp_path, HISTORY, "history.csv"))
    database = str(tmp_path / "loyalty.db")
    if not Path(database).exists():  # customer and ledger read what run --db stored
        assert run("run", rules, history, "--db", database).exit_code == 0
    return {
        "check": [rules],
        "fmt": [rules],
        "run": [rules, history],
        "simulate": [rules, history],
        "explain": [rules, history, "--customer", "c1"],
        "graph": [rules],
        "generate": ["--customers", "1", "--days", "1", "--seed", "1"],
        "customer": ["c1", "--db", database],
        "ledger": ["--db", database],
    }


def test_every_command_is_covered(tmp_path: Path) -> None:
    assert set(every_command(tmp_path)) == set(cli.commands)


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_no_color_after_the_command_works_like_before_it(command: str, tmp_path: Path) -> None:
    args = every_command(tmp_path)[command]
    before = run("--no-color", command, *args)
    after = run(command, "--no-color", *args)
    at_the_end = run(command, *args, "--no-color")
    overriding = run("--color", command, "--no-color", *args)
    for result in (before, after, at_the_end, overriding):
        no_traceback(result)
        assert result.exit_code == before.exit_code, result.output
        assert "\x1b[" not in result.output
    if command != "generate":  # a random history: the same seed, but not worth comparing line by line
        assert after.output == before.output == at_the_end.output


def test_color_after_the_command_turns_colour_on(tmp_path: Path) -> None:
    path = str(write(tmp_path, BROKEN))
    assert "\x1b[" in run("check", "--color", path).output
    assert "\x1b[" in run("--no-color", "check", "--color", path).output  # the option nearer the command wins
    assert "\x1b[" in run("run", "--color", str(write(tmp_path, WARNS)),
                           str(write(tmp_path, HISTORY, "history.csv"))).output  # the warnings on stderr


# ------------------------------------------------------------------ --strict


def test_strict_makes_warnings_fail(tmp_path: Path) -> None:
    path = str(write(tmp_path, WARNS))
    assert run("check", path).exit_code == EXIT_OK
    strict = run("check", "--strict", path)
    assert strict.exit_code == EXIT_ERRORS
    assert "W201" in strict.output
    assert strict.output.rstrip().endswith("1 warning (--strict: warnings fail the check)")


def test_strict_with_json_fails_on_warnings_and_prints_them(tmp_path: Path) -> None:
    path = str(write(tmp_path, WARNS))
    result = run("check", "--strict", "--format", "json", path)
    assert result.exit_code == EXIT_ERRORS
    assert [d["code"] for d in json.loads(result.output)] == ["W201"]
    assert run("check", "--format", "json", path).exit_code == EXIT_OK


def test_strict_passes_a_clean_file_and_still_fails_errors(tmp_path: Path) -> None:
    assert run("check", "--strict", str(CAFE)).exit_code == EXIT_OK
    assert run("check", "--strict", str(write(tmp_path, BROKEN))).exit_code == EXIT_ERRORS


def test_strict_catches_the_misspelt_reward_and_names_the_declared_one(tmp_path: Path) -> None:
    path = str(write(tmp_path, 'reward free_drink "Free drink" value 3.50 EUR\nat 50 points grant free_drnk\n'))
    result = run("check", "--strict", path)
    assert result.exit_code == EXIT_ERRORS
    assert "did you mean 'free_drink' (declared on line 1)?" in result.output


def no_traceback_text(text: str) -> None:
    assert "Traceback" not in text and "internal error" not in text


# ------------------------------------------------------------------ fmt


def test_fmt_prints_formatted_text(tmp_path: Path) -> None:
    path = write(tmp_path, UNFORMATTED)
    result = run("fmt", str(path))
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout == (
        "earn 1 point per EUR\nat 50 points grant free_drink\n\ntier gold when spend_12m > 1000\n"
    )
    assert path.read_text(encoding="utf-8") == UNFORMATTED  # printing changes nothing


def test_fmt_check_names_the_file_and_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, UNFORMATTED)
    result = run("fmt", "--check", str(path))
    assert result.exit_code == EXIT_ERRORS
    assert str(path) in result.output
    assert path.read_text(encoding="utf-8") == UNFORMATTED


def test_fmt_check_formatted_file_exits_0() -> None:
    result = run("fmt", "--check", str(CAFE))
    assert result.exit_code == EXIT_OK, result.output


def test_fmt_write_rewrites_in_place_and_is_idempotent(tmp_path: Path) -> None:
    path = write(tmp_path, UNFORMATTED)
    path.chmod(0o640)
    result = run("fmt", "--write", str(path))
    assert result.exit_code == EXIT_OK, result.output
    assert path.read_text(encoding="utf-8") == run("fmt", str(write(tmp_path, UNFORMATTED, "copy.loyalty"))).stdout
    assert (path.stat().st_mode & 0o777) == 0o640
    assert run("fmt", "--check", str(path)).exit_code == EXIT_OK
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.loyalty", "rules.loyalty"]  # no temp file left


def test_fmt_write_leaves_an_unchanged_file_alone(tmp_path: Path) -> None:
    path = write(tmp_path, CAFE.read_text(encoding="utf-8"))
    os.utime(path, (1_000_000, 1_000_000))
    assert run("fmt", "--write", str(path)).exit_code == EXIT_OK
    assert path.stat().st_mtime == 1_000_000


def test_fmt_syntax_error_renders_and_never_writes(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    for args in (["fmt", str(path)], ["fmt", "--write", str(path)], ["fmt", "--check", str(path)]):
        result = run(*args)
        assert result.exit_code == EXIT_ERRORS
        assert f"{path}:2:10: P001" in result.stderr
        assert result.stdout == ""
        assert path.read_text(encoding="utf-8") == BROKEN


def test_fmt_not_utf8_is_reported_and_not_written(tmp_path: Path) -> None:
    raw = b'program "Caf\xe9"\n'
    path = write(tmp_path, raw)
    result = run("fmt", "--write", str(path))
    assert result.exit_code == EXIT_ERRORS
    assert "P006" in result.stderr
    assert path.read_bytes() == raw


def test_fmt_usage_errors(tmp_path: Path) -> None:
    a, b = write(tmp_path, BRIEF_LINE, "a.loyalty"), write(tmp_path, BRIEF_LINE, "b.loyalty")
    assert run("fmt", "--write", "--check", str(a)).exit_code == EXIT_USAGE
    assert run("fmt", str(a), str(b)).exit_code == EXIT_USAGE  # printing wants one file
    assert run("fmt", "--check", str(a), str(b)).exit_code in (EXIT_OK, EXIT_ERRORS)
    missing = run("fmt", str(tmp_path / "missing.loyalty"))
    assert missing.exit_code == EXIT_USAGE
    assert "cannot read" in missing.stderr
    assert run("fmt", "--write", "-", input=BRIEF_LINE).exit_code == EXIT_USAGE


def test_fmt_reads_standard_input() -> None:
    result = run("fmt", "-", input=UNFORMATTED)
    assert result.exit_code == EXIT_OK
    assert result.stdout.startswith("earn 1 point per EUR\n")


# ------------------------------------------------------------------ rendering


def _span(line: int, column: int, end_column: int) -> Span:
    return Span(line, column, line, end_column, 0, 0)


def test_render_shape_notes_help_and_summary() -> None:
    source = "earn 1 point per EUR\ntier gold when spnd_12m > 1000\n"
    diagnostics = [
        make("E101", "unknown name 'spnd_12m'", _span(2, 16, 24),
             ["did you mean 'spend_12m'?", "names are case sensitive"]),
        make("W201", "'free_drink' is not declared", _span(1, 1, 5)),
        make("E103", "Money and Points never mix", _span(2, 16, 30)),
    ]
    text = render_diagnostics(diagnostics, source, "r.loyalty", color=False)
    assert (
        "r.loyalty:2:16: E101 error: unknown name 'spnd_12m'\n"
        "  2 | tier gold when spnd_12m > 1000\n"
        "    |                ^~~~~~~~\n"
    ) in text
    assert "  = help: did you mean 'spend_12m'?\n  = note: names are case sensitive\n" in text
    assert "r.loyalty:1:1: W201 warning: 'free_drink' is not declared" in text
    assert text.rstrip().endswith("2 errors, 1 warning")
    assert summary_line([]) == "no problems found"


def test_render_span_past_the_line_and_zero_width() -> None:
    source = "earn 1 point per\n"
    zero = make("P003", "incomplete", _span(1, 17, 17))
    multi = make("P005", "never closed", Span(1, 6, 3, 1, 5, 40))
    text = render_diagnostics([zero, multi], source, "f", color=False, summary=False)
    assert "    |                 ^\n" in text  # zero width: one caret after the last character
    assert "    |      ^~~~~~~~~~~\n" in text  # to the end of its first line


def test_render_without_position_or_source() -> None:
    text = render_diagnostics([make("E124", "too many", Span(0, 0, 0, 0, 0, 0))], "", None, color=False)
    assert text.startswith("<string>: E124 error: too many\n")


def test_diagnostics_to_json_fields() -> None:
    item = diagnostics_to_json([make("P001", "m", Span(3, 4, 3, 9, 20, 25), ["a note"])], "x.loyalty")[0]
    assert item == {"file": "x.loyalty", "line": 3, "column": 4, "end_line": 3, "end_column": 9,
                    "code": "P001", "severity": "error", "message": "m", "notes": ["a note"]}


# ------------------------------------------------------------------ fuzz


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=400))
def test_random_bytes_never_crash(fuzz_dir: Path, content: bytes) -> None:
    path = write(fuzz_dir, content, "random.loyalty")
    for args in (["check", str(path)], ["fmt", "--check", str(path)]):
        result = run(*args)
        no_traceback(result)
        assert result.exit_code in (EXIT_OK, EXIT_ERRORS)


WORDS = [
    "earn", "point", "points", "per", "EUR", "USD", "at", "grant", "tier", "when", "every", "purchases", "visits",
    "on", "category", "sku", "if", "during", "limit", "times", "day", "month", "once", "keep", "reward", "value",
    "costs", "segment", "metric", "sum", "count", "of", "over", "amount", "purchase", "attribute", "event",
    "text", "money", "use", "with", "param", "program", "currency", "rounding", "down", "timezone", "points",
    "expire", "after", "pending", "for", "and", "or", "not", "true", "false", "gold", "silver", "free_drink",
    "spend_12m", "spend_lifetime", "tier", "x2", "1", "0", "50", "3.50", "1000", "30d", "12m", "0d", "1y",
    "2026-12-01", "2026-02-30", "..", '"beans"', '"Europe/Helsinki"', '"Mars/Base"', "event.channel",
    "(", ")", "+", "-", "*", "/", ">", ">=", "==", "=", ",", ":", ";", "\n", "#", "\t", "é", "€", "stamp_card",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.sampled_from(WORDS), max_size=40))
def test_random_statements_never_crash(fuzz_dir: Path, words: list[str]) -> None:
    path = write(fuzz_dir, " ".join(words), "words.loyalty")
    for args in (["check", str(path)], ["check", "--format", "json", str(path)], ["fmt", str(path)]):
        result = run(*args)
        no_traceback(result)
        assert result.exit_code in (EXIT_OK, EXIT_ERRORS)


# ------------------------------------------------------------------ the real console script


def _console_script() -> str:
    beside = Path(sys.executable).with_name("poletti")
    found = str(beside) if beside.exists() else shutil.which("poletti")
    assert found, "the poletti console script is not installed (pip install -e '.[test]')"
    return found


class TestConsoleScript:
    def test_check_exit_codes_and_output(self, tmp_path: Path) -> None:
        script = _console_script()
        env = {**os.environ, "NO_COLOR": "1"}
        bad = write(tmp_path, BROKEN)
        broken = subprocess.run([script, "check", str(bad)], capture_output=True, text=True, env=env,
                                stdin=subprocess.DEVNULL, timeout=120)
        assert broken.returncode == EXIT_ERRORS, broken.stderr
        assert f"{bad}:2:10: P001 error" in broken.stdout
        assert "    |          ^~~~~~~~" in broken.stdout
        assert "\x1b[" not in broken.stdout  # piped: no colour

        clean = subprocess.run([script, "check", str(CAFE)], capture_output=True, text=True, env=env,
                               stdin=subprocess.DEVNULL, timeout=120)
        assert clean.returncode == EXIT_OK, clean.stdout + clean.stderr

        missing = subprocess.run([script, "check", str(tmp_path / "missing.loyalty")], capture_output=True,
                                 text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)
        assert missing.returncode == EXIT_USAGE
        assert "Traceback" not in missing.stderr and "cannot read" in missing.stderr

    def test_version(self) -> None:
        done = subprocess.run([_console_script(), "--version"], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120)
        assert done.returncode == 0
        assert done.stdout.strip() == f"poletti {poletti.__version__}"


def test_files_written_by_commands_get_normal_permissions(tmp_path: Path) -> None:
    # Written through a private temporary file; the result must not stay 0600.
    umask = os.umask(0o022)
    try:
        new = tmp_path / "report.html"
        with atomic_output(str(new)) as handle:
            handle.write("<html></html>")
        assert new.read_text() == "<html></html>"
        assert new.stat().st_mode & 0o777 == 0o644
        kept = tmp_path / "rules.loyalty"
        kept.write_text("old")
        kept.chmod(0o600)
        with atomic_output(str(kept), binary=True) as handle:
            handle.write(b"new")
        assert kept.read_bytes() == b"new" and kept.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(umask)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "customers.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(str(target)) as handle:
            handle.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["customers.csv"]
    with pytest.raises(Unreadable):
        with atomic_output(str(tmp_path / "missing-dir" / "x.csv")):
            pass
