"""The type checker: settings, names, types, literals, rules, warnings, modules, the checked program.

Most cases check a few lines of rule text through the whole front end and
assert the codes, positions and wording of what comes out; valid programs
also assert the ``CheckedProgram`` the engine will consume. The golden tests
at the end check whole realistic files against tests/data/check/*.expected.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poletti.dsl import ast
from poletti.dsl.checker import check
from poletti.dsl.diagnostics import ERROR, MAX_DIAGNOSTICS, Diagnostic
from poletti.dsl.frontend import FrontendResult, analyze, analyze_bytes
from poletti.dsl.parser import iter_nodes, parse
from poletti.dsl.program import BUILTIN_EVENT_TYPES, BuiltinQuantity, CheckedProgram, Type
import program_strategies as strategies


BRIEF = "earn 1 point per EUR; at 50 points grant free_drink; tier gold when spend_12m > 1000"


# ------------------------------------------------------------------ helpers


def run(text: str) -> FrontendResult:
    return analyze(text)


def codes(text: str) -> list[str]:
    return [d.code for d in run(text).diagnostics]


def errors(text: str) -> list[Diagnostic]:
    return [d for d in run(text).diagnostics if d.severity == ERROR]


def at(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """Line and column (1-based) of the nth occurrence of ``needle`` in ``text``."""
    offset = -1
    for _ in range(nth + 1):
        offset = text.index(needle, offset + 1)
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def only(text: str, code: str) -> Diagnostic:
    """The single diagnostic with ``code``; fails if there is another error besides it."""
    result = run(text)
    hits = [d for d in result.diagnostics if d.code == code]
    assert len(hits) == 1, [(d.code, d.message) for d in result.diagnostics]
    others = [d for d in result.diagnostics if d.severity == ERROR and d.code != code]
    assert not others, [(d.code, d.message) for d in others]
    return hits[0]


def program(text: str) -> CheckedProgram:
    result = run(text)
    assert result.program is not None, [(d.code, d.line, d.column, d.message) for d in result.diagnostics]
    return result.program


def clean(text: str) -> CheckedProgram:
    """A program that must check with no diagnostics at all."""
    result = run(text)
    assert result.diagnostics == (), [(d.code, d.line, d.column, d.message) for d in result.diagnostics]
    assert result.program is not None
    return result.program


def expr_types(p: CheckedProgram) -> list[tuple[str, Type]]:
    return [(type(k).__name__, v) for k, v in p.types.items()]


def type_of(p: CheckedProgram, predicate: object) -> list[Type]:
    return [t for node, t in p.types.items() if predicate(node)]  # type: ignore[operator]


# ------------------------------------------------------------------ the brief


def test_the_brief_line_checks_with_only_the_implicit_reward_warning() -> None:
    result = run(BRIEF)
    assert [(d.code, d.line, d.column) for d in result.diagnostics] == [("W201", 1, 42)]
    warning = result.diagnostics[0]
    assert "free_drink" in warning.message and "implicitly" in warning.message
    p = result.program
    assert p is not None
    assert [type(s).__name__ for s in p.statements] == ["EarnRule", "ConvertRule", "TierRule"]
    assert p.rewards["free_drink"].implicit is True
    assert p.rewards["free_drink"].value is None and p.rewards["free_drink"].cost is None
    assert [(t.name, t.rank) for t in p.tiers] == [("gold", 1)]
    quantity = p.builtins["spend_12m"]
    assert (quantity.kind, quantity.type, quantity.window and (quantity.window.amount, quantity.window.unit)) == (
        "spend", Type.MONEY, (12, "m"))
    # `1000` takes the unit of spend_12m
    tier = p.statements[2]
    assert isinstance(tier, ast.TierRule) and isinstance(tier.condition, ast.Compare)
    assert p.types[tier.condition.right] is Type.MONEY
    assert p.types[tier.condition] is Type.BOOL
    assert (p.currency, p.rounding, p.timezone, p.title) == ("EUR", "down", "UTC", None)


# ------------------------------------------------------------------ settings


def test_settings_are_read() -> None:
    p = clean('program "Café Aroma"\ncurrency SEK\nrounding nearest\ntimezone "Europe/Helsinki"\n'
              "earn 1 point per SEK\npoints expire after 12m\npoints pending for 14d")
    assert (p.title, p.currency, p.rounding, p.timezone) == ("Café Aroma", "SEK", "nearest", "Europe/Helsinki")
    assert p.expire_after is not None and (p.expire_after.amount, p.expire_after.unit) == (12, "m")
    assert p.pending_for is not None and (p.pending_for.amount, p.pending_for.unit) == (14, "d")


@pytest.mark.parametrize("first, second", [
    ('program "A"', 'program "B"'),
    ("currency EUR", "currency SEK"),
    ("rounding down", "rounding up"),
    ('timezone "UTC"', 'timezone "Europe/Helsinki"'),
    ("points expire after 12m", "points expire after 6m"),
    ("points pending for 14d", "points pending for 7d"),
])
def test_a_setting_given_twice_is_E120(first: str, second: str) -> None:
    d = only(f"{first}\nearn 1 point per EUR\n{second}", "E120")
    assert (d.line, d.column) == (3, 1)
    assert "line 1" in d.message


def test_unknown_currency_is_E121_with_a_suggestion() -> None:
    d = only("currency EUO", "E121")
    assert "'EUO' is not an ISO 4217 currency code" in d.message
    assert "did you mean 'EUR'?" in d.notes


def test_a_non_tender_iso_code_is_E121() -> None:
    d = only("currency XAU", "E121")
    assert "not a currency customers pay with" in d.message


def test_money_in_an_unknown_currency_is_E121() -> None:
    d = only("earn 1 point per 10 EUX", "E121")
    assert (d.line, d.column) == (1, 18)


def test_an_invalid_currency_does_not_make_every_amount_an_error() -> None:
    assert codes("currency EUO\nearn 1 point per 10 EUR\nreward r value 3 USD costs 5 points") == ["E121"]


def test_unknown_timezone_is_E110_with_a_suggestion() -> None:
    d = only('timezone "Europe/Helsinky"', "E110")
    assert (d.line, d.column) == (1, 1)
    assert "did you mean 'Europe/Helsinki'?" in d.notes


def test_timezone_in_the_wrong_case_suggests_the_right_case() -> None:
    d = only('timezone "europe/helsinki"', "E110")
    assert "did you mean 'Europe/Helsinki'?" in d.notes


def test_a_path_is_not_a_timezone() -> None:
    only('timezone "../../etc/passwd"', "E110")


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory", "/etc/localtime", "LOCALTIME"])
def test_host_dependent_timezones_are_refused_where_they_are_written(zone: str) -> None:
    # These exist on many systems (available_timezones() lists "localtime" and "Factory" on Debian),
    # but mean a different zone, or none, from one machine to the next.
    d = only(f'earn 1 point per EUR\ntimezone "{zone}"', "E110")
    assert (d.line, d.column) == (2, 1)
    assert "not a time zone a rule file can name" in d.message
    assert not any(note.startswith("did you mean") for note in d.notes)


@pytest.mark.parametrize(("zone", "meant"), [
    ("posix/Europe/Paris", "Europe/Paris"),
    ("right/Europe/Helsinki", "Europe/Helsinki"),
    ("right/UTC", "UTC"),
    ("/usr/share/zoneinfo/America/New_York", "America/New_York"),
])
def test_a_zone_spelt_through_a_host_tree_or_path_suggests_the_iana_name(zone: str, meant: str) -> None:
    d = only(f'timezone "{zone}"', "E110")
    assert f"did you mean '{meant}'?" in d.notes


@pytest.mark.parametrize("zone", ["Europe/Paris", "UTC", "America/New_York", "Etc/GMT+5", "US/Eastern"])
def test_iana_zone_names_are_still_accepted(zone: str) -> None:
    assert codes(f'timezone "{zone}"') == []


def test_a_zone_that_merely_ends_like_a_host_name_is_an_unknown_zone() -> None:
    d = only('timezone "Europe/Localtime"', "E110")
    assert d.message == "'Europe/Localtime' is not a time zone name"


def test_the_zone_list_is_read_once() -> None:
    from poletti.dsl import checker

    checker._time_zones.cache_clear()
    for zone in ("Europe/Paris", "localtime", "Europe/Helsinky"):
        codes(f'timezone "{zone}"')
    assert checker._time_zones.cache_info().misses == 1
    assert "localtime" not in checker._time_zones() and "Europe/Paris" in checker._time_zones()


def test_a_valid_zone_is_found_without_reading_the_zone_list() -> None:
    # The list opens some 600 files: only a name that is not a zone needs it (for its did-you-mean).
    from poletti.dsl import checker

    checker._time_zones.cache_clear()
    assert codes('timezone "America/New_York"\nearn 1 point per EUR') == []
    assert checker._time_zones.cache_info().misses == 0


def _zone_tree(root: Path) -> list[str]:
    """A zone search path of its own: zone files, files that are not zones, the trees and links the list skips."""
    zone = b"TZif2" + bytes(40)
    files = {"UTC": zone, "Europe/Paris": zone, "Europe/Deep/Place": zone, "zone.tab": b"# not a zone",
             "posix/Europe/Paris": zone, "right/UTC": zone, "Europe/posix": zone, "Empty": b""}
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    (root / "Linked").symlink_to(root / "Europe", target_is_directory=True)  # a folder reached through a link
    (root / "Alias").symlink_to(root / "UTC")  # a file reached through a link is listed
    return [*files, "Linked/Paris", "Alias", "Europe", "Europe/Deep", "utc", "europe/paris", "Nowhere/UTC"]


def test_the_quick_zone_lookup_agrees_with_the_zone_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The system's own list, then a search path built here (zone files, other files, posix/ and right/, links),
    # each without the tzdata package's list, so that the folders are what is looked up.
    import zoneinfo

    from poletti.dsl import checker

    monkeypatch.setattr(checker, "_tzdata_zones", lambda: frozenset())
    monkeypatch.setitem(sys.modules, "tzdata", None)
    system = zoneinfo.available_timezones()
    assert all(checker._listed_zone(name) for name in system)
    names = _zone_tree(tmp_path)
    zoneinfo.reset_tzpath(to=[str(tmp_path)])
    try:
        listed = zoneinfo.available_timezones()
        assert listed == {"UTC", "Europe/Paris", "Europe/Deep/Place", "Europe/posix", "Alias"}
        assert {name for name in names if checker._listed_zone(name)} == listed
    finally:
        zoneinfo.reset_tzpath()


# ------------------------------------------------------------------ names


def test_every_builtin_resolves_with_its_kind_window_and_type() -> None:
    names = {
        "points": ("points", None, Type.POINTS),
        "pending_points": ("pending_points", None, Type.POINTS),
        "lifetime_points": ("lifetime_points", None, Type.POINTS),
        "spend_30d": ("spend", (30, "d"), Type.MONEY),
        "spend_lifetime": ("spend", None, Type.MONEY),
        "purchases_12w": ("purchases", (12, "w"), Type.COUNT),
        "visits_1y": ("visits", (1, "y"), Type.COUNT),
        "visits_lifetime": ("visits", None, Type.COUNT),
        "days_since_last_purchase": ("days_since_last_purchase", None, Type.COUNT),
        "member_days": ("member_days", None, Type.COUNT),
        "streak_days": ("streak_days", None, Type.COUNT),
        "streak_weeks": ("streak_weeks", None, Type.COUNT),
    }
    text = "\n".join(f"segment s{i} when {name} > 0" for i, name in enumerate(names))
    p = clean(text + "\nsegment t when tier == none")
    for name, (kind, window, t) in names.items():
        q = p.builtins[name]
        assert isinstance(q, BuiltinQuantity)
        assert (q.name, q.kind, q.type) == (name, kind, t)
        assert (None if q.window is None else (q.window.amount, q.window.unit)) == window
    assert p.builtins["tier"].type is Type.TIER


def test_a_zero_window_in_a_builtin_name_is_E106() -> None:
    d = only("tier gold when spend_0d > 10", "E106")
    assert (d.line, d.column) == (1, 16)
    assert "spend_0d" in d.message


def test_unknown_name_is_E101_with_did_you_mean() -> None:
    d = only("tier gold when spnd_12m > 1000", "E101")
    assert (d.line, d.column) == (1, 16)
    assert d.message == "unknown name 'spnd_12m'"
    assert "did you mean 'spend_12m'?" in d.notes


def test_did_you_mean_covers_declared_names() -> None:
    d = only("segment regulars when purchases_30d > 4\nearn x2 if regulrs\nearn 1 point per EUR", "E101")
    assert "did you mean 'regulars'?" in d.notes


def test_a_windowless_builtin_gets_a_hint() -> None:
    d = only("tier gold when spend > 1000", "E101")
    assert any("spend_30d, spend_12m or spend_lifetime" in n for n in d.notes)


def test_an_event_type_used_as_a_number_suggests_a_metric() -> None:
    d = only("segment critics when review > 3", "E101")
    assert any("metric review_90d = count of review over 90d" in n for n in d.notes)


def test_an_unknown_tier_name_is_E101() -> None:
    d = only("tier silver when spend_12m > 300\nearn 2 points per EUR if tier >= platinum", "E101")
    assert (d.line, d.column) == (2, 34)


def test_names_can_be_used_before_their_declaration() -> None:
    p = clean("earn 2 points per EUR if regulars\nsegment regulars when purchases_30d > 4")
    assert set(p.segments) == {"regulars"}
    assert p.references[ast.NameRef("regulars", p.statements[0].options[0].condition.span)] == "segment"  # type: ignore[union-attr]


def test_references_record_what_each_name_means() -> None:
    p = program("tier silver when spend_12m > 300\nsegment big when spend_30d > 50\n"
                "metric reviews = count of review over 90d\n"
                "earn 2 points per EUR if tier >= silver and big and reviews > 2 and tier != none")
    kinds = sorted((ref.name, kind) for ref, kind in p.references.items())
    assert kinds == [("big", "segment"), ("none", "none"), ("reviews", "metric"), ("silver", "tier"),
                     ("spend_12m", "builtin"), ("spend_30d", "builtin"), ("tier", "builtin"), ("tier", "builtin")]


@pytest.mark.parametrize("text, column, message", [
    ('reward gold "Gift" costs 5 points\ntier gold when spend_12m > 10', 6, "'gold' is already declared as a reward"),
    ("segment big when spend_30d > 5\nsegment big when spend_30d > 50", 9, "'big' is declared twice"),
    ("metric m = count of review over 30d\ntier m when m > 1", 6, "'m' is already declared as a metric"),
    ("tier gold when spend_12m > 10\nsegment gold when spend_30d > 1", 9, "'gold' is already declared as a tier"),
])
def test_duplicate_declarations_are_E102_with_the_first_line(text: str, column: int, message: str) -> None:
    d = only(text, "E102")
    assert d.message == message
    assert (d.line, d.column) == (2, column)
    assert "first declared at line 1" in d.notes


@pytest.mark.parametrize("text", [
    "segment points when true",
    "reward spend_30d",
    "tier tier when true",
    "tier none when true",
    "metric true = count of review over 30d",
])
def test_builtin_and_reserved_names_cannot_be_declared(text: str) -> None:
    d = only(text, "E102")
    assert "cannot be declared" in d.message


def test_attributes_and_events_have_their_own_names() -> None:
    # An event type, an attribute and a reward may share a name: they are written in different places.
    p = program("event checkin\nattribute checkin: text\nreward checkin costs 10 points\n"
                "earn 5 points on checkin if event.checkin == \"door\"")
    assert "checkin" in p.event_types and p.attributes == {"checkin": Type.TEXT} and "checkin" in p.rewards


@pytest.mark.parametrize("text, message", [
    ("attribute channel: text\nattribute channel: number", "attribute 'channel' is declared twice"),
    ("attribute amount: number", "event.amount is built in and cannot be declared"),
    ("event checkin\nevent checkin", "event type 'checkin' is declared twice"),
    ("event birthday", "'birthday' is the built-in birthday and cannot be declared as an event type"),
])
def test_duplicate_attributes_and_events_are_E102(text: str, message: str) -> None:
    assert only(text, "E102").message == message


def test_redeclaring_a_builtin_event_type_is_harmless() -> None:
    assert codes("event review\nearn 5 points on review") == []


# ------------------------------------------------------------------ types


@pytest.mark.parametrize("condition, unit", [
    ("spend_12m > 1000", Type.MONEY),
    ("points >= 100", Type.POINTS),
    ("lifetime_points - 5 > 100", Type.POINTS),
    ("purchases_30d > 4", Type.COUNT),
    ("1000 < spend_30d + 5", Type.MONEY),
])
def test_a_bare_number_takes_the_unit_it_is_compared_with(condition: str, unit: Type) -> None:
    p = clean(f"segment s when {condition}")
    numbers = type_of(p, lambda n: isinstance(n, ast.NumberLit))
    assert numbers and all(t is unit for t in numbers)


@pytest.mark.parametrize("condition, needle, message", [
    ("spend_12m > 100 points", "100 points", "cannot compare Money with Points"),
    ("points > 5 EUR", "5 EUR", "cannot compare Points with Money"),
    ("spend_30d > purchases_30d", "purchases_30d", "cannot compare Money with Count"),
    ("spend_12m + points > 5", "points >", "cannot combine Money and Points with '+'"),
    ("event.channel == 3", "3", "cannot compare Text with Number"),
    ("2026-01-01 > 3", "3", "cannot compare Date with Number"),
])
def test_units_never_mix_E103(condition: str, needle: str, message: str) -> None:
    text = f"attribute channel: text\nearn 1 point per EUR if {condition}"
    d = only(text, "E103")
    assert d.message == message
    assert (d.line, d.column) == at(text, needle)


def test_money_and_points_hint() -> None:
    d = only("tier gold when spend_12m > 100 points", "E103")
    assert any("Money and Points never mix" in n for n in d.notes)


@pytest.mark.parametrize("condition, needle, hint", [
    ("tier > 3", "3", "tiers compare by rank"),
    ('tier == "silver"', '"silver"', "write the tier name without quotes: tier == silver"),
    ("tier == big", "big", "tiers compare by rank"),
    ("spend_12m > silver", "spend_12m", "tiers compare by rank"),
])
def test_a_tier_compared_with_something_else_is_E104(condition: str, needle: str, hint: str) -> None:
    text = f"tier silver when spend_12m > 300\nsegment big when spend_30d > 50\nsegment s when {condition}"
    d = only(text, "E104")
    assert (d.line, d.column) == at(text, needle, text.count(needle) - 1)
    assert any(hint in n for n in d.notes)


@pytest.mark.parametrize("condition", ["tier >= silver", "tier == none", "tier != gold", "gold > silver",
                                       "tier < gold or tier == none"])
def test_tiers_compare_by_rank(condition: str) -> None:
    clean(f"tier silver when spend_12m > 300\ntier gold when spend_12m > 1000\nsegment s when {condition}")


@pytest.mark.parametrize("condition, message", [
    ("tier + 1 > 2", "'+' does not apply to Tier values"),
    ('event.channel > "app"', "'>' does not apply to Text values"),
    ('event.channel + "x" == "y"', "'+' does not apply to Text values"),
    ("spend_30d * spend_30d > 3", "cannot multiply Money by Money"),
    ("2 / spend_30d > 3", "cannot divide a number by Money"),
    ("(spend_30d > 1) > true", "'>' does not apply to Bool values"),
    ("big < big", "'<' does not apply to Segment values"),
])
def test_unsupported_operators_are_E119(condition: str, message: str) -> None:
    text = f"attribute channel: text\nsegment big when spend_30d > 1\nearn 1 point per EUR if {condition}"
    assert only(text, "E119").message == message


@pytest.mark.parametrize("expression, result", [
    ("spend_30d * 2", Type.MONEY),
    ("2 * spend_30d", Type.MONEY),
    ("spend_30d / 2", Type.MONEY),
    ("spend_30d / spend_12m", Type.NUMBER),
    ("points * 1.5", Type.POINTS),
    ("points / lifetime_points", Type.NUMBER),
    ("purchases_30d - visits_30d", Type.COUNT),
    ("purchases_30d / 2", Type.COUNT),
    ("2 + 3", Type.NUMBER),
])
def test_arithmetic_result_types(expression: str, result: Type) -> None:
    p = clean(f"segment s when {expression} > 1")
    assert type_of(p, lambda n: isinstance(n, ast.BinaryOp))[-1] is result


def test_division_by_zero_is_E117() -> None:
    d = only("segment s when spend_30d / 0 > 1", "E117")
    assert d.message == "division by zero" and (d.line, d.column) == (1, 28)


def test_points_times_money_is_E103() -> None:
    assert only("segment s when points * spend_30d > 1", "E103").message == "cannot combine Points and Money with '*'"


@pytest.mark.parametrize("text, needle", [
    ("segment s when spend_12m", "spend_12m"),
    ("tier gold when 3", "3"),
    ("when points grant x", "points"),
    ("earn 1 point per EUR if spend_30d + 5", "spend_30d"),
    ('attribute channel: text\nearn 1 point per EUR if event.channel', "event.channel"),
])
def test_conditions_must_be_yes_no_E114(text: str, needle: str) -> None:
    d = only(text, "E114")
    assert (d.line, d.column) == at(text, needle, text.count(needle) - 1)
    assert "not a yes/no" in d.message


def test_a_bare_tier_as_a_condition_suggests_a_comparison() -> None:
    d = only("tier gold when spend_12m > 1000\nearn 2 points per EUR if gold", "E114")
    assert "compare the tier: tier >= gold" in d.notes


@pytest.mark.parametrize("condition, needle, word", [
    ("spend_30d and big", "spend_30d", "'and'"),
    ("big or 3", "3", "'or'"),
    ("not points", "points", "'not'"),
])
def test_and_or_not_need_conditions_E114(condition: str, needle: str, word: str) -> None:
    text = f"segment big when spend_30d > 50\nsegment s when {condition}"
    d = only(text, "E114")
    assert word in d.message and (d.line, d.column) == at(text, needle, text.count(needle) - 1)


def test_segments_are_conditions() -> None:
    p = clean("segment big when spend_30d > 50\nsegment vip when big and not (purchases_30d < 2) or big == true")
    assert p.types[ast.NameRef("big", p.segments["vip"].condition.left.left.span)] is Type.SEGMENT  # type: ignore[union-attr]


def test_every_expression_node_has_a_type() -> None:
    text = ("attribute channel: text\ntier silver when spend_12m > 300\nsegment big when spend_30d * 2 > 50\n"
            "metric m = avg of amount over 12m\n"
            'earn 2 points per EUR if (tier >= silver or big) and not event.channel == "kiosk" and m > 5 EUR\n'
            "when lifetime_points >= 1000 points and member_days > 30 grant gift once per 1y\n"
            "earn 1 point per EUR during 2026-12-01..2026-12-24")
    p = program(text)
    expression_types = (ast.NumberLit, ast.NameRef, ast.MoneyLit, ast.PointsLit, ast.TextLit, ast.BoolLit,
                        ast.EventAttr, ast.Compare, ast.BinaryOp, ast.AndOp, ast.OrOp, ast.NotOp)
    conditions = []
    for s in p.statements:
        for node in iter_nodes(s):
            if isinstance(node, (ast.SegmentDecl, ast.TierRule, ast.WhenRule, ast.IfOption)):
                conditions.append(node.condition)
    assert len(conditions) == 4
    for condition in conditions:
        for node in iter_nodes(condition):
            if isinstance(node, expression_types):
                assert node in p.types, node
        assert p.types[condition] is Type.BOOL
    assert p.types[p.statements[-1].options[0].start] is Type.DATE  # type: ignore[union-attr]


# ------------------------------------------------------------------ literals


def test_money_in_another_currency_is_E109_with_the_default_noted() -> None:
    d = only("earn 1 point per 10 USD", "E109")
    assert (d.line, d.column) == (1, 18)
    assert d.message == "money in USD, but the program's currency is EUR"
    assert "the program's currency is EUR (the default)" in d.notes
    assert any("currency USD" in n for n in d.notes)


def test_money_in_another_currency_notes_where_the_currency_is_set() -> None:
    text = "currency SEK\nreward mug value 6 EUR costs 10 points"
    d = only(text, "E109")
    assert (d.line, d.column) == at(text, "6 EUR")
    assert "the program's currency is SEK, set on line 1" in d.notes


def test_per_currency_must_be_the_program_currency() -> None:
    d = only("currency GBP\nearn 1 point per EUR", "E109")
    assert (d.line, d.column) == (2, 14)


@pytest.mark.parametrize("date", ["2026-02-30", "2025-02-29", "2026-13-01", "2026-00-10", "0000-01-01"])
def test_impossible_dates_are_E105(date: str) -> None:
    text = f"earn 1 point per EUR during 2026-01-01..{date}"
    d = only(text, "E105")
    assert (d.line, d.column) == at(text, date)


def test_a_leap_day_is_a_date() -> None:
    clean("earn 1 point per EUR during 2028-02-29")


def test_a_campaign_that_ends_before_it_starts_is_E107() -> None:
    text = "earn 2 points per EUR during 2026-12-24..2026-12-01"
    d = only(text, "E107")
    assert (d.line, d.column) == at(text, "2026-12-01")
    assert "during 2026-12-01..2026-12-24" in d.notes[0]


def test_a_one_day_campaign_is_fine() -> None:
    clean("earn 2 points per EUR during 2026-12-24..2026-12-24")


@pytest.mark.parametrize("text, column", [
    ("earn 1 point per 0 EUR", 18),
    ("earn 1 point per 0.00 EUR", 18),
    ("reward q costs 0 points", 16),
    ("every 0 purchases grant r", 7),
    ("earn 1 point per EUR limit 0 times per month", 28),
    ("earn 1 point per EUR limit 0 points per day", 28),
    ("at 0 points grant r", 4),
    ("earn 0 points per purchase", 6),
    ("on review grant 0 points", 17),
    ("earn 1.5 points on signup", 6),
    ("earn 2.5 points per purchase", 6),
    ("at 10.5 points grant r", 4),
    ("reward q costs 9.9 points", 16),
    ("every 2.5 visits grant r", 7),
    ("segment s when points > 1.5 points", 25),
])
def test_amounts_that_must_be_positive_or_whole_are_E117(text: str, column: int) -> None:
    d = only("reward r costs 1 point\n" + text, "E117")
    assert (d.line, d.column) == (2, column)


def test_a_zero_multiplier_is_E117() -> None:
    d = only("earn 1 point per EUR\nearn x0", "E117")
    assert (d.line, d.column) == (2, 6)


@pytest.mark.parametrize("text", ["earn 1.5 points per EUR", "earn 0.5 points per 10 EUR", "earn 0.25 points per item"])
def test_proportional_earn_rates_may_have_decimals(text: str) -> None:
    clean(text)


@pytest.mark.parametrize("text, needle", [
    ("when points > 5 grant r once per 0d", "0d"),
    ("tier gold when spend_12m > 5 keep 0m", "0m"),
    ("points expire after 0d", "0d"),
    ("points pending for 0w", "0w"),
    ("metric m = count of review over 0d", "0d"),
    ("earn 1 point per EUR limit 5 points per 0d", "0d"),
    ("points expire after 101y", "101y"),
])
def test_zero_or_huge_windows_are_E106(text: str, needle: str) -> None:
    d = only("reward r costs 1 point\n" + text, "E106")
    assert (d.line, d.column) == at("reward r costs 1 point\n" + text, needle)


@pytest.mark.parametrize("text, word, hint", [
    ("when points > 5 grant r once per month", "month", "write 1m"),
    ("tier gold when spend_12m > 5 keep year", "year", "write 1y"),
    ("points expire after week", "week", "write 1w"),
    ("points expire after soon", "soon", "write a length such as 30d"),
])
def test_calendar_words_and_names_are_not_windows_E106(text: str, word: str, hint: str) -> None:
    d = only("reward r costs 1 point\n" + text, "E106")
    assert f"not '{word}'" in d.message and any(hint in n for n in d.notes)


def test_a_limit_period_must_be_a_calendar_period_or_a_window() -> None:
    d = only("earn 1 point per EUR limit 5 times per months", "E106")
    assert "did you mean 'month'?" in d.notes


@pytest.mark.parametrize("text, needle", [
    ("every n purchases grant r", "n"),
    ("earn many points per EUR", "many"),
    ('earn 1 point per EUR on category beans', "beans"),
    ("reward r value cheap EUR", "cheap"),
    ("earn 1 point per EUR limit lots times per day", "lots"),
])
def test_a_name_where_a_literal_belongs_is_a_syntax_error(text: str, needle: str) -> None:
    d = only(text, "P001")
    assert (d.line, d.column) == at(text, needle)


# ------------------------------------------------------------------ rules


@pytest.mark.parametrize("target, what", [
    ("gold", "a tier"),
    ("big", "a segment"),
    ("reviews", "a metric"),
    ("points", "a built-in quantity"),
    ("spend_30d", "a built-in quantity"),
    ("none", "the absence of a tier"),
])
def test_granting_something_that_is_not_a_reward_is_E108(target: str, what: str) -> None:
    text = ("tier gold when spend_12m > 1000\nsegment big when spend_30d > 50\n"
            f"metric reviews = count of review over 90d\nearn 1 point per EUR\nat 50 points grant {target}")
    d = only(text, "E108")
    assert d.message == f"'{target}' is {what}, not a reward"
    assert (d.line, d.column) == (5, 20)


def test_an_at_rule_cannot_grant_points() -> None:
    d = only("at 50 points grant 10 points", "E108")
    assert (d.line, d.column) == (1, 20)


@pytest.mark.parametrize("text", ["every 10 visits grant 50 points", "on review grant 20 points",
                                  "when spend_lifetime > 500 grant 100 points once"])
def test_other_grant_rules_may_grant_points(text: str) -> None:
    clean(text)


def test_an_undeclared_reward_is_implicit_with_W201_once() -> None:
    text = "every 10 purchases grant free_coffee\non review grant free_coffee"
    result = run(text)
    assert [(d.code, d.line, d.column) for d in result.diagnostics] == [("W201", 1, 26)]
    assert result.program is not None
    info = result.program.rewards["free_coffee"]
    assert info.implicit and info.span.line == 1


def test_an_implicit_reward_close_to_a_declared_one_gets_did_you_mean() -> None:
    result = run('reward free_coffee "Free coffee" costs 80 points\nevery 10 purchases grant free_cofee')
    w201 = [d for d in result.diagnostics if d.code == "W201"]
    assert len(w201) == 1 and "did you mean 'free_coffee' (declared on line 1)?" in w201[0].notes


def test_the_issue_typo_names_the_declared_reward_both_ways() -> None:
    result = run('reward free_drink "Free drink" value 3.50 EUR\nat 50 points grant free_drnk')
    by_code = {d.code: d for d in result.diagnostics}
    assert set(by_code) == {"W201", "W203"}
    assert by_code["W201"].notes[0] == "did you mean 'free_drink' (declared on line 1)?"
    assert by_code["W203"].notes[0] == "line 2 grants 'free_drnk': did you mean 'free_drink' there?"


def test_w201_suggests_a_declaration_without_inventing_a_value() -> None:
    (d,) = run("currency SEK\nat 50 points grant free_cake").diagnostics
    assert 'reward free_cake "Free cake" value <cost> SEK' in " ".join(d.notes)
    assert "3.50" not in " ".join(d.notes)


@pytest.mark.parametrize("text, needle", [
    ("on chekin grant r", "chekin"),
    ("earn 5 points on reveiw", "reveiw"),
    ("metric m = count of reveiw over 30d", "reveiw"),
    ("metric m = sum of amount of purchse over 30d", "purchse"),
])
def test_unknown_event_types_are_E111(text: str, needle: str) -> None:
    d = only("reward r costs 1 point\n" + text, "E111")
    assert d.message == f"unknown event type '{needle}'"
    assert (d.line, d.column) == at("reward r costs 1 point\n" + text, needle)
    assert any("event " + needle in n for n in d.notes)


def test_unknown_event_did_you_mean_includes_declared_events() -> None:
    d = only("event checkin\nearn 5 points on chekin", "E111")
    assert "did you mean 'checkin'?" in d.notes


def test_event_types() -> None:
    p = clean("event checkin\nearn 5 points on checkin\non birthday grant 100 points\non referral grant 50 points")
    assert p.event_types == BUILTIN_EVENT_TYPES | {"checkin"}


def test_earn_on_birthday_points_to_the_on_rule() -> None:
    d = only("earn 100 points on birthday", "E111")
    assert any("on birthday grant 100 points" in n for n in d.notes)


def test_event_attributes() -> None:
    p = clean("attribute channel: text\nattribute rating: number\nattribute visit_day: date\n"
              'earn 1 point per EUR if event.channel == "app" and event.amount > 20 and event.type == "purchase"\n'
              "on review grant 5 points if event.rating >= 4\n"
              "every 5 visits grant 10 points if event.visit_day > 2026-01-01")
    assert p.attributes == {"channel": Type.TEXT, "rating": Type.NUMBER, "visit_day": Type.DATE}
    assert set(type_of(p, lambda n: isinstance(n, ast.EventAttr))) == {Type.TEXT, Type.MONEY, Type.NUMBER, Type.DATE}


def test_is_missing_and_is_present_are_yes_no_tests_of_an_attribute() -> None:
    p = clean("attribute channel: text\n"
              "earn 1 point per EUR if event.channel is missing\n"
              'on review grant 5 points if event.channel is present and event.channel != "web"')
    tests = [n for n in p.types if isinstance(n, ast.PresenceTest)]
    assert [(t.attribute.name, t.present, p.types[t]) for t in tests] == [
        ("channel", False, Type.BOOL), ("channel", True, Type.BOOL)]
    assert p.types[tests[0].attribute] is Type.TEXT


@pytest.mark.parametrize("text, needle, message, fix", [
    ("earn 1 point per EUR if spend_12m is missing", "spend_12m",
     "'is missing' tests an event attribute, and spend_12m always has a value",
     "compare it instead, such as spend_12m > 0"),
    ("earn 1 point per EUR if channel is present", "channel is",
     "'is present' tests an event attribute: write event.channel", "event.channel is present"),
    ("segment big when spend_12m > 100\nearn 1 point per EUR if big is missing", "big is",
     "'is missing' tests an event attribute, and big always has a value",
     "it is already a yes/no condition: write big or not big"),
    ('earn 1 point per EUR if "app" is missing', '"app"',
     "'is missing' tests an event attribute, and \"app\" always has a value",
     "only an event attribute, such as event.channel, can be missing or present"),
])
def test_only_an_event_attribute_can_be_missing_E119(text: str, needle: str, message: str, fix: str) -> None:
    full = "attribute channel: text\n" + text
    d = only(full, "E119")
    assert (d.message, d.notes) == (message, (fix,))
    assert (d.line, d.column) == at(full, needle)


def test_an_unknown_name_tested_for_missing_is_only_E101() -> None:
    assert codes("earn 1 point per EUR if chanel is missing") == ["E101"]


def test_is_missing_of_an_unknown_attribute_is_E118() -> None:
    assert codes("earn 1 point per EUR if event.chanel is missing") == ["E118"]


def test_an_undeclared_event_attribute_is_E118() -> None:
    text = 'attribute chanel: text\nearn 1 point per EUR if event.channel == "app"'
    d = only(text, "E118")
    assert (d.line, d.column) == (2, 25)
    assert "did you mean 'chanel'?" in d.notes
    assert "declare it with its type first, for example: attribute channel: text" in d.notes


@pytest.mark.parametrize("text, where", [
    ('segment app when event.channel == "app"', "a segment"),
    ('tier app when event.channel == "app"', "a tier"),
    ("when event.amount > 100 grant r", "a 'when' rule"),
    ("when points > 5 grant r if event.amount > 100", "a 'when' rule"),
    ('at 50 points grant r if event.channel == "app"', "an 'at' rule"),
    ('on birthday grant r if event.channel == "app"', "an 'on birthday' rule"),
    ("segment app when event.channel is present", "a segment"),
    ("when points > 5 grant r if event.channel is missing", "a 'when' rule"),
])
def test_event_attributes_only_where_an_event_is_processed_E125(text: str, where: str) -> None:
    full = "attribute channel: text\nreward r costs 1 point\n" + text
    d = only(full, "E125")
    assert d.message.endswith(f"has no value in {where}")
    assert (d.line, d.column) == at(full, "event.", 0)


@pytest.mark.parametrize("text, word", [
    ("earn 1 point per EUR once", "once"),
    ("at 50 points grant r once", "once"),
    ("every 10 purchases grant r once per 30d", "once"),
    ("at 50 points grant r limit 10 points per day", "limit … points"),
    ("every 10 purchases grant r limit 10 points per day", "limit … points"),
    ("on review grant r limit 10 points per month", "limit … points"),
    ("when points > 10 grant r limit 10 points per month", "limit … points"),
    ("earn 1 point per EUR\nearn x2 limit 100 points per day", "limit … points"),
])
def test_options_a_rule_kind_cannot_carry_are_E115(text: str, word: str) -> None:
    full = "reward r costs 1 point\n" + text
    d = only(full, "E115")
    assert f"cannot carry '{word}'" in d.message
    assert (d.line, d.column) == at(full, word.split()[0], full.count(word.split()[0]) - 1)


@pytest.mark.parametrize("text", [
    "earn 1 point per EUR if points > 1 during 2026-12-01 limit 500 points per day",
    "at 50 points grant r if tier == none during 2026-12-01..2026-12-31 limit 1 times per week",
    "every 10 purchases on category \"coffee\" grant r if points > 1 limit 2 times per month",
    "on review grant r once per 30d if points > 1 limit 1 time per day during 2026-01-01",
    "when points > 100 grant r once limit 1 times per year",
    "earn 1 point per EUR\nearn x2 during 2026-12-01 limit 3 times per month if points > 1",
])
def test_allowed_options(text: str) -> None:
    clean("reward r costs 1 point\n" + text)


def test_item_filters_only_with_purchases_E115() -> None:
    d = only('every 5 visits on category "coffee" grant 10 points', "E115")
    assert (d.line, d.column) == (1, 16)
    d = only('earn 5 points per visit on sku "x"', "E115")
    assert (d.line, d.column) == (1, 25)


@pytest.mark.parametrize("text, word", [
    ("earn 1 point per EUR if points > 1 if points > 2", "if"),
    ("earn 1 point per EUR during 2026-01-01 during 2026-02-01", "during"),
    ("earn 1 point per EUR limit 5 points per day limit 9 points per day", "limit"),
    ("on review grant 5 points limit 1 times per 30d limit 2 times per 30d", "limit"),
    ("when points > 5 grant 5 points once once per 30d", "once"),
])
def test_repeated_options_are_E116(text: str, word: str) -> None:
    d = only(text, "E116")
    assert f"already has '{word}'" in d.message
    assert (d.line, d.column) == at(text, word + " ", 1)


def test_two_ifs_suggest_and() -> None:
    assert "combine the conditions with 'and'" in only("earn 1 point per EUR if true if true", "E116").notes


def test_a_second_limit_is_E116_even_with_another_period() -> None:
    # The contract gives a rule one cap; the engine keeps one, so a second one must not pass silently.
    text = "earn 1 point per EUR limit 50 points per day limit 200 points per month"
    d = only(text, "E116")
    assert (d.line, d.column) == (1, 46)
    assert "a rule takes one limit" in d.notes[0]
    assert only("at 20 points grant r limit 3 times per day limit 5 times per month", "E116").column == 44


def test_a_reward_part_given_twice_is_E116() -> None:
    d = only("reward r value 1 EUR value 2 EUR costs 5 points", "E116")
    assert (d.line, d.column) == (1, 22)


@pytest.mark.parametrize("text, needle", [("earn 10 points", "earn"), ("earn x2 per EUR", "per"),
                                          ("earn x2 on signup", "on")])
def test_earn_rules_that_do_not_fit_together_are_E126(text: str, needle: str) -> None:
    d = only(text, "E126")
    assert (d.line, d.column) == at(text, needle)


# ------------------------------------------------------------------ metrics


def test_metric_forms_and_their_types() -> None:
    p = clean("attribute rating: number\nattribute stars: count\nevent checkin\n"
              'metric beans_30d = sum of amount of purchase on category "beans" over 30d\n'
              "metric reviews = count of review over 90d\n"
              "metric checkins = count of checkin over lifetime\n"
              "metric biggest = max of amount over 12m\n"
              "metric avg_basket = avg of amount over 12m\n"
              "metric avg_rating = avg of rating of review over 12m\n"
              "metric stars = sum of stars of review over 1y\n"
              "metric refunded = sum of amount of refund over 12m\n"
              "segment s when beans_30d > 50 and reviews > 2 and checkins > 1 and biggest > 10 and avg_basket > 5 "
              "and avg_rating > 4 and stars > 3 and refunded < 100")
    m = p.metrics
    summary = {name: (i.aggregate, i.field, i.event, i.type, i.window and (i.window.amount, i.window.unit))
               for name, i in m.items()}
    assert summary == {
        "beans_30d": ("sum", "amount", "purchase", Type.MONEY, (30, "d")),
        "reviews": ("count", None, "review", Type.COUNT, (90, "d")),
        "checkins": ("count", None, "checkin", Type.COUNT, None),
        "biggest": ("max", "amount", "purchase", Type.MONEY, (12, "m")),
        "avg_basket": ("avg", "amount", "purchase", Type.MONEY, (12, "m")),
        "avg_rating": ("avg", "rating", "review", Type.NUMBER, (12, "m")),
        "stars": ("sum", "stars", "review", Type.COUNT, (1, "y")),
        "refunded": ("sum", "amount", "refund", Type.MONEY, (12, "m")),
    }
    assert m["beans_30d"].decl.filter is not None


@pytest.mark.parametrize("text, column, message", [
    ("metric m = count of amount of purchase over 30d", 21, "'count' counts events and takes no field"),
    ("metric m = count of amount over 30d", 21, "'count' counts events, and 'amount' is a field"),
    ("metric m = sum of review over 90d", 19, "'sum' needs a field to add up, and 'review' is an event type"),
    ("metric m = avg of amount of review over 90d", 19, "'review' events have no amount"),
    ("metric m = max of channel of review over 9d", 19, "cannot take the max of 'channel', which is a Text"),
    ('metric m = count of review on category "x" over 9d', 28,
     "only purchases have items; 'review' events cannot be filtered by category"),
])
def test_metrics_that_cannot_be_computed_are_E123(text: str, column: int, message: str) -> None:
    d = only("attribute channel: text\n" + text, "E123")
    assert d.message == message
    assert (d.line, d.column) == (2, column)


def test_a_metric_of_an_undeclared_field_is_E118() -> None:
    d = only("metric m = avg of rating of review over 9d", "E118")
    assert (d.line, d.column) == (1, 19)


def test_a_broken_metric_does_not_cascade() -> None:
    assert codes("metric m = sum of review over 90d\nsegment s when m > 3") == ["E123"]


# ------------------------------------------------------------------ warnings


def test_an_at_rule_after_an_unconditional_smaller_one_is_unreachable_W202() -> None:
    text = "earn 1 point per EUR\nat 50 points grant a\nat 100 points grant b\nat 50 points grant c"
    result = run(text)
    w202 = [(d.line, d.column) for d in result.diagnostics if d.code == "W202"]
    assert w202 == [(3, 1), (4, 1)]
    note = next(d for d in result.diagnostics if d.code == "W202").notes[0]
    assert "'at 50 points' on line 2" in note


@pytest.mark.parametrize("text", [
    "at 100 points grant a\nat 50 points grant b",
    "at 50 points grant a if tier == none\nat 100 points grant b",
    "at 50 points grant a during 2026-12-01\nat 100 points grant b",
    "at 50 points grant a limit 1 times per day\nat 100 points grant b",
])
def test_reachable_at_rules(text: str) -> None:
    assert "W202" not in codes(text)


def test_a_literal_false_condition_is_unreachable_W202() -> None:
    text = "earn 1 point per EUR if false\ntier gold when false"
    assert [(d.code, d.line, d.column) for d in run(text).diagnostics] == [("W202", 1, 25), ("W202", 2, 16)]


def test_a_declared_reward_never_granted_and_not_redeemable_is_W203() -> None:
    result = run('reward mug "Aroma mug" value 6 EUR\nreward cup costs 50 points\nreward tea\nevery 5 visits grant tea')
    assert [(d.code, d.line, d.column) for d in result.diagnostics] == [("W203", 1, 8)]
    assert "'mug' is never granted" in result.diagnostics[0].message


@pytest.mark.parametrize("expire, pending, warns", [
    ("14d", "30d", True), ("14d", "14d", True), ("2w", "14d", True), ("1m", "30d", True), ("1m", "31d", True),
    ("12m", "1y", True), ("12m", "14d", False), ("1m", "27d", False), ("15d", "2w", False), ("1y", "11m", False),
])
def test_points_expiring_before_pending_ends_is_W204(expire: str, pending: str, warns: bool) -> None:
    text = f"earn 1 point per EUR\npoints expire after {expire}\npoints pending for {pending}"
    found = [(d.line, d.column) for d in run(text).diagnostics if d.code == "W204"]
    assert found == ([(2, 21)] if warns else [])


@pytest.mark.parametrize("text, warns", [
    ("earn x2 if tier == none", True),
    ("earn 10 points per visit\nearn 5 points on signup\nearn x2", True),
    ("earn 1 point per EUR\nearn x2", False),
    ("earn 1 point per 10 EUR\nearn x2", False),
    ("earn 1 point per item\nearn x2", False),
    ("earn 10 points per purchase\nearn x2", False),
])
def test_a_multiplier_with_nothing_to_multiply_is_W205(text: str, warns: bool) -> None:
    assert ("W205" in codes(text)) is warns


# ------------------------------------------------------------------ modules


def test_param_outside_a_module_is_E122() -> None:
    d = only("param every: count = 10", "E122")
    assert (d.line, d.column) == (1, 1)


def test_an_unknown_module_is_E112_with_did_you_mean() -> None:
    d = only("use stamp_cards with reward = r", "E112")
    assert (d.line, d.column) == (1, 5)
    assert "did you mean 'stamp_card'?" in d.notes
    assert any("stamp_card" in n and "win_back" in n for n in d.notes)


@pytest.mark.parametrize("text, needle, message", [
    ("use stamp_card with every = 10, reward = r, size = 8", "size", "module 'stamp_card' has no parameter 'size'"),
    ("use stamp_card with reward = r, reward = q", "reward", "'reward' is given twice"),
    ("use stamp_card with every = 10", "use", "module 'stamp_card' needs a value for 'reward'"),
    ("use stamp_card with every = 2.5, reward = r", "2.5", "'every' needs a whole number such as 10, not 2.5"),
    ("use stamp_card with every = 10d, reward = r", "10d", "'every' needs a whole number such as 10, not 10d"),
    ('use stamp_card with reward = "free coffee"', '"free coffee"',
     "'reward' needs a reward name or an amount of points, not \"free coffee\""),
    ("use win_back with reward = r, once_per = 30", "30", "'once_per' needs a length of time such as 30d, 12w, 12m or 1y, not 30"),
    ("use review_points with points = 10 EUR", "10 EUR", "'points' needs an amount of points such as 50 points, not 10 EUR"),
])
def test_bad_module_arguments_are_E113(text: str, needle: str, message: str) -> None:
    d = only(text, "E113")
    assert d.message == message
    assert (d.line, d.column) == at(text, needle, 1 if (needle == "reward" and "given" in message) else 0)
    assert any(n.startswith(f"'{text.split()[1]}' takes:") for n in d.notes)


@pytest.mark.parametrize("text, fix", [
    ("use stamp_card with every = 2.5, reward = r", "use stamp_card with every = 2, reward = r"),
    ('use stamp_card with reward = "free coffee"', "use stamp_card with reward = free_coffee"),
    ("use win_back with reward = r, once_per = 30", "use win_back with reward = r, once_per = 30d"),
    ("use win_back with days = 90", "use win_back with days = 90, reward = free_coffee"),
])
def test_a_bad_module_argument_gets_the_users_use_back_with_a_fix(text: str, fix: str) -> None:
    notes = only(text, "E113").notes
    assert any(n.endswith(": " + fix) for n in notes), notes


def test_a_misspelt_argument_gets_did_you_mean() -> None:
    assert "did you mean 'every'?" in only("use stamp_card with evry = 8, reward = r", "E113").notes


def test_problems_inside_a_module_point_at_the_argument_or_the_use() -> None:
    text = "tier gold when spend_12m > 1000\nuse stamp_card with every = 0, reward = gold"
    result = run(text)
    found = [(d.code, d.line, d.column) for d in result.diagnostics]
    assert found == [("E117", 2, 29), ("E108", 2, 41)]
    for d in result.diagnostics:
        # The expanded rule with the user's values, never the module's parameter names.
        assert "from module 'stamp_card': every 0 purchases grant gold" in d.notes
        assert not any("every every" in n or "category category" in n for n in d.notes)


def test_a_module_declaration_clashing_with_the_file_points_at_the_use() -> None:
    text = "segment lapsed when days_since_last_purchase > 30\nuse win_back with reward = comeback"
    d = only(text, "E102")
    assert (d.line, d.column) == (2, 1)
    assert "first declared at line 1" in d.notes
    assert "from module 'win_back': segment lapsed when days_since_last_purchase > 60" in d.notes


def test_expanded_statements_replace_the_use_and_record_their_origin() -> None:
    p = program("earn 1 point per EUR\nuse welcome_bonus with points = 100\ntier gold when spend_12m > 10")
    kinds = [type(s).__name__ for s in p.statements]
    assert kinds == ["EarnRule", "EarnRule", "TierRule"]
    bonus = p.statements[1]
    origin = p.origins[bonus]
    assert origin.module == "welcome_bonus" and origin.source == "earn points points on signup"
    assert origin.use.span.line == 2 and bonus.span.line == 2
    assert p.statements[0] not in p.origins


# ------------------------------------------------------------------ the checked program


def test_the_checked_program_of_a_full_file() -> None:
    text = (
        'program "Café Aroma"\ncurrency EUR\ntimezone "Europe/Helsinki"\n'
        'reward free_drink "Free drink" value 3.50 EUR costs 50 points\n'
        'reward vip_gift "VIP gift" value 20 EUR\n'
        "attribute channel: text\nevent checkin\n"
        "segment lapsed when days_since_last_purchase > 60\n"
        "metric visit_count_90d = count of visit over 90d\n"
        "tier silver when spend_12m > 300\n"
        "tier gold when spend_12m > 1000 keep 12m\n"
        "earn 1 point per EUR\n"
        "earn x2 if tier >= gold\n"
        "at 50 points grant free_drink\n"
        "when spend_lifetime > 5000 grant vip_gift once\n"
        "earn 5 points on checkin if event.channel == \"app\"\n"
        "points expire after 12m\npoints pending for 14d\n"
        "use stamp_card with every = 8, reward = stamp_coffee\n"
    )
    result = check(parse(text).rule_file, source_name="cafe.loyalty")
    assert [(d.code, d.line) for d in result.diagnostics] == [("W201", 19)]
    p = result.program
    assert p is not None
    assert p.source_name == "cafe.loyalty" and p.title == "Café Aroma" and p.timezone == "Europe/Helsinki"
    drink = p.rewards["free_drink"]
    assert (drink.label, drink.value, drink.cost, drink.implicit) == ("Free drink", Decimal("3.50"), 50, False)
    assert str(drink.value) == "3.50"
    assert (p.rewards["vip_gift"].value, p.rewards["vip_gift"].cost) == (Decimal("20"), None)
    assert p.rewards["stamp_coffee"].implicit
    assert list(p.rewards) == ["free_drink", "vip_gift", "stamp_coffee"]
    assert [(t.name, t.rank) for t in p.tiers] == [("silver", 1), ("gold", 2)]
    assert p.tiers[1].rule.keep is not None
    assert list(p.segments) == ["lapsed"] and isinstance(p.segments["lapsed"], ast.SegmentDecl)
    assert p.metrics["visit_count_90d"].type is Type.COUNT
    assert p.attributes == {"channel": Type.TEXT}
    assert "checkin" in p.event_types and "purchase" in p.event_types
    assert len(p.rules) == 10
    assert isinstance(p.statements[-1], ast.StampRule)


def test_errors_mean_no_program() -> None:
    result = check(parse("tier gold when spnd_12m > 1").rule_file)
    assert result.program is None and [d.code for d in result.diagnostics] == ["E101"]


def test_too_many_problems_are_capped_E124() -> None:
    text = "\n".join(f"segment s{i} when nope{i} > 1" for i in range(MAX_DIAGNOSTICS + 10))
    result = check(parse(text).rule_file)
    assert len(result.diagnostics) == MAX_DIAGNOSTICS + 1
    assert result.diagnostics[-1].code == "E124" and "10 more" in result.diagnostics[-1].message


def test_an_empty_file_is_a_valid_program() -> None:
    p = clean("")
    assert p.statements == () and p.rewards == {} and p.tiers == ()


# ------------------------------------------------------------------ robustness


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    analyze_bytes(text.encode("utf-8"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    analyze_bytes(raw)


_WORDS = ("earn at every tier on when segment metric reward use points point per EUR USD 10 0 1.5 x2 grant "
          "gold none tier spend_12m spend_0d if during 2026-02-30 2026-12-01 .. limit times month once keep "
          "30d 0d and or not ( ) > == + * event . amount channel sum count of over review stamp_card with = , "
          '"beans" category purchases free_drink ;').split()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=12).map(" ".join), max_size=6))
def test_rule_shaped_text_never_raises(lines: list[str]) -> None:
    analyze("\n".join(lines))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.rule_files())
def test_arbitrary_syntax_trees_never_raise(rule_file: ast.RuleFile) -> None:
    result = check(rule_file)
    assert (result.program is None) == any(d.severity == ERROR for d in result.diagnostics)


# ------------------------------------------------------------------ goldens

CHECK_DATA = Path(__file__).parent.parent / "data" / "check"


def render(result: FrontendResult) -> str:
    lines = []
    for d in result.diagnostics:
        lines.append(f"{d.line}:{d.column} {d.code} {d.severity} {d.message}")
        lines.extend(f"    {note}" for note in d.notes)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("path", sorted(CHECK_DATA.glob("*.loyalty")), ids=lambda p: p.stem)
def test_check_goldens(path: Path, golden: object) -> None:
    result = analyze_bytes(path.read_bytes(), path.name)
    golden.check(render(result), path.with_suffix(".expected"))  # type: ignore[attr-defined]
