"""A history file read as columns with Arrow: parsed, validated and grouped for a per-customer replay.

``load(path, tz, …) -> Columns`` reads a whole history (CSV and Parquet by
Arrow, JSON Lines by the row reader of ``history``) and works out, for every
row, in vectorised passes:

* its instant (µs since the epoch) — Arrow parses the common
  ``2026-11-23T10:00:00+02:00`` form; any other form (a date alone,
  fractions of a second, …) is parsed row by row exactly as the engine
  does;
* its amount in micro-units, for plain amounts (``12.50``, ``3``);
* whether it is *plain*: an id, type and customer as text, an instant and
  an amount (or none) that parsed, and items, a birthday, an original and a
  reward (if any) of the plain kinds. A plain row becomes an event without a
  detour; any other row is handed to the engine's event reader as the very
  dict ``History`` would have made of it, so its reason for a rejection is
  word for word the one the event-at-a-time replay gives;
* codes for its kind (purchase, refund, other), its customer, its id and
  the id it refunds, for the whole-array replays (``kernels``).

The cells themselves become Python values only when a row needs them (the
per-customer replay reads them; the whole-array replay does not).

``arrange(columns) -> Grouping`` then lays the rows out as the replay takes
them: each group one customer's rows in replay order — or several
customers' rows when they share an event id, since an id is unique across
all customers and only time order says which of two rows is the duplicate.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import date, datetime, timezone
from typing import Any

import attrs
import numpy as np

from poletti.engine import money
from poletti.engine.timecalc import parse_timestamp, to_us
from poletti.interpreter.events import _CORE_FIELDS, FIRST_YEAR, LAST_YEAR, Event, _date, quick_items
from poletti.interpreter.simulate.history import (
    REQUIRED_COLUMNS, STDIN, CsvDialect, History, HistoryError, _plain, _require_columns, csv_dialect, detect_format,
    items_error, load_json,
)
from poletti.interpreter.simulate import history as _history

NO_INSTANT = -(2**63)  # rows whose `at` is missing or unreadable sort first; the engine rejects them
OTHER, PURCHASE, REFUND = 0, 1, 2  # a row's kind, for the whole-array replays
_AMOUNT_PATTERN = r"^(?P<whole>[0-9]{1,12})(?:\.(?P<frac>[0-9]{1,6}))?$"  # below 10^12: sums stay in int64
_FIRST_US = to_us(datetime(FIRST_YEAR, 1, 1, tzinfo=timezone.utc))
_END_US = to_us(datetime(LAST_YEAR + 1, 1, 1, tzinfo=timezone.utc))
_CELLS_ONE_BY_ONE = 256  # cells read one at a time before a column is made Python values whole


class Columns:
    """A history's rows as columns (see the module docstring); index i is the i-th row read.

    Arrays (numpy, one entry per row): ``rows`` (the row number a person
    finds in the file), ``instant``, ``plain``, ``amount`` / ``has_amount``,
    ``kind``, ``customer_code`` (-1: not a text the engine reads as a
    customer), ``id_code`` / ``original_code`` (-1: none; the two share one
    numbering). ``customer_names[code]`` is a customer's name.
    """

    def __init__(self, names: list[str], count: int, rows: np.ndarray, instant: np.ndarray, plain: np.ndarray,
                 amount: np.ndarray, has_amount: np.ndarray, errors: dict[int, str], *, table: Any = None,
                 cells: dict[str, list[Any]] | None = None, bool_columns: frozenset[str] = frozenset(),
                 items: dict[int, Any] | None = None, birthdays: dict[int, date] | None = None,
                 extra: np.ndarray | None = None) -> None:
        self.names = names
        self.count = count
        self.rows = rows
        self.instant = instant
        self.plain = plain
        self.amount = amount
        self.has_amount = has_amount
        self.errors = errors  # rows that are no event at all (a line that is not JSON …), by index
        self.bool_columns = bool_columns
        self._table = table
        self._cells: dict[str, list[Any]] = dict(cells or {})
        self._asked: dict[str, int] = {}
        self.items = items or {}  # plain rows' items, ready (rows without items: none here)
        self.birthdays = birthdays or {}  # plain rows' birthdays, ready
        self.extra = extra if extra is not None else np.zeros(count, dtype=bool)  # has attribute cells
        self.kind = np.zeros(count, dtype=np.int8)
        self.customer_code = np.full(count, -1, dtype=np.int64)
        self.id_code = np.full(count, -1, dtype=np.int64)
        self.original_code = np.full(count, -1, dtype=np.int64)
        self.customer_names: list[str] = []
        self.time_ordered: bool | None = None  # a part of a history: whether the whole history is in time order
        # How the per-event replay reads these rows (``replay.rows_of``), and how many it has read.
        self.row_reading: Any = None
        self.rows_asked = 0

    # -- cells, made Python values when a row needs them

    def cells(self, name: str) -> list[Any]:
        """Every value of a column as the row reader passes it on (None where the cell is empty)."""
        values = self._cells.get(name)
        if values is None:
            if self._table is None or name not in self.names:
                values = [None] * self.count
            else:
                values = _cells(self._table.column(name), name, self.bool_columns)
            self._cells[name] = values
        return values

    @property
    def ids(self) -> list[Any]:
        return self.cells("id")

    @property
    def types(self) -> list[Any]:
        return self.cells("type")

    @property
    def customers(self) -> list[Any]:
        return self.cells("customer")

    def cell(self, name: str, index: int) -> Any:
        """One value of a column, as ``cells`` gives it.

        A column is made Python values whole once a replay has asked for a
        few hundred of its cells; before that, one cell at a time (a replay
        whose rows the arrays take reads a handful, e.g. to find the end).
        """
        values = self._cells.get(name)
        if values is not None:
            return values[index]
        asked = self._asked[name] = self._asked.get(name, 0) + 1
        if asked > _CELLS_ONE_BY_ONE or self._table is None or name not in self.names:
            return self.cells(name)[index]
        return _cells(self._table.column(name).slice(index, 1), name, self.bool_columns)[0]

    def raw(self, index: int) -> dict[str, Any]:
        """Row ``index`` as the event dict ``History`` makes of it (absent cells left out)."""
        event: dict[str, Any] = {}
        for name in self.names:
            value = self.cell(name, index)
            if value is not None:
                event[name] = value
        return event

    def event(self, index: int) -> Event:
        """A plain row as an event, before any program's checks (``attributes`` None when it has any)."""
        amount = int(self.amount[index]) if self.has_amount[index] else None
        cell = self.cell
        return Event(cell("id", index), cell("type", index), cell("customer", index), int(self.instant[index]),
                     amount, cell("currency", index), self.items.get(index, ()), cell("original", index),
                     cell("reward", index), self.birthdays.get(index),
                     None if self.extra[index] else {})  # type: ignore[arg-type]

    def attribute_cells(self, index: int) -> dict[str, Any]:
        """Row ``index``'s cells beyond the event's own fields (what programs read as attributes)."""
        found = {}
        for name in self.names:
            if name not in _CORE_FIELDS:
                value = self.cell(name, index)
                if value is not None:
                    found[name] = value
        return found

    def customer_name(self, index: int) -> str | None:
        code = int(self.customer_code[index])
        return self.customer_names[code] if code >= 0 else None

    def currency_is(self, currency: str) -> np.ndarray:
        """Rows whose currency is absent or ``currency`` (the only ones a program of that currency takes)."""
        if "currency" not in self.names:
            return np.ones(self.count, dtype=bool)
        if self._table is not None:
            from poletti.interpreter.simulate import arrow_functions as pc

            column = self._table.column("currency")
            return pc.fill_null(pc.equal(column, currency), True).to_numpy(zero_copy_only=False) \
                if _is_text(column.type) else ~pc.is_valid(column).to_numpy(zero_copy_only=False)
        return np.array([value is None or value == currency for value in self.cells("currency")], dtype=bool)

    # -- order

    def in_time_order(self) -> bool:
        """Whether the file is in time order already (rows without a readable instant aside), as ``History`` says."""
        if self.time_ordered is not None:
            return self.time_ordered
        known = self.instant[self.instant != NO_INSTANT]
        return not bool(known.size > 1 and np.any(np.diff(known) < 0))

    def order(self) -> np.ndarray:
        """Row indexes in the order a replay takes them: ``History.in_time_order()``'s.

        A file in time order is taken as it is; any other is sorted by
        instant (equal instants in file order), rows without one first.
        """
        if self.in_time_order():
            return np.arange(self.count, dtype=np.int64)
        return np.lexsort((self.rows, self.instant))

    def subset(self, keep: np.ndarray) -> Columns:
        """The rows ``keep`` (a mask) selects, with their own row numbers: a worker's share of a history."""
        from poletti.interpreter.simulate import arrow_functions as pc

        picked = np.flatnonzero(keep)
        where = {int(old): new for new, old in enumerate(picked.tolist())}
        table = pc.filter(self._table, keep) if self._table is not None else None
        cells = None if table is not None else {name: [values[i] for i in picked.tolist()]
                                                 for name, values in self._cells.items()}
        part = Columns(self.names, len(picked), self.rows[keep], self.instant[keep], self.plain[keep],
                       self.amount[keep], self.has_amount[keep],
                       {where[old]: text for old, text in self.errors.items() if old in where}, table=table,
                       cells=cells, bool_columns=self.bool_columns,
                       items={where[old]: value for old, value in self.items.items() if old in where},
                       birthdays={where[old]: value for old, value in self.birthdays.items() if old in where},
                       extra=self.extra[keep])
        part.kind = self.kind[keep]
        part.customer_code, part.customer_names = self.customer_code[keep], self.customer_names
        part.id_code, part.original_code = self.id_code[keep], self.original_code[keep]
        return part


