"""A small, separately written evaluator of the core of the poletti language contract.

Written from ``shared/LANGUAGE.md`` and the public embedding API only, never from
the engine's code, so that a property test can run the same random program and
history through both and catch semantic bugs (a missed window exit, a wrong DST
shift) that hand-written cases miss.

What it covers
--------------

* settings: ``timezone "…"`` (any IANA zone), ``rounding down|nearest|up``,
  ``points expire after W``, ``points pending for W``; ``program``/``currency``
  lines are ignored (EUR only);
* ``reward NAME ["label"] [value V EUR] [costs N points]``;
* earn rules: ``earn N point(s) per EUR [on category "c"]``, ``earn N point(s)
  per M EUR``, ``earn N point(s) per purchase``, each with an optional ``if``;
  multipliers ``earn xF [if …]``;
* ``at N points grant R`` (unconditional, file order, each repeated while the
  balance allows);
* ``tier T when COND [keep W]`` (later = higher rank), ``segment S when COND``;
* conditions: ``and`` ``or`` ``not`` and parentheses over ``spend_W``,
  ``purchases_W`` (W = Nd, Nw, Nm, Ny or lifetime), ``days_since_last_purchase``,
  ``member_days``, ``points``, ``pending_points``, ``lifetime_points``
  compared with a bare number (or ``N EUR`` / ``N points``), ``tier OP T|none``
  and a segment name;
* events ``purchase`` (amount, optional items), ``refund`` (original, optional
  amount) and ``redeem`` (reward), and ``advance_to``.

How it reads the contract (and the points it leaves open)
---------------------------------------------------------

* Time: every instant is a UTC-aware datetime. ``Nd`` is N × 24 h, ``Nw`` is
  N × 7 × 24 h (the contract only says ``30d`` is 30 × 24 h; weeks are read
  the same way). ``Nm``/``Ny`` shift the local date in the program zone by
  calendar months (day clamped to the month's last day) at the same local
  time; a result in a skipped local hour moves to the end of the gap (the
  instant the clock jumps), one in a repeated hour takes the earlier instant.
* Windows: a purchase at p counts in window W at every t with p <= t < p + W,
  at its net amount (amount minus what has been refunded so far).
  ``purchases_W`` counts purchase events, refunded or not.
* Lots: a purchase's points form one lot, earned at p, gone at p + expiry,
  spendable from p + pending (pending lots keep their earning instant, so
  "oldest first" is by earning instant). New points pay debt first, pending
  points included (at the moment they are earned). Debt only arises when no
  points are left, so the balance is (spendable lots) − debt.
* Refund: reversed so far = floor(P × refunded so far ÷ amount); the increase
  is taken from the purchase's own still-pending lot first, then the oldest
  spendable lots, then other pending lots (oldest first), the rest becomes
  debt (the contract is silent on where reversed points come from; this is
  docs/language.md's "Pending points, refunds and debt"). ``lifetime_points``
  ("before deductions") is not reduced. Rewards stay.
* Rejections modelled: a refund of an unknown purchase, of more than is left,
  of nothing; a redeem of an unknown reward, of one without ``costs``, or with
  too few spendable points (checked after the clock step). A rejected event
  changes nothing, the clock step included.
* Steps at an event at t: (1) clock: every instant c in (cursor, t] at which
  something can change (lot expiry, pending release, a purchase leaving a
  status window, a ``keep`` running out, ``days_since_last_purchase`` crossing
  a threshold of a status condition) is applied in time order: expiries, then
  releases, then — if the spendable balance grew — ``at`` conversions, then
  status; (2) facts; (3) earn: all ``if`` conditions (and multiplier
  conditions) are evaluated before any of this event's points are added;
  ``tier`` and segments read the values left by step 1, windows include the
  purchase; each rule rounds its own points, multipliers that apply multiply
  together and scale the sum of the rules' points, rounded once; (4) convert;
  (5) status: segments first, then tiers (tiers may read segments). During a
  purchase, steps 3 and 5 read ``days_since_last_purchase`` from the purchase
  before it ("the latest purchase before the current event"); right after
  the event, at the same instant, the purchase is the latest one and status
  is evaluated once more (so a segment on recency can hold in step 5 and end
  at once, and a ``keep`` on a tier reading it starts there — the reading of
  docs/language.md "Time"). A tier is held while its condition holds and, with
  ``keep W``, until s + W when the condition stopped holding at s; the
  customer's tier is the highest-ranked tier held. ``keep`` is per tier: a
  lower tier's condition that stops holding while a higher tier is held
  still starts that lower tier's keep.
* ``advance_to(when)`` runs step 1 up to and including ``when`` for every
  customer. Figures are read lazily: a customer's standing is as of their
  last event or ``advance_to``.
* Not modelled (do not generate them): segments reading segments, tiers read
  by segments, conditions of ``at`` rules, stamp cards, ``on``/``when``
  rules, caps, ``during``, streaks, visits, metrics, custom attributes.
"""

