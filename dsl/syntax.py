"""What a statement that does not parse needed, said in the rule language's own words.

``explain(err, source, lark) -> SyntaxProblem`` turns one Lark error for one
statement into the code, message, place and notes of a P diagnostic. It is
the only place that looks at Lark's errors, and none of Lark's vocabulary
leaves it: no terminal names (``NAME``, ``$END``), no "a name", no lists of
operators where a number was mistyped. Instead:

* numbers written with a decimal comma or digit groups (``3,50``,
  ``1 000``, ``1,000``) get one P002 with the fix in the user's own number;
* what may come next is worked out from where the statement stopped: the
  statement's keyword and the word before the problem name the slot
  ("the reward's name, such as free_drink", "a condition, such as
  spend_30d > 50"), and the parser's set of acceptable next words, found by
  replaying the statement up to the problem, lists the keywords that fit.

Why replay: the LALR tables merge look-aheads, so the ``expected`` set that
comes with an error can hold words that do not fit at that spot (``at 50``
would "accept" a currency code). Feeding the statement's words into an
interactive parser and asking what it accepts next gives the exact set.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from poletti.dsl import classes
from poletti.dsl.currencies import ACTIVE
from poletti.dsl.diagnostics import did_you_mean

STATEMENT_KEYWORDS = (
    "program", "currency", "rounding", "timezone", "reward", "segment", "metric",
    "attribute", "event", "param", "use", "earn", "at", "every", "tier", "on",
    "when", "points", "point", "perk", "partner", "rate", "referral",
)

END = "$END"


@classes.frozen
class SyntaxProblem:
    """A P diagnostic before it has a place in the file: offsets are within the statement."""

    code: str
    message: str
    start: int
    end: int
    notes: tuple[str, ...]


def explain(err: UnexpectedInput, source: str, lark: Lark) -> SyntaxProblem:
    """The P diagnostic for ``err``, raised while parsing the statement ``source``."""
    problem = _unknown_statement(source) or number_problem(source)
    if problem is not None:
        return problem
    if isinstance(err, UnexpectedCharacters):
        return _unexpected_character(source, err.pos_in_stream, lark)
    assert isinstance(err, UnexpectedToken)
    if err.token.type == END:
        return _incomplete(source, lark)
    return _unexpected_word(source, err.token, lark)


def _unexpected_character(source: str, at: int, lark: Lark) -> SyntaxProblem:
    """P002: a character no word of the language starts with (``€``, ``'``, ``@``)."""
    words, accepts = _replay(source[:at], lark)
    notes = [*_character_hints(source, at, accepts, lark), expected_text(words, accepts, lark)]
    return SyntaxProblem("P002", f"unexpected character {source[at]!r}", at, at + 1, _kept(notes))


def _incomplete(source: str, lark: Lark) -> SyntaxProblem:
    """P003: the statement ends where more must come."""
    end = len(source.rstrip())
    words, accepts = _replay(source, lark)
    notes = [expected_text(words, accepts, lark)]
    last = words[-1] if words else None
    if last is not None and last.type == "NAME":
        # The lexer may have taken a misplaced last word as a name (e.g. `per euro`).
        notes += _word_hints(str(last), accepts, lark)
    notes += _name_for_number(words, accepts, lark)
    return SyntaxProblem("P003", "this statement is incomplete", end, end, _kept(notes))


def _unexpected_word(source: str, token: Token, lark: Lark) -> SyntaxProblem:
    """P001: a word or symbol where something else belongs."""
    at = token.start_pos or 0
    words, accepts = _replay(source[:at], lark)
    following = source[at + len(str(token)):].split()
    notes = [expected_text(words, accepts, lark), *_token_hints(token, words, accepts, lark, following[:1])]
    doubled = (len(words) >= 2 and str(words[-1]) == str(words[-2])) or (words and str(words[-1]) == str(token))
    if words and not doubled:  # a repair of the first word, or of a doubled one, would be a guess
        notes.append(_missing_word(source, at, accepts, lark))
    return SyntaxProblem("P001", f"unexpected '{token}'", at, at + len(str(token)), _kept(notes))


def _kept(notes: Iterable[str]) -> tuple[str, ...]:
    return tuple(n for n in notes if n)


# ------------------------------------------------------------ unknown statement


def _unknown_statement(source: str) -> SyntaxProblem | None:
    """P007 when the first word is not a statement keyword (a typo, or a capital letter)."""
    stripped = source.strip()
    if not stripped:
        return None
    first_word = stripped.split(None, 1)[0]
    head = first_word.split("(")[0].split(":")[0]
    if not head or head in STATEMENT_KEYWORDS or not (head.isidentifier() or head[:1].isupper()):
        return None
    hint = did_you_mean(head.lower(), STATEMENT_KEYWORDS)
    if head.lower() in STATEMENT_KEYWORDS:
        hint = f"keywords are lower case: write '{head.lower()}'"
    start = len(source) - len(source.lstrip())
    return SyntaxProblem("P007", f"'{head}' does not start a statement", start, start + len(head),
                         _kept([hint, "a statement starts with one of: " + ", ".join(STATEMENT_KEYWORDS)]))


# ------------------------------------------------------------------ numbers

# A number as people write it outside programming: digit groups separated by
# spaces, commas, dots or apostrophes, and a decimal comma. Texts in quotes
# and comments are blanked before matching, so "1,5" inside them is left alone.
# A multiplier's x may stand before it: `earn x1,5`.
_GROUPED = re.compile(r"(?<![\d.,'A-Za-wyz_])\d{1,3}(?:([ ,.'])\d{3})(?:\1\d{3})*(?:[.,]\d+)?(?![\w'])"
                      r"|(?<![\d.,'A-Za-wyz_])\d+,\d+(?![\w.,'])")
_TEXT_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*')


def _blank_texts_and_comments(source: str) -> str:
    """``source`` with every text and comment replaced by spaces (offsets unchanged)."""
    return _TEXT_OR_COMMENT.sub(lambda m: " " * len(m.group()), source)


def number_problem(source: str) -> SyntaxProblem | None:
    """P002 for the first number written with a decimal comma or digit groups, with the fix in its own digits."""
    blanked = _blank_texts_and_comments(source)
    for match in _GROUPED.finditer(blanked):
        written = match.group()
        if re.fullmatch(r"\d+\.\d+", written):
            continue  # an ordinary decimal such as 12.50
        message, note = _number_fix(written)
        return SyntaxProblem("P002", message, match.start(), match.end(), (note,))
    return None


def _number_fix(written: str) -> tuple[str, str]:
    """The message and the fix for one oddly written number."""
    separators = [ch for ch in written if not ch.isdigit()]
    groups = re.split(r"[ ,.']", written)
    if separators == [","] and len(groups[1]) == 3 and len(groups[0]) <= 3:
        # 1,000: a thousands separator or a decimal comma; only the writer knows.
        whole, fraction = groups
        return (f"'{written}' can be read two ways: {whole}{fraction} or {whole}.{fraction}",
                f"write {whole}{fraction} if the comma separates thousands, or {whole}.{fraction} if it is a "
                "decimal comma: numbers use '.' for decimals and have no thousands separators")
    if separators == [","]:
        return f"'{written}' is written with a decimal comma", f"write {'.'.join(groups)}: numbers use '.' for decimals"
    if len(set(separators)) == 1 and all(len(g) == 3 for g in groups[1:]):
        fixed = "".join(groups)  # every separator groups thousands
    elif separators[-1] in ",.":
        fixed = "".join(groups[:-1]) + "." + groups[-1]  # the last one is the decimal sign
    else:
        fixed = "".join(groups)
    message = (f"'{written}' has a space between its digits" if separators[0] == " "
               else f"'{written}' is written with thousands separators")
    return message, f"write {fixed}: numbers use '.' for decimals and have no thousands separators"


# ------------------------------------------------------------ what comes next


def _replay(prefix: str, lark: Lark) -> tuple[list[Token], set[str]]:
    """The words of ``prefix`` and the exact set of terminals the parser accepts after them."""
    parser = lark.parse_interactive(prefix)
    words: list[Token] = []
    try:
        for token in parser.iter_parse():
            words.append(token)
        return words, set(parser.accepts())
    except UnexpectedInput:  # cannot happen for a prefix that parsed; keep the words read so far
        return words, set()


# Words that join the parts of a statement, which people drop most; and, or
# and the operators are left out: too many statements "work" with one of them.
_JOINING_WORDS = ("when", "grant", "with", "=", ":", ".", "after", "for", "over", "of", "keep", "per", "on",
                  "value", "costs")


def _missing_word(source: str, at: int, accepts: set[str], lark: Lark) -> str:
    """``at 50 points free_drink``: the statement with the one joining word that repairs it, if there is one."""
    texts = set(_keywords_in(accepts, lark))
    repairs = [_with_word(source, at, word) for word in _JOINING_WORDS if word in texts]
    fitting = [text for text in repairs if _parses_past(text, at, lark)]
    if len(fitting) != 1:
        return ""
    return "did you mean: " + _without_comments(fitting[0])


def _without_comments(text: str) -> str:
    """``text`` on one line, without its comments (texts in quotes kept as written)."""
    kept = []
    position = 0
    for match in _TEXT_OR_COMMENT.finditer(text):
        if match.group().startswith("#"):
            kept.append(text[position:match.start()])
            position = match.end()
    kept.append(text[position:])
    return " ".join(line.strip() for line in "".join(kept).splitlines() if line.strip())


def _with_word(source: str, at: int, word: str) -> str:
    """The statement with ``word`` put in before offset ``at``, spaced as the formatter would."""
    before, after = source[:at].rstrip(), source[at:].lstrip()
    if word == ".":
        return f"{before}.{after}"
    if word == ":":
        return f"{before}: {after}"
    return f"{before} {word} {after}"


def _parses_past(text: str, at: int, lark: Lark) -> bool:
    """True if ``text`` parses, or fails only past the repair at ``at``, the word it was for and the one after.

    A repair that lets just the next word through but trips on the one after
    it (``points expire after in 12m``) repairs nothing.
    """
    try:
        lark.parse(text)
    except UnexpectedInput as err:
        position = getattr(err, "pos_in_stream", None)
        if position is None:  # the end of the statement
            return False
        tail = text[at:].split()
        return position > at + len(" ".join(tail[:3]))
    return True


CONDITION = "a condition, such as spend_30d > 50"
COMPARED = 'a value to compare with, such as 100, 50 points, 30d, "app" or gold'
OPERAND = "a number or a quantity, such as 10 or spend_30d"
LENGTH = "a length of time, such as 30d, 12w, 12m or 1y"

# What follows a statement's first word.
_AFTER_STATEMENT_KEYWORD = {
    "program": 'the program\'s title in quotes, such as "Café Aroma"',
    "currency": "a currency code, such as EUR",
    "timezone": 'a time zone in quotes, such as "Europe/Helsinki"',
    "reward": "the reward's name, such as free_drink",
    "segment": "the segment's name, such as lapsed",
    "metric": "the metric's name, such as beans_spend_30d",
    "attribute": "the attribute's name, such as channel",
    "event": "the event type's name, such as checkin",
    "param": "the parameter's name, such as every",
    "use": "a module's name, such as stamp_card",
    "earn": "an amount of points, such as 10 points, or a multiplier, such as x2",
    "at": "an amount of points, such as 50 points",
    "every": "how many purchases or visits fill the card, such as 10",
    "tier": "the tier's name, such as gold",
    "on": "an event type, such as review or birthday",
    "perk": "the perk's name, such as early_access",
    "partner": "the partner's name, such as kulma",
    "rate": "the currency's code, such as SEK",
}

# What follows a word anywhere in a statement.
_AFTER_WORD = {
    "value": "an amount of money, such as 3.50 EUR",
    "max": "an amount of money, such as 20 EUR",
    "pays": "an amount of money per point, such as 0.02 EUR",
    "costs": "an amount of points, such as 50 points",
    "grant": "a reward's name, such as free_drink, or an amount of points, such as 50 points",
    "limit": "how many points or times, such as 500 points or 3 times",
    "during": "a date, such as 2026-12-01",
    "..": "the campaign's last date, such as 2026-12-24",
    "keep": "how long the tier is kept, such as 12m",
    "after": LENGTH,
    "for": LENGTH,
    "over": "a window, such as 30d, 12m or lifetime",
    "category": 'the category in quotes, such as "beans"',
    "sku": 'the product code in quotes, such as "esp-250"',
    "with": "a setting of the module, such as every or reward",
    ".": "the attribute's name, such as channel (event.channel)",
}

_COMPARATORS = {">", ">=", "<", "<=", "==", "!="}
_ARITHMETIC = {"+", "-", "*", "/"}
_OPERAND_STARTS = {"(", "not", "event", "account", "true", "false"}
_PERIOD_WORDS = {"day", "week", "month", "year"}
_OPTION_WORDS = {"if", "during", "limit", "once"}
_BASIS_WORDS = {"purchase", "visit", "item"}

# Terminals that stand for a value the user writes (not a fixed keyword), named in their own words
# when no slot says more.
_VALUE_TERMINALS = {
    "NAME": "a word such as free_drink or spend_30d",
    "NUMBER": "a number, such as 10",
    "STRING": 'a text in quotes, such as "beans"',
    "CURRENCY": "a currency code, such as EUR",
    "DATE": "a date, such as 2026-12-01",
    "DURATION": LENGTH,
    "MULTIPLIER": "a multiplier, such as x2",
    "PERCENT": "a percentage, such as 10%",
}


@classes.frozen
class _Slot:
    """What the statement needs next, and the terminals (names or keyword texts) that phrase covers."""

    phrase: str
    covers: frozenset[str] = frozenset(_VALUE_TERMINALS)


def expected_text(words: Sequence[Token], accepts: set[str], lark: Lark) -> str:
    """``expected …`` for the spot after ``words``, given the terminals the parser ``accepts`` there."""
    accepts = _meaningful(words, accepts, lark)
    if not accepts:
        return ""
    keywords = {name: _keyword_text(name, lark) for name in accepts}
    slot = _slot(words, accepts, keywords)
    items: list[str] = []
    rest = set(accepts)
    if slot is not None:
        items.append(slot.phrase)
        rest = {name for name in rest if name not in slot.covers and keywords.get(name) not in slot.covers}
    items += _describe(rest, keywords, words)
    return "expected " + _join(items) if items else ""


def _meaningful(words: Sequence[Token], accepts: set[str], lark: Lark) -> set[str]:
    """``accepts`` without what the grammar allows only for stdlib modules or the checker rejects anyway.

    A name followed by a currency or ``points`` is a module parameter
    (``points points``); ``is`` fits after anything but only tests event
    attributes. Listing either after ``segment s when a`` would only confuse.
    """
    values = [str(w) for w in words]
    kept = set(accepts)
    if words and words[-1].type == "NAME":
        amount_words = {name for name in kept
                        if name == "CURRENCY" or _keyword_text(name, lark) in ("point", "points")}
        if kept - amount_words:
            kept -= amount_words
    if values[-3:-1] != ["event", "."]:
        kept = {name for name in kept if _keyword_text(name, lark) != "is"}
    return kept


def _keyword_text(name: str, lark: Lark) -> str | None:
    """The fixed text of a keyword or symbol terminal (``grant``, ``>=``), or None for a pattern."""
    try:
        pattern = lark.get_terminal(name).pattern
    except KeyError:
        return None
    return str(pattern.value) if pattern.type == "str" else None


def _slot(words: Sequence[Token], accepts: set[str], keywords: dict[str, str | None]) -> _Slot | None:
    texts = {t for t in keywords.values() if t is not None}
    values = [str(w) for w in words]
    if not values:
        return None
    last = values[-1]
    if texts & _OPERAND_STARTS or "(" in texts:
        covers = frozenset(_VALUE_TERMINALS) | _OPERAND_STARTS
        if last in _COMPARATORS:
            return _Slot(COMPARED, covers)
        if last in _ARITHMETIC:
            return _Slot(OPERAND, covers)
        return _Slot(CONDITION, covers)
    if len(values) == 1 and last in _AFTER_STATEMENT_KEYWORD:
        return _Slot(_AFTER_STATEMENT_KEYWORD[last])
    if last == "per":
        return _per_slot(values)
    if last == "on" and len(values) >= 2 and values[-2] in ("point", "points"):
        return _Slot("an event type, such as signup or review")
    if last == "of":
        first = values.count("of") == 1
        return _Slot("what to count or add up: an event type such as review, or a field such as amount" if first
                     else "the event type, such as purchase")
    if last == "=" and values[0] in ("use", "param"):
        return _Slot('a value, such as 10, 5 EUR, 50 points, 30d, "beans" or free_coffee')
    if last == "," and values[0] == "use":
        return _Slot(_AFTER_WORD["with"])
    if last == "value" and values[0] == "reward":
        return _Slot(_AFTER_WORD["value"] + ", or a percentage, such as 10%")
    if last in _AFTER_WORD:
        return _Slot(_AFTER_WORD[last])
    return None


def _per_slot(values: Sequence[str]) -> _Slot:
    """``per`` starts three different things: an earn basis, a limit's period, a ``once`` window."""
    if len(values) >= 4 and values[-4] == "limit":
        return _Slot("a period: day, week, month or year, or a length of time such as 30d",
                     frozenset(_VALUE_TERMINALS) | _PERIOD_WORDS)
    if len(values) >= 2 and values[-2] == "once":
        return _Slot(LENGTH)
    return _Slot("what earns the points: EUR, 10 EUR, purchase, visit or item",
                 frozenset(_VALUE_TERMINALS) | _BASIS_WORDS)


def _describe(accepts: set[str], keywords: dict[str, str | None], words: Sequence[Token]) -> list[str]:
    """Phrases for acceptable terminals that no slot covered: values, operators, keywords, the end."""
    texts = {keywords[name] for name in accepts if keywords.get(name) is not None}
    phrases: list[str] = []
    statement = str(words[0]) if words else ""
    units = {"point", "points"}
    if "CURRENCY" in accepts and units <= texts:
        # After a number: `5000 EUR`, `50 points`.
        phrases.append("a unit: a currency code such as EUR, or points")
        accepts = accepts - {"CURRENCY"}
        texts -= units
    for name in sorted(accepts & set(_VALUE_TERMINALS)):
        if name == "STRING" and statement == "reward":
            phrases.append('a label in quotes, such as "Free drink"')
        elif name == "STRING" and statement in ("perk", "partner"):
            phrases.append('a label in quotes, such as "Early access"' if statement == "perk"
                           else 'a label in quotes, such as "Kahvila Kulma"')
        else:
            phrases.append(_VALUE_TERMINALS[name])
    if texts & _COMPARATORS:
        phrases.append("a comparison (" + _join(sorted(texts & _COMPARATORS)) + ")")
        texts -= _COMPARATORS
    if texts & _ARITHMETIC:
        phrases.append("a calculation (" + _join(sorted(texts & _ARITHMETIC)) + ")")
        texts -= _ARITHMETIC
    if "is" in texts:
        phrases.append("is missing or is present")
        texts.discard("is")
    if texts & {"and", "or"}:
        phrases.append(" or ".join(f"'{t}'" for t in sorted(texts & {"and", "or"})) + " with another condition")
        texts -= {"and", "or"}
    if texts & _OPTION_WORDS:
        phrases.append("a rule option (" + _join(sorted(texts & _OPTION_WORDS)) + ")")
        texts -= _OPTION_WORDS
    if ".." in texts:
        phrases.append("'..' and the campaign's last date, as in 2026-12-01..2026-12-24")
        texts.discard("..")
    if "," in texts:
        phrases.append("',' and another setting")
        texts.discard(",")
    keyword_list = [f"'{t}'" for t in sorted(texts)]
    end = ["the end of the statement"] if END in accepts else []
    if not words:
        keyword_list = ["a statement keyword such as earn, at, tier or reward"]
    return phrases + keyword_list + end


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) == 1:
        return items[0]
    separator = "; " if any(", " in item for item in items) else ", "
    return separator.join(items[:-1]) + (";" if separator == "; " else "") + " or " + items[-1]


