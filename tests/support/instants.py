"""Instants for tests: fixed-offset timestamps and the zones the cases use."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

HEL = ZoneInfo("Europe/Helsinki")  # EET (UTC+2) in winter, EEST (UTC+3) in summer
UTC = timezone.utc
US = timedelta(microseconds=1)  # the smallest step between two instants


def ts(text: str) -> datetime:
    """A fixed-offset instant from ISO text that must carry its offset, so values compare by instant."""
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, f"{text!r} has no UTC offset"
    return value