from __future__ import annotations

import calendar
import copy
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

UTC = timezone.utc
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


class Rejected(Exception):
    """The model rejects the event (the engine must raise poletti.EventError)."""


# ---------------------------------------------------------------- time

@dataclass(frozen=True)
class Duration:
    n: int
    unit: str  # "d", "w", "m" or "y"

    def __str__(self) -> str:
        return f"{self.n}{self.unit}"


def parse_duration(text: str) -> Duration:
    match = re.fullmatch(r"(\d+)([dwmy])", text)
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    return Duration(int(match.group(1)), match.group(2))


def _local(instant: datetime, tz: tzinfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def resolve_wall(wall: datetime, tz: tzinfo) -> datetime:
    """The UTC instant of naive local time ``wall`` in ``tz`` (gap → end of gap, repeat → earlier)."""
    both = [wall.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)]
    real = [u for u in both if _local(u, tz) == wall]
    if real:
        return min(real)
    # A skipped wall time: the gap ends at the first instant whose local time is past it.
    lo, hi = min(both), max(both)
    while hi - lo > SECOND:
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if _local(mid, tz) > wall:
            hi = mid
        else:
            lo = mid
    return hi


def add(instant: datetime, duration: Duration, tz: tzinfo) -> datetime:
    """instant + duration: d and w are exact 24-hour days, m and y calendar shifts in ``tz``."""
    if duration.unit == "d":
        return instant + duration.n * DAY
    if duration.unit == "w":
        return instant + 7 * duration.n * DAY
    months = duration.n * (12 if duration.unit == "y" else 1)
    local = _local(instant, tz)
    years, month0 = divmod(local.month - 1 + months, 12)
    year, month = local.year + years, month0 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return resolve_wall(local.replace(year=year, month=month, day=day), tz)


def parse_instant(value: Any, tz: tzinfo) -> datetime:
    """An event's ``at`` (or an advance_to target): ISO with offset, a date (local midnight) or a datetime."""
    if isinstance(value, datetime):
        assert value.tzinfo is not None
        return value.astimezone(UTC)
    if isinstance(value, date):
        return resolve_wall(datetime(value.year, value.month, value.day), tz)
    text = str(value)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return resolve_wall(datetime.fromisoformat(text), tz)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise Rejected(f"time without an offset: {text}")
    return parsed.astimezone(UTC)


# ---------------------------------------------------------------- the program

TOKEN = re.compile(r'"[^"]*"|x\d+(?:\.\d+)?\b|\d+[dwmy]\b|\d+(?:\.\d+)?|[a-z_][a-z0-9_]*|[A-Z]+|>=|<=|==|!=|[<>()]')
OPS = {">", ">=", "<", "<=", "==", "!="}
COMPARE = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


@dataclass
class Earn:
    kind: str  # "eur", "money" (per M EUR), "purchase", "category"
    rate: Decimal
    money: Decimal = Decimal(0)
    category: str = ""
    cond: Any = None


@dataclass
class Status:  # a tier or a segment
    name: str
    cond: Any
    keep: Duration | None = None


