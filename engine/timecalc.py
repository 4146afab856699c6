"""Time arithmetic for windows, calendar periods, birthdays and timestamps.

Every function here takes timezone-aware datetimes and rejects naive ones
with ``ValueError``: a naive datetime names no instant, and guessing a zone
would silently shift windows and expiries by hours.

Every datetime returned is in UTC (``datetime.timezone.utc``). Python
compares and subtracts two datetimes that share one ``tzinfo`` by their wall
clock, ignoring ``fold``; in the hour repeated when daylight saving time
ends, two different instants in ``Europe/Helsinki`` then compare equal. UTC
datetimes have no folds, so ``<``, ``==`` and ``-`` on our results are always
instant comparisons. Convert with ``.astimezone(tz)`` only for display.

Wall-clock times that do not exist (the hour skipped when DST starts) or
exist twice (the hour repeated when it ends) are resolved by the contract's
one rule (LANGUAGE.md, "Values and types"), for every calendar shift alike:

* a time in a gap moves to the *end* of the gap, the instant the clocks
  jump (03:30 on the day Helsinki springs forward is 04:00 EEST, the
  instant 01:00 UTC);
* a time in a fold is the *earlier* of its two instants (03:30 on the day
  Helsinki falls back is 03:30 EEST, the instant 00:30 UTC).

A window W that a purchase at instant p counts in is [p, add(p, W)): the
purchase enters at p and leaves exactly once, at ``add(p, W)``
(:func:`window_end`), the same rule as a lot's expiry.
"""

from __future__ import annotations

import calendar
import functools

import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Final, Literal
from zoneinfo import ZoneInfo

import attrs

from poletti.dsl import classes

__all__ = [
    "DAY_US",
    "DURATION_UNITS",
    "EPOCH",
    "US_PER_SECOND",
    "WEEK_US",
    "add_us",
    "day_start_us",
    "from_us",
    "local_date",
    "next_birthday_us",
    "period_key_us",
    "to_us",
    "utc_offset_us",
    "PERIODS",
    "Duration",
    "Period",
    "PeriodKey",
    "add",
    "from_wall_clock",
    "in_window",
    "window_end",
    "next_birthday",
    "parse_timestamp",
    "period_end",
    "period_key",
    "period_start",
    "require_aware",
    "subtract",
    "whole_days_between",
]

UTC: Final = timezone.utc

#: Duration units: days, weeks, calendar months, calendar years.
DURATION_UNITS: Final = frozenset({"d", "w", "m", "y"})

Period = Literal["day", "week", "month", "year"]
#: Calendar periods of caps such as ``limit 3 times per month``.
PERIODS: Final[frozenset[str]] = frozenset({"day", "week", "month", "year"})

#: ("day", y, m, d) | ("week", iso_year, iso_week) | ("month", y, m) | ("year", y)
PeriodKey = tuple[str | int, ...]

_DURATION_RE: Final = re.compile(r"\s*([0-9]+)\s*([dwmy])\s*")
_DATE_ONLY_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ONE_DAY: Final = timedelta(days=1)
_ONE_MICROSECOND: Final = timedelta(microseconds=1)


