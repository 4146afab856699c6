"""The report's issue-13 sections: the voucher funnel, perks and partner settlements (HTML tables).

"What did the vouchers actually cost?": per reward, how many were granted
and what became of them — used, expired, still held — with the value the
used ones gave away (``cost_used``, percentages included) beside the value
of the ones granted (``cost``, fixed values only).
"""

from __future__ import annotations

import html
from typing import Any


def _cell(value: Any) -> str:
    return f"<td class=num>{html.escape(f'{value:,}' if isinstance(value, int) else str(value))}</td>"


def funnel_table(summary: dict[str, Any]) -> str:
    """Granted → used / expired / still held, per reward (empty when nothing was granted)."""
    granted = summary.get("rewards", {})
    if not any(granted.values()):
        return ""
    used, expired, held = (summary.get(key, {}) for key in ("rewards_used", "rewards_expired", "rewards_held"))
    rows = []
    for name, count in granted.items():
        share = f"{used.get(name, 0) / count:.0%}" if count else "–"
        rows.append(f"<tr><td>{html.escape(name)}</td>{_cell(count)}{_cell(used.get(name, 0))}"
                    f"{_cell(expired.get(name, 0))}{_cell(held.get(name, 0))}{_cell(share)}</tr>")
    currency = summary.get("currency", "")
    head = ("<tr><th>Reward</th><th>Granted</th><th>Used</th><th>Expired</th><th>Still held</th>"
            "<th>Used of granted</th></tr>")
    note = (f"<p class=note>The rewards used gave away {html.escape(str(summary.get('cost_used', '0.00')))} "
            f"{html.escape(currency)} (percentage vouchers at what they were worth on the purchase that used them); "
            f"the fixed values of the rewards granted add up to {html.escape(str(summary.get('cost', '0.00')))} "
            f"{html.escape(currency)}.</p>")
    return (f"{note}<table class=figures><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>")


def perks_table(summary: dict[str, Any]) -> str:
    perks = summary.get("perks")
    if not perks:
        return ""
    rows = "".join(f"<tr><td>{html.escape(name)}</td>{_cell(count)}</tr>" for name, count in perks.items())
    return ("<p class=note>Customers holding each perk at the end of the replay.</p>"
            f"<table class=figures><thead><tr><th>Perk</th><th>Customers</th></tr></thead><tbody>{rows}</tbody>"
            "</table>")


def partners_table(summary: dict[str, Any]) -> str:
    partners = summary.get("partners")
    if not partners:
        return ""
    currency = html.escape(summary.get("currency", ""))
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>{_cell(f['points_issued'])}{_cell(f['points_reversed'])}"
        f"{_cell(f['points_redeemed'])}{_cell(f['settlement'])}</tr>" for name, f in partners.items())
    return (f"<p class=note>Points issued at each partner (net of refunds) are charged to it at its rate, points "
            f"redeemed there are credited; a positive settlement ({currency}) is what the partner owes, a negative "
            "one what it is owed.</p>"
            "<table class=figures><thead><tr><th>Partner</th><th>Points issued</th><th>Reversed by refunds</th>"
            f"<th>Points redeemed</th><th>Settlement ({currency})</th></tr></thead><tbody>{rows}</tbody></table>")


def sections(summary: dict[str, Any]) -> list[str]:
    """The report's sections for the wallet, perks and partners (none for a program without them)."""
    out: list[str] = []
    funnel = funnel_table(summary)
    if funnel:
        out += ["<h2>Vouchers: granted, used, expired, still held</h2>", funnel]
    perks = perks_table(summary)
    if perks:
        out += ["<h2>Perks</h2>", perks]
    partners = partners_table(summary)
    if partners:
        out += ["<h2>Partners</h2>", partners]
    return out
