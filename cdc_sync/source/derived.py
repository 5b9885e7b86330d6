"""Records the shop has no table for: guest customers and deleted products (set-based SQL).

Guest customers: one per normalized order email (LOWER(TRIM(email))) that no customer row
has, with the earliest order's createdAt and name fields (a window function picks it). Each
guest row also carries that first order's key (`GUEST_ORDER` labels, composed into no field):
state keeps it, so an incremental cycle can derive guests from the changed orders alone
(`DerivedPlan.changes`, decided in cycle/guests.py) instead of normalizing every order's email.
Deleted products: one per order-line product id the products source no longer holds
(NOT EXISTS), with name and price read off the order lines (MAX), so Metrilo keeps the orders;
an incremental cycle reads those of the lines of the orders it re-reads (changed since the
mark, or by key: cycle/deleted.py).
Both work on PostgreSQL, MariaDB/MySQL and SQLite (3.25+ for window functions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cdc_sync.mapping.labels import expression_label
from cdc_sync.mapping.model import FieldSpec
from cdc_sync.source.digests import row_number
from cdc_sync.source.keys import KeyKind, is_numeric, order_expression
from cdc_sync.source.plan import Column, ResourcePlan
from cdc_sync.source.query import key_in, parent_exists

GUEST_KEY = "cdc_guest_email"
GUEST_ORDER = "cdc_guest_order"  # + _0, _1...: the key columns of the guest's first order
PRODUCT_KEY = "cdc_product_id"
_RANK = "cdc_rank"

if TYPE_CHECKING:
    from cdc_sync.source.query import AnySelect


@dataclass(frozen=True)
class DerivedPlan:
    """A derived resource: how to select its rows, their key, and the fields compose applies."""

    key_label: str
    kind: KeyKind
    fields: dict[str, FieldSpec]
    # (dialect, since, keys, orders): `orders`, the keys of the orders to derive from
    rows: Callable[[str, Any, Sequence[str] | None, Sequence[str] | None], AnySelect]
    # Guests: every order changed since a mark, with the guest row's columns, in guest key
    # order and, within a guest, in first-order order (dialect, since); None without a cursor.
    changes: Callable[[str, Any], AnySelect] | None = None
    basis: tuple[str, ...] = ()  # the labels of the first order's key columns (guests)
    # Guests: one aggregate statement per input the derivation reads (orders, customers), each
    # one row (COUNT(*), SUM of a per-row number) for `inputs_checksum` (dialect); None: none.
    inputs: Callable[[str], list[AnySelect]] | None = None

    def select(self, dialect: str, *, since: Any = None, keys: Sequence[str] | None = None,
               orders: Sequence[str] | None = None) -> AnySelect:
        return self.rows(dialect, since, keys, orders)

    def changed(self, dialect: str, since: Any) -> AnySelect | None:
        """The orders changed since `since`, one row each, as `changes` says (guests only)."""
        return None if self.changes is None else self.changes(dialect, since)


def field_value(plan: ResourcePlan, name: str, spec: FieldSpec) -> Column | None:
    """The SQL value of a column or expression field of `plan` (None for templates/consts)."""
    if spec.column is not None:
        return plan.values.get(spec.column)
    if spec.expression is not None:
        return plan.values.get(expression_label(name))
    return None


def _normalized(value: Column) -> Column:
    return sa.func.lower(sa.func.trim(value))


def guest_customers(orders: ResourcePlan, customers: ResourcePlan | None,
                    extra: dict[str, Column], fields: dict[str, FieldSpec]) -> DerivedPlan | None:
    """Guests from orders; `extra` are the guest fields' values read from the orders source."""
    email_spec = orders.spec.fields.get("email")
    created_spec = orders.spec.fields.get("createdAt")
    if email_spec is None or created_spec is None:
        return None
    email = field_value(orders, "email", email_spec)
    created = field_value(orders, "createdAt", created_spec)
    if email is None or created is None:
        return None
    values = {label: orders.values[label] for label in _labels(orders, email_spec, created_spec)}
    values.update(extra)
    values.update((f"{GUEST_ORDER}_{i}", column) for i, column in enumerate(orders.key))
    composed = {**fields, "email": email_spec, "createdAt": created_spec}
    first_order = [created, *orders.key]

    def rows(dialect: str, since: Any, keys: Sequence[str] | None,
             order_keys: Sequence[str] | None) -> AnySelect:
        if since is not None or order_keys is not None:  # it would normalise every order's email
            raise ValueError("guest customers of changed orders are derived from those orders "
                             "(DerivedPlan.changed, cycle/guests.py), not by this query")
        guest = _normalized(email)
        rank = sa.func.row_number().over(partition_by=guest, order_by=first_order)
        inner = sa.select(guest.label(GUEST_KEY), *(v.label(k) for k, v in values.items()),
                          rank.label(_RANK)).select_from(orders.from_clause)
        inner = inner.where(email.is_not(None))
        if orders.where is not None:
            inner = inner.where(orders.where)
        inner = inner.where(sa.func.trim(email) != "")
        if keys is not None:
            inner = inner.where(key_in([guest], keys, dialect))
        ranked = inner.subquery("cdc_guests")
        outer = sa.select(*(c for c in ranked.c if c.name != _RANK)).where(ranked.c[_RANK] == 1)
        if customers is not None:
            outer = outer.where(_no_customer_has(customers, ranked.c[GUEST_KEY], dialect))
        return outer.order_by(order_expression(ranked.c[GUEST_KEY], KeyKind.TEXT, dialect))

    def changes(dialect: str, since: Any) -> AnySelect:
        """An index range on the orders' cursor, like the orders' own incremental read: no
        customers anti-join and no window (cycle/guests.py decides per email against state)."""
        assert orders.cursor is not None
        guest = _normalized(email)
        stmt = sa.select(guest.label(GUEST_KEY), *(v.label(k) for k, v in values.items()))
        stmt = stmt.select_from(orders.from_clause).where(
            orders.cursor >= since, email.is_not(None), sa.func.trim(email) != "")
        if orders.where is not None:
            stmt = stmt.where(orders.where)
        return stmt.order_by(order_expression(guest, KeyKind.TEXT, dialect), *first_order)

    def inputs(dialect: str) -> list[AnySelect]:
        """Every column the guest rows select from the orders (their joins included), and
        the customers' normalized emails: a change to any of them changes a checksum."""
        read = [_checksum(orders, list(values.values()), dialect)]
        customer_email = _customer_email(customers)
        if customers is not None and customer_email is not None:
            read.append(_checksum(customers, [_normalized(customer_email)], dialect))
        return read

    basis = tuple(f"{GUEST_ORDER}_{i}" for i in range(len(orders.key)))
    return DerivedPlan(GUEST_KEY, KeyKind.TEXT, composed, rows,
                       changes if orders.cursor is not None else None, basis, inputs)


