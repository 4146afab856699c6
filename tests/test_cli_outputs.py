"""What the commands write and print: outputs never replace inputs, and user data is never interpreted.

* Output files (``simulate --customers/--rejected/--report``, ``generate
  --out``, ``fmt --write``, ``run --db``) that are an input by any path, the
  same file twice, a FIFO, a folder or an empty name exit 2 and leave every
  file as it was; no temporary file survives a failure or a SIGTERM.
* CSV cells a spreadsheet would run are neutralised; figures are not.
* File names are never rich markup; control characters in ids, reasons and
  paths reach the terminal escaped; reasons cut long values.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import simulate_cases as cases
from click.testing import CliRunner, Result

from poletti.cli import EXIT_OK, EXIT_USAGE, cli
from poletti.commands.outputs import TEMP_MARK, json_for_terminal, shown, spreadsheet_cell, terminal_text


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.chdir(tmp_path)
    rules = tmp_path / "rules.loyalty"
    rules.write_text(cases.RULES, encoding="utf-8")
    old = tmp_path / "old.loyalty"
    old.write_text(cases.BASELINE_RULES, encoding="utf-8")
    return {"rules": rules, "old": old, "csv": cases.write_csv(tmp_path / "history.csv", cases.EVENTS),
            "dir": tmp_path}


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry of the folder: a file's bytes, or what else it is (so nothing may appear or change)."""
    out: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            out[name] = "link to " + os.readlink(path)
        elif path.is_fifo():
            out[name] = "fifo"
        elif path.is_dir():
            out[name] = "folder"
        else:
            out[name] = path.read_bytes()
    return out


def refused(result: Result, *words: str) -> None:
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    for word in words:
        assert word in result.output, result.output


# ------------------------------------------------------------------ outputs never replace inputs


@pytest.mark.parametrize("make, args, words", [
    (None, ["--customers", "history.csv"], ["--customers 'history.csv' is HISTORY"]),
    (None, ["--report", "./rules.loyalty"], ["--report './rules.loyalty' is RULES"]),
    (None, ["--rejected", "history.csv"], ["--rejected 'history.csv' is HISTORY"]),
    (None, ["--baseline", "old.loyalty", "--report", "old.loyalty"], ["--report 'old.loyalty' is --baseline"]),
    ("symlink", ["--customers", "link.csv"], ["'link.csv' is HISTORY 'history.csv' (the same file)"]),
    ("hardlink", ["--rejected", "hard.csv"], ["'hard.csv' is HISTORY 'history.csv' (the same file)"]),
    ("symlinked-folder", ["--report", "alias/history.csv"], ["is HISTORY"]),
    (None, ["--customers", "out.csv", "--rejected", "./out.csv"], ["are the same file"]),
    ("symlink-out", ["--customers", "out.csv", "--report", "link-out.csv"], ["are the same file"]),
    ("fifo", ["--customers", "fifo"], ["'fifo' is a FIFO"]),
    ("folder", ["--report", "folder"], ["'folder' is a folder"]),
    (None, ["--report", ""], ["--report: the file name is empty"]),
    (None, ["--customers", "-"], ["--customers -", "standard output"]),
    (None, ["--rejected", "missing/out.csv"], ["the folder", "does not exist"]),
])
def test_simulate_refuses_an_output_that_is_an_input_or_not_a_file(files: dict[str, Path], make: str | None,
                                                                   args: list[str], words: list[str]) -> None:
    folder = files["dir"]
    if make == "symlink":
        (folder / "link.csv").symlink_to("history.csv")
    elif make == "hardlink":
        os.link(folder / "history.csv", folder / "hard.csv")
    elif make == "symlinked-folder":
        (folder / "alias").symlink_to(folder)
    elif make == "symlink-out":
        (folder / "link-out.csv").symlink_to("out.csv")  # dangling: out.csv does not exist yet
    elif make == "fifo":
        os.mkfifo(folder / "fifo")
    elif make == "folder":
        (folder / "folder").mkdir()
    before = snapshot(folder)
    refused(run("simulate", "rules.loyalty", "history.csv", *args), *words)
    assert snapshot(folder) == before  # inputs byte-identical, nothing written, no temporary file


