"""Events: the typed form of what a host sends, and its validation.

``EventReader(program).read(raw: dict) -> Event`` structures a dict with the
cattrs converter (its errors become ``EventError`` reasons naming the field)
and then applies the contract's rules per event type. Nothing here touches
customer state; checks that need state (order, refunds, balances) are made
by the engine before it changes anything.
"""

from __future__ import annotations

import functools
import math
import traceback
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple
from zoneinfo import ZoneInfo

import attrs

if TYPE_CHECKING:
    import cattrs

from poletti.dsl import classes
from poletti.dsl.program import BUILTIN_EVENT_TYPES, CheckedProgram, Type
from poletti.engine import money
from poletti.dsl.ranges import decimal_places
from poletti.engine.money import from_units, to_units
from poletti.engine.stores.base import CONTENT_FIELDS
from poletti.engine.timecalc import delta_us, from_us, parse_timestamp, to_us


class EventError(ValueError):
    """An event was rejected; ``reason`` says why. Nothing was changed."""

    def __init__(self, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason if event_id is None else f"event {_short(event_id)}: {reason}")
        self.reason = reason
        self.event_id = event_id


class Item(NamedTuple):
    """One line of a purchase (a named tuple: purchases carry many, and they are built often)."""

    sku: str | None = None
    category: str | None = None
    quantity: int = 1
    price: int = 0  # micro-units of the program currency


@classes.define
class Event:
    """A validated event: instants in µs since the epoch, money in micro-units (see the state's docstring).

    Mutable only so that it is cheap to build (the engine builds one per
    event); nothing changes it once the reader returns it.
    """

    id: str
    type: str
    customer: str
    at: int
    amount: int | None = None
    currency: str | None = None
    items: tuple[Item, ...] = ()
    original: str | None = None
    reward: str | None = None
    birthday: date | None = None
    attributes: Mapping[str, Any] = attrs.field(factory=dict)
    # (The quick reader and the columns pass the fields up to ``account`` by position.)
    friend: str | None = None  # a referral's referred customer (docs/language.md "Referrals")
    account: str | None = None  # the contact's account (docs/language.md "Shared accounts")
    # Issue 13: the held rewards a purchase uses, the partner the event happened at, and — for a partner
    # purchase in another currency, converted at the program's rate — (that currency, the amount as paid).
    rewards_used: tuple[str, ...] = ()
    partner: str | None = None
    paid: tuple[str, int] | None = None
    # The event's content key (``content_key``), when the quick reader worked it out: it does so for the
    # common event, whose type rules it has then checked too (``EventReader.read``). None: not worked out.
    key: tuple[Any, ...] | None = attrs.field(default=None, eq=False, repr=False)


@classes.frozen
class _Fields:
    """The event's fields as a host writes them: what cattrs structures to name a bad field in a reason."""

    id: str
    type: str
    customer: str
    at: datetime
    amount: Decimal | None = None
    currency: str | None = None
    items: tuple[_ItemFields, ...] = ()
    original: str | None = None
    reward: str | None = None
    birthday: date | None = None
    rewards_used: tuple[str, ...] = ()
    partner: str | None = None
    friend: str | None = None
    account: str | None = None


@classes.frozen
class _ItemFields:
    sku: str | None = None
    category: str | None = None
    quantity: int = 1
    price: Decimal = Decimal(0)


_CORE_FIELDS = frozenset(f.name for f in attrs.fields(Event)) - {"attributes", "paid", "key"}
# Fields only the careful reader takes (the quick one hands such events over to it).
_WALLET_FIELDS = ("rewards_used", "partner")
# The fields of most events: one subset test tells the quick reader it need not look for the rarer ones.
_PLAIN_FIELDS = _CORE_FIELDS - {"rewards_used", "partner", "friend", "account"}


# Durations in rules are at most 100 years, so instants in these years can be
# moved by any rule's window, expiry or keep without leaving the calendar.
FIRST_YEAR, LAST_YEAR = 1900, 9000
# Money beyond this (in the program currency) is surely a bug upstream; the same bound as numbers in
# rules (dsl/ranges.py, E129). With six decimal places an amount has at most 19 significant digits.
MAX_MONEY = Decimal(10) ** 12
_MAX_MONEY_UNITS = 10**12 * money.SCALE
MAX_QUANTITY = 10**9
# An id or a customer may be sent as a number; one longer than this is not an id (and Python refuses
# to turn an int of thousands of digits into text).
_MAX_ID_DIGITS = 100


