"""poletti: a declarative rules engine for customer loyalty programs.

    import poletti
    program = poletti.compile("earn 1 point per EUR; at 50 points grant free_drink")
    program = poletti.load("rules.loyalty")
    engine = poletti.Engine(program)
    outcome = engine.process({"id": "e1", "type": "purchase", "customer": "c1",
                              "at": "2026-03-01T09:00:00+01:00", "amount": "12.50"})
    engine.customer("c1").points

``compile`` and ``load`` raise ``CompileError`` when the rules have errors;
its ``diagnostics`` say what and where (``code``, ``severity``, ``message``,
``line``, ``column``), and ``str()`` of it is the same report
``poletti check`` prints. Warnings do not raise: the program keeps them
(``program.warnings``), and
``poletti.diagnose`` returns every diagnostic without raising.

The heavy parts (the grammar, the checker, the engine) load on first use,
so ``import poletti`` stays cheap.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from poletti.dsl.diagnostics import ERROR, WARNING, Diagnostic

if TYPE_CHECKING:
    from poletti.engine.program import BuildResult, Program
    from poletti.interpreter.engine import BatchResult, CustomerView, Engine, Rejection, Standing
    from poletti.interpreter.events import EventError
    from poletti.interpreter.outcome import Outcome
    from poletti.engine.stores import LedgerEntry, MemoryStore, SQLiteStore, StoreError, open_store
    from poletti.engine.stores.postgres import PostgresStore

__version__ = "0.1.0"

__all__ = [
    "BatchResult",
    "CompileError",
    "CustomerView",
    "Diagnostic",
    "Engine",
    "EventError",
    "LedgerEntry",
    "MemoryStore",
    "Outcome",
    "PostgresStore",
    "Program",
    "Rejection",
    "SQLiteStore",
    "Standing",
    "StoreError",
    "__version__",
    "compile",
    "diagnose",
    "load",
    "open_store",
]


class CompileError(Exception):
    """The rules have errors.

    Attributes: ``diagnostics`` (every diagnostic, in file order, warnings
    included), ``errors`` (only the errors), ``warnings``, ``filename`` and
    ``text`` (the source, for rendering).
    """

    def __init__(self, diagnostics: tuple[Diagnostic, ...], text: str, filename: str | None) -> None:
        self.diagnostics = tuple(diagnostics)
        self.text = text
        self.filename = filename
        super().__init__(self._render())

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == ERROR)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == WARNING)

    def _render(self) -> str:
        from poletti.dsl.render import render_diagnostics

        return render_diagnostics(self.diagnostics, self.text, self.filename, color=False).rstrip("\n")

    def __reduce__(self) -> tuple[object, ...]:  # picklable (e.g. across processes)
        return (type(self), (self.diagnostics, self.text, self.filename))


# The engine's names load on first use (PEP 562), keeping ``import poletti`` light.
_LAZY = {
    "Engine": "poletti.interpreter.engine",
    "BatchResult": "poletti.interpreter.engine",
    "CustomerView": "poletti.interpreter.engine",
    "Rejection": "poletti.interpreter.engine",
    "Standing": "poletti.interpreter.engine",
    "EventError": "poletti.interpreter.events",
    "Outcome": "poletti.interpreter.outcome",
    "Program": "poletti.engine.program",
    "MemoryStore": "poletti.engine.stores",
    "SQLiteStore": "poletti.engine.stores",
    "PostgresStore": "poletti.engine.stores.postgres",
    "LedgerEntry": "poletti.engine.stores",
    "StoreError": "poletti.engine.stores",
    "open_store": "poletti.engine.stores",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'poletti' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def _analyze(source: str | bytes, filename: str | None) -> BuildResult:
    from poletti.engine.program import build, build_bytes

    if isinstance(source, bytes):
        return build_bytes(source, filename)
    if isinstance(source, str):
        return build(source, filename)
    raise TypeError(f"rules must be text (str) or bytes, not {type(source).__name__}")


def diagnose(source: str | bytes, filename: str | None = None) -> tuple[Diagnostic, ...]:
    """Every diagnostic for a rule file's text (or bytes), errors and warnings; never raises for bad rules.

    What ``poletti check`` reports: the front end only, the compiler is not loaded.
    """
    from poletti.dsl.frontend import analyze, analyze_bytes

    if isinstance(source, bytes):
        return analyze_bytes(source, filename).diagnostics
    if isinstance(source, str):
        return analyze(source, filename).diagnostics
    raise TypeError(f"rules must be text (str) or bytes, not {type(source).__name__}")


def compile(source: str | bytes, filename: str | None = None) -> Program:  # noqa: A001 — the brief's name
    """Check rule-file text and compile it for ``Engine``; raise ``CompileError`` if it has errors.

    ``filename`` is only used in messages. Bytes are decoded as UTF-8 (bytes
    that are not UTF-8 are an error, P006). Warnings are on ``program.warnings``.
    """
    result = _analyze(source, filename)
    if result.program is None:
        raise CompileError(result.diagnostics, result.text, filename)
    return result.program


def load(path: str | os.PathLike[str]) -> Program:
    """Read a rule file and ``compile`` it, with the path in messages. OSError if it cannot be read."""
    with open(path, "rb") as handle:
        raw = handle.read()
    return compile(raw, os.fspath(path))
