"""The reference composer: the plan a `Composer` compiles, interpreted field by field.

core/composecode.py writes each mapping out as straight-line code; this walks the same
`RecordPlan` with loops and dict rows (the composer before code generation), so a test can
compare the generated code's records and problems with it on any mapping and rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cdc_sync.core.composecode import ChildPlan, ObjectPlan, RecordPlan, unique_values
from cdc_sync.core.fieldsteps import FieldPlan, html_text, split_text, template_text
from cdc_sync.core.resources import Payload, SourceRecord
from cdc_sync.errors import CoercionError

Row = Mapping[str, Any]
OMIT = object()
"""A field left out of its record (NULL without a default)."""


def interpret(plan: RecordPlan, key: str, row: Row,
              children: Mapping[str, Sequence[Row]]) -> SourceRecord:
    """The record of `row` (a dict by label) and its child rows (dicts, by child name)."""
    merged = dict(row)
    for stream, defaults in plan.aggregates.items():
        grouped = children.get(stream)
        merged.update(grouped[0] if grouped else defaults)
    problems: list[str] = []
    payload = _object(plan.shape, merged, problems)
    for child in plan.children:
        value = _child(child, children.get(child.name, ()), problems)
        if value is not OMIT:
            payload[child.name] = value
    return SourceRecord(key, payload, tuple(problems))


def field_value(field: FieldPlan, row: Row) -> Any:
    """The field's value, or OMIT; raises CoercionError."""
    if field.plain:
        value = row[field.labels[0]]
        return OMIT if value is None else field.convert(value)
    if field.template is not None:
        value = template_text(field.template, [row[label] for label in field.labels])
    else:
        value = row[field.labels[0]] if field.labels else field.const
    if field.decode:
        value = html_text(value)
    if value is not None and field.look_up is not None:
        value = field.look_up(value)
    if value is None:
        if field.default is None:
            return [] if field.listed else OMIT
        value = field.default
    if field.split is not None and not isinstance(value, list | tuple):
        return [field.convert(part) for part in split_text(value, field.split)]
    if field.each and isinstance(value, list | tuple):
        return [field.convert(item) for item in value]
    return field.convert(value)


def _object(shape: ObjectPlan, row: Row, problems: list[str]) -> Payload:
    payload: Payload = {}
    for key, field in shape.fields:
        try:
            value = field_value(field, row)
        except CoercionError as error:
            problems.append(f"{field.name}: {error}")
            continue
        if value is not OMIT:
            payload[key] = value
    for key, inner in shape.nested:
        nested = _object(inner, row, problems)
        if nested:
            payload[key] = nested
    return payload


def _child(child: ChildPlan, rows: Sequence[Row], problems: list[str]) -> Any:
    if child.shape is not None and child.kind == "objects":
        return [_object(child.shape, row, problems) for row in rows]
    if child.shape is not None:
        return (_object(child.shape, rows[0], problems) or OMIT) if rows else OMIT
    assert child.value is not None
    if not rows:
        return []
    values: list[Any] = []
    for row in rows:
        try:
            value = field_value(child.value, row)
        except CoercionError as error:
            problems.append(f"{child.name}: {error}")
            continue
        if value is OMIT:
            continue
        values.extend(value) if isinstance(value, list) else values.append(value)
    return unique_values(values)
