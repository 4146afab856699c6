"""The event-at-a-time replay a shard of customers at a time (``streamed``) against the whole replay.

``simulate --sequential``, and every program that pools points by account,
replay a file through the ``Engine`` a shard at a time, so that memory
holds one shard's customers. On random programs (with and without shared
accounts) and random messy histories in every format, the summary, the
month series, the activity, the rejections and every customer's row must
be those of ``sequential.replay`` over the whole file; hand-worked cases
check that contacts land with their account, that the end of the replay is
the last accepted event of the whole history, and that one shard is held at
a time.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import poletti
from poletti.interpreter.simulate import spill, streamed
from poletti.interpreter.simulate.history import History
from poletti.interpreter.simulate.sequential import replay, replay_file
from replays import COLUMNS, compare, write
from rich_programs import histories, programs

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

import cdnow_history  # noqa: E402

ACCOUNT_COLUMNS = COLUMNS + ["account"]
PROPERTY = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


def streamed_file(program: Any, path: str, *, baseline: Any = None, until: Any = None, effect_from: Any = None,
                  keep_standings: bool = True, workers: int = 1) -> Any:
    """``replay_file``, which streams the file where it can."""
    programs_ = [program] if baseline is None else [program, baseline]
    return replay_file(programs_, path, until=until, effect_from=effect_from, keep_standings=keep_standings,
                       workers=workers)


class Watch:
    """Tiny shards, and what the streamed replay did: partitions made, shards alive at most at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(spill, "SHARD_BYTES", 160)
        monkeypatch.setattr(spill, "PARQUET_ROWS_PER_SHARD", 3)
        self.partitions: list[Any] = []
        self.alive = self.most_alive = self.shards = 0
        partition, shard = spill.partition, streamed._Shard
        watch = self

        def watched(*args: Any, **kwargs: Any) -> Any:
            watch.partitions.append(partition(*args, **kwargs))
            return watch.partitions[-1]

        class CountedShard(shard):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any) -> None:
                super().__init__(*args)
                watch.shards += 1
                watch.alive += 1
                watch.most_alive = max(watch.most_alive, watch.alive)

            def finish(self, *args: Any) -> Any:
                watch.alive -= 1
                return super().finish(*args)

        monkeypatch.setattr(streamed, "partition", watched)
        monkeypatch.setattr(streamed, "_Shard", CountedShard)

    @property
    def streamed(self) -> bool:
        return bool(self.partitions) and self.partitions[-1] is not None


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> Watch:
    return Watch(monkeypatch)


# ------------------------------------------------------------------ random programs and histories


def messy(events: list[dict[str, Any]], rnd: random.Random) -> list[dict[str, Any]]:
    """A host's export: a few rows out of order, repeats, rows refused (a far-future one among them)."""
    out = [dict(e) for e in events]
    for event in list(out):
        roll = rnd.random()
        if roll < 0.05:
            out.append(dict(event))
        elif roll < 0.08:
            out.append(dict(event, id=event["id"] + "x", at="2030-05-01T10:00:00+00:00", type="refund",
                            original="nope"))
        elif roll < 0.10:
            out.append(dict(event, id=event["id"] + "y", amount="-3"))
        elif roll < 0.11:
            out.append(dict(event, id=event["id"] + "z", at="2027-02-30T10:00:00+00:00"))
    for _ in range(2):
        if len(out) > 2:
            i = rnd.randrange(len(out) - 1)
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


@PROPERTY
@given(text=programs(), steps=histories(), suffix=st.sampled_from([".csv", ".jsonl", ".parquet"]),
       seed=st.integers(0, 2**32), until=st.sampled_from([None, "2027-09-01"]))
def test_the_streamed_replay_is_the_whole_replay(text: str, steps: list[dict[str, Any]], suffix: str, seed: int,
                                                 until: str | None, tmp_path_factory: Any) -> None:
    events = messy([s for s in steps if "advance_to" not in s], random.Random(seed))
    with pytest.MonkeyPatch.context() as patch:
        watch = Watch(patch)
        compare(text, events, tmp_path_factory.mktemp("h"), suffix, until, 1, simulate=streamed_file)
    event("streamed" if watch.streamed else "read whole (a shared id, a referral)")
    if watch.streamed:
        assert watch.alive == 0 and watch.shards >= 1


