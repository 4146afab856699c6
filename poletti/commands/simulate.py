"""``poletti simulate RULES HISTORY``: replay a purchase history through the rules and sum up what happened.

    poletti simulate rules.loyalty history.csv
    poletti simulate new.loyalty history.parquet --baseline old.loyalty --report report.html --json

HISTORY is a ``.csv``, ``.jsonl`` / ``.ndjson`` or ``.parquet`` file, or
``-`` for JSON Lines on standard input. The summary (LANGUAGE.md "The
simulate summary") is printed as a table, or as JSON with ``--json``.
Rejected events are counted (and listed with ``--rejected``) and never stop
the run. Exit codes: 0 done (rejected events included), 1 errors in a rule
file, 2 a file that cannot be read or written or a bad option.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import sys
from datetime import datetime, timezone
from typing import IO, Any, Iterator

import click

from poletti.cli import EXIT_USAGE, STDIN, Unreadable, _quoted, _use_color, load_program
from poletti.commands.run import csv_options, history_dialect
from poletti.commands.outputs import atomic_output, check_outputs, json_for_terminal, shown, spreadsheet_cell

SUMMARY_COLUMNS = ("Figure", "New rules", "Baseline rules", "Change")


@click.command("simulate")
@click.argument("rules", metavar="RULES")
@click.argument("history", metavar="HISTORY")
@click.option("--baseline", "baseline_path", metavar="OLD_RULES",
              help="Also run these (old) rules over the same history and show the change.")
@click.option("--until", metavar="DATE",
              help="End of the simulation: a date (midnight in the program's zone) or a timestamp with offset. "
                   "Events after it are not applied; the clock is advanced to it.")
@click.option("--effect-from", metavar="DATE",
              help="Show the program-effect measures before and from this date (e.g. a launch date).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object (no progress bar).")
@click.option("--customers", "customers_out", metavar="OUT.csv",
              help="Write each customer's final standing — tier, segments, points, rewards — (and, with "
                   "--baseline, the change) to a CSV file.")
@click.option("--rejected", "rejected_out", metavar="OUT.csv",
              help="Write every rejected event with its row and reason to a CSV file.")
@click.option("--report", "report_out", metavar="OUT.html",
              help="Write a self-contained HTML report with charts (works offline).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Replay on this many processes, this one included (customers are shared out by a hash; the "
                   "result is the same).")
@click.option("--sequential", is_flag=True,
              help="Replay event at a time through the engine, as a host would (the reference; slower; a shard "
                   "of customers at a time, on --workers processes).")
@click.option("--dask", "dask_address", metavar="ADDRESS",
              help="Run the shards on a Dask cluster: a scheduler address (tcp://host:8786), or 'local' for "
                   "--workers processes on this machine. Every worker must be able to read HISTORY.")
@csv_options
@click.pass_context
def command(ctx: click.Context, rules: str, history: str, baseline_path: str | None, until: str | None,
            effect_from: str | None, as_json: bool, customers_out: str | None, rejected_out: str | None,
            report_out: str | None, workers: int, sequential: bool, dask_address: str | None) -> None:
    """Replay an event history through RULES and summarise points, rewards, tiers, segments and cost.

    HISTORY is CSV, JSON Lines or Parquet (by its extension; - reads JSON
    Lines from standard input). A history that is not in time order is
    sorted first (events at the same instant keep their order). Rejected
    events are counted and never stop the run. The history is replayed
    customer by customer (with --workers, on several processes); the
    figures are those of an event-at-a-time replay (--sequential).
    """
    from poletti.interpreter.simulate.history import HistoryError, bool_columns_of, detect_format
    from poletti.interpreter.simulate import parse_instant
    from poletti.interpreter.simulate.columnar import simulate_file

    if rules == STDIN and history == STDIN:
        raise click.UsageError("RULES and HISTORY cannot both be standard input")
    if baseline_path == STDIN and STDIN in (rules, history):
        raise click.UsageError("only one of RULES, HISTORY and --baseline can be standard input")
    # Before anything is read or written: no output may replace an input, another output or a non-file.
    check_outputs([("--customers", customers_out), ("--rejected", rejected_out), ("--report", report_out)],
                  [("RULES", rules), ("HISTORY", history), ("--baseline", baseline_path)],
                  stdout="standard output holds the summary: give a file name")
    if not (history != STDIN and os.path.isdir(history)):  # a folder is a Parquet dataset
        try:
            detect_format(history)
        except HistoryError as err:
            raise Unreadable(str(err)) from None

    program = load_program(ctx, rules)
    baseline = load_program(ctx, baseline_path) if baseline_path is not None else None
    tz = program.compiled.tz
    until_at = _instant_option(until, "--until", tz, parse_instant)
    effect_at = _instant_option(effect_from, "--effect-from", tz, parse_instant)

    bool_columns = bool_columns_of(program, baseline)  # as run and explain read a CSV
    progress = make_progress(enabled=not as_json and _stderr_is_terminal())
    if sequential and dask_address:
        raise click.UsageError("--sequential replays event at a time on this machine: leave out --dask")
    if dask_address and history == STDIN:
        raise click.UsageError("--dask workers read HISTORY themselves: give a file, not standard input")
    # Each customer's final figures are kept only for the outputs that list them (the customer table, and the
    # report's distributions of the changes against a baseline): the summary alone holds no customer.
    keep_standings = customers_out is not None or (report_out is not None and baseline is not None)
    with contextlib.ExitStack() as stack:
        rejected_sink = stack.enter_context(_rejected_writer(rejected_out, baseline is not None))
        if progress is not None:
            stack.enter_context(progress)
        try:
            dialect = history_dialect(history)
            if sequential:
                from poletti.interpreter.simulate.sequential import replay_file  # (the Engine: only this path)

                result = replay_file([program] if baseline is None else [program, baseline], history,
                                     until=until_at, effect_from=effect_at, bool_columns=frozenset(bool_columns),
                                     progress=progress, on_rejected=rejected_sink, keep_rejections=20,
                                     dialect=dialect, keep_standings=keep_standings, workers=workers)
            elif dask_address:
                from poletti.interpreter.simulate.distributed import ClusterUnavailable, simulate_dask

                try:
                    result = simulate_dask(program, history, dask_address, baseline=baseline, until=until_at,
                                           effect_from=effect_at, bool_columns=frozenset(bool_columns),
                                           workers=workers, progress=progress, on_rejected=rejected_sink,
                                           keep_rejections=20, dialect=dialect, keep_standings=keep_standings)
                except ClusterUnavailable as err:
                    raise Unreadable(str(err)) from None
            else:
                result = simulate_file(program, history, baseline=baseline, until=until_at, effect_from=effect_at,
                                       bool_columns=frozenset(bool_columns), workers=workers, progress=progress,
                                       on_rejected=rejected_sink, keep_rejections=20, dialect=dialect,
                                       keep_standings=keep_standings)
        except HistoryError as err:
            raise Unreadable(str(err)) from None
    if customers_out is not None:
        with atomic_output(customers_out, option="--customers") as handle:
            write_customers(result, handle)
    if report_out is not None:
        from poletti.interpreter.simulate.report import Names, render_report

        names = Names(rules=_shown(rules), history=_shown(history),
                      baseline=_shown(baseline_path) if baseline_path else None,
                      generated=datetime.now(timezone.utc).astimezone(tz).strftime("%Y-%m-%d %H:%M %Z"))
        page = render_report(result, names)
        with atomic_output(report_out, option="--report") as handle:
            handle.write(page)

    written = [path for path in (customers_out, rejected_out, report_out) if path is not None]
    if as_json:
        click.echo(json_for_terminal(json.dumps(result.summary, indent=2, ensure_ascii=False)))
    else:
        color = _use_color(ctx)
        click.echo(render_summary(result, _shown(rules), _shown(history), baseline_path and _shown(baseline_path),
                                  color, written=written,
                                  listed=rejected_out is not None),
                   nl=False, color=color)


# ------------------------------------------------------------------ options


def _instant_option(value: str | None, name: str, tz: Any, parse: Any) -> datetime | None:
    if value is None:
        return None
    try:
        instant: datetime = parse(value, tz)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint=name) from None
    return instant


def _shown(path: str) -> str:
    return "<stdin>" if path == STDIN else path


def _stderr_is_terminal() -> bool:
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


# ------------------------------------------------------------------ progress


class RichProgress:
    """The progress bar on stderr: records or bytes done, rate, time left. A context manager."""

    LABELS = {"scan": "Reading history", "read": "Reading history", "sort": "Sorting by time",
              "simulate": "Simulating"}

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[amount]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=True,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        task = self.tasks.get(phase)
        if task is None:
            for other in self.tasks.values():
                self.progress.update(other, visible=False)
            task = self.tasks[phase] = self.progress.add_task(self.LABELS.get(phase, phase), total=total,
                                                              amount="", rate="")
        self.progress.update(task, completed=done, total=total)
        speed = self.progress.tasks[task].speed if task < len(self.progress.tasks) else None
        unit = "MB" if phase == "scan" and total and total > 10_000_000 else ""
        if phase == "scan":
            amount = f"{done / 1e6:,.1f}/{(total or 0) / 1e6:,.1f} MB" if unit else ""
            rate = f"{speed / 1e6:,.1f} MB/s" if speed and unit else ""
        else:
            amount = f"{done:,}/{total:,} events" if total else f"{done:,} events"
            rate = f"{speed:,.0f} events/s" if speed else ""
        self.progress.update(task, amount=amount, rate=rate)


def make_progress(enabled: bool) -> RichProgress | None:
    """A progress bar on stderr when ``enabled`` (stderr is a terminal and the output is not JSON), else None."""
    return RichProgress() if enabled else None


# ------------------------------------------------------------------ output files


# Columns of the customers file that hold figures poletti computed; every other cell may hold user text.
NUMERIC_CUSTOMER_COLUMNS = frozenset({
    "points", "pending_points", "lifetime_points", "debt", "reward_value", "spend", "purchases",
    "baseline_points", "baseline_pending_points", "baseline_lifetime_points", "baseline_reward_value",
    "delta_points", "delta_held_points", "delta_lifetime_points", "delta_rewards", "delta_reward_value",
})


@contextlib.contextmanager
def _rejected_writer(path: str | None, with_baseline: bool) -> Iterator[Any]:
    """A callback writing each rejected event to the ``--rejected`` CSV (None without the option)."""
    if path is None:
        yield None
        return
    columns = ["row", "event_id", "customer", "reason"] + (["rules"] if with_baseline else [])
    with atomic_output(path, option="--rejected") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)

        def write(item: Any) -> None:
            row = [item.row] + [spreadsheet_cell(text) for text in (item.event_id or "", item.customer or "",
                                                                        item.reason)]
            try:
                writer.writerow(row + ([spreadsheet_cell(item.rules)] if with_baseline else []))
            except OSError as err:
                raise Unreadable(f"cannot write {_quoted(path)}: {err.strerror or err}") from None

        yield write


def write_customers(result: Any, handle: IO[str]) -> None:
    """The ``--customers`` CSV: one row per customer, sorted by id.

    Text cells that a spreadsheet would run as a formula (``=…``, ``+…``, ``-…``, ``@…``) get a leading
    ``'`` (``spreadsheet_cell``); the figures are written as they are.
    """
    from poletti.interpreter.simulate.summary import BASELINE_COLUMNS, CUSTOMER_COLUMNS

    columns = list(CUSTOMER_COLUMNS) + (list(BASELINE_COLUMNS) if result.baseline is not None else [])
    writer = csv.DictWriter(handle, columns, extrasaction="ignore")
    writer.writeheader()
    for row in result.customer_rows():
        row = dict(row)
        for key in ("tier", "baseline_tier"):
            if key in row:
                row[key] = row[key] or "none"
        writer.writerow({key: value if key in NUMERIC_CUSTOMER_COLUMNS else spreadsheet_cell(value)
                         for key, value in row.items()})


# ------------------------------------------------------------------ the table


def render_summary(result: Any, rules: str, history: str, baseline: str | None, color: bool,
                   written: list[str] | None = None, listed: bool = False) -> str:
    """The summary for people: what was read, a table of figures (with the change), the effect measures."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    summary = result.summary
    buffer = io.StringIO()
    width = shutil.get_terminal_size((100, 24)).columns if color else 100
    # User text (paths, ids, reasons) is never markup or emoji codes: escaped, and shown() for controls.
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=max(width, 60),
                      color_system="standard" if color else None, highlight=False, soft_wrap=False, emoji=False)
    old = summary.get("baseline")
    change = summary.get("delta", {})
    through = f"[bold]{escape(shown(rules))}[/bold]" + (
        f" (baseline [bold]{escape(shown(baseline))}[/bold])" if baseline else "")
    console.print(f"Simulated [bold]{summary['events']:,}[/bold] events of {escape(shown(history))} through {through}")
    period = summary.get("period", {})
    if period.get("from"):
        console.print(f"from {period['from'][:19].replace('T', ' ')} to {period['to'][:19].replace('T', ' ')} "
                      f"({result.new.program.timezone})")
    if summary.get("reordered"):
        console.print("[yellow]The history was not in time order: it was sorted by time first "
                      "(events at the same instant keep their file order).[/yellow]")
    if summary.get("after_until"):
        console.print(f"{summary['after_until']:,} events after --until were not applied.")

    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    table.add_column("Figure")
    table.add_column("New rules" if old is not None else "Value", justify="right")
    if old is not None:
        table.add_column("Baseline rules", justify="right")
        table.add_column("Change", justify="right")
    from poletti.interpreter.simulate.report import (
        _figure_rows, _num, change_text, cost_unknown_note, figure_value, reward_labels, tone)

    for label, path in _figure_rows(summary, reward_labels(result)):
        value = figure_value(summary, path)
        cells = [escape(shown(label)), escape(_num(value))]
        if old is not None and (isinstance(value, list) or isinstance(figure_value(old, path), list)):
            cells += [escape(_num(figure_value(old, path) or [])), ""]  # names have no difference
        elif old is not None:
            diff = figure_value(change, path)
            text = change_text(summary, path)
            style = {"good": "green", "bad": "red"}.get(tone(path, diff), "")  # by meaning, not by sign
            cells += [escape(_num(figure_value(old, path))),
                      f"[{style}]{escape(text)}[/{style}]" if style else escape(text)]
        table.add_row(*cells)
    console.print(table)
    unknown = cost_unknown_note(summary)
    if unknown:
        console.print(f"[yellow]{escape(shown(unknown))}[/yellow]")

    effect = summary.get("effect", {})
    if effect.get("all", {}).get("purchases"):
        measures = Table(title="Program effect (accepted purchases, new rules)", title_justify="left",
                         show_edge=False, header_style="bold", pad_edge=False)
        measures.add_column("Measure")
        columns = [("Whole history", "all")]
        if "before" in effect:
            columns += [("Before", "before"), ("From " + (effect.get("effect_from") or "")[:10], "after")]
        for title, _ in columns:
            measures.add_column(title, justify="right")
        currency = summary.get("currency", "")
        for label, key in (("Repeat-purchase rate", "repeat_purchase_rate"),
                           ("Purchases per customer per month", "purchases_per_customer_per_month"),
                           ("Average basket", "average_basket"), ("Purchases", "purchases"),
                           ("Customers who purchased", "purchasing_customers")):
            row = [label]
            for _, column in columns:
                value = effect[column].get(key)
                if value is None:
                    row.append("–")
                elif key == "repeat_purchase_rate":
                    row.append(f"{value * 100:.1f} %")
                elif key == "average_basket":
                    row.append(f"{_num(value)} {currency}")
                else:
                    row.append(_num(value))
            measures.add_row(*row)
        console.print()
        console.print(measures)
    from poletti.interpreter.simulate.effect_tables import effect_tables

    for extra in effect_tables(effect, summary.get("currency", "")):
        detail = Table(title=escape(extra.title), title_justify="left", show_edge=False, header_style="bold",
                       pad_edge=False)
        for i, name in enumerate(extra.header):
            detail.add_column(escape(name), justify="left" if i == 0 else "right")
        for row in extra.rows:
            detail.add_row(*(escape(cell) for cell in row))
        console.print()
        console.print(detail)
        if extra.note:
            console.print(escape(extra.note))

    if result.rejections:
        console.print()
        console.print(f"[bold]{summary['rejected']:,} events rejected[/bold]"
                      + (f" by the new rules, {old['rejected']:,} by the baseline" if old is not None else "")
                      + "; the first:")
        for item in result.rejections[:5]:
            where = f"row {item.row}" + (f" ({shown(item.event_id)})" if item.event_id else "")
            by = f" [{item.rules} rules]" if old is not None and item.rules != "both" else ""
            console.print(f"  {where}{by}: {shown(item.reason)}", markup=False)
        if not listed and summary["rejected"] > 5:
            console.print("  (--rejected OUT.csv lists them all)")
    for path in written or []:
        console.print(f"wrote {shown(path)}", markup=False)
    return buffer.getvalue()


__all__ = ["command", "make_progress", "render_summary", "write_customers", "EXIT_USAGE"]
