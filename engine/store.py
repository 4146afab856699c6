"""Where customer state lives between events.

``Store`` is the interface the engine talks to; ``MemoryStore`` keeps
everything in this process. Persistent stores (SQLite, PostgreSQL) implement
the same methods, applying each event's writes in one transaction
(``transaction()``), so the interpreter does not change when they plug in.

The schedule: each customer's next time-driven change is stored with its
state, so ``advance_to`` visits only customers with something due instead
of scanning every customer.
"""

from __future__ import annotations

import heapq
from contextlib import contextmanager
from datetime import datetime
from typing import Iterator, Protocol

from poletti.engine.state import CustomerState


class Store(Protocol):
    def load(self, customer: str) -> CustomerState | None:
        """The customer's state, or None for a customer never seen."""

    def save(self, state: CustomerState, next_change: datetime | None) -> None:
        """Store the state and when the customer's next time-driven change is due."""

    def seen(self, event_id: str) -> bool:
        """Whether an event with this id was applied before."""

    def mark_seen(self, event_id: str, customer: str) -> None: ...

    def due(self, until: datetime) -> list[str]:
        """Customers whose next change is at or before ``until``, earliest first."""

    def customers(self) -> Iterator[str]: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def transaction(self) -> "contextmanager[None]":  # type: ignore[type-arg]
        """All writes inside happen together or not at all."""


class MemoryStore:
    """State in dictionaries; the schedule is a heap with lazy deletion."""

    def __init__(self) -> None:
        self._states: dict[str, CustomerState] = {}
        self._seen: set[str] = set()
        self._next: dict[str, datetime] = {}
        self._heap: list[tuple[datetime, str]] = []
        self._meta: dict[str, str] = {}

    def load(self, customer: str) -> CustomerState | None:
        return self._states.get(customer)

    def save(self, state: CustomerState, next_change: datetime | None) -> None:
        self._states[state.customer] = state
        if next_change is None:
            self._next.pop(state.customer, None)
        elif self._next.get(state.customer) != next_change:
            self._next[state.customer] = next_change
            heapq.heappush(self._heap, (next_change, state.customer))

    def seen(self, event_id: str) -> bool:
        return event_id in self._seen

    def mark_seen(self, event_id: str, customer: str) -> None:
        self._seen.add(event_id)

    def due(self, until: datetime) -> list[str]:
        found: list[str] = []
        taken: set[str] = set()  # a customer may sit in the heap more than once; a list test would be quadratic
        while self._heap and self._heap[0][0] <= until:
            when, customer = heapq.heappop(self._heap)
            if self._next.get(customer) == when and customer not in taken:
                taken.add(customer)
                found.append(customer)
        return found

    def customers(self) -> Iterator[str]:
        return iter(sorted(self._states))

    def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = value

    def transaction(self) -> _NoTransaction:
        # In memory, the engine only mutates state after every check passed: nothing to undo.
        return _NO_TRANSACTION


class _NoTransaction:
    """A ``with`` block that does nothing (cheaper than a generator-based context manager, per event)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc: object) -> None:
        return None


_NO_TRANSACTION = _NoTransaction()
