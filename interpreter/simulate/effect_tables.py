"""The effect measures beyond the periods, as plain tables: the cohort, NPS, members against non-members.

``effect_tables(effect, currency)`` turns the summary's ``effect`` object
into ``EffectTable``s of text cells, which the report draws as HTML and
``poletti simulate`` as rich tables, so both say the same.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from poletti.dsl import classes


@classes.frozen
class EffectTable:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


def _text(value: Any, currency: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:,.4f}".rstrip("0").rstrip(".")
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = f"{Decimal(value):,.2f}"
    return f"{text} {currency}" if currency else text


def _change(before: Any, after: Any, currency: str = "") -> str:
    """after − before, and as a percentage of before (when before is not 0)."""
    if before is None or after is None:
        return "–"
    old, new = Decimal(str(before)), Decimal(str(after))
    difference = new - old
    sign = "+" if difference > 0 else ""
    shown = f"{sign}{difference:,.2f}" if isinstance(after, str) else f"{sign}{float(difference):,.4f}".rstrip(
        "0").rstrip(".")
    if currency:
        shown += f" {currency}"
    if old:
        shown += f" ({sign}{float(difference / abs(old) * 100):.1f} %)"
    return shown


COHORT_ROWS = (
    ("Period length (days)", "days", False),
    ("Purchases per customer per 30 days", "purchases_per_customer_per_30d", False),
    ("Average basket", "average_basket", True),
    ("Spend per customer per 30 days", "spend_per_customer_per_30d", True),
    ("Purchases", "purchases", False),
    ("Spend", "spend", True),
)
NPS_ROWS = (
    ("NPS (% promoters − % detractors)", "nps"),
    ("Respondents (each customer's latest score)", "respondents"),
    ("Promoters (9–10)", "promoters"),
    ("Passives (7–8)", "passives"),
    ("Detractors (0–6)", "detractors"),
    ("Scored responses", "responses"),
)
MEMBER_ROWS = (
    ("Customers who purchased", "customers", False),
    ("Purchases", "purchases", False),
    ("Spend", "spend", True),
    ("Average basket", "average_basket", True),
    ("Spend per customer", "spend_per_customer", True),
    ("Purchases per customer", "purchases_per_customer", False),
)


def effect_tables(effect: dict[str, Any], currency: str) -> list[EffectTable]:
    """The cohort (with ``--effect-from``), NPS (when feedback has scores) and members (when purchases carry
    the flag), in that order; those the summary does not have are left out."""
    tables = []
    since = (effect.get("effect_from") or "")[:10]
    cohort = effect.get("cohort")
    if cohort is not None:
        before, after = cohort["before"], cohort["after"]
        rows = tuple((label, _text(before.get(key), currency if is_money else ""),
                      _text(after.get(key), currency if is_money else ""),
                      "" if key == "days" else _change(before.get(key), after.get(key), currency if is_money else ""))
                     for label, key, is_money in COHORT_ROWS)
        tables.append(EffectTable(
            f"Customers who bought both before and from {since}: {cohort['customers']:,}",
            ("Measure", "Before", f"From {since}", "Change"), rows,
            "The same customers on both sides; per 30 days of each period."))
    nps = effect.get("nps")
    if nps is not None:
        columns = [("Whole history", "all")] + ([("Before", "before"), (f"From {since}", "after")]
                                                 if "before" in nps else [])
        rows = tuple((label, *(_text(nps[key].get(field)) for _, key in columns)) for label, field in NPS_ROWS)
        unscored = nps.get("unscored", 0)
        tables.append(EffectTable("Net Promoter Score of feedback", ("Measure", *(title for title, _ in columns)), rows,
                                  f"Feedback events without a score 0–10: {unscored:,}." if unscored else ""))
    members = effect.get("members")
    if members is not None:
        rows = tuple((label, _text(members["member"].get(key), currency if is_money else ""),
                      _text(members["non_member"].get(key), currency if is_money else ""))
                     for label, key, is_money in MEMBER_ROWS)
        without = members.get("purchases_without_flag", 0)
        tables.append(EffectTable("Members against non-members (each purchase's member flag)",
                                  ("Measure", "Members", "Non-members"), rows,
                                  f"Purchases without a member flag: {without:,}." if without else ""))
    return tables


__all__ = ["EffectTable", "effect_tables"]