def _check_amount(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    # bool is an int subclass; `True` weeks is a bug upstream, not a duration.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"duration amount must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"duration amount must not be negative, got {value}")


def _check_unit(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if value not in DURATION_UNITS:
        raise ValueError(
            f"duration unit must be one of d, w, m, y (days, weeks, months, years), got {value!r}"
        )


@classes.frozen
class Duration:
    """A length of time as written in rules: ``30d``, ``12w``, ``12m``, ``1y``.

    ``d`` and ``w`` are absolute (multiples of 24 hours); ``m`` and ``y`` are
    calendar months and years, counted on the wall clock of the program zone
    (see :func:`add`).
    """

    amount: int = attrs.field(validator=_check_amount)
    unit: str = attrs.field(validator=_check_unit)

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse ``"30d"`` → ``Duration(30, "d")``; surrounding spaces are allowed.

        Raises ``ValueError`` for anything else (``"30"``, ``"1.5m"``, ``"-2d"``).
        """
        match = _DURATION_RE.fullmatch(text)
        if match is None:
            raise ValueError(
                f"not a duration: {text!r} (expected a whole number and d, w, m or y, e.g. 30d, 12m)"
            )
        return cls(int(match.group(1)), match.group(2))

    @property
    def is_calendar(self) -> bool:
        """True for months and years, whose length depends on where they start."""
        return self.unit in ("m", "y")

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def require_aware(t: datetime, name: str = "datetime") -> datetime:
    """Return ``t`` unchanged if it is timezone-aware; raise ``ValueError`` if naive."""
    if not isinstance(t, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(t).__name__}")
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {t.isoformat()}")
    return t


def _utc(t: datetime, name: str = "datetime") -> datetime:
    if t.__class__ is datetime and t.tzinfo is UTC:
        return t  # the engine's own instants are all UTC already: skip the checks
    return require_aware(t, name).astimezone(UTC)


def from_wall_clock(wall: datetime, tz: ZoneInfo) -> datetime:
    """Naive wall-clock time in ``tz`` → the UTC instant it denotes.

    A time in a gap (skipped when DST starts) is the end of the gap; a time
    in a fold (repeated when DST ends) is its earlier instant (see the module
    docstring). Raises ``ValueError`` if ``wall`` is aware.
    """
    if wall.tzinfo is not None:
        raise ValueError(f"expected a naive wall-clock time, got {wall.isoformat()}")
    # fold=0 is the earlier instant of a repeated time, as the rule wants.
    instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant
    return _gap_end(wall, tz, instant)


def _gap_end(wall: datetime, tz: ZoneInfo, after_gap: datetime) -> datetime:
    """The instant the clocks jumped over ``wall`` (a time that does not exist in ``tz``).

    zoneinfo reads a gap time with the offset before the jump (fold=0, giving
    ``after_gap``, an instant past the jump) or after it (fold=1, an instant
    before the jump); the jump lies between the two. zoneinfo does not expose
    its transitions, so search for it: gaps are rare and about 40 halvings
    find it to the microsecond.
    """
    before_gap = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    offset_after = after_gap.astimezone(tz).utcoffset()
    if before_gap >= after_gap:  # pragma: no cover - a zone whose gap zoneinfo reads the other way round
        before_gap, after_gap = after_gap, before_gap
    while after_gap - before_gap > _ONE_MICROSECOND:
        middle = before_gap + (after_gap - before_gap) / 2
        if middle.astimezone(tz).utcoffset() == offset_after:
            after_gap = middle
        else:
            before_gap = middle
    return after_gap


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    # Where a zone skips midnight (DST at 00:00), the end of the gap is the
    # first instant that does exist on that day, which is what a day's start means.
    return from_wall_clock(datetime.combine(day, time()), tz)


def _shift_months(wall: datetime, months: int) -> datetime:
    index = wall.year * 12 + (wall.month - 1) + months
    year, month0 = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise ValueError(f"{wall.date().isoformat()} shifted by {months} months is out of range")
    month = month0 + 1
    # Clamp: 31 March − 1 month is the last day of February, not 3 March.
    day = min(wall.day, _days_in_month(year, month))
    return wall.replace(year=year, month=month, day=day)


def _days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


@functools.lru_cache(maxsize=1 << 16)
def _shift_calendar(instant: datetime, months: int, tz: ZoneInfo) -> datetime:
    # Cached: the engine shifts the same instants (a window's oldest purchase,
    # a lot's expiry) again and again while a customer's history grows, and a
    # wall-clock round trip is the costliest step of an event.
    wall = instant.astimezone(tz).replace(tzinfo=None, fold=0)
    return from_wall_clock(_shift_months(wall, months), tz)


def _shift(t: datetime, d: Duration, tz: ZoneInfo, sign: int) -> datetime:
    if not isinstance(d, Duration):
        raise TypeError(f"expected a Duration, got {type(d).__name__}")
    instant = _utc(t, "t")
    if d.amount == 0:
        # Without this, a wall-clock round trip would move an instant in the
        # second pass of a DST fold to the first pass.
        return instant
    try:
        if d.unit == "d":
            return instant + sign * timedelta(days=d.amount)
        if d.unit == "w":
            return instant + sign * timedelta(weeks=d.amount)
        return _shift_calendar(instant, sign * d.amount * (12 if d.unit == "y" else 1), tz)
    except OverflowError as exc:
        raise ValueError(f"{t.isoformat()} shifted by {sign * d.amount}{d.unit} is out of range") from exc


def add(t: datetime, d: Duration, tz: ZoneInfo) -> datetime:
    """Instant ``t`` plus duration ``d`` → a UTC instant.

    Days and weeks are exact multiples of 24 hours (``30d`` is 720 hours,
    even across a DST change). Months and years move the wall-clock date in
    ``tz`` and keep the wall-clock time; the day of month is clamped to the
    target month (31 January + 1m → 28 or 29 February; 29 February 2028 +
    1y → 28 February 2029). A resulting wall time in a DST gap moves to the
    end of the gap, one in a fold is the earlier instant (module docstring). Raises ``ValueError`` for a
    naive ``t`` or a result outside years 1–9999.
    """
    return _shift(t, d, tz, +1)


def add_months_us_once(us: int, months: int, tz: ZoneInfo) -> int:
    """``add_us(us, Nm, tz)`` for ``months`` > 0, without the cache :func:`add` keeps: for a bulk pass over
    instants that each come once (a replay's window exits near a clock change), which would only fill it."""
    return to_us(_shift_calendar.__wrapped__(from_us(us), months, tz))


def subtract(t: datetime, d: Duration, tz: ZoneInfo) -> datetime:
    """Instant ``t`` minus duration ``d`` → a UTC instant; the mirror of :func:`add`.

    31 March − 1m → 28 or 29 February, same wall-clock time in ``tz``.
    """
    return _shift(t, d, tz, -1)


def window_end(p: datetime, d: Duration, tz: ZoneInfo) -> datetime:
    """The instant a purchase (or visit, or cap use) at ``p`` leaves the window ``d``: ``add(p, d)``.

    The contract: "A purchase at instant p counts in a window W from p until
    the instant p + W, exclusive — the same rule as a lot's expiry, so a
    purchase leaves a window exactly once and never comes back."
    """
    return add(p, d, tz)


def in_window(x: datetime, t: datetime, d: Duration, tz: ZoneInfo) -> bool:
    """True if something at instant ``x`` counts in the window ``d`` at instant ``t``: x <= t < add(x, d)."""
    ux, ut = _utc(x, "x"), _utc(t, "t")
    return ux <= ut < window_end(ux, d, tz)


def _check_period(period: str) -> None:
    if period not in PERIODS:
        raise ValueError(f"period must be one of day, week, month, year; got {period!r}")


def _first_day(day: date, period: str) -> date:
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())  # Monday is weekday 0
    if period == "month":
        return day.replace(day=1)
    return day.replace(month=1, day=1)


def _next_first_day(first: date, period: str) -> date:
    if period == "day":
        return first + _ONE_DAY
    if period == "week":
        return first + timedelta(weeks=1)
    if period == "month":
        return date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return date(first.year + 1, 1, 1)


def period_start(t: datetime, period: str, tz: ZoneInfo) -> datetime:
    """Start of the calendar ``period`` in ``tz`` that contains instant ``t`` (UTC).

    ``period`` is ``"day"``, ``"week"`` (weeks start on Monday), ``"month"``
    or ``"year"``. The period is [start, end): the start itself belongs to it.
    The start is local midnight of the period's first day.
    """
    _check_period(period)
    local_day = _utc(t, "t").astimezone(tz).date()
    return _midnight(_first_day(local_day, period), tz)


def period_end(t: datetime, period: str, tz: ZoneInfo) -> datetime:
    """Exclusive end of the calendar ``period`` containing ``t`` (UTC).

    This is the start of the next period, so ``period_start(t) <= t <
    period_end(t)``; a day is 23 or 25 hours long on the days DST changes.
    """
    _check_period(period)
    local_day = _utc(t, "t").astimezone(tz).date()
    return _midnight(_next_first_day(_first_day(local_day, period), period), tz)


def period_key(t: datetime, period: str, tz: ZoneInfo) -> PeriodKey:
    """A hashable name for the calendar ``period`` in ``tz`` that contains ``t``.

    ``("day", 2026, 11, 23)``, ``("week", 2026, 48)`` (ISO year and week, so
    Monday 29 December 2025 is ``("week", 2026, 1)``), ``("month", 2026,
    11)``, ``("year", 2026)``. Keys of the same period kind order by time.
    """
    _check_period(period)
    local_day = _utc(t, "t").astimezone(tz).date()
    if period == "day":
        return ("day", local_day.year, local_day.month, local_day.day)
    if period == "week":
        iso = local_day.isocalendar()
        return ("week", iso.year, iso.week)
    if period == "month":
        return ("month", local_day.year, local_day.month)
    return ("year", local_day.year)


def parse_timestamp(value: str, tz: ZoneInfo) -> datetime:
    """Parse an event's ISO 8601 ``at`` → a UTC instant.

    Accepted:

    * a date and time with a UTC offset or ``Z``:
      ``2026-11-23T10:00:00+02:00``, ``2026-11-23T08:00Z``;
    * a date alone, ``2026-11-23``, meaning midnight of that day in ``tz``
      (the program zone), as the language defines.

    A date and time *without* an offset is rejected with ``ValueError``: it
    is ambiguous (the sender's zone or the program's?), and a wrong guess
    would move purchases across window and day boundaries without a trace.
    """
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be a string, got {type(value).__name__}")
    text = value.strip()
    # Python's parser stops reading at a NUL byte ("…Z\x00" would pass): only printable ASCII is a timestamp.
    if not (text.isascii() and text.isprintable()):
        raise ValueError(f"not an ISO 8601 timestamp: {value!r} (it holds a control or non-ASCII character)")
    try:
        return _parse_timestamp(text, value, tz)
    except OverflowError:  # a time at the very edge of the calendar, moved into UTC
        raise ValueError(f"timestamp {value!r} is out of range") from None


def _parse_timestamp(text: str, value: str, tz: ZoneInfo) -> datetime:
    if _DATE_ONLY_RE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"not a valid date: {value!r} ({exc})") from None
        return _midnight(day, tz)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not an ISO 8601 timestamp: {value!r} "
            "(expected e.g. 2026-11-23T10:00:00+02:00, 2026-11-23T08:00:00Z or 2026-11-23)"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(
            f"timestamp {value!r} has no UTC offset; add one (e.g. +02:00 or Z), "
            "or give a date alone (YYYY-MM-DD) for midnight in the program time zone"
        )
    return parsed.astimezone(UTC)


def _birthday_in(year: int, birthday: date) -> date:
    if birthday.month == 2 and birthday.day == 29 and _days_in_month(year, 2) == 28:
        return date(year, 2, 28)
    return birthday.replace(year=year)


def next_birthday(after: datetime, birthday: date, tz: ZoneInfo) -> datetime:
    """Start of the first birthday strictly after instant ``after`` (UTC).

    The birthday starts at local midnight in ``tz``; a 29 February birthday
    falls on 28 February in common years. An ``after`` exactly at a
    birthday's midnight returns next year's: that birthday has already begun.
    ``birthday`` is a date (its year is ignored).
    """
    if isinstance(birthday, datetime) or not isinstance(birthday, date):
        raise TypeError(f"birthday must be a date, got {type(birthday).__name__}")
    instant = _utc(after, "after")
    year = instant.astimezone(tz).year
    # This year's birthday may have passed; next year's never has, since its
    # local date lies beyond `after`'s.
    for candidate_year in (year, year + 1):
        start = _midnight(_birthday_in(candidate_year, birthday), tz)
        if start > instant:
            return start
    raise AssertionError("unreachable: next year's birthday is always later")  # pragma: no cover


def whole_days_between(a: datetime, b: datetime, tz: ZoneInfo) -> int:
    """Whole days elapsed from instant ``a`` to instant ``b``: floor((b − a) / 24 h).

    Days are absolute 24-hour spans, like ``30d`` windows, not calendar-date
    differences: 23:00 to 01:00 the next day is 0 days, and 25 elapsed hours
    across a DST change are 1 day. Negative when ``b`` is before ``a``
    (floored: one second before is −1). ``tz`` does not change the answer;
    it is accepted so every time helper has the same shape.
    """
    del tz  # absolute days do not depend on the zone (see docstring)
    return (_utc(b, "b") - _utc(a, "a")) // _ONE_DAY


# ------------------------------------------------------------ instants as integers
#
# The engine keeps every instant as an integer: microseconds since
# 1970-01-01T00:00Z. Comparing, storing and hashing integers is cheaper than
# datetimes, and an integer has no zone or fold to get wrong. The functions
# below are the calendar operations on such instants; each converts to a
# datetime only where the wall clock matters.

US_PER_SECOND: Final = 1_000_000
DAY_US: Final = 86_400 * US_PER_SECOND
WEEK_US: Final = 7 * DAY_US
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(t: datetime) -> int:
    """An aware datetime → microseconds since the epoch (exact, for any year)."""
    offset = t.utcoffset()
    if offset is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {t.isoformat()}")
    seconds = (t.toordinal() - _EPOCH_ORDINAL) * 86_400 + t.hour * 3600 + t.minute * 60 + t.second
    return seconds * US_PER_SECOND + t.microsecond - delta_us(offset)


def from_us(us: int) -> datetime:
    """Microseconds since the epoch → a UTC datetime."""
    return EPOCH + timedelta(0, 0, us)  # positional: a third quicker than microseconds=us


_HOUR_US: Final = 3600 * US_PER_SECOND
_NEAR_US: Final = 26 * _HOUR_US  # more than any clock change ever jumped (24 h, across the date line)
_MIXED: Final = None  # an hour in which the offset changes: ask zoneinfo for each instant
_OFFSETS: dict[ZoneInfo, dict[int, int | None]] = {}
_OFFSET_CACHE_LIMIT: Final = 1 << 18


def _exact_offset(us: int, tz: ZoneInfo) -> int:
    delta = from_us(us).astimezone(tz).utcoffset()
    assert delta is not None
    return delta_us(delta)


def delta_us(delta: timedelta) -> int:
    """A timedelta (a UTC offset) → microseconds, exactly."""
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


def utc_offset_us(us: int, tz: ZoneInfo) -> int:
    """The offset of ``tz`` from UTC at instant ``us``, in µs.

    Cached per hour. A new hour looks at its whole UTC day: when the day's
    first and last microsecond have the same offset, every hour of it has
    that offset, because no zone changes its offset twice within a day (in
    the tz database the nearest two changes of one zone are four days
    apart: ``tests/engine/test_timecalc.py`` checks every zone installed).
    Otherwise the hour alone: the same test on its first and last
    microsecond, and an hour in which the offset changes is looked up
    instant by instant.
    """
    cache = _OFFSETS.get(tz)
    if cache is None or len(cache) > _OFFSET_CACHE_LIMIT:
        cache = _OFFSETS[tz] = {}
    hour = us // _HOUR_US
    if hour in cache:
        offset = cache[hour]
    else:
        day_first = hour - hour % 24
        start = _exact_offset(day_first * _HOUR_US, tz)
        if start == _exact_offset((day_first + 24) * _HOUR_US - 1, tz):
            for each in range(day_first, day_first + 24):
                cache[each] = start
            offset = start
        else:
            start = _exact_offset(hour * _HOUR_US, tz)
            offset = cache[hour] = start if start == _exact_offset(hour * _HOUR_US + _HOUR_US - 1, tz) else _MIXED
    return _exact_offset(us, tz) if offset is _MIXED else offset


_QUIET: dict[ZoneInfo, dict[int, int | None]] = {}


def _quiet_offset(us: int, tz: ZoneInfo) -> int | None:
    """The zone's offset at ``us`` if it holds from 26 hours before ``us``'s hour to 26 hours after, else None.

    A wall-clock time in such a stretch is neither in a gap nor in a fold,
    so it maps to one instant with this offset. Cached per hour.
    """
    cache = _QUIET.get(tz)
    if cache is None or len(cache) > _OFFSET_CACHE_LIMIT:
        cache = _QUIET[tz] = {}
    hour = us // _HOUR_US
    if hour in cache:
        return cache[hour]
    start = hour * _HOUR_US
    offset = utc_offset_us(start, tz)
    quiet = offset if utc_offset_us(start - _NEAR_US, tz) == offset == utc_offset_us(
        start + _HOUR_US - 1 + _NEAR_US, tz) and utc_offset_us(start + _HOUR_US - 1, tz) == offset else None
    cache[hour] = quiet
    return quiet


@functools.lru_cache(maxsize=1 << 14)
def _shifted_day(ordinal: int, months: int) -> int:
    """The day ``months`` calendar months after the day ``ordinal``, clamped to the month's end."""
    day = date.fromordinal(ordinal)
    index = day.year * 12 + (day.month - 1) + months
    year, month0 = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise ValueError(f"{day.isoformat()} shifted by {months} months is out of range")
    return date(year, month0 + 1, min(day.day, _days_in_month(year, month0 + 1))).toordinal()


def add_us(us: int, d: Duration, tz: ZoneInfo) -> int:
    """:func:`add` on integer instants: ``us`` plus ``d`` (days and weeks exact, months on the wall clock).

    Months and years are shifted on the wall clock with integer arithmetic;
    only when the result is within a few hours of a clock change does the
    datetime-based :func:`add` settle it (gap → its end, fold → the earlier
    instant).
    """
    if d.unit == "d":
        return us + d.amount * DAY_US
    if d.unit == "w":
        return us + d.amount * WEEK_US
    if d.amount == 0:
        return us
    months = d.amount * (12 if d.unit == "y" else 1)
    offset = utc_offset_us(us, tz)
    days, time_of_day = divmod(us + offset, DAY_US)
    shifts = _SHIFTS.get((tz, months))
    if shifts is None or len(shifts) > _OFFSET_CACHE_LIMIT:
        shifts = _SHIFTS[(tz, months)] = {}
    known = shifts.get(days)
    if known is not None and known[0] == offset:
        return us + known[1]
    target = _shifted_day(days + _EPOCH_ORDINAL, months) - _EPOCH_ORDINAL
    wall = target * DAY_US + time_of_day
    guess = wall - offset
    landed = _quiet_offset(guess, tz)
    if landed is not None and _quiet_offset(wall - landed, tz) == landed:
        if known is None:
            # Every instant of this local day at this offset shifts by the same amount when the zone keeps one
            # offset around the whole target day (its guesses and landings, first and last µs, are quiet).
            first = target * DAY_US
            last = first + DAY_US - 1
            if (_quiet_offset(first - offset, tz) == landed and _quiet_offset(last - offset, tz) == landed
                    and _quiet_offset(first - landed, tz) == landed and _quiet_offset(last - landed, tz) == landed):
                shifts[days] = (offset, wall - landed - us)
        return wall - landed
    return to_us(add(from_us(us), d, tz))


class MonthShift:
    """``add_us(·, d, tz)`` for one calendar duration (months or years) and zone, as a callable of one instant.

    The generated code calls it once per purchase or lot (a window exit, an
    expiry), so it keeps what ``add_us`` adds per UTC hour: within an hour
    whose instants all have one offset and one local day, and whose
    results land where the zone's offset holds for 26 hours around them,
    every instant shifts by the same amount (the same local day maps to the
    same target day, and the wall time maps back with one offset). Other
    hours (near a clock change, a day boundary inside the hour) go through
    ``add_us`` every time.

    The first instant of an hour not seen yet works out its whole local day
    at once (``_day``): every UTC hour inside a day that shifts by one
    amount gets it. A new hour costs about as much as a hundred known ones
    (new offsets to look up, here and a year on), and a history has many
    more hours than days.
    """

    __slots__ = ("duration", "tz", "hours")

    def __init__(self, duration: Duration, tz: ZoneInfo) -> None:
        if duration.unit not in ("m", "y"):
            raise ValueError(f"MonthShift is for months and years, not {duration}")
        self.duration, self.tz = duration, tz
        self.hours: dict[int, int | None] = {}

    def __call__(self, us: int) -> int:
        shift = self.hours.get(us // _HOUR_US)
        if shift is not None:
            return us + shift
        return self._slowly(us)

    def _slowly(self, us: int) -> int:
        hour = us // _HOUR_US
        hours = self.hours
        if hour not in hours:
            if len(hours) > _OFFSET_CACHE_LIMIT:
                hours.clear()
            self._day(us)
            if hour not in hours:  # (an hour the day leaves out: at a day boundary or a clock change)
                hours[hour] = self._uniform(hour * _HOUR_US, hour * _HOUR_US + _HOUR_US - 1)
        return add_us(us, self.duration, self.tz)

    def _day(self, us: int) -> None:
        """Note the shift of every UTC hour inside ``us``'s local day, when the whole day shifts by one amount."""
        offset = utc_offset_us(us, self.tz)
        first = (us + offset) // DAY_US * DAY_US - offset  # the local day's first µs, at this offset
        last = first + DAY_US - 1
        shift = self._uniform(first, last)
        if shift is not None:
            for hour in range(-(-first // _HOUR_US), (last + 1) // _HOUR_US):
                self.hours[hour] = shift

    def _uniform(self, first: int, last: int) -> int | None:
        """What ``add_us`` adds to every instant from ``first`` to ``last`` (within one local day), or None
        when it is not one amount."""
        d, tz = self.duration, self.tz
        offset = utc_offset_us(first, tz)
        if utc_offset_us(last, tz) != offset or (first + offset) // DAY_US != (last + offset) // DAY_US:
            return None
        start, end = add_us(first, d, tz), add_us(last, d, tz)
        landed = _quiet_offset(start, tz)
        if start - first != end - last or landed is None or _quiet_offset(end, tz) != landed:
            return None
        return start - first


# Per (zone, months): local day (days since the epoch) → (its UTC offset, what add_us adds to any instant
# of that day at that offset), for the days whose whole shifted day lies away from clock changes.
_SHIFTS: dict[tuple[ZoneInfo, int], dict[int, tuple[int, int]]] = {}


def local_date(us: int, tz: ZoneInfo) -> date:
    """The calendar date in ``tz`` of an integer instant."""
    return date.fromordinal(_EPOCH_ORDINAL + (us + utc_offset_us(us, tz)) // DAY_US)


@functools.lru_cache(maxsize=1 << 14)
def day_start_us(day: date, tz: ZoneInfo) -> int:
    """The first instant of ``day`` in ``tz`` (local midnight, or the end of a gap over it)."""
    return to_us(_midnight(day, tz))


def period_key_us(us: int, period: str, tz: ZoneInfo) -> PeriodKey:
    """:func:`period_key` for an integer instant (the key of its local day, cached by day)."""
    return _period_key_of_day(_EPOCH_ORDINAL + (us + utc_offset_us(us, tz)) // DAY_US, period)


class PeriodKeys:
    """``period_key_us(·, period, tz)`` for one period and zone, as a callable of one instant, kept per UTC hour.

    The generated code asks for the key of the event's day (week, month, year) once for each purchase that a
    calendar ``limit`` counts; ``period_key_us`` took three calls for it. The first instant of a local day
    keeps the key for every UTC hour wholly inside that day, when the zone's offset is the same at the day's
    first and last microsecond: it then holds all day (no zone changes its offset twice within a day,
    ``utc_offset_us``), so the day is one stretch of UTC time. Any other instant (in an hour that holds a local
    midnight off the hour, as in India or Newfoundland, or on a day the clocks change) is worked out alone.
    """

    __slots__ = ("period", "tz", "hours")

    def __init__(self, period: str, tz: ZoneInfo) -> None:
        _check_period(period)
        self.period, self.tz = period, tz
        self.hours: dict[int, PeriodKey] = {}

    def __call__(self, us: int) -> PeriodKey:
        key = self.hours.get(us // _HOUR_US)
        return key if key is not None else self._slowly(us)

    def _slowly(self, us: int) -> PeriodKey:
        tz = self.tz
        offset = utc_offset_us(us, tz)
        day = (us + offset) // DAY_US  # the local day, in days since 1970-01-01 (as ``period_key_us``)
        key = _period_key_of_day(_EPOCH_ORDINAL + day, self.period)
        start = day * DAY_US - offset  # the day's first µs, and its end (exclusive), with the offset of ``us``
        end = start + DAY_US
        if utc_offset_us(start, tz) == offset == utc_offset_us(end - 1, tz):
            hours = self.hours
            if len(hours) > _OFFSET_CACHE_LIMIT:
                hours.clear()
            for hour in range(-(-start // _HOUR_US), end // _HOUR_US):  # the hours wholly inside the day
                hours[hour] = key
        return key


@functools.lru_cache(maxsize=1 << 12)
def _period_key_of_day(ordinal: int, period: str) -> PeriodKey:
    local_day = date.fromordinal(ordinal)
    if period == "day":
        return ("day", local_day.year, local_day.month, local_day.day)
    if period == "week":
        iso = local_day.isocalendar()
        return ("week", iso.year, iso.week)
    if period == "month":
        return ("month", local_day.year, local_day.month)
    _check_period(period)
    return ("year", local_day.year)


def next_birthday_us(after: int, birthday: date, tz: ZoneInfo) -> int:
    """:func:`next_birthday` on integer instants."""
    return to_us(next_birthday(from_us(after), birthday, tz))
