"""The memory store: everything in this process, for tests, simulations and apps that snapshot it.

Thread-safe: a transaction holds the store's lock (re-entrant), so one
writer at a time changes it. The schedule is a heap with lazy deletion:
a customer's entry is pushed again only when their next change moves
earlier than the entry they have in it (``_queued``); one that moves later
keeps the earlier entry, and when that comes up it is queued again at the
real instant. Stale entries are skipped when popped. Entries are made
lazily too: a save lists the customer (``_unqueued``), and the entry is
made when ``due`` next pops; when most entries are still unmade (the end of
a replay), ``due`` reads them from the list and makes none. (Most saves move the
next change later or not at all: a new purchase's window exit or pending
release comes after the ones already due. Pushing on every move kept 32,978
entries for 1,455 scheduled customers on the richer benchmark program.)
A receipt is the event's content key packed by ``marshal`` into bytes: a
tuple, even one the collector later stops tracking, counts towards its next
collection, and with items a key is several tuples. Bytes are not tracked at
all (on the richer benchmark program the receipts were more than half of
the objects a run kept, and the collector's passes took 0.46 s of 4.8 s;
packed, 0.19 s). Packing costs about what building the tuple did; a
duplicate unpacks it.
``Engine.save`` writes the store to a file and ``Engine.restore`` reads it
back (``poletti.engine.stores.snapshot``).
"""

from __future__ import annotations

import heapq
import marshal
import threading
from typing import Any, Iterable, Iterator

from poletti.engine.state import CustomerState
from poletti.engine.stores.base import LedgerEntry, Receipt, content_dict, fingerprint


# ``due`` pops this many heap entries one by one before it scans the heap and sorts what is due instead.
_POPS_BEFORE_SORTING = 256


