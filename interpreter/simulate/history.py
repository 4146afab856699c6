"""Event histories on disk: CSV, JSON Lines and Parquet, read as a stream, in time order.

``History(path, tz)`` is the one entry point. Iterating it yields
``Record``s in time order (by the instant of ``at``; equal instants keep
their order in the file), whatever order the file is in, with memory
bounded by ``run_size`` events:

* a first pass (``scan``) streams the file, counts its records and checks
  whether they are already in time order;
* if they are not, a second pass cuts the stream into sorted runs of
  ``run_size`` records, spills each to a temporary JSON Lines file and
  ``heapq.merge``s the runs, keyed by (instant, row) so the sort is stable.

A row becomes the same event dict whatever the format: an empty cell (or
a null) is absent, the ``items`` column holds JSON text (CSV, and Parquet
when it is a text column), every other column is passed on as is — core
fields and custom attributes alike — for the engine to validate. A row that
cannot become an event dict at all (a line that is not JSON, ``items`` that
is not JSON, a CSV row with more cells than the header, a CSV cell longer
than ``CELL_LIMIT`` characters, a line longer than ``LINE_LIMIT``, JSON nested
deeper than ``JSON_DEPTH_LIMIT``) is a ``Record`` with ``error`` set: a
rejected event with its reason, never a crash, and the next row is read as
usual. ``bool_columns_of(programs)`` names the CSV columns whose
``true``/``false`` cells become booleans: every reader of a history
(``simulate``, ``run``, ``explain``) takes the same ones.
Problems with the file as a whole (it cannot be opened, it is not UTF-8,
a CSV header or Parquet schema without the required columns, a broken
Parquet file) raise ``HistoryError``.

``row`` numbers what a person would look for in the file: the line of a
JSON Lines file, the data row of a CSV file (1 is the row after the header),
the row of a Parquet file; all 1-based.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import IO, Any, Callable, Iterable, Iterator, NamedTuple
from zoneinfo import ZoneInfo

from poletti.engine.timecalc import parse_timestamp

# The one table of file name suffixes: what every command reads, and what `poletti generate` writes.
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
STDIN = "-"
REQUIRED_COLUMNS = ("id", "type", "customer", "at")
DEFAULT_RUN_SIZE = 200_000

# Progress callback: (phase, done, total). Phases: "scan" (bytes, or rows of a
# Parquet file), "sort" (records spilled into sorted runs).
Progress = Callable[[str, int, "int | None"], None]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_NO_INSTANT = -(2**63)  # records whose `at` cannot be read sort first; the engine rejects them
_REPORT_EVERY = 4096
CELL_LIMIT = 1 << 24  # characters in one CSV cell (an `items` cell of a big basket may exceed csv's default 128 KiB)
LINE_LIMIT = 1 << 26  # characters in one CSV line, bytes in one JSON Lines line: memory stays bounded
JSON_DEPTH_LIMIT = 64  # levels of nesting in a JSON line or an `items` cell (an event needs 3)
_DRAIN = 1 << 20  # what is read at a time of the rest of a line too long to keep


class CsvDialect(NamedTuple):
    """How a CSV history is written: its delimiter, and whether amounts and prices use a decimal comma."""

    delimiter: str = ","
    decimal_comma: bool = False


DELIMITERS = (",", ";")
SNIFF_BYTES = 1 << 16  # what ``csv_dialect`` looks at: the header and the rows in the first 64 KiB
_DECIMAL_COMMA = re.compile(r"^\s*-?[0-9]+,[0-9]+\s*$")
_DECIMAL_POINT = re.compile(r"^\s*-?[0-9]+\.[0-9]+\s*$")


def csv_dialect(path: str, delimiter: str | None = None, decimal_comma: bool | None = None) -> CsvDialect:
    """The CSV file's dialect: ``delimiter`` / ``decimal_comma`` as chosen (None: found from the file).

    The delimiter is the one (``,`` or ``;``) that splits the header into
    the required columns. A decimal comma is read only in a ``;`` file: in
    a ``,`` file, ``1,234`` is two cells, never a number. In a ``;`` file,
    the ``amount`` cells of the first 64 KiB decide: decimal commas
    (``12,50``) or decimal points (``12.50``); both is ambiguous and
    refused (``HistoryError``, with a row of each); neither (whole numbers
    only) reads decimal commas, as ``;`` files are written where the comma
    is the decimal mark. A decimal comma chosen for a ``,`` file is refused.
    """
    if delimiter is not None and delimiter not in DELIMITERS:
        raise HistoryError(f"the delimiter must be one of {' '.join(DELIMITERS)}, not {delimiter!r}")
    try:
        with open(path, "rb") as handle:
            sample = handle.read(SNIFF_BYTES)
    except OSError as err:
        raise HistoryError(f"cannot read '{path}': {err.strerror or err}") from None
    text = sample.decode("utf-8-sig", errors="replace")
    lines = text.splitlines(keepends=True)
    if len(sample) == SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut short
    if delimiter is None:
        delimiter = ","
        if lines:
            heads = {d: [cell.strip() for cell in next(csv.reader([lines[0]], delimiter=d), [])] for d in DELIMITERS}
            fits = [d for d in DELIMITERS if all(column in heads[d] for column in REQUIRED_COLUMNS)]
            if fits:
                delimiter = fits[0]
            elif lines[0].count(";") > lines[0].count(","):
                delimiter = ";"
    if delimiter != ";":
        if decimal_comma:
            raise HistoryError(f"'{path}': a decimal comma needs ';' as the delimiter (in a file separated by "
                               f"commas, 1,234 would be two cells)")
        return CsvDialect(delimiter, False)
    if decimal_comma is not None:
        return CsvDialect(delimiter, decimal_comma)
    commas = points = None
    try:
        rows = csv.reader(lines, delimiter=delimiter)
        header = [cell.strip() for cell in next(rows, [])]
        at = header.index("amount") if "amount" in header else -1
        for number, cells in enumerate(rows, start=1):
            cell = cells[at] if 0 <= at < len(cells) else ""
            if commas is None and _DECIMAL_COMMA.match(cell):
                commas = (number, cell)
            elif points is None and _DECIMAL_POINT.match(cell):
                points = (number, cell)
    except csv.Error:
        pass  # the readers say what is wrong with the rows
    if commas is not None and points is not None:
        raise HistoryError(f"'{path}' writes amounts both with a decimal comma (row {commas[0]}: '{commas[1]}') "
                           f"and with a decimal point (row {points[0]}: '{points[1]}'): say which with "
                           f"--decimal-comma or --decimal-point")
    return CsvDialect(delimiter, points is None)


def decimal_from_comma(value: str) -> str | None:
    """A money cell written with a decimal comma as the engine reads it ("12,50" → "12.50"); None: it has a
    decimal point, which a file of decimal commas does not use (``1.234,50``, ``12.50``: unclear)."""
    if "." in value:
        return None
    return value.replace(",", ".")


def comma_reason(column: str, value: str) -> str:
    return (f"'{column}' is {value!r}: this file writes decimal commas (12,50), so a decimal point is unclear "
            f"(use --decimal-point if the file writes decimal points)")


def _items_from_commas(items: Any) -> str | None:
    """Prices written as text with a decimal comma, in place; why not, when one has a decimal point."""
    if not isinstance(items, list):
        return None
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("price"), str):
            fixed = decimal_from_comma(item["price"])
            if fixed is None:
                return comma_reason("price", item["price"])
            item["price"] = fixed
    return None


class HistoryError(Exception):
    """The history file as a whole cannot be read (a row-level problem is a rejected ``Record`` instead)."""


class TooDeep(ValueError):
    """JSON nested deeper than ``JSON_DEPTH_LIMIT`` (or than Python's recursion allows)."""


def load_json(text: str | bytes) -> Any:
    """``json.loads`` with nesting bounded: ``TooDeep`` past ``JSON_DEPTH_LIMIT`` levels, ``ValueError`` if not JSON.

    Deep nesting is refused here, once, so nothing downstream (the engine's
    reader, a reason that quotes the value, the sort's spill files) can run
    out of stack on it.
    """
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep(f"nested more than {JSON_DEPTH_LIMIT} levels deep") from None
    if isinstance(value, (list, dict)):
        opened = text.count(b"[") + text.count(b"{") if isinstance(text, bytes) else text.count("[") + text.count("{")
        if opened > JSON_DEPTH_LIMIT and _deeper_than(value, JSON_DEPTH_LIMIT):
            raise TooDeep(f"nested more than {JSON_DEPTH_LIMIT} levels deep")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (list, dict)))
    return False


