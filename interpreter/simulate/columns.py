"""A history file read as columns with Arrow: parsed, validated and ordered for a per-customer replay.

``load(path, tz, …) -> Columns`` reads a whole history (CSV and Parquet by
Arrow, JSON Lines by the row reader of ``history``) and works out, for every
row, in vectorised passes:

* its instant (µs since the epoch) — Arrow parses the common
  ``2026-11-23T10:00:00+02:00`` form; any other form (a date alone,
  fractions of a second, …) is parsed row by row exactly as the engine
  does;
* its amount in micro-units, for plain amounts (``12.50``, ``3``);
* whether it is *plain*: an id, type and customer as text, an instant and
  an amount (or none) that parsed, and no other field but a currency. A
  plain row becomes an event without a detour; any other row (items,
  attributes, a birthday, anything unusual) is handed to the engine's
  event reader as the very dict ``History`` would have made of it, so its
  reason for a rejection is word for word the one the event-at-a-time
  replay gives;
* the groups a replay processes together: one customer's rows, in time
  order (equal instants in file order) — or several customers' rows when
  they share an event id, since an id is unique across all customers and
  only time order says which of two rows is the duplicate.

Memory holds the file's columns (Arrow) and a few integer arrays per row.
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
    REQUIRED_COLUMNS, STDIN, History, HistoryError, _plain, _require_columns, detect_format,
)

NO_INSTANT = -(2**63)  # rows whose `at` is missing or unreadable sort first; the engine rejects them
_AMOUNT_PATTERN = r"^(?P<whole>[0-9]{1,12})(?:\.(?P<frac>[0-9]{1,6}))?$"  # below 10^12: sums stay in int64
_FIRST_US = to_us(datetime(FIRST_YEAR, 1, 1, tzinfo=timezone.utc))
_END_US = to_us(datetime(LAST_YEAR + 1, 1, 1, tzinfo=timezone.utc))
# The one form Arrow parses for us; every other way of writing `at` is parsed row by row, as the engine does.
_STRICT_AT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})$"


@attrs.define
class Columns:
    """A history's rows as columns (see the module docstring); index i is the i-th row of the file."""

    names: list[str]
    count: int
    rows: np.ndarray  # the row number a person finds in the file (1-based)
    instant: np.ndarray  # µs since the epoch, or NO_INSTANT
    plain: np.ndarray  # bool: the row becomes an event straight from the columns
    amount: np.ndarray  # micro-units (plain rows with an amount), else 0
    has_amount: np.ndarray  # bool
    ids: list[Any]
    types: list[Any]
    customers: list[Any]
    currencies: list[Any]
    errors: dict[int, str]  # rows that are no event at all (a line that is not JSON …), by index
    _cells: dict[str, list[Any]]  # every column's values as the row reader would pass them on
    bool_columns: frozenset[str] = frozenset()
    # Plain rows' other fields, ready: items, birthday, original, reward; `extra`: has attribute cells.
    items: list[Any] = attrs.Factory(list)
    birthdays: list[Any] = attrs.Factory(list)
    originals: list[Any] = attrs.Factory(list)
    rewards: list[Any] = attrs.Factory(list)
    extra: Any = None

    def raw(self, index: int) -> dict[str, Any]:
        """Row ``index`` as the event dict ``History`` makes of it (absent cells left out)."""
        event: dict[str, Any] = {}
        for name, values in self._cells.items():
            value = values[index]
            if value is None:
                continue
            event[name] = value
        return event

    def event(self, index: int) -> Event:
        """A plain row as an event, before any program's checks (``attributes`` None when it has any)."""
        return Event(self.ids[index], self.types[index], self.customers[index], int(self.instant[index]),
                     int(self.amount[index]) if self.has_amount[index] else None, self.currencies[index],
                     self.items[index], self.originals[index], self.rewards[index], self.birthdays[index],
                     None if self.extra[index] else {})  # type: ignore[arg-type]

    def attribute_cells(self, index: int) -> dict[str, Any]:
        """Row ``index``'s cells beyond the event's own fields (what programs read as attributes)."""
        return {name: values[index] for name, values in self._cells.items()
                if name not in _CORE_FIELDS and values[index] is not None}

    def in_time_order(self) -> bool:
        """Whether the file is in time order already (rows without a readable instant aside), as ``History`` says."""
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


def load(path: str, tz: Any, *, bool_columns: frozenset[str] = frozenset(), fmt: str | None = None) -> Columns:
    """Read a history file (or a folder of Parquet files) into columns; ``HistoryError`` if it cannot be read."""
    if path != STDIN and os.path.isdir(path):
        return _from_table(read_dataset(path), tz, bool_columns, {})
    fmt = fmt or detect_format(path)
    if fmt == "csv" and path != STDIN:
        table = _read_csv(path)
        if table is not None:
            return _from_table(table, tz, bool_columns, {})
    if fmt == "parquet":
        return _from_table(_read_parquet(path), tz, bool_columns, {})
    return _from_records(path, fmt, tz, bool_columns)


