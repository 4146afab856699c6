"""The rule graph: what each rule reads and writes, as a networkx DiGraph.

Nodes are the processing steps (``step:1`` … ``step:6``), the quantities
rules read (``quantity:spend_12m``, ``metric:…``, ``segment:…``,
``quantity:tier``), the rules (``rule:N``, N its index among the rules),
tiers and rewards. Edges point from what is read to who reads it
(``reads``), from a step to the rules it runs (``runs``), from a rule to
what it produces (``sets``/``grants``). Iteration order is deterministic:
nodes and edges are added in file order.

The graph is for people and tools (``poletti graph``, ``Program.graph``) and
is built only when asked for: networkx is imported then, never by ``check``
or ``compile``. What those need of it, the circles among ``reads``/``sets``
edges (E127) and the order of step 5, dsl/dependencies.py works out with
plain dicts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

from poletti.dsl import ast
from poletti.dsl.parser import iter_nodes
from poletti.dsl.program import CheckedProgram

if TYPE_CHECKING:
    import networkx as nx

STEPS = (
    (1, "clock: time-driven changes"),
    (2, "facts: record the event"),
    (3, "earn"),
    (4, "convert: at-rules, then stamp cards"),
    (5, "status: tiers and segments"),
    (6, "triggers: on and when rules"),
)


def _rule_step(rule: ast.Statement) -> int:
    if isinstance(rule, ast.EarnRule):
        return 3
    if isinstance(rule, (ast.ConvertRule, ast.StampRule)):
        return 4
    if isinstance(rule, ast.TierRule):
        return 5
    if isinstance(rule, (ast.OnRule, ast.WhenRule, ast.ReferralRule)):
        return 6
    return 1  # expiry and pending release are applied by the clock


def _reads(checked: CheckedProgram, node: object, tier_names: frozenset[str]) -> Iterator[str]:
    """Graph nodes of the quantities an AST subtree reads, in order of appearance.

    ``tier_names`` is worked out once per graph by the caller: made here, per
    subtree, it cost a set of every tier for every rule (quadratic in the tiers).
    """
    for sub in iter_nodes(node):
        if isinstance(sub, ast.NameRef):
            name = sub.name
            if name in checked.segments:
                yield f"segment:{name}"
            elif name in checked.metrics:
                yield f"metric:{name}"
            elif name in checked.builtins:
                yield "quantity:tier" if checked.builtins[name].kind == "tier" else f"quantity:{name}"
            elif name in tier_names:
                continue  # a tier name is a constant rank
        elif isinstance(sub, ast.EventAttr):
            yield f"event:{sub.name}"


def build_graph(checked: CheckedProgram, text_of: Callable[[object], str]) -> nx.DiGraph:
    """Checked program → rule graph (see module docstring)."""
    import networkx as nx

    graph = nx.DiGraph()
    tier_names = frozenset(t.name for t in checked.tiers) | {"none"}
    for number, label in STEPS:
        graph.add_node(f"step:{number}", kind="step", label=f"step {number}: {label}", layer=number)
    for (a, _), (b, _) in zip(STEPS, STEPS[1:]):
        graph.add_edge(f"step:{a}", f"step:{b}", kind="then")

    def add_reads(target: str, node: object, layer: int) -> None:
        for source in _reads(checked, node, tier_names):
            if source not in graph:
                graph.add_node(source, kind=source.split(":")[0], label=source.split(":", 1)[1], layer=0)
            graph.add_edge(source, target, kind="reads")

    for name, metric in checked.metrics.items():
        graph.add_node(f"metric:{name}", kind="metric", label=name, layer=2, line=metric.decl.span.line)
        graph.add_edge("step:2", f"metric:{name}", kind="runs")  # step 2 records what metrics aggregate
    for name, decl in checked.segments.items():
        graph.add_node(f"segment:{name}", kind="segment", label=name, layer=5, line=decl.span.line)
    for name, decl in checked.segments.items():
        add_reads(f"segment:{name}", decl.condition, 5)
        graph.add_edge("step:5", f"segment:{name}", kind="runs")

    for index, rule in enumerate(checked.rules):
        node = f"rule:{index}"
        step = _rule_step(rule)
        graph.add_node(node, kind="rule", label=text_of(rule), layer=step, line=rule.span.line)
        graph.add_edge(f"step:{step}", node, kind="runs")
        if isinstance(rule, ast.TierRule):
            graph.add_node(f"tier:{rule.name.name}", kind="tier", label=rule.name.name, layer=5)
            graph.add_edge(node, f"tier:{rule.name.name}", kind="sets")
            if "quantity:tier" not in graph:
                graph.add_node("quantity:tier", kind="quantity", label="tier", layer=0)
            graph.add_edge(f"tier:{rule.name.name}", "quantity:tier", kind="sets")
        for field in ("condition", "options", "amount"):
            value = getattr(rule, field, None)
            for part in value if isinstance(value, tuple) else (value,):  # options: a tuple of nodes
                if part is not None:
                    add_reads(node, part, step)
        target = getattr(rule, "target", None)
        if isinstance(target, ast.Ident):
            reward = f"reward:{target.name}"
            if reward not in graph:
                graph.add_node(reward, kind="reward", label=target.name, layer=6)
            graph.add_edge(node, reward, kind="grants")
    return graph


def to_text(graph: nx.DiGraph) -> str:
    """A readable listing: each step with its rules, what each rule reads and gives, then every quantity read.

    The order is the graph's (file order), so the same program always gives the same text.
    """
    def describe(node: str) -> str:
        data = graph.nodes[node]
        where = f"  (line {data['line']})" if "line" in data else ""
        return f"{data['kind']} {data['label']}{where}"

    lines = []
    for number, label in STEPS:
        lines.append(f"step {number}: {label}")
        runs = [n for n in graph.successors(f"step:{number}") if graph.edges[f"step:{number}", n]["kind"] == "runs"]
        if not runs:
            lines.append("  (nothing)")
        for node in runs:
            lines.append("  " + describe(node))
            reads = [_name(graph, p) for p in graph.predecessors(node) if graph.edges[p, node]["kind"] == "reads"]
            if reads:
                lines.append(f"    reads: {', '.join(dict.fromkeys(reads))}")
            writes = [f"{graph.nodes[s]['kind']} {graph.nodes[s]['label']}" for s in graph.successors(node)
                      if graph.edges[node, s]["kind"] in ("grants", "sets")]
            if writes:
                lines.append(f"    gives: {', '.join(writes)}")
    quantities = [n for n, data in graph.nodes(data=True) if data.get("kind") in ("quantity", "metric", "segment", "event")]
    if quantities:
        lines.append("quantities read by the rules:")
        for node in quantities:
            data = graph.nodes[node]
            name = _name(graph, node)
            kind = "" if data["kind"] in ("quantity", "event") else f" ({data['kind']})"
            readers = [graph.nodes[r] for r in graph.successors(node) if graph.edges[node, r]["kind"] == "reads"]
            who = ", ".join(f"line {r['line']}" if "line" in r else r["label"] for r in readers)
            lines.append(f"  {name}{kind}" + (f": read by {who}" if who else ": set by the tiers" if name == "tier" else ""))
    return "\n".join(lines) + "\n"


def _name(graph: nx.DiGraph, node: str) -> str:
    data = graph.nodes[node]
    return f"event.{data['label']}" if data.get("kind") == "event" else str(data.get("label", node))


def to_dot(graph: nx.DiGraph) -> str:
    """Graphviz DOT text (labels quoted and escaped; nothing is executed)."""
    def quote(text: str) -> str:
        return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    shapes = {"step": "box", "rule": "note", "reward": "octagon", "tier": "hexagon", "segment": "ellipse",
              "metric": "ellipse", "quantity": "ellipse", "event": "ellipse"}
    out = ["digraph poletti {", "  rankdir=LR;"]
    for node, data in graph.nodes(data=True):
        label = _name(graph, node)
        out.append(f"  {quote(node)} [label={quote(label)}, shape={shapes.get(data.get('kind'), 'ellipse')}];")
    for a, b, data in graph.edges(data=True):
        style = ", style=dashed" if data["kind"] in ("runs", "then") else ""
        out.append(f"  {quote(a)} -> {quote(b)} [label={quote(data['kind'])}{style}];")
    out.append("}")
    return "\n".join(out) + "\n"