# ------------------------------------------------------------------ hints

_CURRENCY_WORDS = {"euro": "EUR", "euros": "EUR", "eur": "EUR", "dollar": "USD", "dollars": "USD",
                   "usd": "USD", "pound": "GBP", "pounds": "GBP", "gbp": "GBP", "sek": "SEK", "chf": "CHF"}


def _keywords_in(accepts: set[str], lark: Lark) -> list[str]:
    return [text for text in (_keyword_text(name, lark) for name in accepts) if text is not None]


def _word_hints(word: str, accepts: set[str], lark: Lark) -> list[str]:
    """Hints for a misplaced word: a misspelt keyword, a currency written as a word."""
    hints = []
    close = did_you_mean(word, [k for k in _keywords_in(accepts, lark) if k.isalpha()])
    if close:
        hints.append(close)
    if "CURRENCY" in accepts and not close:
        code = _CURRENCY_WORDS.get(word.lower())
        if code:
            hints.append(f"write the currency as its ISO code: {code}")
        elif re.fullmatch(r"[a-z]{3}", word) and word.upper() in ACTIVE:
            # (only an ISO code: "sum" or "abc" written in capitals is no currency either)
            hints.append(f"currencies are ISO codes in capitals: {word.upper()}")
    return hints


def _name_for_number(words: Sequence[Token], accepts: set[str], lark: Lark) -> list[str]:
    """``earn bonus points``: a name where a number belongs (only modules may do that, with a parameter)."""
    if not words or words[-1].type != "NAME" or not accepts:
        return []
    word = str(words[-1])
    if word.lower() in _CURRENCY_WORDS or re.fullmatch(r"[a-z]{3}", word):
        return []  # a currency written as a word: _word_hints says how to write it
    if all(name == "CURRENCY" or _keyword_text(name, lark) in ("point", "points") for name in accepts):
        return [f"'{words[-1]}' stands where a number belongs: write a number such as 10"]
    return []


