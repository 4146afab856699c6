"""How poletti declares its record classes: ``attrs.frozen`` and ``attrs.define``, with one shared ``__repr__``.

attrs writes and compiles the source of every method it generates, once per
class, when the class is defined. poletti has some 170 record classes, and
every command and ``import poletti`` define most of them; their ``__repr__``
alone was 18 ms of ``poletti simulate``'s and ``poletti check``'s start (a
tenth of poletti's imports). Nothing reads a record's repr on a path that
counts (it is for people: tracebacks, test failures, a debugger), so every
record shares ``record_repr``, which prints what attrs' own prints:
``Name(field=value, ...)``, fields with ``repr=False`` left out, a field's
own repr function used where it has one, and ``...`` for a record met again
inside itself.

Use ``@classes.frozen`` and ``@classes.define`` as ``@attrs.frozen`` and
``@attrs.define``, with the same options. A class that writes its own
``__repr__`` keeps it; ``repr=`` given explicitly is left to attrs.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

import attrs

_C = TypeVar("_C", bound=type)

_inside = threading.local()  # ids of the records whose repr is being written in this thread (a cycle prints "...")


def record_repr(self: Any) -> str:
    """``Name(field=value, ...)``, as attrs' generated ``__repr__`` writes it."""
    busy: set[int] | None = getattr(_inside, "ids", None)
    if busy is None:
        busy = _inside.ids = set()
    if id(self) in busy:
        return "..."
    busy.add(id(self))
    try:
        shown = []
        for field in type(self).__attrs_attrs__:
            if field.repr is False:
                continue
            value = getattr(self, field.name) if field.init else getattr(self, field.name, attrs.NOTHING)
            shown.append(f"{field.name}={value!r}" if field.repr is True else f"{field.name}={field.repr(value)}")
        return f"{type(self).__qualname__.rsplit('>.', 1)[-1]}({', '.join(shown)})"
    finally:
        busy.discard(id(self))


def _declare(make: Callable[..., Any], cls: type | None, options: dict[str, Any]) -> Any:
    if "repr" in options:
        return make(cls, **options) if cls is not None else make(**options)

    def build(target: _C) -> _C:
        if "__repr__" in target.__dict__:  # (attrs keeps a class's own)
            return make(target, **options)
        built = make(target, repr=False, **options)
        built.__repr__ = record_repr
        return built

    return build(cls) if cls is not None else build


def frozen(cls: type | None = None, **options: Any) -> Any:
    """``attrs.frozen`` with the shared ``record_repr`` (see the module docstring)."""
    return _declare(attrs.frozen, cls, options)


def define(cls: type | None = None, **options: Any) -> Any:
    """``attrs.define`` with the shared ``record_repr`` (see the module docstring)."""
    return _declare(attrs.define, cls, options)


__all__ = ["define", "frozen", "record_repr"]
