"""``poletti generate``: a reproducible synthetic café history (CSV, JSON Lines or Parquet).

The events come from ``poletti.interpreter.simulate.generate.generate_history``; its
docstring describes the model. With ``--rules`` the history is made for that
program (``generate_plan.plan_for`` reads what it needs). The same options
always write the same bytes.
"""

from __future__ import annotations

import io
import os
import sys
from datetime import date
from typing import IO, Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from poletti.cli import STDIN, _quoted
from poletti.commands.outputs import TEMP_MARK, atomic_output, check_outputs, temporary

FORMATS = ("csv", "jsonl", "parquet")
_PROGRESS_EVERY = 2000


def _parse_start(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from None


def _check_zone(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"{value!r} is not an IANA time zone name such as Europe/Helsinki") from None
    return value


def _check_currency(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) != 3 or not value.isascii() or not value.isupper() or not value.isalpha():
        raise click.BadParameter(f"{value!r} is not a three-letter currency code such as EUR")
    return value


def _format_of(out: str, chosen: str | None) -> str:
    """--format, else the --out suffix by the table every history reader uses (standard output: csv)."""
    from poletti.interpreter.simulate.history import HistoryError, detect_format

    if chosen is not None:
        return chosen
    if out == STDIN:
        return "csv"
    try:
        return detect_format(out)
    except HistoryError as err:
        raise click.UsageError(f"{err}, or choose one with --format") from None


@click.command(name="generate")
@click.option("--customers", type=click.IntRange(min=1), required=True, metavar="N",
              help="How many customers sign up over the history.")
@click.option("--days", type=click.IntRange(min=1), required=True, metavar="D", help="Length of the history in days.")
@click.option("--seed", type=int, required=True, metavar="S", help="Random seed: the same seed gives the same file.")
@click.option("--start", callback=_parse_start, metavar="DATE",
              help="First day of the history, YYYY-MM-DD.  [default: 2025-01-01]")
@click.option("--out", "-o", default=STDIN, show_default="standard output", metavar="FILE",
              help="Where to write the history.")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default=None,
              help="csv, jsonl or parquet.  [default: from the --out suffix, else csv]")
@click.option("--rules", "rules_path", metavar="RULES",
              help="Make the history for this program: every event kind, attribute, category and SKU its "
                   "rules read, redeems of its rewards with `costs`, in its currency and time zone.")
@click.option("--timezone", "zone", default=None, callback=_check_zone,
              help="IANA time zone of the café (timestamps carry its offset).  "
                   "[default: Europe/Helsinki; with --rules the program's]")
@click.option("--currency", default=None, callback=_check_currency,
              help="Currency of amounts and prices.  [default: EUR; with --rules the program's]")
@click.option("--partitions", type=click.IntRange(min=1, max=4096), default=None, metavar="N",
              help="Write a folder (--out) of N Parquet files, each customer in one of them: "
                   "the layout `poletti simulate --dask` reads shard by shard.")
@click.option("--delimiter", type=click.Choice([",", ";"]), default=",", show_default=True,
              help="The CSV delimiter.")
@click.option("--decimal-comma", is_flag=True,
              help="Write CSV amounts and prices 12,50 (with --delimiter ';'), as Finnish businesses export them.")
