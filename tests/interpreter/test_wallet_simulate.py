"""Issue 13 through ``poletti simulate``: the wallet, perks and partners, figured by hand on a small history,
and the same summary from every replay path (event at a time, per customer, CSV / JSON Lines / Parquet,
one worker or two)."""

from __future__ import annotations

from pathlib import Path

import pytest

import poletti
from poletti.interpreter.simulate.columnar import simulate_file
from replays import compare, write

RULES = """\
reward ten_off "10 % off" value 10% max 20 EUR expires after 1m
reward coffee "Coffee" value 2.50 EUR costs 50 points
earn 1 point per EUR
at 100 points grant ten_off
tier vip when spend_30d >= 150
perk early_access "Early access" when tier >= vip
partner kulma "Kahvila Kulma" pays 0.02 EUR per point
rate SEK 0.087 EUR
"""


def _e(id: str, type: str, customer: str, at: str, **fields: object) -> dict[str, object]:
    return {"id": id, "type": type, "customer": customer, "at": at, **fields}


EVENTS = [
    # c1: 120 → ten_off granted at 01-05 (held until 02-05T10:00Z), 20 points left.
    _e("p1", "purchase", "c1", "2026-01-05T10:00:00+00:00", amount="120.00"),
    # uses it on 55.55: 10 % = 5.555 → 5.56; +55 → 75.
    _e("p2", "purchase", "c1", "2026-01-06T10:00:00+00:00", amount="55.55", rewards_used=["ten_off"]),
    # c2 at kulma: 1000 SEK × 0.087 = 87.00 EUR → 87; 30 EUR → 30: 117 ≥ 100 → ten_off (until 02-07T10:00Z), 17.
    _e("p3", "purchase", "c2", "2026-01-06T10:00:00+00:00", amount="1000", currency="SEK", partner="kulma"),
    _e("p4", "purchase", "c2", "2026-01-07T10:00:00+00:00", amount="30", partner="kulma"),
    # c2 redeems coffee at kulma: 17 < 50 → rejected.
    _e("x1", "redeem", "c2", "2026-01-08T10:00:00+00:00", reward="coffee", partner="kulma"),
    # c3: 250 → `at` repeats while the balance allows: 2 × ten_off (until 02-09T10:00Z), 50 left; 250 ≥ 150 → vip.
    _e("p5", "purchase", "c3", "2026-01-09T10:00:00+00:00", amount="250.00"),
    # c3 uses one ten_off on 300 (one of the two ending 02-09): 10 % = 30.00 → max → 20.00.
    # +300 → 350 → 3 × ten_off (until 02-10T10:00Z), 50 left.
    _e("p6", "purchase", "c3", "2026-01-10T10:00:00+00:00", amount="300.00", rewards_used=["ten_off"]),
    # c3 redeems coffee at kulma: 50 − 50 = 0; kulma credited 50 points.
    _e("x2", "redeem", "c3", "2026-01-11T10:00:00+00:00", reward="coffee", partner="kulma"),
    # c3 uses two ten_off on 100 (the 02-09 one, then a 02-10 one): 10.00 each. +100 → 1 × ten_off
    # (until 02-20T10:00Z), 0 left.
    _e("p7", "purchase", "c3", "2026-01-20T10:00:00+00:00", amount="100.00", rewards_used=["ten_off", "ten_off"]),
    # c1 tries a ten_off it no longer holds → rejected.
    _e("p8", "purchase", "c1", "2026-01-21T10:00:00+00:00", amount="10.00", rewards_used=["ten_off"]),
    # The last event: the replay ends here, at 2026-02-15T10:00Z.
    _e("v1", "visit", "c1", "2026-02-15T10:00:00+00:00"),
]
# Granted ten_off: c1 1, c2 1, c3 2 + 3 + 1 = 6 → 8. Used: c1 1, c3 1 + 2 → 4.
# Held by 02-15: c2's (until 02-07) expired; c3 holds two ending 02-10 (expired) and one ending 02-20 (held).
# So expired 1 + 2 = 3, held 8 − 4 − 3 = 1.
# cost: coffee 1 × 2.50 = 2.50 (ten_off has no fixed value: listed in cost_unknown).
# cost_used: c1 5.56 + c3 20.00 + 10.00 + 10.00 = 45.56.
# Tiers at 02-15 (spend_30d ≥ 150): c3's 250 and 300 left the window on 02-08 and 02-09, its 100 of 01-20 is
# inside → 100 < 150 → none; c1 and c2 none (c2: 87 + 30 = 117). Perks: early_access 0.
# kulma: issued 87 + 30 = 117, redeemed 50 → (117 − 50) × 0.02 = 1.34.
EXPECTED = {
    "rejected": 2,
    "rewards": {"coffee": 1, "ten_off": 8},
    "rewards_used": {"coffee": 0, "ten_off": 4},
    "rewards_expired": {"coffee": 0, "ten_off": 3},
    "rewards_held": {"coffee": 1, "ten_off": 1},
    "cost": "2.50",
    "cost_unknown": ["ten_off"],
    "cost_used": "45.56",
    "perks": {"early_access": 0},
    "partners": {"kulma": {"points_issued": 117, "points_reversed": 0, "points_redeemed": 50,
                           "settlement": "1.34"}},
    "tiers": {"vip": 0, "none": 3},
}


def test_hand_worked_summary(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    write(EVENTS, path)
    summary = simulate_file(poletti.compile(RULES), str(path)).summary
    assert {key: summary[key] for key in EXPECTED} == EXPECTED


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
@pytest.mark.parametrize("workers", [1, 2])
def test_every_replay_path_agrees(tmp_path: Path, suffix: str, workers: int) -> None:
    compare(RULES, EVENTS, tmp_path, suffix, None, workers, baseline_text=RULES.replace("10%", "5%"))


def test_until_expires_the_last_voucher(tmp_path: Path) -> None:
    # At 2026-03-01 c3's last ten_off (until 02-20T10:00Z) has expired too: expired 4, held 0.
    path = tmp_path / "history.jsonl"
    write(EVENTS, path)
    summary = simulate_file(poletti.compile(RULES), str(path), until="2026-03-01").summary
    assert summary["rewards_expired"]["ten_off"] == 4
    assert summary["rewards_held"]["ten_off"] == 0


def test_the_summary_table_shows_the_value_of_rewards_used_only_where_purchases_use_them(tmp_path: Path) -> None:
    from poletti.interpreter.simulate.report import summary_table

    path = tmp_path / "history.jsonl"
    write(EVENTS, path)
    used = simulate_file(poletti.compile(RULES), str(path)).summary
    assert "Value of the rewards used (EUR)" in summary_table(used) and "45.56" in summary_table(used)
    # The same history without any rewards_used: no row (0.00 would read as "the rewards were free").
    plain = [{k: v for k, v in event.items() if k != "rewards_used"} for event in EVENTS]
    write(plain, path)
    unused = simulate_file(poletti.compile(RULES), str(path)).summary
    assert "Value of the rewards used" not in summary_table(unused)
