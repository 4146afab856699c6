"""``poletti graph RULES``: the rule graph, as readable text or as Graphviz DOT.

The text lists the six processing steps with the rules each runs, what every
rule reads and gives, then every quantity the rules read and which lines
read it. ``--dot`` prints the same graph as DOT (render it with
``dot -Tsvg``). Both are deterministic: the same file gives the same output.
"""

from __future__ import annotations

import click


@click.command("graph")
@click.argument("rules", metavar="RULES")
@click.option("--dot", "as_dot", is_flag=True, help="Print Graphviz DOT instead of text.")
@click.pass_context
def command(ctx: click.Context, rules: str, as_dot: bool) -> None:
    """Print the rule graph of RULES: which step runs which rule, what each reads and gives.

    Exits 0, 1 when RULES has errors, 2 when it cannot be read.
    """
    from poletti.cli import load_program
    from poletti.engine.graph import to_dot, to_text

    program = load_program(ctx, rules)
    click.echo((to_dot if as_dot else to_text)(program.graph), nl=False)
    ctx.exit(0)
