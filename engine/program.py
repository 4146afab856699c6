"""From rule-file text to a runnable ``Program``: front end (parse, check), compile.

``build(text, filename) -> BuildResult`` runs the whole pipeline and never
raises for user mistakes; the facade (``poletti.compile``) turns errors into
``CompileError``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Mapping

from poletti.dsl import classes, frontend
from poletti.dsl.diagnostics import Diagnostic
from poletti.dsl.frontend import FrontendResult
from poletti.dsl.program import CheckedProgram, RewardInfo, TierInfo
from poletti.engine.compiler import CompiledProgram, compile_program


@classes.frozen(eq=False)
class Program:
    """A compiled loyalty program, ready for ``poletti.Engine``."""

    checked: CheckedProgram
    compiled: CompiledProgram
    source: str
    filename: str | None
    warnings: tuple[Diagnostic, ...]

    @property
    def graph(self):  # type: ignore[no-untyped-def]
        """The rule graph (a networkx DiGraph), built on first access (networkx loads then)."""
        return self.compiled.graph

    # What the program declares, for hosts and tools (read from the checked program).
    @property
    def title(self) -> str | None:
        return self.checked.title

    @property
    def currency(self) -> str:
        return self.checked.currency

    @property
    def timezone(self) -> str:
        return self.checked.timezone

    @property
    def point_value(self) -> Decimal | None:
        """What one point is worth, in the program currency: declared (``point value 0.05 EUR``), or derived
        as the lowest value ÷ points of the rewards ``at`` rules grant or that have ``costs``; None if unknown."""
        found = self.compiled.point_value
        return None if found is None else found.per_point

    @property
    def point_value_source(self) -> str | None:
        """``"declared"``, ``"derived from REWARD"``, or None when the point value is unknown."""
        found = self.compiled.point_value
        return None if found is None else found.source

    @property
    def rewards(self) -> Mapping[str, RewardInfo]:
        return self.checked.rewards

    @property
    def tiers(self) -> tuple[TierInfo, ...]:
        return self.checked.tiers

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.checked.segments)

    @property
    def event_types(self) -> frozenset[str]:
        return self.checked.event_types


@classes.frozen
class BuildResult:
    program: Program | None
    diagnostics: tuple[Diagnostic, ...]
    text: str


def _finish(front: FrontendResult, filename: str | None) -> BuildResult:
    if front.program is None:
        return BuildResult(None, front.diagnostics, front.text)
    diagnostics = front.diagnostics
    compiled = compile_program(front.program, front.text)
    return BuildResult(Program(front.program, compiled, front.text, filename, diagnostics), diagnostics, front.text)


def build(text: str, filename: str | None = None) -> BuildResult:
    """Rule-file text → Program (None on errors) and every diagnostic."""
    with frontend.no_collector_pauses():
        return _finish(frontend.analyze(text, filename), filename)


def build_bytes(raw: bytes, filename: str | None = None) -> BuildResult:
    """Like ``build`` for a file's bytes (undecodable bytes are a diagnostic)."""
    with frontend.no_collector_pauses():
        return _finish(frontend.analyze_bytes(raw, filename), filename)
