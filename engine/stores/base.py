"""What every store keeps, and the interface the engine talks to.

A store holds, for one program's engine:

* each customer's state (``CustomerState``) and when its next time-driven
  change is due (the schedule ``advance_to`` reads);
* a receipt for every applied event id: the customer and a fingerprint of
  the event's content, so that the same id again is a duplicate (same
  content) or a conflict (other content) — for as long as the store lives;
* optionally a ledger: an append-only list of every point movement and
  reward (``LedgerEntry``), each naming the event, the rule as written,
  the lot and the program (by hash) that produced it;
* a few named values (``meta``: the clock ``advance_to`` reached) and the
  programs that have run on it.

Every change an event makes happens inside ``transaction(customer)``: all
of it is kept or none of it. A transaction also keeps other writers away
from the customer until it ends (a lock in memory, ``BEGIN IMMEDIATE`` in
SQLite, a row lock in PostgreSQL), which is what makes concurrent callers
come out as some serial order of their events.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, ContextManager, Iterable, Iterator, Protocol

from poletti.dsl import classes
from poletti.engine import money
from poletti.engine.state import CustomerState
from poletti.engine.timecalc import from_us


class StoreError(RuntimeError):
    """The store cannot be opened or used (a newer schema, a file that is not a poletti store, a lost connection…)."""


@classes.frozen
class Receipt:
    """What a store remembers of an applied event: whose it was and what it said."""

    customer: str
    fingerprint: bytes  # of its content key
    content: dict[str, Any] | None = None  # ``content_dict`` of it, to name what differs in a conflict


@classes.frozen
class LedgerEntry:
    """One point movement or reward, as it happened.

    ``kind``: ``earn`` (points a rule gave: a new lot, ``lot`` names its
    source event, with its ``expires_at`` and ``available_at``),
    ``release`` (pending points became spendable), ``expire``, ``spend``
    (an ``at`` rule took points for its target), ``redeem``, ``reverse``
    (a refund took points back), ``reward`` (``count`` rewards granted), ``use`` (a purchase used a held
    ``reward``), ``reward_expire`` (a held ``reward`` ended at its ``expires after``; both move no points).
    ``points`` is how many points moved (never negative; the kind says
    which way); ``balance`` and ``pending`` are the customer's spendable and
    pending points just after it. ``rule`` is the rule as written (None for
    the clock's own movements and for redeems). Instants in µs.
    """

    customer: str
    event_id: str | None  # None: the clock (``advance_to``, or the clock step before an event)
    at: int
    kind: str
    points: int
    balance: int
    pending: int
    program: str
    rule: str | None = None
    reward: str | None = None
    count: int = 0
    lot: str | None = None
    expires_at: int | None = None
    available_at: int | None = None
    seq: int | None = None  # its place in the store's ledger (stores number entries as they append them)


# The ledger's columns in the stores' tables, in LedgerEntry's order (without ``seq``, which the store numbers).
LEDGER_COLUMNS = ("customer", "event_id", "at", "kind", "points", "balance", "pending", "program", "rule", "reward",
                  "count", "lot", "expires_at", "available_at")

KINDS = ("earn", "release", "expire", "spend", "redeem", "reverse", "reward",
         "use", "reward_expire")  # issue 13: a held reward used by a purchase, or ended by its expiry (0 points)

# The fields of an event's content (``interpreter.events.content_key``), in the order a conflict names them.
# The currency is not among them: an accepted event's is the program's, written or not.
CONTENT_FIELDS = ("customer", "type", "at", "amount", "items", "original", "reward", "birthday", "attributes",
                  "rewards_used", "partner", "paid", "friend", "account")
# The fields a content key always has. Those after them (issue 13's: the rewards a purchase uses, its partner, what
# it paid in another currency as "100.00 SEK", a referral's friend, the contact's account) are in a key only when the
# event has them, as one more item: their (name, value) pairs — so the key (and the fingerprint a stored receipt
# holds) of an event without them is what it always was.
_ALWAYS_IN_KEY = 9


def fingerprint(key: tuple[Any, ...]) -> bytes:
    """A short, stable digest of an event's content key (the same in every process and on every machine)."""
    return hashlib.blake2b(repr(key).encode("utf-8", "surrogatepass"), digest_size=16).digest()


def content_dict(key: tuple[Any, ...]) -> dict[str, Any]:
    """An event's content key as JSON-ready data, instants and money as people write them (for conflict reasons)."""
    data = dict(zip(CONTENT_FIELDS[:_ALWAYS_IN_KEY], key))
    if len(key) > _ALWAYS_IN_KEY:
        data.update(key[_ALWAYS_IN_KEY])
        if "rewards_used" in data:
            data["rewards_used"] = list(data["rewards_used"])
    data["at"] = from_us(data["at"]).isoformat()
    if data["amount"] is not None:
        data["amount"] = money.show(data["amount"])
    data["items"] = [{"sku": item[0], "category": item[1], "quantity": item[2], "price": money.show(item[3])}
                     for item in data["items"]]
    data["attributes"] = {name: value for name, value in data["attributes"]}
    return data


def content_key_of(data: dict[str, Any]) -> tuple[Any, ...]:
    """The content key again from ``content_dict``'s data (a store's file read back into memory)."""
    from decimal import Decimal

    from poletti.engine.timecalc import to_us

    def units(text: str) -> int:
        return money.to_units(Decimal(text))

    values = dict(data)
    values["at"] = to_us(datetime.fromisoformat(values["at"]))
    if values["amount"] is not None:
        values["amount"] = units(values["amount"])
    values["items"] = tuple((item["sku"], item["category"], item["quantity"], units(item["price"]))
                            for item in values["items"])
    values["attributes"] = tuple(sorted(values["attributes"].items()))
    if values.get("rewards_used"):
        values["rewards_used"] = tuple(values["rewards_used"])
    key = tuple(values[name] for name in CONTENT_FIELDS[:_ALWAYS_IN_KEY])
    # An empty list of rewards used is no rewards used: absent from the key, as in ``content_key``.
    extras = tuple((name, values[name]) for name in CONTENT_FIELDS[_ALWAYS_IN_KEY:]
                   if values.get(name) not in (None, ()))
    return key + (extras,) if extras else key


class Store(Protocol):
    """The engine's view of a store (see the module docstring)."""

    #: The store keeps a ledger (the engine then builds entries for it).
    keeps_ledger: bool
    #: Other processes may write to the same store: the engine keeps no copy of what the store holds.
    shared: bool

    def transaction(self, customer: str | None = None, others: tuple[str, ...] = ()) -> ContextManager[None]:
        """Everything inside is kept together or not at all; ``customer`` (and ``others``: the customers the
        event changes besides its own, e.g. a referral's friend) is locked against other writers."""

    def load(self, customer: str) -> CustomerState | None:
        """The customer's state, or None for a customer never seen."""

    def save(self, state: CustomerState, next_change: int | None) -> None:
        """Store the state and when its next time-driven change is due (µs; None: nothing is due)."""

    def receipt(self, event_id: str) -> Receipt | None:
        """The receipt of an applied event with this id, or None."""

    def record(self, event_id: str, customer: str, key: tuple[Any, ...]) -> None:
        """Remember that the event with this id and content (``events.content_key``) was applied."""

    def append(self, entries: Iterable[LedgerEntry]) -> None:
        """Add entries to the ledger (stores without a ledger ignore them)."""

    def history(self, customer: str) -> list[LedgerEntry]:
        """The customer's ledger entries, oldest first (empty without a ledger)."""

    def due(self, until: int) -> list[str]:
        """Customers whose next change is at or before ``until`` (µs), earliest first."""

    def customers(self) -> Iterator[str]:
        """Every customer with a state, by id."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def use_program(self, digest: str, source: str) -> None:
        """Note that the program with this hash (and source) runs from now on (stores keep each change)."""

    def retryable(self, error: BaseException) -> bool:
        """Whether an error raised inside a transaction means: roll back and try the whole event again."""

    def close(self) -> None: ...
