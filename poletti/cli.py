"""The ``poletti`` command line.

    poletti check FILE…          diagnostics for rule files (--format text|json, --strict)
    poletti fmt FILE             the file in canonical layout (--write, --check)

Exit codes, the same for every command:

    0  done; the rule files have no errors (warnings are fine)
    1  a rule file has errors (or warnings, with ``check --strict``; or ``fmt --check`` would change a file)
    2  the command was used wrongly: an unknown option, a missing or unreadable file
    3  an internal error: a bug in poletti, never the user's fault

No input may end in a traceback: whatever a command does not handle is
caught by ``PolettiGroup.invoke`` (and, outside any command, by ``main``),
reported as an internal error with a request to report it, and exits 3.

Other commands live one per module in ``poletti/commands/`` (each defines
a click command named ``command``) and are listed in ``COMMAND_MODULES``;
they share ``load_program`` and the file helpers here.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any, NoReturn, Sequence

import click

from poletti import __version__
from poletti.commands.outputs import atomic_output, json_for_terminal, refuse_unfit_target, shown, terminal_text
from poletti.dsl import classes
from poletti.dsl.diagnostics import Diagnostic, has_errors
from poletti.dsl.render import diagnostics_to_json, render_diagnostics, summary_line

EXIT_OK = 0
EXIT_ERRORS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3

STDIN = "-"
STDIN_NAME = "<stdin>"


class Unreadable(click.ClickException):
    """A file that cannot be read or written: one line on stderr, exit 2."""

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        click.echo(terminal_text(f"poletti: {self.format_message()}"), err=True)


def _internal_error(err: BaseException) -> None:
    detail = str(err)
    if len(detail) > 300:
        detail = detail[:300] + "…"
    click.echo(f"poletti: internal error: {type(err).__name__}: {detail}", err=True)
    click.echo(
        "This is a bug in poletti, not a problem in your rules. Please report it, with the command you ran "
        "and the file it read. Set POLETTI_DEBUG=1 to see the traceback.",
        err=True,
    )
    if os.environ.get("POLETTI_DEBUG"):
        click.echo("".join(traceback.format_exception(err)), err=True)


def _set_color(ctx: click.Context, param: click.Parameter, value: bool | None) -> None:
    """``--color/--no-color`` given after the command: it wins over the one before it, for this command."""
    if value is not None:
        ctx.obj = Settings(value)


def _color_option() -> click.Option:
    return click.Option(["--color/--no-color"], default=None, expose_value=False, is_eager=True,
                        callback=_set_color,
                        help="Colour the output (default: only on a terminal, and not when NO_COLOR is set).")


class PolettiGroup(click.Group):
    """The command group, with the last-resort handler around every command.

    Every command also takes ``--color/--no-color`` after its name (users put
    options where they look for them: ``poletti check --no-color x``), as well
    as before it (``poletti --no-color check x``).
    """

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any("--no-color" in p.secondary_opts for p in cmd.params if isinstance(p, click.Option)):
            cmd.params.append(_color_option())
        super().add_command(cmd, name)

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """click's own main, except that a usage error's message (which may echo what was typed: an unknown
        option, a bad value) reaches the terminal with its control characters written visibly."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        from poletti.commands.outputs import terminal_text

        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as err:
            err.message = terminal_text(err.message)
            err.show()
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else EXIT_OK)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt, SystemExit):
            raise
        except BrokenPipeError:
            raise  # click's standalone handler deals with a closed pipe (`poletti check … | head`)
        except Exception as err:  # noqa: BLE001 — this is the last resort by design
            _internal_error(err)
            ctx.exit(EXIT_INTERNAL)


@classes.frozen
class Settings:
    color: bool | None  # None: colour when the stream is a terminal


def _use_color(ctx: click.Context, err: bool = False) -> bool:
    settings = ctx.find_object(Settings)
    if settings is not None and settings.color is not None:
        return settings.color
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    stream = sys.stderr if err else sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@click.group(cls=PolettiGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="poletti", message="%(prog)s %(version)s")
@click.option("--color/--no-color", default=None,
              help="Colour the output (default: only on a terminal, and not when NO_COLOR is set).")
@click.pass_context
def cli(ctx: click.Context, color: bool | None) -> None:
    """poletti: loyalty-program rules in a language marketers can read.

    Check a rule file with `poletti check rules.loyalty`; see docs/language.md
    for the language.
    """
    ctx.obj = Settings(color)