def _instant(value: Any, tz: ZoneInfo) -> int:
    """An event's ``at`` → µs since the epoch; ``ValueError`` with the reason if it is not one."""
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 timestamp text, got {type(value).__name__}")
    if len(value) > 64 and len(value.strip()) > 64:  # longer than any ISO 8601 timestamp
        raise ValueError(f"not an ISO 8601 timestamp: {_short(value)}")
    try:
        at = parse_timestamp(value, tz)
    except OverflowError:  # a date at the very edge of the calendar, moved into UTC
        raise ValueError(f"timestamp {_short(value)} is out of range: years {FIRST_YEAR} to {LAST_YEAR}") from None
    if not FIRST_YEAR <= at.year <= LAST_YEAR:
        raise ValueError(f"timestamp {_short(value)} is out of range: years {FIRST_YEAR} to {LAST_YEAR}")
    return to_us(at)


def _forget_frames(error: BaseException) -> None:
    """Clear the locals of the frames an error's traceback holds, and its parts', cause's and context's
    (those still running are left as they are: ``traceback.clear_frames`` skips them)."""
    pending, seen = [error], set()
    while pending:
        found = pending.pop()
        if id(found) in seen:
            continue
        seen.add(id(found))
        traceback.clear_frames(found.__traceback__)
        pending.extend(getattr(found, "exceptions", ()))
        pending.extend(linked for linked in (found.__cause__, found.__context__) if linked is not None)


def _text(value: Any, _type: Any) -> str:
    # Hosts often use numeric ids; a bool or a float is almost surely a bug.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"expected text, got {type(value).__name__}")
    if isinstance(value, int) and value.bit_length() > 3.33 * _MAX_ID_DIGITS:
        raise ValueError(f"a number of more than {_MAX_ID_DIGITS} digits is not an id")
    text = str(value)
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def _money(value: Any) -> int:
    """A decimal amount → micro-units (at most six decimal places)."""
    return to_units(_decimal(value))


def _decimal(value: Any, _type: Any = None) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("expected a number, got true/false")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        value = repr(value)  # 12.3 → "12.3", not the binary expansion
    if not isinstance(value, (str, int)):
        raise ValueError(f"expected a decimal number, got {type(value).__name__}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {_short(value)}") from None
    if not number.is_finite():
        raise ValueError(f"not a finite number: {_short(value)}")
    if number.copy_abs() > MAX_MONEY:  # copy_abs: abs() would overflow the context on 1E+100000000
        raise ValueError(f"{_short(value)} is too large (at most {MAX_MONEY:,f})")
    if decimal_places(number) > money.DIGITS:
        raise ValueError(f"{_short(value)} has more than {money.DIGITS} decimal places")
    return number


def _short(value: Any) -> str:
    """A value for a reason: its repr, shortened in the middle when long."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 1000 else f"a number of about " \
        f"{int(value.bit_length() * 0.30103)} digits"
    # A megabyte cell must not make a megabyte reason: cut, with the length, so the row is easy to find.
    size = len(value) if isinstance(value, str) else len(text)
    return text if len(text) <= 60 else f"{text[:40]}…{text[-12:]} ({size:,} characters)"


def _quantity(value: Any, _type: Any) -> int:
    if value.__class__ is int and 0 < value <= MAX_QUANTITY:
        return value  # the common case, without a detour through Decimal
    number = _decimal(value)
    if number != number.to_integral_value() or number <= 0:
        raise ValueError(f"quantity must be a whole number above 0, got {_short(value)}")
    if number > MAX_QUANTITY:
        raise ValueError(f"quantity {_short(value)} is too large (at most {MAX_QUANTITY})")
    return int(number)


def _date(value: Any, _type: Any) -> date:
    if not isinstance(value, str):
        raise ValueError(f"expected a date YYYY-MM-DD, got {type(value).__name__}")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"not a date YYYY-MM-DD: {_short(value)}") from None


def make_converter(tz: ZoneInfo) -> cattrs.Converter:
    """The converter that structures raw event dicts for a program in zone ``tz``.

    (cattrs is imported here, not with this module: only an event the quick readers refuse needs it, to name
    what is wrong, and its import, about 8 ms, was part of the start of every command and Engine.)"""
    import cattrs

    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(str, _text)
    converter.register_structure_hook(Decimal, _decimal)
    converter.register_structure_hook(date, _date)
    converter.register_structure_hook(datetime, lambda value, _t: from_us(_instant(value, tz)))

    def check_item(value: Any, _type: Any) -> _ItemFields:
        item = structure_item(value)
        return _ItemFields(item.sku, item.category, item.quantity, from_units(item.price))

    converter.register_structure_hook(_ItemFields, check_item)
    converter.register_structure_hook_func(lambda t: t == tuple[str, ...], lambda value, _t: _reward_names(value))
    return converter


def _reward_names(value: Any) -> tuple[str, ...]:
    """``rewards_used``: a list of reward names; or, as a CSV cell holds it, a JSON list or names with commas."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError(f"not a list of reward names: {_short(value)}") from None
        else:
            value = [name.strip() for name in text.split(",") if name.strip()]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list of reward names, got {type(value).__name__}")
    if len(value) > 100:
        raise ValueError(f"a purchase uses at most 100 rewards, got {len(value)}")
    names = []
    for name in value:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a reward name must be text, got {_short(name)}")
        names.append(name)
    return tuple(names)