@click.pass_context
def command(ctx: click.Context, customers: int, days: int, seed: int, start: date | None, out: str,
            output_format: str | None, rules_path: str | None, zone: str | None, currency: str | None,
            partitions: int | None, delimiter: str, decimal_comma: bool) -> None:
    """Write a synthetic, reproducible purchase history of a café loyalty program.

    Signups (most with birthdays), purchases with baskets of coffee, pastries,
    beans and merch, visits, reviews, shares and refunds, with weekly and
    yearly seasons, a few heavy regulars and many occasional customers, churn
    and new customers arriving over time. Events are in time order, ready for
    `poletti simulate` or `poletti run`.

    With --rules RULES the history is made for that program: besides the
    above, feedback, referrals (with `friend`) and the program's own event
    types (`event NAME`) when its rules read them; the attributes it declares,
    on the events that read them, with values of their kind around the values
    the rules compare them with; items of every category and SKU the rules
    name; redeems of rewards with `costs` when the balance pays for them;
    purchases (and redeems) at its partners (`partner`) when it declares
    any, and purchases that use a held reward (`rewards_used`) when it gives
    a reward a percentage value or an expiry; in the program's currency and
    time zone. The same seed and the same rules
    give the same file. Rules with errors exit 1 with the diagnostics.

    \b
    Examples:
      poletti generate --customers 1000 --days 730 --seed 42 --out history.csv
      poletti generate --rules rules.loyalty --customers 500 --days 365 --seed 1 -o history.parquet
    """
    from poletti.interpreter.simulate.generate import (
        HISTORY_COLUMNS, generate_history, write_csv, write_jsonl, write_parquet, write_parquet_dataset,
    )

    program = None
    if rules_path is not None:
        from poletti.cli import load_program

        program = load_program(ctx, rules_path)  # unreadable: exit 2; errors: the diagnostics, exit 1
    if out == "":
        check_outputs([("--out", out)])  # an empty name: exit 2
    if partitions is None:
        check_outputs([("--out", out)])  # a folder, a FIFO or a device is refused, never replaced
    fmt = _format_of(out, output_format if partitions is None else output_format or "parquet")
    if partitions is not None:
        if output_format not in (None, "parquet"):
            raise click.UsageError("--partitions writes Parquet files: leave out --format or say parquet")
        if out == STDIN:
            raise click.UsageError("--partitions writes a folder of files: give one with --out")
        fmt = "parquet"
    if fmt == "parquet" and out == STDIN:
        raise click.UsageError("Parquet is a binary file format: give a file with --out")
    if (delimiter != "," or decimal_comma) and (partitions is not None or fmt != "csv"):
        raise click.UsageError("--delimiter and --decimal-comma are for CSV output")
    if decimal_comma and delimiter != ";":
        raise click.UsageError("--decimal-comma needs --delimiter ';' (in a file separated by commas, "
                               "12,50 would be two cells)")
    columns: tuple[str, ...] = HISTORY_COLUMNS
    bools: frozenset[str] = frozenset()
    source: Any = None
    if program is not None:
        from poletti.interpreter.simulate.generate_plan import plan_for

        source = plan_for(program)
        columns, bools = HISTORY_COLUMNS + source.extra_columns, source.bool_columns
    try:
        events = generate_history(customers, days, seed, start, tz=zone, currency=currency, program=source)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    with _progress(days, start) as progress:
        if partitions is not None:
            count = _write_folder(out, lambda folder: write_parquet_dataset(events, folder, partitions, progress,
                                                                           columns, bools))
        elif fmt == "parquet":
            count = _write_file(out, binary=True,
                                write=lambda handle: write_parquet(events, handle, progress, columns, bools))
        elif fmt == "csv":
            def write(handle: IO[str]) -> int:
                return write_csv(events, handle, progress, columns, delimiter=delimiter, decimal_comma=decimal_comma)

            count = _write_stdout(write) if out == STDIN else _write_file(out, binary=False, write=write)
        else:
            def write(handle: IO[str]) -> int:
                return write_jsonl(events, handle, progress)

            count = _write_stdout(write) if out == STDIN else _write_file(out, binary=False, write=write)
    if sys.stderr.isatty():
        where = "standard output" if out == STDIN else _quoted(out)
        click.echo(f"wrote {count:,} events of {customers:,} customers over {days:,} days to {where}", err=True)


def _write_stdout(write: Callable[[IO[str]], int]) -> int:
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a text-only stream (some embedding hosts): it chooses the newlines
        return write(sys.stdout)
    sys.stdout.flush()
    # newline="": the writers choose "\n" themselves, on every platform, so the bytes never vary.
    text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
    try:
        count = write(text)
        text.flush()
    finally:
        text.detach()
    return count


def _write_folder(path: str, write: Callable[[str], int]) -> int:
    """Write a folder beside ``path`` and rename it into place: a crash never leaves half a dataset."""
    import shutil
    import tempfile

    if os.path.exists(path) and not (os.path.isdir(path) and not os.listdir(path)):
        raise click.UsageError(f"{_quoted(path)} exists: --partitions writes a new folder (or an empty one)")
    parent = os.path.dirname(os.path.abspath(path)) or "."
    work = tempfile.mkdtemp(prefix="." + os.path.basename(os.path.abspath(path))[:120] + TEMP_MARK, dir=parent)
    try:
        with temporary(work):
            count = write(work)
            if os.path.isdir(path):
                os.rmdir(path)
            os.replace(work, path)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return count


def _write_file(path: str, binary: bool, write: Callable[[Any], int]) -> int:
    """Write through a temporary file beside ``path`` and rename it: a crash never leaves half a history."""
    with atomic_output(path, binary=binary, option="--out") as handle:
        return write(handle)


class _progress:
    """A progress bar over the history's days on a terminal; a no-op callback elsewhere."""

    def __init__(self, days: int, start: date | None) -> None:
        self.days = days
        self.start = start
        self.progress: Any = None
        self.task: Any = None
        self.seen = 0

    def __enter__(self) -> Callable[[dict[str, Any]], None] | None:
        if not sys.stderr.isatty():
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from poletti.interpreter.simulate.generate import DEFAULT_START

        self.start = self.start or DEFAULT_START
        self.progress = Progress(TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TextColumn("days"),
                                 TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self.progress.start()
        self.task = self.progress.add_task("days", total=self.days)
        return self._update

    def _update(self, event: dict[str, Any]) -> None:
        self.seen += 1
        if self.seen % _PROGRESS_EVERY:
            return
        day = (date.fromisoformat(event["at"][:10]) - self.start).days  # type: ignore[operator]
        self.progress.update(self.task, completed=min(self.days, max(0, day)))

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
