"""The parser tables are built once and kept in the user's cache; a stale or damaged cache is never used.

``grammar()`` (dsl/parser.py) keys its cache file by a hash of the grammar
text, the Lark options, the Lark version and the Python version, and
dsl/usercache.py never raises: these tests point ``POLETTI_CACHE_DIR`` at a
temporary directory and call ``grammar.cache_clear()`` to act as a new process.
"""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import pytest
from lark import Lark

from poletti.dsl import parser, usercache
from poletti.dsl.parser import grammar, parse


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "cache"
    monkeypatch.setenv(usercache.ENV, str(folder))
    grammar.cache_clear()
    yield folder
    grammar.cache_clear()  # later tests get the grammar of the real cache again


class _NeverBuilt(Lark):
    """A Lark that can be loaded from the cache but not built from the grammar."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the grammar was built again instead of read from the cache")


def _statement(text: str) -> object:
    result = parse(text)
    assert not result.diagnostics, result.diagnostics
    return result.rule_file.statements[0]


def test_the_tables_are_built_once_and_read_by_every_later_process(cache: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    built = _statement("tier gold when spend_12m > 1000 and not lapsed")
    (entry,) = cache.glob("grammar-*.lark")
    if os.name == "posix":
        assert entry.stat().st_mode & 0o077 == 0 and cache.stat().st_mode & 0o077 == 0  # private
    grammar.cache_clear()  # a new process
    monkeypatch.setattr(parser, "Lark", _NeverBuilt)
    assert _statement("tier gold when spend_12m > 1000 and not lapsed") == built


def test_a_changed_grammar_is_never_read_from_an_old_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _statement("earn 1 point per EUR")  # the current grammar's tables are in the cache
    original = parser._grammar_text()
    assert '"earn"' in original
    monkeypatch.setattr(parser, "_grammar_text", lambda: original.replace('"earn"', '"gain"'))
    grammar.cache_clear()
    assert parse("gain 1 point per EUR").diagnostics == ()
    assert parse("earn 1 point per EUR").diagnostics  # the new grammar, not the cached one
    assert len(list(cache.glob("grammar-*.lark"))) == 2


@pytest.mark.parametrize("damage", [
    b"",
    b"not a cache file",
    b"poletti grammar tables 0000\n" + pickle.dumps({"data": {}, "memo": {}}),
], ids=["empty", "garbage", "other-key"])
def test_a_damaged_cache_file_is_rebuilt_silently(cache: Path, damage: bytes,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _statement("earn 1 point per EUR")
    (entry,) = cache.glob("grammar-*.lark")
    entry.write_bytes(damage)
    grammar.cache_clear()
    _statement("earn 1 point per EUR")
    grammar.cache_clear()  # and written again: the next process reads it
    monkeypatch.setattr(parser, "Lark", _NeverBuilt)
    _statement("earn 1 point per EUR")


def test_a_cache_file_that_would_run_code_is_not_unpickled(cache: Path) -> None:
    _statement("earn 1 point per EUR")
    (entry,) = cache.glob("grammar-*.lark")
    header = entry.read_bytes().split(b"\n", 1)[0] + b"\n"
    entry.write_bytes(header + pickle.dumps(OrderedDict(data=1)))  # needs a global: refused, not loaded
    grammar.cache_clear()
    _statement("earn 1 point per EUR")


def test_a_cache_that_cannot_be_written_costs_nothing_but_the_rebuild(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(usercache.ENV, str(blocker / "cache"))  # under a file: no directory can be made
    grammar.cache_clear()
    try:
        _statement("earn 1 point per EUR")
    finally:
        grammar.cache_clear()


def test_an_empty_cache_setting_turns_the_cache_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(usercache.ENV, "")
    assert usercache.directory() is None
    usercache.write("x", b"data")
    assert usercache.read("x") is None


@pytest.mark.skipif(os.name != "posix", reason="ownership and modes are POSIX")
def test_a_cache_directory_others_can_write_to_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    monkeypatch.setenv(usercache.ENV, str(folder))
    usercache.write("entry", b"data")
    assert usercache.read("entry") == b"data"
    folder.chmod(0o777)
    assert usercache.read("entry") is None
    usercache.write("other", b"data")
    assert not (folder / "other").exists()


def test_the_default_directory_follows_the_platform_conventions(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    monkeypatch.delenv(usercache.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = usercache.directory()
    assert folder is not None and folder.name == "poletti"
    if os.name == "posix" and not str(folder).startswith(str(Path.home() / "Library")):
        assert folder == tmp_path / "poletti"
