"""What tiers and segments are defined through: dependency cycles (E127) and the order of step 5.

Only segments and tiers can be defined through each other, so this is the
part of the rule graph (engine/graph.py, which ``poletti graph`` prints) that
``check`` and the compiler need, kept in plain dicts. Its nodes have the
rule graph's names: ``segment:NAME``, ``rule:N`` (a tier rule, N its index
among the rules), ``tier:NAME`` and ``quantity:tier``. Edges point from what
is read to who reads it; a tier rule points to its tier and the tier to
``quantity:tier``, so ``segment a when tier >= gold`` / ``tier gold when a``
is the circle ``tier → segment a → rule 'tier gold when a' → tier gold → tier``.

Everything here is iterative and linear in the size of the conditions (plus
a sort of the segments): a chain of thousands of segments, each reading the
one before, costs what its edges cost, and deep conditions cannot exhaust
Python's recursion limit.

``find_cycles(checked, source) -> [Diagnostic]``: one E127 per circle.
``status_order(checked) -> (before, after)``: the segments to evaluate
before the tiers and those that read ``tier`` and come after them.
"""

from __future__ import annotations

import heapq
from typing import Any, Iterator, Mapping

from poletti.dsl import ast
from poletti.dsl.diagnostics import Diagnostic, make
from poletti.dsl.parser import iter_nodes
from poletti.dsl.program import CheckedProgram

TIER = "quantity:tier"
# The most E127 diagnostics one file gets (each circle is reported once anyway),
# and the most steps of a circle its message names.
MAX_CYCLES = 10
MAX_SHOWN_STEPS = 12

Graph = Mapping[str, Mapping[str, None]]  # node → the nodes that read it, in file order


def source_text(lines: list[str] | None, node: object) -> str:
    """How a node reads in the rule file (its first line and " …" when it spans more), for labels and explain."""
    span = getattr(node, "span")
    if lines and 0 < span.line <= len(lines) and span.line == span.end_line:
        return lines[span.line - 1][span.column - 1:span.end_column - 1].strip()
    if lines and 0 < span.line <= len(lines):
        return lines[span.line - 1][span.column - 1:].strip() + " …"
    return type(node).__name__


def _reads(checked: CheckedProgram, condition: Any) -> Iterator[str]:
    """The segments and ``tier`` a condition reads, as nodes, in order of appearance."""
    segments = checked.segments
    builtins = checked.builtins
    for sub in iter_nodes(condition):
        if type(sub) is ast.NameRef:
            name = sub.name
            if name in segments:
                yield f"segment:{name}"
            elif name in builtins and builtins[name].kind == "tier":
                yield TIER


def dependency_graph(checked: CheckedProgram) -> dict[str, dict[str, None]]:
    """Checked program → what each segment, tier rule and tier is read by (see the module docstring)."""
    graph: dict[str, dict[str, None]] = {}

    def edge(source: str, target: str) -> None:
        graph.setdefault(source, {})[target] = None
        graph.setdefault(target, {})

    for name, decl in checked.segments.items():
        graph.setdefault(f"segment:{name}", {})
    for name, decl in checked.segments.items():
        for source in _reads(checked, decl.condition):
            edge(source, f"segment:{name}")
    for index, rule in enumerate(checked.rules):
        if isinstance(rule, ast.TierRule):
            node = f"rule:{index}"
            edge(node, f"tier:{rule.name.name}")
            edge(f"tier:{rule.name.name}", TIER)
            for source in _reads(checked, rule.condition):
                edge(source, node)
    return graph


# ------------------------------------------------------------------ cycles


