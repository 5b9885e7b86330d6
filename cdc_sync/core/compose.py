"""Compose a Metrilo record from a source row and its child rows (pure, on the hot path).

A Composer turns each field of the mapping into one precomputed function of the row when it
is built, so compose() runs millions of times a cycle without looking at the spec again.
Per field (core/fieldsteps.py): read the value (column, `expr:F` expression label, template
or const), `decode` it (HTML entities), apply `map`, fill NULLs from `default` (or leave the
field out), `split` delimited text, then coerce to the field's type; here, the fields make
objects, children and aggregates. A value that cannot be coerced never raises: the field is
left out and the reason lands in SourceRecord.problems, so the engine rejects that record
with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import tzinfo
from typing import Any, Final, NamedTuple

from cdc_sync.core.coerce import coerce
from cdc_sync.core.fieldsteps import OMIT, Row, Step, field_step, time_zone
from cdc_sync.core.resources import Payload, Resource, SourceRecord
from cdc_sync.errors import CoercionError
from cdc_sync.mapping.labels import aggregate_stream, expression_label
from cdc_sync.mapping.model import AggregateFunction, ChildSpec, Coercion, FieldSpec

__all__ = ["CoercionError", "Composer", "coerce", "default_coercion", "is_list_field"]

ChildRow = Mapping[str, Any] | Sequence[Any]
"""A child row: by label, or the driver's tuple when its fields are all plain columns, read
by position (see `Composer.positional`)."""

_CUSTOMER_TYPES = {"email": Coercion.EMAIL, "createdAt": Coercion.TIMESTAMP}
_DEFAULT_COERCIONS: dict[Resource, dict[str, Coercion]] = {
    Resource.CUSTOMERS: {**_CUSTOMER_TYPES, "subscribed": Coercion.BOOLEAN},
    Resource.GUEST_CUSTOMERS: {**_CUSTOMER_TYPES, "subscribed": Coercion.BOOLEAN},
    Resource.CATEGORIES: {},
    Resource.PRODUCTS: {"price": Coercion.NUMBER, "options.price": Coercion.NUMBER},
    Resource.DELETED_PRODUCTS: {"price": Coercion.NUMBER, "options.price": Coercion.NUMBER},
    Resource.ORDERS: {
        **_CUSTOMER_TYPES,
        "amount": Coercion.NUMBER,
        "products.quantity": Coercion.NUMBER,
    },
}


_LIST_FIELDS: dict[Resource, frozenset[str]] = {
    Resource.CUSTOMERS: frozenset({"tags"}),
    Resource.GUEST_CUSTOMERS: frozenset({"tags"}),
    Resource.CATEGORIES: frozenset(),
    Resource.PRODUCTS: frozenset({"categories"}),
    Resource.DELETED_PRODUCTS: frozenset({"categories"}),
    Resource.ORDERS: frozenset({"coupons"}),
}


def is_list_field(resource: Resource, field: str, spec: FieldSpec) -> bool:
    """Whether the field's value is a list: a Metrilo list field, or a `split` one.

    NULL in such a field is `[]`, never a missing key: Metrilo replaces lists on each upsert,
    so a left-out list would keep the categories (tags, coupons) the shop removed.
    """
    return spec.split is not None or field in _LIST_FIELDS[resource]


def default_coercion(resource: Resource, field: str) -> Coercion:
    """The Metrilo field's own type, for a field whose mapping gives no `type`.

    `field` may be dotted (billing.city) or a child's field (products.quantity).
    """
    return _DEFAULT_COERCIONS[resource].get(field, Coercion.STRING)


class _Shape(NamedTuple):
    """An object's fields, and the nested objects its dotted field names build."""

    steps: tuple[Step, ...]
    nested: tuple[tuple[str, _Shape], ...]


