"""``poletti explain RULES EVENTS --customer ID``: one customer's story, and why.

The history is replayed in time order (as ``simulate`` does), but only the
events that can matter for the customer: customers are independent, except
that an event id is unique across all customers (an id seen before is a
duplicate). So the replay takes the customer's events plus those of every
customer linked to them through a shared id (and so on, until nothing new
is linked); the result is exactly what a replay of the whole file gives.

Printed: each of the customer's outcomes with its explanation (rejected
events with their reasons), the time-driven changes after the customer's
last event up to the history's last event (or ``--until``), and the final
standing. A customer with no event in the file is reported with the closest
ids that are in it, exit 1.
"""

from __future__ import annotations

import difflib
from datetime import datetime
from typing import Any

import click

from poletti.commands.outputs import shown, terminal_text
from poletti.commands.run import (
    Rejected, csv_options, open_history, process, records, row_word, text_field, until_instant,
)


def _linked_customers(history: Any, customer: str) -> tuple[set[str], int, set[str], datetime | None]:
    """Customers whose events can change ``customer``'s story; also events of ``customer``, all customers, last instant.

    Streams the file once per link found (usually twice in all), keeping only ids and names. The first
    pass also tells the history whether it is in time order, sparing it a scan of its own.
    """
    linked = {customer}
    everyone: set[str] = set()
    own = count = 0
    last: datetime | None = None
    ordered = True
    first_pass = True
    while True:
        ids: set[str] = set()
        pools: set[str] = set()  # accounts the linked customers' events name: their contacts share a pool
        for record in records(history, False):
            event = record.event
            if first_pass:
                count += 1
                if record.instant is not None:
                    if last is not None and record.instant < last:
                        ordered = False
                    if last is None or record.instant > last:
                        last = record.instant
            if event is None:
                continue
            who, event_id = text_field(event.get("customer")), text_field(event.get("id"))
            if first_pass and who is not None:
                everyone.add(who)
                own += who == customer
            if who in linked and event_id is not None:
                ids.add(event_id)
            if who in linked and text_field(event.get("account")) is not None:
                pools.add(text_field(event.get("account")))  # type: ignore[arg-type]
        if first_pass:
            history.count, history.reordered = count, not ordered  # what History.scan would find
        first_pass = False
        grown = set()
        for record in records(history, False):
            event = record.event
            if event is None:
                continue
            who, event_id = text_field(event.get("customer")), text_field(event.get("id"))
            if who is not None and who not in linked and (event_id in ids or (
                    pools and text_field(event.get("account")) in pools)):
                grown.add(who)
            friend = text_field(event.get("friend")) if event.get("type") == "referral" else None
            if who is not None and friend is not None and (who in linked) != (friend in linked):
                grown.add(friend if who in linked else who)  # a referral joins referrer and friend (their payouts)
        if not grown:
            return linked, own, everyone, last
        linked |= grown


@click.command("explain")
@click.argument("rules", metavar="RULES")
@click.argument("events", metavar="EVENTS")
@click.option("--customer", "customer", required=True, metavar="ID", help="The customer whose story to tell.")
@click.option("--until", metavar="DATE",
              help="Follow the clock up to DATE (a date, or a timestamp with offset); default: the last event's time.")
