"""A synthetic purchase history shaped like CDNOW's, deterministic by seed.

    generate(purchases=69_659, seed=1) -> list of event dicts, in time order

The real CDNOW history (Fader & Hardie's CDNOW "master" file) holds the
69,659 purchases that the 23,570 customers who first bought at CDNOW in the
first quarter of 1997 made until the end of June 1998; amounts are US dollars
with cents. This generator keeps that shape, with the parameters below:

* **Cohort.** ``CUSTOMERS`` customers (scaled with ``purchases``) make their
  first purchase uniformly over the first ``COHORT_DAYS`` days from
  ``START`` (1997-01-01); the history ends before ``END`` (1998-07-01): 546
  days, 18 months.
* **Heavy-tailed repeat buying.** Each customer's number of repeat purchases
  is Poisson with a log-normal rate (shape ``REPEAT_SIGMA``) whose mean makes
  the expected total ``PURCHASES``: about half the customers buy once (as in
  CDNOW), a few buy a hundred times or more (CDNOW's most frequent buyer:
  217 purchases; the tail is cut at ``MAX_REPEATS``).
* **Timing.** A repeat purchase falls at first + (END − first) × u^``TIMING_SKEW``
  for u uniform in [0, 1): buying is densest soon after the first purchase
  and thins out over the 18 months, as CDNOW's monthly sales did. The time of
  day is uniform (an online store): some purchases are in the night hour
  that the New York clocks skip or repeat when daylight saving time starts
  or ends, so 12-month windows of the program land on those hours.
* **Amounts.** Log-normal dollars with median ``AMOUNT_MEDIAN`` and shape
  ``AMOUNT_SIGMA`` (mean ≈ 36 USD, like CDNOW's 35.89), rounded to cents,
  at least ``AMOUNT_MIN``; each customer's amounts are scaled by a
  customer factor (log-normal, ``CUSTOMER_SIGMA``), so big spenders stay big.
* **Refunds.** CDNOW's file has none; a store has a few. ``REFUND_RATE`` (2%)
  of purchases are refunded within ``REFUND_MAX_DAYS`` days if that is still
  inside the history: ``REFUND_PARTIAL_SHARE`` of them partially (20–80% of
  the amount), the rest in full, half of the full ones without an amount
  (the contract's "the rest of it").

Events are the dicts a host sends (``id``, ``type``, ``customer``, ``at`` as
ISO 8601 with the New York offset, ``amount`` as a decimal string, ``currency``
``USD``, ``original`` for refunds), in time order, strictly increasing per
customer. Every draw comes from ``random.Random`` instances seeded from the
seed (one per customer), so the same arguments give the same events on any
machine. ``write_jsonl`` and ``write_csv`` write them for the benchmark's
contenders and for ``poletti simulate``.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import date, datetime, time, timedelta
from random import Random
from typing import IO, Any, Iterable, Iterator
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("America/New_York")
START = date(1997, 1, 1)
END = date(1998, 7, 1)  # exclusive
COHORT_DAYS = 90
CUSTOMERS = 23_570
PURCHASES = 69_659
REPEAT_SIGMA = 1.5
MAX_REPEATS = 400
TIMING_SKEW = 2.0
AMOUNT_MEDIAN = 26.0
AMOUNT_SIGMA = 0.75
CUSTOMER_SIGMA = 0.3
AMOUNT_MIN = 0.5
REFUND_RATE = 0.02
REFUND_MAX_DAYS = 30
REFUND_PARTIAL_SHARE = 0.3
FULL_REFUND_NO_AMOUNT_SHARE = 0.5

#: The expected number of events per purchase (refunds included).
EVENTS_PER_PURCHASE = 1 + REFUND_RATE

COLUMNS = ("id", "type", "customer", "at", "amount", "currency", "items", "original", "birthday")


def customers_for(purchases: int) -> int:
    """How many customers give about ``purchases`` purchases (CDNOW's ratio)."""
    return max(1, round(purchases * CUSTOMERS / PURCHASES))


def _poisson(rng: Random, mean: float) -> int:
    """A Poisson draw: count the arrivals of a unit-rate process in [0, mean)."""
    count, t = 0, rng.expovariate(1.0)
    while t < mean and count < MAX_REPEATS:
        count += 1
        t += rng.expovariate(1.0)
    return count


def generate(purchases: int = PURCHASES, seed: int = 1) -> list[dict[str, Any]]:
    """About ``purchases`` purchases (plus refunds) of ``customers_for(purchases)`` customers, in time order."""
    return list(iter_events(purchases, seed))


def iter_events(purchases: int = PURCHASES, seed: int = 1) -> Iterator[dict[str, Any]]:
    """``generate``'s events one at a time (the draws are compact tuples in memory, the dicts are not)."""
    customers = customers_for(purchases)
    width = max(5, len(str(customers)))
    start = datetime.combine(START, time()).replace(tzinfo=ZONE).timestamp()
    end = datetime.combine(END, time()).replace(tzinfo=ZONE).timestamp()
    cohort_end = datetime.combine(START + timedelta(days=COHORT_DAYS), time()).replace(tzinfo=ZONE).timestamp()
    repeat_mean = PURCHASES / CUSTOMERS - 1
    # (epoch seconds, customer index, sequence within the customer, kind (0 purchase, 1 refund, 2 purchase
    # refunded later), amount in cents (-1: none), the refunded purchase's sequence)
    rows: list[tuple[int, int, int, int, int, int]] = []
    for index in range(customers):
        rng = Random(f"cdnow-like:{seed}:{index}")
        first = int(rng.uniform(start, cohort_end))
        rate = rng.lognormvariate(math.log(repeat_mean) - REPEAT_SIGMA ** 2 / 2, REPEAT_SIGMA)
        repeats = _poisson(rng, rate)
        times = sorted(int(first + (end - first) * rng.random() ** TIMING_SKEW) for _ in range(repeats))
        scale = rng.lognormvariate(0.0, CUSTOMER_SIGMA)
        at_times: list[int] = []
        last = -1
        for t in [first, *times]:
            t = max(t, last + 1)  # strictly increasing per customer
            if t >= end:
                break
            at_times.append(t)
            last = t
        seq = 0
        for t in at_times:
            seq += 1
            dollars = max(AMOUNT_MIN, scale * rng.lognormvariate(math.log(AMOUNT_MEDIAN), AMOUNT_SIGMA))
            cents = max(1, round(dollars * 100))
            if rng.random() >= REFUND_RATE:
                rows.append((t, index, seq, 0, cents, 0))
                continue
            refund_at = t + rng.randint(3_600, REFUND_MAX_DAYS * 86_400)
            if refund_at >= end:
                rows.append((t, index, seq, 0, cents, 0))
                continue
            rows.append((t, index, seq, 2, cents, 0))  # a purchase refunded later
            purchase_seq = seq
            seq += 1
            if rng.random() < REFUND_PARTIAL_SHARE:
                part = max(1, cents * rng.randint(20, 80) // 100)
                rows.append((refund_at, index, seq, 1, part, purchase_seq))
            elif rng.random() < FULL_REFUND_NO_AMOUNT_SHARE:
                rows.append((refund_at, index, seq, 1, -1, purchase_seq))  # no amount: the rest of it
            else:
                rows.append((refund_at, index, seq, 1, cents, purchase_seq))
    # Time order; a customer's refund may fall after their later purchases: the (time, customer,
    # sequence) order keeps each customer's events in time order, ties in sequence order.
    rows.sort()
    # Ids are numbered in time order per customer, so "c00042-3" is the customer's third event.
    numbers: dict[tuple[int, int], str] = {}
    counts = [0] * customers
    for t, index, seq, kind, cents, original in rows:
        customer = f"c{index + 1:0{width}d}"
        counts[index] += 1
        event_id = f"{customer}-{counts[index]}"
        at = datetime.fromtimestamp(t, ZONE).isoformat()
        if kind == 2:
            numbers[(index, seq)] = event_id
        if kind != 1:
            yield {"id": event_id, "type": "purchase", "customer": customer, "at": at,
                   "amount": f"{cents // 100}.{cents % 100:02d}", "currency": "USD"}
        else:
            refund: dict[str, Any] = {"id": event_id, "type": "refund", "customer": customer, "at": at,
                                      "currency": "USD", "original": numbers.pop((index, original))}
            if cents >= 0:
                refund["amount"] = f"{cents // 100}.{cents % 100:02d}"
            yield refund


def write_jsonl(events: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    count = 0
    for event in events:
        stream.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
        stream.write("\n")
        count += 1
    return count


def csv_row(event: dict[str, Any]) -> list[str]:
    """An event as a row of ``COLUMNS``: empty cells for absent fields, ``items`` as JSON text."""
    row = []
    for column in COLUMNS:
        value = event.get(column)
        if value is None:
            row.append("")
        elif column == "items":
            row.append(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
        else:
            row.append(str(value))
    return row


def write_csv(events: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    """A header and one row per event under ``COLUMNS`` (the history format ``poletti simulate`` reads)."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for event in events:
        writer.writerow(csv_row(event))
        count += 1
    return count