def load(path: str, tz: Any, *, bool_columns: frozenset[str] = frozenset(), fmt: str | None = None,
         dialect: CsvDialect | None = None) -> Columns:
    """Read a history file (or a folder of Parquet files) into columns; ``HistoryError`` if it cannot be read.

    ``dialect``: a CSV file's delimiter and decimal mark (None: ``history.csv_dialect`` finds them)."""
    if path != STDIN and os.path.isdir(path):
        return _from_table(read_dataset(path), tz, bool_columns)
    fmt = fmt or detect_format(path)
    if fmt == "csv" and path != STDIN:
        dialect = dialect or csv_dialect(path)
        table = _read_csv(path, dialect)
        if table is not None:
            return _from_table(table, tz, bool_columns, decimal_comma=dialect.decimal_comma)
    if fmt == "parquet":
        return _from_table(_read_parquet(path), tz, bool_columns)
    return _from_records(path, fmt, tz, bool_columns, dialect)


# ------------------------------------------------------------------ reading


def _read_csv(path: str, dialect: CsvDialect = CsvDialect()) -> Any:
    """The CSV file as an Arrow table of text columns, or None when Arrow cannot take it row for row.

    Rows with more or fewer cells than the header, and blank lines, are
    irregular: the row reader handles those files (it numbers rows as a
    person counts them and says what is wrong with each). So are files with
    decimal commas and items (the row reader reads the items' prices).
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle, delimiter=dialect.delimiter), None)
    except OSError as err:
        raise HistoryError(f"cannot read '{path}': {err.strerror or err}") from None
    except (UnicodeDecodeError, csv.Error):
        return None
    if not header:
        return None
    names = [column.strip() for column in header]
    _require_columns(names, path, "CSV header")
    if len(set(names)) != len(names) or (dialect.decimal_comma and "items" in names):
        return None
    irregular: list[int] = []

    def invalid(row: Any) -> str:
        irregular.append(row.number)
        return "skip"

    try:
        table = pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, encoding="utf8"),
            parse_options=pcsv.ParseOptions(delimiter=dialect.delimiter, invalid_row_handler=invalid,
                                            ignore_empty_lines=False, newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(column_types={name: pa.string() for name in names},
                                                strings_can_be_null=True, null_values=[""],
                                                quoted_strings_can_be_null=True))
    except (pa.ArrowInvalid, pa.ArrowException, OSError, UnicodeDecodeError):
        return None
    if irregular or _has_long_cells(table):
        return None
    blank = blank_rows(table)
    if blank.size:
        if not is_blank_tail(blank, table.num_rows, trailing_blank_lines(path)):
            return None
        table = table.slice(0, table.num_rows - blank.size)
    return table


def blank_rows(table: Any) -> np.ndarray:
    """The rows of a table or record batch with no cell at all. Arrow reads a blank line as such a row
    (without calling the handler of irregular rows), where the row reader skips it; a row of nothing but
    delimiters, which the row reader rejects, reads the same. Only blank lines at the end of the file can
    be told apart (``trailing_blank_lines``); any other such row sends the file to the row reader.
    (Looked for only when every column has an empty cell, which the usual file does not.)"""
    columns = table.columns
    if not columns or any(column.null_count == 0 for column in columns):
        return np.zeros(0, dtype=np.int64)
    present = np.zeros(table.num_rows, dtype=bool)
    for column in columns:
        present |= _valid(column)
    return np.flatnonzero(~present)


def is_blank_tail(blank: np.ndarray, rows: int, trailing: int) -> bool:
    """Whether rows ``blank`` (``blank_rows``) are the last of ``rows`` and at most the file's ``trailing``
    blank lines: then they are those lines, and are left out as the row reader leaves them out."""
    return blank.size <= trailing and int(blank[0]) == rows - blank.size


def trailing_blank_lines(path: str) -> int:
    """How many blank lines end a file: the line ends after its last line's (``\r\n``, ``\n`` or ``\r``)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 4096))
            tail = handle.read()
    except OSError:
        return 0
    text = tail.rstrip(b"\r\n")
    if not text and size > len(tail):
        return 0  # (4 KiB of line ends: read the file the careful way)
    ends, count, at = tail[len(text):], 0, 0
    while at < len(ends):
        at += 2 if ends[at:at + 2] == b"\r\n" else 1
        count += 1
    return max(0, count - 1)


