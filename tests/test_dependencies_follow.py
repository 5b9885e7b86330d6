"""Change detection follows every table a record reads (issue 12), on real shops.

A shop with payments (an order's amount is a sum over them, in raw SQL), M:N category links,
the customer's email reached through a join, order lines, tags and coupons; some tables have
a cursor or a watch, some none. Every insert and update in a table with a cursor or a watch
reaches the sandbox within one incremental cycle, and nothing else is sent; a change in a
table with neither waits for reconciliation (and then arrives).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_sync.core.report import CycleReport
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.mapping.loader import load_mapping
from cdc_sync.sandbox import Sandbox
from helpers.world import SECRET, TOKEN, World

MAPPING = """\
version: 1
sync: {full_reconcile_minutes: 600}
guest_customers: {enabled: false}
deleted_products: {enabled: false}
customers:
  table: customers
  cursor: updated_at
  fields: {email: email, createdAt: created_at, firstName: first_name}
  children:
    tags:
      query: SELECT ct.customer_id, t.name FROM customer_tags ct JOIN tags t ON t.id = ct.tag_id
      parent_key: customer_id
      value: name
  watch:
    - table: customer_tags
      cursor: {column: id, kind: append}
      parent_key: customer_id
categories:
  table: categories
  fields: {id: id, name: name}
products:
  table: products
  cursor: updated_at
  fields: {id: id, name: name, price: price}
  children:
    categories:
      table: product_categories
      parent_key: product_id
      value: category_id
      cursor: {column: id, kind: append}
orders:
  table: orders
  cursor: updated_at
  joins:
    - table: customers
      alias: c
      on: {customer_id: id}
      cursor: updated_at
  fields:
    id: id
    email: c.email
    createdAt: created_at
    status: status
    amount:
      expression: (SELECT COALESCE(SUM(p.amount), 0) FROM payments p WHERE p.order_id = orders.id)
  children:
    products:
      table: order_lines
      parent_key: order_id
      cursor: updated_at
      fields: {productId: product_id, quantity: qty}
    coupons:
      table: order_coupons
      parent_key: order_id
      value: code
  watch:
    - table: payments
      cursor: {column: id, kind: append}
      parent_key: order_id
