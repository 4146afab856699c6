"""Shared pytest fixtures.

Golden files: a test compares some output with ``tests/data/<stage>/<name>.<ext>``.
After a deliberate change, regenerate them all with

    python -m pytest --update-goldens

and review the diff before committing.

PostgreSQL: ``postgres_dsn`` is a server for the whole session (a throwaway
cluster, or ``$POLETTI_TEST_POSTGRES``; see ``tests/support/pg_server.py``),
``postgres_database`` a fresh database on it for one test. Without a server
those tests are skipped, or fail with ``POLETTI_REQUIRE_POSTGRES=1`` (CI).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

import pg_server

DATA = Path(__file__).parent / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", help="rewrite golden files instead of comparing")


class Golden:
    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, actual: str, path: Path) -> None:
        """Assert ``actual`` equals the golden file at ``path`` (or rewrite it with --update-goldens)."""
        if self.update:
            path.write_text(actual, encoding="utf-8")
            return
        assert path.exists(), f"missing golden file {path}; run pytest --update-goldens and review it"
        expected = path.read_text(encoding="utf-8")
        assert actual == expected, f"output differs from {path}; if the change is deliberate, run pytest --update-goldens"


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    return Golden(bool(request.config.getoption("--update-goldens")))


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    with ExitStack() as stack:
        try:
            dsn = stack.enter_context(pg_server.server())
        except pg_server.Unavailable as err:
            reason = str(err)  # failed or skipped below: inside except, a failure would print it twice
        else:
            yield dsn
            return
    # CI must run these tests, so there a missing server is a failure.
    if os.environ.get("POLETTI_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (POLETTI_REQUIRE_POSTGRES=1) but unavailable: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL server: {reason}")


@pytest.fixture
def postgres_database(postgres_dsn: str) -> Iterator[str]:
    """The DSN of a database of this test's own, dropped afterwards."""
    import psycopg  # only the postgres tests need it
    from psycopg.conninfo import make_conninfo

    name = f"test_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield make_conninfo(postgres_dsn, dbname=name)
        finally:
            # FORCE ends the connections a test left open (PostgreSQL 13+).
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def postgres_schema(postgres_dsn: str) -> Iterator[str]:
    """A DSN whose tables go to a fresh schema of this test's own (much cheaper than a database), dropped after."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"test_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
        try:
            yield make_conninfo(postgres_dsn, options=f"-csearch_path={name}")
        finally:
            admin.execute(f"DROP SCHEMA {name} CASCADE")



# A test that hangs must fail the run, with every thread's traceback, long before CI's own time limit ends
# it without a word (it did once: a deadlock between forked workers). No single test comes near this.
TEST_TIME_LIMIT_SECONDS = float(os.environ.get("POLETTI_TEST_TIME_LIMIT", "900"))


def _stop_the_run(item: pytest.Item) -> None:
    """Print where every thread is, outside pytest's capture, and end the run (a hung test cannot be stopped)."""
    import faulthandler
    import sys

    capture = item.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=True)  # (what the test prints is captured, and would be lost)
    sys.stderr.write(f"\n{item.nodeid} ran for more than {TEST_TIME_LIMIT_SECONDS:g} s: stopping the test run.\n")
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    os._exit(3)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    import faulthandler
    import sys
    import threading

    watchdog = threading.Timer(TEST_TIME_LIMIT_SECONDS, _stop_the_run, (item,))
    watchdog.daemon = True
    watchdog.start()
    # If the watchdog cannot run (a thread that never lets go of the interpreter), this ends the run regardless.
    faulthandler.dump_traceback_later(TEST_TIME_LIMIT_SECONDS + 60, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        watchdog.cancel()
        faulthandler.cancel_dump_traceback_later()