class MemoryStore:
    """State, receipts and (with ``ledger=True``) the ledger in dictionaries."""

    shared = False

    def __init__(self, *, ledger: bool = False) -> None:
        """``ledger``: keep every point movement (costs memory and time: the engine builds trace records)."""
        self.keeps_ledger = ledger
        # (The engine's generated lane binds ``_lock``, ``_states``, ``_receipts``, ``_next`` and ``save`` once,
        # when the engine is made: they are changed in place, never replaced.)
        self._states: dict[str, CustomerState] = {}
        # id → the content key packed (``pack_receipt``); the engine's keys begin with the customer, so that is
        # all a receipt needs; another key is kept as _Apart((customer, key)).
        self._receipts: "dict[str, bytes | _Apart]" = {}
        self._next: dict[str, int] = {}  # customer → their next change
        self._heap: list[tuple[int, str]] = []  # (instant, customer): at most _next, lazily deleted
        self._queued: dict[str, int] = {}  # customer → their earliest entry (in the heap, or still to be put there)
        # Customers whose earliest entry (``_queued``) is not in the heap yet: it is put there when ``due`` next
        # pops (``_flush``), and ``due`` taking many at once reads it from here without making the entry at all.
        self._unqueued: list[str] = []
        self._meta: dict[str, str] = {}
        self._ledger: dict[str, list[LedgerEntry]] = {}
        self._seq = 0
        self._programs: list[tuple[str, str, int]] = []  # (hash, source, first ledger seq)
        self._lock = threading.RLock()

    def transaction(self, customer: str | None = None, others: tuple[str, ...] = ()) -> threading.RLock:
        # In memory the engine changes state only after every check passed: nothing to undo, one writer at a time.
        return self._lock

    def load(self, customer: str) -> CustomerState | None:
        return self._states.get(customer)

    def save(self, state: CustomerState, next_change: int | None) -> None:
        customer = state.customer
        self._states[customer] = state
        if next_change is None:
            self._next.pop(customer, None)  # (an entry they still have in the heap is skipped when it comes up)
            return
        if self._next.get(customer) == next_change:
            return  # (most saves: the next change did not move)
        self._next[customer] = next_change
        queued = self._queued.get(customer)
        if queued is None or next_change < queued:
            # Its entry is made when ``due`` needs it (often never: an advance that takes many customers reads them
            # from ``_unqueued``). Every tuple made counts towards the collector's next pass, and a replay saves
            # each customer's first next change, then at its end each one's next after the advance.
            self._queued[customer] = next_change
            self._unqueued.append(customer)

    def _flush(self) -> None:
        """Put the entries of ``_unqueued`` in the heap."""
        unqueued, queued, heap = self._unqueued, self._queued, self._heap
        for customer in unqueued:
            when = queued.get(customer)
            if when is not None:  # (a customer listed twice gets a second, stale entry: skipped when popped)
                heapq.heappush(heap, (when, customer))
        unqueued.clear()

    def _queue(self, customer: str, when: int) -> None:
        self._queued[customer] = when
        heapq.heappush(self._heap, (when, customer))

    def receipt(self, event_id: str) -> Receipt | None:
        found = self._receipts.get(event_id)
        if found is None:
            return None
        customer, key = _unpacked(found)
        return Receipt(customer, fingerprint(key), content_dict(key))

    def record(self, event_id: str, customer: str, key: tuple[Any, ...]) -> None:
        self._receipts[event_id] = pack_receipt(customer, key)

    def append(self, entries: Iterable[LedgerEntry]) -> None:
        if not self.keeps_ledger:
            return
        for entry in entries:
            self._seq += 1
            self._ledger.setdefault(entry.customer, []).append(_numbered(entry, self._seq))

    def history(self, customer: str) -> list[LedgerEntry]:
        with self._lock:
            return list(self._ledger.get(customer, ()))

    def due(self, until: int, ordered: bool = True) -> list[str]:
        """The customers whose next change is due by ``until``, by next change, then id, as the SQL stores list
        them (the heap's order); with ``ordered=False`` in any order (``Engine.advance_to``'s own lane, which
        puts its outcomes in that order itself: sorting every customer due cost a fifth of an advance)."""
        found: list[str] = []
        heap = self._heap
        with self._lock:
            if len(self._unqueued) > max(_POPS_BEFORE_SORTING, len(heap)):
                # Most entries are still to be made (as at the end of a replay: nothing asked before): scanning
                # them costs no more than making them would.
                self._take_all(until, found, ordered)
                return found
            self._flush()
            for _ in range(_POPS_BEFORE_SORTING):
                if not heap or heap[0][0] > until:
                    return found
                self._take(*heapq.heappop(heap), found)
            if heap and heap[0][0] <= until:
                # Many are due (an advance after a long pause, or at the end of a replay): a pop costs about
                # forty times what one step of a scan and a sort does, so take the rest of them in one go.
                self._take_all(until, found, ordered)
        return found

    def _take_all(self, until: int, found: list[str], ordered: bool = True) -> None:
        """``_take`` for every entry due by ``until`` at once, those not in the heap yet included: the customers
        due, in order, onto ``found``.

        An entry whose customer's change moved later is not queued again one by one (each would come up after
        the rest, out of order): a customer due by ``until`` is taken at their real instant, sorted with the
        others, and one due later is listed in ``_unqueued`` for an entry when one is needed. No entry is made:
        the customers are sorted by id, then (stably) by their next change.
        """
        heap, queued, upcoming = self._heap, self._queued, self._next
        ready: list[str] = []
        later: list[str] = []
        # ``_take`` and ``_entry_instant`` for each entry, written out: at the end of a replay this runs once for
        # every customer (20,909 on the CDNOW-like benchmark), and their two calls were half its time. First the
        # customers whose entry (in the heap, or to be made) is due and not stale, then what each one's is now.
        due = [customer for when, customer in heap if when <= until and queued.get(customer) == when]
        for customer in self._unqueued:
            when = queued.get(customer)
            if when is None:
                continue  # (taken already: listed twice)
            if when > until:
                later.append(customer)  # not due: still no entry in the heap
            else:
                due.append(customer)
        for customer in due:
            when = queued.get(customer)
            if when is None or when > until:
                continue  # (listed twice, and taken or moved later already)
            instant = upcoming.get(customer)
            if instant is None:
                del queued[customer]  # nothing to come: out of the queue
            elif instant <= until:
                del queued[customer]  # (saving their state after the change queues them again)
                ready.append(customer)
            else:
                queued[customer] = instant  # it moved later: listed for an entry when one is needed
                later.append(customer)
        heap[:] = [entry for entry in heap if entry[0] > until]
        heapq.heapify(heap)
        self._unqueued = later
        # Each of these comes after every customer popped before (their entries were no earlier than those).
        if ordered:
            ready.sort()
            ready.sort(key=upcoming.__getitem__)
        found.extend(ready)

    def _take(self, when: int, customer: str, found: list[str]) -> None:
        """One heap entry taken off for ``due``: the customer is due at ``when``, or the entry is stale."""
        instant = self._entry_instant(when, customer)
        if instant is None:
            return
        if instant == when:
            del self._queued[customer]  # (saving their state after the change queues them again)
            found.append(customer)
        else:
            self._queue(customer, instant)  # it moved later: its own entry comes up in turn (or later)

    def _entry_instant(self, when: int, customer: str) -> int | None:
        """The customer's next change, for their schedule entry at ``when``; None when the entry is stale (the
        customer has an earlier one, or came up already) or nothing is to come (then they leave the queue)."""
        queued = self._queued
        if queued.get(customer) != when:
            return None
        instant = self._next.get(customer)
        if instant is None:
            del queued[customer]
        return instant

    def next_due(self) -> int | None:
        """The earliest instant (µs) a customer's change may be due, None when none is (a lower bound)."""
        with self._lock:
            self._flush()
            return self._heap[0][0] if self._heap else None

    def customers(self) -> Iterator[str]:
        with self._lock:
            return iter(sorted(self._states))

    def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = value

    def use_program(self, digest: str, source: str) -> None:
        with self._lock:
            if not self._programs or self._programs[-1][0] != digest:
                self._programs.append((digest, source, self._seq + 1))

    def programs(self) -> list[tuple[str, str, int]]:
        """Each program that ran, in order: (hash, source, the first ledger seq it produced)."""
        return list(self._programs)

    def retryable(self, error: BaseException) -> bool:
        return False  # one writer at a time, in this process: nothing to try again

    def close(self) -> None:
        return None

    # -- for snapshots (``Engine.save``/``Engine.restore``)

    def contents(self) -> tuple[dict[str, CustomerState], dict[str, int], dict[str, tuple[str, tuple[Any, ...]]],
                                dict[str, str], list[LedgerEntry], list[tuple[str, str, int]]]:
        """Everything held, for a snapshot (call inside ``transaction()``)."""
        entries = sorted((entry for items in self._ledger.values() for entry in items),
                         key=lambda entry: entry.seq or 0)
        receipts = {event_id: _unpacked(found) for event_id, found in self._receipts.items()}
        return self._states, self._next, receipts, self._meta, entries, self._programs

    def load_contents(self, states: dict[str, CustomerState], schedule: dict[str, int],
                      receipts: dict[str, tuple[str, tuple[Any, ...]]], meta: dict[str, str], entries: list[LedgerEntry],
                      programs: list[tuple[str, str, int]]) -> None:
        """Fill an empty store from a snapshot."""
        with self._lock:
            self._states.update(states)
            for customer, when in schedule.items():
                self._next[customer] = when
                self._queued[customer] = when
                self._heap.append((when, customer))
            heapq.heapify(self._heap)
            for event_id, (customer, key) in receipts.items():
                self.record(event_id, customer, key)
            self._meta.update(meta)
            for entry in entries:
                self._ledger.setdefault(entry.customer, []).append(entry)
                self._seq = max(self._seq, entry.seq or 0)
            self._programs.extend(programs)


