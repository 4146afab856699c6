"""Every error is the documented kind: EventError for events, ValueError for advance_to, exit 2 in the CLI.

And a property: any JSON-ish dict given to ``Engine.process`` applies or
raises EventError — nothing else — a rejected one changes nothing, and
``process_many`` never raises.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poletti
from poletti.cli import cli

RULES = "earn 1 point per EUR; at 20 points grant gift\nevery 2 visits grant 5 points\n"
BASE = {"id": "e1", "type": "purchase", "customer": "c", "at": "2026-01-01T10:00:00Z", "amount": "10"}


@pytest.fixture(params=[False, True], ids=["interpreter", "generated"])
def engine(request: pytest.FixtureRequest) -> poletti.Engine:
    return poletti.Engine(poletti.compile(RULES), explain=False, generated=request.param)


@pytest.mark.parametrize("changes", [
    {"id": 10**5000},  # str() of it is refused by Python (int → text limit)
    {"customer": 10**5000},
    {"type": "refund", "original": 10**5000, "amount": None},
    {"at": "2026-01-01T10:00:00Z\x00"},  # Python's parser stops at the NUL
    {"at": "2026-01-01T10:00:00\x00Z"},
    {"at": "0001-01-01T00:00:00+01:00"},
    {"at": "9999-12-31T23:59:59-01:00"},
    {"at": 10**5000},
    {"amount": 10**5000},
    {"amount": float("nan")},
    {"amount": float("inf")},
    {"amount": "1E+100000000"},
])
def test_malformed_events_raise_event_error(engine: poletti.Engine, changes: dict[str, Any]) -> None:
    event = {k: v for k, v in {**BASE, **changes}.items() if v is not None}
    with pytest.raises(poletti.EventError):
        engine.process(event)
    assert engine.customer("c").points == 0


def test_process_many_reports_an_event_id_too_long_to_print(engine: poletti.Engine) -> None:
    result = engine.process_many([{**BASE, "id": 10**5000}, {**BASE, "id": "e2", "customer": 10**5000},
                                  {**BASE, "id": "ok"}])
    assert [r.index for r in result.rejected] == [0, 1]
    assert [o.event_id for o in result.outcomes] == ["ok"]


@pytest.mark.parametrize("when", [
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
    "2026-01-01\x00",
    "2026-01-01T00:00:00Z\x00",
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    "1800-01-01",
])
def test_advance_to_out_of_range_is_a_value_error_with_a_reason(engine: poletti.Engine, when: Any) -> None:
    with pytest.raises(ValueError, match="advance_to") as raised:
        engine.advance_to(when)
    assert type(raised.value) is ValueError


@pytest.mark.parametrize("command", ["run", "explain"])
@pytest.mark.parametrize("until", ["0001-01-01T00:00:00+01:00", "2026-01-01T00:00:00Z\x00"])
def test_cli_until_out_of_range_exits_2_with_a_message(tmp_path: Path, command: str, until: str) -> None:
    rules, events = tmp_path / "rules.loyalty", tmp_path / "events.jsonl"
    rules.write_text('reward gift "Gift"\n' + RULES, encoding="utf-8")
    events.write_text('{"id": "e1", "type": "purchase", "customer": "c", "at": "2026-01-01T10:00:00Z", '
                      '"amount": "10"}\n', encoding="utf-8")
    args = [command, str(rules), str(events)] + (["--customer", "c"] if command == "explain" else [])
    result = CliRunner().invoke(cli, [*args, "--until", until])
    assert result.exit_code == 2, result.output
    assert "--until" in result.output and "Traceback" not in result.output


# ------------------------------------------------------------------ the property

# st.just(10**5000) would not do: hypothesis shows a strategy's values, and Python will not print that int.
_HUGE = st.builds(lambda: 10**5000) | st.builds(lambda: -(10**5000))
_SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(min_value=10**12, max_value=10**40), _HUGE,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.text(max_size=3000).filter(lambda s: len(s) > 2000),
    st.sampled_from(["2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z\x00", "0001-01-01T00:00:00+01:00",
                     "9999-12-31T23:59:59-01:00", "2026-01-01", "12.50", "1E+100000000", "NaN", "-Infinity",
                     "purchase", "refund", "redeem", "visit", "gift", "e1", "c", "1" * 40]),
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["sku", "category", "quantity", "price", "x"]), inner, max_size=4), max_leaves=8)
_KEYS = st.sampled_from(["id", "type", "customer", "at", "amount", "currency", "items", "original", "reward",
                         "birthday", "friend", "extra"]) | st.text(max_size=8)
_PLAUSIBLE = st.fixed_dictionaries(
    {"id": st.sampled_from(["e1", "e2", 7]) | _HUGE,
     "type": st.sampled_from(["purchase", "refund", "visit", "redeem"]),
     "customer": st.sampled_from(["c", "d"]),
     "at": st.sampled_from(["2026-01-01T10:00:00Z", "2026-01-02", "2026-01-01T10:00:00Z\x00"])},
    optional={"amount": _SCALARS, "items": _VALUES, "original": _SCALARS, "reward": _SCALARS,
              "currency": _SCALARS, "birthday": _SCALARS})
_EVENTS = _PLAUSIBLE | st.dictionaries(_KEYS, _VALUES, max_size=8) | _VALUES


def _figures(engine: poletti.Engine) -> tuple[Any, ...]:
    return tuple((c.points, c.tier, dict(c.rewards)) for c in (engine.customer("c"), engine.customer("d")))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(raw=_EVENTS, generated=st.booleans())
def test_any_raw_event_applies_or_raises_event_error_and_a_rejection_changes_nothing(raw: Any,
                                                                                    generated: bool) -> None:
    engine = poletti.Engine(poletti.compile(RULES), explain=False, generated=generated)
    engine.process({"id": "seed", "type": "purchase", "customer": "c", "at": "2026-01-01T09:00:00Z",
                    "amount": "30"})  # 30 points → 1 gift, 10 left
    before = _figures(engine)
    try:
        engine.process(raw)
    except poletti.EventError:
        assert _figures(engine) == before
    result = engine.process_many([raw, raw])  # never raises
    assert len(result.outcomes) + len(result.rejected) == 2
    assert all(isinstance(r.reason, str) and r.reason for r in result.rejected)
