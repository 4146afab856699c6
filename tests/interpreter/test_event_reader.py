"""The quick event reader (``events._quick``) against the careful one (``EventReader._read_carefully``).

The quick reader takes the common shape of an event without naming a bad
field; whatever it accepts must come out exactly as the careful reader reads
it, and whatever it hands over is read carefully. Random dicts mix plain
fields with the rarer ones (``friend``, ``account``, ``rewards_used``,
``partner``), attributes, and bad values.
"""

from __future__ import annotations

import marshal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import poletti
from poletti.interpreter.events import EventError, EventReader, Item, _quick, content_key, quick_fields

RULES = """
reward ten_off "10 % off" value 10% expires after 30d costs 50 points
partner kulma "Kahvila Kulma" pays 0.02 EUR per point
referral grant 10 points to both when friend buys
attribute channel: text
earn 1 point per EUR
"""
READER = EventReader(poletti.compile(RULES).compiled.checked)

TEXTS = st.sampled_from(["c1", "c2", " ", "", "x" * 3, "\x00", 5, None])
VALUES: dict[str, Any] = {
    "id": st.sampled_from(["e1", "", " ", 7]),
    "type": st.sampled_from(["purchase", "visit", "referral", "refund", "redeem", "nope"]),
    "customer": TEXTS,
    "at": st.sampled_from(["2026-03-01T10:00:00+02:00", "2026-03-01", "2026-13-01T00:00:00Z", "junk", 3]),
    "amount": st.sampled_from(["12.50", "12,50", 12, 12.5, "-1", "1e3", None, True]),
    "currency": st.sampled_from(["EUR", "SEK", "", None]),
    "original": TEXTS,
    "reward": st.sampled_from(["ten_off", "nope", None]),
    "friend": TEXTS,
    "account": TEXTS,
    "rewards_used": st.sampled_from([["ten_off"], [], "ten_off", ["nope"], None, 3]),
    "partner": st.sampled_from(["kulma", "other", None, 4]),
    "channel": st.sampled_from(["app", 3, None]),
    "birthday": st.sampled_from(["1990-02-28", "1990-02-30", None]),
    "items": st.sampled_from([[{"sku": "a", "category": "b", "quantity": 2, "price": "1.50"}], [], "x", None]),
}


class Text(str):
    """A str subclass: equal to its text (an equal dictionary key), but not a plain str."""


# The values of an item's lines: the quick reader keeps the lines it read (``_ITEMS``), and a value equal to a
# kept one but of another class (True and 1, 2.0 and 2, a str subclass) must still be read as it is.
ITEM_VALUES: dict[str, Any] = {
    "sku": st.sampled_from(["a", "", " ", None, 3, ["a"], Text("a")]),
    "category": st.sampled_from(["b", "", None, 4, Text("b")]),
    "quantity": st.sampled_from([1, 2, True, 2.0, 0, -1, None, "2", 10**9 + 1]),
    "price": st.sampled_from(["1.50", "1.5", 1, True, 1.0, 1.5, "x", "-1", None, ["1"], 0]),
    "size": st.sampled_from(["L"]),  # not an item's field
}


@st.composite
def raw_items(draw: Any) -> list[dict[str, Any]]:
    items = []
    for _ in range(draw(st.integers(0, 3))):
        names = draw(st.lists(st.sampled_from(sorted(ITEM_VALUES)), max_size=5, unique=True))
        items.append({name: draw(ITEM_VALUES[name]) for name in names})
    return items


VALUES["items"] = st.one_of(VALUES["items"], raw_items())


@st.composite
def raw_events(draw: Any) -> dict[str, Any]:
    event = {"id": "e1", "type": "purchase", "customer": "c1", "at": "2026-03-01T10:00:00+02:00"}
    for name in draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=6, unique=True)):
        event[name] = draw(VALUES[name])
    # Now and then a required field is missing: the quick reader's "nothing but the common fields" test
    # counts keys, and a missing one must not let another key through unread.
    for name in draw(st.lists(st.sampled_from(["id", "type", "customer", "at"]), max_size=2, unique=True)):
        del event[name]
    return event