def structure_item(value: Any) -> Item:
    """One entry of a purchase's ``items`` → an ``Item``; ``ValueError`` (or a lookup error) if malformed."""
    if value.__class__ is not dict and not isinstance(value, Mapping):
        raise ValueError(f"an item must be an object, got {type(value).__name__}")
    return Item(
        sku=_text(value["sku"], str) if value.get("sku") is not None else None,
        category=_text(value["category"], str) if value.get("category") is not None else None,
        quantity=_quantity(value.get("quantity", 1), int),
        price=_money(value.get("price", 0)),
    )


def _leaf_message(error: BaseException, expected: Any) -> str:
    """Our own hooks raise ValueError with a sentence meant for people: keep it."""
    if isinstance(error, ValueError) and str(error):
        return str(error)
    import cattrs.v

    return cattrs.v.format_exception(error, expected)


def _describe(error: Exception) -> str:
    """One readable sentence from a cattrs error tree."""
    import cattrs
    from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

    if isinstance(error, (ClassValidationError, ForbiddenExtraKeysError)):
        messages = cattrs.transform_error(error, path="event", format_exception=_leaf_message)
        return "; ".join(m.replace("event.", "", 1) for m in messages)
    return str(error)


def _present_core(raw: dict[str, Any]) -> int:
    """How many of the event's own fields (not attributes) the dict holds, None values included."""
    return sum(1 for key in _CORE_FIELDS if key in raw)


_MAX_WHOLE_DIGITS = 12  # amounts below 10^12 (MAX_MONEY)
_FRACTION_PADS = tuple("0" * (money.DIGITS - digits) for digits in range(money.DIGITS + 1))  # by the digits written
# Instants whose year is in range in any zone, 1900-01-01T00:00Z up to 2106 (in µs): the rest goes the careful way.
_QUICK_FIRST_US, _QUICK_END_US = -2_208_988_800_000_000, 2**32 * 1_000_000

# The offsets timestamps are written with (``datetime.timezone`` objects, equal when their offsets are), in µs.
_OFFSETS: dict[Any, int] = {}
_OFFSETS_KEPT = 4096


def _offset_us(zone: Any) -> int:
    """A timestamp's fixed offset in µs, kept in ``_OFFSETS``."""
    found = delta_us(zone.utcoffset(None))
    if len(_OFFSETS) >= _OFFSETS_KEPT:
        _OFFSETS.clear()
    _OFFSETS[zone] = found
    return found


# Amounts and prices as written → micro-units: prices repeat (a menu, a shop's price list), and a dictionary
# lookup is a tenth of reading the digits again. Bounded: emptied when full. 65,536 texts (a few MB): the
# CDNOW-like history has 11,666 distinct amounts in 70,000 purchases, which a cache of 4,096 emptied again
# and again (most amounts were read digit by digit).
_UNITS: dict[str, int] = {}
_UNITS_KEPT = 65_536


def _quick_units(value: Any) -> int | None:
    """A plain non-negative amount ("12.50", 12) → micro-units, or None to read it carefully."""
    if value.__class__ is str:
        units = _UNITS.get(value)
        return units if units is not None else _text_units(value)
    if value.__class__ is int and 0 <= value < 10**_MAX_WHOLE_DIGITS:
        return value * money.SCALE
    return None


def _text_units(value: str) -> int | None:
    """``_quick_units`` of a text not in ``_UNITS`` (kept there once read)."""
    whole, dot, fraction = value.partition(".")
    if not (whole.isascii() and whole.isdigit() and len(whole) <= _MAX_WHOLE_DIGITS):
        return None
    if not dot:
        units = int(whole) * money.SCALE
    elif not (fraction.isascii() and fraction.isdigit() and len(fraction) <= money.DIGITS):
        return None
    else:
        units = int(whole + fraction + _FRACTION_PADS[len(fraction)])  # one int() of the digits, in micro-units
    if len(_UNITS) >= _UNITS_KEPT:
        _UNITS.clear()
    _UNITS[value] = units
    return units


def _quick_text(value: Any) -> str | None:
    return value if value.__class__ is str and value and not value.isspace() else None


_new_tuple = tuple.__new__