"""

meta = sa.MetaData()
_id = sa.Integer  # keys the tests choose (autoincrement differs per backend)
customers = sa.Table("customers", meta, sa.Column("id", _id, primary_key=True,
                                                   autoincrement=False),
                     sa.Column("email", sa.String(100)), sa.Column("first_name", sa.String(50)),
                     sa.Column("created_at", sa.DateTime), sa.Column("updated_at", sa.DateTime))
tags = sa.Table("tags", meta, sa.Column("id", _id, primary_key=True, autoincrement=False),
                sa.Column("name", sa.String(50)))
customer_tags = sa.Table("customer_tags", meta,
                         sa.Column("id", _id, primary_key=True, autoincrement=False),
                         sa.Column("customer_id", _id), sa.Column("tag_id", _id))
categories = sa.Table("categories", meta, sa.Column("id", _id, primary_key=True,
                                                     autoincrement=False),
                      sa.Column("name", sa.String(50)))
products = sa.Table("products", meta, sa.Column("id", _id, primary_key=True, autoincrement=False),
                    sa.Column("name", sa.String(50)), sa.Column("price", sa.Numeric(10, 2)),
                    sa.Column("updated_at", sa.DateTime))
product_categories = sa.Table("product_categories", meta,
                              sa.Column("id", _id, primary_key=True, autoincrement=False),
                              sa.Column("product_id", _id), sa.Column("category_id", _id))
orders = sa.Table("orders", meta, sa.Column("id", _id, primary_key=True, autoincrement=False),
                  sa.Column("customer_id", _id), sa.Column("status", sa.String(20)),
                  sa.Column("created_at", sa.DateTime), sa.Column("updated_at", sa.DateTime))
order_lines = sa.Table("order_lines", meta, sa.Column("id", _id, primary_key=True,
                                                       autoincrement=False),
                       sa.Column("order_id", _id), sa.Column("product_id", _id),
                       sa.Column("qty", _id), sa.Column("updated_at", sa.DateTime))
order_coupons = sa.Table("order_coupons", meta, sa.Column("order_id", _id, primary_key=True),
                         sa.Column("code", sa.String(20), primary_key=True))
payments = sa.Table("payments", meta, sa.Column("id", _id, primary_key=True, autoincrement=False),
                    sa.Column("order_id", _id), sa.Column("amount", sa.Numeric(10, 2)))

T0 = datetime(2026, 1, 1, 12, 0, 0)


def _days_ago(days: int) -> datetime:
    # Spread out, so that the cursors' overlap re-reads only the latest row of each table.
    return T0 - timedelta(days=days)


def _seed(shop: sa.Engine) -> None:
    meta.create_all(shop)
    with shop.begin() as conn:
        conn.execute(customers.insert(), [
            {"id": i, "email": f"c{i}@shop.test", "first_name": f"C{i}", "created_at": T0,
             "updated_at": _days_ago(i)} for i in range(1, 5)])
        conn.execute(tags.insert(), [{"id": 1, "name": "vip"}, {"id": 2, "name": "b2b"}])
        conn.execute(customer_tags.insert(), [{"id": 1, "customer_id": 4, "tag_id": 1}])
        conn.execute(categories.insert(), [{"id": i, "name": f"K{i}"} for i in (1, 2, 3)])
        conn.execute(products.insert(), [
            {"id": i, "name": f"P{i}", "price": Decimal("9.50"), "updated_at": _days_ago(i)}
            for i in (1, 2, 3)])
        conn.execute(product_categories.insert(), [
            {"id": 1, "product_id": 1, "category_id": 1},
            {"id": 2, "product_id": 2, "category_id": 2}])
        conn.execute(orders.insert(), [
            {"id": i, "customer_id": 1 + i % 4, "status": "paid", "created_at": T0,
             "updated_at": _days_ago(i)} for i in range(1, 9)])
        conn.execute(order_lines.insert(), [
            {"id": i, "order_id": i, "product_id": 1 + i % 3, "qty": 1, "updated_at": _days_ago(i)}
            for i in range(1, 9)])
        conn.execute(payments.insert(), [
            {"id": i, "order_id": i, "amount": Decimal("10.00")} for i in range(1, 9)])
        conn.execute(order_coupons.insert(), [{"order_id": 1, "code": "SPRING"}])


@contextmanager
def seeded_world(tmp_path: Path, shop_url: str, state_url: str, mapping: str) -> Iterator[World]:
    """A world on the seeded shop under `mapping`, after a first cycle that went well."""
    shop = sa.create_engine(shop_url)
    _seed(shop)
    path = tmp_path / "mappings.yaml"
    path.write_text(mapping, encoding="utf-8")
    with Sandbox(token=TOKEN, secret=SECRET) as sandbox:
        found = World(tmp_path, shop_url, state_url, sandbox, shop, load_mapping(path))
        try:
            first = found.sync()
            assert first.ok, first.errors()
            yield found
        finally:
            found.close()
            shop.dispose()


@pytest.fixture
def world(tmp_path: Path, shop_url: str, state_url: str) -> Iterator[World]:
    with seeded_world(tmp_path, shop_url, state_url, MAPPING) as found:
        yield found


def _change(world: World, stmt: Any) -> None:
    with world.shop.begin() as conn:
        conn.execute(stmt)


def _sent(report: CycleReport) -> dict[str, int]:
    return {r.value: rep.counts.sent for r, rep in report.resources.items() if rep.counts.sent}


def _incremental(world: World) -> dict[str, int]:
    # No reconciliation slice: slices (a key a cycle here) walk these few rows and could
    # resend a changed record in the place of the join, child or watch a step names.
    report = world.sync(CycleOptions(reconcile=False))
    assert report.ok, report.errors()
    assert {rep.mode.value for rep in report.resources.values()} <= {"incremental", "full"}
    for resource in (Resource.CUSTOMERS, Resource.PRODUCTS, Resource.ORDERS):
        assert report.resources[resource].mode.value == "incremental"
    return _sent(report)


def _order(world: World, order_id: int) -> dict[str, Any]:
    return world.held("orders", str(order_id))


LATER = T0 + timedelta(hours=1)


def test_every_change_in_a_followed_table_arrives_in_one_cycle_and_nothing_else(
    world: World
) -> None:
    assert _incremental(world) == {}  # nothing changed: nothing sent

    # A new payment (append key, through a watch on raw SQL): the order's amount follows.
    _change(world, payments.insert().values(id=9, order_id=3, amount=Decimal("5.25")))
    assert _incremental(world) == {"orders": 1}
    assert _order(world, 3)["amount"] == 15.25

    # The customer's email changed (a join with a cursor): their orders carry the new one.
    _change(world, customers.update().where(customers.c.id == 2)
            .values(email="new2@shop.test", updated_at=LATER))
    assert _incremental(world) == {"customers": 1, "orders": 2}
    assert {_order(world, i)["email"] for i in (1, 5)} == {"new2@shop.test"}

    # A category link added (an M:N link with an append key on the child).
    _change(world, product_categories.insert().values(id=3, product_id=1, category_id=3))
    assert _incremental(world) == {"products": 1}
    assert world.held("products", "1")["categories"] == ["1", "3"]

    # An order line moved to another product (a child with a timestamp cursor).
    _change(world, order_lines.update().where(order_lines.c.id == 4)
            .values(product_id=3, updated_at=LATER + timedelta(minutes=1)))
    assert _incremental(world) == {"orders": 1}
    assert [p["productId"] for p in _order(world, 4)["products"]] == ["3"]

    # A tag link added (a watch on the table a raw child query reads).
    _change(world, customer_tags.insert().values(id=2, customer_id=3, tag_id=2))
    assert _incremental(world) == {"customers": 1}
    assert world.held("customers", "c3@shop.test")["tags"] == ["b2b"]

    # Metrilo keys customers by email and has no delete: the old address stays there.
    assert world.differences(extra_ok={"customers": {"c2@shop.test"}}) == []


def test_a_change_in_a_table_without_cursor_or_watch_waits_for_reconciliation(
    world: World
) -> None:
    _change(world, order_coupons.insert().values(order_id=2, code="VIP10"))
    _change(world, tags.update().where(tags.c.id == 1).values(name="gold"))
    assert _incremental(world) == {}
    full = world.sync(CycleOptions(full=True))
    assert _sent(full) == {"customers": 1, "orders": 1}
    assert _order(world, 2)["coupons"] == ["VIP10"]
    assert world.differences() == []


def test_a_dependency_mark_advances_only_after_its_parents_were_delivered(
    world: World
) -> None:
    _change(world, payments.insert().values(id=9, order_id=6, amount=Decimal("1.00")))
    world.sandbox.faults.update({"error_rate": 1.0})  # Metrilo down for the whole cycle
    down = world.sync()
    assert not down.ok
    world.sandbox.faults.clear()
    assert _incremental(world) == {"orders": 1}
    assert _order(world, 6)["amount"] == 11.0
    assert _incremental(world) == {}


def test_an_aggregate_over_a_child_with_an_append_key_follows_new_rows(
    tmp_path: Path, sqlite_url: str, state_url: str
) -> None:
    # Mapping power instead of raw SQL: the sum over a child needs no watch.
    text = MAPPING.replace(
        "    amount:\n      expression: (SELECT COALESCE(SUM(p.amount), 0) FROM payments p "
        "WHERE p.order_id = orders.id)\n",
        "    amount: {sum: payments.amount}\n",
    ).replace(
        "  watch:\n    - table: payments\n      cursor: {column: id, kind: append}\n"
        "      parent_key: order_id\n",
        "    payments:\n      table: payments\n      parent_key: order_id\n"
        "      cursor: {column: id, kind: append}\n",
    )
    assert "sum: payments.amount" in text
    assert "    payments:\n" in text
    with seeded_world(tmp_path, sqlite_url, state_url, text) as world:
        _change(world, payments.insert().values(id=9, order_id=5, amount=Decimal("2.50")))
        assert _incremental(world) == {"orders": 1}
        assert _order(world, 5)["amount"] == 12.5
