"""Reading ``at`` straight from Arrow's bytes (``columns._strict_instants``) against the row-by-row parse.

Every cell the byte reader takes must be one ``parse_timestamp`` reads to
the same instant; cells it leaves (other forms, impossible dates, bad
offsets, empty cells) go the careful way, so only agreement on what it
takes matters — and it must take the plain forms an export writes.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

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