def _outcome(read: Any, raw: dict[str, Any]) -> Any:
    try:
        return read(dict(raw))
    except EventError as err:
        return ("rejected", err.reason)


def _read_with_key(read: Any, raw: dict[str, Any]) -> Any:
    """The event and its content key (the quick reader's own, when it made one), or the rejection."""
    event = _outcome(read, raw)
    return event if isinstance(event, tuple) else (event, content_key(event))


@settings(max_examples=400, deadline=None)
@given(raw_events())
def test_what_the_quick_reader_takes_is_what_the_careful_reader_reads(raw: dict[str, Any]) -> None:
    # The same event (every field, attributes included) or the same reason, whichever reader took it; and
    # the same content key, though the quick reader makes its own for the common event (the careful reader
    # never does: ``content_key`` works it out from the event).
    assert _read_with_key(READER.read, raw) == _read_with_key(READER._read_carefully, raw)
    # The generated lane packs a quick key with ``marshal`` after nothing more than reading: it always packs,
    # and unpacks to itself.
    read = quick_fields(raw, READER.currency, READER.plain_types)
    if read is not None and read[12] is not None:
        assert marshal.loads(marshal.dumps(read[12])) == read[12]


# A program without partners reads `partner` as its declared attribute (or not at all), as before issue 13.
READER_WITHOUT_PARTNERS = EventReader(poletti.compile(
    "attribute partner: text\nattribute channel: text\nearn 1 point per EUR\n").compiled.checked)


@settings(max_examples=200, deadline=None)
@given(raw_events())
def test_a_program_without_partners_reads_the_same_either_way(raw: dict[str, Any]) -> None:
    careful = READER_WITHOUT_PARTNERS
    expected = _read_with_key(careful._read_without_partners if "partner" in raw else careful._read_carefully,
                              raw)
    assert _read_with_key(careful.read, raw) == expected


def test_a_kept_line_is_not_taken_for_an_equal_line_of_other_classes() -> None:
    # The quick reader keeps each item line it read; True == 1 and hash alike, but true/false is no quantity
    # and no price, whichever line was read before.
    base = {"id": "e1", "type": "purchase", "customer": "c1", "at": "2026-03-01T10:00:00+02:00", "amount": "3.00"}
    for good, bad in (({"sku": "k", "quantity": 1, "price": "1.50"}, {"sku": "k", "quantity": True, "price": "1.50"}),
                      ({"sku": "k", "quantity": 2, "price": 1}, {"sku": "k", "quantity": 2, "price": True})):
        assert READER.read(dict(base, items=[good])).items == (Item("k", None, good["quantity"], 1_500_000 if
                                                                    good["price"] == "1.50" else 1_000_000),)
        assert _outcome(READER.read, dict(base, items=[bad])) == (
            "rejected", "expected a number, got true/false @ items[0]")


def test_the_rarer_fields_go_through_the_quick_reader_too() -> None:
    # A referral with a friend and an event with an account are common enough to stay on the quick path.
    event = _quick({"id": "r1", "type": "referral", "customer": "c1", "at": "2026-03-01T10:00:00+02:00",
                    "friend": "c2", "account": "acme"})
    assert event is not None and (event.friend, event.account, event.attributes) == ("c2", "acme", {})
    # A purchase that uses a reward, or happens at a partner, is handed to the careful reader.
    assert _quick({"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-03-01T10:00:00+02:00",
                   "amount": "5.00", "rewards_used": ["ten_off"]}) is None


