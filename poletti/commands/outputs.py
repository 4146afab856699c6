"""What the commands write and show: output files that never replace an input, and user text made harmless.

Every command that writes a file goes through here:

* ``check_outputs`` runs before anything is written. An output that is one
  of the inputs (the same file however it is reached: ``./h.csv``, a
  symbolic link, a hard link; compared by device and inode), two outputs
  that are one file, an empty file name, and an existing output that is not
  a regular file (a folder, a FIFO, a device: poletti would replace it with
  a file) all stop the command with exit 2, naming the files.
* ``atomic_output`` writes a file through a temporary file beside it,
  ``.NAME.poletti-tmp-XXXXXXXX``, moved over the target only when the
  whole file is written. On an error, Ctrl-C, SIGTERM or SIGHUP the
  temporary file is removed; only a SIGKILL (or a power cut) can leave one,
  and its name says what it is and that it may be deleted.

And everything user data puts on the way out:

* ``spreadsheet_cell``: CSV cells a spreadsheet would run as a formula get
  a leading ``'`` (OWASP's advice on CSV injection).
* ``shown`` (one value: an id, a path, a reason) and ``terminal_text`` (a
  block of lines) write control characters visibly (``\\x1b``, ``\\r``,
  ``\\u202e``), so a crafted id cannot move the cursor, recolour the
  terminal or hide text; ``json_for_terminal`` does the same for the few
  such characters ``json.dumps`` leaves raw.

Paths given to rich are escaped with ``rich.markup.escape`` where they are
printed (``poletti/commands/simulate.py``), after ``shown``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import tempfile
import threading
from typing import IO, Any, Iterator, Sequence

STDOUT = "-"
TEMP_MARK = ".poletti-tmp-"

# ----------------------------------------------------------------- user text

# C0 controls, DEL, C1 controls, line and paragraph separators, bidi embeddings, overrides and isolates,
# and lone surrogates (undecodable bytes of a file name).
_UNSAFE_IN_VALUE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_IN_BLOCK = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_IN_JSON = re.compile(r"[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape): show the byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(value: Any) -> str:
    """One value from user data (an id, a path, a reason) as it is safe to print: controls written visibly."""
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE_IN_VALUE.sub(_escape, text)


def terminal_text(text: str) -> str:
    """Lines for the terminal: every control character but the newline written visibly (``\\x1b``, ``\\r``)."""
    return _UNSAFE_IN_BLOCK.sub(_escape, text)


def json_for_terminal(text: str) -> str:
    """JSON text (``ensure_ascii=False``) with DEL, C1 controls, bidi controls and lone surrogates as ``\\uXXXX``.

    ``json.dumps`` escapes the C0 controls itself; these others it leaves raw. They can only stand
    inside JSON strings, where the ``\\u`` escape means the same character.
    """
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# Cells a spreadsheet evaluates (OWASP, "CSV Injection"). A cell that is a plain decimal number
# ("-5", "+3.50") is left alone: a spreadsheet reads it as that number and cannot run it.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def spreadsheet_cell(value: Any) -> Any:
    """A text cell of user data, with a leading ``'`` when a spreadsheet would take it for a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


# --------------------------------------------------------------- output files


def _refused(message: str) -> Exception:
    from poletti.cli import Unreadable

    return Unreadable(message)


def _quoted(path: str) -> str:
    return "'" + shown(path) + "'"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)  # follows symbolic links: a link to the file is the file
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


def _input_files(path: str) -> dict[tuple[int, int], str]:
    """The (device, inode) of an input, and of every file under it when it is a folder (a Parquet dataset)."""
    found: dict[tuple[int, int], str] = {}
    identity = _identity(path)
    if identity is None:
        return found
    found[identity] = path
    if os.path.isdir(path):
        for folder, _dirs, files in os.walk(path):
            for name in files:
                inner = os.path.join(folder, name)
                inner_identity = _identity(inner)
                if inner_identity is not None:
                    found.setdefault(inner_identity, inner)
    return found


def refuse_unfit_target(option: str, path: str) -> None:
    """Exit 2 when ``path`` cannot be an output: an empty name, an existing file that is not a regular one,
    or a folder to write it in that is missing or not writable."""
    if path == "":
        raise _refused(f"{option}: the file name is empty")
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise _refused(f"{option} {_quoted(path)} is {_kind(mode)}, not a regular file: poletti writes only "
                       "regular files and never replaces anything else (nothing was written)")
    # The file is written beside its target (through a symbolic link, beside the file it points to).
    directory = os.path.dirname(os.path.realpath(path)) or "."
    if not os.path.isdir(directory):
        raise _refused(f"cannot write {_quoted(path)}: the folder {_quoted(directory)} does not exist")
    if not os.access(directory, os.W_OK):
        raise _refused(f"cannot write {_quoted(path)}: the folder {_quoted(directory)} is not writable")


