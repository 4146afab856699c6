"""A CSV history streamed into customer shards on disk, so a replay holds one shard at a time.

``partition(path, tz, …) -> Spilled | None`` reads a CSV file in blocks
(Arrow's streaming reader) and writes each block's rows to one of
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
whole, as before. It gives up too whenever the whole-file reader would not
take the file row for row (an irregular row, an over-long cell, a repeated
column, bytes that are not UTF-8): ``columns.load`` then reads it the way
it always has.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import os
import shutil
import tempfile
from typing import Any

import numpy as np

from poletti.interpreter.simulate.columns import (NO_INSTANT, Columns, _from_table, _has_long_cells, _text_bytes,
                                                 instants)
from poletti.interpreter.simulate.history import CsvDialect, HistoryError, _require_columns, csv_dialect

SHARD_BYTES = 4 << 20  # CSV bytes per shard (about 60,000 rows of a CDNOW-like history)
BLOCK_BYTES = 1 << 20  # CSV bytes per block read
HELD_BYTES = 8 << 20  # rows held back for the shard files before they are written (see ``ShardWriters``)
SPLIT_BYTES = 1 << 20  # a smaller file is read by one process
_PAIR = np.dtype([("id", "<u8"), ("shard", "<i8")])  # an id file's entries
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
    """Shards for a file: enough that each holds about ``SHARD_BYTES`` of it, and a multiple of the workers."""
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
              crew: Any = None, dialect: CsvDialect | None = None) -> Spilled | None:
    """Stream a CSV file into ``shards`` customer shards (see the module docstring); None: read it whole.

    With ``parts`` > 1 and a ``crew`` (``crew.Crew``: this process and forked ones), the file's byte
    ranges are read side by side. ``dialect``: the file's delimiter and decimal mark (None: found).
    """
    dialect = dialect or csv_dialect(path)
    names = header(path, dialect)
    if names is None or "friend" in names:
        # (Referrals join customers that a hash of the customer would put in two shards: read the file whole,
        # where ``columns.arrange`` keeps each link component in one group.)
        return None
    folder = tempfile.mkdtemp(prefix="poletti-simulate-")
    try:
        ranges = byte_ranges(path, parts if crew is not None else 1, dialect.delimiter)
        tasks = [(path, names, tz, shards, until, folder, k, a, b, dialect) for k, (a, b) in enumerate(ranges)]
        found = crew.map(_read_part_task, tasks) if len(tasks) > 1 else [_read_part_task(tasks[0])]
        if any(part is None for part in found) or _any_shared_ids(folder, shards, len(found), crew, parts):
            shutil.rmtree(folder, ignore_errors=True)
            return None
        spilled = Spilled(folder, names, shards, found)  # type: ignore[arg-type]
        spilled.decimal_comma = dialect.decimal_comma
        return spilled
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _read_part_task(task: tuple[Any, ...]) -> Part | None:
    return read_part(*task)


def read_part(path: str, names: list[str], tz: Any, shards: int, until: int | None, folder: str, number: int,
              start: int, stop: int, dialect: CsvDialect = CsvDialect()) -> Part | None:
    """Read bytes ``start:stop`` of the file (the first part: with the header) into the part's shard files.

    Row numbers are the part's own (1, 2, …): ``load_shard`` adds the rows of the parts before. None: a row
    Arrow cannot take as the whole-file reader would (the caller then reads the file whole).
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.ipc as ipc

    from poletti.interpreter.simulate import arrow_functions as pc

    irregular: list[int] = []

    def invalid(row: Any) -> str:
        irregular.append(row.number)
        return "skip"

    part = Part(shards)
    writers: list[Any] = []
    sinks: list[Any] = []
    try:
        data = _FileRange(path, start, stop)
        sinks.append(data)
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
        schema = reader.schema.append(pa.field(_ROW, pa.int64())).append(pa.field(_INSTANT, pa.int64())) \
            .append(pa.field(_QUICK, pa.bool_()))
        id_files: list[Any] = []
        for shard in range(shards):
            sink = pa.OSFile(shard_path(folder, shard, number), "wb")
            sinks.append(sink)
            writers.append(ipc.new_stream(sink, schema))
            id_files.append(open(ids_path(folder, shard, number), "wb"))
            sinks.append(id_files[-1])
        held = ShardWriters(writers, id_files)
        for batch in reader:
            if irregular or _has_long_cells(batch):
                return _give_up(writers, sinks)
            count = batch.num_rows
            if count == 0:
                continue
            rows = np.arange(part.count + 1, part.count + count + 1, dtype=np.int64)
            part.count += count
            instant, quick = instants(batch.column("at"), tz)
            if dialect.decimal_comma and "amount" in names:  # a decimal point: no event, no instant (as read whole)
                unclear = pc.fill_null(pc.match_substring(batch.column("amount"), "."), False) \
                    .to_numpy(zero_copy_only=False)
                instant[unclear], quick[unclear] = NO_INSTANT, False
            known = instant[instant != NO_INSTANT]
            if known.size:
                if part.ordered and ((part.last is not None and int(known[0]) < part.last)
                                     or bool(np.any(np.diff(known) < 0))):
                    part.ordered = False
                if part.first is None:
                    part.first = int(known[0])
                part.last = int(known[-1])
            hashes, named = text_hash(batch.column("customer"))
            shard = np.where(named, (hashes % np.uint64(shards)).astype(np.int64), rows % shards)
            counted = instant != NO_INSTANT
            if until is not None:
                counted &= instant <= until
            order = np.argsort(shard, kind="stable")
            bounds = np.searchsorted(shard[order], np.arange(shards + 1))
            arrays = batch.columns + [pa.array(rows), pa.array(instant), pa.array(quick)]
            laid = pc.take(pa.RecordBatch.from_arrays(arrays, schema=schema), pa.array(order))
            for k in range(shards):
                lo, hi = int(bounds[k]), int(bounds[k + 1])
                if hi > lo:
                    held.add_rows(k, laid.slice(lo, hi - lo))
                    part.rows[k] += hi - lo
                    mine = order[lo:hi]
                    times = instant[mine][counted[mine]]
                    if times.size:
                        latest = int(times.max())
                        previous = part.latest[k]
                        part.latest[k] = latest if previous is None else max(previous, latest)
            id_hashes, has_id = text_hash(batch.column("id"))
            linkable = np.flatnonzero(has_id & named)
            if linkable.size:
                pairs = np.empty(linkable.size, dtype=_PAIR)
                pairs["id"], pairs["shard"] = id_hashes[linkable], shard[linkable]
                where = (pairs["id"] % np.uint64(shards)).astype(np.int64)
                pairs = pairs[np.argsort(where, kind="stable")]
                bounds = np.searchsorted(np.sort(where), np.arange(shards + 1))
                for k in range(shards):
                    lo, hi = int(bounds[k]), int(bounds[k + 1])
                    if hi > lo:
                        held.add_ids(k, pairs[lo:hi])
        if irregular:
            return _give_up(writers, sinks)
        held.flush()
        for writer in writers:
            writer.close()
        for sink in sinks:
            sink.close()
        return part
    except (pa.ArrowInvalid, pa.ArrowException, UnicodeDecodeError):
        return _give_up(writers, sinks)
    except OSError as err:
        _give_up(writers, sinks)
        raise HistoryError(f"cannot read '{path}': {getattr(err, 'strerror', None) or err}") from None
    except BaseException:
        _give_up(writers, sinks)
        raise


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


__all__ = ["Part", "Spilled", "byte_ranges", "header", "load_shard", "partition", "read_part", "release_unused",
           "shard_count", "text_hash"]