# Items as sent → Items: a shop sends the same lines again and again (a menu, a price list), and looking a line up
# by its values costs two thirds of checking them again. Only lines whose quantity is an int and whose price is
# text are looked up (so that True, 1.0 or a float price, equal keys to 1 and 1, are never taken for a kept line),
# and only lines that passed the checks are kept. A kept sku or category is plain text, which a str subclass
# equal to it would be read as anyway. Each is kept with its Item as a plain tuple, as the content key holds it
# (``_key_of``: making those again took three quarters of the key of a purchase with two lines). Bounded:
# emptied when full.
_ITEMS: dict[tuple[Any, ...], tuple[Item, tuple[Any, ...]]] = {}
_ITEMS_KEPT = 65_536


def quick_items(raw_items: Any) -> tuple[Item, ...] | None:
    """A purchase's plain ``items`` list → Items, or None to read them carefully (same rules as ``_quick``)."""
    read = quick_lines(raw_items)
    return None if read is None else read[0]


def quick_lines(raw_items: Any) -> tuple[tuple[Item, ...], tuple[tuple[Any, ...], ...]] | None:
    """``quick_items``, with the Items also as plain tuples (the content key's ``items``), or None."""
    if raw_items.__class__ is not list:
        return None
    built = []
    plain = []
    for item in raw_items:
        if item.__class__ is not dict:
            return None
        get = item.get
        sku, category, quantity, price = get("sku"), get("category"), get("quantity"), get("price")
        # The line's size says whether it has a field besides these four (``quick_fields`` does the same with
        # the event's), a quarter cheaper than comparing its keys; a field given as None is read carefully.
        if len(item) != (sku is not None) + (category is not None) + (quantity is not None) + (price is not None):
            return None
        line = (sku, category, 1 if quantity is None else quantity, 0 if price is None else price)
        kept = line[2].__class__ is int and line[3].__class__ is str  # a line looked up and kept
        known = None
        if kept:
            try:
                known = _ITEMS.get(line)
            except TypeError:  # an sku or category that cannot be a key (a list): read carefully, and refused
                return None
        if known is None:
            one = _quick_item(*line)
            if one is None:
                return None
            known = (one, tuple(one))
            if kept:
                if len(_ITEMS) >= _ITEMS_KEPT:
                    _ITEMS.clear()
                _ITEMS[line] = known
        built.append(known[0])
        plain.append(known[1])
    return tuple(built), tuple(plain)


def _quick_item(sku: Any, category: Any, quantity: Any, price: Any) -> Item | None:
    """One line's values checked and read (``quick_items`` for a line not in ``_ITEMS``), or None."""
    if sku is not None and (sku.__class__ is not str or not sku or sku.isspace()):
        return None
    if category is not None and (category.__class__ is not str or not category or category.isspace()):
        return None
    if quantity.__class__ is not int or not 0 < quantity <= MAX_QUANTITY:
        return None
    units = _quick_units(price)
    if units is None:
        return None
    return _new_tuple(Item, (sku, category, quantity, units))  # Item(...) without its Python-level __new__


# ``quick_fields``' answer, in this order: the ``Event``'s first ten fields, then its ``friend``, ``account`` and
# ``key``, and whether the event has attributes still to read (then ``key`` is None).
QuickFields = tuple[str, str, str, int, "int | None", "str | None", "tuple[Item, ...]", "str | None", "str | None",
                    "date | None", "str | None", "str | None", "tuple[Any, ...] | None", bool]


def _quick(raw: Any, currency_of_program: str | None = None, plain_types: frozenset[str] = frozenset()) -> Event | None:
    """``quick_fields`` as an ``Event`` (``attributes`` None when it has attributes still to read), or None."""
    read = quick_fields(raw, currency_of_program, plain_types)
    if read is None:
        return None
    event_id, kind, customer, at, amount, currency, items, original, reward, birthday, friend, account, key, extra = read
    return Event(event_id, kind, customer, at, amount, currency, items, original, reward, birthday,
                 None if extra else {}, friend, account, (), None, None, key)  # type: ignore[arg-type]


