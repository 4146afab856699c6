"""A per-user cache directory for what is costly to build and the same in every process.

``read(name)`` returns a cached file's bytes, or None; ``write(name, data)``
stores them. Neither ever raises: a cache that cannot be read or written
(no home directory, a read-only disk, a full one) only means the work is
done again. Callers put what their entry depends on into ``name`` (a hash),
so an entry is never used for anything but what it was made from.

Where: ``$POLETTI_CACHE_DIR`` when set (empty: no cache at all), else the
platform's cache directory: ``$XDG_CACHE_HOME/poletti`` or
``~/.cache/poletti`` on Linux, ``~/Library/Caches/poletti`` on macOS,
``%LOCALAPPDATA%\\poletti\\Cache`` on Windows. The directory is made private
(0700); on POSIX systems a directory or file that another user owns or can
write to is ignored, since what is read from it shapes how rule files are
read.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ENV = "POLETTI_CACHE_DIR"


def directory() -> Path | None:
    """The cache directory (it may not exist yet), or None when caching is off."""
    chosen = os.environ.get(ENV)
    if chosen is not None:
        return Path(chosen) if chosen else None
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA", "")
        return Path(base, "poletti", "Cache") if os.path.isabs(base) else None
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if sys.platform != "darwin" and os.path.isabs(xdg):
        return Path(xdg, "poletti")
    try:
        home = Path.home()
    except (RuntimeError, KeyError, OSError):
        return None
    if not home.is_absolute():  # no home directory: "~" was left as it is
        return None
    return home / ("Library/Caches" if sys.platform == "darwin" else ".cache") / "poletti"


def _trusted(path: Path) -> bool:
    """On POSIX: owned by this user and writable by no one else."""
    if os.name != "posix":
        return True
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def read(name: str) -> bytes | None:
    """The cached bytes stored under ``name``, or None (absent, unreadable, not trusted)."""
    folder = directory()
    if folder is None:
        return None
    path = folder / name
    try:
        if not (_trusted(folder) and _trusted(path)):
            return None
        with open(path, "rb") as handle:
            return handle.read()
    except (OSError, ValueError):
        return None


def write(name: str, data: bytes) -> None:
    """Store ``data`` under ``name``, all at once (a reader sees the old file or the new one); never raises."""
    folder = directory()
    if folder is None:
        return
    temp = None
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _trusted(folder):
            return
        fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, folder / name)
        temp = None
    except (OSError, ValueError):
        pass
    finally:
        if temp is not None:
            try:
                os.unlink(temp)
            except OSError:
                pass