POOLED_REWARDS = 'reward gift "Gift" value 5 EUR\nreward big "Big" value 20 EUR costs 80 points\n'
# c1 and c2 are acme's contacts, c3 and c4 beta's, c5 gamma's; c6 has no account.
ACCOUNTS = {"c1": "acme", "c2": "acme", "c3": "beta", "c4": "beta", "c5": "gamma", "c6": None}


@st.composite
def pooled_programs(draw: Any) -> str:
    lines = ["points pooled by account", 'timezone "Europe/Helsinki"' if draw(st.booleans()) else 'timezone "UTC"']
    lines += draw(st.lists(st.sampled_from(["earn 1 point per EUR", "earn 2 points per EUR",
                                            "earn 10 points per purchase", "earn 5 points on feedback"]),
                           min_size=1, max_size=3, unique=True))
    if draw(st.booleans()):
        lines.append(f"points expire after {draw(st.sampled_from(['30d', '1m', '2m']))}")
    if draw(st.booleans()):
        lines.append(f"at {draw(st.sampled_from([30, 50, 120]))} points grant gift")
    if draw(st.booleans()):
        lines.append(f"tier gold when account.spend_{draw(st.sampled_from(['30d', '12m']))} >= "
                     f"{draw(st.sampled_from([60, 150]))}")
        if draw(st.booleans()):
            lines.append("earn x2 if tier >= gold")
    return POOLED_REWARDS + "\n".join(lines) + "\n"


@st.composite
def pooled_histories(draw: Any) -> list[dict[str, Any]]:
    """Events of c1–c6 in time order, with their accounts: a contact's row now and then without it, or
    (refused) naming another account."""
    count = draw(st.integers(2, 40))
    at = datetime(2026, 11, 20, 9, tzinfo=timezone.utc)
    events: list[dict[str, Any]] = []
    purchases: list[dict[str, Any]] = []
    for i in range(count):
        at += timedelta(hours=draw(st.integers(1, 24 * 40)))
        customer = draw(st.sampled_from(sorted(ACCOUNTS)))
        kind = draw(st.sampled_from(["purchase", "purchase", "purchase", "feedback", "refund", "redeem"]))
        event: dict[str, Any] = {"id": f"e{i}", "type": kind, "customer": customer, "at": at.isoformat()}
        if kind == "purchase":
            event["amount"] = f"{draw(st.integers(1, 90))}.{draw(st.integers(0, 99)):02d}"
            event["currency"] = "EUR"
            purchases.append(event)
        elif kind == "refund":
            if not purchases:
                continue
            event["original"] = draw(st.sampled_from(purchases))["id"]
        elif kind == "redeem":
            event["reward"] = "big"
        account = ACCOUNTS[customer]
        roll = draw(st.integers(0, 29))
        if account is not None and roll < 24:
            event["account"] = account
        elif roll == 29:
            event["account"] = draw(st.sampled_from(["acme", "beta", "delta"]))  # another (or a first) account
        events.append(event)
    return events


@PROPERTY
@given(text=pooled_programs(), events=pooled_histories(), suffix=st.sampled_from([".csv", ".jsonl", ".parquet"]),
       seed=st.integers(0, 2**32), until=st.sampled_from([None, "2027-03-01"]), baseline=st.booleans(),
       workers=st.sampled_from([1, 1, 2]))
