"""A CSV or Parquet history streamed into customer shards on disk (``spill``) adds up to the history read whole.

Small shards and blocks (the module's sizes, patched) make a small history
several shards and several byte ranges; the summary, the month series, the
customers' rows and the rejections must be those of the whole-file replay
(``columns.load``), which ``test_columnar`` checks against the
event-at-a-time replay.
"""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

import poletti
from poletti.interpreter.simulate import columnar, spill
from poletti.interpreter.simulate import columns as columns_module
from poletti.interpreter.simulate.columnar import simulate_file

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

import cdnow_history  # noqa: E402


def whole(program: Any, path: Path, **options: Any) -> Any:
    """The replay of the file read whole (the path before ``spill``)."""
    saved = columnar._spillable
    columnar._spillable = lambda _path: False
    try:
        return simulate_file(program, str(path), **options)
    finally:
        columnar._spillable = saved


def forbidden(what: str) -> Any:
    """A stand-in for a reader a test must not see called."""
    def called(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError(what)

    return called


def same(a: Any, b: Any) -> None:
    assert json.dumps(a.summary) == json.dumps(b.summary)
    assert list(a.customer_rows()) == list(b.customer_rows())
    assert a.new.months == b.new.months
    assert [vars(r) if hasattr(r, "__dict__") else r for r in a.rejections] == \
        [vars(r) if hasattr(r, "__dict__") else r for r in b.rejections]


@pytest.fixture
def small_shards(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Shards of a few KiB, blocks of 4 KiB, byte ranges from the first byte; the partitions made are listed."""
    monkeypatch.setattr(spill, "SHARD_BYTES", 4096)
    monkeypatch.setattr(spill, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(spill, "SPLIT_BYTES", 0)
    monkeypatch.setattr(spill, "HELD_BYTES", 8192)  # the shard files written in many pieces
    made: list[Any] = []
    partition = spill.partition

    def watched(*args: Any, **kwargs: Any) -> Any:
        made.append(partition(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(columnar, "partition", watched)
    return made


def cdnow_csv(path: Path, purchases: int = 600, seed: int = 2, messy: bool = False) -> Path:
    events = cdnow_history.generate(purchases, seed)
    if messy:
        rnd = random.Random(seed)
        events = [dict(e) for e in events]
        for i in rnd.sample(range(len(events) - 1), 10):  # out of time order
            events[i], events[i + 1] = events[i + 1], events[i]
        events.append(dict(events[5]))  # a duplicate of the same customer
        events.append(dict(events[7], id=events[7]["id"] + "b", at="1997-02-30T10:00:00-05:00"))  # no such day
        events.append(dict(events[9], id=events[9]["id"] + "c", at="1997-03-01"))  # a date alone: read slowly
        events.append(dict(events[11], id=events[11]["id"] + "d", amount="-3"))  # rejected
        events.append(dict(events[13], id=events[13]["id"] + "e", type="refund", original="nope"))
    with open(path, "w", newline="", encoding="utf-8") as stream:
        cdnow_history.write_csv(events, stream)
    return path


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("messy", [False, True])
def test_shards_add_up_to_the_whole_file(tmp_path: Path, small_shards: list[Any], workers: int,
                                         messy: bool) -> None:
    program = poletti.load(ROOT / "benchmarks" / "programs" / "cdnow.loyalty")
    path = cdnow_csv(tmp_path / "h.csv", messy=messy)
    expected = whole(program, path)
    got = simulate_file(program, str(path), workers=workers)
    assert small_shards and small_shards[-1] is not None and small_shards[-1].shards > 3
    assert small_shards[-1].parts == workers
    same(got, expected)
    assert got.reordered == messy
    if messy:
        assert got.summary["rejected"] > 0


@pytest.mark.parametrize("workers", [1, 2])
def test_shards_add_up_with_until_and_a_baseline(tmp_path: Path, small_shards: list[Any], workers: int) -> None:
    program = poletti.load(ROOT / "benchmarks" / "programs" / "cdnow.loyalty")
    baseline = poletti.load(ROOT / "examples" / "cafe" / "rules_v1.loyalty")  # EUR: rejects every USD purchase
    path = cdnow_csv(tmp_path / "h.csv", messy=True)
    for options in ({"until": "1997-09-15"}, {"baseline": program}, {"baseline": baseline},
                    {"effect_from": "1997-06-01"}):
        same(simulate_file(program, str(path), workers=workers, **options), whole(program, path, **options))
    assert all(made is not None for made in small_shards)


@pytest.mark.parametrize("workers", [1, 3])
def test_the_cafe_history_in_shards(small_shards: list[Any], workers: int) -> None:
    root = ROOT / "examples" / "cafe"
    new, old = poletti.load(root / "rules_v2.loyalty"), poletti.load(root / "rules_v1.loyalty")
    got = simulate_file(new, str(root / "history.csv"), baseline=old, workers=workers)
    same(got, whole(new, root / "history.csv", baseline=old))
    assert small_shards[-1] is not None and small_shards[-1].shards > 1


def test_an_id_two_customers_share_reads_the_file_whole(tmp_path: Path, small_shards: list[Any]) -> None:
    program = poletti.load(ROOT / "benchmarks" / "programs" / "cdnow.loyalty")
    path = cdnow_csv(tmp_path / "h.csv")
    with open(path, newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    customers = sorted({row[2] for row in rows[1:]})
    shard_of = {c: int(spill.text_hash(__import__("pyarrow").array([c]))[0][0] % 8) for c in customers}
    other = next(c for c in customers if shard_of[c] != shard_of[rows[1][2]])
    rows.append([rows[1][0], "purchase", other, "1998-06-01T10:00:00-04:00", "12.00", "USD", "", "", ""])
    with open(path, "w", newline="", encoding="utf-8") as stream:
        csv.writer(stream).writerows(rows)
    got = simulate_file(program, str(path))
    assert small_shards == [None]  # given up: read whole
    same(got, whole(program, path))


def test_byte_ranges_cut_at_line_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spill, "SPLIT_BYTES", 0)
    path = tmp_path / "h.csv"
    path.write_bytes(b"id,type,customer,at\n" + b"".join(b"e%d,visit,c%d,2026-01-01T00:00:00Z\r\n" % (i, i)
                                                         for i in range(100)))
    data = path.read_bytes()
    ranges = spill.byte_ranges(str(path), 4)
    assert len(ranges) == 4 and ranges[0][0] == 0 and ranges[-1][1] == len(data)
    assert all(a[1] == b[0] and data[b[0] - 1:b[0]] == b"\n" for a, b in zip(ranges, ranges[1:]))
    head, rest = data.split(b"\n", 1)
    path.write_bytes(head + b'\ne100,visit,c100 "b",2026-01-01T00:00:00Z\n' + rest)  # a stray quote: one range
    assert spill.byte_ranges(str(path), 4) == [(0, path.stat().st_size)]
    # Quotes after the line end that follows the last cut cannot move a cut: the file is cut as without them
    # (and is not scanned to its end for them).
    path.write_bytes(data + b'e100,visit,c100 "b",2026-01-01T00:00:00Z\n')
    assert spill.byte_ranges(str(path), 4) == ranges[:-1] + [(ranges[-1][0], path.stat().st_size)]


def test_byte_ranges_of_a_file_with_quotes_cut_outside_quoted_cells(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spill, "SPLIT_BYTES", 0)
    monkeypatch.setattr(spill, "_SCAN_BYTES", 64)  # quotes and line ends across scan windows too
    path = tmp_path / "h.csv"
    # Every row's items cell is quoted and holds line ends and doubled quotes: no cut may fall inside one.
    rows = [b'e%d,purchase,c%d,"[{""sku"":\n""a,%d""}]\n\n",x\n' % (i, i, i) for i in range(60)]
    header = b'id,type,customer,items,note\n'
    path.write_bytes(header + b"".join(rows))
    data = path.read_bytes()
    starts = {len(header)}  # where each row starts
    for row in rows:
        starts.add(max(starts) + len(row))
    for parts in (2, 3, 5):
        ranges = spill.byte_ranges(str(path), parts)
        assert len(ranges) == parts and ranges[0][0] == 0 and ranges[-1][1] == len(data)
        assert all(a[1] == b[0] and b[0] in starts for a, b in zip(ranges, ranges[1:]))




def _line_ends_by_hand(data: bytes, targets: list[int], delimiter: bytes, scan: int) -> list[int] | None:
    """``_record_ends`` byte by byte: each target's first line end after an even number of quotes, or None when
    a quote is misplaced before the end of the last window scanned (the one holding the last line end found,
    or the file's end)."""
    quotes = [i for i, byte in enumerate(data) if byte == ord('"')]
    ends = [next((i for i in range(target, len(data))
                  if data[i] == ord("\n") and sum(q < i for q in quotes) % 2 == 0), -1) for target in targets]
    scanned = len(data) if -1 in ends else min(len(data), (max(ends) // scan + 1) * scan)

    def bounding(at: int) -> bool:
        return at < 0 or at >= len(data) or data[at:at + 1] in (delimiter, b"\n", b"\r", b'"')

    opening_then_closing = [bounding(q - 1) if k % 2 == 0 else bounding(q + 1) for k, q in enumerate(quotes)]
    if not all(fine for q, fine in zip(quotes, opening_then_closing) if q < scanned):
        return None
    return ends


@pytest.mark.parametrize("scan", [1, 3, 7, 64])
def test_record_ends_are_the_ones_found_byte_by_byte(monkeypatch: pytest.MonkeyPatch, scan: int) -> None:
    import io

    monkeypatch.setattr(spill, "_SCAN_BYTES", scan)  # quotes, their neighbours and line ends across windows
    rnd = random.Random(scan)
    cells = [b'"a\n""b"', b"x", b'""', b'"q"', b'"', b'a"b', b"", b'"c,d"']
    for _ in range(400):
        data = b"".join(rnd.choice(cells) + rnd.choice([b",", b";", b"\n", b"\r\n"])
                        for _ in range(rnd.randint(1, 12)))
        targets = sorted(rnd.sample(range(len(data)), min(len(data), rnd.randint(1, 3))))
        delimiter = rnd.choice([",", ";"])
        expected = _line_ends_by_hand(data, targets, delimiter.encode(), scan)
        assert spill._record_ends(io.BytesIO(data), len(data), targets, delimiter) == expected, (data, targets)

class _InProcessCrew:
    """A stand-in for a crew of forked workers (``crew.Crew``): runs each task here, in a shuffled order, and
    hands the results back in task order (as processes that end in any order do); records each ``map``'s
    function name and tasks."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.maps: list[tuple[str, list[Any]]] = []

    def __call__(self, workers: int) -> _InProcessCrew:  # (stands in for the class)
        return self

    def __enter__(self) -> _InProcessCrew:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def map(self, function: Any, tasks: list[Any], between: Any = None) -> list[Any]:
        self.maps.append((function.__name__, list(tasks)))
        order = list(range(len(tasks)))
        self.rnd.shuffle(order)
        results = {}
        for number in order:
            results[number] = function(tasks[number])
            if between is not None:
                between()
        return [results[number] for number in range(len(tasks))]

    def replays(self) -> list[list[Any]]:
        return [tasks for name, tasks in self.maps if name == "_replay_shard"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shards_replayed_in_any_order_add_up_to_the_hand_worked_figures(
        tmp_path: Path, small_shards: list[Any], monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    from poletti.interpreter.simulate import columnar

    monkeypatch.setattr(spill, "SHARD_BYTES", 512)  # about ten shards
    crew = _InProcessCrew(seed)
    monkeypatch.setattr(columnar, "Crew", crew)
    program = poletti.compile("earn 1 point per EUR\n")
    path = tmp_path / "h.csv"
    lines = ["id,type,customer,at,amount,currency"]
    for i in range(40):  # customer i buys for 10 EUR in January and for i + 1 EUR in February
        lines.append(f"a{i},purchase,c{i},2026-01-01T10:{i:02d}:00Z,10.00,EUR")
        lines.append(f"b{i},purchase,c{i},2026-02-01T10:{i:02d}:00Z,{i + 1}.00,EUR")
    lines.append("z,purchase,c5,2026-03-01T00:00:00Z,-3,EUR")  # the latest row, rejected
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    got = simulate_file(program, str(path), workers=2)
    summary = got.summary
    # Hand-worked: 81 events, the last one rejected; 40 customers; 40 × 10 + (1 + 2 + … + 40) = 400 + 820
    # points, none spent; the replay ends at the last accepted event (c39's in February), not the rejected one.
    assert (summary["events"], summary["rejected"], summary["customers"]) == (81, 1, 40)
    assert summary["points"]["earned"] == summary["points"]["outstanding"] == 1220
    assert summary["period"] == {"from": "2026-01-01T10:00:00+00:00", "to": "2026-02-01T10:39:00+00:00"}
    assert {row["customer"]: row["points"] for row in got.customer_rows()} == {f"c{i}": 10 + i + 1 for i in range(40)}
    spilled = small_shards[-1]
    assert spilled is not None and spilled.shards >= 6 and spilled.parts == 2
    # A task a shard, the largest first; replayed again once the latest row turned out rejected (the end
    # first assumed, 1 March, is not the end).
    assert len(crew.replays()) == 2
    numbers = [task[2] for task in crew.replays()[0]]
    assert sorted(numbers) == [k for k in range(spilled.shards) if spilled.rows[k]]
    assert [spilled.rows[k] for k in numbers] == sorted(spilled.rows[k] for k in numbers)[::-1]


@pytest.mark.parametrize("workers", [1, 2])
def test_the_summary_alone_keeps_no_customer_and_adds_up_the_same(tmp_path: Path, small_shards: list[Any],
                                                                  workers: int) -> None:
    from poletti.interpreter.simulate.summary import StandingsNotKept

    program = poletti.load(ROOT / "benchmarks" / "programs" / "cdnow.loyalty")
    baseline = poletti.compile("currency USD\nearn 2 points per USD\nat 50 points grant free_cd\n"
                               "tier gold when spend_12m > 500 USD\n")
    path = cdnow_csv(tmp_path / "h.csv", messy=True)
    for options in ({}, {"baseline": baseline}, {"effect_from": "1997-06-01", "until": "1998-01-31"}):
        kept = simulate_file(program, str(path), workers=workers, **options)
        alone = simulate_file(program, str(path), workers=workers, keep_standings=False, **options)
        assert json.dumps(alone.summary) == json.dumps(kept.summary)
        assert alone.new.months == kept.new.months
        assert alone.new.standings is None
        with pytest.raises(StandingsNotKept):
            list(alone.customer_rows())
    with_baseline = simulate_file(program, str(path), workers=workers, keep_standings=False, baseline=baseline)
    groups = with_baseline.summary["groups"]["tiers"]
    # The group changes added up shard by shard: every customer is in one tier group of the new rules.
    assert sum(group["customers"] for group in groups.values()) == with_baseline.summary["customers"]
    assert groups == whole(program, path, baseline=baseline).summary["groups"]["tiers"]
    assert all(made is not None and made.shards > 3 for made in small_shards)


def test_the_shard_files_are_written_in_few_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows are held back until ``HELD_BYTES`` of them wait: a shard file is then one piece a flush, not one a
    block (which left every later step on its columns working piece by piece)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    monkeypatch.setattr(spill, "BLOCK_BYTES", 4096)
    path = cdnow_csv(tmp_path / "h.csv")
    blocks = -(-path.stat().st_size // 4096)
    program = poletti.load(ROOT / "benchmarks" / "programs" / "cdnow.loyalty")
    for held, most in ((1 << 20, 1), (8192, blocks - 1)):
        monkeypatch.setattr(spill, "HELD_BYTES", held)
        with spill.partition(str(path), program.compiled.tz, 4) as spilled:  # type: ignore[union-attr]
            pieces = [ipc.open_stream(pa.memory_map(spilled.path(k, 0))).read_all().column(0).num_chunks
                      for k in range(4)]
            assert sum(spilled.rows) > 0
        assert blocks > 5 and all(1 <= count <= most for count in pieces), (held, pieces)
    assert max(pieces) > 1  # (with a small ``HELD_BYTES``, several pieces: the check above can tell)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_history_is_read_not_mapped(tmp_path: Path, small_shards: list[Any], monkeypatch: pytest.MonkeyPatch,
                                        workers: int) -> None:
    """A mapped file's pages stay in the process's memory once read: the history is read a block at a time."""
    import mmap

    import pyarrow as pa

    path = cdnow_csv(tmp_path / "h.csv")
    log = tmp_path / "mapped.txt"  # (a file: forked workers map files too)
    real = pa.memory_map

    def watched(where: Any, *args: Any, **kwargs: Any) -> Any:
        with open(log, "a", encoding="utf-8") as stream:
            stream.write(f"{where}\n")
        return real(where, *args, **kwargs)

    monkeypatch.setattr(pa, "memory_map", watched)
    monkeypatch.setattr(mmap, "mmap", lambda *a, **k: pytest.fail("the history was mapped"))
    program = poletti.load(ROOT / "benchmarks" / "programs" / "cdnow.loyalty")
    got = simulate_file(program, str(path), workers=workers)
    assert small_shards[-1] is not None and small_shards[-1].parts == workers
    mapped = log.read_text(encoding="utf-8").splitlines()
    assert str(path) not in mapped and mapped  # (the shard files, small, are mapped while replayed)
    same(got, whole(program, path))


# ------------------------------------------------------------------ Parquet
# A Parquet history (a file, or a folder of them) is streamed too (``spill.partition_parquet``); before, it
# was read whole, and simulate's memory grew with it (1.4 GB at a million events).

CDNOW = ROOT / "benchmarks" / "programs" / "cdnow.loyalty"


@pytest.fixture
def small_parquet_shards(monkeypatch: pytest.MonkeyPatch, small_shards: list[Any]) -> list[Any]:
    """About 60 rows a shard, batches of 64 rows; the partitions made are listed (``small_shards``)."""
    monkeypatch.setattr(spill, "PARQUET_ROWS_PER_SHARD", 60)
    monkeypatch.setattr(spill, "PARQUET_BATCH_ROWS", 64)
    return small_shards


def as_table(csv_path: Path) -> pa.Table:
    """The CSV's cells as strings (null where empty), the way ``poletti generate`` writes Parquet."""
    names = csv_path.read_text(encoding="utf-8").splitlines()[0].split(",")
    return pcsv.read_csv(csv_path, convert_options=pcsv.ConvertOptions(
        column_types={name: pa.string() for name in names}, strings_can_be_null=True))


def parquet_of(tmp_path: Path, name: str = "h.parquet", messy: bool = True, row_group: int = 100) -> Path:
    target = tmp_path / name
    pq.write_table(as_table(cdnow_csv(tmp_path / "h.csv", messy=messy)), target, row_group_size=row_group)
    return target


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("messy", [False, True])
def test_a_parquet_file_in_shards_adds_up_to_the_file_read_whole(tmp_path: Path, small_parquet_shards: list[Any],
                                                                  workers: int, messy: bool) -> None:
    program = poletti.load(CDNOW)
    path = parquet_of(tmp_path, messy=messy)
    got = simulate_file(program, str(path), workers=workers)
    spilled = small_parquet_shards[-1]
    assert spilled is not None and spilled.shards > 3 and spilled.parts == workers
    same(got, whole(program, path))
    # and the same as the CSV it was written from, streamed the CSV way
    same(got, simulate_file(program, str(tmp_path / "h.csv"), workers=workers))
    assert got.reordered == messy


@pytest.mark.parametrize("workers", [1, 2])
def test_parquet_shards_with_until_a_baseline_and_an_effect_date(tmp_path: Path, small_parquet_shards: list[Any],
                                                                  workers: int) -> None:
    program = poletti.load(CDNOW)
    baseline = poletti.load(ROOT / "examples" / "cafe" / "rules_v1.loyalty")  # EUR: rejects every USD purchase
    path = parquet_of(tmp_path)
    for options in ({"until": "1997-09-15"}, {"baseline": baseline}, {"effect_from": "1997-06-01"}):
        same(simulate_file(program, str(path), workers=workers, **options), whole(program, path, **options))
    assert small_parquet_shards and all(made is not None for made in small_parquet_shards)


@pytest.mark.parametrize("workers", [1, 3])
def test_a_folder_of_parquet_files_in_shards(tmp_path: Path, small_parquet_shards: list[Any], workers: int) -> None:
    program = poletti.load(CDNOW)
    table = as_table(cdnow_csv(tmp_path / "h.csv", messy=True))
    folder = tmp_path / "history"
    folder.mkdir()
    cut = [0, 150, 151, 400, table.num_rows]  # rows numbered across the files in name order, one file of one row
    for k, (a, b) in enumerate(zip(cut, cut[1:])):
        pq.write_table(table.slice(a, b - a), folder / f"part-{k}.parquet", row_group_size=70)
    got = simulate_file(program, str(folder), workers=workers)
    assert small_parquet_shards[-1] is not None and small_parquet_shards[-1].parts == workers
    same(got, whole(program, folder))
    same(got, simulate_file(program, str(tmp_path / "h.csv")))


def test_the_parquet_history_is_streamed_not_read_whole(tmp_path: Path, small_parquet_shards: list[Any],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    program = poletti.load(CDNOW)
    path = parquet_of(tmp_path)
    expected = whole(program, path)
    monkeypatch.setattr(columns_module, "_read_parquet", forbidden("the Parquet file was read whole"))
    monkeypatch.setattr(pq, "read_table", forbidden("the Parquet file was read whole"))
    same(simulate_file(program, str(path)), expected)
    assert small_parquet_shards[-1].count == expected.summary["events"]


def test_typed_parquet_columns_in_shards(tmp_path: Path, small_parquet_shards: list[Any]) -> None:
    # Amounts as decimals and whole numbers, instants as timestamps: not text, so read the careful way,
    # shard by shard as whole.
    table = as_table(cdnow_csv(tmp_path / "h.csv", messy=False))
    amounts = pa.array([None if a is None else a for a in table.column("amount").to_pylist()]).cast(
        pa.decimal128(12, 2))
    typed = table.set_column(table.schema.get_field_index("amount"), "amount", amounts)
    path = tmp_path / "typed.parquet"
    pq.write_table(typed, path, row_group_size=100)
    program = poletti.load(CDNOW)
    got = simulate_file(program, str(path), workers=2)
    assert small_parquet_shards[-1] is not None
    same(got, whole(program, path))
    assert got.summary["points"]["earned"] == simulate_file(program, str(tmp_path / "h.csv")).summary["points"][
        "earned"]


def test_parquet_the_stream_cannot_take_is_read_whole(tmp_path: Path, small_parquet_shards: list[Any]) -> None:
    program = poletti.load(CDNOW)
    table = as_table(cdnow_csv(tmp_path / "h.csv", messy=False))
    # Files whose columns differ (the whole read unifies them), and customers that are numbers, not text.
    folder = tmp_path / "mixed"
    folder.mkdir()
    pq.write_table(table.slice(0, 200), folder / "a.parquet")
    pq.write_table(table.slice(200).drop_columns(["birthday"]), folder / "b.parquet")
    numbered = table.set_column(table.schema.get_field_index("customer"), "customer",
                                pa.array(range(table.num_rows), pa.int64()))
    pq.write_table(numbered, tmp_path / "numbered.parquet")
    for path in (folder, tmp_path / "numbered.parquet"):
        small_parquet_shards.clear()
        got = simulate_file(program, str(path))
        assert small_parquet_shards == [None]
        same(got, whole(program, path))


def test_runs_of_row_groups_are_in_order_and_about_equal() -> None:
    groups = [("a", 0, 100), ("a", 1, 100), ("b", 0, 50), ("b", 1, 150), ("c", 0, 100)]
    runs = spill._runs_of(groups, 2)
    assert [group for run in runs for group in run] == groups
    assert [sum(rows for _, _, rows in run) for run in runs] == [250, 250]
    assert spill._runs_of(groups, 9) == [[group] for group in groups]
    assert spill._runs_of(groups[:1], 3) == [groups[:1]]


# ------------------------------------------------------------------ JSON Lines
# A JSON Lines history is streamed record by record (``spill.partition_records``); before, every record was
# held at once (1.48 GB at a million events).


@pytest.fixture
def small_record_shards(monkeypatch: pytest.MonkeyPatch, small_shards: list[Any]) -> list[Any]:
    monkeypatch.setattr(spill, "RECORDS_HELD", 50)  # the shard files written in many pieces
    return small_shards


def cdnow_jsonl(tmp_path: Path, messy: bool = True) -> Path:
    """The events of ``cdnow_csv`` as JSON Lines (empty cells left out), with a few JSON-typed values."""
    with open(cdnow_csv(tmp_path / "h.csv", messy=messy), newline="", encoding="utf-8") as stream:
        rows = [{key: value for key, value in row.items() if value} for row in csv.DictReader(stream)]
    if messy:
        rows[3]["customer"] = 4711  # a customer and an id as JSON numbers (the event reader takes whole numbers)
        rows[3]["id"] = 99001
        rows[4]["amount"] = 12.5  # a JSON number for an amount
        rows[6]["vip"] = True  # a field only some rows have
    path = tmp_path / "h.jsonl"
    lines = [json.dumps(row) for row in rows]
    if messy:
        lines.insert(8, "{not json")
        lines.insert(20, "[1, 2]")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("messy", [False, True])
def test_a_json_lines_file_in_shards_adds_up_to_the_file_read_whole(tmp_path: Path,
                                                                     small_record_shards: list[Any],
                                                                     workers: int, messy: bool) -> None:
    program = poletti.load(CDNOW)
    path = cdnow_jsonl(tmp_path, messy=messy)
    got = simulate_file(program, str(path), workers=workers)
    spilled = small_record_shards[-1]
    assert spilled is not None and spilled.records and spilled.shards > 3
    same(got, whole(program, path))
    assert got.reordered == messy
    if messy:
        assert got.summary["rejected"] >= 2  # the two lines that are not events, at least
    else:  # the same events as the CSV file
        same(got, simulate_file(program, str(tmp_path / "h.csv")))


@pytest.mark.parametrize("workers", [1, 2])
def test_json_lines_shards_with_until_a_baseline_and_an_effect_date(tmp_path: Path,
                                                                    small_record_shards: list[Any],
                                                                    workers: int) -> None:
    program = poletti.load(CDNOW)
    baseline = poletti.compile("currency USD\nearn 2 points per USD\nat 50 points grant free_cd\n")
    path = cdnow_jsonl(tmp_path)
    for options in ({"until": "1997-09-15"}, {"baseline": baseline}, {"effect_from": "1997-06-01"}):
        same(simulate_file(program, str(path), workers=workers, **options), whole(program, path, **options))
    assert small_record_shards and all(made is not None for made in small_record_shards)


def test_the_json_lines_history_is_streamed_not_held(tmp_path: Path, small_record_shards: list[Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    program = poletti.load(CDNOW)
    path = cdnow_jsonl(tmp_path)
    expected = whole(program, path)
    monkeypatch.setattr(columns_module, "_from_records", forbidden("the JSON Lines file was read whole"))
    seen: list[tuple[str, int, Any]] = []
    same(simulate_file(program, str(path), progress=lambda *step: seen.append(step)), expected)
    assert small_record_shards[-1].count == expected.summary["events"]
    # The reading, which takes minutes for millions of JSON lines, reports its bytes as it goes.
    size = path.stat().st_size
    assert ("scan", size, size) in seen
    assert [phase for phase, _, _ in seen].index("scan") < [phase for phase, _, _ in seen].index("simulate")


def test_json_lines_with_referrals_or_an_id_two_customers_share_are_read_whole(
        tmp_path: Path, small_record_shards: list[Any]) -> None:
    program = poletti.load(CDNOW)
    path = cdnow_jsonl(tmp_path, messy=False)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    shared = tmp_path / "shared.jsonl"  # a second customer's purchase under the first row's id
    shards = spill.shard_count(str(path), 1)
    assert shards > 3
    other = next(row["customer"] for row in rows
                 if spill._shard_of(row["customer"], shards) != spill._shard_of(rows[0]["customer"], shards))
    extra = {"id": rows[0]["id"], "type": "purchase", "customer": other, "at": "1998-06-01T10:00:00-04:00",
             "amount": "12.00", "currency": "USD"}
    shared.write_text("\n".join(json.dumps(row) for row in rows + [extra]) + "\n", encoding="utf-8")
    referral = tmp_path / "referral.jsonl"
    friend = {"id": "r1", "type": "referral", "customer": rows[0]["customer"], "friend": other,
              "at": "1997-02-01T10:00:00-05:00"}
    referral.write_text("\n".join(json.dumps(row) for row in rows[:50] + [friend] + rows[50:]) + "\n",
                        encoding="utf-8")
    for history in (shared, referral):
        small_record_shards.clear()
        got = simulate_file(program, str(history))
        assert small_record_shards == [None]
        same(got, whole(program, history))


# ------------------------------------------------------------------ blank lines
# Arrow reads a blank line as a row of no cell, which the row reader (and so ``--sequential``) skips: the
# columnar replay counted it as a rejected event ("missing required field 'id'"), the event-at-a-time one
# did not. Blank lines that end the file are left out in the stream; any other row of no cell (a blank line
# inside, a row of nothing but delimiters) sends the file to the row reader.

SEQUENTIAL_HEADER = "id,type,customer,at,amount,currency\n"
ONE_PURCHASE = "e1,purchase,c1,2026-01-01T10:00:00Z,12.50,EUR\n"


def event_at_a_time(program: Any, path: Path) -> Any:
    from poletti.interpreter.simulate.sequential import replay_file

    return replay_file([program], str(path), until=None, effect_from=None)


@pytest.mark.parametrize("tail, streamed, events, rejected", [
    ("\n", True, 1, 0),  # a blank line ends the file
    ("\r\n\r\n\n\r", True, 1, 0),  # four of them, in every kind of line end
    (",,,,,\n", False, 2, 1),  # a row of empty cells: rejected, as the row reader has it
    (",,,,,\n\n", False, 2, 1),
    ("\ne2,purchase,c1,2026-01-02T10:00:00Z,7.50,EUR\n", False, 2, 0),  # a blank line inside
])
@pytest.mark.parametrize("workers", [1, 2])
def test_blank_lines_are_skipped_as_the_row_reader_skips_them(tmp_path: Path, small_shards: list[Any], tail: str,
                                                              streamed: bool, events: int, rejected: int,
                                                              workers: int) -> None:
    program = poletti.compile("earn 1 point per EUR\n")
    path = tmp_path / "h.csv"
    path.write_bytes((SEQUENTIAL_HEADER + ONE_PURCHASE + tail).encode())
    got = simulate_file(program, str(path), workers=workers)
    assert (small_shards[-1] is not None) == streamed
    assert (got.summary["events"], got.summary["rejected"]) == (events, rejected)
    assert got.summary["points"]["earned"] == (12 if events - rejected == 1 else 12 + 7)
    same(got, event_at_a_time(program, path))
    same(got, whole(program, path))


def test_trailing_blank_lines_are_counted_from_the_bytes(tmp_path: Path) -> None:
    from poletti.interpreter.simulate.columns import trailing_blank_lines

    cases = {b"a\n": 0, b"a": 0, b"a\n\n": 1, b"a\r\n\r\n": 1, b"a\r\n\n\r": 2, b"a\n\r\n\r\n": 2, b"": 0,
             b"a\n" + b"\n" * 5000: 0}  # (more line ends than the 4 KiB looked at: none assumed)
    for number, (content, blank) in enumerate(cases.items()):
        path = tmp_path / f"{number}.csv"
        path.write_bytes(content)
        assert trailing_blank_lines(str(path)) == blank, content[:20]


def test_reading_parquet_does_not_keep_what_it_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrow's Parquet reader, by default, reads ahead and keeps what it read until the file is done: 260 MiB
    # more over a 10-million-event file. Here 40 row groups of 0.15 MB: it held the whole 6 MB (1.3 MB without).
    import os
    from zoneinfo import ZoneInfo

    count = 200_000
    table = pa.table({"id": [f"e{i}" for i in range(count)], "type": ["purchase"] * count,
                      "customer": [f"c{i * 7919 % 50_000}" for i in range(count)],
                      "at": ["2026-01-01T10:00:00Z"] * count, "amount": ["12.50"] * count,
                      "note": [os.urandom(8).hex() for _ in range(count)]})
    path = tmp_path / "h.parquet"
    pq.write_table(table, path, row_group_size=5_000)
    groups = [(str(path), g, 5_000) for g in range(40)]
    held: list[int] = []
    add = spill.PartWriter.add

    def watched(self: Any, batch: Any) -> None:
        held.append(pa.total_allocated_bytes())
        add(self, batch)

    monkeypatch.setattr(spill.PartWriter, "add", watched)
    monkeypatch.setattr(spill, "HELD_BYTES", 1 << 16)  # (rows held for the shard files: written at once)
    monkeypatch.setattr(spill, "PARQUET_BATCH_ROWS", 4_096)
    del table
    folder = tmp_path / "shards"
    folder.mkdir()
    before = pa.total_allocated_bytes()
    part = spill.read_parquet_part(groups, ZoneInfo("UTC"), 4, None, str(folder), 0)
    assert part is not None and part.count == count
    assert path.stat().st_size > 5_000_000  # (what Arrow read ahead, and kept, before the first batch: 6 MB)
    assert max(held) - before < 3_000_000


def test_event_ids_of_one_length_get_distinct_hashes() -> None:
    # Two ids of the generated 10-million-event history. The first hash, a pair of CRC-32s, gave them one
    # value (CRC is linear: equal-length texts that collide in one CRC collide in the other), so the stream
    # took them for one id in two shards and read the 1.3 GB file whole (13.9 GB of memory).
    pairs = [("c1398684-11", "c0854917-50"), ("c1398684-10", "c0854917-51"), ("c1398684-13", "c0854917-52")]
    for one, other in pairs:
        assert spill._text_hash64(one) != spill._text_hash64(other)
    assert len({spill._text_hash64(f"e{i}") for i in range(100_000)}) == 100_000
