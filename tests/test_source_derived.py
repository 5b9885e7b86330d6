"""Guest customers and deleted products, derived set-based from orders, on every database."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.source import ShopSource, connect_shop

T0 = datetime(2024, 1, 1, 10, 0, 0)
T1 = datetime(2024, 3, 1, 10, 0, 0)

MAPPING = """
    source_timezone: UTC
    customers:
      table: customers
      fields: {email: email, createdAt: created}
    guest_customers:
      fields: {firstName: first}
    products:
      table: products
      fields: {id: id, name: name, price: price}
    deleted_products:
      fields: {name: pname, price: price}
    orders:
      table: orders
      cursor: changed
      fields:
        id: id
        email: email
        createdAt: created
        amount: {const: 1}
        status: {const: paid}
      children:
        products:
          table: lines
          parent_key: order_id
          fields: {productId: product_id, quantity: {const: 1}}
"""


def ms(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def source(shop_url: str) -> Iterator[ShopSource]:
    writer = sa.create_engine(shop_url)
    meta = sa.MetaData()
    text, when, money = sa.String(80), sa.DateTime, sa.Numeric(8, 2)
    tables: dict[str, list[sa.Column[Any]]] = {
        "customers": [sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", text),
                      sa.Column("created", when)],
        "orders": [sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", text),
                   sa.Column("first", text), sa.Column("created", when),
                   sa.Column("changed", when)],
        "lines": [sa.Column("id", sa.Integer, primary_key=True), sa.Column("order_id", sa.Integer),
                  sa.Column("product_id", sa.Integer), sa.Column("pname", text),
                  sa.Column("price", money)],
        "products": [sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", text),
                     sa.Column("price", money)],
    }
    made = {name: sa.Table(name, meta, *columns) for name, columns in tables.items()}
    meta.create_all(writer)
    rows: dict[str, list[dict[str, Any]]] = {
        # A customer without an email must not hide every guest (NOT IN meets NULL).
        "customers": [{"id": 1, "email": "Known@Shop.com", "created": T0},
                      {"id": 2, "email": None, "created": T0}],
        "orders": [
            {"id": 1, "email": " known@shop.COM ", "first": "K", "created": T0, "changed": T0},
            {"id": 2, "email": "guest@x.com", "first": "Late", "created": T1, "changed": T0},
            {"id": 3, "email": " GUEST@x.com", "first": "Early", "created": T0, "changed": T0},
            {"id": 4, "email": "other@x.com", "first": "Solo", "created": T1, "changed": T1},
            {"id": 5, "email": None, "first": "Nobody", "created": T0, "changed": T0},
            {"id": 6, "email": "  ", "first": "Blank", "created": T0, "changed": T0},
        ],
        "lines": [
            {"id": 1, "order_id": 1, "product_id": 1, "pname": "Live", "price": Decimal("1.00")},
            {"id": 2, "order_id": 1, "product_id": 9, "pname": "Gone", "price": Decimal("5.00")},
            {"id": 3, "order_id": 2, "product_id": 9, "pname": "Gone v2", "price": Decimal("6")},
            {"id": 4, "order_id": 4, "product_id": 8, "pname": "Old", "price": Decimal("3.50")},
        ],
        "products": [{"id": 1, "name": "Live", "price": Decimal("1.00")}],
    }
    with writer.begin() as conn:
        for name, table_rows in rows.items():
            conn.execute(made[name].insert(), table_rows)
    writer.dispose()
    engine = connect_shop(shop_url)
    yield ShopSource(engine, parse_mapping(textwrap.dedent(MAPPING), Path("mappings.yaml")))
    engine.dispose()


def payloads(source: ShopSource, resource: Resource, **options: Any) -> dict[str, Any]:
    return {r.key: r.payload for r in source.records(resource, **options)}


def test_guest_customers_are_order_emails_without_a_customer_row(source: ShopSource) -> None:
    assert payloads(source, Resource.GUEST_CUSTOMERS) == {
        # The earliest order gives createdAt and the name; case and spaces do not split a guest.
        "guest@x.com": {"email": "guest@x.com", "createdAt": ms(T0), "firstName": "Early"},
        "other@x.com": {"email": "other@x.com", "createdAt": ms(T1), "firstName": "Solo"},
    }


def test_deleted_products_come_from_order_lines_of_products_gone_from_the_shop(
    source: ShopSource,
) -> None:
    assert payloads(source, Resource.DELETED_PRODUCTS) == {
        "8": {"id": "8", "name": "Old", "price": 3.5},
        "9": {"id": "9", "name": "Gone v2", "price": 6},
    }


def changed_guest_orders(source: ShopSource, since: datetime) -> list[tuple[str, str]]:
    """(guest key, first name) of each changed order, in the order cycle/guests.py groups."""
    changed = source.changed_guest_orders(since)
    assert changed is not None
    return [(r.key, changed.compose(r).payload["firstName"]) for r in changed.rows]


def test_since_derives_only_from_orders_changed_since(source: ShopSource) -> None:
    since = datetime(2024, 2, 1)
    assert changed_guest_orders(source, since) == [("other@x.com", "Solo")]
    assert list(payloads(source, Resource.DELETED_PRODUCTS, since=since)) == ["8"]
    assert source.cursor_high_water(Resource.GUEST_CUSTOMERS) == T1


def test_existing_keys_of_derived_resources(source: ShopSource) -> None:
    guests = ["guest@x.com", "known@shop.com", "nobody@x.com"]
    assert source.existing_keys(Resource.GUEST_CUSTOMERS, guests) == {"guest@x.com"}
    assert source.existing_keys(Resource.DELETED_PRODUCTS, ["9", "1", "7", "x"]) == {"9"}


def test_derived_resources_check_clean(source: ShopSource) -> None:
    assert source.check() == []
    assert Resource.GUEST_CUSTOMERS in source.mapped_resources()
    assert Resource.DELETED_PRODUCTS in source.mapped_resources()


def test_since_keeps_case_variants_blanks_and_customers_as_a_full_read_does(
    source: ShopSource, shop_url: str,
) -> None:
    # Changed: a variant of a customer's email, a guest's later order (its earliest order, an
    # unchanged variant, still names it), a missing and a blank email.
    writer = sa.create_engine(shop_url)
    orders = sa.table("orders", sa.column("id"), sa.column("changed"))
    with writer.begin() as conn:
        conn.execute(orders.update().where(orders.c.id.in_([1, 2, 5, 6])).values(changed=T1))
    writer.dispose()
    since = datetime(2024, 2, 1)
    # The changed orders normalised as a full read does, blanks left out; that a customer has
    # an email is decided against state (tests/test_guests_incremental.py).
    assert changed_guest_orders(source, since) == [
        ("guest@x.com", "Late"), ("known@shop.com", "K"), ("other@x.com", "Solo")]
    assert payloads(source, Resource.DELETED_PRODUCTS, since=since) == {
        "8": {"id": "8", "name": "Old", "price": 3.5},
        "9": {"id": "9", "name": "Gone v2", "price": 6},
    }


def test_mariadb_reads_guests_without_a_scan_of_customers_per_guest(source: ShopSource,
                                                                    shop_url: str) -> None:
    # MariaDB ran the NOT EXISTS form as a dependent subquery, one scan of every customer per
    # guest (quadratic: 67.9 s at 100k orders); the NOT IN form is materialized once.
    if not shop_url.startswith("mysql"):
        pytest.skip("the plan shape checked here is MariaDB's")
    stmt = source._derived_or_raise(Resource.GUEST_CUSTOMERS).select("mysql")
    engine = sa.create_engine(shop_url)
    try:
        with engine.connect() as conn:
            sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
            plan = conn.exec_driver_sql(f"EXPLAIN {sql}").mappings().all()
    finally:
        engine.dispose()
    kinds = {(row["table"], row["select_type"]) for row in plan}
    assert ("customers", "MATERIALIZED") in kinds, plan
    assert not any(kind == "DEPENDENT SUBQUERY" for _, kind in kinds), plan
