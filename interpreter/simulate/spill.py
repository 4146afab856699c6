"""A history streamed into customer shards on disk, so a replay holds one shard at a time.

``partition(path, tz, …) -> Spilled | None`` reads a CSV file in blocks
(Arrow's streaming reader; a Parquet file or folder in batches of rows,
``partition_parquet``; a JSON Lines file record by record through the row
reader, ``partition_records``) and writes each block's rows to one of
``shards`` temporary Arrow files by a hash of the customer, with each row's
number, instant and whether its instant has the quick strict form (so a
shard is read back as the very ``Columns`` the whole file would have given
its rows, see ``load_shard``). Memory holds a block at a time, not the
history; a shard is a fraction of it.

The replay then takes the shards one by one (or shares them out over
forked workers, which read their own shards): shards hold disjoint
customers, and every figure is a sum over customers.

Customers who share an event id must be replayed together (only time
order says which of two rows is the duplicate); the pass also writes each
row's id and customer to files partitioned by the id, and if any id is
shared by two customers, it gives up (``None``): the caller reads the file
whole, as before. With ``by_account`` (a program that pools points by
account, whose contacts share one pool) every row of a contact goes to the
shard of their account: a first pass reads only the customer and account
columns and finds each contact's account (``account_links``; a contact who
names two joins them), then every row of a contact goes to their account's
shard (rows without an account too), any other to the customer's own. The
id files then also hold each row's customer, as a safety net: a customer
whose rows went to two shards gives up as a shared id does. It gives up
too whenever the whole-file reader would not take the file row for row (an
irregular row, an over-long cell, a repeated column, bytes that are not
UTF-8): ``columns.load`` then reads it the way it always has.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import itertools
import os
import shutil
import tempfile
import zlib
from typing import Any

import numpy as np

from poletti.engine.timecalc import to_us
from poletti.interpreter.simulate.columns import (NO_INSTANT, PARQUET_SUFFIXES, Columns, _from_table, _has_long_cells,
                                                 _is_text, _name, _text_bytes, blank_rows, columns_of_records,
                                                 dataset_files, instants, is_blank_tail, record_names,
                                                 trailing_blank_lines)
from poletti.interpreter.simulate.history import (REQUIRED_COLUMNS, CsvDialect, History, HistoryError, Record,
                                                 _require_columns, csv_dialect, detect_format)

SHARD_BYTES = 4 << 20  # CSV bytes per shard (about 60,000 rows of a CDNOW-like history)
BLOCK_BYTES = 1 << 20  # CSV bytes per block read
HELD_BYTES = 8 << 20  # rows held back for the shard files before they are written (see ``ShardWriters``)
SPLIT_BYTES = 1 << 20  # a smaller file is read by one process
_PAIR = np.dtype([("id", "<u8"), ("shard", "<i8")])  # an id file's entries
# Mixed into a customer's hash where the id files also hold customers (``by_account``), so that an event id
# and a customer of one text are not taken for one id.
_CUSTOMER_SALT = np.uint64(0x5BD1E9955BD1E995)
_ROW, _INSTANT, _QUICK = "__poletti_row", "__poletti_instant", "__poletti_quick"


class Part:
    """What reading one part (a byte range) of the file found: rows, time order, rows and latest instant by shard."""

    def __init__(self, shards: int) -> None:
        self.count = 0
        self.ordered = True  # its rows are in time order (rows without an instant aside)
        self.first: int | None = None  # its first and last known instants
        self.last: int | None = None
        self.rows = [0] * shards
        self.latest: list[int | None] = [None] * shards  # per shard: its latest instant (up to `until`)

    def saw(self, instant: np.ndarray, shard: np.ndarray, until: int | None) -> None:
        """Rows read, in file order after those before: their instants (``NO_INSTANT``: none) and shards."""
        self.count += len(instant)
        self.rows = (np.array(self.rows) + np.bincount(shard, minlength=len(self.rows))).tolist()
        known = instant[instant != NO_INSTANT]
        if known.size:
            if self.ordered and ((self.last is not None and int(known[0]) < self.last)
                                 or bool(np.any(np.diff(known) < 0))):
                self.ordered = False
            if self.first is None:
                self.first = int(known[0])
            self.last = int(known[-1])
        counted = instant != NO_INSTANT
        if until is not None:
            counted &= instant <= until
        if counted.any():
            latest = np.full(len(self.latest), NO_INSTANT, dtype=np.int64)
            np.maximum.at(latest, shard[counted], instant[counted])
            for k in np.flatnonzero(latest != NO_INSTANT).tolist():
                previous = self.latest[k]
                self.latest[k] = int(latest[k]) if previous is None else max(previous, int(latest[k]))


class Spilled:
    """The shards of one history on disk (a temporary folder; ``close`` removes it).

    The file is read in ``parts`` (byte ranges, on several processes), each writing its rows of shard k to
    a file of its own; a shard is the files of every part, in part order (so its rows stay in file order).
    """

    def __init__(self, folder: str, names: list[str], shards: int, parts: list[Part]) -> None:
        self.folder = folder
        self.names = names
        self.shards = shards
        self.decimal_comma = False  # the file's amounts are written 12,50 (``load_shard`` reads them so)
        self.records = False  # the shards hold ``History`` records (of JSON Lines), not Arrow rows
        self.parts = len(parts)
        self.offsets = [sum(part.count for part in parts[:k]) for k in range(len(parts))]  # rows before a part
        self.count = sum(part.count for part in parts)
        self.rows = [sum(part.rows[k] for part in parts) for k in range(shards)]
        self.latest: list[int | None] = []
        for k in range(shards):
            known = [part.latest[k] for part in parts if part.latest[k] is not None]
            self.latest.append(max(known) if known else None)  # type: ignore[type-var]
        bounds = [(part.first, part.last) for part in parts if part.first is not None]
        self.time_ordered = all(part.ordered for part in parts) and all(
            a[1] <= b[0] for a, b in zip(bounds, bounds[1:]))  # type: ignore[operator]

    def path(self, shard: int, part: int) -> str:
        return shard_path(self.folder, shard, part)

    def latest_read(self, until: int | None) -> int | None:
        """The end a replay with workers takes first (µs): ``until``, else the latest instant read (the end
        of the replay unless the latest row is refused; None: no row has one)."""
        known = [instant for instant in self.latest if instant is not None]
        return until if until is not None else max(known) if known else None

    def largest_first(self) -> list[int]:
        """The shards that hold rows, the largest first: handed out so, to workers as they come free, the
        workers end within about the smallest shard of each other."""
        return sorted((k for k in range(self.shards) if self.rows[k]), key=lambda k: -self.rows[k])

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Spilled:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def shard_path(folder: str, shard: int, part: int) -> str:
    return os.path.join(folder, f"shard-{shard}-{part}.arrow")


def ids_path(folder: str, shard: int, part: int) -> str:
    return os.path.join(folder, f"ids-{shard}-{part}.bin")


def shard_count(path: str, workers: int) -> int:
    """Shards for a file: enough that each holds about ``SHARD_BYTES`` of it (of a Parquet file or folder,
    ``PARQUET_ROWS_PER_SHARD`` rows), and a multiple of the workers."""
    if is_parquet(path):
        shards = max(1, -(-parquet_rows(path) // PARQUET_ROWS_PER_SHARD))
    else:
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        shards = max(1, -(-size // SHARD_BYTES))
    workers = max(1, workers)
    return -(-shards // workers) * workers


def text_hash(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """A 64-bit hash of each text cell (the same text, the same hash, in every process), and which cells are text.

    Texts of up to 16 bytes (most ids and customers) are hashed from two words; longer ones byte by byte.
    """
    from poletti.interpreter.simulate import arrow_functions as pc

    count = len(column)
    if count == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=bool)
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    data, offsets = _text_bytes(column)
    starts, lengths = offsets[:-1], np.diff(offsets)
    padded = np.concatenate((data, np.zeros(16, dtype=np.uint8)))
    places = np.arange(16, dtype=np.int64)
    grid = padded[np.minimum(starts, len(data))[:, None] + places]
    grid[places[None, :] >= lengths[:, None]] = 0
    words = grid.view("<u8").reshape(count, 2)
    with np.errstate(over="ignore"):
        sums = words[:, 0] * np.uint64(0x9E3779B97F4A7C15) ^ (words[:, 1] + np.uint64(0x632BE59BD9B4E019)) \
            * np.uint64(0xC2B2AE3D27D4EB4F)
        long = np.flatnonzero(lengths > 16)
        if long.size:
            sums[long] = _long_hash(data, starts[long], lengths[long])
        sums = (sums + lengths.astype(np.uint64)) * np.uint64(0xFF51AFD7ED558CCD)
        sums ^= sums >> np.uint64(33)
        sums *= np.uint64(0xC4CEB9FE1A85EC53)
        sums ^= sums >> np.uint64(29)
    return sums, valid


def _long_hash(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Texts longer than 16 bytes hashed byte by byte (each byte weighted by its place)."""
    total = int(lengths.sum())
    where = np.repeat(starts, lengths) + np.arange(total, dtype=np.int64) - np.repeat(
        np.cumsum(lengths) - lengths, lengths)
    values = data[where].astype(np.uint64)
    position = (np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)).astype(np.uint64)
    with np.errstate(over="ignore"):
        mixed = (values + np.uint64(1)) * (position * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0xC2B2AE3D27D4EB4F))
        mixed ^= mixed >> np.uint64(29)
        return np.add.reduceat(mixed, np.cumsum(lengths) - lengths) ^ np.uint64(0x5851F42D4C957F2D)


