"""One field of a Metrilo record, from its mapping to a plan of how the row gives its value.

Per field: read the value (column, `expr:F` expression label, aggregate label, template or
const), `decode` it (HTML entities), apply `map`, fill NULLs from `default` (or leave the
field out), `split` delimited text, then coerce to the field's type. A `FieldPlan` holds
each of these as a ready object (the coercer, the map's look-up...); core/composecode.py
writes the Python code that runs them for every row. Pure: no I/O.
"""

from __future__ import annotations

import html
import string
from collections.abc import Callable, Mapping, Sequence
from datetime import tzinfo
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cdc_sync.core.coerce import Coerce, coercer, shown, to_text
from cdc_sync.errors import CoercionError, MappingError, Problem
from cdc_sync.mapping.labels import column_label
from cdc_sync.mapping.model import Coercion, Decode, FieldSpec

Row = Mapping[str, Any]
"""A row by label."""

_MAP_KNOWN_SHOWN = 10

Template = tuple[tuple[str, str | None], ...]
"""A template's pieces: (literal text, the row label of the placeholder after it or None)."""


class FieldPlan(NamedTuple):
    """How one field's value comes from a row; `name` is the field's name for problems.

    `plain`: a column or aggregate read as it is, NULL left out, then `convert`ed (a str kept
    as it is when `text_passes`): most fields. Otherwise the value is read (`labels[0]`, or
    the `template` over `labels`, or `const` without labels), `decode`d, looked up
    (`look_up`), defaulted, split and coerced in that order.
    """

    name: str
    labels: tuple[str, ...]
    plain: bool
    convert: Coerce
    text_passes: bool
    template: Template | None = None
    const: Any = None
    decode: bool = False
    look_up: Callable[[Any], Any] | None = None
    default: Any = None
    split: str | None = None
    listed: bool = False  # NULL (without a default) is [], not a missing field
    each: bool = True  # a list value is coerced item by item (not as one JSON value)


_TEXT_PASSES = frozenset({Coercion.STRING, Coercion.JSON})


def field_plan(
    spec: FieldSpec, coercion: Coercion, label: str, tz: tzinfo, name: str, *,
    listed: bool = False,
) -> FieldPlan:
    """How the field `name` is computed; `label`: its expression's or aggregate's row label,
    `tz`: the source's zone (a field's own `timezone` wins); `listed`: NULL is `[]`."""
    zone = tz if spec.timezone is None else time_zone(spec.timezone, f"{name}.timezone")
    convert = coercer(coercion, spec, zone)
    passes = coercion in _TEXT_PASSES
    shaped = (spec.map is None and spec.split is None and spec.default is None and not listed
              and spec.decode is None)
    if spec.column is not None and shaped:
        return FieldPlan(name, (column_label(spec.column),), True, convert, passes)
    if spec.aggregate() is not None and shaped:  # always in the row: 0 or NULL without rows
        return FieldPlan(name, (label,), True, convert, passes)
    template = None if spec.template is None else _template(spec.template)
    if spec.column is not None:
        labels: tuple[str, ...] = (column_label(spec.column),)
    elif template is not None:
        labels = tuple(column for _, column in template if column is not None)
    elif spec.expression is not None or spec.aggregate() is not None:
        labels = (label,)
    else:
        labels = ()
    return FieldPlan(
        name, labels, False, convert, False, template=template, const=spec.const,
        decode=spec.decode is Decode.HTML,
        look_up=None if spec.map is None else _map_lookup(spec.map, spec.default),
        default=spec.default, split=spec.split, listed=listed,
        each=coercion is not Coercion.JSON,
    )


def _template(template: str) -> Template:
    return tuple((literal, None if name is None else column_label(name))
                 for literal, name, _, _ in string.Formatter().parse(template))


def template_text(template: Template, values: Sequence[Any]) -> str | None:
    """The template filled with `values` (one per placeholder, in order); a NULL placeholder
    makes the whole field NULL."""
    pieces = []
    at = 0
    for literal, column in template:
        pieces.append(literal)
        if column is not None:
            value = values[at]
            at += 1
            if value is None:
                return None
            pieces.append(to_text(value))
    return "".join(pieces)


def html_text(value: Any) -> Any:
    """`decode: html`: entities decoded once (a shop that stores `&amp;amp;` means `&amp;`)."""
    return html.unescape(value) if isinstance(value, str) else value


def _map_lookup(mapping: Mapping[str, Any], default: Any) -> Callable[[Any], Any]:
    known = ", ".join(list(mapping)[:_MAP_KNOWN_SHOWN]) + (
        ", ..." if len(mapping) > _MAP_KNOWN_SHOWN else ""
    )

    def look_up(value: Any) -> Any:
        text = to_text(value).strip()
        if text in mapping:
            return mapping[text]
        if default is not None:
            return default
        raise CoercionError(
            f"value {shown(text)} is not in map (known: {known}); add it or set default:"
        )

    return look_up


def split_text(value: Any, separator: str) -> list[str]:
    """`split`: the trimmed, non-empty parts, each once, in order."""
    parts = (part.strip() for part in to_text(value).split(separator))
    return list(dict.fromkeys(part for part in parts if part))


def time_zone(name: str, where: str) -> tzinfo:
    """The IANA zone `name`, or a MappingError at `where` in the mapping."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        fix = "use an IANA zone name such as UTC or Europe/Sofia"
        raise MappingError([Problem(where, f"unknown time zone {name!r}", fix)]) from None
