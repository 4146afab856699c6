"""The type checker: AST → checked program + diagnostics.

``check(rule_file) -> CheckResult`` expands ``use`` modules, resolves every
name, types every expression and checks every rule against the language
contract (shared/LANGUAGE.md, docs/language.md). It is a pure function and
never raises for a user's mistake: it collects every problem it finds and
returns them sorted; the program is None when any of them is an error.

It works in passes over the statements (after ``use`` expansion):

1. settings — program, currency, rounding, timezone, point value, points expire/pending;
2. declarations — rewards, segments, metrics, tiers, attributes, events, so
   that a name may be used before the line that declares it;
3. metrics — the type of each metric, which depends on attribute types;
4. statements — every rule and declaration body, in file order;
5. whole-program warnings — unreachable ``at`` rules, unused rewards,
   expiry before pending ends, multipliers with nothing to multiply;
   tiers that can never be reached (E128);
6. dependency cycles (E127, dsl/dependencies.py) — only in a program with
   no other error, since a wrong name makes a wrong graph.

Decisions where the language contract is silent (each says what a café
marketer would expect):

* Rewards, segments, metrics and tiers share one namespace (each can appear
  as a bare name), which also holds the built-in names and ``none``. Event
  types (``event X``) and attributes (``attribute X: T``) have namespaces of
  their own, since they are only ever written in their own places
  (``on X``, ``event.X``). Re-declaring a built-in event type is harmless and
  allowed; declaring an event called ``birthday`` is not.
* Names may be used before the line that declares them (rules are a set,
  not a script).
* A bare number takes the unit of the Money, Points or Count it is compared
  with or added to; Money, Points and Count never mix with each other.
* Earn rates may have decimals where the award is proportional
  (``earn 1.5 points per EUR``, ``per 10 EUR``, ``per item``): the rule's amount
  is rounded anyway. Fixed awards (``per purchase``, ``per visit``, ``on X``,
  ``grant N points``), thresholds (``at N points``), ``costs`` and caps must be
  whole, and every one of them must be more than zero.
* ``once`` / ``once per W`` is allowed on ``when`` and ``on`` rules (the
  trigger rules); earn, ``at`` and ``every`` rules cap with ``limit``.
  ``limit N points`` is only for earn rules, and not on a multiplier (what it
  would cut is unclear: the base rules carry the cap instead); ``limit N
  times`` is for every earn and grant rule. An option may not be repeated,
  except that limits with different units or periods may be combined
  (``limit 50 points per day limit 200 points per month``).
* ``once per``, ``keep``, metric windows and ``points expire after`` /
  ``pending for`` take a length of time (``30d``, ``12w``, ``12m``, ``1y``; a
  metric may also be ``over lifetime``); the calendar words ``day``, ``week``,
  ``month``, ``year`` are only for ``limit … per`` (calendar periods), and
  elsewhere get an error that suggests ``1d``, ``1w``, ``1m`` or ``1y``.
  A window longer than 100 years is an error too.
* An ``at`` rule converts points into a reward; it cannot grant points
  (that would loop). ``every``, ``on`` and ``when`` rules may grant points
  (``every 10 visits grant 50 points``).
* ``earn N points on birthday`` is not an earn rule (birthdays are clock
  events, not events a customer sends): write ``on birthday grant N points``.
* A stamp card or earn rule ``on category``/``on sku`` needs purchases or
  items (not visits). Metric filters likewise need ``of purchase``; ``amount``
  is a field of purchases and refunds only.
* ``event.x`` is only meaningful while one event is processed: it may appear
  in the ``if`` of earn, ``on`` (except ``on birthday``) and ``every`` rules,
  and nowhere else (E125: not in segments, tiers, ``when`` or ``at`` rules).
* A multiplier scales "spend-based (per) points of a purchase" (LANGUAGE.md):
  W205 fires when no ``per`` rule pays for purchases (``per EUR``, ``per 10
  EUR``, ``per item`` or ``per purchase``).
* W202 (unreachable) is structural only: an ``at N points`` rule after an
  unconditional ``at M points`` rule with M <= N, and a rule or tier whose
  condition is the literal ``false``.
* W204 compares calendar lengths conservatively: it warns when points *can*
  expire no later than their pending period ends (``1m`` vs ``30d`` warns,
  since February is shorter).
* The currency must be an active ISO 4217 code that is legal tender (not
  XAU, XTS, fund codes …): see dsl/currencies.py.
"""

from __future__ import annotations

import bisect
import datetime
import functools
import os
import re
import zoneinfo
from decimal import Decimal
from typing import Any, Iterable, Mapping

from poletti.dsl import ast, classes, currencies, modules
from poletti.dsl.dependencies import find_cycles
from poletti.dsl.diagnostics import ERROR, Diagnostic, closest, did_you_mean, finish, has_errors, make
from poletti.dsl.formatter import format_expr, format_statement
from poletti.dsl.implication import Budget, implies
from poletti.dsl.ranges import decimal_places
from poletti.dsl.program import (
    BUILTIN_EVENT_TYPES,
    CLOCK_EVENT_TYPES,
    TYPE_NAMES,
    BuiltinQuantity,
    CheckedProgram,
    MetricInfo,
    PartnerInfo,
    PerkInfo,
    RewardInfo,
    TierInfo,
    Type,
)

DEFAULT_CURRENCY = "EUR"
DEFAULT_ROUNDING = "down"
DEFAULT_TIMEZONE = "UTC"


@classes.frozen
class CheckResult:
    program: CheckedProgram | None  # None when any diagnostic is an error
    diagnostics: tuple[Diagnostic, ...]


def check(rule_file: ast.RuleFile, *, source_name: str | None = None, source: str | None = None) -> CheckResult:
    """Check a parsed rule file. Input: the AST. Output: the checked program (None on errors) and diagnostics.

    ``source`` is the file's text, for quoting rules as written in messages.
    """
    return _Checker(source_name).run(rule_file, source)


# ------------------------------------------------------------------ built-ins

_FIXED_BUILTINS: Mapping[str, Type] = {
    "points": Type.POINTS,
    "pending_points": Type.POINTS,
    "lifetime_points": Type.POINTS,
    "days_since_last_purchase": Type.COUNT,
    "member_days": Type.COUNT,
    "streak_days": Type.COUNT,
    "streak_weeks": Type.COUNT,
    "tier": Type.TIER,
}
_WINDOWED_BUILTINS: Mapping[str, Type] = {"spend": Type.MONEY, "purchases": Type.COUNT, "visits": Type.COUNT}
_WINDOWED = re.compile(r"(spend|purchases|visits)_(?:([0-9]+)([dwmy])|lifetime)")
_SUGGESTED_WINDOWS = tuple(f"{kind}_{w}" for kind in _WINDOWED_BUILTINS for w in ("30d", "12m", "lifetime"))
_NO_TIER = "none"
# Names that cannot be declared: they already mean something in an expression.
_RESERVED = frozenset({_NO_TIER, "true", "false"})

_BUILTIN_ATTRIBUTES: Mapping[str, Type] = {"amount": Type.MONEY, "type": Type.TEXT}
_AMOUNT_EVENTS = frozenset({"purchase", "refund"})

_NUMERIC = frozenset({Type.NUMBER, Type.MONEY, Type.POINTS, Type.COUNT})
_UNITS = frozenset({Type.MONEY, Type.POINTS, Type.COUNT})
_CONDITION_TYPES = frozenset({Type.BOOL, Type.SEGMENT, Type.ERROR})
_EQUALITY_ONLY = frozenset({Type.TEXT, Type.BOOL, Type.SEGMENT})

_PERIODS = ("day", "week", "month", "year")
_PERIOD_AS_WINDOW = {"day": "1d", "week": "1w", "month": "1m", "year": "1y"}
# The longest window accepted, per unit: 100 years.
_MAX_WINDOW = {"d": 36525, "w": 5218, "m": 1200, "y": 100}

# The steps the E128 pass may spend proving that one tier implies another
# (dsl/implication.py): some thousands of pairs of simple tiers.
_TIER_ORDER_STEPS = 50_000

# How many candidate names all did-you-mean notes of one file may compare a word with (see _Checker._afford).
_SUGGESTION_COMPARISONS = 50_000

_REWARD_PART_WORDS = {ast.RewardValue: "value", ast.RewardCost: "costs", ast.RewardMax: "max",
                      ast.RewardExpiry: "expires after"}

_KIND_WORDS = {"reward": "a reward", "segment": "a segment", "metric": "a metric", "tier": "a tier"}


# Names a zone database may hold that do not name one place's clocks: their
# rules differ from machine to machine ("localtime" is the host's own zone,
# "posixrules" a copy of some zone chosen when tzdata was built), or they are
# a placeholder ("Factory") or a variant tree of the database ("posix/…",
# "right/…", which counts leap seconds). A rule file means the same on every
# machine, so these are refused (E110), like paths to zone files.
_HOST_ZONES = frozenset({"localtime", "posixrules", "factory"})
_ZONE_TREES = ("posix/", "right/")
# What an IANA name looks like: letters, digits, '_', '-', '+' in parts joined by '/'.
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*")


@functools.lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    """The zones a rule file may name: the system's list (read once: it walks the zone files), without host-dependent names."""
    return frozenset(z for z in zoneinfo.available_timezones() if _host_zone(z) is None)