def _token_hints(token: Token, words: Sequence[Token], accepts: set[str], lark: Lark,
                 following: Sequence[str]) -> list[str]:
    value = str(token)
    hints = _word_hints(value, accepts, lark) if token.type == "NAME" else []
    hints += _name_for_number(words, accepts, lark)
    if "DURATION" in accepts and token.type in ("NUMBER", "NAME"):
        hints.append("durations are written without a space: 30d (days), 12w (weeks), 12m (months), 1y (years)")
    if value == "=" and following and following[0][:1] in ("<", ">"):
        hints.append(f"write '{following[0][0]}=': the '=' comes second")
    elif value == "=" and "==" in _keywords_in(accepts, lark):
        hints.append("compare with '==' (a single '=' is not a comparison)")
    if len(words) >= 2 and str(words[-1]) == str(words[-2]):
        hints.append(f"'{words[-1]}' is written twice")
    elif words and str(words[-1]) == value:
        hints.append(f"'{value}' is written twice")
    if token.type == "NAME" and "," in _keywords_in(accepts, lark):
        hints.append(f"separate the settings with commas: …, {value} = …")
    declares = [str(w) for w in words[:1]] in (["reward"], ["segment"], ["metric"], ["attribute"], ["event"],
                                                 ["tier"])
    ends_name = not following or following[0] in _keywords_in(accepts, lark)
    if token.type == "NAME" and len(words) == 2 and declares and ends_name:
        hints.append(f"names are one word: write {words[-1]}_{value}")
    if value == ")" and ")" not in _keywords_in(accepts, lark):
        hints.append("this ')' closes no '('")
    return hints


def _character_hints(source: str, pos: int, accepts: set[str], lark: Lark) -> list[str]:
    char = source[pos]
    if char in "€$£¥":
        return ["write money as an amount and an ISO code, for example 12.50 EUR"]
    if char == ",":
        return ["numbers use '.' for decimals and no thousands separators: 1000.50"]
    if char == "'":
        closing = source.find("'", pos + 1)
        inner = source[pos + 1:closing] if closing > pos else "…"
        return [f'texts are written in double quotes: "{inner}"']
    if "STRING" in accepts and char.isalpha():
        return [f'write it in double quotes: "{_unquoted_text(source[pos:], accepts, lark)}"']
    word = re.match(r"\w*", source[pos:])
    if char.isupper() and word:
        return [f"names and keywords are lower case: write '{word.group().lower()}'"]
    if char == "=":
        return ["compare with '=='"]
    return []


def _unquoted_text(rest: str, accepts: set[str], lark: Lark) -> str:
    """The words of a text written without quotes: up to the next keyword that may follow it."""
    stop = set(_keywords_in(accepts, lark))
    words = []
    for word in rest.split():
        if word in stop:
            break
        words.append(word)
    return " ".join(words)