def header(path: str, dialect: CsvDialect = CsvDialect()) -> list[str] | None:
    """The CSV file's column names (checked), or None when Arrow cannot take the file row for row."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            first = next(csv.reader(handle, delimiter=dialect.delimiter), None)
    except OSError as err:
        raise HistoryError(f"cannot read '{path}': {err.strerror or err}") from None
    except (UnicodeDecodeError, csv.Error):
        return None
    if not first:
        return None
    names = [column.strip() for column in first]
    _require_columns(names, path, "CSV header")
    if len(set(names)) != len(names) or any(name.startswith("__poletti_") for name in names):
        return None
    if dialect.decimal_comma and "items" in names:
        return None  # the row reader reads the items' prices
    return names


def byte_ranges(path: str, parts: int, delimiter: str = ",") -> list[tuple[int, int]]:
    """The file cut in up to ``parts`` byte ranges at line ends, the first one with the header.

    A line end inside a quoted cell is no row's end: a file with quotes is cut only where ``_record_ends``
    can tell (its quotes all well placed), else it is one range.
    """
    size = os.path.getsize(path)
    if parts <= 1 or size < SPLIT_BYTES:
        return [(0, size)]
    with open(path, "rb") as handle:  # (read, not mapped: a mapped file's pages count as the process's memory)
        header_end = _find(handle, b"\n", 0, size)
        targets = [max(size * k // parts, header_end) for k in range(1, parts)]
        # Only quotes up to the line end after the last target can put a cut inside a quoted cell (with none,
        # that line end and the ones before it end rows): a file without quotes is not scanned to its end.
        last_end = _find(handle, b"\n", targets[-1], size)
        if _find(handle, b'"', 0, size if last_end < 0 else last_end + 1) >= 0:
            ends = _record_ends(handle, size, targets, delimiter)
            if ends is None:
                return [(0, size)]
        else:
            ends = [_find(handle, b"\n", target, size) for target in targets]
        cuts = [0]
        for at in ends:
            if at < 0 or at + 1 >= size:
                break
            if at + 1 > cuts[-1]:
                cuts.append(at + 1)
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a] or [(0, size)]


_SCAN_BYTES = 1 << 20  # bytes read at a time to look for quotes (read, not mapped: a VM's page faults cost)


def _find(handle: Any, byte: bytes, start: int, stop: int) -> int:
    """The offset of the first ``byte`` in ``start:stop`` of the open file (-1: none), read a chunk at a time."""
    while start < stop:
        handle.seek(start)
        chunk = handle.read(min(_SCAN_BYTES, stop - start))
        if not chunk:
            break
        found = chunk.find(byte)
        if found >= 0:
            return start + found
        start += len(chunk)
    return -1


class _FileRange(io.RawIOBase):
    """Bytes ``start:stop`` of a file as a stream, read a block at a time.

    Read, not mapped: each page of a mapped file read stays in the process's
    resident memory until it is unmapped, so reading a history through a
    mapping made the process's peak memory the size of the file.
    """

    def __init__(self, path: str, start: int, stop: int) -> None:
        super().__init__()
        self._handle = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._handle.seek(start)
        self._left = stop - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._left)
        if wanted <= 0:
            return 0
        got = self._handle.readinto(memoryview(buffer)[:wanted]) or 0
        self._left -= got
        return got

    def close(self) -> None:
        self._handle.close()
        super().close()


def _record_ends(handle: Any, size: int, targets: list[int], delimiter: str) -> list[int] | None:
    """For each target offset (ascending), the first line end at or after it outside any quoted cell (-1:
    none); None when the file's quotes up to the last of them are not all well placed.

    Well placed: each quote that would open a quoted cell (the 1st, 3rd, … of the file) follows a
    delimiter, a line end, the file's start or a quote (the second of a doubled quote); each that would
    close one (2nd, 4th, …) comes before a delimiter, a line end, the file's end or a quote. Then a quote
    never stands inside an unquoted cell, and so the quotes before a byte are even in number exactly when
    the byte is outside a quoted cell, as Arrow and Python's csv read the file. A stray quote (``ab"c``)
    leaves the file uncut.
    """
    quote, newline = ord('"'), ord("\n")
    bounding = np.zeros(256, dtype=bool)  # by byte: a delimiter, a line end or a quote (one look-up a quote)
    bounding[[ord(delimiter), newline, 13, quote]] = True
    ends = [-1] * len(targets)
    pending = 0  # the first target without a line end yet
    parity = 0  # quotes before ``start``, modulo 2
    start = 0
    while start < size and pending < len(targets):
        stop = min(size, start + _SCAN_BYTES)
        lo, hi = max(start - 1, 0), min(stop + 1, size)  # one byte either side: a quote's neighbours
        handle.seek(lo)
        read = handle.read(hi - lo)
        # The chunk with a byte either side, a line end standing for the file's start and end (a quote there
        # is as after or before a line end): the byte before the chunk's byte i is the window's byte i, the
        # byte after it the window's byte i + 2.
        window = np.frombuffer((b"\n" if start == 0 else b"") + read + (b"\n" if stop == size else b""),
                               dtype=np.uint8)
        chunk = window[1:-1]
        quotes = np.flatnonzero(chunk == quote)
        if quotes.size:
            first = 1 if parity else 0  # the quotes that would open a cell: the 1st, 3rd, … of the file
            if not (bool(bounding[window[quotes[first::2]]].all())
                    and bool(bounding[window[quotes[1 - first::2] + 2]].all())):
                return None
        if targets[pending] < stop:  # (line ends are looked for only from the chunk of the next target on)
            lines = np.flatnonzero(chunk == newline)
            outside = lines[(parity + np.searchsorted(quotes, lines)) % 2 == 0] + start  # offsets in the file
            while pending < len(targets):
                found = int(np.searchsorted(outside, targets[pending]))
                if found == len(outside):
                    break  # in a later chunk
                ends[pending] = int(outside[found])
                pending += 1
        parity = (parity + quotes.size) % 2
        start = stop
    return ends


def partition(path: str, tz: Any, shards: int, until: int | None = None, *, parts: int = 1,
              crew: Any = None, dialect: CsvDialect | None = None, bool_columns: frozenset[str] = frozenset(),
              progress: Any = None, by_account: bool = False) -> Spilled | None:
    """Stream a CSV file into ``shards`` customer shards (see the module docstring); None: read it whole.

    With ``parts`` > 1 and a ``crew`` (``crew.Crew``: this process and forked ones), the file's byte
    ranges are read side by side. ``dialect``: the file's delimiter and decimal mark (None: found).
    A Parquet file, or a folder of them, goes to ``partition_parquet``, a JSON Lines file (its yes/no
    fields: ``bool_columns``; ``progress``: its reading's, which takes long) to ``partition_records``.
    ``by_account``: a contact's rows go to their account's shard (see the module docstring). Once the file
    is in its shards, ``progress("read", rows, rows)``.
    """
    links = None
    if by_account:
        links = account_links(path, tz, dialect, bool_columns, progress)
        if links is None:
            return None
    if is_parquet(path):
        spilled = partition_parquet(path, tz, shards, until, parts=parts, crew=crew, links=links)
    elif detect_format(path) == "jsonl":
        spilled = partition_records(path, tz, shards, until, bool_columns, progress, links)
    else:
        spilled = _partition_csv(path, tz, shards, until, parts, crew, dialect or csv_dialect(path), links)
    if spilled is not None and progress is not None:
        progress("read", spilled.count, spilled.count)
    return spilled


def _partition_csv(path: str, tz: Any, shards: int, until: int | None, parts: int, crew: Any, dialect: CsvDialect,
                   links: np.ndarray | None) -> Spilled | None:
    """``partition`` of a CSV file: its byte ranges read side by side (with a ``crew``) into the shards."""
    names = header(path, dialect)
    if names is None or "friend" in names:
        # (Referrals join customers that a hash of the customer would put in two shards: read the file whole,
        # where ``columns.arrange`` keeps each link component in one group.)
        return None
    folder = tempfile.mkdtemp(prefix="poletti-simulate-")
    try:
        ranges = byte_ranges(path, parts if crew is not None else 1, dialect.delimiter)
        tasks = [(path, names, tz, shards, until, folder, k, a, b, dialect, links)
                 for k, (a, b) in enumerate(ranges)]
        found = crew.map(_read_part_task, tasks) if len(tasks) > 1 else [_read_part_task(tasks[0])]
        return _spilled(folder, names, shards, found, crew, parts, dialect.decimal_comma)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _spilled(folder: str, names: list[str], shards: int, found: list[Part | None], crew: Any, parts: int,
             decimal_comma: bool = False) -> Spilled | None:
    """The shards the parts wrote, or None (the folder removed) if a part gave up or customers share an id."""
    if any(part is None for part in found) or _any_shared_ids(folder, shards, len(found), crew, parts):
        shutil.rmtree(folder, ignore_errors=True)
        return None
    spilled = Spilled(folder, names, shards, found)  # type: ignore[arg-type]
    spilled.decimal_comma = decimal_comma
    return spilled


# ------------------------------------------------------------------ Parquet

PARQUET_ROWS_PER_SHARD = 60_000  # (what ``SHARD_BYTES`` of a CDNOW-like CSV holds)
PARQUET_BATCH_ROWS = 65_536  # rows read at a time


def is_parquet(path: str) -> bool:
    """A Parquet file (by its name) or a folder (of Parquet files)."""
    if os.path.isdir(path):
        return True
    return os.path.splitext(path)[1].lower() in PARQUET_SUFFIXES


def _row_groups(path: str) -> tuple[Any, list[tuple[str, int, int]]] | None:
    """The schema shared by a Parquet file or every file of a folder, and their row groups in row order as
    (file, row group, rows); None when they cannot be streamed as one (the whole read then says why)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        files = dataset_files(path) if os.path.isdir(path) else [path]
        schema = None
        groups = []
        for file in files:
            metadata = pq.ParquetFile(file)
            if schema is None:
                schema = metadata.schema_arrow
            elif not metadata.schema_arrow.equals(schema):  # (read whole, their columns are unified)
                return None
            groups += [(file, g, metadata.metadata.row_group(g).num_rows) for g in range(metadata.num_row_groups)]
    except (OSError, HistoryError, pa.ArrowException, ValueError):
        return None
    return schema, groups


def parquet_rows(path: str) -> int:
    """The rows of a Parquet file or folder, from its metadata (0 if it cannot be read)."""
    found = _row_groups(path)
    return 0 if found is None else sum(rows for _, _, rows in found[1])


def partition_parquet(path: str, tz: Any, shards: int, until: int | None = None, *, parts: int = 1,
                      crew: Any = None, links: np.ndarray | None = None) -> Spilled | None:
    """A Parquet file (or a folder of them, in name order) streamed into customer shards, as ``partition``
    does a CSV file: a batch of rows at a time, with the file's own column types. The parts are runs of
    row groups, read side by side with a ``crew``. None: read it whole instead (the files' columns differ,
    ``id`` or ``customer`` is not text, a column is missing, or there are referrals)."""
    found = _row_groups(path)
    if found is None:
        return None
    schema, groups = found
    names = list(schema.names)
    if not groups:  # (no rows: the whole read is as quick)
        return None
    if "friend" in names or any(name not in names for name in REQUIRED_COLUMNS) or len(set(names)) < len(names):
        return None
    if not (_is_text(schema.field("id").type) and _is_text(schema.field("customer").type)):
        return None
    if links is not None and "account" in names and not _is_text(schema.field("account").type):
        return None
    runs = _runs_of(groups, parts if crew is not None else 1)
    folder = tempfile.mkdtemp(prefix="poletti-simulate-")
    try:
        tasks = [(run, tz, shards, until, folder, k, links) for k, run in enumerate(runs)]
        found_parts = crew.map(_read_parquet_part_task, tasks) if len(tasks) > 1 else \
            [_read_parquet_part_task(task) for task in tasks]
        return _spilled(folder, names, shards, found_parts, crew, parts)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _runs_of(groups: list[tuple[str, int, int]], parts: int) -> list[list[tuple[str, int, int]]]:
    """Row groups cut into at most ``parts`` runs of about equal rows, in order (a part's rows follow the last's)."""
    total = sum(rows for _, _, rows in groups)
    runs: list[list[tuple[str, int, int]]] = [[]]
    done = 0
    for group in groups:
        if runs[-1] and len(runs) < parts and done >= total * len(runs) / parts:
            runs.append([])
        runs[-1].append(group)
        done += group[2]
    return runs


def _read_parquet_part_task(task: tuple[Any, ...]) -> Part | None:
    return read_parquet_part(*task)


def read_parquet_part(run: list[tuple[str, int, int]], tz: Any, shards: int, until: int | None, folder: str,
                      number: int, links: np.ndarray | None = None) -> Part | None:
    """Row groups ``run`` (file, row group, rows) read into part ``number``'s shard files, batch by batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: PartWriter | None = None
    try:
        for file, files_groups in itertools.groupby(run, key=lambda group: group[0]):
            # Without pre_buffer=False, Arrow keeps what it read ahead: 260 MiB more over a 10M-event file.
            reader = pq.ParquetFile(file, pre_buffer=False)
            if writer is None:
                writer = PartWriter(folder, number, shards, reader.schema_arrow, tz, until, links=links)
            for batch in reader.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False,
                                             row_groups=[g for _, g, _ in files_groups]):
                writer.add(batch)
        if writer is None:  # (a file of no row groups)
            return Part(shards)
        return writer.finish()
    except (pa.ArrowException, ValueError, OSError):
        return writer.abandon() if writer is not None else None
    except BaseException:
        if writer is not None:
            writer.abandon()
        raise


# ----------------------------------------------------------------- accounts

_LINK = np.dtype([("customer", "<u8"), ("account", "<u8")])  # a contact's hash and their account's


def account_links(path: str, tz: Any, dialect: CsvDialect | None = None, bool_columns: frozenset[str] = frozenset(),
                  progress: Any = None) -> np.ndarray | None:
    """Each contact's shard key, as hashes (``text_hash``'s; of JSON Lines, ``_text_hash64``'s), sorted by
    customer: their account's (a contact whose rows name two accounts — the second is refused, but which
    comes first only the replay knows — joins the two, and every contact of either, under one key). None:
    the file cannot be read so (the whole read says why). Only the two columns are read (JSON Lines: every
    record, through ``History``)."""
    import pyarrow as pa

    found: list[np.ndarray] = []
    try:
        for customers, accounts in _customer_account_columns(path, tz, dialect, bool_columns, progress):
            if isinstance(customers, np.ndarray):  # (hashes already: JSON Lines)
                pairs = np.empty(len(customers), dtype=_LINK)
                pairs["customer"], pairs["account"] = customers, accounts
            else:
                customer_hashes, named = text_hash(customers)
                account_hashes, has_account = text_hash(accounts)
                if len(accounts):
                    has_account &= np.diff(_text_bytes(accounts)[1]) > 0  # ("": no account)
                keep = named & has_account
                pairs = np.empty(int(keep.sum()), dtype=_LINK)
                pairs["customer"], pairs["account"] = customer_hashes[keep], account_hashes[keep]
            if pairs.size:
                found.append(np.unique(pairs))
    except (pa.ArrowException, ValueError, UnicodeDecodeError, HistoryError):
        return None
    links = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=_LINK)
    again = links["customer"][1:] == links["customer"][:-1]  # a contact's second account (sorted: one run each)
    if not again.any():
        return links
    # Accounts one contact names are one key (a union of them, the few there are: rows in error).
    parent: dict[int, int] = {}

    def root(account: int) -> int:
        while parent.get(account, account) != account:
            account = parent[account]
        return account

    for place in np.flatnonzero(again).tolist():
        a, b = root(int(links["account"][place])), root(int(links["account"][place + 1]))
        if a != b:
            parent[max(a, b)] = min(a, b)
    joined = np.array(sorted(parent), dtype=np.uint64)
    roots = np.array([root(account) for account in joined.tolist()], dtype=np.uint64)
    place = np.minimum(np.searchsorted(joined, links["account"]), joined.size - 1)
    merged = joined[place] == links["account"]
    links["account"] = np.where(merged, roots[place], links["account"])
    return links[np.concatenate(([True], ~again))]  # each contact once (their accounts share a key now)


def _customer_account_columns(path: str, tz: Any, dialect: CsvDialect | None, bool_columns: frozenset[str],
                              progress: Any) -> Any:
    """The file's customer and account columns, a batch at a time (none: the file has no account column)."""
    import pyarrow as pa

    if is_parquet(path):
        import pyarrow.parquet as pq

        found = _row_groups(path)
        if found is None or "account" not in found[0].names or "customer" not in found[0].names:
            return
        for file, files_groups in itertools.groupby(found[1], key=lambda group: group[0]):
            reader = pq.ParquetFile(file, pre_buffer=False)
            for batch in reader.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=["customer", "account"],
                                             use_threads=False, row_groups=[g for _, g, _ in files_groups]):
                if not (_is_text(batch.column(0).type) and _is_text(batch.column(1).type)):
                    raise ValueError("a customer or account column that is not text")
                yield batch.column(0), batch.column(1)
        return
    if detect_format(path) == "jsonl":
        customers: list[int] = []
        accounts: list[int] = []
        with History(path, tz, fmt="jsonl", bool_columns=bool_columns) as history:
            for record in history.records(progress):
                event = record.event
                if event is None:
                    continue
                customer, account = _name(event.get("customer")), _name(event.get("account"))
                if customer is not None and account:
                    customers.append(_text_hash64(customer))
                    accounts.append(_text_hash64(account))
                if len(customers) >= RECORDS_HELD:
                    yield np.array(customers, dtype=np.uint64), np.array(accounts, dtype=np.uint64)
                    customers, accounts = [], []
        if customers:
            yield np.array(customers, dtype=np.uint64), np.array(accounts, dtype=np.uint64)
        return
    import pyarrow.csv as pcsv

    dialect = dialect or csv_dialect(path)
    names = header(path, dialect)
    if names is None or "account" not in names or "customer" not in names:
        return
    reader = pcsv.open_csv(
        path, read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, block_size=BLOCK_BYTES,
                                            encoding="utf8"),
        parse_options=pcsv.ParseOptions(delimiter=dialect.delimiter, invalid_row_handler=lambda _row: "skip",
                                        newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(include_columns=["customer", "account"],
                                            column_types={"customer": pa.string(), "account": pa.string()},
                                            strings_can_be_null=True, null_values=[""],
                                            quoted_strings_can_be_null=True))
    for batch in reader:
        yield batch.column(0), batch.column(1)