def _listed_zone(name: str) -> bool:
    """Whether ``zoneinfo.available_timezones()`` holds ``name``, found without reading that whole list.

    The list is the tzdata package's zone list and every zone file (one that starts "TZif") under the zone
    search path, except in the search path's top-level posix/ and right/ folders and in folders reached
    through a link. Reading it opens some 600 files (4 to 15 ms, in every ``poletti check`` and ``simulate``);
    looking up one name reads at most one folder listing a level and one file. Names are compared as the
    listing spells them, so "europe/paris" is not "Europe/Paris" on a system that ignores case either.
    """
    if name in _tzdata_zones():
        return True
    parts = name.split("/")
    for root in zoneinfo.TZPATH:
        folder = root
        for depth, part in enumerate(parts):
            try:
                with os.scandir(folder) as listing:
                    entry = next((item for item in listing if item.name == part), None)
            except OSError:
                break
            if entry is None:
                break
            if depth < len(parts) - 1:
                if entry.is_symlink() or not entry.is_dir() or (depth == 0 and part in ("posix", "right")):
                    break
                folder = entry.path
            elif not entry.is_dir():
                return _starts_like_a_zone_file(entry.path)
    return False


@functools.lru_cache(maxsize=1)
def _tzdata_zones() -> frozenset[str]:
    """The zone list of the tzdata package (empty where it is not installed): one file, read once."""
    from importlib import resources

    try:
        with resources.files("tzdata").joinpath("zones").open("r") as listing:
            return frozenset(line.strip() for line in listing if line.strip())
    except (ImportError, OSError):
        return frozenset()


