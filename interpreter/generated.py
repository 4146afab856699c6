"""Load the code generated for a program (``poletti.engine.codegen``) and run it.

``runtime_for(compiled, processor) -> Runtime`` compiles the program's
generated source once per process (cached by the source's hash, so two
engines of one program share it) and executes it in the namespace it
expects: the interpreter's processor for the parts it hands back, the
constants, the state classes and the time helpers. The ``Runtime`` has the
same entry points as the interpreter (``apply``, ``advance``,
``next_change``), minus explanations: the generated code never builds a
trace record. ``make_lane(engine, slow)`` gives the memory store's engine
its ``process`` for the common event (``Engine._lane``).
"""

from __future__ import annotations

import builtins
import heapq
import marshal
import weakref
from datetime import date
from typing import Any, Callable

from poletti.engine.codegen import BUILTINS, Generated, generate
from poletti.engine.compiler import CompiledProgram
from poletti.engine.expressions import Ctx
from poletti.engine.state import replaced
from poletti.engine.timecalc import DAY_US, add_us, day_start_us, local_date
from poletti.interpreter.events import Event, quick_fields
from poletti.interpreter.outcome import Outcome, new_outcome
from poletti.interpreter.processing import Processor, Tally

# Compiled code objects by the hash of their source: generating is cheap, compiling less so.
_CODE: dict[str, Any] = {}


class Runtime:
    """One program's generated functions, bound to a processor (the interpreter for what they hand back)."""

    def __init__(self, generated: Generated, processor: Processor) -> None:
        self.generated = generated
        code = _CODE.get(generated.digest)
        if code is None:
            code = _CODE[generated.digest] = compile(generated.source, f"<poletti program {generated.digest[:12]}>",
                                                     "exec")
        namespace: dict[str, Any] = {
            "__builtins__": {name: getattr(builtins, name) for name in BUILTINS},
            "P": processor, "K": generated.constants, "E": generated.evaluators, "Ctx": Ctx,
            "TZ": processor.tz, "heappush": heapq.heappush, "heappop": heapq.heappop, "add_us": add_us,
            "day_start_us": day_start_us, "local_date": local_date, "date": date,
            "replaced": replaced, "DAY": DAY_US,
            "quick_fields": quick_fields, "Tally": Tally, "Event": Event, "Outcome": Outcome,
            "new_outcome": new_outcome, "pack": marshal.dumps,
        }
        exec(code, namespace)  # noqa: S102 — source generated from the typed AST only (see engine/codegen.py)
        self.apply: Callable[..., int] = namespace["apply"]
        self.advance: Callable[..., None] = namespace["advance"]
        self.next_change: Callable[..., int | None] = namespace["next_change"]
        # ``make_lane(engine, slow)``: the engine's ``process`` for the common event (``Engine._plain``)
        self.make_lane: Callable[..., Callable[[Any], Any]] = namespace["make_lane"]


_GENERATED: "weakref.WeakKeyDictionary[CompiledProgram, Generated]" = weakref.WeakKeyDictionary()


def runtime_for(compiled: CompiledProgram, processor: Processor) -> Runtime:
    """The generated runtime of a compiled program (its source generated once per compiled program)."""
    generated = _GENERATED.get(compiled)
    if generated is None:
        generated = _GENERATED[compiled] = generate(compiled)
    return Runtime(generated, processor)
