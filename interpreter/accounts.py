"""Shared accounts: ``points pooled by account`` (docs/language.md "Shared accounts").

With pooling, an event's ``account`` names the account its customer (a
*contact*) belongs to, and the account holds what the contract pools:
balance, lots, pending points and tier (and the reward wallet when it
lands: add its field to ``POOLED``), with the running report figures that
go with them. Windows, conditions, stamp cards, caps, segments and `when`
rules stay the contact's own; ``account.spend_12m`` and the like read
the account's windows, which count every contact's purchases and visits.

The account is a state of its own, stored beside the customers under the
key ``account_key(id)``, with its own clock: its lots expire and its
pending points become spendable at their exact instants, its windows slide
and its tier (which reads only account figures: the checker sees to that,
E152) changes when they do. An event of a contact first brings the
account's clock to the event, then runs the contact's steps 1–6 with the
pool swapped into the contact's state (``pooled``), and swaps it back, so
that the processing steps are the same code for every program.

Decisions where the contract is silent:

* A contact belongs to one account, fixed by their first accepted event:
  an event naming another account is rejected, and so is an account on a
  contact whose first event named none (such a contact keeps their own
  figures, as in a program without pooling). An event without ``account``
  of a contact who has one is theirs.
* Conversions that happen with time (pending points released, at the
  account's instant) read the account's figures in their conditions.
* A contact's own time-driven conditions (`when`, segments) that read the
  pooled points see them as the account's clock last left them.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Callable, Iterator

from poletti.engine.expressions import POOLS
from poletti.engine.state import CustomerState, exit_leaves
from poletti.interpreter.events import Event, EventError
from poletti.interpreter.events import _short as echoed
from poletti.interpreter.processing import Processor, Tally
from poletti.interpreter.trace import Expired, Released

ACCOUNT_PREFIX = "@account:"

# The fields of a state that belong to the account when points are pooled.
POOLED = ("ledger", "tier", "tier_held", "tier_keep_until", "rewards",
          "total_earned", "total_spent", "total_expired", "total_reversed", "total_cost",
          # the wallet (held rewards and what was used or expired) and the partner figures
          "wallet", "rewards_used", "rewards_expired", "total_cost_used", "partner_points")


def account_key(account: str) -> str:
    """Where an account's state is stored (beside the customers; no customer id may start so)."""
    return ACCOUNT_PREFIX + account


def is_account_key(key: str) -> bool:
    return key.startswith(ACCOUNT_PREFIX)


class Accounts:
    """One program's account work, on states the caller loaded and will save."""

    def __init__(self, processor: Processor) -> None:
        self.processor = processor
        self.cp = processor.cp
        self.pooled_program = processor.cp.pooled

    # ------------------------------------------------------------------ which account

    def account_for(self, event: Event, contact: CustomerState | None) -> str | None:
        """The account whose pool the event uses (None: the contact's own figures); ``EventError`` if it cannot."""
        if not self.pooled_program:
            return None
        if is_account_key(event.customer):
            raise EventError(f"customer ids starting with {ACCOUNT_PREFIX!r} are kept for accounts", event.id)
        named = event.account
        if contact is None or contact.last_event_at is None:
            return named  # a new contact joins the account their first event names
        if named is not None and named != contact.account:
            if contact.account is None:
                raise EventError(f"customer {echoed(event.customer)} has events without an account; a contact "
                                 f"belongs to one account, from their first event", event.id)
            raise EventError(f"customer {echoed(event.customer)} belongs to account {echoed(contact.account)}, "
                             f"not {echoed(named)}; a contact belongs to one account", event.id)
        return contact.account

    def account_to_lock(self, event: Event, load: Callable[[str], CustomerState | None]) -> str | None:
        """The account key an event of this program may change (read before the locks are taken)."""
        if not self.pooled_program:
            return None
        if event.account is not None:
            return account_key(event.account)
        contact = load(event.customer)
        return account_key(contact.account) if contact is not None and contact.account is not None else None

    def check_redeem(self, event: Event, pool: CustomerState, *, own: bool = False) -> None:
        """A redeem is paid from the pool: its balance after the clock step must cover the cost.

        ``own``: the pool is a contact without an account (their own state, their own clock).
        """
        reward = event.reward or ""
        cost = self.cp.rewards.get(reward, (None, None))[1]
        if cost is None:
            return  # unknown rewards and rewards without `costs` were rejected already
        trial = copy.deepcopy(pool)
        if own:
            self.processor.advance(trial, event.at, Tally(False))
        else:
            self.advance(trial, event.at, Tally(False))
        if trial.ledger.balance < cost:
            raise EventError(f"balance {trial.ledger.balance} points is short of {cost} for {reward}", event.id)

    # ------------------------------------------------------------------ the pool

    @contextmanager
    def pooled(self, contact: CustomerState, account: CustomerState) -> Iterator[None]:
        """The contact's state with the account's pool in it (and ``account.`` quantities reading the account)."""
        own = [getattr(contact, name) for name in POOLED]
        for name in POOLED:
            setattr(contact, name, getattr(account, name))
        POOLS[id(contact)] = account
        try:
            yield
        finally:
            POOLS.pop(id(contact), None)
            for name, value in zip(POOLED, own):
                setattr(account, name, getattr(contact, name))  # numbers were replaced, not changed in place
                setattr(contact, name, value)

    # ------------------------------------------------------------------ the account's clock

    def advance(self, account: CustomerState, until: int, tally: Tally) -> None:
        """Every time-driven change of the account in (its clock, until], each at its instant."""
        account.next_change_clock = None
        if account.clock is None:
            account.clock = until
            return
        while True:
            instant = self.next_change(account)
            if instant is None or instant > until:
                break
            self._apply_instant(account, instant, tally)
            account.clock = instant
        if until > account.clock:
            self.processor._leave_windows(account, until)
            account.clock = until

    def next_change(self, account: CustomerState) -> int | None:
        """The account's next time-driven change: a lot expiring or released, a window exit, a tier's keep ending."""
        after = account.clock
        if after is None:
            return None
        candidates = [account.ledger.next_change()]
        candidates.extend(exit_leaves(totals.exits[0]) for totals in account.windows if totals.exits)
        candidates.extend(account.tier_keep_until)
        future = [t for t in candidates if t is not None and t > after]
        return min(future, default=None)

    def _apply_instant(self, account: CustomerState, instant: int, tally: Tally) -> None:
        processor, ledger = self.processor, account.ledger
        for lot in ledger.expire_until(instant):
            tally.expired += lot.points
            account.total_expired += lot.points
            tally.note(Expired(instant, lot.points, lot.earned_at, lot.source, lot.pending))
        released = ledger.release_pending_until(instant)
        for item in released:
            tally.note(Released(instant, item.points, item.earned_at, item.source))
        processor._leave_windows(account, instant)
        ctx = self.cp.make_ctx(account, instant, None)
        processor._tiers(account, ctx, tally)
        if released:
            processor.convert(account, ctx, tally)


__all__ = ["ACCOUNT_PREFIX", "Accounts", "POOLED", "account_key", "is_account_key"]