def quick_fields(raw: Any, currency_of_program: str | None = None,
                 plain_types: frozenset[str] = frozenset()) -> QuickFields | None:
    """The common event read without detours, as its fields (``QuickFields``), or None when anything is unusual
    (then ``_read_carefully``).

    It accepts only what the careful path accepts, and ``_quick`` builds the
    same ``Event`` from what it reads (``tests/interpreter/test_event_reader.py``
    checks both on random input); the last field says the dict has keys beyond
    the event's own (attributes, which ``EventReader.read`` reads). The
    generated lane (``codegen._lane_maker``) reads the fields as they are and
    builds no ``Event`` at all.

    Given the program's currency and its ``plain_types`` (``EventReader``), it
    also works out the event's ``key`` (``content_key``) when the event is one that
    ``EventReader._check_type_rules`` passes at once: a purchase with an amount,
    a refund naming its purchase (with no amount or one above 0) or a plain
    type without one, in the program's currency, no attributes, no friend or
    account, items adding up within bounds. One pass over what it
    has just read in its own variables, where the two steps after it read each
    field of the event again (a tenth of an event's work in the engine).
    """
    if raw.__class__ is not dict:
        return None
    try:  # (subscripts: a third of a ``get`` call each)
        event_id, kind, customer, at_text = raw["id"], raw["type"], raw["customer"], raw["at"]
    except KeyError:
        return None  # a required field missing: the careful reader names it
    get = raw.get
    amount, currency, raw_items = get("amount"), get("currency"), get("items")
    # Most events have these fields and no other: then (once the four required ones are found below, each
    # one key) the dict's size says there is nothing else to look for.
    common = len(raw) == 4 + (amount is not None) + (currency is not None) + (raw_items is not None)
    friend = account = None
    if common:
        plain = True
        original = reward = birthday = None
    else:
        keys = raw.keys()
        plain = keys <= _PLAIN_FIELDS
        if not plain:
            if get("rewards_used") is not None or get("partner") is not None:
                return None  # issue 13's fields: read carefully
            friend, account = get("friend"), get("account")
            if (friend is not None and _quick_text(friend) is None) or (
                    account is not None and _quick_text(account) is None):
                return None
        original, reward, birthday = get("original"), get("reward"), get("birthday")
    # Texts neither empty nor blank (``_quick_text``, inline: this runs once per event).
    if (event_id.__class__ is not str or kind.__class__ is not str or customer.__class__ is not str
            or not event_id or not kind or not customer or event_id.isspace() or kind.isspace() or customer.isspace()
            or at_text.__class__ is not str or not at_text.isascii() or "\x00" in at_text):
        return None  # (Python's timestamp parser stops at a NUL byte: such a text is read carefully)
    try:
        parsed = datetime.fromisoformat(at_text)
    except ValueError:
        return None
    zone = parsed.tzinfo  # (``fromisoformat`` gives a fixed offset, a ``datetime.timezone``, or none)
    if zone is None:
        return None
    offset = _OFFSETS.get(zone)
    if offset is None:
        offset = _offset_us(zone)
    # ``to_us``, with the offset looked up: ``timestamp()`` and ``utcoffset()`` were a tenth of the Engine's time.
    at = ((parsed.toordinal() - 719_163) * 86_400 + parsed.hour * 3600 + parsed.minute * 60 + parsed.second
          ) * 1_000_000 + parsed.microsecond - offset  # (719_163: the ordinal of 1970-01-01)
    if not _QUICK_FIRST_US <= at < _QUICK_END_US:
        return None
    if amount is not None:
        if amount.__class__ is str:  # ``_quick_units``, written out
            units = _UNITS.get(amount)  # an amount seen before
            amount = units if units is not None else _text_units(amount)
        else:
            amount = _quick_units(amount)
        if amount is None:
            return None
    if currency is not None and (currency.__class__ is not str or not currency or currency.isspace()):
        return None
    if (original is not None and _quick_text(original) is None) or (
            reward is not None and _quick_text(reward) is None):
        return None
    if birthday is not None:
        try:
            birthday = _date(birthday, date)
        except ValueError:
            return None
    items: tuple[Item, ...] = ()
    lines: tuple[tuple[Any, ...], ...] = ()  # the items as plain tuples (the key's)
    if raw_items is not None:
        read_items = quick_lines(raw_items)
        if read_items is None:
            return None
        items, lines = read_items
    extra = not plain and not keys <= _CORE_FIELDS  # (``plain`` is True when ``keys`` was not looked at)
    if extra:  # attributes to read: ``EventReader.read`` does, then the type rules in full
        return (event_id, kind, customer, at, amount, currency, items, original, reward, birthday, friend, account,
                None, True)
    key = None
    # ``_check_type_rules``' common case (no partner or rewards used here), and ``content_key``'s.
    # A refund of a named purchase, of the rest or of an amount above 0, passes the type rules too: whether the
    # purchase is this customer's and has that much left is the state's to say (``Stepper.check``).
    if (friend is None and account is None and (currency is None or currency == currency_of_program)
            and ((kind == "purchase" and amount is not None) or (amount is None and kind in plain_types)
                 or (kind == "refund" and original is not None and (amount is None or amount > 0)))):
        total = 0
        for item in items:  # (prices are never negative here): their total within bounds
            total += item[3] * item[2]  # price × quantity
        if total <= _MAX_MONEY_UNITS:
            key = _plain_key(customer, kind, at, amount, lines, original, reward, birthday, ())
    return event_id, kind, customer, at, amount, currency, items, original, reward, birthday, friend, account, key, False