def _checksum(plan: ResourcePlan, columns: list[Column], dialect: str) -> AnySelect:
    """COUNT(*) and the SUM of each row's number over the plan's rows: one scan, no sort."""
    stmt = sa.select(sa.func.count(), sa.func.sum(row_number(columns, dialect)))
    stmt = stmt.select_from(plan.from_clause)
    return stmt if plan.where is None else stmt.where(plan.where)


def _customer_email(customers: ResourcePlan | None) -> Column | None:
    email_spec = customers.spec.fields.get("email") if customers is not None else None
    if customers is None or email_spec is None:
        return None
    return field_value(customers, "email", email_spec)


def _labels(plan: ResourcePlan, *specs: FieldSpec) -> list[str]:
    labels = []
    for name, spec in plan.spec.fields.items():
        if spec in specs:
            labels.append(spec.column if spec.column is not None else expression_label(name))
    return labels


def _not_held(live_ids: sa.Subquery, product_id: Column,
              narrowed: bool) -> sa.ColumnElement[bool]:
    """The order line's product is not among the live ones.

    A full read anti-joins every line with the products (NOT EXISTS). A read of some orders'
    lines counts per line instead, which the planner cannot turn into that anti-join: it
    scanned all order lines to anti-join them first, misled by a 10x estimate of the changed
    orders (1.2 s at 3M lines); counting, it starts from the changed orders' lines (30 ms).
    """
    same_id = live_ids.c.id == product_id
    if not narrowed:
        return ~sa.select(sa.literal(1)).select_from(live_ids).where(same_id).exists()
    return sa.select(sa.func.count()).select_from(live_ids).where(same_id).scalar_subquery() == 0


