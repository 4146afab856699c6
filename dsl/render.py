"""Diagnostics for people and for tools.

``render_diagnostics(diagnostics, source_text, filename, color) -> str`` turns
diagnostics into the text ``poletti check`` prints::

    rules.loyalty:2:6: P001 error: unexpected 'many'
      2 | earn many points per EUR
        |      ^~~~
      = note: expected a number
      = help: did you mean 'earn'?

    1 error

``diagnostics_to_json(diagnostics, filename) -> list[dict]`` gives the same
facts as plain data for editors and CI.

The source line is shown as a terminal would show it: tabs are expanded to
the next multiple of ``TAB_WIDTH``, East Asian wide characters take two
cells and combining marks none, so the caret lands under the character the
column counts (columns count characters, 1-based). Control and bidi
characters are shown as ``�`` so a hostile file cannot move the cursor,
colour the terminal or reorder the line it is displayed on; a very long line
is cut to a window around the caret.
"""

from __future__ import annotations

import io
import unicodedata
from typing import Any, Iterable, Sequence

from poletti.dsl.diagnostics import ERROR, WARNING, Diagnostic

TAB_WIDTH = 4
# The widest source excerpt shown, in terminal cells; longer lines are cut
# to a window around the caret with '…' at the cut ends.
MAX_EXCERPT = 120
REPLACEMENT = "\ufffd"

# Characters that reorder text on display (the "Trojan Source" set): shown
# replaced, so what the reader sees is what the parser read.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

_STYLES = {
    "error": "bold red",
    "warning": "bold yellow",
    "location": "bold",
    "code": "bold",
    "message": "bold",
    "gutter": "blue",
    "caret_error": "bold red",
    "caret_warning": "bold yellow",
    "note": "cyan",
    "help": "green",
}


# ------------------------------------------------------------ display cells


def _cell_width(ch: str) -> int:
    """How many terminal cells a (printable) character takes."""
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _visible(ch: str) -> bool:
    category = unicodedata.category(ch)
    return not (category in ("Cc", "Cs", "Co", "Cn", "Zl", "Zp") or ch in _BIDI_CONTROLS)


def clean(text: str) -> str:
    """``text`` with control, bidi and unpaired-surrogate characters replaced (keeps tabs)."""
    return "".join(ch if ch == "\t" or _visible(ch) else REPLACEMENT for ch in text)


def _display_cells(line: str) -> list[tuple[str, int]]:
    """Each character of ``line`` as (what is printed, cells it takes), tabs expanded."""
    cells: list[tuple[str, int]] = []
    at = 0
    for ch in line:
        if ch == "\t":
            width = TAB_WIDTH - at % TAB_WIDTH
            cells.append((" " * width, width))
        elif not _visible(ch):
            cells.append((REPLACEMENT, 1))
            width = 1
        else:
            width = _cell_width(ch)
            cells.append((ch, width))
        at += width
    return cells


