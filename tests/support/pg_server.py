"""A throwaway PostgreSQL server for the tests.

``server()`` is a context manager that yields a DSN. With
``POLETTI_TEST_POSTGRES`` set, it yields that DSN and starts nothing.
Otherwise it initdb's a cluster in a fresh temp dir, starts it on a free
loopback port (its unix socket in the same dir), creates a database and
yields a DSN for it; on exit it stops the cluster and removes the dir.
When no server can be had it raises ``Unavailable`` with a short reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENV_DSN = "POLETTI_TEST_POSTGRES"
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
BINARIES = ("initdb", "pg_ctl", "postgres")
# PostgreSQL refuses to run as root; Debian's package creates this user.
UNPRIVILEGED_USER = "postgres"
SUPERUSER = "postgres"  # the cluster's role, whichever OS user runs it
DATABASE = "poletti"
TIMEOUT = 60  # seconds for initdb, and for pg_ctl to see the server ready


class Unavailable(Exception):
    """No PostgreSQL server can be had; the message says why."""


@contextmanager
def server() -> Iterator[str]:
    if dsn := os.environ.get(ENV_DSN):
        yield dsn
        return
    bindir = find_bindir()
    user = unprivileged_user()
    as_user = ["runuser", "-u", user.pw_name, "--"] if user else []
    root = Path(tempfile.mkdtemp(prefix="poletti-pg-"))
    try:
        if user:  # the server writes the cluster, its log and its socket here
            os.chown(root, user.pw_uid, user.pw_gid)
        data = root / "data"
        port = free_port()
        initdb(bindir, as_user, data)
        configure(data, port, socket_dir=root)
        start(bindir, as_user, data, log=root / "server.log")
        try:
            yield create_database(port)
        finally:
            # Immediate: no checkpoint, nothing of the cluster is kept.
            _run(as_user, bindir / "pg_ctl", "stop", "-D", str(data), "-m", "immediate", "-w", cwd=root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def find_bindir() -> Path:
    """The first directory holding all three server binaries: PATH's, then Debian's, newest version first."""
    candidates = [Path(d) for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    debian = [Path(d) for d in glob.glob(DEBIAN_BINDIRS)]
    candidates += sorted(debian, key=lambda d: _version(d.parent.name), reverse=True)
    partial = []
    for bindir in candidates:
        found = [name for name in BINARIES if os.access(bindir / name, os.X_OK)]
        if len(found) == len(BINARIES):
            return bindir
        if found:
            partial.append(f"{bindir} lacks {', '.join(n for n in BINARIES if n not in found)}")
    where = f"in PATH or {DEBIAN_BINDIRS}"
    detail = f" ({'; '.join(partial)})" if partial else ""
    raise Unavailable(f"no PostgreSQL server binaries ({', '.join(BINARIES)}) {where}{detail}; "
                      "on Debian: apt-get install postgresql")


def _version(name: str) -> tuple[int, ...]:
    # Numeric, so that 9.6 < 10 < 16; a name that is not a version sorts last.
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return ()


def unprivileged_user() -> pwd.struct_passwd | None:
    """The user to run the server binaries as (with runuser), or None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        raise Unavailable(f"running as root, which PostgreSQL refuses, and there is no '{UNPRIVILEGED_USER}' "
                          "user to run it as (Debian's postgresql package creates one)") from None
    if shutil.which("runuser") is None:
        raise Unavailable(f"running as root, which PostgreSQL refuses, and runuser (util-linux), needed to run "
                          f"it as '{UNPRIVILEGED_USER}', is missing")
    return user


def free_port() -> int:
    # The port is free now; another process could take it before the server
    # binds it, which start() then reports. Rare enough for tests.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def initdb(bindir: Path, as_user: list[str], data: Path) -> None:
    # Trust auth: a throwaway cluster reachable only from this machine.
    # C locale: the host's may be unset or not generated, and tests want
    # the same collation everywhere. --no-sync: nothing here must survive.
    _run(as_user, bindir / "initdb", "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
         "--locale=C", "--no-sync", cwd=data.parent)


def configure(data: Path, port: int, socket_dir: Path) -> None:
    # In postgresql.conf rather than on pg_ctl's -o, which a shell splits:
    # a temp dir path could hold spaces. Durability is switched off because
    # the cluster is thrown away and fsyncs only cost time.
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(socket_dir),
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
        for name, value in settings.items():
            quoted = value.replace("'", "''")
            conf.write(f"{name} = '{quoted}'\n")


def start(bindir: Path, as_user: list[str], data: Path, log: Path) -> None:
    # -w waits until the server accepts connections (or TIMEOUT passes).
    # -l: the server's output goes to the log, not to our pipes, which it
    # would otherwise hold open after pg_ctl exits.
    try:
        _run(as_user, bindir / "pg_ctl", "start", "-D", str(data), "-l", str(log), "-w", "-t", str(TIMEOUT),
             cwd=data.parent)
    except Unavailable as err:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log.exists() else []
        raise Unavailable("\n".join([str(err), *tail])) from None


def create_database(port: int) -> str:
    try:
        import psycopg  # imported here: only runs that use the server need it
    except ImportError:
        raise Unavailable("psycopg is not installed (pip install -e '.[test]')") from None
    server_dsn = f"postgresql://{SUPERUSER}@127.0.0.1:{port}"
    try:
        with psycopg.connect(f"{server_dsn}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
    except psycopg.Error as err:
        raise Unavailable(f"could not create database {DATABASE}: {err}") from None
    return f"{server_dsn}/{DATABASE}"


def _run(as_user: list[str], program: Path, *args: str, cwd: Path) -> None:
    # cwd: the caller's may be unreadable to the unprivileged user.
    try:
        done = subprocess.run([*as_user, str(program), *args], cwd=cwd, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=TIMEOUT + 10)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{program.name} did not finish in {TIMEOUT + 10} s") from None
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise Unavailable("\n".join([f"{program.name} failed (exit {done.returncode}):", *output]))
