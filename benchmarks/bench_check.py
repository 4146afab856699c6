"""How long ``poletti check`` and ``poletti.compile`` take: start-up, large files, hostile files.

    .venv/bin/python benchmarks/bench_check.py [--repeat N] [--only NAME[,NAME…]] [--write DIR]
                                                [--timeout SECONDS] [--list]

An editor runs ``poletti check`` on every keystroke, so what counts is the
whole process: interpreter start-up, imports, loading the grammar, parsing,
checking, printing. The script writes each case's rule file (into a
temporary directory, or into ``--write DIR`` to keep them), then times fresh
processes, ``--repeat`` runs each (default 5), and prints the median wall
time, the median above bare ``python -c pass``, what ``check`` answered (exit
status and the first diagnostic code) and whether the process imported any of
the heavy modules (matplotlib, pyarrow, numpy, networkx, dask).

Rows:

* ``python -c pass`` and ``import poletti``: the floor;
* ``check <case>``: ``poletti check FILE`` for each case below;
* ``compile <case>``: ``python -c "import poletti; poletti.load(FILE)"``
  (check and compile) for the cases that compile;
* ``graph <case>``: ``poletti graph FILE`` (compile, then the rule graph)
  for the cases in ``GRAPHED``.

The first ``check`` after installing poletti (or after the grammar changed)
builds the parser tables and keeps them in the user's cache directory
(dsl/usercache.py); the script reports that first run separately, with a
fresh cache directory, and then times the warm runs that every later check
sees.

Cases (see ``CASES``): a 20-line café program; 5,000 varied rules; a chain
of 500 segments, each reading the one before; 10,000 tiers (every pair a
question for the unreachable-tier check); files past the limits (20,000
tiers, 100,000 rules, a 1 MB condition), which must be refused at once with
P008; and hostile files within the limits: 10,000 unknown names among
10,000 declared ones, 10,000 ``at`` rules, 10,000 unclosed parentheses,
10,000 syntax errors, a dense web of segments with circles, a megabyte line,
150 ``and``s in a row (refused: nested too deeply, P001), one comparison in
10,000 brackets.
Nothing here is asserted: the figures go in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

HEAVY = ("matplotlib", "pyarrow", "numpy", "networkx", "dask")


# ------------------------------------------------------------------ the cases


def small() -> str:
    return """# A café's program: twenty lines, what an editor checks on every keystroke.
program "Café Aroma"
currency EUR
timezone "Europe/Helsinki"

reward free_drink "Free drink" value 3.50 EUR costs 50 points
reward free_coffee "Free coffee" value 2.80 EUR
reward birthday_cake "Birthday cake" value 4.00 EUR

earn 1 point per EUR
earn 1 point per EUR on category "beans"
at 50 points grant free_drink
every 10 purchases on category "coffee" grant free_coffee

