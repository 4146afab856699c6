"""``poletti run RULES EVENTS``: feed events to the engine and print what each one did.

EVENTS is a history file (JSON Lines, CSV or Parquet; ``-`` reads JSON Lines
from standard input), processed in the order of the file, as a host feeding
the engine would: an event older than its customer's last one is rejected,
not reordered (``--sort`` processes the file in time order instead, as
``simulate`` does). Each outcome is printed with its explanation (or as one
JSON object per line with ``--json``: the outcome's ``to_dict()`` with the
``row`` it came from, or ``{"status": "rejected", "row", "event_id",
"customer", "reason"}``); a rejected event is printed with its reason and
never stops the run. At the end the clock is advanced to the last
event's time (or ``--until``) and the time-driven changes after each
customer's last event are printed too. A one-line total goes to stderr.

Exit codes: 0 the run completed (rejected events included: they are
reported and counted, not errors of the run), 1 the rule file has errors,
2 a file cannot be read or an option is wrong.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import datetime
from typing import Any, Iterator

import click

from poletti.dsl import classes


@classes.frozen
class Rejected:
    """An event (or a row that is not one) that changed nothing, and why."""

    row: int
    where: str  # "line 7" / "row 7"
    event_id: str | None
    customer: str | None
    reason: str

    def text(self) -> str:
        """The rejection for people; the id and the reason come from user data, so controls are shown escaped."""
        from poletti.commands.outputs import shown

        who = f"{shown(self.event_id)} ({self.where})" if self.event_id is not None else self.where
        return f"rejected {who}: {shown(self.reason)}"

    def to_dict(self) -> dict[str, Any]:
        return {"status": "rejected", "row": self.row, "event_id": self.event_id, "customer": self.customer,
                "reason": self.reason}


def text_field(value: Any) -> str | None:
    """An id or customer as the engine reads it (text or a whole number), else None."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value)


_CSV_CHOICES = "poletti.csv_dialect"  # ctx.meta key: (delimiter or None, decimal comma or None)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    delimiter, decimal_comma = ctx.meta.get(_CSV_CHOICES, (None, None))
    if param.name == "delimiter":
        delimiter = value
    else:
        decimal_comma = value
    ctx.meta[_CSV_CHOICES] = (delimiter, decimal_comma)


def csv_options(command: Any) -> Any:
    """``--delimiter`` and ``--decimal-comma/--decimal-point``, for every command that reads a history."""
    command = click.option("--decimal-comma/--decimal-point", "decimal_comma", default=None, expose_value=False,
                           callback=_remember,
                           help="A CSV history writes amounts and prices 12,50 (only in a ';'-separated file) "
                                "or 12.50. "
                                "[default: found from the file]")(command)
    return click.option("--delimiter", type=click.Choice([",", ";"]), default=None, expose_value=False,
                        callback=_remember,
                        help="The CSV history's delimiter.  [default: the one that splits the header]")(command)


def history_dialect(path: str) -> Any:
    """The CSV dialect the options chose for HISTORY (None: found from the file); they are refused for a
    history that is not CSV (exit 2). ``HistoryError`` when the file's dialect is unclear."""
    from poletti.interpreter.simulate.history import HistoryError, csv_dialect, detect_format

    ctx = click.get_current_context(silent=True)
    delimiter, decimal_comma = ctx.meta.get(_CSV_CHOICES, (None, None)) if ctx is not None else (None, None)
    try:
        is_csv = path != "-" and not os.path.isdir(path) and detect_format(path) == "csv"
    except HistoryError:
        is_csv = False
    if not is_csv:
        if delimiter is not None or decimal_comma is not None:
            raise click.UsageError("--delimiter, --decimal-comma and --decimal-point are for CSV histories")
        return None
    return csv_dialect(path, delimiter, decimal_comma)


def open_history(path: str, program: Any) -> Any:
    """The history reader for EVENTS (``poletti.interpreter.simulate.history.History``); unreadable → exit 2."""
    from zoneinfo import ZoneInfo

    from poletti.cli import Unreadable
    from poletti.interpreter.simulate.history import History, HistoryError, bool_columns_of

    try:  # read as simulate reads it: the same cells, attributes, items, yes/no values and CSV dialect
        return History(path, ZoneInfo(program.timezone), bool_columns=bool_columns_of(program),
                       dialect=history_dialect(path))
    except HistoryError as err:
        raise Unreadable(str(err)) from None


def records(history: Any, in_time_order: bool) -> Iterator[Any]:
    """The history's records (file order, or time order); a problem with the whole file → exit 2."""
    from poletti.cli import Unreadable
    from poletti.interpreter.simulate.history import HistoryError

    try:
        yield from (history.in_time_order() if in_time_order else history.records())
    except HistoryError as err:
        raise Unreadable(str(err)) from None


def until_instant(program: Any, until: str | None) -> datetime | None:
    """``--until`` as an instant (a date alone is midnight in the program zone); a bad value exits 2."""
    if until is None:
        return None
    from zoneinfo import ZoneInfo

    from poletti.engine.timecalc import parse_timestamp

    from poletti.interpreter.events import FIRST_YEAR, LAST_YEAR

    try:
        instant = parse_timestamp(until, ZoneInfo(program.timezone))
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="'--until'") from None
    if not FIRST_YEAR <= instant.year <= LAST_YEAR:
        raise click.BadParameter(f"{until!r} is out of range: years {FIRST_YEAR} to {LAST_YEAR}",
                                 param_hint="'--until'")
    return instant


