"""Hardening of simulate (and of run and explain where they read histories).

* A rejected event changes nothing: not the end of the replay either, in every replay.
* One bad row never ends a run: JSON nested too deeply, a cell or a line too long is a rejected row.
* ``run``, ``explain`` and ``simulate`` read a history alike (a CSV ``true`` in a ``bool`` attribute).
* Work and memory do not grow with the calendar span: a row dated 8999 adds a month, not 84,000.

Every expected figure is worked out by hand in the comments.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import poletti
from poletti.cli import cli
from poletti.interpreter.simulate import history as history_module
from poletti.interpreter.simulate import kernels, simulate
from poletti.interpreter.simulate.columnar import simulate_file
from poletti.interpreter.simulate.history import History

HEADER = ["id", "type", "customer", "at", "amount", "original"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_rules(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def summary_of(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def rejected_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------- item 2: a rejected event does not move the end

EXPIRING = "earn 1 point per EUR\npoints expire after 30d\n"
# A purchase of 10 EUR on 2026-01-01 earns 10 points, to expire 30 days later (2026-01-31). The refund dated
# 2030 names an unknown purchase: rejected. The replay ends at the last accepted event, 2026-01-01 00:00 (UTC,
# the default zone), before the expiry: 10 points outstanding, 0 expired. Had the rejected row moved the end
# to 2030, the 10 points would have expired.
PURCHASE = ["p1", "purchase", "c1", "2026-01-01", "10", ""]
SAME_CUSTOMER_REFUND = ["r1", "refund", "c1", "2030-01-01", "5", "nope"]
OTHER_CUSTOMER_REFUND = ["r1", "refund", "c2", "2030-01-01", "5", "nope"]

MODES = [
    pytest.param([], id="per-customer"),
    pytest.param(["--workers", "2"], id="workers"),
    pytest.param(["--sequential"], id="sequential"),
    pytest.param(["--dask", "local", "--workers", "2"], id="dask", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rows", [
    pytest.param([PURCHASE, SAME_CUSTOMER_REFUND], id="same-customer"),
    pytest.param([PURCHASE, OTHER_CUSTOMER_REFUND], id="other-customer"),
    pytest.param([SAME_CUSTOMER_REFUND, PURCHASE], id="rejected-row-first"),
])
def test_a_rejected_row_in_the_future_does_not_move_the_end(tmp_path: Path, mode: list[str],
                                                            rows: list[list[str]]) -> None:
    rules = write_rules(tmp_path / "r.loyalty", EXPIRING)
    history = write_csv(tmp_path / "h.csv", rows)
    rejected = tmp_path / "rejected.csv"
    summary = summary_of(invoke("simulate", rules, history, "--json", "--rejected", rejected, *mode))
    assert summary["events"] == 2
    assert summary["rejected"] == 1
    assert summary["customers"] == 1
    assert summary["points"] == {"earned": 10, "spent": 0, "expired": 0, "reversed": 0, "outstanding": 10}
    assert summary["period"] == {"from": "2026-01-01T00:00:00+00:00", "to": "2026-01-01T00:00:00+00:00"}
    refund = next(row for row in rows if row[0] == "r1")
    listed = rejected_rows(rejected)
    assert [(r["row"], r["event_id"], r["customer"]) for r in listed] == [(str(rows.index(refund) + 1), "r1",
                                                                           refund[2])]


@pytest.mark.parametrize("mode", MODES[:3])
def test_a_rejected_row_does_not_move_the_end_of_the_baseline_either(tmp_path: Path, mode: list[str]) -> None:
    rules = write_rules(tmp_path / "r.loyalty", EXPIRING)
    history = write_csv(tmp_path / "h.csv", [PURCHASE, SAME_CUSTOMER_REFUND])
    summary = summary_of(invoke("simulate", rules, history, "--json", "--baseline", rules, *mode))
    for side in (summary, summary["baseline"]):
        assert side["rejected"] == 1
        assert side["points"] == {"earned": 10, "spent": 0, "expired": 0, "reversed": 0, "outstanding": 10}
    assert summary["delta"]["points"]["outstanding"] == 0


TIERED = "earn 1 point per EUR\ntier gold when spend_30d >= 10 EUR\n"
# The whole-array replay's kind of program: 10 EUR on 2026-01-01 makes c1 gold, for 30 days. The end is
# 2026-01-01 (the refund of c2 dated 2030 is rejected), so c1 is gold at the end. With the end in 2030
# c1's spend_30d would be 0 and the tier gone.


def test_the_whole_array_replay_ends_at_the_last_accepted_event_too(tmp_path: Path) -> None:
    program = poletti.compile(TIERED)
    assert kernels.plan(program.compiled) is not None  # c1's rows are replayed by the numpy kernels
    history = write_csv(tmp_path / "h.csv", [PURCHASE, OTHER_CUSTOMER_REFUND])
    for workers in (1, 2):
        result = simulate_file(program, str(history), workers=workers)
        assert result.summary["rejected"] == 1
        assert result.summary["tiers"] == {"gold": 1, "none": 0}
        assert result.summary["points"]["outstanding"] == 10
        assert result.summary["period"]["to"] == "2026-01-01T00:00:00+00:00"
    with History(str(history), program.compiled.tz) as source:
        sequential = simulate(program, source)
    assert sequential.summary["tiers"] == {"gold": 1, "none": 0}
    assert sequential.summary["period"]["to"] == "2026-01-01T00:00:00+00:00"


# ------------------------------------------------- item 3a: one bad row never ends a run

PLAIN = "earn 1 point per EUR\n"
ITEMS_HEADER = ["id", "type", "customer", "at", "amount", "items"]
DEEP = "[" * 100_000


def bad_items_csv(tmp_path: Path) -> Path:
    # p1 and p3 earn 10 points each (20); p2's items are nested 100,000 deep: rejected, row 2.
    return write_csv(tmp_path / "deep.csv", [
        ["p1", "purchase", "c1", "2026-01-01", "10", ""],
        ["p2", "purchase", "c1", "2026-01-02", "10", DEEP],
        ["p3", "purchase", "c1", "2026-01-03", "10", ""],
    ], ITEMS_HEADER)


def bad_jsonl(tmp_path: Path) -> Path:
    # Lines 1 and 4 earn 10 points each (20); line 2 is nothing but brackets, line 3 an event whose items
    # are nested 100,000 deep: both rejected.
    path = tmp_path / "deep.jsonl"
    lines = [json.dumps({"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-01-01", "amount": "10"}),
             DEEP,
             '{"id": "p2", "type": "purchase", "customer": "c1", "at": "2026-01-02", "amount": "10", "items": '
             + DEEP + "}",
             json.dumps({"id": "p3", "type": "purchase", "customer": "c1", "at": "2026-01-03", "amount": "10"})]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("mode", [[], ["--sequential"]], ids=["per-customer", "sequential"])
@pytest.mark.parametrize("maker, bad_rows", [(bad_items_csv, ["2"]), (bad_jsonl, ["2", "3"])], ids=["csv", "jsonl"])
def test_json_nested_too_deeply_is_a_rejected_row(tmp_path: Path, mode: list[str], maker: Any,
                                                  bad_rows: list[str]) -> None:
    rules = write_rules(tmp_path / "r.loyalty", PLAIN)
    history = maker(tmp_path)
    rejected = tmp_path / "rejected.csv"
    summary = summary_of(invoke("simulate", rules, history, "--json", "--rejected", rejected, *mode))
    assert summary["events"] == 2 + len(bad_rows)
    assert summary["rejected"] == len(bad_rows)
    assert summary["points"]["earned"] == 20
    listed = rejected_rows(rejected)
    assert [r["row"] for r in listed] == bad_rows
    assert all("nested more than 64 levels deep" in r["reason"] for r in listed)


@pytest.mark.parametrize("maker, bad_rows", [(bad_items_csv, 1), (bad_jsonl, 2)], ids=["csv", "jsonl"])
def test_run_and_explain_reject_json_nested_too_deeply_and_go_on(tmp_path: Path, maker: Any, bad_rows: int) -> None:
    rules = write_rules(tmp_path / "r.loyalty", PLAIN)
    history = maker(tmp_path)
    result = invoke("run", rules, history, "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["status"] for line in lines].count("rejected") == bad_rows
    assert [line["points"] for line in lines if line["status"] == "applied"] == [10, 20]
    told = invoke("explain", rules, history, "--customer", "c1")
    assert told.exit_code == 0, told.output
    assert "points           20" in told.stdout


def test_a_cell_longer_than_the_limit_is_a_rejected_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history_module, "CELL_LIMIT", 1000)
    rules = write_rules(tmp_path / "r.loyalty", PLAIN)
    # p2's note cell has 5,000 characters, over the limit of 1,000: rejected. p1 and p3 earn 10 each.
    history = write_csv(tmp_path / "long.csv", [
        ["p1", "purchase", "c1", "2026-01-01", "10", ""],
        ["p2", "purchase", "c1", "2026-01-02", "10", "x" * 5000],
        ["p3", "purchase", "c1", "2026-01-03", "10", ""],
    ], ["id", "type", "customer", "at", "amount", "note"])
    for mode in ([], ["--sequential"]):
        rejected = tmp_path / "rejected.csv"
        summary = summary_of(invoke("simulate", rules, history, "--json", "--rejected", rejected, *mode))
        assert (summary["events"], summary["rejected"], summary["points"]["earned"]) == (3, 1, 20)
        assert [(r["row"], r["reason"]) for r in rejected_rows(rejected)] == \
            [("2", "the cell 'note' is 5,000 characters long: more than 1,000")]


def test_a_cell_past_the_csv_modules_default_limit_is_read(tmp_path: Path) -> None:
    # 200,000 characters: more than the csv module's default 131,072, well within poletti's limit.
    rules = write_rules(tmp_path / "r.loyalty", PLAIN)
    history = write_csv(tmp_path / "big.csv", [["p1", "purchase", "c1", "2026-01-01", "10", "x" * 200_000]],
                        ["id", "type", "customer", "at", "amount", "note"])
    for mode in ([], ["--sequential"]):
        summary = summary_of(invoke("simulate", rules, history, "--json", *mode))
        assert (summary["events"], summary["rejected"], summary["points"]["earned"]) == (1, 0, 10)


def test_a_line_longer_than_the_limit_is_a_rejected_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history_module, "LINE_LIMIT", 300)
    rules = write_rules(tmp_path / "r.loyalty", PLAIN)
    long_event = {"id": "p2", "type": "purchase", "customer": "c1", "at": "2026-01-02", "amount": "10",
                  "note": "x" * 1000}
    jsonl = tmp_path / "long.jsonl"
    jsonl.write_text("\n".join(json.dumps(e) for e in [
        {"id": "p1", "type": "purchase", "customer": "c1", "at": "2026-01-01", "amount": "10"}, long_event,
        {"id": "p3", "type": "purchase", "customer": "c1", "at": "2026-01-03", "amount": "10"}]) + "\n",
        encoding="utf-8")
    table = write_csv(tmp_path / "long.csv", [
        ["p1", "purchase", "c1", "2026-01-01", "10", ""],
        ["p2", "purchase", "c1", "2026-01-02", "10", "x" * 1000],
        ["p3", "purchase", "c1", "2026-01-03", "10", ""],
    ], ["id", "type", "customer", "at", "amount", "note"])
    reasons = {jsonl: "the line is longer than 300 bytes", table: "the row has a line longer than 300 characters"}
    for path, reason in reasons.items():
        with History(str(path), poletti.compile(PLAIN).compiled.tz) as source:
            records = list(source.records())
        assert [(r.row, r.error) for r in records] == [(1, None), (2, reason), (3, None)]
        assert [r.event["id"] for r in records if r.event is not None] == ["p1", "p3"]
        summary = summary_of(invoke("simulate", rules, path, "--json", "--sequential"))
        assert (summary["events"], summary["rejected"], summary["points"]["earned"]) == (3, 1, 20)


def test_a_cell_past_the_csv_modules_limit_rejects_its_row_only(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # A quoted cell over ten lines of 100 characters: each line is within LINE_LIMIT (200), the cell is past
    # csv's field limit (raised to 200 by the reader). The row is rejected with csv's reason; reading goes on
    # at the next line (inside the cell: those lines are rows of their own, for the engine to reject), and p3
    # is read as usual.
    monkeypatch.setattr(history_module, "LINE_LIMIT", 200)
    path = tmp_path / "quoted.csv"
    cell = "\n".join(["x" * 100] * 10)
    write_csv(path, [["p1", "purchase", "c1", "2026-01-01", "10", ""],
                     ["p2", "purchase", "c1", "2026-01-02", "10", cell],
                     ["p3", "purchase", "c1", "2026-01-03", "10", ""]],
              ["id", "type", "customer", "at", "amount", "note"])
    before = csv.field_size_limit()
    csv.field_size_limit(100)
    try:
        with History(str(path), poletti.compile(PLAIN).compiled.tz) as source:
            records = list(source.records())
    finally:
        csv.field_size_limit(before)
    assert records[0].event is not None and records[0].event["id"] == "p1"
    assert records[1].row == 2 and records[1].event is None
    assert "field larger than field limit (200)" in (records[1].error or "")
    assert records[-1].event is not None and records[-1].event["id"] == "p3"


# ------------------------------------------------- item 3b: run, explain and simulate read alike

MEMBERS = "attribute member: bool\nearn 1 point per EUR\nearn 5 points per purchase if event.member\n"
# p1 (member true) earns 10 + 5 = 15; p2 (member FALSE) earns 10: 25 points in all, nothing rejected.


def test_a_csv_true_in_a_bool_attribute_reads_alike_in_run_explain_and_simulate(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "m.loyalty", MEMBERS)
    history = write_csv(tmp_path / "m.csv", [["p1", "purchase", "c1", "2026-01-01", "10", "true"],
                                            ["p2", "purchase", "c1", "2026-01-02", "10", "FALSE"]],
                        ["id", "type", "customer", "at", "amount", "member"])
    ran = invoke("run", rules, history, "--json")
    assert ran.exit_code == 0, ran.output
    outcomes = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [(o["status"], o["earned"], o["points"]) for o in outcomes] == [("applied", 15, 15), ("applied", 10, 25)]
    told = invoke("explain", rules, history, "--customer", "c1")
    assert told.exit_code == 0, told.output
    assert "(2 applied, 0 duplicate, 0 rejected)" in told.stdout
    assert "points           25" in told.stdout
    for mode in ([], ["--sequential"]):
        summary = summary_of(invoke("simulate", rules, history, "--json", *mode))
        assert (summary["rejected"], summary["points"]["earned"], summary["points"]["outstanding"]) == (0, 25, 25)


# ------------------------------------------------- item 4a: bounded work across a gap of years

FAR = [["p1", "purchase", "c1", "2026-01-10", "10", ""], ["p2", "purchase", "c1", "8999-06-10", "10", ""]]
# EXPIRING over FAR: p1's 10 points expire on 2026-02-09, p2's on 8999-07-10, after the end (8999-06-10).
# Months with activity: 2026-01 (earned 10), 2026-02 (expired 10), 8999-06 (earned 10). Earned 20, expired 10,
# outstanding 10 — and three monthly rows, not the 83,890 months from 2026-01 to 8999-06.
FAR_MONTHS = [date(2026, 1, 1), date(2026, 2, 1), date(8999, 6, 1)]


def far_results(tmp_path: Path, text: str) -> dict[str, Any]:
    program = poletti.compile(text)
    history = write_csv(tmp_path / "far.csv", FAR)
    with History(str(history), program.compiled.tz) as source:
        sequential = simulate(program, source)
    return {"per-customer": simulate_file(program, str(history)),
            "workers": simulate_file(program, str(history), workers=2),
            "baseline": simulate_file(program, str(history), baseline=program),
            "sequential": sequential}


def test_a_row_in_8999_adds_one_month_not_seven_thousand_years(tmp_path: Path) -> None:
    for name, result in far_results(tmp_path, EXPIRING).items():
        summary = result.summary
        assert summary["points"] == {"earned": 20, "spent": 0, "expired": 10, "reversed": 0, "outstanding": 10}, name
        months = result.new.months
        assert [m.start for m in months] == FAR_MONTHS, name
        assert [(m.earned, m.expired, m.outstanding) for m in months] == [(10, 0, 10), (0, 10, 0), (10, 0, 10)], name
        assert [(m.start, m.purchases) for m in result.activity.months] == list(zip(FAR_MONTHS, [1, 0, 1])), name
        if result.baseline is not None:
            assert [m.start for m in result.baseline.months] == FAR_MONTHS


def test_the_whole_array_replay_visits_only_months_with_activity(tmp_path: Path) -> None:
    # TIERED over FAR: p1 makes c1 gold until 2026-02-09 (30 days), p2 again from 8999-06-10.
    # Tiers at each month's end: 2026-01 gold; 2026-02 none; 8999-06 gold.
    assert kernels.plan(poletti.compile(TIERED).compiled) is not None
    for name, result in far_results(tmp_path, TIERED).items():
        months = result.new.months
        assert [m.start for m in months] == FAR_MONTHS, name
        assert [m.tiers for m in months] == [{"gold": 1, "none": 0}, {"gold": 0, "none": 1},
                                             {"gold": 1, "none": 0}], name
        assert [m.outstanding for m in months] == [10, 10, 20], name


def test_clock_steps_do_not_grow_with_the_calendar_span(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from poletti.interpreter.simulate import replay as replay_module
    from poletti.interpreter.simulate import sequential as sequential_module

    steps = {"lane": 0, "engine": 0}
    lane_step, run_advance = replay_module.Lane.clock_step, sequential_module.ProgramRun.advance

    def counted_lane(self: Any, *args: Any) -> None:
        steps["lane"] += 1
        lane_step(self, *args)

    def counted_run(self: Any, *args: Any) -> None:
        steps["engine"] += 1
        run_advance(self, *args)

    monkeypatch.setattr(replay_module.Lane, "clock_step", counted_lane)
    monkeypatch.setattr(sequential_module.ProgramRun, "advance", counted_run)
    far_results(tmp_path, EXPIRING)
    # Month ends with a change due (2026-01, where p1's expiry is not yet due, is passed over; 2026-02 holds it),
    # and the end: a handful per replay, where stepping every month would be 83,890.
    assert 0 < steps["lane"] <= 20
    assert 0 < steps["engine"] <= 10


@pytest.mark.parametrize("second, shown", [
    # Quiet February and March 2026 (2 months): shown as zeros, 2026-01 to 2026-04.
    ("2026-04-10", [date(2026, m, 1) for m in range(1, 5)]),
    # Quiet 2026-02 to 2027-01 (12 months): shown, 14 months in all.
    ("2027-02-10", [date(2026, m, 1) for m in range(1, 13)] + [date(2027, 1, 1), date(2027, 2, 1)]),
    # Quiet 2026-02 to 2027-02 (13 months, more than a year): left out.
    ("2027-03-10", [date(2026, 1, 1), date(2027, 3, 1)]),
])
def test_quiet_stretches_of_up_to_a_year_are_shown_longer_ones_left_out(tmp_path: Path, second: str,
                                                                        shown: list[date]) -> None:
    program = poletti.compile(PLAIN)
    history = write_csv(tmp_path / "h.csv", [["p1", "purchase", "c1", "2026-01-10", "10", ""],
                                             ["p2", "purchase", "c1", second, "10", ""]])
    with History(str(history), program.compiled.tz) as source:
        sequential = simulate(program, source)
    for result in (simulate_file(program, str(history)), sequential):
        assert [m.start for m in result.new.months] == shown
        assert [m.start for m in result.activity.months] == shown
        assert [m.outstanding for m in result.new.months] == [10] * (len(shown) - 1) + [20]


def test_the_report_of_a_history_with_a_gap_of_years(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "r.loyalty", EXPIRING)
    history = write_csv(tmp_path / "far.csv", FAR)
    report = tmp_path / "out.html"
    result = invoke("simulate", rules, history, "--report", report, "--baseline", rules)
    assert result.exit_code == 0, result.output
    page = report.read_text(encoding="utf-8")
    # The charts label the three months; the monthly table has one row per month shown.
    assert "8999-06" in page and "2026-02" in page
    table = page[page.index("class='figures months'"):]
    table = table[:table.index("</table>")]
    assert table.count("<tr") == 1 + len(FAR_MONTHS)


def test_a_history_of_refused_rows_is_tried_for_its_end_on_one_trial_replay(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Every row refused (a negative amount): the end of the replay is looked for customer by customer,
    # latest first, and none gives one. Each try used to make a replay of its own (the programs' readers and
    # steps: milliseconds each, and cattrs' code generated again): 68 s for 20,000 customers.
    from poletti.interpreter.simulate import replay as replay_module

    rows = [[f"p{i}", "purchase", f"c{i}", f"2026-01-{1 + i % 28:02d}", "-3", ""] for i in range(300)]
    path = write_csv(tmp_path / "h.csv", rows)
    made = []
    original_init = replay_module.ShardReplay.__init__

    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        made.append(1)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(replay_module.ShardReplay, "__init__", counted)
    result = simulate_file(poletti.compile(PLAIN), str(path))
    assert (result.summary["events"], result.summary["rejected"], result.summary["customers"]) == (300, 300, 0)
    assert len(made) <= 4  # (the probe, its trial, the replay: not one a customer)