class EventReader:
    """Validates raw event dicts against one program (its zone, currency, types, attributes)."""

    def __init__(self, program: CheckedProgram) -> None:
        self.program = program
        self.tz = ZoneInfo(program.timezone)
        self.event_types = program.event_types | BUILTIN_EVENT_TYPES
        self.attribute_types = dict(program.attributes)
        self.currency = program.currency
        # Known types that need no more than knowing them (not refunds, redeems or purchases, which need fields).
        self.plain_types = frozenset(self.event_types - {"purchase", "refund", "redeem"})
        # A program without partners reads `partner` as before issue 13 (its declared attribute, or ignored).
        self._no_partners = not program.partners

    @functools.cached_property
    def converter(self) -> cattrs.Converter:
        """cattrs' converter for this program, made when an event first needs it (``make_converter``)."""
        return make_converter(self.tz)

    def read(self, raw: Any) -> Event:
        """Raw dict → Event, or EventError with the reason."""
        # (The quick reader leaves any event with a `partner` value to the readers below.)
        event = _quick(raw, self.currency, self.plain_types)
        if event is None:
            if self._no_partners and isinstance(raw, Mapping) and "partner" in raw:
                return self._read_without_partners(raw)
            return self._read_carefully(raw)
        if event.key is None:  # (with a key: the type rules passed, in ``_quick``)
            if event.attributes is None:  # keys beyond the event's own: declared attributes, or ignored
                event.attributes = self._attributes({k: v for k, v in raw.items() if k not in _CORE_FIELDS},
                                                    event.id)
            self._check_type_rules(event)
        return event

    def _read_carefully(self, raw: Any) -> Event:
        """Every field checked with a reason that names it: the path for everything ``_quick`` does not take."""
        if not isinstance(raw, Mapping):
            raise EventError(f"an event must be an object (a dict), got {type(raw).__name__}")
        raw_id = raw.get("id")
        try:
            event_id = _text(raw_id, str)
        except ValueError:
            event_id = None
        for key in ("id", "type", "customer", "at"):
            if raw.get(key) in (None, ""):
                raise EventError(f"missing required field '{key}'", event_id)
        core = {k: v for k, v in raw.items() if k in _CORE_FIELDS and v is not None}
        extra = {k: v for k, v in raw.items() if k not in _CORE_FIELDS}
        attributes = self._attributes(extra, event_id)
        try:
            event = self._structure_directly(core, attributes)
        except Exception as direct:  # noqa: BLE001 — cattrs below says precisely what is wrong
            reason = self._why_not(core, direct)
        else:
            self._check_type_rules(event)
            return event
        # Raised here, not in the handler: an error raised there keeps the one handled (and its frames) alive.
        raise EventError(reason, event_id)

    def _why_not(self, core: dict[str, Any], direct: Exception) -> str:
        """Why ``core`` is not an event, in cattrs' words (else ``direct``'s, the error the quick way met).

        The errors' frames are cleared: cattrs keeps the errors it gathers in its frames' locals, which
        their tracebacks hold in turn — cycles that only the collector frees, and a replay pauses it (a
        history of refused rows held 14 KB a row until the replay ended: 1.5 GiB for 100,000 rows).
        """
        from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

        converter = self.converter
        try:
            converter.structure(core, _Fields)
        except (ClassValidationError, ForbiddenExtraKeysError, ValueError, TypeError, KeyError) as err:
            _forget_frames(err)
            _forget_frames(direct)
            return _describe(err)
        _forget_frames(direct)
        return str(direct) or type(direct).__name__

    def _structure_directly(self, core: dict[str, Any], attributes: dict[str, Any]) -> Event:
        """The converter's work done by hand, with the same hooks, for speed.

        Structuring is a third of an event's cost through cattrs; a valid
        event goes this way, and anything that raises here is structured
        again by the converter, whose error names the field for the reason.
        """
        items = core.get("items", ())
        if not isinstance(items, (list, tuple)):
            raise TypeError("items must be a list")
        return Event(
            id=_text(core["id"], str),
            type=_text(core["type"], str),
            customer=_text(core["customer"], str),
            at=_instant(core["at"], self.tz),
            amount=_money(core["amount"]) if "amount" in core else None,
            currency=_text(core["currency"], str) if "currency" in core else None,
            items=tuple(structure_item(item) for item in items),
            original=_text(core["original"], str) if "original" in core else None,
            reward=_text(core["reward"], str) if "reward" in core else None,
            birthday=_date(core["birthday"], date) if "birthday" in core else None,
            attributes=attributes,
            rewards_used=_reward_names(core["rewards_used"]) if "rewards_used" in core else (),
            partner=_text(core["partner"], str) if "partner" in core else None,
            friend=_text(core["friend"], str) if "friend" in core else None,
            account=_text(core["account"], str) if "account" in core else None,
        )

    def _attributes(self, extra: Mapping[str, Any], event_id: str | None) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, value in extra.items():
            kind = self.attribute_types.get(str(name))
            if kind is None or value is None:
                continue  # hosts may send more than the rules read
            try:
                values[str(name)] = _attribute_value(value, kind)
            except ValueError as err:
                raise EventError(f"attribute '{name}': {err}", event_id) from None
        return values

    def _check_type_rules(self, event: Event) -> None:
        kind = event.type
        if event.partner is not None or event.rewards_used:
            self._check_wallet_and_partner(event)
        if event.friend is not None:
            self._check_friend(event)
        if (event.currency is None or event.currency == self.currency) and (
                (kind == "purchase" and event.amount is not None and event.amount >= 0)
                or (event.amount is None and kind in self.plain_types)):
            # The common case, which nothing below rejects if its items' prices are not negative and add up.
            total = 0
            for item in event.items:
                if item.price < 0:
                    break
                total += item.price * item.quantity
            else:
                if total <= _MAX_MONEY_UNITS:
                    return

        def reject(reason: str) -> None:
            raise EventError(reason, event.id)

        if event.type not in self.event_types:
            known = ", ".join(sorted(self.event_types))
            reject(f"unknown event type {_short(event.type)} (known: {known}; declare others with `event NAME`)")
        if event.currency is not None and event.currency != self.program.currency:
            currency = event.currency if len(event.currency) <= 60 else _short(event.currency)
            reject(f"currency {currency} does not match the program currency {self.program.currency}")
        if event.type == "purchase":
            if event.amount is None:
                reject("a purchase needs an 'amount'")
            elif event.amount < 0:
                reject(f"amount must not be negative, got {money.show(event.amount)}")
        elif event.amount is not None and event.type != "refund":
            reject(f"'amount' only belongs on purchase and refund events, not on {event.type}")
        for item in event.items:
            if item.price < 0:
                reject(f"item price must not be negative, got {money.show(item.price)}")
        if event.items and sum(item.price * item.quantity for item in event.items) > _MAX_MONEY_UNITS:
            reject(f"the items' prices × quantities add up to more than {MAX_MONEY:,f}")
        if event.type == "refund":
            if not event.original:
                reject("a refund needs 'original', the id of the refunded purchase")
            if event.amount is not None and event.amount <= 0:
                reject(f"a refund amount must be above 0, got {money.show(event.amount)}")
        if event.type == "redeem" and not event.reward:
            reject("a redeem needs 'reward', the name of the reward")


    # ---- issue 13: rewards used and partners

    def _read_without_partners(self, raw: Mapping[str, Any]) -> Event:
        """A program that declares no partner reads ``partner`` as it always did: as the attribute it
        declares under that name, or not at all (hosts may send more than the rules read)."""
        event = self.read({key: value for key, value in raw.items() if key != "partner"})
        if "partner" in self.attribute_types:
            value = self._attributes({"partner": raw["partner"]}, event.id)
            if value:
                event.attributes = {**event.attributes, **value}
                event.key = None  # (its attributes are part of the content key)
        return event

    def _check_wallet_and_partner(self, event: Event) -> None:
        """Reject what no state could make right; convert a partner purchase paid in another currency.

        Whether the customer holds the rewards used is checked against the
        state (``Stepper.check``); here only the event itself.
        """
        program = self.program

        def reject(reason: str) -> None:
            raise EventError(reason, event.id)

        if event.rewards_used:
            if event.type != "purchase":
                reject(f"only a purchase can use rewards ('rewards_used' on a {_short(event.type)} event)")
            for name in event.rewards_used:
                if name not in program.rewards:
                    known = ", ".join(sorted(program.rewards)) or "none"
                    reject(f"unknown reward {_short(name)} in 'rewards_used' (rewards: {known})")
        partner = event.partner
        if partner is None:
            return
        if partner not in program.partners:
            known = ", ".join(sorted(program.partners)) or "none declared"
            reject(f"unknown partner {_short(partner)} (partners: {known})")
        currency = event.currency
        if currency is None or currency == self.currency:
            return
        rate = program.rates.get(currency)
        if rate is None:
            shown = currency if len(currency) <= 60 else _short(currency)
            reject(f"a purchase at partner '{partner}' in {shown} needs a rate: declare "
                   f"'rate {shown} … {self.currency}' (no rate for {shown})")
            return
        if event.type != "purchase" and event.amount is None:
            event.currency = self.currency
            return
        from poletti.interpreter.wallet import to_cent

        def convert(units: int) -> int:
            # To the cent, halves up: what a till in the program currency would show.
            return to_units(to_cent(from_units(units) * rate))

        paid = event.amount
        if paid is not None:
            event.paid = (currency, paid)
            event.amount = convert(paid)
        event.items = tuple(item._replace(price=convert(item.price)) for item in event.items)
        event.currency = self.currency

    # ---- referrals

    def _check_friend(self, event: Event) -> None:
        """A referral's ``friend``: what can be said without state (the links are checked by ``referrals``)."""
        if event.type != "referral":
            raise EventError(f"'friend' only belongs on referral events, not on {_short(event.type)}", event.id)
        if event.friend == event.customer:
            raise EventError(f"customer {_short(event.customer)} cannot refer themself", event.id)
        if self.attribute_types.get("friend") is Type.TEXT and "friend" not in event.attributes:
            # A program written before `friend` was an event field reads it as a declared attribute.
            event.attributes = {**event.attributes, "friend": event.friend}


