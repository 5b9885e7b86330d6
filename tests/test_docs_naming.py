"""The examples of docs/mappings.md on naming tables and the "self-child" run as documented.

Each test takes its YAML from the docs (so a wrong example fails here) and runs `check` and a
read against SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from cdc_sync.core.resources import Resource
from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.mapping.locations import read_yaml
from cdc_sync.source import ShopSource, connect_shop

DOCS = Path(__file__).resolve().parent.parent / "docs" / "mappings.md"


def docs_block(marker: str) -> dict[str, Any]:
    """The YAML code block of docs/mappings.md that contains `marker`."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"{len(found)} blocks with {marker!r}"
    # cdc-sync's own YAML reading (YAML 1.2 booleans: `on:` is a key, not True)
    loaded: dict[str, Any] = read_yaml(found[0]).data
    return loaded


@pytest.fixture
def shop(shop_url: str) -> str:
    writer = sa.create_engine(shop_url)
    meta = sa.MetaData()
    int_pk = [sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)]
    customers = sa.Table("customers", meta, *int_pk, sa.Column("email", sa.String(50)),
                         sa.Column("newsletter", sa.String(1)))
    orders = sa.Table("orders", meta, sa.Column("id", sa.Integer, primary_key=True,
                                                 autoincrement=False),
                      sa.Column("customer_id", sa.Integer), sa.Column("status", sa.Integer),
                      sa.Column("guest_email", sa.String(50)), sa.Column("total", sa.Numeric(8, 2)))
    lines = sa.Table("order_lines", meta, sa.Column("id", sa.Integer, primary_key=True,
                                                    autoincrement=False),
                     sa.Column("order_id", sa.Integer), sa.Column("product_id", sa.Integer),
                     sa.Column("qty", sa.Integer))
    products = sa.Table("products", meta, sa.Column("id", sa.Integer, primary_key=True,
                                                     autoincrement=False),
                        sa.Column("name", sa.String(20)), sa.Column("price", sa.Numeric(8, 2)),
                        sa.Column("category_id", sa.Integer))
    meta.create_all(writer)
    with writer.begin() as conn:
        conn.execute(customers.insert(), [{"id": 1, "email": "a@example.com", "newsletter": "Y"},
                                          {"id": 2, "email": "b@example.com", "newsletter": "N"},
                                          {"id": 3, "email": None, "newsletter": "Y"}])
        conn.execute(orders.insert(), [
            {"id": 10, "customer_id": 1, "status": 1, "guest_email": None, "total": 5},
            {"id": 11, "customer_id": 2, "status": 1, "guest_email": None, "total": 6},
            {"id": 12, "customer_id": 3, "status": 1, "guest_email": "g@example.com", "total": 7},
            {"id": 13, "customer_id": 1, "status": 0, "guest_email": None, "total": 8},
        ])
        conn.execute(lines.insert(), [{"id": i, "order_id": o, "product_id": 1, "qty": 2}
                                      for i, o in enumerate((10, 11, 12, 13), 1)])
        conn.execute(products.insert(), [
            {"id": 1, "name": "Mug", "price": 3, "category_id": 7},
            {"id": 2, "name": "Cup", "price": 4, "category_id": None},
        ])
    writer.dispose()
    return shop_url


def read(url: str, mapping: dict[str, Any], resource: Resource) -> dict[str, dict[str, Any]]:
    engine = connect_shop(url)
    try:
        loaded = parse_mapping(yaml.safe_dump(mapping, sort_keys=False), Path("mappings.yaml"))
        source = ShopSource(engine, loaded)
        assert source.check() == []
        return {r.key: r.payload for r in source.records(resource) if not r.problems}
    finally:
        engine.dispose()


def test_the_self_child_reads_a_category_column_of_the_product_row(shop: str) -> None:
    mapping = docs_block("# the product row itself")
    mapping["deleted_products"] = {"enabled": False}
    products = read(shop, mapping, Resource.PRODUCTS)
    assert products["1"]["categories"] == ["7"]
    assert products["2"]["categories"] == []


def test_expressions_and_where_name_the_own_table_and_join_aliases(shop: str) -> None:
    mapping = docs_block("where: c.newsletter = 'Y' AND orders.status <> 0")
    orders = mapping["orders"]
    orders["fields"].update({"id": "id", "createdAt": {"const": 1714564800000},
                             "amount": {"expression": "orders.total * 2"},
                             "status": {"const": "paid"}})
    orders["children"] = {"products": {
        "table": "order_lines", "parent_key": "order_id",
        "fields": {"productId": "product_id",
                   "quantity": {"expression": "order_lines.qty + 1"}}}}
    mapping["guest_customers"] = {"enabled": False}
    found = read(shop, mapping, Resource.ORDERS)
    assert sorted(found) == ["10", "12"]  # newsletter Y and status <> 0
    assert found["10"]["email"] == "a@example.com"
    assert found["12"]["email"] == "g@example.com"  # COALESCE fell back to the order's column
    assert found["10"]["amount"] == 10
    assert found["10"]["products"] == [{"productId": "1", "quantity": 3}]


def test_a_query_resource_is_named_src_in_expressions(shop: str) -> None:
    mapping = {"categories": {
        "query": "SELECT id, name FROM products", "key": "id",
        "fields": {"id": "id", "name": {"expression": "src.name"}},
    }}
    assert read(shop, mapping, Resource.CATEGORIES)["2"]["name"] == "Cup"