def items_error(err: ValueError) -> str:
    """Why an ``items`` cell is no list of items, from what ``load_json`` raised."""
    if isinstance(err, TooDeep):
        return f"'items' is {err}"
    return f"'items' is not valid JSON: {err}"


def bool_columns_of(*programs: Any) -> frozenset[str]:
    """The attributes the programs (None: left out) declare ``bool``: CSV cells ``true``/``false`` there are yes/no.

    Every command that reads a history uses this, so a CSV reads the same
    in ``simulate``, ``run`` and ``explain``.
    """
    from poletti.dsl.program import Type

    return frozenset(name for program in programs if program is not None
                     for name, kind in program.checked.attributes.items() if kind is Type.BOOL)


class Record(NamedTuple):
    """One row of a history: the event dict, or why the row is not one.

    ``instant`` is the UTC instant of ``at`` (None when it is missing or not a
    timestamp: the engine then rejects the event with its own reason).
    (A named tuple: histories have millions of rows.)
    """

    row: int
    event: dict[str, Any] | None
    error: str | None = None
    instant: datetime | None = None


def detect_format(path: str) -> str:
    """``csv``, ``jsonl`` or ``parquet`` from the file name; ``-`` (standard input) is JSON Lines."""
    if path == STDIN:
        return "jsonl"
    suffix = os.path.splitext(path)[1].lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        known = ", ".join(FORMATS)
        raise HistoryError(f"cannot tell the format of '{path}' from its name: use one of {known}") from None