def _no_customer_has(customers: ResourcePlan, guest: Column,
                     dialect: str) -> sa.ColumnElement[bool]:
    """No customer row has the guest's email: an anti-join each database runs in linear time.

    PostgreSQL gets NOT EXISTS, which it runs as a hash anti-join over every customer (it
    would run NOT IN as a hashed subplan only while the emails fit in work_mem, and as a scan
    of them per guest beyond). MariaDB runs that NOT EXISTS as a dependent subquery scanning
    every customer per guest (quadratic: 67.9 s at 100k orders, 266.9 s at 200k), but NOT IN
    as one materialized, indexed set of the emails (1.8 s at 100k); SQLite likewise builds an
    index of the NOT IN list once. NOT IN is NULL-sensitive: a customer without an email
    would hide every guest, so the list leaves NULLs out.

    Not narrowed to the guests' emails when the guests are (`keys`): with both sides narrowed
    PostgreSQL chose a nested-loop anti-join that normalised customer emails once per guest
    (1.8 s at 100k orders, against 0.2 s for the hash anti-join over every customer).
    """
    email = _customer_email(customers)
    if email is None:
        return sa.true()
    normalized = _normalized(email)
    known = sa.select(normalized.label("email")).select_from(customers.from_clause)
    if customers.where is not None:
        known = known.where(customers.where)
    if dialect != "postgresql":
        return guest.not_in(known.where(email.is_not(None)).correlate(None))
    emails = known.subquery("cdc_customer_emails")
    return ~sa.select(sa.literal(1)).select_from(emails).where(emails.c.email == guest).exists()


def deleted_products(orders: ResourcePlan, products: ResourcePlan, line_values: dict[str, Column],
                     fields: dict[str, FieldSpec]) -> DerivedPlan | None:
    """Products order lines reference that the products source does not hold."""
    lines = orders.children.get("products")
    id_spec = products.spec.fields.get("id")
    if lines is None or lines.spec.fields is None or id_spec is None:
        return None
    product_id_spec = lines.spec.fields.get("productId")
    if product_id_spec is None or product_id_spec.column is None:
        return None
    product_id = lines.values.get(product_id_spec.column)
    live_id = field_value(products, "id", id_spec)
    if product_id is None or live_id is None:
        return None
    kind = KeyKind.NUMBER if is_numeric(product_id.type) else KeyKind.TEXT
    composed = {**fields, "id": FieldSpec(column=PRODUCT_KEY, type=id_spec.type)}

    def rows(dialect: str, since: Any, keys: Sequence[str] | None,
             order_keys: Sequence[str] | None) -> AnySelect:
        narrowed = since is not None or order_keys is not None
        live = sa.select(live_id.label("id")).select_from(products.from_clause)
        if products.where is not None:
            live = live.where(products.where)
        live_ids = live.subquery("cdc_live_products")
        aggregates = (sa.func.max(v).label(k) for k, v in line_values.items())
        stmt = sa.select(product_id.label(PRODUCT_KEY), *aggregates)
        stmt = stmt.select_from(lines.from_clause)
        stmt = stmt.where(product_id.is_not(None), _not_held(live_ids, product_id, narrowed))
        if lines.where is not None:
            stmt = stmt.where(lines.where)
        if narrowed:  # the lines of the orders changed since, or of these orders
            stmt = stmt.where(parent_exists(orders, lines, since=since, keys=order_keys,
                                            dialect=dialect))
        if keys is not None:
            stmt = stmt.where(key_in([product_id], keys, dialect))
        return stmt.group_by(product_id).order_by(order_expression(product_id, kind, dialect))

    return DerivedPlan(PRODUCT_KEY, kind, composed, rows)