@dataclass
class Program:
    tz: tzinfo = UTC
    rounding: str = "down"
    expire: Duration | None = None
    pending: Duration | None = None
    costs: dict[str, int] = field(default_factory=dict)
    earns: list[Earn] = field(default_factory=list)
    multipliers: list[tuple[Decimal, Any]] = field(default_factory=list)
    ats: list[tuple[int, str]] = field(default_factory=list)
    tiers: list[Status] = field(default_factory=list)
    segments: list[Status] = field(default_factory=list)


class _Parser:
    """Recursive descent over one statement's tokens, for the subset above."""

    def __init__(self, tokens: list[str]) -> None:
        self.toks, self.i = tokens, 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, *expected: str) -> str:
        tok = self.peek()
        if tok is None or (expected and tok not in expected):
            raise ValueError(f"expected {expected or 'more'} at {tok!r} in {' '.join(self.toks)}")
        self.i += 1
        return tok

    def cond(self, stop: tuple[str, ...] = ()) -> Any:
        node = self.conj(stop)
        while self.peek() == "or":
            self.take()
            node = ("or", node, self.conj(stop))
        return node

    def conj(self, stop: tuple[str, ...]) -> Any:
        node = self.neg(stop)
        while self.peek() == "and":
            self.take()
            node = ("and", node, self.neg(stop))
        return node

    def neg(self, stop: tuple[str, ...]) -> Any:
        if self.peek() == "not":
            self.take()
            return ("not", self.neg(stop))
        return self.atom(stop)

    def atom(self, stop: tuple[str, ...]) -> Any:
        tok = self.take()
        if tok == "(":
            node = self.cond()
            self.take(")")
            return node
        if tok == "tier":
            op = self.take(*OPS)
            return ("tier", op, self.take())
        if self.peek() in OPS:
            op = self.take()
            value = Decimal(self.take())
            if self.peek() in ("EUR", "point", "points"):
                self.take()
            return ("cmp", op, tok, value)
        return ("segment", tok)


def _points_word(p: _Parser) -> None:
    p.take("point", "points")


def parse_program(text: str) -> Program:
    prog = Program()
    statements = [s for line in text.splitlines() for s in line.split("#", 1)[0].split(";")]
    for statement in statements:
        p = _Parser(TOKEN.findall(statement))
        head = p.peek()
        if head is None or head in ("program", "currency"):
            continue
        p.take()
        if head == "timezone":
            prog.tz = ZoneInfo(p.take().strip('"'))
        elif head == "rounding":
            prog.rounding = p.take("down", "nearest", "up")
        elif head == "reward":
            name = p.take()
            while p.peek() is not None:
                tok = p.take()
                if tok == "value":
                    p.take(), p.take("EUR")
                elif tok == "costs":
                    prog.costs[name] = int(p.take())
                    _points_word(p)
        elif head == "points":
            if p.take("expire", "pending") == "expire":
                p.take("after")
                prog.expire = parse_duration(p.take())
            else:
                p.take("for")
                prog.pending = parse_duration(p.take())
        elif head == "earn":
            tok = p.take()
            if tok.startswith("x"):
                cond = p.cond() if p.peek() == "if" and p.take() else None
                prog.multipliers.append((Decimal(tok[1:]), cond))
                continue
            rule = Earn("eur", Decimal(tok))
            _points_word(p)
            p.take("per")
            what = p.take()
            if what == "purchase":
                rule.kind = "purchase"
            elif what != "EUR":
                rule.kind, rule.money = "money", Decimal(what)
                p.take("EUR")
            if p.peek() == "on":
                p.take(), p.take("category")
                rule.kind, rule.category = "category", p.take().strip('"')
            if p.peek() == "if":
                p.take()
                rule.cond = p.cond()
            prog.earns.append(rule)
        elif head == "at":
            threshold = int(p.take())
            _points_word(p)
            p.take("grant")
            prog.ats.append((threshold, p.take()))
        elif head in ("tier", "segment"):
            rule = Status(p.take(), None)
            p.take("when")
            rule.cond = p.cond()
            if p.peek() == "keep":
                p.take()
                rule.keep = parse_duration(p.take())
            (prog.tiers if head == "tier" else prog.segments).append(rule)
        else:
            raise ValueError(f"outside the model's subset: {statement!r}")
        if p.peek() is not None:
            raise ValueError(f"unread {p.toks[p.i:]} in {statement!r}")
    return prog