# ------------------------------------------------------------------- files


def _read(path: str) -> bytes:
    if path == STDIN:
        return _read_stdin()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as err:
        raise Unreadable(f"cannot read {_quoted(path)}: {err.strerror or err}") from None


def _read_stdin() -> bytes:
    stream = sys.stdin
    if stream is None:
        raise Unreadable("cannot read standard input: there is none")
    try:
        binary = getattr(stream, "buffer", None)
        if binary is not None:
            return bytes(binary.read())
        text = stream.read()
    except OSError as err:
        raise Unreadable(f"cannot read standard input: {err.strerror or err}") from None
    return text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)


def _display_name(path: str) -> str:
    return STDIN_NAME if path == STDIN else path


def _quoted(path: str) -> str:
    """A path (or other user text) in quotes for a message: control characters written visibly."""
    return "'" + shown(path) + "'"


def _write_atomically(path: str, data: bytes) -> None:
    """Replace the file's contents all at once: a crash leaves the old file or the new, never half."""
    with atomic_output(path, binary=True, option="--write") as handle:
        handle.write(data)


def _json_text(data: Any) -> str:
    # Paths may hold undecodable bytes (surrogate escapes); they must not break the output.
    text = json_for_terminal(json.dumps(data, indent=2, ensure_ascii=False))
    return text.encode("utf-8", "replace").decode("utf-8")


# ------------------------------------------------------------------- check


@cli.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE…")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people; json for editors and CI (a list of diagnostics).")
@click.option("--strict", is_flag=True, help="Warnings fail the check too (exit 1): for CI.")
@click.pass_context
def check(ctx: click.Context, files: Sequence[str], output_format: str, strict: bool) -> None:
    """Check rule files and report every problem with its line and column.

    Exits 0 when there are no errors (warnings are fine, unless --strict), 1
    when any file has errors (or, with --strict, warnings), 2 when a file
    cannot be read. FILE may be - for standard input.
    """
    # The front end only: the checker finds every problem, circles of
    # definitions included, so `check` never loads the compiler.
    from poletti.dsl.frontend import analyze_bytes

    reports = []
    unreadable = False
    for path in files:
        try:
            raw = _read(path)
        except Unreadable as err:
            err.show()
            unreadable = True
            continue
        name = _display_name(path)
        reports.append((name, analyze_bytes(raw, name)))

    everything: list[Diagnostic] = [d for _, result in reports for d in result.diagnostics]
    failed = has_errors(everything) or (strict and bool(everything))
    if output_format == "json":
        data = [item for name, result in reports for item in diagnostics_to_json(result.diagnostics, name)]
        click.echo(_json_text(data))
    elif reports:
        color = _use_color(ctx)
        for name, result in reports:
            click.echo(render_diagnostics(result.diagnostics, result.text, name, color, summary=False), nl=False,
                       color=color)
        total = summary_line(everything)
        if len(reports) > 1:
            total += f" in {len(reports)} files"
        if failed and not has_errors(everything):
            total += " (--strict: warnings fail the check)"
        click.echo(click.style(total, fg="red", bold=True) if color and failed else total, color=color)

    if unreadable:
        ctx.exit(EXIT_USAGE)
    ctx.exit(EXIT_ERRORS if failed else EXIT_OK)


# --------------------------------------------------------------------- fmt


@cli.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE…")
@click.option("--write", "-w", is_flag=True, help="Rewrite the files in place instead of printing.")
@click.option("--check", "check_only", is_flag=True,
              help="Change nothing; exit 1 and name each file that is not formatted.")
