"""The whole front end in one call: bytes or text → checked program + diagnostics.

``analyze(text)`` parses and checks; ``analyze_bytes(raw)`` first decodes
UTF-8 and reports undecodable bytes as P006 (the rest of the file is still
checked, with the bad bytes replaced, so every other problem shows too).
Neither ever raises for bad input.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator

from poletti.dsl import checker, classes, ranges
from poletti.dsl.ast import Span
from poletti.dsl.diagnostics import Diagnostic, finish, has_errors, make
from poletti.dsl.parser import LineIndex, parse
from poletti.dsl.program import CheckedProgram


@classes.frozen
class FrontendResult:
    program: CheckedProgram | None  # None when there is any error
    diagnostics: tuple[Diagnostic, ...]
    text: str  # the decoded source, for rendering carets


@contextlib.contextmanager
def no_collector_pauses() -> Iterator[None]:
    """Keep Python's cycle collector out of a front-end or compile run, and restore it after.

    Parsing, checking and compiling make hundreds of thousands of small
    objects that stay alive until the run ends (the AST, side tables,
    closures); the collector would walk all of them again and again for
    nothing, a third of the time of a large file. Nested uses are fine.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def analyze(text: str, filename: str | None = None) -> FrontendResult:
    """Parse and check rule-file text. Output: the program (None on errors) and all diagnostics."""
    with no_collector_pauses():
        return _analyze(text, filename)


def _analyze(text: str, filename: str | None) -> FrontendResult:
    parsed = parse(text)
    checked = checker.check(parsed.rule_file, source_name=filename, source=text)
    # Numbers too large for exact arithmetic (E129) are refused here, before anything computes with them.
    diagnostics = finish((*parsed.diagnostics, *checked.diagnostics, *ranges.check(parsed.rule_file)))
    program = None if has_errors(diagnostics) else checked.program
    return FrontendResult(program, diagnostics, text)


def analyze_bytes(raw: bytes, filename: str | None = None) -> FrontendResult:
    """Like ``analyze`` for a file's bytes; bytes that are not UTF-8 are reported, not raised."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        text = raw.decode("utf-8", errors="replace")
        prefix = raw[: err.start].decode("utf-8", errors="replace")
        offset = len(prefix)
        where: Span = LineIndex(text).span(offset, offset + 1)
        bad = make("P006", f"the file is not UTF-8 text (byte 0x{raw[err.start]:02x})", where,
                   ["save the file as UTF-8 (most editors offer it under 'Save as' / 'Encoding')"])
        result = analyze(text, filename)
        return FrontendResult(None, finish((bad, *result.diagnostics)), text)
    if text.startswith("\ufeff"):  # a byte-order mark is harmless: drop it
        text = text[1:]
    return analyze(text, filename)
