"""poletti's record classes (``poletti.dsl.classes``): attrs classes whose repr is one shared function."""

from __future__ import annotations

import importlib
import re
import sys
import threading
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from poletti.dsl import classes
from poletti.dsl.classes import record_repr


def _twins(decorate):
    """The same three classes declared with ``decorate`` (attrs' own, or poletti's): plain, hidden fields, a cycle."""

    @decorate
    class Point:
        x: int
        label: str = "here"

    @decorate
    class Hidden:
        shown: Decimal
        secret: str = attrs.field(repr=False, default="s")
        items: list = attrs.field(factory=list, repr=lambda value: f"<{len(value)} items>")
        later: int = attrs.field(init=False, default=7)

    return Point, Hidden


def test_the_shared_repr_prints_what_attrs_prints() -> None:
    theirs = _twins(attrs.frozen)
    ours = _twins(classes.frozen)
    for mine, other in zip(ours, theirs):
        assert mine.__repr__ is record_repr
        assert other.__repr__ is not record_repr
    assert repr(ours[0](1)) == repr(theirs[0](1)) == "Point(x=1, label='here')"
    hidden = (Decimal("2.50"), "pin", [1, 2])
    assert repr(ours[1](*hidden)) == repr(theirs[1](*hidden))
    assert repr(ours[1](*hidden)) == "Hidden(shown=Decimal('2.50'), items=<2 items>, later=7)"


def test_a_record_inside_itself_prints_dots_as_attrs_does() -> None:
    @classes.define
    class Node:
        next: object = None

    @attrs.define
    class Twin:
        next: object = None

    ours, theirs = Node(), Twin()
    ours.next, theirs.next = ours, theirs
    assert repr(ours) == "Node(next=...)" and repr(theirs) == "Twin(next=...)"
    assert repr(Node(Node())) == "Node(next=Node(next=None))"


def test_a_nested_class_is_named_as_attrs_names_it() -> None:
    class Outer:
        @classes.frozen
        class Inner:
            value: int

        @attrs.frozen
        class Twin:
            value: int

    assert repr(Outer.Inner(3)) == "Outer.Inner(value=3)" and repr(Outer.Twin(3)) == "Outer.Twin(value=3)"


def test_a_class_keeps_its_own_repr_and_options_pass_through() -> None:
    @classes.define(eq=False)
    class Own:
        value: int

        def __repr__(self) -> str:
            return "own words"

    @classes.frozen(repr=True)
    class Asked:
        value: int

    assert repr(Own(1)) == "own words" and Own(1) != Own(1)  # eq=False: identity
    assert Asked.__repr__ is not record_repr and repr(Asked(1)) == "Asked(value=1)"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Asked(1).value = 2  # type: ignore[misc]


def test_a_record_printed_in_two_threads_at_once_is_printed_whole_in_both() -> None:
    # The "..." guard is per thread: a record another thread is printing is not one met inside itself.
    started, go_on = threading.Event(), threading.Event()
    calls: list[str] = []

    class Waits:
        def __repr__(self) -> str:
            calls.append(threading.current_thread().name)
            if len(calls) == 1:  # (the worker's: it holds the box's repr open until told to go on)
                started.set()
                go_on.wait(5)
            return "W"

    @classes.frozen
    class Box:
        value: object

    box = Box(Waits())
    seen: list[str] = []
    worker = threading.Thread(target=lambda: seen.append(repr(box)), name="worker")
    worker.start()
    assert started.wait(5)
    mine = repr(box)  # while the worker is inside repr(box)
    go_on.set()
    worker.join(5)
    assert (mine, seen, calls) == ("Box(value=W)", ["Box(value=W)"], ["worker", "MainThread"])


def test_every_poletti_record_class_shares_the_repr_or_writes_its_own() -> None:
    # attrs compiling a __repr__ per class was 18 ms of every command's start: a class declared with
    # attrs.frozen / attrs.define directly would bring that back, one class at a time.
    packages = ["poletti", "poletti.commands", "poletti.dsl", "poletti.engine", "poletti.engine.stores",
                "poletti.interpreter", "poletti.interpreter.simulate"]
    direct = []
    for name in packages:
        for folder in importlib.import_module(name).__path__:
            for path in sorted(Path(folder).glob("*.py")):
                for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                    if re.match(r"\s*@(attrs\.(frozen|define|mutable)|attr\.s)\b", line):
                        direct.append(f"{path.name}:{number}")
    assert direct == []
    importlib.import_module("poletti.cli")
    importlib.import_module("poletti.interpreter.simulate.columnar")  # (the modules every simulate imports)
    found = {value for module in list(sys.modules.values()) if module.__name__.startswith("poletti.")
             for value in vars(module).values()
             if isinstance(value, type) and attrs.has(value) and value.__module__.startswith("poletti.")}
    assert len(found) > 100
    own_or_shared = [cls.__repr__ is record_repr or "__repr__" in cls.__dict__ for cls in found]
    assert all(own_or_shared), sorted(cls.__qualname__ for cls, ok in zip(found, own_or_shared) if not ok)
