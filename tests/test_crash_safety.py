"""``poletti run --db``: killed at any moment, run again, it ends exactly where an uninterrupted run does.

A real process (the installed console script) is SIGKILLed 20 times at
random moments while it feeds a café history into an SQLite store (more,
on a new file, when a busy machine let a run end before its kill), and is
then run to the end; each file must then hold the same customer states,
schedule, receipts and ledger as a store filled by one uninterrupted run
— no event lost, none applied twice, no half-applied event.
"""

from __future__ import annotations

import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "examples" / "cafe" / "rules_v2.loyalty"  # earn, stamp cards, tiers, a campaign, expiry


def _console_script() -> str:
    beside = Path(sys.executable).with_name("poletti")
    found = str(beside) if beside.exists() else shutil.which("poletti")
    assert found, "the poletti console script is not installed (pip install -e '.[test]')"
    return found


def contents(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """What a store holds that must not depend on interruptions (the ledger without its numbering)."""
    with sqlite3.connect(path) as db:
        return {
            "customers": db.execute("SELECT id, state, next_change FROM customers ORDER BY id").fetchall(),
            "events": db.execute("SELECT id, customer, fingerprint, content FROM events ORDER BY rowid").fetchall(),
            "ledger": db.execute("SELECT customer, event_id, at, kind, points, balance, pending, program, rule, "
                                 "reward, count, lot, expires_at, available_at FROM ledger ORDER BY seq").fetchall(),
            "clock": db.execute("SELECT value FROM meta WHERE key = 'clock'").fetchall(),
            "programs": db.execute("SELECT hash, first_entry FROM programs ORDER BY seq").fetchall(),
        }


def applied(path: Path) -> int:
    """Events applied so far (0 when a kill came before the store's tables were made)."""
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.OperationalError:  # no tables yet: the first transaction was cut short
        return 0


@pytest.mark.slow
def test_a_run_killed_twenty_times_then_finished_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    script = _console_script()
    history = tmp_path / "history.csv"
    subprocess.run([script, "generate", "--customers", "80", "--days", "200", "--seed", "7", "-o", str(history)],
                   check=True, capture_output=True, timeout=120)
    command = [script, "run", str(RULES), str(history), "--db"]

    subprocess.run([script, "check", str(RULES)], capture_output=True, timeout=120)  # parser tables cached first
    whole = tmp_path / "whole.db"
    started = time.monotonic()
    subprocess.run([*command, str(whole)], check=True, capture_output=True, timeout=600)
    duration = time.monotonic() - started
    total = len(contents(whole)["events"])

    rng = random.Random(20261201)
    # On a busy machine a kill can come after the run has ended (the poll below is late): no later kill can then
    # cut that file short, so the kills go on against a new file. Every file is finished and compared below.
    files = [tmp_path / "crashed-0.db"]
    cut_short = 0  # kills that left a file part-way: some events applied, not all
    for attempt in range(40):
        if attempt >= 20 and cut_short >= 10:
            break
        crashed = files[-1]
        before = applied(crashed)
        if before == total:
            crashed = tmp_path / f"crashed-{len(files)}.db"
            files.append(crashed)
            before = 0
        # Killed once it has applied a random share of what is left: mid-run whatever the machine's speed.
        target = before + rng.randint(1, max(1, (total - before) // 3))
        process = subprocess.Popen([*command, str(crashed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10 * duration + 30
        while process.poll() is None and applied(crashed) < target and time.monotonic() < deadline:
            time.sleep(0.005)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        if 0 < applied(crashed) < total:
            cut_short += 1
    assert cut_short >= 10, cut_short  # the runs were really cut short, at different points

    expected = contents(whole)
    assert len(expected["events"]) > 500 and len(expected["ledger"]) > 500
    for crashed in files:
        earlier = applied(crashed)
        finished = subprocess.run([*command, str(crashed)], capture_output=True, text=True, timeout=600)
        assert finished.returncode == 0, finished.stderr
        if earlier:
            assert "duplicate" in finished.stderr  # (the events applied before a kill are skipped as such)
        actual = contents(crashed)
        for table in expected:
            assert actual[table] == expected[table], (crashed.name, table)