def test_a_pooled_program_streamed_by_account_is_the_whole_replay(text: str, events: list[dict[str, Any]],
                                                                  suffix: str, seed: int, until: str | None,
                                                                  baseline: bool, workers: int,
                                                                  tmp_path_factory: Any) -> None:
    history = messy(events, random.Random(seed))

    def simulate(*args: Any, **kwargs: Any) -> Any:
        return streamed_file(*args, workers=workers, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        watch = Watch(patch)
        compare(text, history, tmp_path_factory.mktemp("h"), suffix, until, 1, simulate=simulate,
                baseline_text=text if baseline else "earn 1 point per EUR\n", columns=ACCOUNT_COLUMNS)
    event(f"{watch.shards} shards" if workers == 1 else "2 workers")
    assert watch.streamed  # (accounts never send a history to the whole read: a contact's two accounts join)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                                   HealthCheck.function_scoped_fixture])
@given(text=pooled_programs(), events=pooled_histories(), suffix=st.sampled_from([".csv", ".jsonl", ".parquet"]),
       seed=st.integers(0, 2**32), until=st.sampled_from([None, "2027-03-01"]))
def test_a_pooled_program_streamed_at_length(text: str, events: list[dict[str, Any]], suffix: str, seed: int,
                                             until: str | None, tmp_path_factory: Any) -> None:
    with pytest.MonkeyPatch.context() as patch:
        Watch(patch)
        compare(text, messy(events, random.Random(seed)), tmp_path_factory.mktemp("h"), suffix, until, 1,
                simulate=streamed_file, baseline_text=text, columns=ACCOUNT_COLUMNS)


# ------------------------------------------------------------------ hand-worked


POOLED = "points pooled by account\nreward gift \"Gift\" value 5 EUR\nearn 1 point per EUR\nat 50 points grant gift\n"


@pytest.mark.parametrize("workers", [1, 2])
def test_contacts_are_replayed_with_their_account(tmp_path: Path, watch: Watch, workers: int) -> None:
    # acme: c1 30 + c2 25 = 55 → a gift for 50 points, 5 left. beta: c3 40, then 15 on a row without an
    # account (still beta's: a contact's first event fixed it) = 55 → a gift, 5 left. c4 has no account:
    # 60 → a gift, 10 left. Spent: three gifts of 50 points.
    rows = [("e1", "c1", "acme", "2026-01-05", "30"), ("e2", "c3", "beta", "2026-01-06", "40"),
            ("e3", "c4", "", "2026-01-07", "60"), ("e4", "c2", "acme", "2026-01-08", "25"),
            ("e5", "c3", "", "2026-01-09", "15")]
    path = tmp_path / "h.csv"
    path.write_text("id,type,customer,account,at,amount\n" + "".join(
        f"{i},purchase,{c},{a},{at}T10:00:00Z,{amount}\n" for i, c, a, at, amount in rows), encoding="utf-8")
    result = streamed_file(poletti.compile(POOLED), str(path), workers=workers)
    assert watch.streamed
    summary = result.summary
    assert (summary["events"], summary["rejected"], summary["customers"]) == (5, 0, 4)
    assert summary["points"] == {"earned": 170, "spent": 150, "expired": 0, "reversed": 0, "outstanding": 20}
    assert summary["rewards"] == {"gift": 3}
    # Where the rows went: each account's contacts in one shard, every row of c3 with beta's.
    tz = poletti.compile(POOLED).compiled.tz
    with spill.partition(str(path), tz, 8, by_account=True) as spilled:
        held = {}
        for k in range(spilled.shards):
            columns = spill.load_shard(spilled, k, tz, frozenset())
            for index in range(columns.count):
                held.setdefault(columns.raw(index)["customer"], set()).add(k)
    assert all(len(shards) == 1 for shards in held.values())  # no customer in two shards
    assert held["c1"] == held["c2"] and held["c3"] == spill_shard("beta", 8)
    assert held["c1"] == spill_shard("acme", 8) and held["c4"] == spill_shard("c4", 8)


def spill_shard(key: str, shards: int) -> set[int]:
    import pyarrow as pa

    return {int(spill.text_hash(pa.array([key]))[0][0] % shards)}


def test_a_contact_naming_two_accounts_joins_them(tmp_path: Path, watch: Watch) -> None:
    # examples/b2b_account: Matti (acme) buys once for beta (refused): acme and beta share one key, so
    # Olli (beta) is replayed with acme's contacts. The figures are the README's, worked by hand.
    b2b = ROOT / "examples" / "b2b_account"
    program = poletti.load(b2b / "rules.loyalty")
    result = streamed_file(program, str(b2b / "history.csv"))
    assert watch.streamed
    with spill.partition(str(b2b / "history.csv"), program.compiled.tz, 8, by_account=True) as spilled:
        assert sorted(spilled.rows, reverse=True)[:2] == [8, 0]  # of 8 shards, every row in one
    summary = result.summary
    assert (summary["events"], summary["rejected"], summary["customers"]) == (8, 1, 3)
    assert summary["points"] == {"earned": 1150, "spent": 1000, "expired": 0, "reversed": 200, "outstanding": -50}


@pytest.mark.parametrize("workers", [1, 2])
def test_the_end_is_the_last_accepted_event_of_the_whole_history(tmp_path: Path, watch: Watch, workers: int) -> None:
    # c1 earns 10 on 1 January (expire after 1m: on 1 February); c2 earns 20 on 1 March, the last accepted
    # event, so the replay ends there; c3's row of 1 June is refused (a negative amount). Were the replay
    # taken to 1 June, c2's points would expire on 1 April: they must not. (With workers, every shard is
    # first replayed to 1 June, the latest instant read, then again to 1 March.)
    rules = "earn 1 point per EUR\npoints expire after 1m\n"
    path = tmp_path / "h.csv"
    path.write_text("id,type,customer,at,amount\n"
                    "e1,purchase,c1,2026-01-01T10:00:00Z,10\n"
                    "e2,purchase,c2,2026-03-01T10:00:00Z,20\n"
                    "e3,purchase,c3,2026-06-01T10:00:00Z,-3\n", encoding="utf-8")
    result = streamed_file(poletti.compile(rules), str(path), workers=workers)
    assert watch.streamed
    summary = result.summary
    assert (summary["events"], summary["rejected"], summary["customers"]) == (3, 1, 2)
    assert summary["points"] == {"earned": 30, "spent": 0, "expired": 10, "reversed": 0, "outstanding": 20}
    assert summary["period"]["to"].startswith("2026-03-01T10:00:00")


def test_one_shard_is_held_at_a_time(tmp_path: Path, watch: Watch) -> None:
    path = tmp_path / "h.csv"
    with open(path, "w", newline="", encoding="utf-8") as stream:
        cdnow_history.write_csv(cdnow_history.generate(600, 3), stream)
    program = poletti.compile("earn 1 point per USD\nat 50 points grant gift\ntier gold when spend_12m > 200\n"
                              "currency USD\nreward gift \"Gift\"\n")
    result = streamed_file(program, str(path), keep_standings=False)
    assert watch.streamed and watch.shards >= 10
    assert watch.most_alive == 1  # the latest shard gives the end at once: each shard is let go as it ends
    whole = streamed_file(program, str(path))  # (the same, keeping each customer's figures)
    assert json.dumps(result.summary) == json.dumps(whole.summary)


def test_histories_the_stream_cannot_take_are_replayed_whole(watch: Watch) -> None:
    # A referral joins two customers the shards would part; standard input cannot be read twice.
    salon = ROOT / "examples" / "salon_referral"
    program, path = poletti.load(salon / "rules.loyalty"), str(salon / "history.csv")
    assert streamed.replay_streamed([program], path, until_at=None, effect_at=None) is None
    assert streamed.replay_streamed([program], "-", until_at=None, effect_at=None) is None
    with History(path, program.compiled.tz) as history:
        expected = replay(program, history.in_time_order(), reordered=False)
    assert json.dumps(streamed_file(program, path).summary) == json.dumps(expected.summary)


def test_parquet_with_a_number_for_account_is_replayed_whole(tmp_path: Path, watch: Watch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "h.parquet"
    pq.write_table(pa.table({"id": ["e1", "e2"], "type": ["purchase", "purchase"], "customer": ["c1", "c2"],
                             "account": pa.array([7, 7], pa.int64()),
                             "at": ["2026-01-01T10:00:00Z", "2026-01-02T10:00:00Z"], "amount": ["30", "25"]}), path)
    assert spill.account_links(str(path), None) is None
    result = streamed_file(poletti.compile(POOLED), str(path))
    assert result.summary["points"]["earned"] == 55 and result.summary["rewards"] == {"gift": 1}  # one pool: 7


def test_account_links_join_the_accounts_a_contact_names(tmp_path: Path) -> None:
    # x names a then b, y names b then c: a, b and c are one key; z (d) keeps their own; w names none.
    path = tmp_path / "h.csv"
    write([{"id": f"e{i}", "type": "purchase", "customer": c, "account": a, "at": "2026-01-01T10:00:00Z",
            "amount": "1"} for i, (c, a) in enumerate([("x", "a"), ("x", "b"), ("y", "b"), ("y", "c"),
                                                        ("z", "d"), ("w", None), ("x", "")])],
          path, ACCOUNT_COLUMNS)
    links = spill.account_links(str(path), None)
    import pyarrow as pa

    def h(text: str) -> int:
        return int(spill.text_hash(pa.array([text]))[0][0])

    found = {int(c): int(a) for c, a in zip(links["customer"], links["account"])}
    assert set(found) == {h("x"), h("y"), h("z")}
    assert found[h("x")] == found[h("y")] == min(h("a"), h("b"), h("c"))
    assert found[h("z")] == h("d")
    keys = spill.keys_of(__import__("numpy").array([h("x"), h("w")], dtype="uint64"), links)
    assert keys.tolist() == [found[h("x")], h("w")]