# ------------------------------------------------------------------ reading


def _read_csv(path: str) -> Any:
    """The CSV file as an Arrow table of text columns, or None when Arrow cannot take it row for row.

    Rows with more or fewer cells than the header, and blank lines, are
    irregular: the row reader handles those files (it numbers rows as a
    person counts them and says what is wrong with each).
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except OSError as err:
        raise HistoryError(f"cannot read '{path}': {err.strerror or err}") from None
    except (UnicodeDecodeError, csv.Error):
        return None
    if not header:
        return None
    names = [column.strip() for column in header]
    _require_columns(names, path, "CSV header")
    if len(set(names)) != len(names):
        return None
    irregular: list[int] = []

    def invalid(row: Any) -> str:
        irregular.append(row.number)
        return "skip"

    try:
        table = pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, encoding="utf8"),
            parse_options=pcsv.ParseOptions(invalid_row_handler=invalid, ignore_empty_lines=False,
                                            newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(column_types={name: pa.string() for name in names},
                                                strings_can_be_null=True, null_values=[""],
                                                quoted_strings_can_be_null=True))
    except (pa.ArrowInvalid, pa.ArrowException, OSError, UnicodeDecodeError):
        return None
    if irregular:
        return None
    return table


DATASET_MARKER = "_poletti.json"  # written by `poletti generate --partitions`: how the files split the customers


def dataset_files(path: str) -> list[str]:
    """The Parquet files of a dataset folder, in name order (which numbers the rows)."""
    try:
        names = sorted(name for name in os.listdir(path) if name.endswith(".parquet"))
    except OSError as err:
        raise HistoryError(f"cannot read the folder '{path}': {err.strerror or err}") from None
    if not names:
        raise HistoryError(f"the folder '{path}' holds no .parquet files")
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
            return partitions
    return None


def read_dataset(path: str) -> Any:
    """A folder of Parquet files as one table (rows numbered across the files in name order)."""
    import pyarrow as pa

    tables = [_read_parquet(file) for file in dataset_files(path)]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowException, ValueError) as err:
        raise HistoryError(f"the files of '{path}' do not have compatible columns: {err}") from None


def _read_parquet(path: str) -> Any:
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


# --------------------------------------------------------------- vectorised


def shard(columns: Columns, keep: np.ndarray) -> Columns:
    """The rows ``keep`` (a mask) selects, with their own row numbers: a worker's share of a history."""
    picked = np.flatnonzero(keep).tolist()

    def take(values: list[Any]) -> list[Any]:
        return [values[i] for i in picked]

    cells = {name: take(values) for name, values in columns._cells.items()}
    errors = {new: columns.errors[old] for new, old in enumerate(picked) if old in columns.errors}
    return Columns(columns.names, len(picked), columns.rows[keep], columns.instant[keep], columns.plain[keep],
                   columns.amount[keep], columns.has_amount[keep], take(columns.ids), take(columns.types),
                   take(columns.customers), take(columns.currencies), errors, cells, columns.bool_columns,
                   take(columns.items), take(columns.birthdays), take(columns.originals), take(columns.rewards),
                   columns.extra[keep] if columns.extra is not None else None)