def keys_of(customers: np.ndarray, links: np.ndarray) -> np.ndarray:
    """The shard keys of rows of these customers (hashes): a contact's from ``links`` (every row of theirs,
    with an account or without), anyone else's their own."""
    if not links.size:
        return customers
    place = np.minimum(np.searchsorted(links["customer"], customers), links.size - 1)
    contact = links["customer"][place] == customers
    return np.where(contact, links["account"][place], customers)


def _key_of(customer: str, links: np.ndarray) -> int:
    """``keys_of`` for one JSON Lines record."""
    return int(keys_of(np.array([_text_hash64(customer)], dtype=np.uint64), links)[0])


# --------------------------------------------------------------- JSON Lines

RECORDS_HELD = 50_000  # records held back for the shard files before they are written


def records_path(folder: str, shard: int, part: int) -> str:
    return os.path.join(folder, f"records-{shard}-{part}.pickle")


def partition_records(path: str, tz: Any, shards: int, until: int | None = None,
                      bool_columns: frozenset[str] = frozenset(), progress: Any = None,
                      links: np.ndarray | None = None) -> Spilled | None:
    """A JSON Lines file streamed into customer shards, as ``partition`` does a CSV file, a record at a time.

    ``History`` reads it, as it does when the file is read whole (JSON values come in every type, so every
    row goes the careful way); the shard files hold its records (pickled: written and read by this replay
    alone, in its own temporary folder). One process reads the file; ``progress("scan", bytes, size)`` as it
    goes. None: read it whole instead (there are referrals, or customers share an event id; with ``links``,
    or a customer's rows went to two shards). ``links``: each contact's account (``account_links``), for a
    program that pools points by account: a contact's records go to their account's shard.
    """
    import pickle

    part = Part(shards)
    names = list(REQUIRED_COLUMNS)
    known = set(names)
    folder = tempfile.mkdtemp(prefix="poletti-simulate-")
    files: list[Any] = []
    try:
        files = [open(records_path(folder, k, 0), "wb") for k in range(shards)]
        id_files = [open(ids_path(folder, k, 0), "wb") for k in range(shards)]
        files += id_files
        held: list[list[Any]] = [[] for _ in range(shards)]
        held_ids: list[list[tuple[int, int]]] = [[] for _ in range(shards)]
        seen_instants: list[int] = []  # the instants and shards of the records since the last flush
        seen_shards: list[int] = []

        def flush() -> None:
            part.saw(np.array(seen_instants, dtype=np.int64), np.array(seen_shards, dtype=np.int64), until)
            seen_instants.clear()
            seen_shards.clear()
            for k in range(shards):
                if held[k]:
                    pickle.dump(held[k], files[k], protocol=pickle.HIGHEST_PROTOCOL)
                    held[k] = []
                if held_ids[k]:
                    np.array(held_ids[k], dtype=_PAIR).tofile(id_files[k])
                    held_ids[k] = []

        with History(path, tz, fmt="jsonl", bool_columns=bool_columns) as history:
            for record in history.records(progress):
                event = record.event
                customer = id_name = account = None
                if event is not None:
                    if "friend" in event:  # (referrals join customers of two shards: read whole, see ``partition``)
                        return _give_up_folder(folder, files)
                    if not known.issuperset(event):
                        record_names([record], names)
                        known.update(names)
                    customer, id_name = _name(event.get("customer")), _name(event.get("id"))
                if customer is None:
                    shard = record.row % shards
                elif links is None:
                    shard = _shard_of(customer, shards)
                else:  # (by the 64-bit hashes ``account_links`` gives)
                    shard = _key_of(customer, links) % shards
                instant = NO_INSTANT if record.instant is None else to_us(record.instant)
                seen_instants.append(instant)
                seen_shards.append(shard)
                held[shard].append((record.row, event, record.error, instant))  # (an instant as a number
                # pickles in a tenth of the time of a datetime: pickling was a fifth of the whole replay's time)
                if id_name is not None and customer is not None:
                    id_hash = _text_hash64(id_name)
                    held_ids[id_hash % shards].append((id_hash, shard))
                if links is not None and customer is not None:  # (a customer in two shards gives up, as an id)
                    customer_hash = _text_hash64(customer) ^ int(_CUSTOMER_SALT)
                    held_ids[customer_hash % shards].append((customer_hash, shard))
                if len(seen_instants) >= RECORDS_HELD:
                    flush()
        flush()
        for handle in files:
            handle.close()
        spilled = _spilled(folder, names, shards, [part], None, 1)
        if spilled is not None:
            spilled.records = True
        return spilled
    except BaseException:
        _give_up_folder(folder, files)
        raise