def _walk(node: Any):
    if node is None:
        return
    yield node
    if node[0] in ("and", "or"):
        yield from _walk(node[1])
        yield from _walk(node[2])
    elif node[0] == "not":
        yield from _walk(node[1])


def _window(name: str) -> Duration | None:
    suffix = name.split("_", 1)[1]
    return None if suffix == "lifetime" else parse_duration(suffix)


# ---------------------------------------------------------------- customer state

@dataclass
class Purchase:
    at: datetime
    amount: Decimal
    exits: list[datetime]  # p + W for each window the status conditions read
    refunded: Decimal = Decimal(0)
    points: int = 0  # P: what step 3 gave it
    reversed: int = 0


@dataclass
class Lot:
    earned_at: datetime
    amount: int
    expires: datetime | None
    release: datetime | None  # None once spendable
    purchase: str


@dataclass
class Customer:
    first_at: datetime
    cursor: datetime  # every change up to this instant is applied
    purchases: dict[str, Purchase] = field(default_factory=dict)
    last_purchase_at: datetime | None = None
    lots: list[Lot] = field(default_factory=list)
    debt: int = 0
    lifetime: int = 0
    rewards: Counter = field(default_factory=Counter)
    segments: frozenset = frozenset()
    tier: str | None = None
    cond_held: dict[str, bool] = field(default_factory=dict)
    kept_until: dict[str, datetime | None] = field(default_factory=dict)

    @property
    def points(self) -> int:
        return sum(lot.amount for lot in self.lots if lot.release is None) - self.debt

    @property
    def pending(self) -> int:
        return sum(lot.amount for lot in self.lots if lot.release is not None)


# ---------------------------------------------------------------- the model

