"""The Arrow compute functions the columnar simulate uses, called without importing ``pyarrow.compute``.

Importing ``pyarrow.compute`` builds a Python wrapper, with its docstring,
for each of Arrow's several hundred functions: 0.045 s of every
``simulate``'s start, before any worker can share the work (measured:
``import numpy, pyarrow, pyarrow.compute`` against ``…, pyarrow._compute``,
0.328 s against 0.283 s of CPU). Each function here calls the same
kernel by name through ``call_function``, with the options object the
wrapper would have made from the same arguments, so the results are
Arrow's own. Arrow's own methods that do go through ``pyarrow.compute``
(``Array.take``, ``Table.filter``, …) have their stand-ins here too.
"""

from __future__ import annotations

from typing import Any

try:  # the module the wrappers themselves call (pyarrow >= 1.0)
    from pyarrow._compute import (CastOptions, DictionaryEncodeOptions, ExtractRegexOptions, FilterOptions,
                                  MatchSubstringOptions, PadOptions, ReplaceSubstringOptions, ScalarAggregateOptions,
                                  StructFieldOptions, TakeOptions, call_function)
except ImportError:  # pragma: no cover - a pyarrow that moved it: the public module, at its import cost
    from pyarrow.compute import (CastOptions, DictionaryEncodeOptions, ExtractRegexOptions,  # type: ignore
                                 FilterOptions, MatchSubstringOptions, PadOptions, ReplaceSubstringOptions,
                                 ScalarAggregateOptions, StructFieldOptions, TakeOptions, call_function)


def add(left: Any, right: Any) -> Any:
    return call_function("add", [left, right])


def multiply(left: Any, right: Any) -> Any:
    return call_function("multiply", [left, right])


def equal(left: Any, right: Any) -> Any:
    return call_function("equal", [left, right])


def invert(values: Any) -> Any:
    return call_function("invert", [values])


def is_valid(values: Any) -> Any:
    return call_function("is_valid", [values])


def if_else(condition: Any, when_true: Any, when_false: Any) -> Any:
    return call_function("if_else", [condition, when_true, when_false])


def fill_null(values: Any, fill_value: Any) -> Any:
    """Null cells of ``values`` replaced by ``fill_value`` (a plain value: made a scalar of the values' type)."""
    import pyarrow as pa

    if not isinstance(fill_value, (pa.Array, pa.ChunkedArray, pa.Scalar)):
        fill_value = pa.scalar(fill_value, type=values.type)
    elif fill_value.type != values.type:
        fill_value = pa.scalar(fill_value.as_py(), type=values.type)
    return call_function("coalesce", [values, fill_value])


def cast(values: Any, target_type: Any) -> Any:
    """A safe cast (an overflow or an unparsable text is an error), as ``pyarrow.compute.cast`` by default."""
    return call_function("cast", [values], CastOptions.safe(target_type))


def max(values: Any) -> Any:  # noqa: A001 - Arrow's name
    return call_function("max", [values], ScalarAggregateOptions())


def utf8_length(strings: Any) -> Any:
    return call_function("utf8_length", [strings])


def utf8_rpad(strings: Any, width: int, padding: str) -> Any:
    return call_function("utf8_rpad", [strings], PadOptions(width, padding))


def match_substring(strings: Any, pattern: str) -> Any:
    return call_function("match_substring", [strings], MatchSubstringOptions(pattern))


def match_substring_regex(strings: Any, pattern: str) -> Any:
    return call_function("match_substring_regex", [strings], MatchSubstringOptions(pattern))


def replace_substring(strings: Any, pattern: str, replacement: str) -> Any:
    return call_function("replace_substring", [strings], ReplaceSubstringOptions(pattern, replacement))


def extract_regex(strings: Any, pattern: str) -> Any:
    return call_function("extract_regex", [strings], ExtractRegexOptions(pattern))


def struct_field(values: Any, indices: list[int]) -> Any:
    return call_function("struct_field", [values], StructFieldOptions(indices))


def dictionary_encode(values: Any) -> Any:
    return call_function("dictionary_encode", [values], DictionaryEncodeOptions())


def take(data: Any, indices: Any) -> Any:
    """The rows ``indices`` of an array, chunked array, record batch or table (``data.take(indices)``)."""
    return call_function("take", [data, indices], TakeOptions())


def filter(data: Any, mask: Any) -> Any:  # noqa: A001 - Arrow's name
    """The rows of ``data`` where ``mask`` is true (``data.filter(mask)``; a null in the mask drops the row)."""
    return call_function("filter", [data, mask], FilterOptions())


def warm_up() -> None:
    """Arrow's first conversions of a numpy array and of a Python value, done now (they import ``numpy.ma``
    and, where it is installed, ``dateutil``: 0.02 s), so that forked workers inherit them done."""
    import numpy as np
    import pyarrow as pa

    equal(pa.array(np.zeros(1, dtype=np.int64)), 0)


__all__ = ["add", "cast", "dictionary_encode", "equal", "extract_regex", "fill_null", "filter", "if_else", "invert",
           "is_valid", "match_substring", "match_substring_regex", "max", "multiply", "replace_substring",
           "struct_field", "take", "utf8_length", "utf8_rpad", "warm_up"]