def _give_up_folder(folder: str, files: list[Any]) -> None:
    for handle in files:
        handle.close()
    shutil.rmtree(folder, ignore_errors=True)
    return None


def _shard_of(text: str, shards: int) -> int:
    """A customer's shard: the same in every process and run (a CRC-32: two texts of one shard are fine)."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) % shards


def _text_hash64(text: str) -> int:
    """A 64-bit hash of an event id, the same in every process and run. Two ids of one hash in two shards
    send the history to the whole read, so it must be a real 64-bit hash: a pair of CRC-32s is not (CRC is
    linear: texts of one length that collide in one collide in the other), and 10 million ids gave up."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def held_records(spilled: Spilled, shard: int) -> list[tuple[int, Any, str | None, int]]:
    """A JSON Lines shard's records as ``partition_records`` wrote them: (row, event, error, instant µs)."""
    import pickle

    held: list[tuple[int, Any, str | None, int]] = []
    with open(records_path(spilled.folder, shard, 0), "rb") as handle:
        while True:
            try:
                held += pickle.load(handle)
            except EOFError:
                break
    return held


def _load_records(spilled: Spilled, shard: int, bool_columns: frozenset[str]) -> Columns:
    """A JSON Lines shard's records as ``Columns`` (see ``partition_records``)."""
    held = held_records(spilled, shard)
    records = [Record(row, event, error) for row, event, error, _ in held]
    instants = np.array([instant for _, _, _, instant in held], dtype=np.int64)
    columns = columns_of_records(records, spilled.names, bool_columns, instants)
    columns.time_ordered = spilled.time_ordered
    return columns