def test_a_purchase_with_items_is_read_quickly_and_as_the_careful_reader_reads_it() -> None:
    raw = {"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-03-01T10:00:00+02:00", "amount": "3.00",
           "currency": "EUR", "items": [{"sku": "a", "category": "b", "quantity": 2, "price": "1.50"}]}
    event = _quick(dict(raw))
    assert event is not None and event.attributes == {}  # nothing beyond the event's own fields
    assert (event.amount, len(event.items), event.items[0].price) == (3_000_000, 1, 1_500_000)
    assert READER.read(dict(raw)) == READER._read_carefully(dict(raw))
    # One key more (a declared attribute) is still read, not skipped by the size test.
    with_channel = READER.read({**raw, "channel": "app"})
    assert with_channel.attributes == {"channel": "app"}


# Instants written every way ISO 8601 allows with an offset: the quick reader computes µs from the parsed
# fields and a looked-up offset; the careful one goes through the zone-aware parser. They must agree to the µs,
# offsets with seconds and fractions included, and at the edges of the quick reader's range (1900, 2106).
OFFSETS = st.one_of(
    st.sampled_from(["Z", "+00:00", "-00:00", "+02:00", "-05:00", "+05:45", "+14:00", "-12:00"]),
    st.builds(lambda sign, h, m, s: f"{sign}{h:02d}:{m:02d}:{s:02d}", st.sampled_from("+-"),
              st.integers(0, 23), st.integers(0, 59), st.integers(0, 59)),
    st.builds(lambda sign, h, us: f"{sign}{h:02d}:00:00.{us:06d}", st.sampled_from("+-"), st.integers(0, 23),
              st.integers(0, 999_999)),
)
FRACTIONS = st.sampled_from(["", ".5", ".123", ".000001", ".999999"])


@settings(max_examples=400, deadline=None)
@given(year=st.sampled_from([1899, 1900, 1969, 1970, 1997, 2024, 2038, 2105, 2106, 2107]),
       month=st.integers(1, 12), day=st.integers(1, 28), hour=st.integers(0, 23), minute=st.integers(0, 59),
       second=st.integers(0, 59), fraction=FRACTIONS, offset=OFFSETS)