def _has_long_cells(table: Any) -> bool:
    """Whether a cell of a table or record batch is longer than ``history.CELL_LIMIT`` characters, or a row
    may be a line longer than ``history.LINE_LIMIT``: the row reader rejects those rows, with a reason.
    Characters are counted only in a piece of a column with a cell of more bytes than that (a character is
    at least one byte), which the usual file does not have; a row's bytes only when the batch has more than
    a line's worth (then a row of more, with its delimiters, is taken for too long: the caller reads the file
    whole, which says for sure)."""
    import pyarrow as pa

    from poletti.interpreter.simulate import arrow_functions as pc

    if table.nbytes > _history.LINE_LIMIT:
        widths = np.full(table.num_rows, table.num_columns, dtype=np.int64)  # (the delimiters)
        for column in table.columns:
            if _is_text(column.type):
                widths += np.diff(_text_bytes(column)[1])
        if int(widths.max(initial=0)) > _history.LINE_LIMIT:
            return True
    for column in table.columns:
        if not _is_text(column.type):
            continue
        for piece in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
            if not len(piece):
                continue
            _, offsets = _text_bytes(piece)
            if int(np.diff(offsets).max()) > _history.CELL_LIMIT:
                longest = pc.max(pc.utf8_length(piece)).as_py()
                if longest is not None and longest > _history.CELL_LIMIT:
                    return True
    return False