def _read_part_task(task: tuple[Any, ...]) -> Part | None:
    return read_part(*task)


def read_part(path: str, names: list[str], tz: Any, shards: int, until: int | None, folder: str, number: int,
              start: int, stop: int, dialect: CsvDialect = CsvDialect(), links: np.ndarray | None = None
              ) -> Part | None:
    """Read bytes ``start:stop`` of the file (the first part: with the header) into the part's shard files.

    Row numbers are the part's own (1, 2, …): ``load_shard`` adds the rows of the parts before. None: a row
    Arrow cannot take as the whole-file reader would (the caller then reads the file whole).
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    irregular: list[int] = []

    def invalid(row: Any) -> str:
        irregular.append(row.number)
        return "skip"

    data = None
    writer: PartWriter | None = None
    trailing: int | None = None  # the blank lines that end the file (looked up when a row of no cell is read)
    ended = False  # blank lines were read that must end the file: a row after them is read whole
    try:
        data = _FileRange(path, start, stop)
        reader = pcsv.open_csv(
            data,
            # One thread: the blocks are taken in turn by this thread's own work (hashing, sorting, writing),
            # which Arrow's read-ahead threads only contend with, and beside other workers they oversubscribe
            # the cores (measured: no faster alone, 10% slower with --workers 2).
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=1 if start == 0 else 0, encoding="utf8",
                                          block_size=BLOCK_BYTES, use_threads=False),
            parse_options=pcsv.ParseOptions(delimiter=dialect.delimiter, invalid_row_handler=invalid,
                                            ignore_empty_lines=False, newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(column_types={name: pa.string() for name in names},
                                                strings_can_be_null=True, null_values=[""],
                                                quoted_strings_can_be_null=True))
        writer = PartWriter(folder, number, shards, reader.schema, tz, until, dialect.decimal_comma, links)
        for batch in reader:
            if irregular or _has_long_cells(batch) or (ended and batch.num_rows):
                return writer.abandon()
            blank = blank_rows(batch)
            if blank.size:  # (blank lines that end the file are left out; other rows of no cell: read whole)
                if trailing is None:
                    trailing = trailing_blank_lines(path) if stop >= os.path.getsize(path) else 0
                if not is_blank_tail(blank, batch.num_rows, trailing):
                    return writer.abandon()
                batch, ended = batch.slice(0, batch.num_rows - blank.size), True
            writer.add(batch)
        if irregular:
            return writer.abandon()
        return writer.finish()
    except (pa.ArrowInvalid, pa.ArrowException, UnicodeDecodeError):
        return writer.abandon() if writer is not None else None
    except OSError as err:
        if writer is not None:
            writer.abandon()
        raise HistoryError(f"cannot read '{path}': {getattr(err, 'strerror', None) or err}") from None
    except BaseException:
        if writer is not None:
            writer.abandon()
        raise
    finally:
        if data is not None:
            data.close()


class PartWriter:
    """One part's shard files and id files, written block by block of the rows read (``add``).

    Each block's rows go to the shard of their customer (with ``links``, ``account_links``': of the
    customer's account, if they name one), with their row number (the part's own: 1, 2, …), instant and
    whether the instant has the quick strict form; each row's id hash goes to the id file of the id (see
    ``_shared_ids``; with ``links``, its customer's hash too). ``finish`` closes the files and says what the
    part held (``Part``).
    """

    def __init__(self, folder: str, number: int, shards: int, schema: Any, tz: Any, until: int | None,
                 decimal_comma: bool = False, links: np.ndarray | None = None) -> None:
        import pyarrow as pa
        import pyarrow.ipc as ipc

        self.part = Part(shards)
        self.shards, self.tz, self.until, self.decimal_comma = shards, tz, until, decimal_comma
        self.names = list(schema.names)
        self.links = links
        self.schema = schema.append(pa.field(_ROW, pa.int64())).append(pa.field(_INSTANT, pa.int64())) \
            .append(pa.field(_QUICK, pa.bool_()))
        self._sinks: list[Any] = []
        self._writers: list[Any] = []
        try:
            id_files: list[Any] = []
            for shard in range(shards):
                sink = pa.OSFile(shard_path(folder, shard, number), "wb")
                self._sinks.append(sink)
                self._writers.append(ipc.new_stream(sink, self.schema))
                id_files.append(open(ids_path(folder, shard, number), "wb"))
                self._sinks.append(id_files[-1])
        except BaseException:
            self.abandon()
            raise
        self._held = ShardWriters(self._writers, id_files)

    def add(self, batch: Any) -> None:
        import pyarrow as pa

        from poletti.interpreter.simulate import arrow_functions as pc

        part, shards = self.part, self.shards
        count = batch.num_rows
        if count == 0:
            return
        rows = np.arange(part.count + 1, part.count + count + 1, dtype=np.int64)
        instant, quick = instants(batch.column("at"), self.tz)
        if self.decimal_comma and "amount" in self.names:  # a decimal point: no event, no instant (as read whole)
            unclear = pc.fill_null(pc.match_substring(batch.column("amount"), "."), False) \
                .to_numpy(zero_copy_only=False)
            instant[unclear], quick[unclear] = NO_INSTANT, False
        hashes, named = text_hash(batch.column("customer"))
        keys = hashes if self.links is None else keys_of(hashes, self.links)
        shard = np.where(named, (keys % np.uint64(shards)).astype(np.int64), rows % shards)
        part.saw(instant, shard, self.until)
        order = np.argsort(shard, kind="stable")
        bounds = np.searchsorted(shard[order], np.arange(shards + 1))
        arrays = batch.columns + [pa.array(rows), pa.array(instant), pa.array(quick)]
        laid = pc.take(pa.RecordBatch.from_arrays(arrays, schema=self.schema), pa.array(order))
        for k in range(shards):
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            if hi > lo:
                self._held.add_rows(k, laid.slice(lo, hi - lo))
        id_hashes, has_id = text_hash(batch.column("id"))
        linkable = np.flatnonzero(has_id & named)
        pairs = np.empty(linkable.size, dtype=_PAIR)
        pairs["id"], pairs["shard"] = id_hashes[linkable], shard[linkable]
        if self.links is not None:  # and each customer's hash: a customer in two shards gives up, as a shared id does
            customers = np.empty(int(named.sum()), dtype=_PAIR)
            customers["id"], customers["shard"] = hashes[named] ^ _CUSTOMER_SALT, shard[named]
            pairs = np.concatenate((pairs, customers))
        if pairs.size:
            where = (pairs["id"] % np.uint64(shards)).astype(np.int64)
            pairs = pairs[np.argsort(where, kind="stable")]
            bounds = np.searchsorted(np.sort(where), np.arange(shards + 1))
            for k in range(shards):
                lo, hi = int(bounds[k]), int(bounds[k + 1])
                if hi > lo:
                    self._held.add_ids(k, pairs[lo:hi])

    def finish(self) -> Part:
        self._held.flush()
        for writer in self._writers:
            writer.close()
        for sink in self._sinks:
            sink.close()
        return self.part

    def abandon(self) -> None:
        """Close every file, on the way out of a part that is given up (the caller removes the folder)."""
        return _give_up(self._writers, self._sinks)


class ShardWriters:
    """A part's shard files and id files, written in few large pieces.

    A block of the file holds rows of every shard, so writing each block's
    share at once would leave each shard file in as many small pieces as
    the file has blocks (and every later step on its columns working piece
    by piece): each shard's rows and ids are held back until ``HELD_BYTES``
    of them are waiting, then written, one piece a shard.
    """

    def __init__(self, writers: list[Any], id_files: list[Any]) -> None:
        self.writers = writers
        self.id_files = id_files
        self.rows: list[list[Any]] = [[] for _ in writers]  # per shard: record batches held
        self.ids: list[list[np.ndarray]] = [[] for _ in id_files]  # per id file: (id, shard) pairs held
        self.held = 0  # bytes held

    def add_rows(self, shard: int, batch: Any) -> None:
        self.rows[shard].append(batch)
        self.held += batch.nbytes
        if self.held >= HELD_BYTES:
            self.flush()

    def add_ids(self, number: int, pairs: np.ndarray) -> None:
        self.ids[number].append(pairs)
        self.held += pairs.nbytes

    def flush(self) -> None:
        import pyarrow as pa

        for writer, held in zip(self.writers, self.rows):
            if held:
                writer.write_batch(pa.Table.from_batches(held).combine_chunks().to_batches()[0])
                held.clear()
        for handle, held in zip(self.id_files, self.ids):
            if held:
                np.concatenate(held).tofile(handle)
                held.clear()
        self.held = 0
        release_unused()


RELEASE_EVERY = 8  # calls of ``release_unused`` per actual release
_RELEASE_CALLS = itertools.count(1)


def release_unused() -> None:
    """Hand the memory held free back to the system, every ``RELEASE_EVERY`` calls (between shards, and
    between writes of the shard files): Arrow's allocator and the C library's keep what a step let go, in
    scattered pieces, and the process's peak crept up shard by shard (``--workers 2`` on a 10-million-event
    history: 218 MiB without handing back, 184 MiB with it). Not at every call: memory handed back is faulted
    in again by the next shard, which cost a few percent of a replay's time when it was done after each."""
    if next(_RELEASE_CALLS) % RELEASE_EVERY:
        return
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim`` (None elsewhere): numpy's arrays come from the C library's heap."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _give_up(writers: list[Any], sinks: list[Any]) -> None:
    for closing in writers + sinks:
        try:
            closing.close()
        except Exception:  # noqa: BLE001 - already giving up
            pass
    return None


