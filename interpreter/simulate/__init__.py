"""Simulate: replay an event history through a program (and a baseline) and sum up what it did.

The room of ``poletti simulate``:

* ``history`` — history files (CSV, JSON Lines, Parquet) read as event dicts, in time order;
* ``sequential`` — the event-at-a-time replay through ``Engine``, the reference;
* ``streamed`` — that replay of a file, a shard of customers at a time (``--sequential``, shared accounts);
* ``summary`` — what a replay adds up to (summary, month series, activity, standings);
* ``report`` — the HTML report; ``generate`` — synthetic histories.

``simulate(program, events, …)`` is the event-at-a-time replay of a stream
of events (see ``sequential.replay``).
"""

from __future__ import annotations

from typing import Any

from poletti.interpreter.simulate.summary import (
    Activity, ActivityMonth, Month, ProgramFigures, Rejected, SimulationResult, delta, money, parse_instant,
)


def __getattr__(name: str) -> Any:
    # ``simulate`` is imported when first asked for: the event-at-a-time replay brings the Engine and its
    # stores (SQLite, …), which ``poletti simulate``'s usual, columnar path never uses.
    if name == "simulate":
        from poletti.interpreter.simulate.sequential import replay

        return replay
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["Activity", "ActivityMonth", "Month", "ProgramFigures", "Rejected", "SimulationResult", "delta", "money",
           "parse_instant", "simulate"]
