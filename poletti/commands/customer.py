"""``poletti customer ID --db PATH|URL`` and ``poletti ledger --db PATH|URL``: read a store back.

``customer`` shows what a member page shows — points, pending and lifetime
points, tier, rewards, each lot with its expiry, stamp cards, the points
still needed for each ``at`` reward — and the customer's ledger.
``ledger`` lists the ledger entries of every customer (or one), oldest
first, and marks where the program changed. Both read the program from the
store itself (the last one that ran on it), or from ``--rules``; neither
changes anything. ``--json`` prints one JSON document.

Exit codes: 0 shown; 1 the customer has no state in the store (``customer``);
2 the store cannot be opened, or does not exist.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from poletti.commands.outputs import json_for_terminal, terminal_text
from poletti.commands.outputs import shown as user_text


def open_existing(location: str) -> Any:
    """The store at ``--db``, which must exist already (reading never creates one)."""
    from poletti.cli import Unreadable
    from poletti.commands.run import open_database

    if not location.startswith(("postgresql://", "postgres://")) and not os.path.exists(location):
        where = user_text(location)
        raise Unreadable(f"no store at '{where}' (poletti run RULES EVENTS --db {where} makes one)")
    return open_database(location)


def store_program(ctx: click.Context, store: Any, rules: str | None) -> Any:
    """The program to read the store with: ``--rules``, else the last one that ran on the store."""
    from poletti.cli import Unreadable, load_program

    if rules is not None:
        return load_program(ctx, rules)
    programs = store.programs()
    if not programs:
        raise Unreadable("the store has no program yet (pass --rules RULES)")
    import poletti

    try:
        return poletti.compile(programs[-1][1], "<the store's program>")
    except poletti.CompileError as err:
        raise Unreadable(f"the store's program no longer compiles with this poletti (pass --rules):\n{err}") from None


def entry_dict(entry: Any) -> dict[str, Any]:
    from poletti.engine.timecalc import from_us

    data = {name: getattr(entry, name) for name in ("seq", "customer", "event_id", "kind", "points", "balance",
                                                     "pending", "rule", "reward", "count", "lot", "program")}
    for name in ("at", "expires_at", "available_at"):
        value = getattr(entry, name)
        data[name] = None if value is None else from_us(value).isoformat()
    return data


def entry_line(entry: Any, tz: Any) -> str:
    """One ledger entry as a line: when, which event, what moved, by which rule, and the figures after."""
    from poletti.engine.timecalc import from_us

    when = from_us(entry.at).astimezone(tz).isoformat()
    sign = {"earn": "+", "release": "", "reward": ""}.get(entry.kind, "-")
    what = f"{entry.kind} {sign}{entry.points}" if entry.kind != "reward" else f"reward {entry.reward} × {entry.count}"
    if entry.kind in ("use", "reward_expire"):  # issue 13: the wallet moved, no points did
        what = f"{'used' if entry.kind == 'use' else 'expired'} reward {entry.reward}"
    if entry.kind in ("spend", "redeem") and entry.reward:
        what += f" for {entry.reward}" + (f" × {entry.count}" if entry.count > 1 else "")
    parts = [f"#{entry.seq}", when, entry.event_id or "(clock)", what]
    if entry.rule:
        parts.append(f"by '{entry.rule}'")
    if entry.lot and entry.kind in ("earn", "expire", "release", "reverse"):
        parts.append(f"lot {entry.lot}")
    if entry.expires_at is not None and entry.kind == "earn":
        parts.append(f"expires {from_us(entry.expires_at).astimezone(tz).isoformat()}")
    if entry.available_at is not None:
        parts.append(f"pending until {from_us(entry.available_at).astimezone(tz).isoformat()}")
    return "  ".join(parts) + f"  → balance {entry.balance}, pending {entry.pending}"


@click.command("customer")
@click.argument("customer_id", metavar="ID")
@click.option("--db", "location", required=True, metavar="PATH|URL", help="The store: an SQLite file or postgresql://…")
@click.option("--rules", metavar="RULES", help="Read the store with this rule file (default: the store's own program).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: the standing and the ledger.")
@click.pass_context
def command(ctx: click.Context, customer_id: str, location: str, rules: str | None, as_json: bool) -> None:
    """Show a customer's standing, lots, stamp cards, next rewards and ledger from a store."""
    from poletti.interpreter.views import view

    store = open_existing(location)
    try:
        program = store_program(ctx, store, rules)
        state = store.load(customer_id)
        if state is None:
            click.echo(f"poletti: no customer '{user_text(customer_id)}' in the store", err=True)
            ctx.exit(1)
        shown = view(program.compiled, customer_id, state)
        entries = store.history(customer_id)
    finally:
        store.close()
    if as_json:
        click.echo(json_for_terminal(json.dumps({"customer": shown.to_dict(),
                                                 "ledger": [entry_dict(e) for e in entries]},
                                                indent=2, ensure_ascii=False)))
        ctx.exit(0)
    tz = program.compiled.tz
    click.echo(terminal_text(standing_text(shown, tz)))
    if entries:
        click.echo(f"\nLedger ({len(entries)} entries):")
        for entry in entries:
            click.echo(terminal_text("  " + entry_line(entry, tz)))
    ctx.exit(0)