PARQUET_SUFFIXES = tuple(suffix for suffix, kind in _history.FORMATS.items() if kind == "parquet")
DATASET_MARKER = "_poletti.json"  # written by `poletti generate --partitions`: how the files split the customers


def dataset_files(path: str) -> list[str]:
    """The Parquet files of a dataset folder, in name order (which numbers the rows)."""
    try:
        names = sorted(name for name in os.listdir(path) if os.path.splitext(name)[1].lower() in PARQUET_SUFFIXES)
    except OSError as err:
        raise HistoryError(f"cannot read the folder '{path}': {err.strerror or err}") from None
    if not names:
        raise HistoryError(f"the folder '{path}' holds no Parquet files ({', '.join(PARQUET_SUFFIXES)})")
    return [os.path.join(path, name) for name in names]


def dataset_partitions(path: str) -> int | None:
    """How many customer partitions a folder written by ``poletti generate --partitions`` has (else None)."""
    try:
        with open(os.path.join(path, DATASET_MARKER), encoding="utf-8") as handle:
            marker = json.load(handle)
    except (OSError, ValueError):
        return None
    if marker.get("partitioned_by") == "customer" and marker.get("hash") == "crc32":
        partitions = marker.get("partitions")
        if isinstance(partitions, int) and partitions == len(dataset_files(path)):
            import pyarrow.parquet as pq

            if "friend" in pq.read_schema(dataset_files(path)[0]).names:
                # Partitioned by customer, a referral and its friend's events may sit in two files; they must be
                # replayed together (see ``arrange``): the folder is read as one history instead.
                return None
            return partitions
    return None


def read_dataset(path: str) -> Any:
    """A folder of Parquet files as one table (rows numbered across the files in name order)."""
    import pyarrow as pa

    tables = [read_parquet(file) for file in dataset_files(path)]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowException, ValueError) as err:
        raise HistoryError(f"the files of '{path}' do not have compatible columns: {err}") from None