def check_outputs(outputs: Sequence[tuple[str, str | None]], inputs: Sequence[tuple[str, str | None]] = (),
                  stdout: str | None = None) -> None:
    """Refuse, before anything is written, outputs that would replace an input, each other, or a non-file.

    ``outputs`` are (option, path) pairs, ``inputs`` (what, path) pairs such as ("the history", "h.csv");
    a None path is an option not given. ``-`` as an output is standard output where the command
    supports it (``stdout`` is then None); otherwise ``stdout`` says why it is refused. Exit 2
    (``Unreadable``) names both files.
    """
    known: dict[tuple[int, int], tuple[str, str]] = {}
    for what, path in inputs:
        if path is None or path == STDOUT:
            continue
        for identity, inner in _input_files(path).items():
            known.setdefault(identity, (what, inner))
    seen: list[tuple[str, str, tuple[int, int] | None, str]] = []
    for option, path in outputs:
        if path is None:
            continue
        if path == STDOUT:
            if stdout is not None:
                raise _refused(f"{option} -: {stdout}")
            continue
        refuse_unfit_target(option, path)
        identity = _identity(path)
        if identity is not None and identity in known:
            what, source = known[identity]
            same = "" if os.path.normpath(source) == os.path.normpath(path) else " (the same file)"
            raise _refused(f"{option} {_quoted(path)} is {what} {_quoted(source)}{same}: an output never "
                           "replaces an input (nothing was written)")
        real = os.path.realpath(path)
        for other_option, other_path, other_identity, other_real in seen:
            if real == other_real or (identity is not None and identity == other_identity):
                raise _refused(f"{other_option} {_quoted(other_path)} and {option} {_quoted(path)} are the same "
                               "file: give each output a different one (nothing was written)")
        seen.append((option, path, identity, real))


# Temporary files being written, removed if the process is stopped by a signal it can catch.
_LIVE: set[str] = set()
_LIVE_LOCK = threading.Lock()
_HANDLED = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_previous: dict[int, Any] = {}
_owner = 0


def _on_signal(signum: int, frame: Any) -> None:
    """Remove the temporary files, then die of the signal as if there were no handler."""
    if os.getpid() == _owner:  # a forked worker inherits the handler, not the files
        for temp in list(_LIVE):
            if os.path.isdir(temp) and not os.path.islink(temp):
                import shutil

                shutil.rmtree(temp, ignore_errors=True)
            else:
                _remove_quietly(temp)
        _LIVE.clear()
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _forget_in_child() -> None:
    """In a forked child (a ``--workers`` process): the signals' previous handlers back, the files forgotten.

    The child owns none of the files, and a Python-level SIGTERM handler is
    what let ``Pool.terminate`` hang: a signal that arrives just before the
    worker blocks on its task queue's lock trips the handler's flag, and the
    handler only runs when the wait is interrupted, which that signal no
    longer does. With the default disposition the kernel ends the worker.
    """
    _restore_handlers()
    _LIVE.clear()


def _restore_handlers() -> None:
    """The handlers ``_track`` replaced, back (each signal's previous one, or the default)."""
    for signum, previous in _previous.items():
        try:
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        except (ValueError, OSError):
            pass
    _previous.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def _track(temp: str) -> None:
    global _owner
    with _LIVE_LOCK:
        if not _LIVE and threading.current_thread() is threading.main_thread():
            _owner = os.getpid()
            for signum in _HANDLED:
                try:
                    _previous[signum] = signal.signal(signum, _on_signal)
                except (ValueError, OSError):
                    pass
        _LIVE.add(temp)


def _untrack(temp: str) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(temp)
        if not _LIVE and _previous and threading.current_thread() is threading.main_thread():
            _restore_handlers()


@contextlib.contextmanager
def temporary(path: str) -> Iterator[str]:
    """Within the block, ``path`` (a temporary file or folder) is removed if SIGTERM or SIGHUP stops the process."""
    _track(path)
    try:
        yield path
    finally:
        _untrack(path)


@contextlib.contextmanager
def atomic_output(path: str, binary: bool = False, option: str = "output") -> Iterator[IO[Any]]:
    """A file written beside ``path`` and moved over it when the block ends.

    A crash or an error leaves the old file (or none), never half a new
    one, and no temporary file (but after a SIGKILL: see the module). A
    replaced file keeps its permissions; a new one gets the usual ones
    (0666 less the umask), not the temporary file's private 0600. A target
    that exists and is not a regular file is refused, never replaced.
    Write errors become ``Unreadable`` (one line, exit 2).
    """
    refuse_unfit_target(option, path)
    target = os.path.realpath(path)  # write through a symlink, do not replace it
    try:
        fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(target)[:120] + TEMP_MARK,
                                    dir=os.path.dirname(target))
    except OSError as err:
        raise _refused(f"cannot write {_quoted(path)}: {err.strerror or err}") from None
    _track(temp)
    try:
        handle = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, _mode_for(target))
        os.replace(temp, target)
    except OSError as err:
        _remove_quietly(temp)
        raise _refused(f"cannot write {_quoted(path)}: {err.strerror or err}") from None
    except BaseException:
        _remove_quietly(temp)
        raise
    finally:
        _untrack(temp)


def _mode_for(target: str) -> int:
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:  # a new file
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


__all__ = ["TEMP_MARK", "atomic_output", "check_outputs", "json_for_terminal", "refuse_unfit_target",
           "shown", "spreadsheet_cell", "temporary", "terminal_text"]
