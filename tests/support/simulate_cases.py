"""A small café history with hand-worked simulate answers, and writers for every history format.

Shared by tests/interpreter/test_simulate.py, test_history.py and
test_report.py (``import simulate_cases``; pytest puts tests/support on the
path). Every expected figure is worked out by hand from LANGUAGE.md below,
never copied from the engine.

The rules (UTC): 1 point per EUR, 10 points at signup, a free drink
(3.50 EUR) for every 50 points, a mug (8.00 EUR) to redeem for 30 points,
gold above 100 EUR in 12 months, points expire after 1 month.

Event by event (balance after; lots FIFO, "lot X n" = what is left of it):

 1. s1  signup   c1 01-02 09:00          +10 fixed → 10                    lot s1 10 (expires 02-02)
 2. p1  purchase c1 01-05 80.00          +80 → 90 → free_drink, −50 → 40   s1 10→0, p1 80→40 (expires 02-05)
 3. p2  purchase c2 01-10 45.50          45.5 rounds down → +45 → 45       lot p2 45 (expires 02-10)
 4. x1  redeem   c1 01-20 mug            40 ≥ 30 → −30 → 10, mug           p1 40→10
 5. p3  purchase c1 02-01 40.00          +40 → 50 → free_drink, −50 → 0    p1 10→0, p3 40→0; spend_12m 120 > 100 → gold
 6. r1  refund   c1 02-03 p1 30.00       P = 80: floor(80 × 30 / 80) = 30 reversed → −30 (debt);
                                          spend_12m net 50 + 40 = 90 → no tier
 7. x2  redeem   c2 02-05 mug            45 ≥ 30 → 15, mug                 p2 45→15
 8. bad purchase c3 02-07, no amount     rejected ("amount")
    c2's lot p2 (15 left) expires at 02-10 10:00 → expired 15 → 0
 9. x3  redeem   c1 02-20 mug            balance −30 < 30 → rejected ("short")
10. p5  purchase c2 03-01 60.00          +60 → 60 → free_drink, −50 → 10;  spend_12m 45.50 + 60 = 105.50 → gold
11. p4  purchase c3 03-15 12:00 12.00    +12 → 12

The clock then advances to the last event's time, 03-15 12:00 (nothing else is due).

    earned   = c1 (10 + 80 + 40) + c2 (45 + 60) + c3 12 = 130 + 105 + 12 = 247
    spent    = c1 (50 + 30 + 50) + c2 (30 + 50)         = 130 + 80       = 210
    expired  = c2 15                                                        = 15
    reversed = c1 30                                                        = 30
    outstanding = c1 −30 + c2 10 + c3 12                                    = −8
    (check: 210 + 15 + 30 − 8 = 247)
    rewards  = free_drink c1 2 + c2 1 = 3; mug c1 1 + c2 1 = 2
    cost     = 3 × 3.50 + 2 × 8.00 = 10.50 + 16.00 = 26.50
    tiers    = gold: c2; none: c1 (lost gold with the refund), c3
    events 11, rejected 2 (bad, x3), customers 3
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

RULES = """\
reward free_drink "Free drink" value 3.50 EUR
reward mug "Mug" value 8.00 EUR costs 30 points
earn 1 point per EUR
earn 10 points on signup
at 50 points grant free_drink
tier gold when spend_12m > 100
points expire after 1m
"""

# The old rules: no signup bonus and no expiry.
BASELINE_RULES = """\
reward free_drink "Free drink" value 3.50 EUR
reward mug "Mug" value 8.00 EUR costs 30 points
earn 1 point per EUR
at 50 points grant free_drink
tier gold when spend_12m > 100
"""


def _e(id: str, type: str, customer: str, at: str, **fields: Any) -> dict[str, Any]:
    return {"id": id, "type": type, "customer": customer, "at": at, **fields}


EVENTS: list[dict[str, Any]] = [
    _e("s1", "signup", "c1", "2026-01-02T09:00:00+00:00"),
    _e("p1", "purchase", "c1", "2026-01-05T10:00:00+00:00", amount="80.00"),
    _e("p2", "purchase", "c2", "2026-01-10T10:00:00+00:00", amount="45.50"),
    _e("x1", "redeem", "c1", "2026-01-20T10:00:00+00:00", reward="mug"),
    _e("p3", "purchase", "c1", "2026-02-01T10:00:00+00:00", amount="40.00"),
    _e("r1", "refund", "c1", "2026-02-03T10:00:00+00:00", original="p1", amount="30.00"),
    _e("x2", "redeem", "c2", "2026-02-05T10:00:00+00:00", reward="mug"),
    _e("bad", "purchase", "c3", "2026-02-07T10:00:00+00:00"),
    _e("x3", "redeem", "c1", "2026-02-20T10:00:00+00:00", reward="mug"),
    _e("p5", "purchase", "c2", "2026-03-01T10:00:00+00:00", amount="60.00"),
    _e("p4", "purchase", "c3", "2026-03-15T12:00:00+00:00", amount="12.00"),
]

EXPECTED = {
    "events": 11,
    "rejected": 2,
    "customers": 3,
    "points": {"earned": 247, "spent": 210, "expired": 15, "reversed": 30, "outstanding": -8},
    "rewards": {"free_drink": 3, "mug": 2},
    "tiers": {"gold": 1, "none": 2},
    "cost": "26.50",
}

# The baseline over the same events:
#  s1 → 0 points (the customer exists).  p1 80 → 80 → free_drink → 30.  x1 mug → 0.
#  p3 40 → 40 (< 50), spend 120 → gold.  r1: floor(80 × 30 / 80) = 30 → 10; net spend 90 → none.
#  x3: 10 < 30 → rejected.  c2: p2 45; x2 mug → 15; nothing expires; p5 60 → 75 → free_drink → 25, gold.
#  c3: bad rejected; p4 → 12.
#    earned 80 + 40 + 45 + 60 + 12 = 237; spent (50 + 30) + (30 + 50) = 160; expired 0; reversed 30;
#    outstanding 10 + 25 + 12 = 47 (check: 160 + 0 + 30 + 47 = 237)
#    free_drink c1 1 + c2 1 = 2, mug 2; cost 2 × 3.50 + 2 × 8.00 = 23.00
EXPECTED_BASELINE = {
    "events": 11,
    "rejected": 2,
    "customers": 3,
    "points": {"earned": 237, "spent": 160, "expired": 0, "reversed": 30, "outstanding": 47},
    "rewards": {"free_drink": 2, "mug": 2},
    "tiers": {"gold": 1, "none": 2},
    "cost": "23.00",
}

# New minus old, figure by figure: 247 − 237 = 10, 210 − 160 = 50, 15 − 0, 30 − 30, −8 − 47 = −55,
# free_drink 3 − 2 = 1, mug 0, tiers 0, cost 26.50 − 23.00 = 3.50.
EXPECTED_DELTA = {
    "events": 0,
    "rejected": 0,
    "customers": 0,
    "points": {"earned": 10, "spent": 50, "expired": 15, "reversed": 0, "outstanding": -55},
    "rewards": {"free_drink": 1, "mug": 0},
    "tiers": {"gold": 0, "none": 0},
    "segments": {},  # neither program declares one
    "cost": "3.50",
    "duplicates": 0,
    # The money figures (EXPECTED_MONEY below): sales 207.50 − 207.50; liability −0.56 − 3.29 = −3.85 and
    # 1.05 − 0.00; share of sales 12.77 − 11.08 = 1.69 percentage points; point value 0.07 − 0.07.
    "sales": "0.00",
    "liability": {"outstanding": "-3.85", "expired": "1.05"},
    "cost_share_of_sales": "1.69",
    "point_value": "0.00",
    # Issue 13's wallet: no purchase uses a reward and none expires (no `expires after`), so under both rules
    # every reward granted is still held: held changes as granted does (+1 free_drink); used, expired and their
    # value do not change.
    "rewards_used": {"free_drink": 0, "mug": 0},
    "rewards_expired": {"free_drink": 0, "mug": 0},
    "rewards_held": {"free_drink": 1, "mug": 0},
    "cost_used": "0.00",
}

# The money figures, new rules and baseline alike except where said:
#  point value: no `point value` statement, so derived: free_drink (an `at` rule) 3.50 / 50 = 0.07 a point,
#    mug (`costs`) 8.00 / 30 = 0.2667; the lowest is 0.07, "derived from free_drink" (both programs).
#  sales: accepted purchases p1 80.00 + p2 45.50 + p3 40.00 + p5 60.00 + p4 12.00 = 237.50, less the refund
#    r1 30.00 = 207.50 (both: the same purchases and refund are accepted under both).
#  liability: new outstanding −8 × 0.07 = −0.56, expired 15 × 0.07 = 1.05;
#    baseline outstanding 47 × 0.07 = 3.29, expired 0 × 0.07 = 0.00.
#  cost as a share of sales: new 26.50 / 207.50 = 0.12771… = 12.77 %; baseline 23.00 / 207.50 = 0.11084… = 11.08 %.
EXPECTED_MONEY = {
    "point_value": "0.07",
    "point_value_source": "derived from free_drink",
    "sales": "207.50",
    "liability": {"outstanding": "-0.56", "expired": "1.05"},
    "cost_share_of_sales": "12.77",
}
EXPECTED_BASELINE_MONEY = {
    "point_value": "0.07",
    "point_value_source": "derived from free_drink",
    "sales": "207.50",
    "liability": {"outstanding": "3.29", "expired": "0.00"},
    "cost_share_of_sales": "11.08",
}

# Each change as a percentage of the old figure, one decimal, null where the old figure is 0:
#  events 0 / 11, rejected 0 / 2, customers 0 / 3 → 0.0; earned 10 / 237 = 4.219 → 4.2;
#  spent 50 / 160 = 31.25 → 31.3 (half up); expired: old 0 → null; reversed 0 / 30 → 0.0;
#  outstanding −55 / 47 = −117.02 → −117.0; free_drink 1 / 2 → 50.0; mug 0 / 2, gold 0 / 1, none 0 / 2 → 0.0;
#  cost 3.50 / 23.00 = 15.217 → 15.2; duplicates: old 0 → null; sales 0 / 207.50 → 0.0;
#  liability outstanding −3.85 / 3.29 = −117.02 → −117.0, expired: old 0.00 → null;
#  share of sales 1.69 / 11.08 = 15.253 → 15.3; point value 0.00 / 0.07 → 0.0.
EXPECTED_DELTA_PCT = {
    "events": "0.0",
    "rejected": "0.0",
    "customers": "0.0",
    "points": {"earned": "4.2", "spent": "31.3", "expired": None, "reversed": "0.0", "outstanding": "-117.0"},
    "rewards": {"free_drink": "50.0", "mug": "0.0"},
    "tiers": {"gold": "0.0", "none": "0.0"},
    "segments": {},
    "cost": "15.2",
    "duplicates": None,
    "sales": "0.0",
    "liability": {"outstanding": "-117.0", "expired": None},
    "cost_share_of_sales": "15.3",
    "point_value": "0.0",
    # Held as granted (see EXPECTED_DELTA): the same percentages; nothing used or expired under the baseline
    # (a figure of 0 there has no percentage).
    "rewards_used": {"free_drink": None, "mug": None},
    "rewards_expired": {"free_drink": None, "mug": None},
    "rewards_held": {"free_drink": "50.0", "mug": "0.0"},
    "cost_used": None,
}

# Month by month (UTC):
#  January:  earned 10 + 80 + 45 = 135; spent 50 + 30 = 80; free_drink 1, mug 1 → 3.50 + 8.00 = 11.50;
#            outstanding at the end c1 10 + c2 45 = 55; tiers none 2.
#  February: earned 40; spent 50 + 30 = 80; expired 15 (c2, 02-10); reversed 30; free_drink 1, mug 1 → 11.50;
#            outstanding 55 + 40 − 80 − 15 − 30 = −30 (c1 −30, c2 0); tiers none 2 (c1's gold lasted 2 days).
#  March:    earned 60 + 12 = 72; spent 50; free_drink 1 → 3.50; outstanding −30 + 10 + 12 = −8;
#            tiers gold 1 (c2), none 2.
EXPECTED_MONTHS = [
    {"start": "2026-01-01", "earned": 135, "spent": 80, "expired": 0, "reversed": 0,
     "rewards": {"free_drink": 1, "mug": 1}, "cost": "11.50", "outstanding": 55, "tiers": {"gold": 0, "none": 2}},
    {"start": "2026-02-01", "earned": 40, "spent": 80, "expired": 15, "reversed": 30,
     "rewards": {"free_drink": 1, "mug": 1}, "cost": "11.50", "outstanding": -30, "tiers": {"gold": 0, "none": 2}},
    {"start": "2026-03-01", "earned": 72, "spent": 50, "expired": 0, "reversed": 0,
     "rewards": {"free_drink": 1, "mug": 0}, "cost": "3.50", "outstanding": -8, "tiers": {"gold": 1, "none": 2}},
]

COLUMNS = ["id", "type", "customer", "at", "amount", "currency", "items", "original", "reward", "birthday"]


def write_jsonl(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def write_csv(path: Path, events: list[dict[str, Any]], extra: list[str] | None = None) -> Path:
    columns = COLUMNS + [c for c in (extra or []) if c not in COLUMNS]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for event in events:
            row = {k: (json.dumps(v) if k == "items" else v) for k, v in event.items()}
            writer.writerow(row)
    return path


def write_parquet(path: Path, events: list[dict[str, Any]], items_as_text: bool = False) -> Path:
    """Core fields as text columns; ``items`` as a list of structs (or JSON text with ``items_as_text``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    item = pa.struct([("sku", pa.string()), ("category", pa.string()), ("quantity", pa.int64()),
                      ("price", pa.string())])
    fields = [pa.field(c, pa.string()) for c in COLUMNS if c != "items"]
    fields.append(pa.field("items", pa.string() if items_as_text else pa.list_(item)))
    rows = []
    for event in events:
        row = {c: event.get(c) for c in COLUMNS}
        if items_as_text and row["items"] is not None:
            row["items"] = json.dumps(row["items"])
        rows.append(row)
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema(fields)), path)
    return path
