"""Round-trip properties of the front end, on generated programs.

For every valid program ``p`` (messy text from ``program_strategies.programs``):

* the parser reads back exactly the generated tree and comments;
* ``parse(fmt(p)) == parse(p)`` up to spans (and the canonical order of rule
  options and reward parts, the one thing fmt may change in a tree);
* ``fmt(fmt(p)) == fmt(p)``;
* formatting never drops, adds or reorders a comment.
"""

from __future__ import annotations


from hypothesis import HealthCheck, given, settings

from poletti.dsl.formatter import format_rule_file, format_text
from poletti.dsl.parser import parse
import program_strategies as strategies


shape = strategies.shape

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(strategies.programs())
def test_parser_reads_the_generated_program(program) -> None:  # type: ignore[no-untyped-def]
    parsed = parse(program.text)
    assert parsed.diagnostics == (), (program.text, parsed.diagnostics)
    assert shape(parsed.rule_file.statements) == shape(program.rule_file.statements)
    assert tuple(c.text for c in parsed.rule_file.comments) == program.comments


@PROPERTY
@given(strategies.programs())
def test_fmt_keeps_the_tree_and_comments_and_is_idempotent(program) -> None:  # type: ignore[no-untyped-def]
    before = parse(program.text)
    formatted = format_text(program.text)
    assert formatted.text is not None and formatted.diagnostics == ()
    after = parse(formatted.text)
    assert after.diagnostics == (), (formatted.text, after.diagnostics)
    assert shape(after.rule_file.statements) == shape(before.rule_file.statements, canonical=True)
    assert [c.text for c in after.rule_file.comments] == [c.text for c in before.rule_file.comments]
    assert format_text(formatted.text).text == formatted.text


@PROPERTY
@given(strategies.rule_files())
def test_fmt_prints_trees_made_without_source(rule_file) -> None:  # type: ignore[no-untyped-def]
    # Trees built by passes carry NO_SPAN: the formatter must not depend on real positions.
    text = format_rule_file(rule_file)
    parsed = parse(text)
    assert parsed.diagnostics == (), (text, parsed.diagnostics)
    assert shape(parsed.rule_file.statements) == shape(rule_file.statements, canonical=True)
    assert format_text(text).text == text
    assert text == "" or (text.endswith("\n") and "\n\n" not in text)