def test_an_instant_reads_the_same_on_the_quick_and_the_careful_path(year: int, month: int, day: int, hour: int,
                                                                     minute: int, second: int, fraction: str,
                                                                     offset: str) -> None:
    raw = {"id": "v1", "type": "visit", "customer": "c1",
           "at": f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{fraction}{offset}"}
    assert _outcome(READER.read, raw) == _outcome(READER._read_carefully, raw)


def test_an_instant_is_microseconds_since_the_epoch() -> None:
    # Worked by hand: 1997-01-01T00:04:17-05:00 is 05:04:17 UTC; 1997-01-01 is day 9862 after 1970-01-01
    # (27 years, 7 of them leap: 27 × 365 + 7), so 9862 × 86400 + 5 × 3600 + 4 × 60 + 17 = 852_095_057 s.
    event = _quick({"id": "p1", "type": "visit", "customer": "c1", "at": "1997-01-01T00:04:17-05:00"})
    assert event is not None and event.at == 852_095_057_000_000
    # Half a second and an offset with seconds: 23:59:59.5+00:00:30 is 23:59:29.5 UTC, 30 s before midnight.
    event = _quick({"id": "p2", "type": "visit", "customer": "c1", "at": "1970-01-01T23:59:59.5+00:00:30"})
    assert event is not None and event.at == (86_400 - 30.5) * 1_000_000


def test_items_that_add_up_past_the_limit_are_rejected_on_the_quick_path_too() -> None:
    # 2 × 600,000,000,000.00 = 1,200,000,000,000.00 EUR, past the 10^12 limit: the quick reader takes the event
    # (each price is within bounds) and the type rules reject it; 1 × the same price is accepted.
    raw = {"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-03-01T10:00:00+02:00", "amount": "3.00",
           "items": [{"sku": "a", "quantity": 2, "price": "600000000000.00"}]}
    assert _quick(raw) is not None
    assert _outcome(READER.read, raw) == ("rejected", "the items' prices × quantities add up to more than "
                                                      "1,000,000,000,000")
    raw["items"][0]["quantity"] = 1
    assert READER.read(raw).items[0].price == 600_000_000_000 * 1_000_000
    # In another currency than the program's (EUR), a plain purchase is rejected with the reason.
    assert _outcome(READER.read, {**raw, "currency": "SEK"})[0] == "rejected"


def test_the_quick_reader_makes_the_content_key_of_the_common_event_only() -> None:
    at = "1997-01-01T00:04:17-05:00"  # 05:04:17 UTC on day 9,862 since 1970: 852,095,057 s
    raw = {"id": "p1", "type": "purchase", "customer": "c1", "at": at, "amount": "12.5", "currency": "EUR",
           "items": [{"sku": "a", "category": "b", "quantity": 2, "price": "1.50"}]}
    event = READER.read(dict(raw))
    # Worked out by hand: the customer, the type, µs, micro-units, the items as plain tuples, no original,
    # reward, birthday or attributes.
    expected = ("c1", "purchase", 852_095_057_000_000, 12_500_000, (("a", "b", 2, 1_500_000),), None, None, None, ())
    assert event.key == expected and content_key(event) == expected
    # The rarer fields in their places: the purchase's `original` sixth, its `reward` seventh.
    rarer = READER.read({**raw, "original": "p0", "reward": "ten_off"})
    assert rarer.key == expected[:5] + ("p0", "ten_off") + expected[7:]
    # Not made (the type rules run in full, then ``content_key`` reads the event) when the event has attributes,
    # a friend or an account, another currency, or a type whose fields the rules must check.
    assert READER.read({**raw, "channel": "app"}).key is None
    assert READER.read({"id": "r1", "type": "referral", "customer": "c1", "at": at, "friend": "c2"}).key is None
    assert READER.read({**raw, "account": "acme"}).key is None
    # A refund naming its purchase, of the rest or of an amount above 0, passes the type rules: its key is made
    # (whether the purchase has that much left is the customer state's to say). Of 0, it is rejected.
    refund = {"id": "f1", "type": "refund", "customer": "c1", "at": at, "original": "p1"}
    assert READER.read(dict(refund)).key == ("c1", "refund", 852_095_057_000_000, None, (), "p1", None, None, ())
    assert READER.read({**refund, "amount": "2.5"}).key == (
        "c1", "refund", 852_095_057_000_000, 2_500_000, (), "p1", None, None, ())
    assert _quick({**refund, "amount": "0"}).key is None  # (then the type rules run in full, and reject it)
    assert _outcome(READER.read, {**refund, "amount": "0"}) == ("rejected", "a refund amount must be above 0, got 0.00")
    assert _outcome(READER.read, {**raw, "currency": "SEK"})[0] == "rejected"
    # A visit, a plain type: its key has no amount; a birthday goes in as ISO text.
    visit = READER.read({"id": "v1", "type": "visit", "customer": "c1", "at": at, "birthday": "1990-02-28"})
    assert visit.key == ("c1", "visit", 852_095_057_000_000, None, (), None, None, "1990-02-28", ())


def test_a_refused_event_leaves_no_cycle_for_the_collector() -> None:
    # A replay pauses the cyclic collector: an event refused the careful way (cattrs gathers the errors in
    # its frames' locals, which the errors' tracebacks hold) must be freed by reference counting alone.
    # Before, a history of 100,000 such rows held 1.5 GiB until its replay ended.
    import gc

    refused = [{"id": "e1", "type": "purchase", "customer": "c1", "at": "2026-01-01T10:00:00Z", "amount": "5",
                "original": ""},  # (an empty original: cattrs' reason)
               {"id": "e2", "type": "purchase", "customer": "c1", "at": "2026-01-01T10:00:00Z", "amount": "x"},
               {"id": "e3", "type": "purchase", "customer": "c1", "at": "not a time"}]
    gc.collect()
    gc.disable()
    try:
        reasons = []
        for raw in refused * 20:
            try:
                READER.read(raw)
            except EventError as err:
                reasons.append(err.reason)
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert len(reasons) == 60 and "original" in reasons[0]
    assert unreachable == 0