def _from_table(table: Any, tz: Any, bool_columns: frozenset[str], errors: dict[int, str]) -> Columns:
    import pyarrow as pa
    import pyarrow.compute as pc

    count = table.num_rows
    names = list(table.schema.names)
    cells: dict[str, list[Any]] = {}
    for name in names:
        cells[name] = _cells(table.column(name), name, bool_columns)
    instant = np.full(count, NO_INSTANT, dtype=np.int64)
    at_quick = np.zeros(count, dtype=bool)
    at = table.column("at")
    if pa.types.is_string(at.type) or pa.types.is_large_string(at.type):
        parsed = pc.strptime(at, format="%Y-%m-%dT%H:%M:%S%z", unit="us", error_is_null=True)
        values = pc.fill_null(pc.cast(parsed, pa.int64()), 0).to_numpy(zero_copy_only=False)
        strict = pc.fill_null(pc.match_substring_regex(at, _STRICT_AT), False).to_numpy(zero_copy_only=False)
        at_quick = strict & pc.is_valid(parsed).to_numpy(zero_copy_only=False)
        at_quick &= (values >= _FIRST_US) & (values < _END_US)
        # strptime rolls impossible dates over (30 February → 2 March): the wall clock it read must be the text's.
        at_quick &= _same_wall_clock(at, values, at_quick)
        instant[at_quick] = values[at_quick]
    for index in np.flatnonzero(~at_quick):
        instant[index] = _instant_of(cells["at"][index], tz)
    amount = np.zeros(count, dtype=np.int64)
    has_amount = np.zeros(count, dtype=bool)
    amount_ok = np.ones(count, dtype=bool)
    if "amount" in names:
        column = table.column("amount")
        present = pc.is_valid(column).to_numpy(zero_copy_only=False)
        has_amount = present
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            match = pc.extract_regex(column, _AMOUNT_PATTERN)
            valid = pc.is_valid(match).to_numpy(zero_copy_only=False)
            whole = pc.struct_field(match, [0])
            fraction = pc.struct_field(match, [1])
            fraction = pc.if_else(pc.equal(fraction, ""), "0", fraction)
            units = pc.add(pc.multiply(pc.cast(whole, pa.int64()), money.SCALE),
                           pc.cast(pc.utf8_rpad(fraction, money.DIGITS, "0"), pa.int64()))
            values = pc.fill_null(units, 0).to_numpy(zero_copy_only=False)
            amount = np.where(valid, values, 0).astype(np.int64)
            amount_ok = ~present | valid
        elif pa.types.is_integer(column.type):
            values = pc.fill_null(column, 0).to_numpy(zero_copy_only=False).astype(np.int64)
            valid = (values >= 0) & (values < 10**12)
            amount = np.where(valid, values * money.SCALE, 0)
            amount_ok = ~present | valid
        else:
            amount_ok = ~present
    plain = at_quick & amount_ok
    for name in ("id", "type", "customer"):
        plain &= _texts(table.column(name))
    for name in ("currency", "original", "reward"):
        if name in names:
            column = table.column(name)
            plain &= ~pc.is_valid(column).to_numpy(zero_copy_only=False) | _texts(column)
    items: list[Any] = [()] * count
    if "items" in cells:
        for index, value in enumerate(cells["items"]):
            if value is None:
                continue
            if isinstance(value, _BadItems):
                errors[index] = str(value)
                plain[index] = False
                continue
            parsed = quick_items(value)
            if parsed is None:
                plain[index] = False
            else:
                items[index] = parsed
    birthdays: list[Any] = [None] * count
    if "birthday" in cells:
        for index, value in enumerate(cells["birthday"]):
            if value is not None:
                try:
                    birthdays[index] = _date(value, date)
                except ValueError:
                    plain[index] = False
    # Columns beyond the event's own fields are attributes: each program reads the ones it declares.
    extra = np.zeros(count, dtype=bool)
    for name in names:
        if name not in _CORE_FIELDS:
            extra |= pc.is_valid(table.column(name)).to_numpy(zero_copy_only=False)
    rows = np.arange(1, count + 1, dtype=np.int64)
    none = [None] * count
    return Columns(names, count, rows, instant, plain, amount, has_amount, cells.get("id", none),
                   cells.get("type", none), cells.get("customer", none), cells.get("currency", none), errors, cells,
                   bool_columns, items, birthdays, cells.get("original", none), cells.get("reward", none), extra)