def test_an_output_inside_a_parquet_dataset_folder_is_an_input(files: dict[str, Path]) -> None:
    dataset = files["dir"] / "dataset"
    dataset.mkdir()
    cases.write_parquet(dataset / "part-0.parquet", cases.EVENTS)
    before = snapshot(files["dir"])
    refused(run("simulate", "rules.loyalty", "dataset", "--customers", "dataset/part-0.parquet"), "is HISTORY")
    assert snapshot(files["dir"]) == before


def test_outputs_that_are_new_distinct_files_are_written(files: dict[str, Path]) -> None:
    result = run("simulate", "rules.loyalty", "history.csv", "--baseline", "old.loyalty", "--customers", "c.csv",
                 "--rejected", "r.csv", "--report", "report.html")
    assert result.exit_code == EXIT_OK, result.output
    assert {p.name for p in files["dir"].iterdir()} == {"rules.loyalty", "old.loyalty", "history.csv", "c.csv",
                                                       "r.csv", "report.html"}


@pytest.mark.parametrize("args, kept", [
    ((), False),  # the summary alone holds no customer
    (("--json",), False),
    (("--customers", "c.csv"), True),
    (("--report", "report.html"), False),  # without a baseline the report shows no per-customer change
    (("--report", "report.html", "--baseline", "old.loyalty"), True),
    (("--baseline", "old.loyalty"), False),  # the group changes are added up shard by shard
])
def test_simulate_keeps_each_customers_figures_only_for_an_output_that_lists_them(
        files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], kept: bool) -> None:
    from poletti.interpreter.simulate import columnar

    asked: list[bool] = []
    real = columnar.simulate_file

    def watched(*a: object, keep_standings: bool = True, **k: object) -> object:
        asked.append(keep_standings)
        return real(*a, keep_standings=keep_standings, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(columnar, "simulate_file", watched)
    result = run("simulate", "rules.loyalty", "history.csv", *args)
    assert result.exit_code == EXIT_OK, result.output
    assert asked == [kept]
    if "--customers" in args:
        assert len((files["dir"] / "c.csv").read_text(encoding="utf-8").splitlines()) > 1


def test_generate_refuses_empty_fifo_and_folder_targets_but_writes_stdout(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    os.mkfifo("fifo")
    os.mkdir("folder")
    before = snapshot(tmp_path)
    base = ["generate", "--customers", "2", "--days", "2", "--seed", "1"]
    refused(run(*base, "--out", ""), "--out: the file name is empty")
    refused(run(*base, "--out", "fifo"), "'fifo' is a FIFO")
    refused(run(*base, "--out", "folder"), "'folder' is a folder")
    refused(run(*base, "--out", "", "--partitions", "2"), "empty")
    assert snapshot(tmp_path) == before
    result = run(*base, "--out", "-")
    assert result.exit_code == EXIT_OK and result.stdout.startswith("id,type,customer,at")


def test_fmt_write_refuses_a_fifo_without_reading_it(tmp_path: Path) -> None:
    fifo = tmp_path / "rules.loyalty"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    refused(run("fmt", "--write", str(fifo)), "is a FIFO")
    assert fifo.is_fifo()
    refused(run("fmt", "--write", ""), "empty")


def test_run_refuses_a_store_that_is_an_input(files: dict[str, Path]) -> None:
    before = snapshot(files["dir"])
    refused(run("run", "rules.loyalty", "history.csv", "--db", "./history.csv"), "--db './history.csv' is EVENTS")
    refused(run("run", "rules.loyalty", "history.csv", "--db", "rules.loyalty"), "is RULES")
    assert snapshot(files["dir"]) == before


# ------------------------------------------------------------------ no temporary file left behind


def test_a_failed_simulate_leaves_no_output_and_no_temporary_file(files: dict[str, Path]) -> None:
    (files["dir"] / "broken.csv").write_text("id,type\nx,purchase\n", encoding="utf-8")  # no customer, no at
    before = snapshot(files["dir"])
    result = run("simulate", "rules.loyalty", "broken.csv", "--rejected", "r.csv", "--customers", "c.csv")
    assert result.exit_code == EXIT_USAGE, result.output
    assert snapshot(files["dir"]) == before


def test_an_interrupted_simulate_leaves_no_temporary_file(files: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import poletti.interpreter.simulate.columnar as columnar

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(columnar, "simulate_file", interrupted)
    before = snapshot(files["dir"])
    result = run("simulate", "rules.loyalty", "history.csv", "--rejected", "r.csv")
    assert result.exit_code != EXIT_OK
    assert snapshot(files["dir"]) == before


SIGTERM_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from poletti.commands.outputs import atomic_output

    folder, mode = sys.argv[1], sys.argv[2]
    with atomic_output(os.path.join(folder, "out.csv")) as handle:
        handle.write("half")
        handle.flush()
        temps = [n for n in os.listdir(folder) if n.startswith(".out.csv.poletti-tmp-")]
        assert len(temps) == 1, os.listdir(folder)
        if mode == "child":  # a forked worker stopped by SIGTERM must not remove its parent's file
            pid = os.fork()
            if pid == 0:
                # The child has the default disposition back, not the parent's Python-level handler: a
                # worker blocked on its task queue's lock then always dies of Pool.terminate's SIGTERM
                # (a Python handler runs only once the wait is interrupted, and a signal that arrives
                # just before the worker blocks interrupts nothing: the pool waited for it for ever).
                if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
                    os._exit(3)
                os.kill(os.getpid(), signal.SIGTERM)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, status
            assert os.path.exists(os.path.join(folder, temps[0]))
            assert signal.getsignal(signal.SIGTERM).__name__ == "_on_signal"  # the parent keeps its own
        else:
            os.kill(os.getpid(), signal.SIGTERM)
    print("block ended")
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX signals")
def test_sigterm_while_writing_removes_the_temporary_file_and_still_kills(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SIGTERM_SCRIPT, str(tmp_path), "self"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == -15, done.stdout + done.stderr  # died of SIGTERM, as without a handler
    assert "block ended" not in done.stdout
    assert list(tmp_path.iterdir()) == []  # neither out.csv nor its temporary file


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX signals")
def test_a_forked_worker_stopped_by_sigterm_leaves_the_parents_file_alone(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SIGTERM_SCRIPT, str(tmp_path), "child"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "block ended" in done.stdout, done.stdout + done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # written whole when the block ended
    assert (tmp_path / "out.csv").read_text() == "half"


# ------------------------------------------------------------------ CSV cells a spreadsheet would run


def test_spreadsheet_cell_neutralises_formulas_and_keeps_plain_numbers() -> None:
    for cell in ("=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx", "-", "-1e5"):
        assert spreadsheet_cell(cell) == "'" + cell
    for cell in ("-5", "-3.50", "+7", "12", "c42", "", "'quoted", "a=b"):
        assert spreadsheet_cell(cell) == cell
    assert spreadsheet_cell(-5) == -5


def test_customers_and_rejected_files_neutralise_user_text_not_figures(files: dict[str, Path]) -> None:
    events = [*cases.EVENTS,
              cases._e("=p9", "purchase", '=HYPERLINK("http://x","y")', "2026-03-16T10:00:00Z", amount="12.00"),
              cases._e("@p10", "purchase", "-5", "2026-03-16T11:00:00Z", amount="3.00"),
              cases._e("+p11", "purchase", "-2+3", "2026-03-16T12:00:00Z")]  # no amount: rejected
    cases.write_csv(files["dir"] / "history.csv", events)
    result = run("simulate", "rules.loyalty", "history.csv", "--baseline", "old.loyalty", "--customers", "c.csv",
                 "--rejected", "r.csv")
    assert result.exit_code == EXIT_OK, result.output
    customers = {row["customer"]: row for row in csv.DictReader(io.StringIO((files["dir"] / "c.csv").read_text()))}
    assert set(customers) == {"c1", "c2", "c3", "'=HYPERLINK(\"http://x\",\"y\")", "-5"}
    # Figures stay figures, negative ones too: c1 is 30 points in debt after the refund (simulate_cases).
    assert customers["c1"]["points"] == "-30"
    assert customers["'=HYPERLINK(\"http://x\",\"y\")"]["points"] == "12"
    assert customers["-5"]["spend"] == "3.00"
    assert int(customers["c1"]["delta_points"]) < 0 and not customers["c1"]["delta_points"].startswith("'")
    rejected = list(csv.DictReader(io.StringIO((files["dir"] / "r.csv").read_text())))
    mine = [row for row in rejected if row["event_id"] == "'+p11"]
    assert len(mine) == 1 and mine[0]["customer"] == "'-2+3" and mine[0]["reason"] == "a purchase needs an 'amount'"
    assert {row["event_id"] for row in rejected} == {"bad", "x3", "'+p11"}


# ------------------------------------------------------------------ nothing a user typed is interpreted


def test_a_path_that_looks_like_markup_is_printed_as_it_is(files: dict[str, Path]) -> None:
    (files["dir"] / "h[").mkdir()
    cases.write_csv(files["dir"] / "h[" / "x].csv", cases.EVENTS)
    (files["dir"] / "[red]r.loyalty").write_text(cases.RULES, encoding="utf-8")
    result = run("simulate", "[red]r.loyalty", "h[/x].csv", "--report", ":smile:[b].html")
    assert result.exit_code == EXIT_OK, result.output
    assert "events of h[/x].csv through [red]r.loyalty" in result.output
    assert "wrote :smile:[b].html" in result.output
    assert (files["dir"] / ":smile:[b].html").exists()


def test_shown_and_terminal_text_make_control_characters_visible() -> None:
    assert shown("a\x1b[31mb\rc\td\ne\x9b\u202e\x7f") == "a\\x1b[31mb\\rc\\td\\ne\\x9b\\u202e\\x7f"
    assert shown(b"h\xff.csv".decode("utf-8", "surrogateescape")) == "h\\xff.csv"  # the byte, as it is
    assert terminal_text("one\x1b[2J\ntwo\r\n") == "one\\x1b[2J\ntwo\\r\n"  # lines stay lines
    assert shown("plain ünïcode ☕ id") == "plain ünïcode ☕ id"
    assert json.loads(json_for_terminal(json.dumps({"id": "a\x9bb\u2028"}, ensure_ascii=False))) == \
        {"id": "a\x9bb\u2028"}
    assert "\x9b" not in json_for_terminal(json.dumps("a\x9b", ensure_ascii=False))


HOSTILE_ID = "e\x1b[31m\r"
HOSTILE_CUSTOMER = "c\x1b]0;pwned\x07\x9b"


def hostile_history(folder: Path) -> Path:
    events = [{"id": HOSTILE_ID, "type": "purchase", "customer": HOSTILE_CUSTOMER, "at": "2026-01-02T10:00:00Z"},
              {"id": "ok\x1b[1m", "type": "purchase", "customer": HOSTILE_CUSTOMER, "at": "2026-01-03T10:00:00Z",
               "amount": "60.00"}]
    return cases.write_jsonl(folder / "hostile.jsonl", events)


def raw_controls(text: str) -> set[str]:
    return {ch for ch in text if (ord(ch) < 32 and ch != "\n") or 0x7f <= ord(ch) <= 0x9f}


def test_control_characters_in_ids_reach_the_terminal_escaped(files: dict[str, Path]) -> None:
    hostile_history(files["dir"])
    table = run("simulate", "rules.loyalty", "hostile.jsonl")
    assert table.exit_code == EXIT_OK, table.output
    assert raw_controls(table.output) == set()
    assert "row 1 (e\\x1b[31m\\r): a purchase needs an 'amount'" in table.output

    ran = run("run", "rules.loyalty", "hostile.jsonl")
    assert ran.exit_code == EXIT_OK, ran.output
    assert raw_controls(ran.output) == set()
    assert "rejected e\\x1b[31m\\r (line 1): a purchase needs an 'amount'" in ran.output
    assert "purchase ok\\x1b[1m (customer c\\x1b]0;pwned\\x07\\x9b)" in ran.output

    as_json = run("run", "rules.loyalty", "hostile.jsonl", "--json")
    assert raw_controls(as_json.stdout) == set()
    assert [json.loads(line)["customer"] for line in as_json.stdout.splitlines()][:2] == [HOSTILE_CUSTOMER] * 2

    story = run("explain", "rules.loyalty", "hostile.jsonl", "--customer", HOSTILE_CUSTOMER)
    assert story.exit_code == EXIT_OK, story.output
    assert raw_controls(story.output) == set()
    assert story.output.startswith("Customer c\\x1b]0;pwned\\x07\\x9b: 2 events in ")

    unknown = run("explain", "rules.loyalty", "hostile.jsonl", "--customer", "x\x1b[2J")
    assert raw_controls(unknown.output) == set() and "x\\x1b[2J" in unknown.output


def test_control_characters_are_escaped_by_customer_ledger_and_error_messages(files: dict[str, Path]) -> None:
    hostile_history(files["dir"])
    assert run("run", "rules.loyalty", "hostile.jsonl", "--db", "store.db").exit_code == EXIT_OK
    member = run("customer", HOSTILE_CUSTOMER, "--db", "store.db")
    assert member.exit_code == EXIT_OK, member.output
    assert raw_controls(member.output) == set() and "Customer c\\x1b]0;pwned\\x07\\x9b" in member.output
    ledger = run("ledger", "--db", "store.db")
    assert ledger.exit_code == EXIT_OK and raw_controls(ledger.output) == set()
    assert "ok\\x1b[1m" in ledger.output
    missing = run("simulate", "rules.loyalty", "no\x1b[2Jsuch.csv")
    assert missing.exit_code == EXIT_USAGE and raw_controls(missing.output) == set()
    assert "no\\x1b[2Jsuch.csv" in missing.output


# ------------------------------------------------------------------ reasons cut long values


def test_a_megabyte_value_is_cut_in_the_reason(files: dict[str, Path]) -> None:
    amount = "=" + "9" * 1_000_000
    events = [{"id": "big", "type": "purchase", "customer": "c1", "at": "2026-01-02T10:00:00Z", "amount": amount},
              {"id": "late", "type": "purchase", "customer": "c1", "at": "2026-01-03" + "0" * 200_000,
               "amount": "1"},
              {"id": "what", "type": "x" * 100_000, "customer": "c1", "at": "2026-01-04T10:00:00Z"}]
    cases.write_jsonl(files["dir"] / "big.jsonl", events)
    result = run("run", "rules.loyalty", "big.jsonl")
    assert result.exit_code == EXIT_OK, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("rejected")]
    assert len(lines) == 3, result.output
    assert all(len(line) < 250 for line in lines), [len(line) for line in lines]
    assert "not a decimal number: '=999999999" in lines[0]
    assert "9…9" in lines[0] and "9' (1,000,001 characters)" in lines[0]
    assert "(200,010 characters)" in lines[1]
    assert "unknown event type 'xxx" in lines[2] and "(100,000 characters)" in lines[2]
    assert run("simulate", "rules.loyalty", "big.jsonl", "--rejected", "r.csv").exit_code == EXIT_OK
    assert len((files["dir"] / "r.csv").read_text()) < 1000


def test_a_usage_error_shows_what_was_typed_with_its_control_characters_visible() -> None:
    result = run("check", "--\x1b[31mred", "rules.loyalty")
    assert result.exit_code == EXIT_USAGE
    assert "No such option '--\\x1b[31mred'" in result.output
    assert "\x1b" not in result.output
    assert run("check", "--help").exit_code == EXIT_OK  # click's own exits keep their codes