def instant_of(event: dict[str, Any] | None, tz: ZoneInfo) -> datetime | None:
    """The UTC instant of an event's ``at``, or None when it has none the engine would accept."""
    if event is None:
        return None
    value = event.get("at")
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value, tz)
    except (ValueError, OverflowError):  # years 1 and 9999 overflow when moved to UTC
        return None


def _key(instant: datetime | None) -> int:
    return _NO_INSTANT if instant is None else (instant - _EPOCH) // _MICROSECOND


class History:
    """A history file read as a stream of ``Record``s in time order.

    ``path``: a ``.csv``, ``.jsonl``/``.ndjson`` or ``.parquet`` file, or ``-``
    for JSON Lines on standard input (spooled to a temporary file, since the
    history is read more than once). ``tz``: the program time zone, for
    date-only timestamps. ``bool_columns``: CSV columns whose ``true`` /
    ``false`` cells become booleans (CSV has no other way to say yes/no).
    ``run_size``: how many records are sorted in memory at a time.

    Use it as a context manager (or call ``close``) to remove temporary files.
    """

    def __init__(self, path: str, tz: ZoneInfo, *, fmt: str | None = None, run_size: int = DEFAULT_RUN_SIZE,
                 bool_columns: Iterable[str] = (), temp_dir: str | None = None,
                 dialect: CsvDialect | None = None) -> None:
        if run_size < 1:
            raise ValueError("run_size must be at least 1")
        self.path = path
        self.tz = tz
        self.format = fmt or detect_format(path)
        if self.format not in ("csv", "jsonl", "parquet"):
            raise ValueError(f"unknown history format {self.format!r}")
        self.run_size = run_size
        self.bool_columns = frozenset(bool_columns)
        self.temp_dir = temp_dir
        self.dialect = dialect if dialect is not None or self.format != "csv" or path == STDIN \
            else csv_dialect(path)
        self.count: int | None = None  # records in the file, once scanned
        self.reordered: bool | None = None  # True when the file was not in time order
        self.runs = 0  # sorted runs spilled to disk (0: sorted in memory or not needed)
        self._work: str | None = None
        self._source = path
        if path == STDIN:
            self._source = self._spool_stdin()

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> History:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    def _workdir(self) -> str:
        if self._work is None:
            self._work = tempfile.mkdtemp(prefix="poletti-history-", dir=self.temp_dir)
        return self._work

    def _spool_stdin(self) -> str:
        target = os.path.join(self._workdir(), "stdin.jsonl")
        stream = getattr(sys.stdin, "buffer", None)
        try:
            with open(target, "wb") as out:
                if stream is not None:
                    shutil.copyfileobj(stream, out)
                elif sys.stdin is not None:
                    out.write(sys.stdin.read().encode("utf-8", "surrogateescape"))
        except OSError as err:
            raise HistoryError(f"cannot read standard input: {err.strerror or err}") from None
        return target

    @property
    def name(self) -> str:
        return "<stdin>" if self.path == STDIN else self.path

    def size(self) -> int:
        """The file's size in bytes (what the scan's progress counts for CSV and JSON Lines)."""
        try:
            return os.path.getsize(self._source)
        except OSError:
            return 0

    # ------------------------------------------------------------- reading

    def records(self, progress: Progress | None = None) -> Iterator[Record]:
        """Every record in file order, with its instant."""
        readers = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}
        reader = readers[self.format]
        tz = self.tz
        rows = reader(self._source, self.name, self.bool_columns, progress) if self.format != "csv" \
            else _read_csv(self._source, self.name, self.bool_columns, progress, self.dialect or CsvDialect())
        for record in rows:
            if record.event is not None:
                record = Record(record.row, record.event, record.error, instant_of(record.event, tz))
            yield record

    def scan(self, progress: Progress | None = None) -> None:
        """First pass: count the records and find out whether they are in time order."""
        count, latest, ordered = 0, _NO_INSTANT, True
        for record in self.records(progress):
            count += 1
            if record.instant is not None:
                key = _key(record.instant)
                if key < latest:
                    ordered = False
                else:
                    latest = key
        self.count = count
        self.reordered = not ordered

    def __iter__(self) -> Iterator[Record]:
        return self.in_time_order()

    def in_time_order(self, progress: Progress | None = None) -> Iterator[Record]:
        """The records in time order (stable); scans first if that was not done yet."""
        if self.reordered is None:
            self.scan(progress)
        if not self.reordered:
            return self.records()
        return self._sorted(progress)

    # ------------------------------------------------------------- sorting

    def _sorted(self, progress: Progress | None) -> Iterator[Record]:
        runs: list[str] = []
        batch: list[tuple[int, int, dict[str, Any] | None, str | None]] = []
        done = 0
        for record in self.records():
            batch.append((_key(record.instant), record.row, record.event, record.error))
            done += 1
            if len(batch) >= self.run_size:
                runs.append(self._spill(batch, len(runs)))
                batch = []
            if progress is not None and done % _REPORT_EVERY == 0:
                progress("sort", done, self.count)
        if progress is not None:
            progress("sort", done, self.count)
        batch.sort(key=_sort_key)
        self.runs = len(runs)
        if not runs:
            return (Record(row, event, error, _instant_from_key(key)) for key, row, event, error in batch)
        if batch:
            runs.append(self._spill(batch, len(runs)))
            self.runs = len(runs)
        return self._merge(runs)

    def _spill(self, batch: list[tuple[int, int, dict[str, Any] | None, str | None]], number: int) -> str:
        batch.sort(key=_sort_key)
        target = os.path.join(self._workdir(), f"run-{number:05d}.jsonl")
        encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
        try:
            with open(target, "w", encoding="utf-8") as out:
                out.writelines(encode(item) + "\n" for item in batch)
        except OSError as err:
            raise HistoryError(f"cannot write a temporary file while sorting the history: {err.strerror or err}") \
                from None
        return target

    def _merge(self, runs: list[str]) -> Iterator[Record]:
        handles = [open(path, encoding="utf-8") for path in runs]
        try:
            streams = [(tuple(json.loads(line)) for line in handle) for handle in handles]
            for key, row, event, error in heapq.merge(*streams, key=_sort_key):
                yield Record(row, event, error, _instant_from_key(key))
        finally:
            for handle in handles:
                handle.close()