def _same_wall_clock(text: Any, instants: np.ndarray, parsed: np.ndarray) -> np.ndarray:
    """Rows whose instant, seen at the offset the text gives, shows the text's own date and time."""
    import pyarrow as pa
    import pyarrow.compute as pc

    offset_text = pc.utf8_slice_codeunits(pc.fill_null(text, ""), 19)
    sign = np.where(pc.starts_with(offset_text, "-").to_numpy(zero_copy_only=False), -1, 1)
    hours = pc.utf8_slice_codeunits(offset_text, 1, 3)
    minutes = pc.utf8_slice_codeunits(offset_text, 4, 6)
    zulu = pc.equal(offset_text, "Z").to_numpy(zero_copy_only=False)
    digits = parsed & ~zulu
    hh = np.zeros(len(instants), dtype=np.int64)
    mm = np.zeros(len(instants), dtype=np.int64)
    if digits.any():
        hh[digits] = pc.cast(pc.filter(hours, pa.array(digits)), pa.int64()).to_numpy(zero_copy_only=False)
        mm[digits] = pc.cast(pc.filter(minutes, pa.array(digits)), pa.int64()).to_numpy(zero_copy_only=False)
    wall = (instants // 1_000_000) + sign * (hh * 3600 + mm * 60)
    shown = pc.strftime(pa.array(np.where(parsed, wall, 0), pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%S")
    written = pc.utf8_slice_codeunits(pc.fill_null(text, ""), 0, 19)
    return pc.fill_null(pc.equal(shown, written), False).to_numpy(zero_copy_only=False) & parsed


def _texts(column: Any) -> np.ndarray:
    """Rows whose cell is a non-empty text without only spaces (what the quick event reader takes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return np.zeros(len(column), dtype=bool)
    blank = pc.match_substring_regex(column, r"^\s*$")
    return pc.fill_null(pc.invert(blank), False).to_numpy(zero_copy_only=False)


def _cells(column: Any, name: str, bool_columns: frozenset[str]) -> list[Any]:
    """A column's values as the row reader passes them on: JSON items parsed, bools from text, Arrow → plain."""
    import pyarrow as pa

    values = column.to_pylist()
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if name == "items":
            return [_items(value) for value in values]
        if name in bool_columns:
            return [_bool_cell(value) for value in values]
        return values
    return [_plain(value) for value in values]


class _BadItems(str):
    """An ``items`` cell that is not JSON: the row is no event (its text says why)."""


def _items(value: Any) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as err:
        return _BadItems(f"'items' is not valid JSON: {err}")
    except RecursionError:
        return _BadItems("'items' is nested too deeply")


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


def _from_records(path: str, fmt: str, tz: Any, bool_columns: frozenset[str]) -> Columns:
    """JSON Lines (and CSV files Arrow cannot take row for row): read by ``History``, then as columns."""
    with History(path, tz, fmt=fmt, bool_columns=bool_columns) as history:
        records = list(history.records())
    names: list[str] = list(REQUIRED_COLUMNS)
    seen = set(names)
    for record in records:
        if record.event is not None:
            for key in record.event:
                if key not in seen:
                    seen.add(key)
                    names.append(key)
    count = len(records)
    errors = {i: record.error for i, record in enumerate(records) if record.event is None and record.error}
    cells: dict[str, list[Any]] = {name: [None] * count for name in names}
    for i, record in enumerate(records):
        if record.event is not None:
            for key, value in record.event.items():
                cells[key][i] = value
    rows = np.array([record.row for record in records], dtype=np.int64)
    instant = np.array([NO_INSTANT if r.instant is None else to_us(r.instant) for r in records], dtype=np.int64)
    # Every row goes through the event reader: JSON values come in every type, so nothing is plain.
    plain = np.zeros(count, dtype=bool)
    amount = np.zeros(count, dtype=np.int64)
    none = [None] * count
    return Columns(names, count, rows, instant, plain, amount, np.zeros(count, dtype=bool), cells["id"],
                   cells["type"], cells["customer"], cells.get("currency", none), errors, cells, bool_columns,
                   [()] * count, none, none, none, np.zeros(count, dtype=bool))


def is_bad_items(value: Any) -> bool:
    return isinstance(value, _BadItems)


def _name(customer: Any) -> str | None:
    """A customer as the event reader names it (text or a whole number), or None."""
    if isinstance(customer, bool) or not isinstance(customer, (str, int)):
        return None
    return str(customer)


def groups(columns: Columns, order: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The replay's units of work, and which one each row belongs to.

    A group is the row indexes (in time order) of one customer, or of the
    customers that share an event id. Rows without a customer the engine
    could read are a group each: the engine rejects them, and they change
    nothing.
    """
    customers, ids = columns.customers, columns.ids
    # Customers that share an event id are linked (union–find over customer names).
    parent: dict[str, str] = {}

    def find(name: str) -> str:
        while parent.get(name, name) != name:
            name = parent[name]
        return name

    owner_of: dict[str, str] = {}
    for index in range(columns.count):
        customer, event_id = _name(customers[index]), _name(ids[index])
        if customer is None or event_id is None:
            continue
        owner = owner_of.setdefault(event_id, customer)
        if owner != customer:
            a, b = find(owner), find(customer)
            if a != b:
                parent[max(a, b)] = min(a, b)
    buckets: dict[str, list[int]] = {}
    loose: list[list[int]] = []
    for index in order.tolist():
        customer = _name(customers[index])
        if customer is None:
            loose.append([index])
            continue
        buckets.setdefault(find(customer) if parent else customer, []).append(index)
    found = [np.array(members, dtype=np.int64) for members in (*loose, *buckets.values())]
    group_of = np.zeros(columns.count, dtype=np.int64)
    for number, members in enumerate(found):
        group_of[members] = number
    return found, group_of


def group_key(columns: Columns, group: np.ndarray) -> str:
    """What decides a group's shard: its first row's customer (every row of a group goes to one shard)."""
    return _name(columns.customers[int(group[0])]) or f"row {int(columns.rows[int(group[0])])}"


__all__ = ["Columns", "NO_INSTANT", "group_key", "groups", "is_bad_items", "load"]
