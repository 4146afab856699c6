"""The conformance suite: hand-worked cases from the language contract, run on the engine.

The cases are data, in ``tests/conformance/*.toml`` (see the README there for
the format). Each case compiles its rules, feeds its steps to a fresh
``poletti.Engine`` and compares only the keys each expectation gives. Each case
runs on every store: the memory store with the interpreter (the default,
explaining) and with the generated code (explain off: the program's generated
lane), the memory store keeping a ledger, SQLite, and PostgreSQL when a
server is there.

Until ``poletti.Engine`` exists the engine tests skip with a clear reason;
the checks that the case files are well formed and that every case's rules
parse run regardless.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import attrs
import pytest

CASES_DIR = Path(__file__).resolve().parent.parent / "conformance"

STEP_KINDS = ("event", "advance_to", "check", "summary")
EVENT_EXPECT_KEYS = frozenset({"status", "earned", "granted", "expired", "reversed", "tier", "points"})
CUSTOMER_EXPECT_KEYS = frozenset({"points", "pending_points", "lifetime_points", "tier", "rewards", "segments",
                                  # issue 13: the wallet and perks
                                  "held", "held_until", "rewards_used", "perks"})
CASE_KEYS = frozenset({"name", "rules", "steps", "skip"})


# ----------------------------------------------------------------- loading


@dataclasses.dataclass(frozen=True)
class Case:
    file: str
    name: str
    rules: str
    steps: tuple[dict[str, Any], ...]
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"


def _load_cases() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(CASES_DIR.glob("*.toml")):
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        for raw in data.get("case", []):
            cases.append(
                Case(
                    file=path.name,
                    name=str(raw.get("name", "?")),
                    rules=str(raw.get("rules", "")),
                    steps=tuple(raw.get("steps", ())),
                    skip=raw.get("skip"),
                )
            )
    return cases


CASES = _load_cases()
CASE_IDS = [case.id for case in CASES]


# ----------------------------------------------------- well-formedness (no engine needed)


def test_there_are_cases() -> None:
    assert CASES, f"no conformance cases found in {CASES_DIR}"


def test_case_ids_are_unique() -> None:
    counts = collections.Counter(case.id for case in CASES)
    dupes = sorted(case_id for case_id, n in counts.items() if n > 1)
    assert not dupes, f"duplicate case names: {dupes}"


def _shape_problems(case: Case) -> list[str]:
    problems: list[str] = []
    with (CASES_DIR / case.file).open("rb") as handle:
        raw_cases = tomllib.load(handle).get("case", [])
    raw = next(c for c in raw_cases if str(c.get("name", "?")) == case.name)
    for key in raw:
        if key not in CASE_KEYS:
            problems.append(f"unknown case key {key!r}")
    if not case.rules.strip():
        problems.append("no rules")
    if not case.steps:
        problems.append("no steps")
    for index, step in enumerate(case.steps):
        if not isinstance(step, dict):
            problems.append(f"step {index}: not a table")
            continue
        kinds = [kind for kind in STEP_KINDS if kind in step]
        if len(kinds) != 1:
            problems.append(f"step {index}: needs exactly one of {STEP_KINDS}, has {kinds}")
            continue
        kind = kinds[0]
        allowed = {"event": {"event", "expect", "reject"}, "advance_to": {"advance_to"}, "check": {"check", "expect"},
                   "summary": {"summary"}}[kind]
        for key in step:
            if key not in allowed:
                problems.append(f"step {index}: key {key!r} not allowed in a {kind} step")
        if kind == "event" and "expect" in step and "reject" in step:
            problems.append(f"step {index}: an event step has either expect or reject, not both")
        if kind == "event" and not isinstance(step["event"], dict):
            problems.append(f"step {index}: event must be a table")
        if kind == "check" and "expect" not in step:
            problems.append(f"step {index}: a check step needs expect")
        expect = step.get("expect", {})
        known = EVENT_EXPECT_KEYS if kind == "event" else CUSTOMER_EXPECT_KEYS
        if kind == "summary":
            expect, known = {}, frozenset()  # any key of the simulate summary
        for key in expect:
            if key not in known:
                problems.append(f"step {index}: unknown expectation {key!r} (known: {sorted(known)})")
        if "reject" in step and not (isinstance(step["reject"], str) and step["reject"].strip()):
            problems.append(f"step {index}: reject must be a non-empty text")
    return problems


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_case_is_well_formed(case: Case) -> None:
    problems = _shape_problems(case)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_case_rules_parse(case: Case) -> None:
    from poletti.dsl.parser import parse

    diagnostics = parse(case.rules).diagnostics
    assert not diagnostics, "\n".join(f"{d.line}:{d.column} {d.code} {d.message}" for d in diagnostics)


# --------------------------------------------------------------- comparing


def _tier(value: Any) -> str:
    return "none" if value is None else str(value)


def _table(value: Any) -> dict[str, int]:
    """A reward → count table, with zero counts dropped (absent and 0 mean the same)."""
    return {str(k): int(v) for k, v in dict(value or {}).items() if v}


def _normalize(key: str, value: Any) -> Any:
    if key == "tier":
        return _tier(value)
    if key in ("rewards", "granted", "held", "rewards_used"):
        return _table(value)
    if key == "perks":
        return sorted(str(s) for s in value)
    if key == "segments":
        return sorted(str(s) for s in value)
    return value


def _compare(where: str, expect: dict[str, Any], actual_of: Any) -> list[str]:
    problems: list[str] = []
    for key, wanted in expect.items():
        try:
            got = actual_of(key)
        except AttributeError as err:
            problems.append(f"{where}: cannot read {key!r}: {err}")
            continue
        want_n, got_n = _normalize(key, wanted), _normalize(key, got)
        if want_n != got_n:
            problems.append(f"{where}: {key} expected {want_n!r}, got {got_n!r}")
    return problems


def _snapshot(view: Any) -> Any:
    """A customer view as comparable data: all fields when it is attrs/dataclass, else the documented ones."""
    if attrs.has(type(view)):
        return attrs.asdict(view, recurse=True)
    if dataclasses.is_dataclass(view):
        return dataclasses.asdict(view)
    return {key: _normalize(key, getattr(view, key)) for key in sorted(CUSTOMER_EXPECT_KEYS)}


# --------------------------------------------------------------- running


def _engine_api() -> Any:
    poletti = pytest.importorskip("poletti")
    missing = [name for name in ("Engine", "EventError", "compile") if not hasattr(poletti, name)]
    if missing:
        pytest.skip(f"poletti.{', poletti.'.join(missing)} not available yet: the engine is still being built")
    return poletti


def _store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """A fresh store of one kind: every case must come out the same in each."""
    from poletti.engine.stores import MemoryStore, SQLiteStore

    if kind in ("memory", "memory+generated"):
        return None  # the engine's default
    if kind == "memory+ledger":
        return MemoryStore(ledger=True)
    if kind == "postgres":
        from poletti.engine.stores.postgres import PostgresStore

        return PostgresStore(request.getfixturevalue("postgres_schema"))
    return SQLiteStore(str(tmp_path / "case.db"))


@pytest.mark.parametrize("store_kind", ["memory", "memory+generated", "memory+ledger", "sqlite",
                                        pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_conformance(case: Case, store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    poletti = _engine_api()
    if case.skip:
        pytest.skip(case.skip)
    try:
        program = poletti.compile(case.rules)
    except poletti.CompileError as err:
        pytest.fail(f"[{case.id}] the rules do not compile:\n{err}")
    store = _store(store_kind, tmp_path, request)
    # "memory+generated": explain off, so the program's generated code runs, and for the common event the
    # generated lane (``Engine.process`` in one generated function); the others run the interpreter.
    engine = poletti.Engine(program, store, explain=False) if store_kind == "memory+generated" else poletti.Engine(
        program, store)
    if store_kind == "memory+generated":
        assert engine._lane is not None or program.compiled.pooled or engine.referrals.rules
    try:
        run_case(poletti, case, engine)
    finally:
        if store is not None:
            store.close()


def run_case(poletti: Any, case: Case, engine: Any) -> None:
    """The case's steps through ``engine``; fails the test with every problem found."""
    customers: list[str] = []  # every customer id seen so far in this case, for the unchanged-state check
    problems: list[str] = []

    def note(customer: Any) -> None:
        if isinstance(customer, str) and customer and customer not in customers:
            customers.append(customer)

    for index, step in enumerate(case.steps):
        where = f"step {index} {_short(step)}"
        if "event" in step:
            event = copy.deepcopy(step["event"])
            if "reject" in step:
                note(event.get("customer"))
                before = {c: _snapshot(engine.customer(c)) for c in customers}
                try:
                    outcome = engine.process(event)
                except poletti.EventError as err:
                    reason = str(getattr(err, "reason", "") or err)
                    wanted = step["reject"].lower()
                    if wanted not in reason.lower() and wanted not in str(err).lower():
                        problems.append(f"{where}: rejected as expected, but the reason {reason!r} does not contain {step['reject']!r}")
                else:
                    problems.append(f"{where}: expected a rejection, but the event was {getattr(outcome, 'status', '?')}")
                    break  # later steps depend on this one
                after = {c: _snapshot(engine.customer(c)) for c in customers}
                for c in customers:
                    if before[c] != after[c]:
                        problems.append(f"{where}: a rejected event changed customer {c!r}:\n  before {before[c]}\n  after  {after[c]}")
            else:
                try:
                    outcome = engine.process(event)
                except poletti.EventError as err:
                    problems.append(f"{where}: unexpectedly rejected: {err}")
                    break  # later steps depend on this one
                note(event.get("customer"))
                problems += _compare(where, step.get("expect", {}), lambda key: getattr(outcome, key))
        elif "advance_to" in step:
            engine.advance_to(step["advance_to"])
        elif "summary" in step:
            problems += _compare(where, step["summary"], _summary_of(engine).__getitem__)
        else:
            view = engine.customer(step["check"])
            note(step["check"])
            problems += _compare(where, step["expect"], lambda key: _view_value(view, key))
    if problems:
        pytest.fail(f"[{case.id}]\n" + "\n".join(problems), pytrace=False)


