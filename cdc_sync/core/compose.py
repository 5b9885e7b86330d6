"""Compose a Metrilo record from a source row and its child rows (pure, on the hot path).

A Composer plans each field of the mapping once when it is built (core/fieldsteps.py: read
the value (column, `expr:F` expression label, template or const), `decode` it (HTML
entities), apply `map`, fill NULLs from `default` (or leave the field out), `split` delimited
text, then coerce to the field's type); here, the fields make objects, children and
aggregates, and core/composecode.py writes the plan out as one Python function per row
layout, compiled once, so compose() runs millions of times a cycle without looping over the
plan. A value that cannot be coerced never raises: the field is left out and the reason lands
in SourceRecord.problems, so the engine rejects that record with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import tzinfo
from typing import Any, Final

from cdc_sync.core.coerce import coerce
from cdc_sync.core.composecode import (
    ChildPlan,
    Composed,
    ComposeRow,
    Layout,
    ObjectPlan,
    RecordPlan,
    compose_function,
)
from cdc_sync.core.fieldsteps import FieldPlan, Row, field_plan, time_zone
from cdc_sync.core.resources import Resource, SourceRecord
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


class Composer:
    """Composes the records of one resource from its rows and child rows."""

    def __init__(
        self,
        resource: Resource,
        fields: Mapping[str, FieldSpec],
        children: Mapping[str, ChildSpec],
        source_timezone: str,
        child_labels: Mapping[str, Sequence[str]] | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        """`child_labels`: the labels of each child collection's rows (and aggregate
        stream's), in the order the driver gives their values, when known: a child is then
        read from those tuples by position (see `positional`). `labels`: the parent row's,
        likewise; with both, `compose_raw` reads the driver's rows as they are."""
        self.resource = resource
        tz = time_zone(source_timezone, "source_timezone")
        plan = RecordPlan(
            _object_plan(resource, fields, tz, prefix=""),
            tuple(_child_plan(resource, name, child, tz)
                  for name, child in children.items() if child.sent),
            _aggregate_defaults(fields),
        )
        self.plan = plan
        """What the generated code computes (tests/helpers/interpreted.py interprets it)."""
        known = child_labels or {}
        at = {child.name: _positions(known.get(child.name), _child_labels(child))
              for child in plan.children}
        self.positional = frozenset(name for name, positions in at.items() if positions)
        """The children whose rows `compose` takes as the driver's tuples, not dicts: a
        dict per child row cost a third of composing an order."""
        self._title = f"compose {resource.value}"
        self._by_label = Layout(None, None, at, _with_aggregates)
        self._composed: Composed | None = None  # compiled when first used
        self.compose_raw: ComposeRow | None = None
        """`compose_raw(key, raw, kids)`: the same record from the driver's tuples (the row
        as `labels` says, `kids` in `child_labels`' order); None when some label the mapping
        reads is not among them."""
        self.raw_code: str | None = None
        raw = _raw_layout(plan, labels, known)
        if raw is not None:
            by_position = compose_function(self._title, plan, raw)
            self.compose_raw, self.raw_code = by_position.function, by_position.code

    def compose(self, key: str, row: Row, children: Mapping[str, Sequence[ChildRow]]
                ) -> SourceRecord:
        """The record for one row (a dict by label); `children` holds this row's child rows
        by child name (tuples for the `positional` ones) and its aggregates' grouped row by
        `aggregate_stream(child)`."""
        return self._by_labels().function(key, row, children)

    @property
    def code(self) -> str:
        """The generated source of `compose`, for review."""
        return self._by_labels().code

    def _by_labels(self) -> Composed:
        if self._composed is None:
            self._composed = compose_function(self._title, self.plan, self._by_label)
        return self._composed


# --- plans: a resource's fields, or one child row's fields ---


def _object_plan(
    resource: Resource, fields: Mapping[str, FieldSpec], tz: tzinfo, *, prefix: str
) -> ObjectPlan:
    entries = []
    for name, spec in fields.items():
        qualified = f"{prefix}{name}"
        coercion = spec.type or default_coercion(resource, qualified)
        listed = is_list_field(resource, qualified, spec)
        plan = field_plan(spec, coercion, expression_label(name), tz, qualified, listed=listed)
        entries.append((tuple(name.split(".")), plan))
    return _grouped(entries)


def _grouped(entries: list[tuple[tuple[str, ...], FieldPlan]]) -> ObjectPlan:
    # billing.city and billing.phone become one nested object built from the same row.
    own: list[tuple[str, FieldPlan]] = []
    nested: dict[str, list[tuple[tuple[str, ...], FieldPlan]]] = {}
    for path, plan in entries:
        if len(path) == 1:
            own.append((path[0], plan))
        else:
            nested.setdefault(path[0], []).append((path[1:], plan))
    return ObjectPlan(tuple(own), tuple((key, _grouped(inner)) for key, inner in nested.items()))


def _child_plan(resource: Resource, name: str, child: ChildSpec, tz: tzinfo) -> ChildPlan:
    if child.value is not None:
        coercion = child.value.type or default_coercion(resource, name)
        value = field_plan(child.value, coercion, expression_label(name), tz, name)
        return ChildPlan(name, "values", value, None)
    shape = _object_plan(resource, child.fields or {}, tz, prefix=f"{name}.")
    return ChildPlan(name, "single" if child.single else "objects", None, shape)


def _object_labels(shape: ObjectPlan) -> list[str]:
    labels = [label for _, plan in shape.fields for label in plan.labels]
    return labels + [label for _, inner in shape.nested for label in _object_labels(inner)]


def _child_labels(child: ChildPlan) -> list[str]:
    if child.value is not None:
        return list(child.value.labels)
    return _object_labels(child.shape) if child.shape is not None else []


def _positions(labels: Sequence[str] | None, needed: Sequence[str]) -> dict[str, int] | None:
    """Each label's position in `labels`; None when they are unknown or miss one needed."""
    if labels is None:
        return None
    at = {label: i for i, label in enumerate(labels)}
    return at if all(label in at for label in needed) else None


def _raw_layout(plan: RecordPlan, labels: Sequence[str] | None,
                child_labels: Mapping[str, Sequence[str]]) -> Layout | None:
    """The layout reading the driver's tuples, when every label read is among the known."""
    if labels is None:
        return None
    needed = [label for label in _object_labels(plan.shape)
              if not any(label in defaults for defaults in plan.aggregates.values())]
    row = _positions(labels, needed)
    kids = {name: i for i, name in enumerate(child_labels)}
    at: dict[str, dict[str, int] | None] = {}
    for child in plan.children:
        at[child.name] = _positions(child_labels.get(child.name), _child_labels(child))
        if at[child.name] is None and child.name in kids:
            return None
    for stream, defaults in plan.aggregates.items():
        at[stream] = _positions(child_labels.get(stream), list(defaults))
        if at[stream] is None and stream in kids:
            return None
    return None if row is None else Layout(row, kids, at)


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
