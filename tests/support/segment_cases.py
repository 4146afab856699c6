"""A small history with tiers and segments under two versions of the rules, worked out by hand: customers per
segment, who gains and loses by tier and by segment, and the money figures the report's words are made of."""

from __future__ import annotations

from typing import Any

# The new rules: one point per euro, ×3 for gold (a purchase earns with the tier it found), gold from
# 60 EUR spent in all; lapsed after more than 30 days without a purchase; big from 60 EUR spent.
NEW_RULES = """\
reward gift "Gift" value 2.50 EUR costs 50 points
earn 1 point per EUR
earn x3 if tier >= gold
at 50 points grant gift
tier gold when spend_lifetime >= 60
segment lapsed when days_since_last_purchase > 30
segment big when spend_lifetime >= 60
"""
# The baseline: two points per euro, no tier; lapsed after more than 45 days.
BASELINE_RULES = """\
reward gift "Gift" value 2.50 EUR costs 50 points
earn 2 points per EUR
at 50 points grant gift
segment lapsed when days_since_last_purchase > 45
"""


def purchase(event_id: str, customer: str, day: str, amount: str) -> dict[str, Any]:
    return {"id": event_id, "type": "purchase", "customer": customer, "at": f"2026-{day}T10:00:00Z",
            "amount": amount}


EVENTS = [
    purchase("p3", "c2", "01-02", "20.00"),
    purchase("p1", "c1", "01-05", "30.00"),
    purchase("p2", "c1", "01-10", "45.00"),
    purchase("p5", "c1", "01-15", "10.00"),
    purchase("p6", "c4", "02-01", "60.00"),
    purchase("p7", "c4", "02-10", "100.00"),
    {"id": "v1", "type": "visit", "customer": "c5", "at": "2026-02-15T10:00:00Z"},
    purchase("p4", "c3", "02-20", "70.00"),
]
# The end is the last event, 02-20 10:00.
#
# New rules, customer by customer:
#   c1: p1 30 → 30; p2 (no tier yet: 30 < 60) 45 → 75 → gift → 25, then gold (75); p5 (gold) 10 × 3 = 30
#       → 55 → gift → 5. Earned 30 + 45 + 30 = 105, 2 gifts = 5.00, held 5. Last purchase 01-15: 36 days
#       at the end > 30 → lapsed; spent 85 ≥ 60 → big. Tier gold.
#   c2: p3 20 → 20. Earned 20, no gift, held 20. 49 days → lapsed (from 02-02 10:00, 31 days); not big.
#   c3: p4 (no tier) 70 → 70 → gift → 20. Earned 70, 2.50, held 20. Gold, big; 0 days: not lapsed.
#   c4: p6 (no tier) 60 → 60 → gift → 10, then gold; p7 (gold) 100 × 3 = 300 → 310 → 6 gifts → 10.
#       Earned 360, 7 gifts = 17.50, held 10. Gold, big; 10 days: not lapsed.
#   c5: a visit: nothing earned; no purchase yet, so 5 days since the first event: not lapsed. No tier.
# Baseline:
#   c1: p1 60 → gift → 10; p2 90 → 100 → 2 gifts → 0; p5 20 → 20. Earned 170, 3 gifts = 7.50. 36 ≤ 45.
#   c2: 40. Earned 40. 49 > 45 → lapsed.
#   c3: 140 → 2 gifts → 40. Earned 140, 5.00.
#   c4: p6 120 → 2 gifts → 20; p7 200 → 220 → 4 gifts → 20. Earned 320, 6 gifts = 15.00.
#   c5: nothing.
SEGMENTS = {"lapsed": 2, "big": 3}  # lapsed: c1, c2; big: c1, c3, c4
BASELINE_SEGMENTS = {"lapsed": 1}  # c2
DELTA_SEGMENTS = {"lapsed": 1, "big": 3}  # 2 − 1; 3 − 0 (the baseline has no "big")
DELTA_PCT_SEGMENTS = {"lapsed": "100.0", "big": None}  # +1 of 1; of nothing: unknown
# Change, new − baseline (reward value decides, then points earned):
#   c1: 5.00 − 7.50 = −2.50 → loses; earned 105 − 170 = −65
#   c2: 0.00 − 0.00, earned 20 − 40 = −20 → loses
#   c3: 2.50 − 5.00 = −2.50 → loses; earned 70 − 140 = −70
#   c4: 17.50 − 15.00 = +2.50 → gains; earned 360 − 320 = +40
#   c5: nothing on either side → same
# Groups, by where the new rules leave each customer:
#   gold = c1, c3, c4: 1 gains, 2 lose; earned −65 − 70 + 40 = −95; value −2.50 − 2.50 + 2.50 = −2.50
#   none = c2, c5: c2 loses, c5 same; earned −20; value 0.00
#   lapsed = c1, c2: both lose; earned −65 − 20 = −85; value −2.50 + 0.00 = −2.50
#   big = c1, c3, c4: as gold
#   (check: −95 − 20 = −115 = 105 + 20 + 70 + 360 − (170 + 40 + 140 + 320))
GROUPS = {
    "by": "new rules, at the end",
    "tiers": {
        "gold": {"customers": 3, "gain": 1, "lose": 2, "same": 0, "earned_points_change": -95,
                 "reward_value_change": "-2.50"},
        "none": {"customers": 2, "gain": 0, "lose": 1, "same": 1, "earned_points_change": -20,
                 "reward_value_change": "0.00"},
    },
    "segments": {
        "lapsed": {"customers": 2, "gain": 0, "lose": 2, "same": 0, "earned_points_change": -85,
                   "reward_value_change": "-2.50"},
        "big": {"customers": 3, "gain": 1, "lose": 2, "same": 0, "earned_points_change": -95,
                "reward_value_change": "-2.50"},
    },
}
# The customers file: segments in the order the rules declare them, ";" between, empty for none.
SEGMENT_CELLS = {"c1": ("lapsed;big", ""), "c2": ("lapsed", "lapsed"), "c3": ("big", ""), "c4": ("big", ""),
                 "c5": ("", "")}