def standing_text(shown: Any, tz: Any) -> str:
    def when(value: Any) -> str:
        return "—" if value is None else value.astimezone(tz).isoformat()

    rewards = ", ".join(f"{name} × {count}" for name, count in sorted(shown.rewards.items()) if count) or "—"
    lines = [f"Customer {shown.id}",
             f"  points           {shown.points}",
             f"  pending points   {shown.pending_points}",
             f"  lifetime points  {shown.lifetime_points}",
             f"  debt             {shown.debt}",
             f"  tier             {shown.tier or 'none'}",
             f"  rewards          {rewards}",
             f"  segments         {', '.join(sorted(shown.segments)) or '—'}",
             f"  spend, lifetime  {shown.spend_lifetime:.2f}",
             f"  first seen       {when(shown.first_seen)}",
             f"  last event       {when(shown.last_event_at)}"]
    if shown.lots:
        lines.append("Lots:")
        for lot in shown.lots:
            text = f"  {lot.points} points earned {when(lot.earned_at)} by {lot.source}"
            text += f", pending until {when(lot.available_at)}" if lot.pending else ""
            text += f", expire {when(lot.expires_at)}" if lot.expires_at is not None else ", never expire"
            lines.append(text)
    if shown.stamp_cards:
        lines.append("Stamp cards:")
        lines += [f"  '{card.rule}': {card.stamps} of {card.every}" for card in shown.stamp_cards]
    if shown.next_rewards:
        lines.append("Next rewards:")
        lines += [f"  '{item.rule}': " + (f"{item.needed} more points" if item.needed else "reached")
                  for item in shown.next_rewards]
    return "\n".join(lines)


@click.command("ledger")
@click.option("--db", "location", required=True, metavar="PATH|URL", help="The store: an SQLite file or postgresql://…")
@click.option("--customer", "customer_id", metavar="ID", help="Only this customer's entries.")
@click.option("--rules", metavar="RULES", help="Show instants in this rule file's zone (default: the store's program).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: the entries and the program changes.")
@click.pass_context
def ledger_command(ctx: click.Context, location: str, customer_id: str | None, rules: str | None,
                   as_json: bool) -> None:
    """List the ledger of a store, oldest first, marking where the program changed."""
    store = open_existing(location)
    try:
        program = store_program(ctx, store, rules)
        entries = store.history(customer_id) if customer_id is not None else store.entries()
        programs = store.programs()
    finally:
        store.close()
    if as_json:
        click.echo(json_for_terminal(json.dumps(
            {"programs": [{"hash": digest, "first_entry": first} for digest, _, first in programs],
             "entries": [entry_dict(e) for e in entries]}, indent=2, ensure_ascii=False)))
        ctx.exit(0)
    tz = program.compiled.tz
    current = None
    for entry in entries:
        if entry.program != current:
            marker = "program" if current is None else "program changed to"
            click.echo(f"— {marker} {entry.program} —")
            current = entry.program
        click.echo(terminal_text(entry_line(entry, tz)))
    if not entries:
        whose = f" for customer '{user_text(customer_id)}'" if customer_id else ""
        click.echo("the ledger is empty" + whose, err=True)
    ctx.exit(0)