def find_cycles(checked: CheckedProgram, source: str | None = None) -> list[Diagnostic]:
    """One E127 per circle of definitions, naming its path (rules quoted as written in ``source``).

    Each strongly connected part of the graph is one circle to break; its
    message follows a shortest circle through its first node (in the order
    of the node names), which is the circle itself when there is only one.
    """
    graph = dependency_graph(checked)
    cycles = []
    for component in _strong_components(graph):
        start = min(component)
        if len(component) == 1 and start not in graph[start]:
            continue  # a node on its own, not a circle
        cycles.append(_shortest_cycle(graph, start, component))
    cycles.sort(key=lambda c: (len(c), c))
    lines = source.splitlines() if source is not None else None
    rules = checked.rules  # built on each use: once here
    problems = []
    for cycle in cycles[:MAX_CYCLES]:
        steps = [_describe(rules, lines, node) for node in cycle + [cycle[0]]]
        if len(steps) > MAX_SHOWN_STEPS:  # a circle through hundreds of segments: its ends say enough
            hidden = len(steps) - MAX_SHOWN_STEPS + 1
            steps = steps[:MAX_SHOWN_STEPS - 3] + [f"… ({hidden:,} more) …"] + steps[-2:]
        path = " → ".join(steps)
        problems.append(make("E127", f"these definitions depend on each other in a circle: {path}",
                             _span_of(checked, rules, cycle),
                             ["a tier or segment cannot be defined through itself; break the circle"]))
    return problems


def _strong_components(graph: Graph) -> list[set[str]]:
    """Tarjan's strongly connected components, with an explicit stack instead of recursion."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(graph[successor])))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def _shortest_cycle(graph: Graph, start: str, component: set[str]) -> list[str]:
    """A shortest circle from ``start`` back to it inside ``component`` (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in graph[node]:
                if successor == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1]
                if successor in component and successor not in previous:
                    previous[successor] = node
                    following.append(successor)
        frontier = following
    raise AssertionError(f"{start} is in a strongly connected component without a circle")


def _describe(rules: tuple[ast.Statement, ...], lines: list[str] | None, node: str) -> str:
    kind, _, name = node.partition(":")
    if kind == "rule":
        return f"rule '{source_text(lines, rules[int(name)])}'"
    return name if kind == "quantity" else f"{kind} {name}"


def _span_of(checked: CheckedProgram, rules: tuple[ast.Statement, ...], nodes: list[str]) -> ast.Span:
    for node in nodes:
        kind, _, name = node.partition(":")
        if kind == "segment" and name in checked.segments:
            return checked.segments[name].name.span
        if kind == "tier":
            for tier in checked.tiers:
                if tier.name == name:
                    return tier.rule.name.span
        if kind == "rule":
            return rules[int(name)].span
    return ast.NO_SPAN


# ------------------------------------------------------------ status order


def status_order(checked: CheckedProgram) -> tuple[list[str], list[str]]:
    """Step 5's order: the segments to evaluate before the tiers, and those to evaluate after them.

    A segment that reads ``tier`` (directly or through other segments) comes
    after the tiers; every other segment before them, so a tier that reads a
    segment sees its new value in the same step. Within each list a segment
    comes after the segments it reads, in file order otherwise. The program
    has no circles (``find_cycles`` found none).
    """
    graph = dependency_graph(checked)
    position = {f"segment:{name}": i for i, name in enumerate(checked.segments)}
    last = len(position)
    waiting = dict.fromkeys(graph, 0)
    for readers in graph.values():
        for reader in readers:
            waiting[reader] += 1
    # Kahn's sort, always taking the ready segment declared first; the other
    # nodes (tier rules, tiers, `tier`) only when no segment is ready.
    ready = [(position.get(node, last), node) for node, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[str] = []
    while ready:
        _, node = heapq.heappop(ready)
        if node in position:
            ordered.append(node)
        for reader in graph[node]:
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, (position.get(reader, last), reader))
    if len(ordered) != len(position):
        raise ValueError("the segments and tiers depend on each other in a circle (E127)")
    reads_tier = _reached_from(graph, TIER)
    names = [node.split(":", 1)[1] for node in ordered]
    before = [name for name in names if f"segment:{name}" not in reads_tier]
    after = [name for name in names if f"segment:{name}" in reads_tier]
    return before, after


def _reached_from(graph: Graph, start: str) -> set[str]:
    """Every node that reads ``start``, directly or through others."""
    if start not in graph:
        return set()
    seen: set[str] = set()
    pending = [start]
    while pending:
        for reader in graph[pending.pop()]:
            if reader not in seen:
                seen.add(reader)
                pending.append(reader)
    return seen