class Composer:
    """Composes the records of one resource from its rows and child rows."""

    def __init__(
        self,
        resource: Resource,
        fields: Mapping[str, FieldSpec],
        children: Mapping[str, ChildSpec],
        source_timezone: str,
        child_labels: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """`child_labels`: the labels of each child collection's rows, in the order the
        driver gives their values, when known: a child whose fields are all plain columns
        is then read from those tuples by position (see `positional`)."""
        self.resource = resource
        tz = time_zone(source_timezone, "source_timezone")
        self._shape = _object_shape(resource, fields, tz, prefix="")
        labels = child_labels or {}
        built = [
            (name, _child_builder(resource, name, child, tz, labels.get(name)))
            for name, child in children.items() if child.sent
        ]
        self._children = tuple((name, build) for name, (build, _) in built)
        self.positional = frozenset(name for name, (_, by_position) in built if by_position)
        """The children whose rows `compose` takes as the driver's tuples, not dicts: a
        dict per child row cost a third of composing an order."""
        self._aggregates = _aggregate_defaults(fields)

    def compose(
        self, key: str, row: Row, children: Mapping[str, Sequence[ChildRow]]
    ) -> SourceRecord:
        """The record for one row; `children` holds this row's child rows by child name
        (and its aggregates' grouped row by `aggregate_stream(child)`)."""
        problems: list[str] = []
        if self._aggregates:
            row = _with_aggregates(row, children, self._aggregates)
        payload = _build_object(self._shape, row, problems)
        for name, build_child in self._children:
            value = build_child(children.get(name, ()), problems)
            if value is not OMIT:
                payload[name] = value
        return SourceRecord(key, payload, tuple(problems))


# --- objects: a resource's fields, or one child row's fields ---


def _object_shape(
    resource: Resource, fields: Mapping[str, FieldSpec], tz: tzinfo, *, prefix: str
) -> _Shape:
    entries = []
    for name, spec in fields.items():
        qualified = f"{prefix}{name}"
        coercion = spec.type or default_coercion(resource, qualified)
        listed = is_list_field(resource, qualified, spec)
        step = field_step(spec, coercion, expression_label(name), tz, qualified, listed=listed)
        entries.append((tuple(name.split(".")), step))
    return _grouped(entries)


def _grouped(entries: list[tuple[tuple[str, ...], Step]]) -> _Shape:
    # billing.city and billing.phone become one nested object built from the same row.
    steps: list[Step] = []
    nested: dict[str, list[tuple[tuple[str, ...], Step]]] = {}
    for path, step in entries:
        if len(path) == 1:
            steps.append(step._replace(key=path[0]))
        else:
            nested.setdefault(path[0], []).append((path[1:], step))
    return _Shape(tuple(steps), tuple((key, _grouped(inner)) for key, inner in nested.items()))


def _build_object(shape: _Shape, row: ChildRow, problems: list[str]) -> Payload:
    payload: Payload = {}
    for name, key, label, convert, text_passes in shape.steps:
        try:
            if label is None:
                value = convert(row)
                if value is not OMIT:
                    payload[key] = value
                continue
            value = row[label]  # type: ignore[index]  # an int label only for a tuple row
            if value is not None:
                passes = text_passes and value.__class__ is str
                payload[key] = value if passes else convert(value)
        except CoercionError as error:
            problems.append(f"{name}: {error}")
    for key, inner in shape.nested:
        # An object whose fields are all NULL (a LEFT JOINed address that is missing) is
        # left out.
        nested = _build_object(inner, row, problems)
        if nested:
            payload[key] = nested
    return payload


# --- aggregates over a child: one grouped row per parent, none when it has no child rows ---

_NO_ROWS: Final = {AggregateFunction.SUM: 0, AggregateFunction.COUNT: 0}
"""An aggregate's value for a parent without child rows (min and max: NULL)."""


def _aggregate_defaults(fields: Mapping[str, FieldSpec]) -> dict[str, dict[str, Any]]:
    streams: dict[str, dict[str, Any]] = {}
    for name, spec in fields.items():
        aggregate = spec.aggregate()
        if aggregate is not None:
            stream = streams.setdefault(aggregate_stream(aggregate.child), {})
            stream[expression_label(name)] = _NO_ROWS.get(aggregate.function)
    return streams


def _with_aggregates(row: Row, children: Mapping[str, Sequence[ChildRow]],
                     streams: Mapping[str, Mapping[str, Any]]) -> Row:
    merged = dict(row)
    for stream, defaults in streams.items():
        grouped = children.get(stream)
        merged.update(grouped[0] if grouped else defaults)
    return merged


# --- children ---

ChildBuilder = Callable[[Sequence[ChildRow], list[str]], Any]


def _child_builder(
    resource: Resource, name: str, child: ChildSpec, tz: tzinfo,
    labels: Sequence[str] | None,
) -> tuple[ChildBuilder, bool]:
    """The child's builder, and whether it reads rows by position (from `labels`)."""
    if child.value is not None:
        coercion = child.value.type or default_coercion(resource, name)
        step = field_step(child.value, coercion, expression_label(name), tz, name)
        steps = _by_position(_Shape((step,), ()), labels)
        return _scalar_list_builder(name, step if steps is None else steps.steps[0]), bool(steps)
    shape = _object_shape(resource, child.fields or {}, tz, prefix=f"{name}.")
    by_position = _by_position(shape, labels)
    used = shape if by_position is None else by_position
    build = _single_builder(used) if child.single else _object_list_builder(used)
    return build, by_position is not None


def _by_position(shape: _Shape, labels: Sequence[str] | None) -> _Shape | None:
    """The shape reading each plain column by its position in `labels`; None when a field
    reads the row by name (a template, a map, a default...) or a label is not among them."""
    if labels is None:
        return None
    at = {label: i for i, label in enumerate(labels)}
    steps = []
    for step in shape.steps:
        if step.label is None or step.label not in at:
            return None
        steps.append(step._replace(label=at[step.label]))
    nested = []
    for key, inner in shape.nested:
        positional = _by_position(inner, labels)
        if positional is None:
            return None
        nested.append((key, positional))
    return _Shape(tuple(steps), tuple(nested))


def _scalar_list_builder(name: str, step: Step) -> ChildBuilder:
    def build(rows: Sequence[ChildRow], problems: list[str]) -> list[Any]:
        if not rows:
            return []
        values: list[Any] = []
        for row in rows:
            try:
                value = _read(step, row)
            except CoercionError as error:
                problems.append(f"{name}: {error}")
                continue
            if value is OMIT:
                continue
            if isinstance(value, list):
                values.extend(value)
            else:
                values.append(value)
        return _unique(values)

    return build


def _read(step: Step, row: ChildRow) -> Any:
    """One step's value from a row, or OMIT (see _build_object, which inlines this)."""
    if step.label is None:
        return step.convert(row)
    value = row[step.label]  # type: ignore[index]  # an int label only for a tuple row
    if value is None:
        return OMIT
    return value if step.text_passes and value.__class__ is str else step.convert(value)


def _object_list_builder(shape: _Shape) -> ChildBuilder:
    def build(rows: Sequence[ChildRow], problems: list[str]) -> list[Payload]:
        return [_build_object(shape, row, problems) for row in rows]

    return build


def _single_builder(shape: _Shape) -> ChildBuilder:
    def build(rows: Sequence[ChildRow], problems: list[str]) -> Any:
        if not rows:
            return OMIT
        return _build_object(shape, rows[0], problems) or OMIT

    return build


def _unique(values: list[Any]) -> list[Any]:
    try:
        return list(dict.fromkeys(values))
    except TypeError:  # unhashable JSON values: keep the first of equal ones, slowly
        kept: list[Any] = []
        for value in values:
            if value not in kept:
                kept.append(value)
        return kept