@csv_options
@click.pass_context
def command(ctx: click.Context, rules: str, events: str, customer: str, until: str | None) -> None:
    """Tell one customer's story: every point, reward and tier, and why.

    EVENTS is a .jsonl, .csv or .parquet file, or - for JSON Lines on
    standard input; it is replayed in time order. Exits 0 after telling the
    story, 1 when RULES has errors or the customer has no events in EVENTS,
    2 when a file cannot be read.
    """
    from zoneinfo import ZoneInfo

    from poletti.cli import EXIT_ERRORS, load_program
    from poletti.interpreter.engine import Engine

    program = load_program(ctx, rules)
    end = until_instant(program, until)
    tz = ZoneInfo(program.timezone)
    with open_history(events, program) as history:
        linked, own, everyone, last = _linked_customers(history, customer)
        if not own:
            click.echo(_unknown(customer, history.name, everyone), err=True)
            ctx.exit(EXIT_ERRORS)
        engine = Engine(program)
        word = row_word(history)
        out: list[str] = []
        counts = {"applied": 0, "duplicate": 0, "rejected": 0}
        for record in records(history, True):
            event = record.event
            if event is None or text_field(event.get("customer")) not in linked:
                continue
            result = process(engine, record, word)
            if text_field(event.get("customer")) != customer:
                # Another customer's event may have changed this one's (a friend's purchase paying its referrer).
                out.extend(other.explain(tz) for other in getattr(result, "linked", ()) if other.customer == customer)
                continue
            if isinstance(result, Rejected):
                counts["rejected"] += 1
                out.append(result.text() + "\n")
            else:
                counts[result.status] += 1
                out.append(result.explain(tz))
        target = end if end is not None else last
        if target is not None:
            for outcome in engine.advance_to(target):
                if outcome.customer == customer:
                    out.append(outcome.explain(tz))
        header = (f"Customer {shown(customer)}: {own} event{'s' if own != 1 else ''} in {shown(history.name)} "
                  f"({counts['applied']} applied, {counts['duplicate']} duplicate, {counts['rejected']} rejected)\n")
        click.echo(header)
        for block in out:
            click.echo(terminal_text(block))
        seen = engine.customer(customer).last_event_at
        as_of = max((t for t in (target, seen) if t is not None), default=None)  # --until may be before the end
        click.echo(terminal_text(standing(engine, customer, as_of, tz)), nl=False)
    ctx.exit(0)


def standing(engine: Any, customer: str, at: datetime | None, tz: Any) -> str:
    """The customer's standing at the end, one figure per line."""
    view = engine.customer(customer)
    currency = engine.compiled.checked.currency
    when = f" at {at.astimezone(tz).isoformat()}" if at is not None else ""
    rewards = ", ".join(f"{name} × {count}" for name, count in sorted(view.rewards.items())) or "none"
    segments = ", ".join(sorted(view.segments)) or "none"
    lines = [
        f"Standing{when}:",
        f"  points           {view.points}",
        f"  pending          {view.pending_points}",
        f"  lifetime         {view.lifetime_points}",
        f"  debt             {view.debt}",
        f"  tier             {view.tier or 'none'}",
        f"  segments         {segments}",
        f"  rewards          {rewards}",
        f"  spend (lifetime) {_money(view.spend_lifetime)} {currency}",
    ]
    if view.first_seen is not None and view.last_event_at is not None:
        lines.append(f"  first event      {view.first_seen.astimezone(tz).isoformat()}")
        lines.append(f"  last event       {view.last_event_at.astimezone(tz).isoformat()}")
    lines += _wallet_and_perks(engine, customer, view, tz)
    return "\n".join(lines) + "\n"


def _wallet_and_perks(engine: Any, customer: str, view: Any, tz: Any) -> list[str]:
    """Issue 13: what the customer holds (and until when), what was used, and why each perk is held or not."""
    from poletti.interpreter.perks import why_perk

    lines = []
    compiled = engine.compiled
    # Shown when the program gives rewards wallet terms or the customer used one: otherwise "held" only
    # repeats the rewards line.
    if compiled.wallet or view.rewards_used:
        held = ", ".join(f"{h.reward} × {h.count}" + (f" until {h.until.astimezone(tz).isoformat()}" if h.until
                                                        else "") for h in view.held) or "none"
        lines.append(f"  held             {held}")
        used = ", ".join(f"{name} × {count}" for name, count in sorted(view.rewards_used.items())) or "none"
        lines.append(f"  used             {used}")
    if compiled.perks:
        state = engine.state(customer)
        lines.append("  perks:")
        for perk in compiled.perks:
            lines.append(f"    {why_perk(compiled, state, perk)[1]} (line {perk.line})")
    return lines


def _money(value: Any) -> str:
    from decimal import Decimal

    cents = value.quantize(Decimal("0.01"))
    return str(cents if cents == value else value)


def _unknown(customer: str, name: str, everyone: set[str]) -> str:
    if not everyone:
        return f"poletti: no customer has an event in {shown(name)}, so there is no story for '{shown(customer)}'"
    close = difflib.get_close_matches(customer, sorted(everyone), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(shown(repr(c)) for c in close)}?" if close else ""
    count = len(everyone)
    return (f"poletti: customer '{shown(customer)}' has no events in {shown(name)} "
            f"({count} other customer{' has' if count == 1 else 's have'} events there){hint}")