@click.pass_context
def fmt(ctx: click.Context, files: Sequence[str], write: bool, check_only: bool) -> None:
    """Print a rule file in canonical layout (comments kept).

    With --write the file is rewritten in place (only when it changes); with
    --check nothing is written and the exit code says whether any file would
    change. A file with syntax errors is never written: its diagnostics are
    shown and the exit code is 1.
    """
    from poletti.dsl.formatter import format_text

    if write and check_only:
        raise click.UsageError("use --write or --check, not both")
    if not (write or check_only) and len(files) != 1:
        raise click.UsageError("give one FILE to print, or use --write or --check for several")
    if write and STDIN in files:
        raise click.UsageError("--write needs a file, not standard input")

    status = EXIT_OK
    for path in files:
        if write:
            refuse_unfit_target("--write", path)  # a FIFO, a device or a folder is never read or replaced
        raw = _read(path)
        name = _display_name(path)
        text = _decode_for_fmt(ctx, raw, name)
        if text is None:
            status = EXIT_ERRORS
            continue
        result = format_text(text)
        if result.text is None or has_errors(result.diagnostics):
            color = _use_color(ctx, err=True)
            click.echo(render_diagnostics(result.diagnostics, text, name, color), err=True, nl=False, color=color)
            click.echo(f"poletti: {_quoted(name)} was not formatted: fix the errors above first", err=True)
            status = EXIT_ERRORS
            continue
        formatted = result.text.encode("utf-8")
        if check_only:
            if formatted != raw:
                click.echo(f"would reformat {shown(name)}")
                status = EXIT_ERRORS
        elif write:
            if formatted != raw:
                _write_atomically(path, formatted)
                click.echo(f"reformatted {shown(name)}", err=True)
        else:
            click.echo(result.text, nl=False, color=True)  # color=True: never strip the file's own bytes
    ctx.exit(status)


def _decode_for_fmt(ctx: click.Context, raw: bytes, name: str) -> str | None:
    """The file's text, or None after reporting why it is not UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        from poletti.dsl.frontend import analyze_bytes

        result = analyze_bytes(raw, name)
        syntax = [d for d in result.diagnostics if d.code.startswith("P")]
        color = _use_color(ctx, err=True)
        click.echo(render_diagnostics(syntax, result.text, name, color), err=True, nl=False, color=color)
        return None
    return text[1:] if text.startswith("\ufeff") else text


# ----------------------------------------------------------- shared by commands


def load_program(ctx: click.Context, path: str) -> Any:
    """Compile a rule file for the engine; on errors print the diagnostics and exit 1.

    Unreadable files exit 2 (``Unreadable``). Warnings are printed to stderr
    and do not stop the command.
    """
    from poletti.engine.program import build_bytes

    raw = _read(path)
    name = _display_name(path)
    result = build_bytes(raw, name)
    color = _use_color(ctx, err=True)
    if result.diagnostics:
        click.echo(render_diagnostics(result.diagnostics, result.text, name, color), err=True, nl=False, color=color)
    if result.program is None:
        ctx.exit(EXIT_ERRORS)
    return result.program


# Modules of poletti/commands/, each defining ``command``; imported on start-up.
COMMAND_MODULES: tuple[str, ...] = ("generate", "run", "explain", "graph", "simulate", "customer")


def _register_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        module = importlib.import_module(f"poletti.commands.{name}")
        cli.add_command(module.command)
        if hasattr(module, "ledger_command"):
            cli.add_command(module.ledger_command)


_register_commands()


# -------------------------------------------------------------------- main


def _tolerate_unencodable_output() -> None:
    """On a terminal or pipe that is not UTF-8, print '?' for what it cannot show instead of crashing."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="replace")
            except (ValueError, OSError):
                pass


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console-script entry point (``poletti = "poletti.cli:main"``)."""
    _tolerate_unencodable_output()
    if argv is None:  # the console script: this process is poletti's own
        _one_blas_thread()
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="poletti")
    except SystemExit:
        raise
    except BaseException as err:  # noqa: BLE001 — last resort outside any command
        _internal_error(err)
        sys.exit(EXIT_INTERNAL)
    finally:
        if argv is None:  # the console script: the process ends next
            _skip_shutdown_collections()
    sys.exit(EXIT_OK)  # cli.main exits by itself; this only satisfies NoReturn


def _one_blas_thread() -> None:
    """Keep numpy's linear-algebra library to one thread (unless the user set its count).

    poletti does no linear algebra, but OpenBLAS starts a thread per core when numpy is imported, and
    again in each forked worker, which spin for a while waiting for work: about 0.1 s of a core that a
    ``simulate --workers 2`` needs. Set before numpy is imported (the console script imports it lazily).
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _skip_shutdown_collections() -> None:
    """Move every object to the collector's permanent generation, which the interpreter's shutdown skips.

    Python's shutdown runs full collections over every object still alive (the parser, the compiled
    programs, the modules): a tenth of a second after a simulate, spent looking for cycles in a process
    that is ending anyway (the operating system takes its memory back whole). Only for the console script:
    a host calling ``main(argv)`` goes on living, and its objects stay collectable.
    """
    import gc

    gc.freeze()


if __name__ == "__main__":
    main()