segment regulars when purchases_30d >= 4 and days_since_last_purchase < 10
tier silver when spend_12m > 400
tier gold when spend_12m > 800 keep 3m
earn x1.5 if tier >= gold
on birthday grant birthday_cake
points expire after 12m
"""


def many_rules(n: int) -> str:
    """``n`` statements of every kind, with conditions, options, segments and metrics."""
    lines = ['program "Many rules"', "currency EUR"]
    lines += [f'reward r{k} "Reward {k}" value {k % 7 + 1}.50 EUR costs {50 + k} points' for k in range(50)]
    lines += ["metric reviews_90d = count of review over 90d", "earn 1 point per EUR"]
    i = 0
    while len(lines) < n - 2:
        k = i % 8
        if k == 0:
            lines.append(f'earn {i % 5 + 1} points per EUR on category "c{i}" if spend_30d > {i % 300} '
                         f"limit 100 points per day")
        elif k == 1:
            lines.append(f'every {i % 9 + 2} purchases on sku "s{i}" grant r{i % 50}')
        elif k == 2:
            lines.append(f"on review grant {i % 90 + 1} points once per 30d")
        elif k == 3:
            lines.append(f"when visits_30d >= {i % 20 + 1} and reviews_90d > {i % 4} grant r{i % 50} once per 90d")
        elif k == 4:
            lines.append(f"segment seg{i} when purchases_30d >= {i % 12 + 1} "
                         f"and days_since_last_purchase < {i % 40 + 5}")
        elif k == 5:
            lines.append(f"earn 2 points per purchase if seg{i - 1} during 2026-01-01..2026-12-31")
        elif k == 6:
            lines.append(f"at {i % 400 + 60} points grant r{i % 50} limit 2 times per month")
        else:
            lines.append(f"earn x1.{i % 9 + 1} if spend_12m > {i % 1000 + 100} during 2026-06-01..2026-08-31")
        i += 1
    lines += ["tier silver when spend_12m > 400", "tier gold when spend_12m > 800 keep 3m"]
    return "\n".join(lines) + "\n"


def segment_chain(n: int) -> str:
    lines = ['program "Chain"', "earn 1 point per EUR", "segment s0 when spend_12m > 10"]
    lines += [f"segment s{i} when s{i - 1} and purchases_30d > {i % 7}" for i in range(1, n)]
    lines += [f"tier gold when s{n - 1}", "segment after_gold when tier >= gold", "earn x2 if after_gold"]
    return "\n".join(lines) + "\n"


def tiers(n: int) -> str:
    # Ascending thresholds: no tier implies a later one, so the unreachable-tier
    # check (E128) has to ask about every pair.
    lines = ['program "Tiers"', "earn 1 point per EUR"]
    lines += [f"tier t{i} when spend_12m > {i * 10}" for i in range(n)]
    return "\n".join(lines) + "\n"


def big_condition(size: int) -> str:
    terms = []
    length = 0
    i = 0
    while length < size:
        term = f"spend_12m > {i}"
        terms.append(term)
        length += len(term) + 5
        i += 1
    return 'program "Big"\nearn 1 point per EUR\nsegment big when ' + " and ".join(terms) + "\n"


def unknown_names(n: int) -> str:
    # Every condition names something undeclared, among n declared names: did-you-mean must stay bounded.
    lines = [f"segment seg_{i} when purchases_30d > {i % 9}" for i in range(n // 2)]
    lines += [f"earn 1 point per EUR if seg_{i}x" for i in range(n // 2)]
    return "\n".join(lines) + "\n"


def at_rules(n: int) -> str:
    # Descending thresholds: no rule hides a later one (W202 compares each with the ones before).
    return "reward r \"R\" value 1 EUR\nearn 1 point per EUR\n" + "".join(
        f"at {n + 10 - i} points grant r\n" for i in range(n - 2))


def unclosed_parens(n: int) -> str:
    return "".join(f"earn 1 point per EUR if (spend_12m > {i}\n" for i in range(n))


def syntax_errors(n: int) -> str:
    return "".join(f"tier t{i} when spend_12m >> {i}\n" for i in range(n))


def segment_web(n: int) -> str:
    # Every segment reads the next five (wrapping round): one big circle with very many circles inside it.
    return "".join(
        f"segment s{i} when " + " or ".join(f"s{(i + k) % n}" for k in range(1, 6)) + "\n" for i in range(n))


def long_line(n: int) -> str:
    # Statements side by side on one line, each with an error: every diagnostic quotes a megabyte line.
    return "; ".join(f"earn 1 point per EUR if unknown_{i} > 1" for i in range(n)) + "\n"


def deep(n: int) -> str:
    return "earn 1 point per EUR if " + "not " * n + "true\nearn 2 points per visit\n"


def long_and(n: int) -> str:
    # Not nested to the eye, but `a and b and c` is a tree: n `and`s are n levels (P001 past MAX_NESTING).
    return "earn 1 point per EUR\nsegment big when " + " and ".join(["spend_30d > 1"] * n) + "\n"


def brackets(n: int) -> str:
    return "earn 1 point per EUR\nsegment big when " + "(" * n + "spend_30d > 1" + ")" * n + "\n"


# name → (what it is, how to make it, whether it compiles)
CASES: dict[str, tuple[str, Callable[[], str], bool]] = {
    "small20": ("the 20-line café program", small, True),
    "rules5000": ("5,000 varied rules (earn, every, on, when, at, segments)", lambda: many_rules(5000), True),
    "chain500": ("500 segments, each reading the one before", lambda: segment_chain(500), True),
    "tiers9990": ("9,990 tiers, ascending (E128 asks about every pair)", lambda: tiers(9990), True),
    "tiers20000": ("20,000 tiers: past the 10,000-statement limit", lambda: tiers(20_000), False),
    "rules100000": ("100,000 rules: past the limit", lambda: many_rules(100_000), False),
    "condition1mb": ("one condition of 1 MB: past the statement limit", lambda: big_condition(1_000_000), False),
    "unknown10000": ("5,000 unknown names among 5,000 declared ones", lambda: unknown_names(10_000), False),
    "at10000": ("10,000 at rules, none hiding another", lambda: at_rules(10_000), True),
    "parens10000": ("10,000 lines, each with a '(' never closed", lambda: unclosed_parens(10_000), False),
    "syntax10000": ("10,000 syntax errors", lambda: syntax_errors(10_000), False),
    "web2000": ("2,000 segments each reading five others (circles)", lambda: segment_web(2000), False),
    "longline": ("9,000 wrong statements on one 430 kB line", lambda: long_line(9000), False),
    "deep3000": ("a condition nested 3,000 deep", lambda: deep(3000), False),
    "and150": ("150 'and's in a row: past the nesting limit", lambda: long_and(150), False),
    "brackets10000": ("one comparison inside 10,000 brackets", lambda: brackets(10_000), True),
}

# Cases whose rule graph (``poletti graph``, built with networkx on first use) is timed too.
GRAPHED = ("chain500", "tiers9990")


# ------------------------------------------------------------------ timing


def run(argv: list[str], env: dict[str, str], timeout: float) -> tuple[float, int | None, str]:
    """Wall time, exit status (None: killed at the timeout) and output of one process."""
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, None, ""
    return time.perf_counter() - start, done.returncode, done.stdout + done.stderr


def median_run(argv: list[str], env: dict[str, str], repeat: int, timeout: float) -> tuple[float, int | None, str]:
    times, status, output = [], None, ""
    for _ in range(repeat):
        elapsed, status, output = run(argv, env, timeout)
        times.append(elapsed)
        if status is None:
            break
    return statistics.median(times), status, output


def first_code(output: str) -> str:
    for word in output.split():
        if len(word) == 4 and word[0] in "PEW" and word[1:].isdigit():
            return word
    return "-"


def heavy_modules(python: str, argv: list[str], env: dict[str, str]) -> str:
    """The heavy modules ``poletti <argv>`` imports ('' when none)."""
    code = ("import sys\n"
            "from poletti.cli import cli\n"
            "try:\n"
            f"    cli.main(args={argv!r}, prog_name='poletti', standalone_mode=False)\n"
            "except BaseException:\n"
            "    pass\n"
            f"print('HEAVY:' + ','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))")
    done = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    for line in done.stdout.splitlines():
        if line.startswith("HEAVY:"):
            return line[len("HEAVY:"):] or "none"
    return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command; the median is shown")
    parser.add_argument("--only", default="", help="comma-separated case names (see --list)")
    parser.add_argument("--write", metavar="DIR", help="write the cases' rule files here and keep them")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a run counts as a hang")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (what, _, _) in CASES.items():
            print(f"{name:14} {what}")
        return 0
    names = [n for n in args.only.split(",") if n] or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)} (see --list)")

    python = sys.executable
    poletti_cmd = [python, "-c", "from poletti.cli import main; main()"]
    folder = args.write or tempfile.mkdtemp(prefix="bench_check_")
    os.makedirs(folder, exist_ok=True)
    cache = tempfile.mkdtemp(prefix="bench_check_cache_")
    env = dict(os.environ, POLETTI_CACHE_DIR=cache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode; so should we
    try:
        paths = {}
        for name in names:
            path = os.path.join(folder, f"{name}.loyalty")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(CASES[name][1]())
            paths[name] = path
        # Bytecode written, nothing timed yet.
        run([python, "-c", "import poletti.dsl.frontend, poletti.engine.program, poletti.cli"], env, args.timeout)

        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s); median of {args.repeat} runs each; "
              f"files in {folder}")
        cold, _, _ = run([*poletti_cmd, "check", paths.get("small20") or next(iter(paths.values()))], env,
                         args.timeout)
        bare, _, _ = median_run([python, "-c", "pass"], env, args.repeat, args.timeout)
        rows = [("python -c pass", bare, 0, "", "")]
        imported, _, _ = median_run([python, "-c", "import poletti"], env, args.repeat, args.timeout)
        rows.append(("import poletti", imported, 0, "", ""))
        for name in names:
            elapsed, status, output = median_run([*poletti_cmd, "check", paths[name]], env, args.repeat,
                                                 args.timeout)
            heavy = heavy_modules(python, ["check", paths[name]], env) if name == "small20" else ""
            rows.append((f"check {name}", elapsed, status, first_code(output), heavy))
        for name in names:
            if CASES[name][2]:
                elapsed, status, output = median_run(
                    [python, "-c", f"import poletti; poletti.load({paths[name]!r})"], env, args.repeat, args.timeout)
                rows.append((f"compile {name}", elapsed, status, first_code(output), ""))
        for name in names:
            if name in GRAPHED:
                elapsed, status, output = median_run([*poletti_cmd, "graph", paths[name]], env, args.repeat,
                                                     args.timeout)
                rows.append((f"graph {name}", elapsed, status, first_code(output), ""))

        print(f"first check after a grammar change (builds the parser tables): {cold:.2f} s")
        print(f"{'command':24} {'median s':>9} {'- bare s':>9} {'exit':>5} {'first':>6}  heavy modules imported")
        for label, elapsed, status, code, heavy in rows:
            shown = "hang" if status is None else str(status)
            print(f"{label:24} {elapsed:9.3f} {elapsed - bare:9.3f} {shown:>5} {code:>6}  {heavy}")
        for name in names:
            print(f"  {name}: {CASES[name][0]}")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if not args.write:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