class _Apart(tuple):  # type: ignore[type-arg]
    """A receipt kept as it is: (customer, key), for a key that does not begin with its customer or that
    ``marshal`` cannot pack."""

    __slots__ = ()


def pack_receipt(customer: str, key: tuple[Any, ...]) -> bytes | _Apart:
    """What the store keeps for an event's receipt (the key, not a digest: a conflict can say what differs).

    The key packed into bytes when it begins with the customer (the engine's
    keys do; ``content_key``), so the customer need not be kept twice.
    """
    if key and key[0].__class__ is str and key[0] == customer and customer.__class__ is str:
        try:
            return marshal.dumps(key, receipt_version(key))
        except ValueError:  # (a value marshal does not know: kept as it is)
            pass
    return _Apart((customer, key))


def receipt_version(key: tuple[Any, ...]) -> int:
    """The ``marshal`` version a receipt is packed with (``marshal.loads`` reads any): 4, marshal's own, except
    for a key with items (a purchase's basket), packed with version 2.

    From version 3 on, marshal keeps a table of the objects it writes that are referenced elsewhere, to write a
    repeat as a reference: a basket's lines share their texts (the categories, the skus) with every other basket,
    so the table took an entry per line, and packing a key with two lines cost 0.99 µs against 0.59 µs with
    version 2, which keeps no table. Version 2 costs more for a key without items (0.43 µs against 0.31 µs: it
    writes texts as UTF-8, made apart first).
    """
    return 2 if len(key) > 4 and key[4] else 4


def _unpacked(found: bytes | _Apart) -> tuple[str, tuple[Any, ...]]:
    """(customer, content key) of a receipt ``pack_receipt`` made."""
    if found.__class__ is _Apart:
        return found[0], found[1]
    key = marshal.loads(found)
    return key[0], key


def _numbered(entry: LedgerEntry, seq: int) -> LedgerEntry:
    import attrs

    return attrs.evolve(entry, seq=seq)