# The summary's other figures, for the report's words:
#   earned: new 105 + 20 + 70 + 360 + 0 = 555; baseline 170 + 40 + 140 + 320 = 670; −115, −115 / 670 = −17.2 %
#   cost: new 2 + 1 + 7 = 10 gifts = 25.00; baseline 3 + 2 + 6 = 11 gifts = 27.50; −2.50, −2.50 / 27.50 = −9.1 %
#   sales: 20 + 30 + 45 + 10 + 60 + 100 + 70 = 335.00 (both); share 25.00 / 335 = 7.46 %, 27.50 / 335 = 8.21 %
#   outstanding: new 5 + 20 + 20 + 10 = 55; baseline 20 + 40 + 40 + 20 = 120; −65, −65 / 120 = −54.2 %
#   point value 2.50 / 50 = 0.05 (both): liability 55 × 0.05 = 2.75 and 120 × 0.05 = 6.00, −3.25
#   nothing expires; tiers: gold 3, none 2 against none 5
HEADLINE = ("Replayed over the same 8 events, the new rules (new.loyalty) give customers 115 fewer points "
            "(-17.2 %) than the baseline (old.loyalty). The rewards cost 2.50 EUR less (-9.1 %): 7.46 % of sales instead of 8.21 %. 1 customer "
            "gains, 3 lose and 1 sees no change. At the end customers hold 65 fewer points, worth 3.25 EUR "
            "(-54.2 %). Customers per tier at the end: gold 3, no tier 5 → 2. Customers per segment at the end: "
            "lapsed 1 → 2, big 3.")
HEADLINE_ALONE = ("Over 8 events, 5 customers earned 555 points and received 10 rewards costing 25.00 EUR, 7.46 % "
                  "of sales (335.00 EUR). At the end they hold 55 points, worth 2.75 EUR. Customers per tier at the "
                  "end: gold 3, no tier 2. Customers per segment at the end: lapsed 2, big 3.")