def read_parquet(path: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except OSError as err:
        raise HistoryError(f"cannot read '{path}': {getattr(err, 'strerror', None) or err}") from None
    except (pa.ArrowException, ValueError) as err:
        raise HistoryError(f"'{path}' is not a readable Parquet file: {err}") from None
    _require_columns(list(table.schema.names), path, "schema")
    return table


_read_parquet = read_parquet


# --------------------------------------------------------------- vectorised


def _is_text(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _valid(column: Any) -> np.ndarray:
    from poletti.interpreter.simulate import arrow_functions as pc

    return pc.is_valid(column).to_numpy(zero_copy_only=False)


def instants(at: Any, tz: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's instant (µs; ``NO_INSTANT`` if unreadable), and which cells have the quick strict form."""
    from poletti.interpreter.simulate import arrow_functions as pc

    count = len(at)
    instant = np.full(count, NO_INSTANT, np.int64)
    at_quick = np.zeros(count, dtype=bool)
    if _is_text(at.type):
        values, at_quick = _strict_instants(at)
        at_quick &= (values >= _FIRST_US) & (values < _END_US)
        instant[at_quick] = values[at_quick]
    slow = np.flatnonzero(~at_quick)
    if slow.size:
        texts = _cells(pc.take(at, slow), "at", frozenset())
        for index, text in zip(slow.tolist(), texts):
            instant[index] = _instant_of(text, tz)
    return instant, at_quick


def _commas_to_points(table: Any) -> tuple[Any, dict[int, str]]:
    """A CSV table of decimal commas: its ``amount`` cells as the engine reads them (``12,50`` → ``12.50``),
    and the rows whose amount has a decimal point (no event: the row reader's reason, word for word)."""
    from poletti.interpreter.simulate import arrow_functions as pc

    if "amount" not in table.schema.names:
        return table, {}
    column = table.column("amount")
    pointed = np.flatnonzero(pc.fill_null(pc.match_substring(column, "."), False).to_numpy(zero_copy_only=False))
    errors = {}
    if pointed.size:
        values = pc.take(column, pointed).to_pylist()
        errors = {int(i): _history.comma_reason("amount", value) for i, value in zip(pointed.tolist(), values)}
    fixed = pc.replace_substring(column, ",", ".")
    return table.set_column(table.schema.get_field_index("amount"), "amount", fixed), errors


def _from_table(table: Any, tz: Any, bool_columns: frozenset[str], *, rows: np.ndarray | None = None,
                known: tuple[np.ndarray, np.ndarray] | None = None, decimal_comma: bool = False) -> Columns:
    """The table's rows as ``Columns``; ``rows`` their row numbers (1, 2, … by default), ``known`` their
    ``instants`` when already worked out; ``decimal_comma``: a CSV file's amounts are written ``12,50``."""
    import pyarrow as pa
    from poletti.interpreter.simulate import arrow_functions as pc

    count = table.num_rows
    names = list(table.schema.names)
    errors: dict[int, str] = {}
    if decimal_comma:
        table, errors = _commas_to_points(table)
    if known is None:
        instant, at_quick = instants(table.column("at"), tz)
    else:
        instant, at_quick = known
    columns = Columns(names, count, np.arange(1, count + 1, dtype=np.int64) if rows is None else rows, instant,
                      np.zeros(count, dtype=bool), np.zeros(count, dtype=np.int64), np.zeros(count, dtype=bool),
                      errors, table=table, bool_columns=bool_columns)
    amount_ok = np.ones(count, dtype=bool)
    if "amount" in names:
        column = table.column("amount")
        present = _valid(column)
        columns.has_amount = present
        if _is_text(column.type):
            match = pc.extract_regex(column, _AMOUNT_PATTERN)
            valid = _valid(match)
            whole = pc.struct_field(match, [0])
            fraction = pc.struct_field(match, [1])
            fraction = pc.if_else(pc.equal(fraction, ""), "0", fraction)
            units = pc.add(pc.multiply(pc.cast(whole, pa.int64()), money.SCALE),
                           pc.cast(pc.utf8_rpad(fraction, money.DIGITS, "0"), pa.int64()))
            columns.amount = np.where(valid, pc.fill_null(units, 0).to_numpy(zero_copy_only=False), 0).astype(np.int64)
            amount_ok = ~present | valid
        elif pa.types.is_integer(column.type):
            values = pc.fill_null(column, 0).to_numpy(zero_copy_only=False).astype(np.int64)
            valid = (values >= 0) & (values < 10**12)
            columns.amount = np.where(valid, values * money.SCALE, 0)
            amount_ok = ~present | valid
        elif pa.types.is_decimal128(column.type) and 0 <= column.type.scale <= money.DIGITS:
            units, valid = _decimal_units(column)
            columns.amount = np.where(valid, units, 0)
            amount_ok = ~present | valid
        else:
            amount_ok = ~present
    plain = at_quick & amount_ok
    for name in ("id", "type", "customer"):
        plain &= _texts(table.column(name))
    for name in ("currency", "original", "reward"):
        if name in names:
            column = table.column(name)
            plain &= ~_valid(column) | _texts(column)
    # Issue 13's fields, a referral naming a friend, an event naming an account: such a row goes the careful way.
    for name in ("rewards_used", "partner", "friend", "account"):
        if name in names:
            plain &= ~_valid(table.column(name))
    if "items" in names:
        _ready_items(columns, table.column("items"), plain)
    if "birthday" in names:
        present = np.flatnonzero(_valid(table.column("birthday")))
        values = columns.cells("birthday")
        for index in present.tolist():
            try:
                columns.birthdays[index] = _date(values[index], date)
            except ValueError:
                plain[index] = False
    # Columns beyond the event's own fields are attributes: each program reads the ones it declares.
    for name in names:
        if name not in _CORE_FIELDS:
            columns.extra |= _valid(table.column(name))
    for index in errors:  # no event at all, as the row reader has it: no instant (it sorts first), not plain
        plain[index] = False
        columns.instant[index] = NO_INSTANT
    columns.plain = plain
    _codes(columns, table)
    return columns


def _decimal_units(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """A ``decimal128`` column (of 0 to ``money.DIGITS`` decimal places) in micro-units, and which cells
    are amounts the row reader takes as they are (0 up to 10^12, not included; the rest it reads, and
    rejects with its reason). The values are read from Arrow's buffer: 16-byte two's-complement integers,
    the decimal's digits without its point."""
    import pyarrow as pa

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    scale = array.type.scale
    count = len(array)
    words = np.frombuffer(array.buffers()[1], dtype="<i8")[2 * array.offset:2 * (array.offset + count)]
    low, high = words[0::2], words[1::2]  # (little-endian: the low word first; it is unsigned, read as signed)
    limit = 10 ** (12 + scale)  # the digits of amounts below 10^12
    fits = (high == 0) & (low >= 0) & (low < limit) & _valid(array)
    return np.where(fits, low, 0) * 10 ** (money.DIGITS - scale), fits


def _ready_items(columns: Columns, column: Any, plain: np.ndarray) -> None:
    """Parse the items of the rows that have any (a row with items that are not plain is not plain)."""
    present = np.flatnonzero(_valid(column))
    if present.size == 0:
        return
    values = columns.cells("items")
    # A history repeats a few baskets many times, and ``_cells`` parses each distinct text once (one list
    # for all its rows): so each distinct basket is made Items once too (they are immutable tuples).
    ready: dict[int, Any] = {}
    for index in present.tolist():
        value = values[index]
        if isinstance(value, _BadItems):
            columns.errors[index] = str(value)
            plain[index] = False
            continue
        key = id(value)
        parsed = ready.get(key, ready)
        if parsed is ready:
            parsed = ready[key] = quick_items(value)
        if parsed is None:
            plain[index] = False
        else:
            columns.items[index] = parsed


def _codes(columns: Columns, table: Any) -> None:
    """Kinds, customer codes and id codes (vectorised by Arrow for text columns)."""
    import pyarrow as pa
    from poletti.interpreter.simulate import arrow_functions as pc

    kind = table.column("type")
    if _is_text(kind.type):
        columns.kind = (pc.fill_null(pc.equal(kind, "purchase"), False).to_numpy(zero_copy_only=False) * PURCHASE
                        + pc.fill_null(pc.equal(kind, "refund"), False).to_numpy(zero_copy_only=False) * REFUND
                        ).astype(np.int8)
    customer = table.column("customer")
    if _is_text(customer.type) or pa.types.is_integer(customer.type):
        text = customer if _is_text(customer.type) else pc.cast(customer, pa.string())
        encoded = pc.dictionary_encode(text).combine_chunks()
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        columns.customer_code = codes
        columns.customer_names = encoded.dictionary.to_pylist()
    ids = table.column("id")
    originals = table.column("original") if "original" in columns.names else None
    if _is_text(ids.type) and (originals is None or _is_text(originals.type)):
        both = pa.chunked_array(ids.chunks + (originals.chunks if originals is not None else []), pa.string())
        encoded = pc.dictionary_encode(both).combine_chunks()
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        columns.id_code = codes[:columns.count]
        if originals is not None:
            columns.original_code = codes[columns.count:]


def _strict_instants(text: Any) -> tuple[np.ndarray, np.ndarray]:
    """Instants (µs) of the cells written ``YYYY-MM-DDTHH:MM:SS`` then ``Z`` or ``±HH:MM``, and which cells are.

    Every field of that form sits at a fixed place, so the digits are read
    straight from Arrow's bytes — a strided view when every cell has the
    same length, as an export's usually do — and the date checked to exist
    (no 30 February, no second 60). Any other cell is left to the careful
    row-by-row reader.
    """
    count = len(text)
    if count == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    data, starts = _text_bytes(text)
    lengths = np.diff(starts)
    first = int(starts[0]) if count else 0
    if count and np.all(lengths == lengths[0]) and int(lengths[0]) in (20, 25):
        width = int(lengths[0])
        grid = data[first:first + count * width].reshape(count, width)

        def char(place: int) -> np.ndarray:
            return grid[:, place] if place < width else np.zeros(count, dtype=np.uint8)
    else:
        last = len(data) - 1
        heads = starts[:-1]

        def char(place: int) -> np.ndarray:
            return data[np.minimum(heads + place, last)]  # past a short cell's end: unused, its length fails it

    ok = (lengths == 20) | (lengths == 25)
    digits = {}
    for place in (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24):
        digit = char(place).astype(np.int64) - ord("0")
        if place < 19:
            ok &= (digit >= 0) & (digit <= 9)
        digits[place] = digit
    for place, mark in ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":")):
        ok &= char(place) == ord(mark)

    def number(*places: int) -> np.ndarray:
        value = np.zeros(count, dtype=np.int64)
        for place in places:
            value = value * 10 + digits[place]
        return value

    year, month, day = number(0, 1, 2, 3), number(5, 6), number(8, 9)
    hour, minute, second = number(11, 12), number(14, 15), number(17, 18)
    zone = char(19)
    zulu = (zone == ord("Z")) & (lengths == 20)
    shifted = ((zone == ord("+")) | (zone == ord("-"))) & (lengths == 25) & (char(22) == ord(":"))
    for place in (20, 21, 23, 24):
        shifted &= (digits[place] >= 0) & (digits[place] <= 9)
    ok &= zulu | shifted
    zone_hours, zone_minutes = number(20, 21), number(23, 24)
    ok &= (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (hour <= 23) & (minute <= 59) & (second <= 59)
    ok &= np.where(shifted, (zone_hours <= 23) & (zone_minutes <= 59), True)
    ok &= day <= _days_in_month(year, np.clip(month, 1, 12))
    offset = np.where(shifted, np.where(zone == ord("-"), -1, 1) * (zone_hours * 3600 + zone_minutes * 60), 0)
    seconds = _days_from_civil(year, np.clip(month, 1, 12), day) * 86_400 + hour * 3600 + minute * 60 + second
    valid = _valid(text)
    ok &= valid
    return np.where(ok, (seconds - offset) * 1_000_000, 0), ok


def _days_in_month(year: np.ndarray, month: np.ndarray) -> np.ndarray:
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    lengths = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)[month]
    return lengths + ((month == 2) & leap)


def _days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm, in integers)."""
    y = year - (month <= 2)
    era = np.floor_divide(y, 400)
    year_of_era = y - era * 400
    day_of_year = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _text_bytes(text: Any) -> tuple[np.ndarray, np.ndarray]:
    """A text column's bytes, and its offsets: row i's text is bytes ``offsets[i]:offsets[i + 1]``."""
    import pyarrow as pa

    array = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    _, offsets_buffer, data_buffer = array.buffers()[:3]
    offset_type = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[array.offset:array.offset + len(array) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(1, np.uint8)
    return (data if data.size else np.zeros(1, np.uint8)), offsets.astype(np.int64)


def _texts(column: Any) -> np.ndarray:
    """Rows whose cell is a non-empty text without only spaces (what the quick event reader takes)."""
    from poletti.interpreter.simulate import arrow_functions as pc

    if not _is_text(column.type):
        return np.zeros(len(column), dtype=bool)
    blank = pc.match_substring_regex(column, r"^\s*$")
    return pc.fill_null(pc.invert(blank), False).to_numpy(zero_copy_only=False)


def _cells(column: Any, name: str, bool_columns: frozenset[str]) -> list[Any]:
    """A column's values as the row reader passes them on: JSON items parsed, bools from text, Arrow → plain."""
    if name == "items" and _is_text(column.type):
        return _item_cells(column)
    values = column.to_pylist()
    if _is_text(column.type):
        if name in bool_columns:
            return [_bool_cell(value) for value in values]
        return values
    return [_plain(value) for value in values]


def _item_cells(column: Any) -> list[Any]:
    """An ``items`` text column, each distinct text parsed once: the rows that repeat it share the (never
    changed) list. A history repeats a few baskets many times."""
    from poletti.interpreter.simulate import arrow_functions as pc

    whole = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    encoded = pc.dictionary_encode(whole)
    distinct = [_items(value) for value in encoded.dictionary.to_pylist()]
    distinct.append(None)  # code -1: an empty cell
    return [distinct[code] for code in pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).tolist()]