class Model:
    def __init__(self, text: str) -> None:
        self.text = text
        self.prog = parse_program(text)
        self.customers: dict[str, Customer] = {}
        self.advanced: datetime | None = None
        status_conds = [r.cond for r in self.prog.tiers + self.prog.segments]
        atoms = [n for c in status_conds for n in _walk(c) if n[0] == "cmp"]
        self.status_windows = sorted({w for n in atoms if n[2].startswith(("spend_", "purchases_"))
                                      if (w := _window(n[2])) is not None}, key=str)
        # days_since_last_purchase / member_days change truth only at these whole-day counts
        self.day_marks = sorted({int(n[3]) + k for n in atoms for k in (0, 1)
                                 if n[2] in ("days_since_last_purchase", "member_days")})
        self.member_marks = any(n[2] == "member_days" for n in atoms)
        self.rank = {t.name: i for i, t in enumerate(self.prog.tiers)}

    # -- public, mirroring the engine
    def instant(self, value: Any) -> datetime:
        return parse_instant(value, self.prog.tz)

    def process(self, event: dict[str, Any]) -> None:
        cid, t = str(event["customer"]), self.instant(event["at"])
        old = self.customers.get(cid)
        if (old is not None and t < old.cursor) or (self.advanced is not None and t < self.advanced):
            raise Rejected("older than the customer's last event or the clock")
        c = copy.deepcopy(old) if old is not None else Customer(first_at=t, cursor=t)
        self._clock(c, t)
        kind = event["type"]
        if kind == "purchase":
            self._purchase(c, str(event["id"]), t, event)
        elif kind == "refund":
            self._refund(c, event)
        elif kind == "redeem":
            self._redeem(c, event.get("reward"))
        else:
            raise ValueError(f"event type outside the model: {kind}")
        self._convert(c)
        self._status(c, t)
        if kind == "purchase" and c.last_purchase_at != t:
            # After the event, the purchase is the latest one: recency drops to 0, checked at once.
            c.last_purchase_at = t
            self._status(c, t)
        self.customers[cid] = c  # only now: a rejection above changes nothing

    def advance_to(self, when: Any) -> None:
        t = self.instant(when)
        for c in self.customers.values():
            self._clock(c, t)
        self.advanced = t if self.advanced is None else max(self.advanced, t)

    def figures(self, cid: str) -> dict[str, Any]:
        c = self.customers.get(cid)
        if c is None:
            return {"points": 0, "pending_points": 0, "lifetime_points": 0, "tier": None,
                    "rewards": {}, "segments": frozenset()}
        return {"points": c.points, "pending_points": c.pending, "lifetime_points": c.lifetime,
                "tier": c.tier, "rewards": {k: v for k, v in c.rewards.items() if v},
                "segments": c.segments}

    # -- quantities and conditions
    def _round(self, value: Decimal) -> int:
        mode = {"down": ROUND_FLOOR, "up": ROUND_CEILING, "nearest": ROUND_HALF_UP}[self.prog.rounding]
        return int(value.to_integral_value(rounding=mode))

    def _quantity(self, name: str, c: Customer, now: datetime) -> Decimal | int:
        if name.startswith(("spend_", "purchases_")):
            w = _window(name)
            inside = [p for p in c.purchases.values()
                      if p.at <= now and (w is None or now < add(p.at, w, self.prog.tz))]
            if name.startswith("spend_"):
                return sum((p.amount - p.refunded for p in inside), Decimal(0))
            return len(inside)
        if name == "days_since_last_purchase":
            return (now - (c.last_purchase_at or c.first_at)) // DAY
        if name == "member_days":
            return (now - c.first_at) // DAY
        if name == "points":
            return c.points
        if name == "pending_points":
            return c.pending
        if name == "lifetime_points":
            return c.lifetime
        raise ValueError(f"quantity outside the model: {name}")

    def _holds(self, node: Any, c: Customer, now: datetime) -> bool:
        kind = node[0]
        if kind == "and":
            return self._holds(node[1], c, now) and self._holds(node[2], c, now)
        if kind == "or":
            return self._holds(node[1], c, now) or self._holds(node[2], c, now)
        if kind == "not":
            return not self._holds(node[1], c, now)
        if kind == "segment":
            return node[1] in c.segments
        if kind == "tier":
            have = -1 if c.tier is None else self.rank[c.tier]
            want = -1 if node[2] == "none" else self.rank[node[2]]
            return COMPARE[node[1]](have, want)
        return COMPARE[node[1]](self._quantity(node[2], c, now), node[3])

    # -- step 1: the clock
    def _next_change(self, c: Customer, until: datetime) -> datetime | None:
        due = [x for lot in c.lots for x in (lot.expires, lot.release) if x is not None]
        due += [x for p in c.purchases.values() for x in p.exits]
        due += [x for x in c.kept_until.values() if x is not None]
        bases = [c.last_purchase_at or c.first_at] + ([c.first_at] if self.member_marks else [])
        due += [base + k * DAY for base in bases for k in self.day_marks]
        later = [x for x in due if c.cursor < x <= until]
        return min(later, default=None)

    def _clock(self, c: Customer, until: datetime) -> None:
        while (now := self._next_change(c, until)) is not None:
            c.lots = [lot for lot in c.lots if lot.expires is None or lot.expires > now]
            grew = False
            for lot in c.lots:
                if lot.release is not None and lot.release <= now:
                    lot.release, grew = None, grew or lot.amount > 0
            if grew:
                self._convert(c)
            self._status(c, now)
            c.cursor = now
        c.cursor = max(c.cursor, until)

    # -- steps 2 and 3 for a purchase
    def _purchase(self, c: Customer, pid: str, t: datetime, event: dict[str, Any]) -> None:
        amount = Decimal(str(event["amount"]))
        tz = self.prog.tz
        p = Purchase(t, amount, [add(t, w, tz) for w in self.status_windows])
        c.purchases[pid] = p
        earned = self._earn(c, p, event.get("items") or [], t)
        p.points = earned
        c.lifetime += earned
        paid = min(c.debt, earned)
        c.debt -= paid
        if earned - paid:
            c.lots.append(Lot(t, earned - paid, add(t, self.prog.expire, tz) if self.prog.expire else None,
                              add(t, self.prog.pending, tz) if self.prog.pending else None, pid))

    def _earn(self, c: Customer, p: Purchase, items: list[dict[str, Any]], t: datetime) -> int:
        total = 0
        for rule in self.prog.earns:
            if rule.cond is not None and not self._holds(rule.cond, c, t):
                continue
            if rule.kind == "eur":
                raw = rule.rate * p.amount
            elif rule.kind == "money":
                raw = rule.rate * (p.amount // rule.money)
            elif rule.kind == "category":
                raw = rule.rate * sum((Decimal(str(i["price"])) * int(i.get("quantity", 1))
                                       for i in items if i.get("category") == rule.category), Decimal(0))
            else:
                raw = rule.rate
            total += self._round(raw)
        factors = [f for f, cond in self.prog.multipliers if cond is None or self._holds(cond, c, t)]
        if factors:
            product = Decimal(1)
            for f in factors:
                product *= f
            total = self._round(total * product)
        return total

    # -- refunds and redeems
    def _refund(self, c: Customer, event: dict[str, Any]) -> None:
        p = c.purchases.get(str(event.get("original")))
        if p is None:
            raise Rejected("refund of an unknown purchase")
        left = p.amount - p.refunded
        amount = Decimal(str(event["amount"])) if event.get("amount") is not None else left
        if amount <= 0 or left <= 0 or amount > left:
            raise Rejected("refund of nothing or of more than is left")
        p.refunded += amount
        reversed_so_far = int((p.points * p.refunded) // p.amount)
        self._take_back(c, reversed_so_far - p.reversed, str(event["original"]))
        p.reversed = reversed_so_far

    def _take_back(self, c: Customer, n: int, pid: str) -> None:
        own = [lot for lot in c.lots if lot.purchase == pid and lot.release is not None]
        spendable = [lot for lot in c.lots if lot.release is None]
        other = [lot for lot in c.lots if lot.release is not None and lot.purchase != pid]
        for lot in own + spendable + other:
            cut = min(n, lot.amount)
            lot.amount, n = lot.amount - cut, n - cut
        c.debt += n

    def _spend(self, c: Customer, n: int) -> None:
        for lot in c.lots:  # in earning order: oldest first
            if lot.release is None:
                cut = min(n, lot.amount)
                lot.amount, n = lot.amount - cut, n - cut
        assert n == 0, "spent more than the balance"

    def _redeem(self, c: Customer, reward: Any) -> None:
        cost = self.prog.costs.get(str(reward))
        if cost is None:
            raise Rejected("reward unknown or without costs")
        if c.points < cost:
            raise Rejected("too few points")
        self._spend(c, cost)
        c.rewards[str(reward)] += 1

    # -- steps 4 and 5
    def _convert(self, c: Customer) -> None:
        for threshold, reward in self.prog.ats:
            while c.points >= threshold:
                self._spend(c, threshold)
                c.rewards[reward] += 1

    def _status(self, c: Customer, now: datetime) -> None:
        c.segments = frozenset(s.name for s in self.prog.segments if self._holds(s.cond, c, now))
        tier = None
        for rule in self.prog.tiers:
            holds = self._holds(rule.cond, c, now)
            if holds:
                c.kept_until[rule.name] = None
            elif c.cond_held.get(rule.name) and rule.keep is not None:
                c.kept_until[rule.name] = add(now, rule.keep, self.prog.tz)
            c.cond_held[rule.name] = holds
            kept = c.kept_until.get(rule.name)
            if kept is not None and now >= kept:
                c.kept_until[rule.name] = kept = None
            if holds or kept is not None:
                tier = rule.name
        c.tier = tier