def process(engine: Any, record: Any, row_word: str) -> Any:
    """One history record through the engine: its Outcome, or a ``Rejected``."""
    from poletti.interpreter.events import EventError

    where = f"{row_word} {record.row}"
    event = record.event
    if event is None:
        return Rejected(record.row, where, None, None, record.error or "not an event")
    try:
        return engine.process(event)
    except EventError as err:
        return Rejected(record.row, where, err.event_id, text_field(event.get("customer")), err.reason)


def row_word(history: Any) -> str:
    return "line" if history.format == "jsonl" else "row"


def json_line(data: dict[str, Any]) -> str:
    from poletti.commands.outputs import json_for_terminal

    return json_for_terminal(json.dumps(data, ensure_ascii=False, default=str))


@click.command("run")
@click.argument("rules", metavar="RULES")
@click.argument("events", metavar="EVENTS")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per outcome or rejection, one per line.")
@click.option("--until", metavar="DATE",
              help="Advance the clock to DATE at the end (a date, or a timestamp with offset); "
                   "default: the last event's time.")
@click.option("--sort", "in_time_order", is_flag=True,
              help="Process the events in time order (as simulate does) instead of the file's order.")
@click.option("--db", "location", metavar="PATH|URL",
              help="Keep the state in a database that outlives the run: an SQLite file (created if missing) or "
                   "postgresql://…; running the same events again applies only what is not there yet.")
@click.option("--no-ledger", is_flag=True, help="With --db: keep no ledger of point movements (faster).")
@csv_options
@click.pass_context
def command(ctx: click.Context, rules: str, events: str, as_json: bool, until: str | None,
            in_time_order: bool, location: str | None, no_ledger: bool) -> None:
    """Run RULES over EVENTS and print what each event did, and why.

    EVENTS is a .jsonl, .csv or .parquet file, or - for JSON Lines on
    standard input. Rejected events are printed with their reason and do not
    stop the run. With --db the state, every event's receipt and the ledger
    are kept in the database, one transaction per event: a run stopped at
    any point (even killed) is completed by running it again, and events
    already there are reported as duplicates. Exits 0 when the run completed
    (even with rejected events; the total on stderr counts them), 1 when
    RULES has errors, 2 when a file or the database cannot be read.
    """
    from poletti.cli import load_program
    from poletti.commands.outputs import check_outputs, terminal_text
    from poletti.interpreter.engine import Engine

    if location is not None and not location.startswith(("postgresql://", "postgres://")):
        check_outputs([("--db", location)], [("RULES", rules), ("EVENTS", events)])
    program = load_program(ctx, rules)
    end = until_instant(program, until)
    tz = _zone(program)
    engine = Engine(program, open_database(location, ledger=not no_ledger) if location else None)
    counts: Counter[str] = Counter()
    customers: set[str] = set()
    first = True

    def emit(text: str) -> None:
        nonlocal first
        if not as_json and not first:
            click.echo("")
        click.echo(text if as_json else terminal_text(text), nl=as_json)
        first = False

    from poletti.cli import Unreadable
    from poletti.engine.stores import StoreError

    try:
        run_all(engine, events, program, in_time_order, end, tz, as_json, emit, counts, customers)
    except StoreError as err:
        raise Unreadable(f"the store failed: {err}") from None
    finally:
        engine.store.close()
    ctx.exit(0)


def run_all(engine: Any, events: str, program: Any, in_time_order: bool, end: Any, tz: Any, as_json: bool,
            emit: Any, counts: Counter[str], customers: set[str]) -> None:
    """Every record through the engine, then the clock; the total on stderr."""
    last: datetime | None = None
    with open_history(events, program) as history:
        word = row_word(history)
        for record in records(history, in_time_order):
            counts["events"] += 1
            result = process(engine, record, word)
            if isinstance(result, Rejected):
                counts["rejected"] += 1
                emit(json_line(result.to_dict()) if as_json else result.text() + "\n")
                continue
            counts[result.status] += 1
            if result.status == "applied":
                customers.add(result.customer)
            # A duplicate counts for the clock too: a run completed after a crash must reach the same end.
            last = result.at if last is None or result.at > last else last
            emit(json_line({"row": record.row, **result.to_dict()}) if as_json else result.explain(tz))
        target = end if end is not None else last
        clock = engine.advance_to(target) if target is not None else []
        for outcome in clock:
            emit(json_line(outcome.to_dict()) if as_json else outcome.explain(tz))
    click.echo(summary(counts, len(customers), len(clock)), err=True)


def open_database(location: str, **options: Any) -> Any:
    """The store at ``--db`` (SQLite path or postgresql:// URL); one that cannot be opened exits 2."""
    from poletti.cli import Unreadable, _quoted
    from poletti.engine.stores import StoreError, open_store

    try:
        return open_store(location, **options)
    except (StoreError, OSError) as err:
        raise Unreadable(f"cannot open the store {_quoted(location)}: {err}") from None
    except ImportError as err:
        raise Unreadable(f"cannot open the store {_quoted(location)}: {err} "
                         "(pip install 'poletti[postgres]')") from None


def _zone(program: Any) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(program.timezone)


def summary(counts: Counter[str], customers: int, clock: int) -> str:
    """The one-line total: events read, applied, duplicates, rejected, customers, clock changes."""
    events = counts["events"]
    parts = [f"{counts['applied']} applied", f"{counts['duplicate']} duplicate", f"{counts['rejected']} rejected"]
    text = f"{events} event{'s' if events != 1 else ''}: {', '.join(parts)}; " \
           f"{customers} customer{'s' if customers != 1 else ''}"
    if clock:
        text += f"; clock changes for {clock} customer{'s' if clock != 1 else ''}"
    return text