def _sort_key(item: tuple[Any, ...]) -> tuple[int, int]:
    return item[0], item[1]


def _instant_from_key(key: int) -> datetime | None:
    return None if key == _NO_INSTANT else _EPOCH + key * _MICROSECOND


# --------------------------------------------------------------------- CSV


class _LineTooLong(Exception):
    """A physical line past ``LINE_LIMIT``: it was skipped (read in pieces, never held whole)."""


class _Lines:
    """The lines of a text stream, each at most ``LINE_LIMIT`` characters, for ``csv.reader``.

    A longer line is read to its end in pieces and dropped, and ``__next__``
    raises ``_LineTooLong`` for it; the iterator goes on with the next line,
    so a fresh ``csv.reader`` over it resumes there.
    """

    def __init__(self, text: IO[str]) -> None:
        self.readline = text.readline

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        limit = LINE_LIMIT
        line = self.readline(limit + 1)
        if not line:
            raise StopIteration
        if len(line) > limit and not line.endswith("\n"):
            while line and not line.endswith("\n"):
                line = self.readline(_DRAIN)
            raise _LineTooLong
        return line


def _read_csv(path: str, name: str, bool_columns: frozenset[str], progress: Progress | None,
              dialect: CsvDialect = CsvDialect()) -> Iterator[Record]:
    try:
        raw = open(path, "rb")
    except OSError as err:
        raise HistoryError(f"cannot read '{name}': {err.strerror or err}") from None
    total = _size(raw)
    if csv.field_size_limit() < LINE_LIMIT:
        csv.field_size_limit(LINE_LIMIT)  # large but bounded; CELL_LIMIT is checked below, with a reason
    with raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        try:
            lines = _Lines(text)
            delimiter = dialect.delimiter
            reader = csv.reader(lines, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                return
            header = [column.strip() for column in header]
            _require_columns(header, name, "CSV header")
            width = len(header)
            items_at = header.index("items") if "items" in header else -1
            bools = [i for i, column in enumerate(header) if column in bool_columns]
            row_number = 0
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                except _LineTooLong:
                    row_number += 1
                    yield Record(row_number, None, f"the row has a line longer than {LINE_LIMIT:,} characters")
                    reader = csv.reader(lines, delimiter=delimiter)  # a fresh parser: the next line starts a row
                    continue
                except csv.Error as err:  # e.g. a cell past csv's own limit: this row only
                    row_number += 1
                    yield Record(row_number, None, f"the row is not readable CSV: {err}")
                    reader = csv.reader(lines, delimiter=delimiter)
                    continue
                row_number += 1
                if progress is not None and row_number % _REPORT_EVERY == 0:
                    progress("scan", raw.tell(), total)
                if not cells:
                    continue
                if len(cells) > width:
                    yield Record(row_number, None, f"the row has {len(cells)} cells but the header names {width}")
                    continue
                longest = max(map(len, cells))
                if longest > CELL_LIMIT:
                    column = next(i for i, cell in enumerate(cells) if len(cell) == longest)
                    yield Record(row_number, None, f"the cell '{header[column]}' is {longest:,} characters long: "
                                                   f"more than {CELL_LIMIT:,}")
                    continue
                event: dict[str, Any] = {}
                for i, cell in enumerate(cells):
                    if cell != "":
                        event[header[i]] = cell
                error = None
                if items_at >= 0 and items_at < len(cells) and cells[items_at] != "":
                    try:
                        event["items"] = load_json(cells[items_at])
                    except ValueError as err:
                        error = items_error(err)
                if dialect.decimal_comma and error is None:
                    amount = event.get("amount")
                    if amount is not None:
                        fixed = decimal_from_comma(amount)
                        if fixed is None:
                            error = comma_reason("amount", amount)
                        else:
                            event["amount"] = fixed
                    if error is None and "items" in event:
                        error = _items_from_commas(event["items"])
                for i in bools:
                    if i < len(cells):
                        flag = cells[i].strip().lower()
                        if flag in ("true", "false"):
                            event[header[i]] = flag == "true"
                yield Record(row_number, None if error else event, error)
        except _LineTooLong:
            raise HistoryError(f"the CSV header of '{name}' is longer than {LINE_LIMIT:,} characters") from None
        except UnicodeDecodeError as err:
            raise HistoryError(f"'{name}' is not UTF-8 text ({err.reason} at byte {err.start} of a block)") from None
        except csv.Error as err:
            raise HistoryError(f"'{name}' is not a readable CSV file: {err}") from None
        if progress is not None:
            progress("scan", total, total)


def _require_columns(columns: list[str], name: str, what: str) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        shown = ", ".join(repr(c) for c in columns[:12]) or "none"
        hint = ""
        if what == "CSV header" and len(columns) == 1:
            other = ";" if ";" in columns[0] else "," if "," in columns[0] else None
            if other is not None:
                hint = f"; is the delimiter '{other}'? (--delimiter)"
        raise HistoryError(f"the {what} of '{name}' has no column {', '.join(repr(m) for m in missing)} "
                           f"(an event needs {', '.join(REQUIRED_COLUMNS)}; columns found: {shown}{hint})")


def _size(handle: IO[bytes]) -> int:
    try:
        return os.fstat(handle.fileno()).st_size
    except OSError:
        return 0


# ------------------------------------------------------------- JSON Lines


def _read_jsonl(path: str, name: str, _bools: frozenset[str], progress: Progress | None) -> Iterator[Record]:
    try:
        handle = open(path, "rb")
    except OSError as err:
        raise HistoryError(f"cannot read '{name}': {err.strerror or err}") from None
    total = _size(handle)
    done = 0
    limit = LINE_LIMIT
    with handle:
        readline = handle.readline
        line_number = 0
        while True:
            raw = readline(limit + 1)
            if not raw:
                break
            line_number += 1
            done += len(raw)
            if progress is not None and line_number % _REPORT_EVERY == 0:
                progress("scan", done, total)
            if len(raw) > limit and not raw.endswith(b"\n"):  # too long to hold: read to its end in pieces
                while raw and not raw.endswith(b"\n"):
                    raw = readline(_DRAIN)
                    done += len(raw)
                yield Record(line_number, None, f"the line is longer than {limit:,} bytes")
                continue
            if not raw.strip():
                continue
            try:
                value = load_json(raw)  # bytes: json finds the encoding (and a byte order mark) itself
            except UnicodeDecodeError as err:
                yield Record(line_number, None, f"the line is not UTF-8 text ({err.reason} at byte {err.start + 1})")
                continue
            except TooDeep as err:
                yield Record(line_number, None, f"the line is JSON {err}")
                continue
            except ValueError as err:
                yield Record(line_number, None, f"the line is not valid JSON: {err}")
                continue
            if not isinstance(value, dict):
                yield Record(line_number, None, f"the line must be a JSON object (an event), not {_json_kind(value)}")
                continue
            if None in value.values():
                value = {k: v for k, v in value.items() if v is not None}
            yield Record(line_number, value)
    if progress is not None:
        progress("scan", total, total)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return "a number"


# ----------------------------------------------------------------- Parquet


def _read_parquet(path: str, name: str, _bools: frozenset[str], progress: Progress | None) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except OSError as err:
        raise HistoryError(f"cannot read '{name}': {getattr(err, 'strerror', None) or err}") from None
    except (pa.ArrowException, ValueError) as err:
        raise HistoryError(f"'{name}' is not a readable Parquet file: {err}") from None
    schema = parquet.schema_arrow
    _require_columns(list(schema.names), name, "schema")
    total = parquet.metadata.num_rows
    # Nanosecond timestamps do not fit Python's datetime: read them as microseconds.
    casts = {i: pa.timestamp("us", tz=field.type.tz) for i, field in enumerate(schema)
             if pa.types.is_timestamp(field.type) and field.type.unit == "ns"}
    row_number = 0
    try:
        for batch in parquet.iter_batches(batch_size=8192):
            if casts:
                columns = [batch.column(i).cast(casts[i], safe=False) if i in casts else batch.column(i)
                           for i in range(batch.num_columns)]
                batch = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
            for values in batch.to_pylist():
                row_number += 1
                event: dict[str, Any] = {}
                error = None
                for key, value in values.items():
                    value = _plain(value)
                    if value is None:
                        continue
                    if key == "items" and isinstance(value, str):
                        try:
                            value = load_json(value)
                        except ValueError as err:
                            error = items_error(err)
                            continue
                    event[key] = value
                yield Record(row_number, None if error else event, error)
            if progress is not None:
                progress("scan", row_number, total)
    except (pa.ArrowException, OSError) as err:
        raise HistoryError(f"'{name}' could not be read to the end: {err}") from None


def _plain(value: Any) -> Any:
    """A Parquet cell as the value a JSON Lines file would hold (None: absent)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()  # a naive timestamp stays naive: the engine rejects it as ambiguous
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: plain for k, v in value.items() if (plain := _plain(v)) is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)
