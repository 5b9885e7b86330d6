"""The derived resources as the shop yields them: guest customers and deleted products.

Neither has a table of its own: both are read from the orders' (and products') plans, by one
query each (source/derived.py builds it). ShopSource delegates to `Deriving` for their
plans, rows and composers, the changed guest orders of an incremental cycle and the deleted
products of given orders.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from cdc_sync.core.guests import Basis, created_ms
from cdc_sync.core.records import Keep, Readings, RowComposer
from cdc_sync.core.resources import Resource, SourceRecord
from cdc_sync.errors import MappingError, Problem
from cdc_sync.mapping.labels import key_string
from cdc_sync.source import derived as derive
from cdc_sync.source.connect import READ_FIX as _FIX
from cdc_sync.source.connect import reading
from cdc_sync.source.context import ShopContext
from cdc_sync.source.derived import DerivedPlan
from cdc_sync.source.digests import summary
from cdc_sync.source.keys import KeyKind
from cdc_sync.source.plan import resolve_fields
from cdc_sync.source.stream import Rows, RowShape, SourceRow, key_reader, merge, stream

_Derived = tuple[DerivedPlan | None, list[Problem]]


class Deriving:
    """Plans and reads the derived resources; never writes, never disposes the engine."""

    def __init__(self, shop: ShopContext) -> None:
        self._shop = shop
        self._cache: dict[Resource, _Derived] = {}

    def readings(self, resource: Resource, *, since: Any | None = None,
                 keys: Sequence[str] | None = None) -> Readings:
        """The derived resource's rows in key order with their composer."""
        derived = self.plan_or_raise(resource)
        rows = self.rows(resource, derived, since=since, keys=keys)
        return Readings(rows, self.composer(resource, derived))

    def changed_guest_orders(self, since: Any) -> Readings | None:
        """Every order changed since `since` as a guest row, not merged: an email's orders
        come one after another, its first order first (each composed record keeps its
        order's `guests.Basis`). An index range on the orders' cursor; None when guests are
        not derived or orders have no cursor."""
        resource = Resource.GUEST_CUSTOMERS
        if not self.active(resource):
            return None
        derived = self.plan_or_raise(resource)
        stmt = derived.changed(self._shop.schema.dialect, since)
        if stmt is None:
            return None
        rows = stream(self._shop.engine, stmt, batch=self._shop.batch,
                      doing=f"reading the orders changed since {since} for {resource.value}")
        return Readings(_unmerged(rows, derived.key_label),
                        self.composer(resource, derived))

    def inputs_checksum(self, resource: Resource) -> str | None:
        """A text that changes whenever a row the resource is derived from changes (count and
        sum of row numbers per input, source/derived.py), or None when it has no checksum.
        The caller decides whether the database computes row numbers (digests.py)."""
        if not self.active(resource):
            return None
        derived = self.plan_or_raise(resource)
        if derived.inputs is None:
            return None
        parts = []
        with reading(f"reading the checksum of what {resource.value} is derived from", _FIX,
                     self._shop.engine), self._shop.engine.connect() as conn:
            for stmt in derived.inputs(self._shop.schema.dialect):
                count, total = conn.execute(stmt).one()
                parts.append(summary(count, total))
        return ";".join(parts)

    def deleted_products_of(self, order_keys: Sequence[str]) -> Readings:
        """The deleted products the lines of these orders name (pass <= 1000 keys), in key
        order: one query, an index range on the lines' parent key."""
        resource = Resource.DELETED_PRODUCTS
        derived = self.plan_or_raise(resource)
        rows = self.rows(resource, derived, since=None, keys=None, orders=order_keys)
        return Readings(rows, self.composer(resource, derived))

    def composer(self, resource: Resource, derived: DerivedPlan) -> RowComposer:
        """Composes derived rows; a guest keeps its first order (`_first_order`)."""
        keep = _first_order(derived.basis) if derived.basis else None
        return RowComposer(resource, derived.fields, {},
                           self._shop.mapping.spec.source_timezone, keep)

    def rows(self, resource: Resource, derived: DerivedPlan, *, since: Any,
             keys: Sequence[str] | None,
             orders: Sequence[str] | None = None) -> Iterator[SourceRow]:
        """The derived rows (merged by key) in key order: changed since `since`, these `keys`,
        or those named by these `orders`' lines."""
        stmt = derived.select(self._shop.schema.dialect, since=since, keys=keys, orders=orders)
        rows = stream(self._shop.engine, stmt, batch=self._shop.batch,
                      doing=f"deriving {resource.value} from orders",
                      bounded=keys is not None or orders is not None)
        return merge(rows, [derived.key_label], (derived.kind,), {}, resource=resource.value)

    def plan_or_raise(self, resource: Resource) -> DerivedPlan:
        """The resource's plan, or a MappingError naming every problem of it."""
        derived, problems = self.derive(resource)
        if derived is None:
            raise MappingError(problems, title=f"{resource.value} cannot be derived as mapped")
        return derived

    def active(self, resource: Resource) -> bool:
        """Whether the mapping produces this resource and it is a derived one."""
        entry = self._shop.catalogue.entry(resource)
        return entry is not None and entry.derived

    def derive(self, resource: Resource) -> _Derived:
        """The resource's plan (None when it does not fit) and its problems, planned once."""
        if resource not in self._cache:
            with reading(f"reading the schema for {resource.value}", _FIX, self._shop.engine):
                self._cache[resource] = (
                    self._derive_guests() if resource is Resource.GUEST_CUSTOMERS
                    else self._derive_deleted_products()
                )
        return self._cache[resource]

    def _derive_guests(self) -> _Derived:
        problems = self._guest_spec_problems()
        orders, _ = self._shop.plan("orders")
        customers, customer_problems = None, list[Problem]()
        if self._shop.catalogue.spec(Resource.CUSTOMERS) is not None:
            customers, customer_problems = self._shop.plan("customers")
        if orders is None or customer_problems:
            return None, problems  # the resources' own problems are reported with them
        guest = self._shop.mapping.spec.guest_customers
        extra, found = resolve_fields(self._shop.schema, self._shop.mapping,
                                      ("guest_customers", "fields"), guest.fields,
                                      orders.relation, orders.joins)
        problems += found
        plan = derive.guest_customers(orders, customers, extra, dict(guest.fields))
        return (plan if not problems else None), problems

    def _guest_spec_problems(self) -> list[Problem]:
        orders = self._shop.catalogue.spec(Resource.ORDERS)
        assert orders is not None
        return [
            self._problem(
                ("orders", "fields", name) if name in orders.fields else ("orders", "fields"),
                f"guest customers need orders.fields.{name} from a column or an expression",
                f"map {name} from a column (or expression), or set guest_customers.enabled: false",
            )
            for name in ("email", "createdAt")
            if orders.fields.get(name) is None
            or (orders.fields[name].column is None and orders.fields[name].expression is None)
        ]

    def _derive_deleted_products(self) -> _Derived:
        fields = dict(self._shop.mapping.spec.deleted_products.fields)
        missing = [name for name in ("name", "price") if name not in fields]
        problems = [] if not missing else [self._problem(
            ("deleted_products", "fields"),
            f"deleted products (order-line products gone from the shop) need "
            f"{' and '.join(missing)} from the order lines, or Metrilo drops those orders",
            f"add {', '.join(f'`{m}: <order-line column>`' for m in missing)} under "
            "deleted_products.fields, or set deleted_products.enabled: false",
        )]
        products = self._shop.catalogue.spec(Resource.PRODUCTS)
        id_spec = products.fields.get("id") if products is not None else None
        if id_spec is not None and id_spec.column is None and id_spec.expression is None:
            problems.append(self._problem(
                ("products", "fields", "id"),
                "deleted products need products.fields.id from a column or an expression",
                "map id from a column, or set deleted_products.enabled: false",
            ))
        orders_plan, _ = self._shop.plan("orders")
        products_plan, _ = self._shop.plan("products")
        if orders_plan is None or products_plan is None:
            return None, problems  # the resources' own problems are reported with them
        lines = orders_plan.children["products"]
        values, found = resolve_fields(self._shop.schema, self._shop.mapping,
                                       ("deleted_products", "fields"), fields,
                                       lines.relation, lines.joins)
        problems += found
        plan = derive.deleted_products(orders_plan, products_plan, values, fields)
        return (plan if not problems and plan is not None else None), problems

    def _problem(self, path: tuple[str | int, ...], what: str, fix: str) -> Problem:
        return Problem(self._shop.mapping.where(*path), what, fix)


def _unmerged(rows: Rows, key_label: str) -> Iterator[SourceRow]:
    """Each row on its own (a text key; rows sharing one stay apart), closing the stream."""
    shape = RowShape(rows.labels)
    key_of = key_reader([rows.labels.index(key_label)], (KeyKind.TEXT,))
    try:
        for row in rows.rows:
            yield SourceRow(str(key_of(row)), row, (), shape)
    finally:
        rows.close()


def _first_order(labels: Sequence[str]) -> Keep:
    """What state keeps of a guest: its first order (createdAt as composed, and key)."""
    def keep(row: SourceRow, record: SourceRecord) -> str:
        at = [row.shape.labels.index(label) for label in labels]
        return Basis(created_ms(record.payload), key_string([row.raw[i] for i in at])).text()
    return keep
