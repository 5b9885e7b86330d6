"""How the source names the values it reads, so compose can find them (pure).

The source selects, for each row, every column a mapping refers to under its own name
(`col`, or `alias.col` for a joined table), and every SQL `expression` under
`expression_label(field)`; aggregates over a child come in one grouped row per parent, in the
child stream `aggregate_stream(child)`, also under `expression_label(field)`. Compose reads a
row by exactly these labels.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from typing import Any

EXPRESSION_PREFIX = "expr:"


def column_label(column: str) -> str:
    """Label of a plain or `alias.`-qualified column in a source row."""
    return column


def expression_label(field_name: str) -> str:
    """Label of the SQL expression computing `field_name` in a source row."""
    return f"{EXPRESSION_PREFIX}{field_name}"


def aggregate_stream(child: str) -> str:
    """Name of the grouped rows of `child` (one per parent) that aggregate fields read.

    An aggregate field's value is labelled like an expression (it is one, computed by the
    database in that grouped query): expression_label(field).
    """
    return f"aggregates:{child}"


def template_placeholders(template: str) -> list[str]:
    """Column names a template refers to: `https://x/{slug}/{id}` -> ['slug', 'id']."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name or spec or conversion:
            raise ValueError(
                f"placeholder {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} must be a bare column name like {{slug}}"
            )
        names.append(name)
    return names


def key_string(values: Sequence[Any]) -> str:
    """Canonical text of a source key: the value itself, or a JSON list for composite keys."""
    if len(values) == 1:
        return _key_part(values[0])
    return json.dumps([_key_part(v) for v in values], separators=(",", ":"), ensure_ascii=False)


def _key_part(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