def _view_value(view: Any, key: str) -> Any:
    """A customer view's figure; the wallet as tables: ``held`` reward → count, ``held_until`` reward → the
    instants (UTC, ISO 8601, in order) its expiring instances are held until."""
    if key == "held":
        held: dict[str, int] = {}
        for entry in view.held:
            held[entry.reward] = held.get(entry.reward, 0) + entry.count
        return held
    if key == "held_until":
        until: dict[str, list[str]] = {}
        for entry in view.held:
            if entry.until is not None:
                until.setdefault(entry.reward, []).append(entry.until.isoformat())
        return {name: sorted(values) for name, values in until.items()}
    return getattr(view, key)


def _summary_of(engine: Any) -> dict[str, Any]:
    """The simulate summary's figures over the engine's customers as they stand (without events/rejected)."""
    from poletti.engine.program import Program
    from poletti.interpreter.simulate.summary import Totals

    totals = Totals()
    for customer in engine.customers():
        state = engine.state(customer)
        if state is not None:
            totals.add(state, engine.compiled)
    compiled = engine.compiled
    program = Program(compiled.checked, compiled, compiled.source or "", None, ())
    return totals.summary(program, 0)


def _short(step: dict[str, Any]) -> str:
    """A one-line description of a step for failure messages (with its expectation)."""
    if "event" in step:
        e = step["event"]
        text = f"event {e.get('id')} {e.get('type')} at {e.get('at')}"
        if "reject" in step:
            return f"({text}; reject {step['reject']!r})"
        return f"({text}; expect {step.get('expect', {})})"
    if "advance_to" in step:
        return f"(advance_to {step['advance_to']})"
    if "summary" in step:
        return f"(summary; expect {step['summary']})"
    return f"(check {step['check']}; expect {step['expect']})"
