"""Reading ``at`` straight from Arrow's bytes (``columns._strict_instants``) against the row-by-row parse.

Every cell the byte reader takes must be one ``parse_timestamp`` reads to
the same instant; cells it leaves (other forms, impossible dates, bad
offsets, empty cells) go the careful way, so only agreement on what it
takes matters — and it must take the plain forms an export writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

import poletti
from poletti.engine.timecalc import parse_timestamp, to_us
from poletti.interpreter.simulate.columns import _strict_instants

UTC = ZoneInfo("UTC")


@st.composite
def stamps(draw: st.DrawFn) -> str | None:
    if draw(st.integers(0, 15)) == 0:
        return None
    year = draw(st.sampled_from([0, 1, 1900, 1970, 2000, 2024, 2027, 2100, 9999]) | st.integers(0, 9999))
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute, second = draw(st.integers(0, 25)), draw(st.integers(0, 61)), draw(st.integers(0, 61))
    zone = draw(st.sampled_from(["Z", "+00:00", "-05:00", "+05:30", "+14:00", "-23:59", "+24:00", "+05:60", "",
                                 "+0530", "z"]))
    separator = draw(st.sampled_from(["T", "T", "T", " ", "t"]))
    text = f"{year:04d}-{month:02d}-{day:02d}{separator}{hour:02d}:{minute:02d}:{second:02d}{zone}"
    if draw(st.integers(0, 10)) == 0:
        position = draw(st.integers(0, len(text) - 1))
        text = text[:position] + draw(st.sampled_from(["x", "/", "٣", "."])) + text[position + 1:]
    return text


def careful(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return to_us(parse_timestamp(text, UTC))
    except (ValueError, OverflowError):
        return None


@given(st.lists(stamps(), max_size=30), st.booleans())
def test_what_the_bytes_give_is_what_the_careful_parse_gives(cells: list[str | None], chunked: bool) -> None:
    column = pa.chunked_array([cells[:3], cells[3:]], pa.string()) if chunked else pa.array(cells, pa.string())
    values, taken = _strict_instants(column)
    for text, value, ok in zip(cells, values.tolist(), taken.tolist()):
        if ok:
            assert careful(text) == value, text


def test_the_forms_an_export_writes_are_taken() -> None:
    cells = ["2027-03-28T03:30:00+03:00", "2027-02-28T23:59:59Z", "2028-02-29T00:00:00-05:00",
             "1999-12-31T23:59:59+14:00"]
    for column in (pa.array(cells), pa.array(cells[:1] * 4), pa.array(cells[1:2] * 3)):  # mixed, then uniform
        values, taken = _strict_instants(column)
        assert taken.all()
        assert values.tolist() == [careful(text) for text in column.to_pylist()]


def test_impossible_dates_are_left_to_the_careful_reader() -> None:
    cells = ["2027-02-29T10:00:00Z", "2027-04-31T10:00:00Z", "2027-01-01T24:00:00Z", "2027-01-01T10:00:60Z",
             "2027-13-01T10:00:00Z", "2027-01-01T10:00:00+24:00", "0000-01-01T00:00:00Z", None, ""]
    _, taken = _strict_instants(pa.array(cells, pa.string()))
    assert not taken.any()
    _, taken = _strict_instants(pa.array([], pa.string()))
    assert taken.size == 0


def test_decimal_parquet_amounts_are_read_as_columns_like_text_ones(tmp_path: Path) -> None:
    # A decimal128 amount (of at most six places) is made micro-units from Arrow's buffer; the other cells
    # (negative, 10^12 and more) go the row reader's way, which says what it makes of them. Before, every
    # decimal amount went the careful way, row by row: 26.8 s for a million events, 2.95 s as text.
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    from poletti.interpreter.simulate import columns as columns_module
    from poletti.interpreter.simulate.columnar import simulate_file
    from poletti.interpreter.simulate.history import History
    from poletti.interpreter.simulate.sequential import replay

    amounts = [Decimal("12.50"), Decimal("0.00"), None, Decimal("-3.00"), Decimal("999999999999.99"),
               Decimal("1000000000000.00"), Decimal("0.07")]
    count = len(amounts)
    path = tmp_path / "h.parquet"
    pq.write_table(pa.table({
        "id": [f"e{i}" for i in range(count)], "type": ["purchase"] * count,
        "customer": ["c1", "c2", "c3", "c4", "c5", "c6", "c1"],
        "at": [f"2026-01-0{1 + i}T10:00:00Z" for i in range(count)],
        "amount": pa.array(amounts, pa.decimal128(15, 2))}), path)
    program = poletti.compile("earn 1 point per EUR\nat 10 points grant gift\nreward gift \"Gift\"\n")
    columns = columns_module.load(str(path), program.compiled.tz)
    assert columns.plain.tolist() == [True, True, True, False, True, False, True]
    assert columns.amount[[0, 1, 4, 6]].tolist() == [12_500_000, 0, 999_999_999_999_990_000, 70_000]
    got = simulate_file(program, str(path))
    with History(str(path), program.compiled.tz) as history:
        expected = replay(program, history.in_time_order(), reordered=history.reordered)
    assert json.dumps(got.summary) == json.dumps(expected.summary)
    # Refused: the purchase without an amount and the negative one. 10^12 goes the careful way, which takes it.
    assert [r.row for r in got.rejections] == [3, 4] and got.rejections == expected.rejections
    # c1: 12 (12.50) + 0 (0.07); c2: 0; c5: 999,999,999,999; c6: 1,000,000,000,000.
    assert got.summary["points"]["earned"] == 12 + 999_999_999_999 + 1_000_000_000_000