def _any_shared_ids(folder: str, shards: int, parts: int, crew: Any = None, workers: int = 1) -> bool:
    """``_shared_ids`` of every id file, the files shared out over the ``crew``'s ``workers`` when there is
    one (the check sorts every row's id: a tenth of a second a million rows, which the workers share)."""
    if crew is None or workers < 2 or shards < 2:
        return _shared_ids(folder, range(shards), parts)
    tasks = [(folder, range(k, shards, workers), parts) for k in range(min(workers, shards))]
    return any(crew.map(_shared_ids_task, tasks))


def _shared_ids_task(task: tuple[str, range, int]) -> bool:
    return _shared_ids(*task)


def _shared_ids(folder: str, numbers: range, parts: int) -> bool:
    """Whether an event id may belong to customers of two shards (then they must be replayed together).

    Each id file holds (a hash of the id, the customer's shard) of every row of its ids. Customers of one
    shard who share an id are linked by ``columns.arrange`` in that shard; rows of one id hash in two shards
    are either customers of two shards sharing an id or two ids of one hash: either way the caller reads
    the history whole. ``numbers``: the id files to look at (the ids of one id file are in no other).
    """
    for k in numbers:
        pairs = np.concatenate([np.fromfile(ids_path(folder, k, part), dtype=_PAIR) for part in range(parts)])
        if pairs.size < 2:
            continue
        ids = np.sort(pairs["id"])
        if not bool(np.any(ids[1:] == ids[:-1])):  # every id once (the usual case)
            continue
        pairs = pairs[np.argsort(pairs["id"])]
        same_id = pairs["id"][1:] == pairs["id"][:-1]  # within a run of one id, two shards have a change
        if bool(np.any(same_id & (pairs["shard"][1:] != pairs["shard"][:-1]))):
            return True
    return False


