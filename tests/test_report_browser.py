"""The README's report, rendered by a real browser: headless Chromium (Debian's ``chromium`` package).

The README's main command writes the café's report (v2 against v1); Chromium
loads it from the file and prints the DOM it built, and takes a screenshot.
From that DOM: the charts are there (inline ``svg`` elements with drawn
content), the tables have rows, and there is no script at all (so none can
fail); Chromium's log holds no console error.

Without Chromium the test is skipped, saying why; with
``POLETTI_REQUIRE_BROWSER=1`` (CI, whose ``.ci/run`` installs it) it fails
instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from poletti.cli import cli

ROOT = Path(__file__).resolve().parents[1]
CAFE = ROOT / "examples" / "cafe"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT = 90  # seconds per browser run: a busy CI machine is slow to start one


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    reason = f"no headless browser ({', '.join(BROWSERS)}) on PATH: apt-get install chromium"
    if os.environ.get("POLETTI_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " (POLETTI_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


class Dom(HTMLParser):
    """What the report test reads from the DOM: svg elements with their drawn children, tables' rows, scripts."""

    DRAWN = {"path", "g", "rect", "line", "polyline", "polygon", "circle", "text", "use"}

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[int] = []  # drawn elements inside each svg
        self.tables: list[int] = []  # body rows of each table
        self.scripts = 0
        self.headings: list[str] = []
        self._in_svg = self._in_table = self._in_body = self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg" and not self._in_svg:
            self._in_svg = True
            self.svgs.append(0)
        elif self._in_svg and tag in self.DRAWN:
            self.svgs[-1] += 1
        elif tag == "table":
            self._in_table = True
            self.tables.append(0)
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_table and self._in_body:
            self.tables[-1] += 1
        elif tag == "script":
            self.scripts += 1
        elif tag == "h2":
            self._in_heading = True
            self.headings.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._in_svg = False
        elif tag == "table":
            self._in_table = self._in_body = False
        elif tag == "tbody":
            self._in_body = False
        elif tag == "h2":
            self._in_heading = False

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self.headings[-1] += data


def headless(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{binary} did not finish within {TIMEOUT} s: {' '.join(command)}")


@pytest.mark.slow  # the café's replay and two browser starts: 5–20 s
def test_the_readme_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    binary = browser()
    report = tmp_path / "report.html"
    made = CliRunner().invoke(cli, ["simulate", str(CAFE / "rules_v2.loyalty"), str(CAFE / "history.csv"),
                                    "--baseline", str(CAFE / "rules_v1.loyalty"), "--report", str(report)])
    assert made.exit_code == 0, made.output
    url = report.resolve().as_uri()

    dumped = headless(binary, tmp_path / "profile-dom", "--dump-dom", url)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = Dom()
    dom.feed(dumped.stdout)
    assert "<html" in dumped.stdout and "</body>" in dumped.stdout, dumped.stdout[:500]
    assert dom.scripts == 0  # a report without scripts: nothing to fail, nothing to block offline
    console = [line for line in dumped.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    # The café report's charts: the comparison, the deltas, points, rewards, tiers, purchases.
    assert len(dom.svgs) >= 6, dom.svgs
    assert all(drawn >= 10 for drawn in dom.svgs), dom.svgs  # every chart has drawn content
    assert len(dom.tables) >= 3 and all(rows > 0 for rows in dom.tables), dom.tables
    for heading in ("Summary", "Compared with the baseline", "Points over time", "Program effect"):
        assert heading in dom.headings, dom.headings

    shot = tmp_path / "report.png"
    pictured = headless(binary, tmp_path / "profile-png", f"--screenshot={shot}", "--window-size=1280,2400", url)
    assert pictured.returncode == 0, pictured.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one
