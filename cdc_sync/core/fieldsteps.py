"""One field of a Metrilo record, from its mapping to one precomputed function of the row.

Per field: read the value (column, `expr:F` expression label, template or const), `decode` it
(HTML entities), apply `map`, fill NULLs from `default` (or leave the field out: `OMIT`),
`split` delimited text, then coerce to the field's type. A plain column is a `Step` the
composer (core/compose.py) reads itself, the hot path; anything else is an extract function.
Pure: no I/O.
"""

from __future__ import annotations

import html
import string
from collections.abc import Callable, Mapping
from datetime import tzinfo
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cdc_sync.core.coerce import Coerce, coercer, shown, to_text
from cdc_sync.errors import CoercionError, MappingError, Problem
from cdc_sync.mapping.labels import column_label
from cdc_sync.mapping.model import Coercion, Decode, FieldSpec

Row = Mapping[str, Any]
"""A row by label."""
Extract = Callable[[Row], Any]
"""A field's value from a row: the coerced value, or OMIT; raises CoercionError."""

OMIT: Final = object()
"""A field left out of its record (NULL without a default)."""
_MAP_KNOWN_SHOWN = 10


class Step(NamedTuple):
    """One field of an object: its name for problems, its payload key, how it is computed.

    A plain column (no map, default or split) is read here, NULL skipped, then coerced by
    `convert`; anything else is `convert(row)`, which may return OMIT. Text fields keep a
    str value as it is, without a call: most values of most fields.
    """

    name: str
    key: str
    # The row label of a plain column (its position, when rows are read as tuples);
    # None: `convert` reads the row.
    label: str | int | None
    convert: Callable[[Any], Any]
    text_passes: bool


_TEXT_PASSES = frozenset({Coercion.STRING, Coercion.JSON})


def field_step(
    spec: FieldSpec, coercion: Coercion, label: str, tz: tzinfo, name: str, *,
    listed: bool = False,
) -> Step:
    """How the field `name` is computed; `label`: its expression's or aggregate's row label,
    `tz`: the source's zone (a field's own `timezone` wins); `listed`: NULL is `[]`."""
    zone = tz if spec.timezone is None else time_zone(spec.timezone, f"{name}.timezone")
    coerce_one = coercer(coercion, spec, zone)
    plain = (spec.map is None and spec.split is None and spec.default is None and not listed
             and spec.decode is None)
    if spec.column is not None and plain:
        return Step(name, name, column_label(spec.column), coerce_one, coercion in _TEXT_PASSES)
    if spec.aggregate() is not None and plain:  # always in the row: 0 or NULL without rows
        return Step(name, name, label, coerce_one, coercion in _TEXT_PASSES)
    extract = _extract(spec, coercion, label, coerce_one, listed=listed)
    return Step(name, name, None, extract, False)


def _extract(spec: FieldSpec, coercion: Coercion, label: str, coerce_one: Coerce, *,
             listed: bool) -> Extract:
    read = _reader(spec, label)
    look_up = None if spec.map is None else _map_lookup(spec.map, spec.default)
    split = spec.split
    default = spec.default
    each = coercion is not Coercion.JSON

    def extract(row: Row) -> Any:
        value = read(row)
        if value is not None and look_up is not None:
            value = look_up(value)
        if value is None:
            if default is None:
                return [] if listed else OMIT
            value = default
        # A list (a list default, a mapped list) is already split: `default: []` is [].
        if split is not None and not isinstance(value, list | tuple):
            return [coerce_one(part) for part in _split(value, split)]
        if each and isinstance(value, list | tuple):
            return [coerce_one(item) for item in value]
        return coerce_one(value)

    return extract


def _reader(spec: FieldSpec, label: str) -> Extract:
    read = _raw_reader(spec, label)
    if spec.decode is Decode.HTML:
        return lambda row: _html_text(read(row))
    return read


def _html_text(value: Any) -> Any:
    # Entities are decoded once: a shop that stores `&amp;amp;` means the text `&amp;`.
    return html.unescape(value) if isinstance(value, str) else value


def _raw_reader(spec: FieldSpec, label: str) -> Extract:
    if spec.column is not None:
        column = column_label(spec.column)
        return lambda row: row[column]
    if spec.expression is not None or spec.aggregate() is not None:
        return lambda row: row[label]
    if spec.template is not None:
        return _template_reader(spec.template)
    constant = spec.const
    return lambda _row: constant


def _template_reader(template: str) -> Extract:
    parts = [
        (literal, None if name is None else column_label(name))
        for literal, name, _, _ in string.Formatter().parse(template)
    ]

    def read(row: Row) -> str | None:
        pieces = []
        for literal, column in parts:
            pieces.append(literal)
            if column is not None:
                value = row[column]
                if value is None:
                    return None  # a NULL placeholder makes the whole field NULL
                pieces.append(to_text(value))
        return "".join(pieces)

    return read


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


def _split(value: Any, separator: str) -> list[str]:
    parts = (part.strip() for part in to_text(value).split(separator))
    return list(dict.fromkeys(part for part in parts if part))


def time_zone(name: str, where: str) -> tzinfo:
    """The IANA zone `name`, or a MappingError at `where` in the mapping."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        fix = "use an IANA zone name such as UTC or Europe/Sofia"
        raise MappingError([Problem(where, f"unknown time zone {name!r}", fix)]) from None