def _starts_like_a_zone_file(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"TZif"
    except OSError:
        return False


def _host_zone(name: str) -> str | None:
    """Why ``name`` names no fixed zone (a host-dependent name, a variant tree or a path), or None."""
    lowered = name.lower()
    if lowered.startswith("/") or "\\" in name or ".." in name:
        return "a path to a zone file"
    if lowered in _HOST_ZONES:
        return ("this computer's own time zone, which differs from machine to machine" if lowered == "localtime"
                else "a placeholder for an unset zone" if lowered == "factory"
                else "a copy of whichever zone this system's tzdata was built with")
    if lowered.startswith(_ZONE_TREES):
        return "a variant of the zone database that not every system has"
    return None


def _is_time_zone(name: str) -> bool:
    if _host_zone(name) is not None or not _ZONE_NAME.fullmatch(name):
        return False
    if _listed_zone(name):
        return True
    zones = _time_zones()  # (only for a name that is not a zone, or when the quick look is wrong: the list decides)
    if zones:
        return name in zones
    # No zone list on this system (no tzdata): ask zoneinfo directly.
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _zone_inside(name: str) -> str | None:
    """The IANA name inside a host-specific spelling ("posix/Europe/Paris", "/usr/share/zoneinfo/UTC"), or None."""
    parts = [part for part in name.replace("\\", "/").split("/") if part and part != ".."]
    for start in range(1, len(parts)):
        candidate = "/".join(parts[start:])
        if _is_time_zone(candidate):
            return candidate
    return None


def _is_whole(value: Decimal) -> bool:
    return value == value.to_integral_value()


def _fmt(value: Decimal) -> str:
    return format(value, "f")


def _article(t: Type) -> str:
    return f"an {t}" if str(t)[0] in "AEIOU" else f"a {t}"


@classes.define
class _Decl:
    kind: str  # reward / segment / metric / tier
    node: Any  # the declaring statement
    name: ast.Ident


@classes.define
class _Window:
    """A checked window: ``ok`` False after an error; ``duration`` None for ``lifetime``."""

    ok: bool
    duration: ast.DurationLit | None = None


class _Checker:
    def __init__(self, source_name: str | None) -> None:
        self.source_name = source_name
        self.diagnostics: list[Diagnostic] = []
        self.origin: modules.Origin | None = None
        self.origins: dict[Any, modules.Origin] = {}
        # settings: kind → the statement that set it first
        self.settings: dict[str, Any] = {}
        self.title: str | None = None
        self.currency: str | None = DEFAULT_CURRENCY  # None: the declared currency is invalid
        self.rounding = DEFAULT_ROUNDING
        self.timezone = DEFAULT_TIMEZONE
        self.expire_after: ast.DurationLit | None = None
        self.pending_for: ast.DurationLit | None = None
        self.point_value: Decimal | None = None
        # declarations
        self.decls: dict[str, _Decl] = {}
        self.events: dict[str, ast.EventDecl] = {}
        self.attributes: dict[str, Type] = {}
        self.attribute_decls: dict[str, ast.AttributeDecl] = {}
        self.rewards: dict[str, RewardInfo] = {}
        self.granted: set[str] = set()
        self.tiers: list[TierInfo] = []
        self.segments: dict[str, ast.SegmentDecl] = {}
        self.metrics: dict[str, MetricInfo] = {}
        self.perks: dict[str, PerkInfo] = {}
        self.partners: dict[str, PartnerInfo] = {}
        self.rates: dict[str, Decimal] = {}
        self.rate_decls: dict[str, ast.RateDecl] = {}
        # side tables
        self.types: dict[Any, Type] = {}
        self.builtins: dict[str, BuiltinQuantity] = {}
        self.references: dict[Any, str] = {}
        # the context of the expression being checked: where event.x is allowed
        self.event_context: str | None = None  # None: allowed; else where we are, for E125
        self.comparisons_left = _SUGGESTION_COMPARISONS  # for did-you-mean notes (see _afford)

    # ---------------------------------------------------------------- driver

    def run(self, rule_file: ast.RuleFile, source: str | None = None) -> CheckResult:
        items = self._expand(rule_file.statements)
        for statement, origin in items:
            self._in(origin, self._setting, statement)
        for statement, origin in items:
            self._in(origin, self._declare, statement)
        for statement, origin in items:
            if isinstance(statement, ast.MetricDecl):
                self._in(origin, self._metric, statement)
        for statement, origin in items:
            self._in(origin, self._statement, statement)
        statements = tuple(s for s, _ in items)
        self._warn_unreachable_conversions(items)
        self._warn_unused_rewards(items)
        self._warn_expiry(items)
        self._warn_multipliers(items)
        self._check_tier_order()

        diagnostics = finish(self.diagnostics)
        if has_errors(diagnostics):
            return CheckResult(None, diagnostics)
        program = CheckedProgram(
            statements=statements,
            title=self.title,
            currency=self.currency or DEFAULT_CURRENCY,
            rounding=self.rounding,
            timezone=self.timezone,
            rewards=dict(self.rewards),
            tiers=tuple(self.tiers),
            segments=dict(self.segments),
            metrics=dict(self.metrics),
            attributes=dict(self.attributes),
            event_types=frozenset(BUILTIN_EVENT_TYPES | set(self.events)),
            expire_after=self.expire_after,
            pending_for=self.pending_for,
            point_value=self.point_value,
            pooled=self._pooled(),
            types=dict(self.types),
            builtins=dict(self.builtins),
            source_name=self.source_name,
            references=dict(self.references),
            origins=dict(self.origins),
            perks=dict(self.perks),
            partners=dict(self.partners),
            rates=dict(self.rates),
        )
        # 6. circles of definitions, once every name is known to be right
        cycles = find_cycles(program, source)
        if cycles:
            return CheckResult(None, finish(diagnostics + tuple(cycles)))
        return CheckResult(program, diagnostics)

    def _in(self, origin: modules.Origin | None, method: Any, statement: Any) -> None:
        self.origin = origin
        try:
            method(statement)
        except RecursionError:
            self.report("P001", "this statement is nested too deeply to check", statement.span,
                        ["split the condition into segments"])
        finally:
            self.origin = None

    def report(self, code: str, message: str, span: ast.Span, notes: Iterable[str] = ()) -> None:
        notes = list(notes)
        if self.origin is not None:
            notes.append(self.origin.note())
        self.diagnostics.append(make(code, message, span, notes))

    def _expand(self, statements: Iterable[ast.Statement]) -> list[tuple[Any, modules.Origin | None]]:
        items: list[tuple[Any, modules.Origin | None]] = []
        for statement in statements:
            if isinstance(statement, ast.ParamDecl):
                self.report("E122", "'param' is only for standard-library modules", statement.span,
                            ["write the value directly into your rules, or use a module: "
                             "use stamp_card with reward = free_coffee"])
            elif isinstance(statement, ast.UseDecl):
                expansion = modules.expand(statement)
                self.diagnostics.extend(expansion.diagnostics)
                for expanded, origin in expansion.statements:
                    items.append((expanded, origin))
                    self.origins[expanded] = origin
            else:
                items.append((statement, None))
        return items

    def _afford(self, candidates: int) -> bool:
        """Whether a did-you-mean note may compare a word with this many candidates.

        Each note compares the word with every name it could be a typo of,
        so thousands of unknown names among thousands of declared ones would
        make ``check`` quadratic. The notes share ``_SUGGESTION_COMPARISONS``;
        once a note cannot be afforded, no later one is made, so the first
        diagnostics (the ones shown) keep theirs.
        """
        if candidates > self.comparisons_left:
            self.comparisons_left = 0
            return False
        self.comparisons_left -= candidates
        return True

    def _did_you_mean(self, word: str, candidates: Any) -> str:
        return did_you_mean(word, candidates) if self._afford(len(candidates)) else ""

    def _line(self, span: ast.Span) -> str:
        return f"line {span.line}"

    # ------------------------------------------------------------ 1. settings

    _SETTING_WORDS = {
        ast.ProgramDecl: ("program", "the program title"),
        ast.CurrencyDecl: ("currency", "the currency"),
        ast.RoundingDecl: ("rounding", "the rounding"),
        ast.TimezoneDecl: ("timezone", "the time zone"),
        ast.PointValueDecl: ("point value", "the point value"),
        ast.ExpireRule: ("points expire after", "when points expire"),
        ast.PendingRule: ("points pending for", "how long points are pending"),
        ast.PoolRule: ("points pooled by account", "pooling by account"),
    }

    def _setting(self, statement: Any) -> None:
        words = self._SETTING_WORDS.get(type(statement))
        if words is None:
            return
        keyword, what = words
        first = self.settings.get(keyword)
        if first is not None:
            self.report("E120", f"{what} is already set on {self._line(first.span)}", statement.span,
                        [f"a program has one '{keyword}'; remove one of them"])
            return
        self.settings[keyword] = statement
        if isinstance(statement, ast.ProgramDecl):
            self.title = statement.title
        elif isinstance(statement, ast.CurrencyDecl):
            self._currency_setting(statement)
        elif isinstance(statement, ast.RoundingDecl):
            self.rounding = statement.mode
        elif isinstance(statement, ast.TimezoneDecl):
            self._timezone_setting(statement)

    def _currency_setting(self, statement: ast.CurrencyDecl) -> None:
        code = statement.code
        if currencies.is_valid(code):
            self.currency = code
            return
        self.currency = None  # unknown: skip currency checks rather than report every amount
        if code in currencies.ACTIVE:
            self.report("E121", f"{code} is an ISO 4217 code, but not a currency customers pay with", statement.span,
                        ["use the code of the money your tills take, such as EUR, USD or GBP"])
        else:
            self.report("E121", f"'{code}' is not an ISO 4217 currency code", statement.span,
                        [self._did_you_mean(code, currencies.ACTIVE - currencies.NOT_TENDER),
                         "currency codes are three capital letters, such as EUR, USD or GBP"])

    def _timezone_setting(self, statement: ast.TimezoneDecl) -> None:
        zone = statement.zone
        if _is_time_zone(zone):
            self.timezone = zone
            return
        advice = 'use an IANA zone name such as "Europe/Helsinki" or "America/New_York"'
        why = _host_zone(zone)
        if why is not None:
            inside = _zone_inside(zone)
            hint = f"did you mean '{inside}'?" if inside else ""
            self.report("E110", f"'{zone}' is {why}, not a time zone a rule file can name", statement.span,
                        [hint, advice + ": the program must mean the same on every machine"])
            return
        zones = _time_zones()
        by_lower = {z.lower(): z for z in zones}
        hint = (f"did you mean '{by_lower[zone.lower()]}'?" if zone.lower() in by_lower
                else self._did_you_mean(zone, zones))
        self.report("E110", f"'{zone}' is not a time zone name", statement.span, [hint, advice])

    # -------------------------------------------------------- 2. declarations

    def _declare(self, statement: Any) -> None:
        if isinstance(statement, ast.RewardDecl):
            self._declare_name("reward", statement.name, statement)
        elif isinstance(statement, ast.SegmentDecl):
            if self._declare_name("segment", statement.name, statement):
                self.segments[statement.name.name] = statement
        elif isinstance(statement, ast.MetricDecl):
            self._declare_name("metric", statement.name, statement)
        elif isinstance(statement, ast.TierRule):
            if self._declare_name("tier", statement.name, statement):
                self.tiers.append(TierInfo(statement.name.name, len(self.tiers) + 1, statement))
        elif isinstance(statement, ast.AttributeDecl):
            self._declare_attribute(statement)
        elif isinstance(statement, ast.EventDecl):
            self._declare_event(statement)

    def _declare_name(self, kind: str, ident: ast.Ident, node: Any) -> bool:
        name = ident.name
        if name in _FIXED_BUILTINS or _WINDOWED.fullmatch(name):
            self.report("E102", f"'{name}' is a built-in name and cannot be declared as {_KIND_WORDS[kind]}",
                        ident.span, ["choose another name"])
            return False
        if name in _RESERVED:
            self.report("E102", f"'{name}' is a reserved word and cannot be declared as {_KIND_WORDS[kind]}",
                        ident.span, ["choose another name"])
            return False
        first = self.decls.get(name)
        if first is not None:
            again = "declared twice" if first.kind == kind else f"already declared as {_KIND_WORDS[first.kind]}"
            self.report("E102", f"'{name}' is {again}", ident.span,
                        [f"first declared at line {first.name.span.line}",
                         "rewards, segments, metrics and tiers share one set of names"])
            return False
        self.decls[name] = _Decl(kind, node, ident)
        return True

    def _declare_attribute(self, statement: ast.AttributeDecl) -> None:
        name = statement.name.name
        if name in _BUILTIN_ATTRIBUTES:
            self.report("E102", f"event.{name} is built in and cannot be declared", statement.name.span,
                        [f"event.{name} is always available, as {_article(_BUILTIN_ATTRIBUTES[name])}"])
            return
        first = self.attribute_decls.get(name)
        if first is not None:
            self.report("E102", f"attribute '{name}' is declared twice", statement.name.span,
                        [f"first declared at line {first.name.span.line}"])
            return
        self.attribute_decls[name] = statement
        self.attributes[name] = TYPE_NAMES.get(statement.type_name, Type.ERROR)

    def _declare_event(self, statement: ast.EventDecl) -> None:
        name = statement.name.name
        if name in CLOCK_EVENT_TYPES:
            self.report("E102", f"'{name}' is the built-in birthday and cannot be declared as an event type",
                        statement.name.span, ["write 'on birthday grant …' without declaring it"])
            return
        if name in BUILTIN_EVENT_TYPES:
            return  # harmless: built-in event types need no declaration
        first = self.events.get(name)
        if first is not None:
            self.report("E102", f"event type '{name}' is declared twice", statement.name.span,
                        [f"first declared at line {first.name.span.line}"])
            return
        self.events[name] = statement

    def _owns(self, kind: str, node: Any) -> bool:
        """True if ``node`` is the declaration that owns its name (not a rejected duplicate)."""
        decl = self.decls.get(node.name.name)
        return decl is not None and decl.kind == kind and decl.node is node

    # ------------------------------------------------------------- 3. metrics

    def _metric(self, decl: ast.MetricDecl) -> None:
        aggregate = decl.aggregate
        ok = True
        field: str | None
        field_ident: ast.Ident = decl.field or decl.event
        if decl.field is None:
            single = decl.event
            if aggregate == "count":
                field, event = None, single.name
                if not self._is_event_type(event):
                    ok = False
                    if self._field_type(event) is not None:
                        self.report("E123", f"'count' counts events, and '{event}' is a field", single.span,
                                    ["write count of purchase over 12m (or another event type)"])
                    else:
                        self._unknown_event(single, allow_birthday=False)
            else:
                field, event, field_ident = single.name, "purchase", single
                if self._field_type(field) is None and self._is_event_type(field):
                    ok = False
                    self.report("E123", f"'{aggregate}' needs a field to add up, and '{field}' is an event type",
                                single.span, [f"write {aggregate} of amount of purchase, or count of {field}"])
        else:
            field, field_ident, event = decl.field.name, decl.field, decl.event.name
            if aggregate == "count":
                ok = False
                self.report("E123", "'count' counts events and takes no field", decl.field.span,
                            [f"write count of {event}"])
            if not self._is_event_type(event):
                ok = False
                self._unknown_event(decl.event, allow_birthday=False)

        field_type: Type | None = None
        if ok and aggregate != "count" and field is not None:
            field_type = self._field_type(field)
            if field_type is None:
                ok = False
                self._unknown_attribute(field, field_ident.span)
            elif field == "amount" and event not in _AMOUNT_EVENTS:
                ok = False
                self.report("E123", f"'{event}' events have no amount", field_ident.span,
                            ["only purchases and refunds have an amount; declare an attribute for other events"])
            elif field_type not in _NUMERIC:
                ok = False
                self.report("E123", f"cannot take the {aggregate} of '{field}', which is {_article(field_type)}",
                            field_ident.span, ["sum, avg, max and min need a Number, Money, Points or Count field"])
        if decl.filter is not None:
            if event != "purchase":
                ok = False
                self.report("E123", f"only purchases have items; '{event}' events cannot be filtered by "
                                    f"{decl.filter.kind}", decl.filter.span,
                            [f"write {aggregate} of … of purchase on {decl.filter.kind} …"])
            self._filter_value(decl.filter)
        window = self._window(decl.window, "a metric window", allow_lifetime=True)
        ok = ok and window.ok

        if not ok:
            metric_type = Type.ERROR
        elif aggregate == "count":
            metric_type = Type.COUNT
        elif aggregate == "avg":
            metric_type = Type.MONEY if field_type is Type.MONEY else Type.NUMBER
        else:
            metric_type = field_type or Type.ERROR
        if self._owns("metric", decl):
            self.metrics[decl.name.name] = MetricInfo(
                decl.name.name, aggregate, field if aggregate != "count" else None, event, metric_type, decl,
                window.duration,
            )

    def _is_event_type(self, name: str) -> bool:
        return name in BUILTIN_EVENT_TYPES or name in self.events

    def _field_type(self, name: str) -> Type | None:
        return _BUILTIN_ATTRIBUTES.get(name) or self.attributes.get(name)

    def _unknown_event(self, ident: ast.Ident, *, allow_birthday: bool) -> None:
        name = ident.name
        known = set(BUILTIN_EVENT_TYPES) | set(self.events) | (set(CLOCK_EVENT_TYPES) if allow_birthday else set())
        if name in CLOCK_EVENT_TYPES:
            self.report("E111", f"'{name}' is not an event that can be used here", ident.span,
                        ["birthdays are clock events: write on birthday grant 100 points (or a reward)"])
            return
        self.report("E111", f"unknown event type '{name}'", ident.span,
                    [self._did_you_mean(name, known),
                     f"declare a custom event type first: event {name}",
                     "built-in event types: " + ", ".join(sorted(BUILTIN_EVENT_TYPES))])

    def _unknown_attribute(self, name: str, span: ast.Span) -> None:
        known = set(_BUILTIN_ATTRIBUTES) | set(self.attributes) if self._afford(len(self.attributes) + 2) else ()
        self.report("E118", f"unknown event attribute '{name}'", span,
                    [did_you_mean(name, known) if known else "",
                     f"declare it with its type first, for example: attribute {name}: text"])

    # ---------------------------------------------------------- 4. statements

    def _statement(self, statement: Any) -> None:
        method = getattr(self, "_check_" + type(statement).__name__, None)
        if method is not None:
            method(statement)

    def _check_RewardDecl(self, decl: ast.RewardDecl) -> None:
        value: Decimal | None = None
        cost: int | None = None
        seen: dict[type, Any] = {}
        for part in decl.parts:
            # `value 3.50 EUR` and `value 10%` are one setting written two ways.
            kind = ast.RewardValue if isinstance(part, ast.RewardPercent) else type(part)
            if kind in seen:
                word = _REWARD_PART_WORDS[kind]
                self.report("E116", f"reward '{decl.name.name}' has '{word}' twice", part.span,
                            [f"first given at line {seen[kind].span.line}, "
                             f"column {seen[kind].span.column}"])
                continue
            seen[kind] = part
            if isinstance(part, ast.RewardValue):
                amount = self._money(part.money)
                value = amount
            elif isinstance(part, ast.RewardCost):
                cost = self._points_amount(part.points, what="a reward's cost")
        percent, max_value, expires = self._wallet_terms(decl, seen)
        if self._owns("reward", decl):
            self.rewards[decl.name.name] = RewardInfo(decl.name.name, decl.label, value, cost, False, decl.name.span,
                                                      percent, max_value, expires)

    # ---- wallet terms, perks, partners, rates (issue 13)

    def _wallet_terms(self, decl: ast.RewardDecl, seen: dict[type, Any]
                      ) -> tuple[Decimal | None, Decimal | None, ast.DurationLit | None]:
        """A reward's `value N%`, `max` and `expires after`, checked: (percent, max, expiry)."""
        name = decl.name.name
        percent: Decimal | None = None
        max_value: Decimal | None = None
        expires: ast.DurationLit | None = None
        part = seen.get(ast.RewardValue)
        if isinstance(part, ast.RewardPercent):
            if not 0 < part.percent <= 100:
                self.report("E140", f"a reward cannot be worth {_fmt(part.percent)}% of a purchase", part.span,
                            ["a percentage value is more than 0% and at most 100%, such as value 10%"])
            elif decimal_places(part.percent) > 4:
                self.report("E129", f"{_fmt(part.percent)}% is more precise than poletti computes with", part.span,
                            ["write at most four decimal places, such as value 12.5%"])
            else:
                percent = part.percent
        cap = seen.get(ast.RewardMax)
        if cap is not None:
            amount = self._money(cap.money)
            if not isinstance(part, ast.RewardPercent):
                self.report("E140", f"'max' only caps a percentage value, and reward '{name}' has none", cap.span,
                            [f"write value 10% max {_fmt(amount) if amount is not None else '20'} "
                             f"{self.currency or DEFAULT_CURRENCY}, or remove 'max'"])
            elif amount is not None and amount <= 0:
                self.report("E140", "a reward's 'max' must be more than zero", cap.span,
                            ["leave 'max' out for no cap"])
            else:
                max_value = amount
        expiry = seen.get(ast.RewardExpiry)
        if expiry is not None:
            window = self._window(expiry.window, "'expires after'")
            expires = window.duration
        return percent, max_value, expires

    def _check_PerkDecl(self, decl: ast.PerkDecl) -> None:
        self._condition(decl.condition, event_context="a perk")
        name = decl.name.name
        if name in self.perks:
            self.report("E141", f"perk '{name}' is declared twice", decl.name.span,
                        [f"first declared at line {self.perks[name].decl.span.line}"])
            return
        self.perks[name] = PerkInfo(name, decl.label, decl)

    def _check_PartnerDecl(self, decl: ast.PartnerDecl) -> None:
        rate = self._money(decl.rate)
        name = decl.name.name
        clash = self.attribute_decls.get("partner")
        if clash is not None and not self.partners:
            self.report("E102", "'partner' is declared as an attribute, but with partners it is the event's partner",
                        clash.name.span, ["remove 'attribute partner', or call the attribute something else"])
        if name in self.partners:
            self.report("E141", f"partner '{name}' is declared twice", decl.name.span,
                        ["a partner has one rate: remove one of the declarations"])
            return
        if rate is None:
            return
        if rate < 0:
            self.report("E117", "a partner's rate per point cannot be negative", decl.rate.span,
                        ["write what the partner pays for each point its customers earn, such as 0.02 "
                         f"{self.currency or DEFAULT_CURRENCY}"])
            return
        self.partners[name] = PartnerInfo(name, decl.label, rate)

    def _check_RateDecl(self, decl: ast.RateDecl) -> None:
        value = self._money(decl.value)
        code = decl.currency
        if not currencies.is_valid(code):
            self.report("E121", f"'{code}' is not a currency", decl.span,
                        [self._did_you_mean(code, currencies.ACTIVE - currencies.NOT_TENDER)])
            return
        if self.currency is not None and code == self.currency:
            self.report("E142", f"{code} is the program's own currency: it needs no rate", decl.span,
                        ["declare rates for the other currencies partners take, such as rate SEK 0.087 "
                         f"{self.currency}"])
            return
        if code in self.rate_decls:
            self.report("E142", f"the rate of {code} is already set on line {self.rate_decls[code].span.line}",
                        decl.span, ["a currency has one rate: remove one of them"])
            return
        self.rate_decls[code] = decl
        if value is None:
            return
        if value <= 0:
            self.report("E142", f"a rate must be more than zero, not {_fmt(value)}", decl.value.span,
                        [f"write what one {code} is worth in {self.currency or DEFAULT_CURRENCY}"])
            return
        self.rates[code] = value

    def _check_PointValueDecl(self, decl: ast.PointValueDecl) -> None:
        value = self._money(decl.money)
        if value is None:
            return
        if value <= 0:
            self.report("E117", "a point value must be more than zero", decl.money.span,
                        [f"write what one point is worth to you, such as point value 0.05 "
                         f"{self.currency or DEFAULT_CURRENCY}"])
            return
        if self.settings.get("point value") is decl:
            self.point_value = value

    def _check_SegmentDecl(self, decl: ast.SegmentDecl) -> None:
        self._condition(decl.condition, event_context="a segment")

    def _check_TierRule(self, rule: ast.TierRule) -> None:
        self._condition(rule.condition, event_context="a tier")
        if self._pooled():
            self._pooled_tier_reads(rule)
        if rule.keep is not None:
            self._window(rule.keep, "'keep'")

    # -- shared accounts (docs/language.md "Shared accounts")

    def _pooled(self) -> bool:
        return "points pooled by account" in self.settings

    def _account_quantity(self, node: ast.AccountQuantity) -> Type:
        """``account.spend_12m``: a windowed (or lifetime) spend, purchases or visits over the whole account."""
        if not self._pooled():
            self.report("E150", f"account.{node.name} needs 'points pooled by account'", node.span,
                        ["add the line: points pooled by account", f"or read the customer's own figure: {node.name}"])
        if not _WINDOWED.fullmatch(node.name):
            self.report("E151", f"'{node.name}' is not a figure of the account", node.span,
                        ["an account has spend, purchases and visits over a window: account.spend_12m, "
                         "account.purchases_30d, account.visits_lifetime",
                         "points, pending_points, lifetime_points and tier are the account's already when pooled"])
            return Type.ERROR
        return self._name(ast.NameRef(node.name, node.span))

    def _pooled_tier_reads(self, rule: ast.TierRule) -> None:
        """A pooled program's tier belongs to the account: its condition may read only the account's figures."""
        from poletti.dsl.parser import iter_nodes

        account_wide = {"points", "pending_points", "lifetime_points"}
        for node in iter_nodes(rule.condition):
            if isinstance(node, ast.NameRef) and self.references.get(node) in ("builtin", "segment", "metric") \
                    and node.name not in account_wide:
                self.report("E152", f"the tier is the account's, but '{node.name}' is one contact's figure",
                            node.span, [f"write account.{node.name}" if _WINDOWED.fullmatch(node.name) else
                                        "a pooled tier reads account.spend_…, account.purchases_…, "
                                        "account.visits_… and the pooled points"])
            elif isinstance(node, ast.EventAttr):
                self.report("E152", "the tier is the account's: it cannot read one contact's event", node.span)

    def _check_PoolRule(self, rule: ast.PoolRule) -> None:
        return None  # a setting (see _setting); what it forbids is checked where it matters

    def _check_ExpireRule(self, rule: ast.ExpireRule) -> None:
        window = self._window(rule.window, "'points expire after'")
        if window.duration is not None and self.settings.get("points expire after") is rule:
            self.expire_after = window.duration

    def _check_PendingRule(self, rule: ast.PendingRule) -> None:
        window = self._window(rule.window, "'points pending for'")
        if window.duration is not None and self.settings.get("points pending for") is rule:
            self.pending_for = window.duration

    def _check_EarnRule(self, rule: ast.EarnRule) -> None:
        basis = rule.basis
        amount = rule.amount
        if isinstance(amount, ast.Multiplier):
            self.types[amount] = Type.NUMBER
            if amount.factor <= 0:
                self.report("E117", f"a multiplier of x{_fmt(amount.factor)} takes all points away", amount.span,
                            ["a multiplier must be more than zero, such as x2 or x1.5"])
            if basis is not None:
                self.report("E126", "a multiplier does not take 'per' or 'on'", basis.span,
                            ["a multiplier scales the points of the 'per' rules: earn x2 if tier >= gold",
                             "to pay extra for some items, write another rule: "
                             "earn 2 points per EUR on category \"beans\""])
        elif isinstance(amount, ast.PointsLit):
            proportional = isinstance(basis, (ast.PerCurrency, ast.PerMoney)) or (
                isinstance(basis, ast.PerUnit) and basis.unit == "item")
            self._points_amount(amount, what="an earn rule's points", allow_fraction=proportional)
            if basis is None:
                self.report("E126", "this earn rule does not say what the points are for", rule.span,
                            ["add what earns them: per EUR, per 10 EUR, per purchase, per visit, per item "
                             "or on signup"])
        self._basis(basis)
        on_birthday = isinstance(basis, ast.OnEvent) and basis.event.name in CLOCK_EVENT_TYPES
        self._options(rule, "an earn rule", allowed={"if", "during", "limit"},
                      points_limit=isinstance(amount, ast.PointsLit),
                      event_context="an 'on birthday' rule" if on_birthday else None)

    def _basis(self, basis: Any) -> None:
        if isinstance(basis, ast.PerCurrency):
            self._currency_code(basis.currency, basis.span)
            self._item_filter(basis.filter, "purchase")
        elif isinstance(basis, ast.PerMoney):
            amount = self._money(basis.money)
            if amount is not None and amount <= 0:
                self.report("E117", f"'per {_fmt(amount)} {basis.money.currency}' divides by zero",
                            basis.money.span, ["write a positive amount, such as per 10 EUR"])
            self._item_filter(basis.filter, "purchase")
        elif isinstance(basis, ast.PerUnit):
            self._item_filter(basis.filter, basis.unit)
        elif isinstance(basis, ast.OnEvent):
            if not self._is_event_type(basis.event.name):
                self._unknown_event(basis.event, allow_birthday=False)

    def _item_filter(self, item_filter: ast.ItemFilter | None, unit: str) -> None:
        if item_filter is None:
            return
        if unit not in ("purchase", "purchases", "item"):
            self.report("E115", f"'on {item_filter.kind}' cannot be used with {unit}", item_filter.span,
                        ["only purchases have items; filter purchases instead"])
        self._filter_value(item_filter)

    def _filter_value(self, item_filter: ast.ItemFilter) -> None:
        value = item_filter.value
        if isinstance(value, ast.TextLit):
            self.types[value] = Type.TEXT
            if not value.value:
                self.report("E117", f"an empty {item_filter.kind}", value.span,
                            [f'write the {item_filter.kind} in quotes, such as "beans"'])
        elif isinstance(value, ast.NameRef):
            self._name_in_amount(value, f'the {item_filter.kind} in quotes: "{value.name}"')
        else:
            self.report("E103", f"the {item_filter.kind} must be a text in quotes", item_filter.span)

    def _check_ConvertRule(self, rule: ast.ConvertRule) -> None:
        self._points_amount(rule.threshold, what="an 'at' threshold")
        if isinstance(rule.target, ast.PointsLit):
            self.report("E108", "an 'at' rule converts points into a reward, not into points", rule.target.span,
                        ["grant a reward: at 50 points grant free_drink"])
        else:
            self._target(rule.target)
        self._options(rule, "an 'at' rule", allowed={"if", "during", "limit"}, points_limit=False,
                      event_context="an 'at' rule")

    def _check_StampRule(self, rule: ast.StampRule) -> None:
        self._count(rule.count, f"'every … {rule.unit}'")
        self._item_filter(rule.filter, rule.unit)
        self._target(rule.target)
        self._options(rule, "an 'every' rule", allowed={"if", "during", "limit"}, points_limit=False,
                      event_context=None)

    def _check_OnRule(self, rule: ast.OnRule) -> None:
        name = rule.event.name
        if not (self._is_event_type(name) or name in CLOCK_EVENT_TYPES):
            self._unknown_event(rule.event, allow_birthday=True)
        self._target(rule.target)
        self._options(rule, "an 'on' rule", allowed={"if", "during", "limit", "once"}, points_limit=False,
                      event_context="an 'on birthday' rule" if name in CLOCK_EVENT_TYPES else None)

    def _check_WhenRule(self, rule: ast.WhenRule) -> None:
        self._condition(rule.condition, event_context="a 'when' rule")
        self._target(rule.target)
        self._options(rule, "a 'when' rule", allowed={"if", "during", "limit", "once"}, points_limit=False,
                      event_context="a 'when' rule")

    def _check_ReferralRule(self, rule: ast.ReferralRule) -> None:
        if self._pooled():
            self.report("E153", "referral rules do not work with 'points pooled by account' yet", rule.span,
                        ["a referral pays one customer's balance; pooled balances belong to accounts"])
        # Its options are read at the friend's purchase: `if event.amount >= 20 EUR` reads that purchase, and a
        # limit counts the referrer's rewarded friends (times only: one payment is one referral).
        self._target(rule.target)
        self._options(rule, "a referral rule", allowed={"if", "during", "limit"}, points_limit=False,
                      event_context=None)

    # ------------------------------------------------------------ rule parts

    _OPTION_WORDS = {ast.IfOption: "if", ast.DuringOption: "during", ast.LimitOption: "limit", ast.OnceOption: "once"}

    def _options(self, rule: Any, kind: str, *, allowed: set[str], points_limit: bool,
                 event_context: str | None) -> None:
        seen: dict[Any, Any] = {}
        for option in rule.options:
            word = self._OPTION_WORDS.get(type(option))
            if word is None:
                continue
            if word not in allowed:
                hint = ("'once' is for 'when' and 'on' rules; to cap this rule write limit 1 times per …"
                        if word == "once" else "")
                self.report("E115", f"{kind} cannot carry '{word}'", option.span, [hint])
            elif isinstance(option, ast.LimitOption) and option.unit == "points" and not points_limit:
                hints = (["put the cap on the earn rules that the multiplier scales"] if kind == "an earn rule"
                         else ["'limit … points' caps the points of an earn rule "
                               "(earn 10 points on review limit 50 points per month)",
                               "to limit how often a reward is granted, write limit N times per …"])
                self.report("E115", f"{kind} cannot carry 'limit … points'", option.span, hints)
            # One of each per rule, a limit included: the contract gives a rule one cap (two limits with
            # different periods would be a second cap the engine does not keep).
            key: Any = word
            if key in seen:
                first = seen[key]
                hint = ("combine the conditions with 'and'" if word == "if"
                        else "a rule takes one limit: keep the one that matters, or split the rule in two"
                        if word == "limit" else "remove one of them")
                self.report("E116", f"this rule already has '{word}' (line {first.span.line}, column "
                                    f"{first.span.column})", option.span, [hint])
            else:
                seen[key] = option
            self._option(option, event_context)

    def _option(self, option: Any, event_context: str | None) -> None:
        if isinstance(option, ast.IfOption):
            self._condition(option.condition, event_context=event_context)
        elif isinstance(option, ast.DuringOption):
            start = self._date(option.start)
            last = option.end
            end = self._date(last) if last is not None else None
            if last is not None and start is not None and end is not None and end < start:
                self.report("E107", f"the campaign ends ({last.text}) before it starts ({option.start.text})",
                            last.span, [f"write the earlier date first: during {last.text}..{option.start.text}"])
        elif isinstance(option, ast.LimitOption):
            self._count(option.count, f"'limit … {option.unit}'",
                        Type.POINTS if option.unit == "points" else Type.COUNT)
            period = option.period
            if isinstance(period, str):
                if period not in _PERIODS:  # not reachable from the grammar
                    self.report("E106", f"'{period}' is not a period", option.span)
            elif isinstance(period, ast.NameRef):
                self.report("E106", f"'{period.name}' is not a period", period.span,
                            [did_you_mean(period.name, _PERIODS),
                             "write day, week, month or year (calendar periods) or a length such as 30d"])
            else:
                self._window(period, "a limit period")
        elif isinstance(option, ast.OnceOption) and option.window is not None:
            self._window(option.window, "'once per'")

    def _target(self, target: Any) -> None:
        if isinstance(target, ast.PointsLit):
            self._points_amount(target, what="granted points")
            return
        if not isinstance(target, ast.Ident):
            return
        name = target.name
        decl = self.decls.get(name)
        if decl is not None and decl.kind == "reward":
            self.granted.add(name)
            return
        what = None
        if decl is not None:
            what = _KIND_WORDS[decl.kind]
        elif name in _FIXED_BUILTINS or _WINDOWED.fullmatch(name):
            what = "a built-in quantity"
        elif name == _NO_TIER:
            what = "the absence of a tier"
        if what is not None:
            hints = {
                "a tier": "customers reach a tier through its 'when' condition",
                "a segment": "customers join a segment through its 'when' condition",
            }
            extra = "to give points write: grant 50 points" if name in ("points", "lifetime_points") else ""
            self.report("E108", f"'{name}' is {what}, not a reward", target.span,
                        [hints.get(what, ""), extra, "grant a reward name, or an amount such as 50 points"])
            return
        if name in self.rewards:  # implicitly declared by an earlier grant
            self.granted.add(name)
            return
        self.report("W201", f"reward '{name}' is not declared; it is declared implicitly", target.span,
                    self._implicit_reward_notes(name))
        self.rewards[name] = RewardInfo(name, None, None, None, True, target.span)
        self.granted.add(name)

    def _implicit_reward_notes(self, name: str) -> list[str]:
        """W201's notes: the declared reward it may be a typo of, and the declaration to add.

        The value is left for the user to fill in: only they know what a
        reward costs, and a made-up number would be counted in simulate's cost.
        """
        declared = {n: d for n, d in self.decls.items() if d.kind == "reward"} if self._afford(len(self.decls)) else {}
        close = closest(name, declared) if declared else None
        typo = f"did you mean '{close}' (declared on line {declared[close].name.span.line})?" if close else ""
        label = name.replace("_", " ").strip().capitalize() or name
        currency = self.currency or DEFAULT_CURRENCY
        return [typo,
                f'declare it with a label and what one costs you: reward {name} "{label}" value <cost> {currency}',
                "until it has a value, simulate reports its cost as unknown"]

    # ------------------------------------------------------------- amounts

    def _points_amount(self, lit: Any, *, what: str, allow_fraction: bool = False) -> int | None:
        """A positive points amount; whole unless ``allow_fraction``. Returns the whole value, if whole."""
        if not isinstance(lit, ast.PointsLit):
            return None
        self.types[lit] = Type.POINTS
        amount = lit.amount
        if isinstance(amount, ast.NameRef):
            self._name_in_amount(amount, "a number of points")
            return None
        if not isinstance(amount, ast.NumberLit):
            return None
        self.types[amount] = Type.POINTS
        value = amount.value
        if value <= 0:
            self.report("E117", f"{what} must be more than zero", lit.span)
            return None
        if not _is_whole(value):
            if allow_fraction:
                return None
            self.report("E117", f"{what} must be a whole number, not {_fmt(value)}", lit.span,
                        ["points are whole numbers"])
            return None
        return int(value)

    def _count(self, count: Any, what: str, unit: Type = Type.COUNT) -> int | None:
        if isinstance(count, ast.NameRef):
            self._name_in_amount(count, "a whole number")
            return None
        if not isinstance(count, ast.NumberLit):
            self.report("E117", f"{what} needs a whole number", count.span if hasattr(count, "span") else ast.NO_SPAN)
            return None
        self.types[count] = unit
        if count.value <= 0 or not _is_whole(count.value):
            self.report("E117", f"{what} needs a whole number more than zero, not {_fmt(count.value)}", count.span)
            return None
        return int(count.value)

    def _money(self, lit: Any) -> Decimal | None:
        """Check a money literal: its currency and its amount. Returns the amount if readable."""
        if not isinstance(lit, ast.MoneyLit):
            return None
        self.types[lit] = Type.MONEY
        self._currency_code(lit.currency, lit.span)
        amount = lit.amount
        if isinstance(amount, ast.NameRef):
            self._name_in_amount(amount, "an amount")
            return None
        if not isinstance(amount, ast.NumberLit):
            return None
        self.types[amount] = Type.MONEY
        return amount.value

    def _currency_code(self, code: str, span: ast.Span) -> None:
        if not currencies.is_valid(code):
            self.report("E121", f"'{code}' is not a currency", span,
                        [self._did_you_mean(code, currencies.ACTIVE - currencies.NOT_TENDER),
                         "currency codes are ISO 4217 codes such as EUR, USD or GBP"])
            return
        if self.currency is None or code == self.currency:
            return
        setting = self.settings.get("currency")
        where = (f"the program's currency is {self.currency}, set on line {setting.span.line}" if setting is not None
                 else f"the program's currency is {self.currency} (the default)")
        self.report("E109", f"money in {code}, but the program's currency is {self.currency}", span,
                    [where, f"to run the program in {code}, write 'currency {code}' at the top of the file"])

    def _name_in_amount(self, ref: ast.NameRef, wanted: str) -> None:
        """A name where a literal belongs. The grammar lets one through only for module
        parameters (substituted on expansion); in a rule file it is a syntax error."""
        self.report("P001", f"unexpected '{ref.name}'", ref.span, [f"expected {wanted}"])

    def _kind_of(self, name: str) -> str | None:
        if name in _FIXED_BUILTINS or _WINDOWED.fullmatch(name):
            return "builtin"
        if name == _NO_TIER:
            return "none"
        decl = self.decls.get(name)
        if decl is not None:
            return decl.kind
        if name in self.rewards:
            return "reward"
        return None

    def _date(self, lit: ast.DateLit) -> datetime.date | None:
        self.types[lit] = Type.DATE
        try:
            return datetime.date.fromisoformat(lit.text)
        except ValueError:
            self.report("E105", f"{lit.text} is not a date in the calendar", lit.span,
                        ["dates are written year-month-day, such as 2026-12-01"])
            return None

    def _window(self, window: Any, what: str, *, allow_lifetime: bool = False) -> _Window:
        if isinstance(window, ast.DurationLit):
            self.types[window] = Type.DURATION
            text = f"{window.amount}{window.unit}"
            if window.amount <= 0:
                self.report("E106", f"{what} of {text} has no length", window.span,
                            ["write a length of at least one day, week, month or year, such as 30d or 12m"])
                return _Window(False)
            if window.amount > _MAX_WINDOW.get(window.unit, 0):
                self.report("E106", f"{what} of {text} is longer than 100 years", window.span)
                return _Window(False)
            return _Window(True, window)
        if isinstance(window, ast.NameRef):
            if allow_lifetime and window.name == "lifetime":
                return _Window(True, None)
            if window.name in _PERIOD_AS_WINDOW:
                hint = (f"write {_PERIOD_AS_WINDOW[window.name]} for a {window.name} of time; the calendar words "
                        "day, week, month and year are for 'limit … per'")
            else:
                hint = "write a length such as 30d, 12w, 12m or 1y" + (", or lifetime" if allow_lifetime else "")
            self.report("E106", f"{what} needs a length of time, not '{window.name}'", window.span, [hint])
            return _Window(False)
        span = getattr(window, "span", ast.NO_SPAN)
        self.report("E106", f"{what} needs a length of time such as 30d or 12m", span)
        return _Window(False)

    # ---------------------------------------------------------- expressions

    def _condition(self, expr: Any, *, event_context: str | None) -> None:
        self.event_context = event_context
        try:
            t = self._expr(expr)
        finally:
            self.event_context = None
        self._require_condition(expr, t)

    def _require_condition(self, expr: Any, t: Type) -> None:
        if t in _CONDITION_TYPES:
            return
        hints = {
            Type.TIER: "compare the tier: tier >= gold",
            Type.REWARD: "a reward is not a condition",
        }
        hint = hints.get(t, "compare it with a value, for example spend_12m > 100" if t in _NUMERIC
                         else "a condition is a comparison, a segment, or conditions joined by and / or / not")
        self.report("E114", f"this condition is {_article(t)} value, not a yes/no", _span(expr), [hint])

    def _expr(self, e: Any) -> Type:
        """The type of expression ``e``, recorded in ``types``; reports what is wrong inside it."""
        t: Type
        if isinstance(e, ast.NumberLit):
            t = Type.NUMBER
        elif isinstance(e, ast.NameRef):
            t = self._name(e)
        elif isinstance(e, ast.MoneyLit):
            self._money(e)
            t = Type.MONEY
        elif isinstance(e, ast.PointsLit):
            t = Type.POINTS
            if isinstance(e.amount, ast.NumberLit):
                self.types[e.amount] = Type.POINTS
                if not _is_whole(e.amount.value):
                    self.report("E117", f"points are whole numbers, not {_fmt(e.amount.value)}", e.span)
            elif isinstance(e.amount, ast.NameRef):
                self._name_in_amount(e.amount, "a number of points")
        elif isinstance(e, ast.DurationLit):
            t = Type.DURATION
        elif isinstance(e, ast.DateLit):
            self._date(e)
            t = Type.DATE
        elif isinstance(e, ast.TextLit):
            t = Type.TEXT
        elif isinstance(e, ast.BoolLit):
            t = Type.BOOL
        elif isinstance(e, ast.EventAttr):
            t = self._event_attr(e)
        elif isinstance(e, ast.AccountQuantity):
            t = self._account_quantity(e)
        elif isinstance(e, ast.PresenceTest):
            t = self._presence(e)
        elif isinstance(e, ast.Compare):
            t = self._compare(e, self._expr(e.left), self._expr(e.right))
        elif isinstance(e, ast.BinaryOp):
            t = self._arithmetic(e, self._expr(e.left), self._expr(e.right))
        elif isinstance(e, (ast.AndOp, ast.OrOp)):
            word = "and" if isinstance(e, ast.AndOp) else "or"
            for side in (e.left, e.right):
                side_type = self._expr(side)
                if side_type not in _CONDITION_TYPES:
                    self.report("E114", f"'{word}' joins yes/no conditions, and this is {_article(side_type)}",
                                _span(side), ["compare it first, for example spend_30d > 50"])
            t = Type.BOOL
        elif isinstance(e, ast.NotOp):
            operand = self._expr(e.operand)
            if operand not in _CONDITION_TYPES:
                self.report("E114", f"'not' needs a yes/no condition, and this is {_article(operand)}",
                            _span(e.operand))
            t = Type.BOOL
        else:
            self.report("E114", "this is not a value", _span(e))
            t = Type.ERROR
        self.types[e] = t
        return t

    def _name(self, ref: ast.NameRef) -> Type:
        name = ref.name
        if name in _FIXED_BUILTINS:
            t = _FIXED_BUILTINS[name]
            self.builtins.setdefault(name, BuiltinQuantity(name, name, None, t))
            self.references[ref] = "builtin"
            return t
        match = _WINDOWED.fullmatch(name)
        if match:
            kind, amount, unit = match.groups()
            t = _WINDOWED_BUILTINS[kind]
            window = None
            if amount is not None:
                # A window of more digits than any allowed one is simply too long (and int() would refuse it).
                synthetic = ast.DurationLit(int(amount) if len(amount) <= 9 else 10**9, unit, ref.span)
                checked = self._window(synthetic, f"'{name}': a window")
                self.types.pop(synthetic, None)  # not a node of the file
                if not checked.ok:
                    return Type.ERROR
                window = checked.duration
            self.builtins.setdefault(name, BuiltinQuantity(name, kind, window, t))
            self.references[ref] = "builtin"
            return t
        if name == _NO_TIER:
            self.references[ref] = "none"
            return Type.TIER
        kind_of = self._kind_of(name)
        if kind_of is not None:
            self.references[ref] = kind_of
            if kind_of == "tier":
                return Type.TIER
            if kind_of == "segment":
                return Type.SEGMENT
            if kind_of == "metric":
                info = self.metrics.get(name)
                return info.type if info is not None else Type.ERROR
            return Type.REWARD
        self._unknown_name(ref)
        return Type.ERROR

    def _unknown_name(self, ref: ast.NameRef) -> None:
        name = ref.name
        known = len(_FIXED_BUILTINS) + len(_SUGGESTED_WINDOWS) + len(self.builtins) + len(self.decls) + 1
        visible = (set(_FIXED_BUILTINS) | set(_SUGGESTED_WINDOWS) | set(self.builtins) | set(self.decls) | {_NO_TIER}
                   if self._afford(known) else ())
        notes = [did_you_mean(name, visible) if visible else ""]
        if name in _WINDOWED_BUILTINS:
            notes.append(f"add a window: {name}_30d, {name}_12m or {name}_lifetime")
        elif name in BUILTIN_EVENT_TYPES or name in self.events:
            notes.append(f"to count events, declare a metric: metric {name}_90d = count of {name} over 90d")
        elif name in self.attributes or name in _BUILTIN_ATTRIBUTES:
            notes.append(f"an event attribute is written event.{name}")
        elif not notes[0]:
            notes.append("declare it (reward, segment, metric or tier) or use a built-in such as spend_12m")
        self.report("E101", f"unknown name '{name}'", ref.span, notes)

    def _event_attr(self, attr: ast.EventAttr) -> Type:
        name = attr.name
        t = self._field_type(name)
        if t is None:
            self._unknown_attribute(name, attr.span)
            return Type.ERROR
        if self.event_context is not None:
            self.report("E125", f"event.{name} has no value in {self.event_context}", attr.span,
                        ["only earn, 'on' (but not 'on birthday') and 'every' rules are worked out for one event: "
                         "test event attributes "
                         "in their 'if', for example: on purchase grant 50 points if event.amount > 100"])
        return t

    def _presence(self, e: ast.PresenceTest) -> Type:
        """``event.x is missing``: only an attribute can be absent from an event; anything else always has a value."""
        operand: Any = e.attribute
        if isinstance(operand, ast.EventAttr):
            self._expr(operand)  # records its type; E118 / E125 as for any event attribute
            return Type.BOOL
        word = "present" if e.present else "missing"
        if isinstance(operand, ast.NameRef) and operand.name in self._attribute_names() | set(self.attribute_decls):
            # `channel is missing`: the attribute without its `event.`
            self.report("E119", f"'is {word}' tests an event attribute: write event.{operand.name}", operand.span,
                        [f"event.{operand.name} is {word}"])
            return Type.BOOL
        operand_type = self._expr(operand)
        if operand_type is Type.ERROR:
            return Type.BOOL  # already reported
        text = format_expr(operand)
        if operand_type in _NUMERIC:
            hint = f"compare it instead, such as {text} > 0"
        elif operand_type in _CONDITION_TYPES:
            hint = f"it is already a yes/no condition: write {text} or {format_expr(ast.NotOp(operand, e.span))}"
        else:
            hint = "only an event attribute, such as event.channel, can be missing or present"
        self.report("E119", f"'is {word}' tests an event attribute, and {text} always has a value", _span(operand),
                    [hint])
        return Type.BOOL

    def _attribute_names(self) -> set[str]:
        return set(_BUILTIN_ATTRIBUTES) | set(self.attributes)

    def _compare(self, e: ast.Compare, left: Type, right: Type) -> Type:
        if Type.ERROR in (left, right):
            return Type.BOOL
        if Type.TIER in (left, right):
            if left is not right:
                other, other_type = (e.right, right) if left is Type.TIER else (e.left, left)
                hint = "tiers compare by rank with tier names or none: tier >= silver"
                if isinstance(other, ast.TextLit) and self._kind_of(other.value) == "tier":
                    hint = f"write the tier name without quotes: tier == {other.value}"
                self.report("E104", f"a tier cannot be compared with {_article(other_type)}", _span(other), [hint])
            return Type.BOOL
        if Type.REWARD in (left, right):
            self.report("E119", "a reward cannot be compared", _span(e), ["a reward is granted, not measured"])
            return Type.BOOL
        if left in _NUMERIC and right in _NUMERIC:
            if left is right or Type.NUMBER in (left, right):
                self._unify(e.left, left, e.right, right)
            else:
                self.report("E103", f"cannot compare {left} with {right}", _span(e.right), [_mix_hint(left, right)])
            return Type.BOOL
        if {left, right} <= {Type.BOOL, Type.SEGMENT} or left is right:
            if left in _EQUALITY_ONLY and e.op not in ("==", "!="):
                self.report("E119", f"'{e.op}' does not apply to {left} values", _span(e),
                            [f"{left} values can only be compared with == or !="])
            return Type.BOOL
        self.report("E103", f"cannot compare {left} with {right}", _span(e.right))
        return Type.BOOL

    def _arithmetic(self, e: ast.BinaryOp, left: Type, right: Type) -> Type:
        if Type.ERROR in (left, right):
            return Type.ERROR
        op = e.op
        if left not in _NUMERIC or right not in _NUMERIC:
            odd = left if left not in _NUMERIC else right
            hint = ("a tier can only be compared: tier >= gold" if odd is Type.TIER
                    else "arithmetic works on numbers, money, points and counts")
            self.report("E119", f"'{op}' does not apply to {odd} values", _span(e), [hint])
            return Type.ERROR
        if op == "/" and isinstance(e.right, ast.NumberLit) and e.right.value == 0:
            self.report("E117", "division by zero", _span(e.right))
            return Type.ERROR
        if left in _UNITS and right in _UNITS and left is not right:
            self.report("E103", f"cannot combine {left} and {right} with '{op}'", _span(e.right),
                        [_mix_hint(left, right)])
            return Type.ERROR
        if op in ("+", "-"):
            return self._unify(e.left, left, e.right, right)
        if op == "*":
            if left in _UNITS and right in _UNITS:
                self.report("E119", f"cannot multiply {left} by {right}", _span(e),
                            [f"{left} can be multiplied by a number"])
                return Type.ERROR
            return left if left in _UNITS else right
        # division
        if left is right:
            return Type.NUMBER  # Money / Money, Points / Points …: a ratio
        if left is Type.NUMBER:
            self.report("E119", f"cannot divide a number by {right}", _span(e))
            return Type.ERROR
        return left

    def _unify(self, left_node: Any, left: Type, right_node: Any, right: Type) -> Type:
        """The common type of two numeric operands; a bare number takes the other's unit."""
        if left is right:
            return left
        if left is Type.NUMBER:
            self._take_unit(left_node, right)
            return right
        if right is Type.NUMBER:
            self._take_unit(right_node, left)
            return left
        return Type.ERROR

    def _take_unit(self, node: Any, unit: Type) -> None:
        """Record that a bare-number expression stands for ``unit`` (``1000`` in ``spend_12m > 1000``)."""
        stack = [node]
        while stack:
            current = stack.pop()
            if self.types.get(current) is not Type.NUMBER:
                continue
            self.types[current] = unit
            if isinstance(current, ast.BinaryOp) and current.op in ("+", "-"):
                stack.extend((current.left, current.right))

    # ------------------------------------------------------------- 5. warnings

    def _warn(self, code: str, message: str, span: ast.Span, statement: Any, notes: Iterable[str] = ()) -> None:
        self.origin = self.origins.get(statement)
        self.report(code, message, span, notes)
        self.origin = None

    def _warn_unreachable_conversions(self, items: list[tuple[Any, modules.Origin | None]]) -> None:
        # The unconditional `at` rules that set a new lowest threshold, in file order (so their
        # thresholds fall): the first earlier rule with a threshold <= N is the first of these that is,
        # found by bisection instead of by a pass over every earlier rule.
        lowest: list[tuple[int, ast.ConvertRule]] = []
        falling: list[int] = []  # -threshold of each, rising, for bisect
        for statement, _ in items:
            condition = _literal_false(statement)
            if condition is not None:
                self._warn("W202", "this rule can never fire: its condition is always false", condition.span,
                           statement)
            if not isinstance(statement, ast.ConvertRule):
                continue
            threshold = statement.threshold.amount
            if not isinstance(threshold, ast.NumberLit) or threshold.value <= 0 or not _is_whole(threshold.value):
                continue  # already an error
            first = bisect.bisect_left(falling, -threshold.value)
            if first < len(lowest):
                earlier_value, earlier = lowest[first]
                self._warn("W202", "this rule can never fire", statement.span, statement,
                           [f"the rule 'at {_fmt(Decimal(earlier_value))} points' on line {earlier.span.line} "
                            f"runs first and converts the balance until less than {earlier_value} points are left"])
            if not statement.options and (not lowest or threshold.value < lowest[-1][0]):
                lowest.append((int(threshold.value), statement))
                falling.append(-int(threshold.value))

    def _check_tier_order(self) -> None:
        """E128: a tier that a later, higher-ranked tier always outranks (tiers declared from high to low).

        Every pair of tiers is a question for the prover, so the pass shares
        one step budget (``_TIER_ORDER_STEPS``): programs people write need a
        few hundred steps; a file with thousands of tiers stops being
        examined when the budget is spent instead of taking minutes.
        """
        conditions = [t.rule for t in self.tiers] + list(self.segments.values())
        if self._has_error_inside(conditions):
            return  # a broken condition proves nothing
        segments = {name: decl.condition for name, decl in self.segments.items()}
        texts: dict[int, tuple[Any, str]] = {}  # each condition printed once, however many pairs it is in
        budget = Budget(_TIER_ORDER_STEPS)
        tiers = [t.rule for t in self.tiers]
        for position, lower in enumerate(tiers):
            if budget.spent:
                break
            if _literal_false(lower) is not None:
                continue  # W202 says it already
            higher = next((t for t in tiers[position + 1:]
                           if _kept_as_long(t, lower)
                           and implies(lower.condition, t.condition, segments, texts, budget)),
                          None)
            if higher is None:
                continue
            name, other = lower.name.name, higher.name.name
            self._warn("E128", f"tier '{name}' can never be reached: '{other}' ranks higher and holds whenever "
                               f"'{name}' does", lower.name.span, lower,
                       [f"tiers declared later rank higher, so '{other}' (line {higher.span.line}) outranks '{name}'",
                        f"declare tiers from lowest to highest: put '{format_statement(lower)}' after "
                        f"'{format_statement(higher)}'"])

    def _has_error_inside(self, statements: Iterable[Any]) -> bool:
        """Whether an error so far starts inside any of the statements (one sort, one search each)."""
        starts = sorted(d.span.start for d in self.diagnostics if d.severity == ERROR)
        for statement in statements:
            i = bisect.bisect_left(starts, statement.span.start)
            if i < len(starts) and starts[i] <= statement.span.end:
                return True
        return False

    def _warn_unused_rewards(self, items: list[tuple[Any, modules.Origin | None]]) -> None:
        for statement, _ in items:
            if not isinstance(statement, ast.RewardDecl) or not self._owns("reward", statement):
                continue
            info = self.rewards.get(statement.name.name)
            if info is None or info.cost is not None or statement.name.name in self.granted:
                continue
            if any(isinstance(p, ast.RewardCost) for p in statement.parts):
                continue  # has a cost that was wrong: already an error
            implicit = ({r.name: r for r in self.rewards.values() if r.implicit}
                        if self._afford(len(self.rewards)) else {})
            typo = closest(info.name, implicit) if implicit else None
            self._warn("W203", f"reward '{info.name}' is never granted and cannot be redeemed",
                       statement.name.span, statement,
                       [f"line {implicit[typo].span.line} grants '{typo}': did you mean '{info.name}' there?"
                        if typo else "",
                        f"grant it in a rule (at 50 points grant {info.name}), or add 'costs 50 points' "
                        "so customers can redeem it"])

    def _warn_expiry(self, items: list[tuple[Any, modules.Origin | None]]) -> None:
        expire, pending = self.expire_after, self.pending_for
        if expire is None or pending is None:
            return
        if _mixed(expire, pending):
            can_expire_first = _shortest_days(expire) <= _longest_days(pending)
        else:
            can_expire_first = _same_scale(expire) <= _same_scale(pending)
        if can_expire_first:
            rule = self.settings["points expire after"]
            pending_rule = self.settings["points pending for"]
            self._warn("W204",
                       f"points expire after {expire.amount}{expire.unit}, which can be before their "
                       f"{pending.amount}{pending.unit} pending period ends", expire.span, rule,
                       [f"points become spendable only after 'points pending for' (line {pending_rule.span.line}); "
                        "make the expiry longer than the pending period"])

    def _warn_multipliers(self, items: list[tuple[Any, modules.Origin | None]]) -> None:
        def pays_for_purchases(s: Any) -> bool:
            return isinstance(s, ast.EarnRule) and isinstance(s.amount, ast.PointsLit) and (
                isinstance(s.basis, (ast.PerCurrency, ast.PerMoney))
                or (isinstance(s.basis, ast.PerUnit) and s.basis.unit in ("purchase", "item")))

        if any(pays_for_purchases(s) for s, _ in items):
            return
        for statement, _ in items:
            if isinstance(statement, ast.EarnRule) and isinstance(statement.amount, ast.Multiplier):
                self._warn("W205", f"'earn x{_fmt(statement.amount.factor)}' has no points to multiply",
                           statement.amount.span, statement,
                           ["a multiplier scales the points of 'per' rules on purchases, such as "
                            "earn 1 point per EUR; this program has none"])


# ------------------------------------------------------------------ helpers


def _span(node: Any) -> ast.Span:
    span = getattr(node, "span", None)
    return span if isinstance(span, ast.Span) else ast.NO_SPAN


def _node_key(node: Any) -> Any:
    """A value for comparing two nodes regardless of where they are written."""
    if isinstance(node, ast.DurationLit):
        return (node.amount, node.unit)
    if isinstance(node, ast.NameRef):
        return node.name
    return id(node)


def _mix_hint(left: Type, right: Type) -> str:
    if {left, right} == {Type.MONEY, Type.POINTS}:
        return "Money and Points never mix: write the amount as money (1000) or compare points with points"
    return f"{left} and {right} are different units; compare like with like"


def _kept_as_long(higher: ast.TierRule, lower: ast.TierRule) -> bool:
    """True if ``higher`` is held at least as long as ``lower`` once their conditions stop holding.

    A ``keep`` on the lower tier could outlast the higher tier's and make the
    lower tier reachable for a while; only a keep at least as long on the
    higher tier rules that out.
    """
    if lower.keep is None:
        return True
    if not isinstance(lower.keep, ast.DurationLit) or not isinstance(higher.keep, ast.DurationLit):
        return False
    if _mixed(higher.keep, lower.keep):
        return _shortest_days(higher.keep) >= _longest_days(lower.keep)
    return _same_scale(higher.keep) >= _same_scale(lower.keep)


def _literal_false(statement: Any) -> Any:
    """The literal ``false`` that makes a rule or tier unreachable, if any."""
    conditions = []
    if isinstance(statement, (ast.WhenRule, ast.TierRule)):
        conditions.append(statement.condition)
    for option in getattr(statement, "options", ()):
        if isinstance(option, ast.IfOption):
            conditions.append(option.condition)
    for condition in conditions:
        if isinstance(condition, ast.BoolLit) and not condition.value:
            return condition
    return None


# Lengths of durations in days, for comparing windows of different units.
_DAYS = {"d": (1, 1), "w": (7, 7), "m": (28, 31), "y": (365, 366)}


def _shortest_days(d: ast.DurationLit) -> int:
    return d.amount * _DAYS[d.unit][0]


def _longest_days(d: ast.DurationLit) -> int:
    return d.amount * _DAYS[d.unit][1]


def _mixed(a: ast.DurationLit, b: ast.DurationLit) -> bool:
    """True when one is in days/weeks and the other in calendar months/years."""
    return (a.unit in "dw") != (b.unit in "dw")


def _same_scale(d: ast.DurationLit) -> int:
    """Days for d/w, months for m/y: exact within one scale."""
    return d.amount * {"d": 1, "w": 7, "m": 1, "y": 12}[d.unit]