def excerpt(line: str, start_col: int, end_col: int) -> tuple[str, int, int]:
    """The line as displayed, and where the marker starts and how many cells it spans.

    ``start_col`` and ``end_col`` are 1-based character columns of the span
    on this line (``end_col`` exclusive); a span of no width still gets a
    one-cell marker.
    """
    cut_before = cut_after = False
    if len(line) > _LONG_LINE:
        # Only the characters around the marker can be shown: look at those
        # alone, so a megabyte line costs what a short one does (tab stops then
        # count from the cut, which only shifts what is shown after a tab).
        first = max(0, start_col - 1 - _LONG_LINE // 2)
        cut_before, cut_after = first > 0, first + _LONG_LINE < len(line)
        line = line[first:first + _LONG_LINE]
        start_col, end_col = start_col - first, end_col - first
    cells = _display_cells(line)
    start = max(0, min(start_col - 1, len(cells)))
    end = max(start, min(end_col - 1, len(cells)))
    before = sum(w for _, w in cells[:start])
    width = max(1, sum(w for _, w in cells[start:end]))
    text = "".join(s for s, _ in cells)
    total = sum(w for _, w in cells)
    if total <= MAX_EXCERPT and not (cut_before or cut_after):
        return text, before, width
    return _window(cells, before, width, cut_before, cut_after)


# Lines longer than this (in characters) are cut around the marker before they are measured.
_LONG_LINE = 1000


def _window(cells: list[tuple[str, int]], before: int, width: int,
            cut_before: bool = False, cut_after: bool = False) -> tuple[str, int, int]:
    """Cut an over-long displayed line to about MAX_EXCERPT cells around the marker.

    ``cut_before``/``cut_after``: the cells are already a piece of a longer
    line, so that end gets its '…' in any case.
    """
    width = min(width, MAX_EXCERPT // 2)
    lo = max(0, before - MAX_EXCERPT // 3)
    hi = lo + MAX_EXCERPT
    out: list[str] = []
    at = 0
    shown_from = None
    for text, w in cells:
        if at >= lo and at + w <= hi:
            if shown_from is None:
                shown_from = at
            out.append(text)
        at += w
    shown_from = lo if shown_from is None else shown_from
    prefix = "…" if shown_from > 0 or cut_before else ""
    suffix = "…" if at > hi or cut_after else ""
    return prefix + "".join(out) + suffix, len(prefix) + before - shown_from, width


# ------------------------------------------------------------------ text output


def summary_line(diagnostics: Iterable[Diagnostic]) -> str:
    """``2 errors, 1 warning`` (or ``no problems found``)."""
    found = list(diagnostics)
    errors = sum(1 for d in found if d.severity == ERROR)
    warnings = sum(1 for d in found if d.severity == WARNING)
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return ", ".join(parts) if parts else "no problems found"


def _shorten(text: str, limit: int = 2 * MAX_EXCERPT) -> str:
    """A message quoting a huge token keeps its head and tail (JSON output keeps it whole)."""
    if len(text) <= limit:
        return text
    keep = limit // 2
    return text[:keep] + "…" + text[-keep // 4:]


def _note_kind(note: str) -> str:
    return "help" if note.lower().startswith("did you mean") else "note"


def _pieces(diagnostic: Diagnostic, lines: Sequence[str], filename: str) -> list[tuple[str, str]]:
    """One diagnostic as (text, style) pieces; the style names index _STYLES ('' = plain)."""
    span = diagnostic.span
    severity = diagnostic.severity
    where = f"{filename}:{span.line}:{span.column}" if span.line > 0 else filename
    pieces = [
        (where, "location"), (": ", ""),
        (diagnostic.code, "code"), (" ", ""),
        (severity, severity if severity in _STYLES else ""), (": ", ""),
        (_shorten(clean(diagnostic.message)), "message"), ("\n", ""),
    ]
    if 0 < span.line <= len(lines):
        line = lines[span.line - 1]
        end_col = span.end_column if span.end_line == span.line else len(line) + 1
        shown, before, width = excerpt(line, span.column, end_col)
        number = str(span.line)
        gutter = " " * len(number)
        caret = "^" + "~" * (width - 1)
        pieces += [
            (f"  {number} | ", "gutter"), (shown.rstrip(), ""), ("\n", ""),
            (f"  {gutter} | ", "gutter"), (" " * before, ""),
            (caret, "caret_error" if severity == ERROR else "caret_warning"), ("\n", ""),
        ]
    for note in diagnostic.notes:
        kind = _note_kind(note)
        pieces += [(f"  = {kind}: ", kind), (_shorten(clean(note)), ""), ("\n", "")]
    pieces.append(("\n", ""))  # a blank line between diagnostics
    return pieces


def render_diagnostics(
    diagnostics: Iterable[Diagnostic],
    source_text: str,
    filename: str | None,
    color: bool,
    *,
    summary: bool = True,
) -> str:
    """Diagnostics as text: location, code, message, source line, caret, notes; then a summary.

    ``color`` adds ANSI colours (for a terminal); without it the text is
    plain. ``summary=False`` leaves out the closing ``2 errors, 1 warning``
    line (``poletti check`` prints one for all its files instead).
    """
    found = list(diagnostics)
    # Not splitlines(): it also splits at \x0b, \x1c, U+2028…, the parser only at \n.
    lines = source_text.split("\n")
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    name = clean(filename) if filename else "<string>"
    pieces: list[tuple[str, str]] = []
    for diagnostic in found:
        pieces += _pieces(diagnostic, lines, name)
    if summary:
        pieces.append((summary_line(found), "error" if any(d.severity == ERROR for d in found) else ""))
        pieces.append(("\n", ""))
    if not color:
        return "".join(text for text, _ in pieces)
    return _colored(pieces)


def _colored(pieces: list[tuple[str, str]]) -> str:
    from rich.console import Console
    from rich.text import Text

    text = Text(no_wrap=True, end="")
    for chunk, style in pieces:
        text.append(chunk, style=_STYLES.get(style, "") or None)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="standard", width=10_000,
                      soft_wrap=True, highlight=False, emoji=False, markup=False, legacy_windows=False)
    console.print(text, end="")
    return out.getvalue()


# ------------------------------------------------------------------ JSON output


def diagnostics_to_json(diagnostics: Iterable[Diagnostic], filename: str | None = None) -> list[dict[str, Any]]:
    """Diagnostics as plain dicts (lines and columns 1-based; columns count characters)."""
    return [
        {
            "file": filename,
            "line": d.span.line,
            "column": d.span.column,
            "end_line": d.span.end_line,
            "end_column": d.span.end_column,
            "code": d.code,
            "severity": d.severity,
            "message": d.message,
            "notes": list(d.notes),
        }
        for d in diagnostics
    ]