def _attribute_value(value: Any, kind: Type) -> Any:
    if kind in (Type.TEXT,):
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {type(value).__name__}")
        return value
    if kind is Type.BOOL:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_short(value)}")
        return value
    if kind in (Type.NUMBER, Type.MONEY):
        return _decimal(value)
    if kind in (Type.COUNT, Type.POINTS):
        number = _decimal(value)
        if number != number.to_integral_value():
            raise ValueError(f"expected a whole number, got {_short(value)}")
        return int(number)
    if kind is Type.DATE:
        return _date(value, date)
    raise ValueError(f"attributes of type {kind} are not supported")


# ------------------------------------------------------------ same content

# The fields of an event's content, in the order a conflict names them.
def _key_of(customer: str, kind: str, at: int, amount: int | None, items: tuple[Item, ...], original: str | None,
            reward: str | None, birthday: date | None, attributes: tuple[tuple[str, Any], ...]) -> tuple[Any, ...]:
    """The content key of an event without the optional fields, from its values (``content_key`` reads them
    from an event)."""
    return _plain_key(customer, kind, at, amount, tuple(map(tuple, items)) if items else (), original, reward,
                      birthday, attributes)


def _plain_key(customer: str, kind: str, at: int, amount: int | None, lines: tuple[tuple[Any, ...], ...],
               original: str | None, reward: str | None, birthday: date | None,
               attributes: tuple[tuple[str, Any], ...]) -> tuple[Any, ...]:
    """``_key_of`` with the items given as plain tuples (the quick reader keeps them so): the one place the
    key's layout is written."""
    # (plain tuples: kept by the millions, never walked by the garbage collector)
    return (customer, kind, at, amount, lines, original, reward, None if birthday is None else birthday.isoformat(),
            attributes)