def load_shard(spilled: Spilled, shard: int, tz: Any, bool_columns: frozenset[str]) -> Columns:
    """One shard's rows as ``Columns``, numbered as in the file, ordered as the whole history is."""
    if spilled.records:
        return _load_records(spilled, shard, bool_columns)
    import pyarrow as pa
    from poletti.interpreter.simulate import arrow_functions as pc
    import pyarrow.ipc as ipc

    tables = []
    for part in range(spilled.parts):
        table = ipc.open_stream(pa.memory_map(spilled.path(shard, part))).read_all()  # mapped while in use
        if spilled.offsets[part]:
            rows = pc.add(table.column(_ROW), spilled.offsets[part])
            table = table.set_column(table.schema.get_field_index(_ROW), _ROW, rows)
        tables.append(table)
    # One piece a column (the file holds a piece a flush of each part): Arrow's kernels then run once a column.
    table = (pa.concat_tables(tables) if len(tables) > 1 else tables[0]).combine_chunks()
    rows = table.column(_ROW).to_numpy().astype(np.int64)
    instant = table.column(_INSTANT).to_numpy().astype(np.int64)
    quick = table.column(_QUICK).to_numpy(zero_copy_only=False).astype(bool)
    table = table.select(spilled.names)
    columns = _from_table(table, tz, bool_columns, rows=rows, known=(instant, quick),
                          decimal_comma=spilled.decimal_comma)
    columns.time_ordered = spilled.time_ordered
    return columns


__all__ = ["Part", "PartWriter", "Spilled", "byte_ranges", "header", "is_parquet", "load_shard", "partition",
           "partition_parquet", "partition_records", "read_parquet_part", "read_part", "release_unused",
           "shard_count", "text_hash"]