class _BadItems(str):
    """An ``items`` cell that is not JSON: the row is no event (its text says why)."""


def _items(value: Any) -> Any:
    if value is None:
        return None
    try:
        return load_json(value)
    except ValueError as err:
        return _BadItems(items_error(err))


def _bool_cell(value: Any) -> Any:
    if value is None:
        return None
    flag = value.strip().lower()
    return flag == "true" if flag in ("true", "false") else value


def _instant_of(value: Any, tz: Any) -> int:
    if not isinstance(value, str):
        return NO_INSTANT
    try:
        at = parse_timestamp(value, tz)
    except (ValueError, OverflowError):
        return NO_INSTANT
    return to_us(at)


# ----------------------------------------------------------- row by row


def _from_records(path: str, fmt: str, tz: Any, bool_columns: frozenset[str],
                  dialect: CsvDialect | None = None) -> Columns:
    """JSON Lines (and CSV files Arrow cannot take row for row): read by ``History``, then as columns."""
    with History(path, tz, fmt=fmt, bool_columns=bool_columns, dialect=dialect) as history:
        records = list(history.records())
    return columns_of_records(records, record_names(records), bool_columns)


def record_names(records: Any, names: list[str] | None = None) -> list[str]:
    """The columns of records: the required ones, then every other field in the order first met (added to
    ``names``, the columns of records before, when given)."""
    names = list(REQUIRED_COLUMNS) if names is None else names
    seen = set(names)
    for record in records:
        if record.event is not None:
            for key in record.event:
                if key not in seen:
                    seen.add(key)
                    names.append(key)
    return names