def content_key(event: Event) -> tuple[Any, ...]:
    """What makes two events with one id the same event, as plain values (the contract's "same content").

    Read from the validated event, so the same instant in another offset,
    12.5 for 12.50, or the program's currency written or left out, are the
    same; undeclared attributes, which the rules never read, do not count.
    """
    key = event.key
    if key is not None:  # worked out by the quick reader
        return key
    attributes = event.attributes
    attributes = tuple(sorted((name, _plain(value)) for name, value in attributes.items())) if attributes else ()
    key = _key_of(event.customer, event.type, event.at, event.amount, event.items, event.original, event.reward,
                  event.birthday, attributes)
    # The optional fields only when present, so that the keys (and fingerprints) of events without them stay
    # what stores hold: one more item, the (name, value) pairs of the fields present (``CONTENT_FIELDS``).
    if not event.rewards_used and event.partner is None and event.friend is None and event.account is None:
        return key  # (the common case, tested first: this runs once per event)
    paid = event.paid
    extras = tuple((name, value) for name, value in (
        ("rewards_used", event.rewards_used or None), ("partner", event.partner),
        ("paid", None if paid is None else f"{money.show(paid[1])} {paid[0]}"),
        ("friend", event.friend), ("account", event.account)) if value is not None)
    return key + (extras,)


def conflict_reason(event_id: str, before: dict[str, Any] | None, now: dict[str, Any]) -> str:
    """Why an event is rejected as a conflict: the id was applied before with other content (what differs)."""
    if before is None:
        return (f"conflict: an event with id '{event_id}' was already applied with different content; "
                "an id names one event (send a new id for a new event)")
    # An empty value and an absent one are the same (issue 13's fields are absent from older contents).
    changed = [name for name in CONTENT_FIELDS if (before.get(name) or None) != (now.get(name) or None)]
    shown = "; ".join(f"{name} {_shown(before.get(name))} then, {_shown(now.get(name))} now" for name in changed[:3])
    return (f"conflict: an event with id '{event_id}' was already applied with different content ({shown}); "
            "an id names one event (send a new id for a new event)")


def _shown(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return "none"
    return value if isinstance(value, str) else json_text(value)


def json_text(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _plain(value: Any) -> Any:
    """An attribute value as a plain, canonical value (a Decimal by its value: 12.5 and 12.50 are one)."""
    if isinstance(value, Decimal):
        return str(value.normalize()) if value != 0 else "0"
    if isinstance(value, date):
        return value.isoformat()
    return value