def columns_of_records(records: list[Any], names: list[str], bool_columns: frozenset[str],
                       instant: np.ndarray | None = None) -> Columns:
    """``History`` records (``names``: their columns, ``record_names``) as columns; ``instant``: their
    instants (µs, ``NO_INSTANT`` for none) when known already (else from the records).

    JSON values come in every type, so no row is plain: each goes through
    the event reader. Customers get codes all the same, for the grouping.
    """
    count = len(records)
    errors = {i: record.error for i, record in enumerate(records) if record.event is None and record.error}
    cells: dict[str, list[Any]] = {name: [None] * count for name in names}
    for i, record in enumerate(records):
        if record.event is not None:
            for key, value in record.event.items():
                cells[key][i] = value
    rows = np.array([record.row for record in records], dtype=np.int64)
    if instant is None:
        instant = np.array([NO_INSTANT if r.instant is None else to_us(r.instant) for r in records], dtype=np.int64)
    columns = Columns(names, count, rows, instant, np.zeros(count, dtype=bool), np.zeros(count, dtype=np.int64),
                      np.zeros(count, dtype=bool), errors, cells=cells, bool_columns=bool_columns)
    known: dict[str, int] = {}
    for index, customer in enumerate(cells["customer"]):
        name = _name(customer)
        if name is not None:
            columns.customer_code[index] = known.setdefault(name, len(known))
    columns.customer_names = list(known)
    return columns


def is_bad_items(value: Any) -> bool:
    return isinstance(value, _BadItems)


def _name(value: Any) -> str | None:
    """A customer or an id as the event reader names it (text or a whole number), or None."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value)


# ---------------------------------------------------------------- grouping


class Grouping:
    """The replay's units of work (see ``arrange``): each group's rows, in replay order, laid end to end.

    ``rows[starts[g]:starts[g] + counts[g]]`` are group g's rows;
    ``group_of[i]`` the group of row i; ``keys[g]`` what shards it (its
    first customer's name); ``single[g]``: the group is one customer's rows.
    """

    def __init__(self, rows: np.ndarray, starts: np.ndarray, counts: np.ndarray, group_of: np.ndarray,
                 keys: list[str], single: np.ndarray) -> None:
        self.rows, self.starts, self.counts, self.group_of = rows, starts, counts, group_of
        self.keys, self.single = keys, single

    def __len__(self) -> int:
        return len(self.starts)

    def group(self, number: int) -> np.ndarray:
        start = int(self.starts[number])
        return self.rows[start:start + int(self.counts[number])]


def arrange(columns: Columns) -> Grouping:
    """Group the rows: by customer, customers who share an event id together, the rest a row each.

    Vectorised where it can be: customers are grouped by their codes; only
    the rows of ids that occur more than once are looked at one by one, to
    link their customers.
    """
    order = columns.order()
    rank = np.empty(columns.count, dtype=np.int64)
    rank[order] = np.arange(columns.count, dtype=np.int64)
    codes = columns.customer_code
    if columns.count and columns.id_code.max(initial=-1) >= 0:
        id_codes = columns.id_code
        counted = np.bincount(id_codes[id_codes >= 0])
        repeated = np.flatnonzero((id_codes >= 0) & (counted[np.maximum(id_codes, 0)] > 1))
    else:  # ids are not all text: look at every row's id
        repeated = np.arange(columns.count)
    root = np.arange(len(columns.customer_names), dtype=np.int64)

    def find(code: int) -> int:
        while root[code] != code:
            code = int(root[code])
        return code

    def join(one: int, other: int) -> None:
        a, b = find(one), find(other)
        if a != b:
            root[max(a, b)] = min(a, b)

    links = _links(columns)
    if repeated.size:
        ids = columns.ids
        owner: dict[str, int] = {}
        for index in repeated.tolist():
            code, event_id = int(codes[index]), _name(ids[index])
            if code < 0 or event_id is None:
                continue
            first = owner.setdefault(event_id, code)
            if first != code:
                join(first, code)
    for one, other in links:
        join(one, other)
    if repeated.size or links:
        for code in range(len(root)):
            root[code] = find(code)
    linked = np.bincount(root, minlength=len(root)) > 1 if len(root) else np.zeros(0, dtype=bool)
    # Group numbers: a customer's group is its root's code; rows without a customer come after, one each.
    group_of = np.where(codes >= 0, root[np.maximum(codes, 0)] if len(root) else 0, -1)
    loose = np.flatnonzero(group_of < 0)
    group_of[loose] = len(root) + np.arange(loose.size)
    laid = np.lexsort((rank, group_of))
    groups_sorted = group_of[laid]
    boundaries = np.flatnonzero(np.diff(groups_sorted)) + 1
    starts = np.concatenate(([0], boundaries)).astype(np.int64) if columns.count else np.zeros(0, dtype=np.int64)
    counts = np.diff(np.concatenate((starts, [columns.count]))).astype(np.int64)
    numbers = groups_sorted[starts]
    renumber = np.empty(len(root) + loose.size, dtype=np.int64)
    renumber[numbers] = np.arange(len(starts))
    names = columns.customer_names
    keys = [names[int(n)] if n < len(root) else f"row {int(columns.rows[laid[s]])}"
            for n, s in zip(numbers.tolist(), starts.tolist())]
    single = np.array([n < len(root) and not linked[int(n)] for n in numbers.tolist()], dtype=bool)
    return Grouping(laid, starts, counts, renumber[group_of], keys, single)


def _links(columns: Columns) -> list[tuple[int, int]]:
    """Pairs of customer codes that one event joins: a referral's customer and its ``friend``.

    Such customers change each other's state (interpreter/referrals.py), so they are one group: replayed
    together, in time order, and in one shard. A friend who is nobody's customer in the history has no
    events to replay, but the first referral links them and a later one of them is rejected: every
    referrer of one such friend is in one group too (joined to the friend's first referrer).
    """
    if "friend" not in columns.names:
        return []
    friends, types, codes = columns.cells("friend"), columns.types, columns.customer_code
    code_of = {name: code for code, name in enumerate(columns.customer_names)}
    first_referrer: dict[str, int] = {}  # a friend with no events of their own → the first to refer them
    pairs = []
    for index, friend in enumerate(friends):
        if friend is None or types[index] != "referral" or codes[index] < 0:
            continue
        name = _name(friend) or ""
        referrer = int(codes[index])
        other = code_of.get(name)
        if other is None:
            other = first_referrer.setdefault(name, referrer)
        if other != referrer:
            pairs.append((referrer, other))
    return pairs


__all__ = ["Columns", "Grouping", "NO_INSTANT", "OTHER", "PURCHASE", "REFUND", "arrange", "is_bad_items", "load"]
