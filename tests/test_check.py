"""`check`: every kind of problem, each with its YAML location and a fix, found at once."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from cdc_sync.demo.generate import generate
from helpers.problems import check, find


@pytest.fixture
def shop(shop_url: str) -> str:
    """The demo shop (tiny) plus a table of flags with a BOOLEAN and a DATE column."""
    writer = sa.create_engine(shop_url)
    generate(writer, customers=4, categories=2, products=4, orders=6)
    meta = sa.MetaData()
    flags = sa.Table("flags", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("label", sa.String(20)), sa.Column("active", sa.Boolean),
                     sa.Column("born", sa.Date))
    meta.create_all(writer)
    with writer.begin() as conn:
        conn.execute(flags.insert(), [
            {"id": i, "label": f"f{i}", "active": i % 2 == 0, "born": date(2024, 1, 1 + i % 2)}
            for i in range(1, 6)
        ])
    writer.dispose()
    return shop_url


NAMES = """
    customers:
      table: customers
      cursor: updatd_at
      fields:
        email: email
        createdAt: created_at
        firstName: frist_name
        lastName: {template: "{last_name} {first_name}"}
      children:
        tags:
          query: SELECT customer_id, nam FROM tagz
          parent_key: customer_id
          value: nam
    categories:
      table: categoryz
      fields: {id: id, name: name}
    products:
      table: products
      fields:
        id: id
        name: name
        url: {template: "https://shop/{slgu}"}
      children:
        categories:
          table: product_categories
          parent_key: [product_id, category_id]
          value: category_id
    deleted_products:
      fields: {name: product_name}
    orders:
      table: orders
      joins:
        - {table: custmers, alias: c, on: {customer_id: id}}
      fields:
        id: id
        createdAt: created_at
        email: {template: "{email}"}
        status: status
      children:
        products:
          table: order_lines
          parent_key: order_id
          fields: {productId: product_id, quantity: quantity}
"""


def test_check_reports_every_naming_problem_at_once(shop: str) -> None:
    problems = check(shop, NAMES)
    assert "did you mean 'categories'" in str(find(problems, "(categories.table)",
                                                   "'categoryz' does not exist"))
    assert "did you mean 'customers'" in str(find(problems, "orders.joins[0]", "'custmers'"))
    assert "did you mean 'first_name'" in str(find(problems, "customers.fields.firstName",
                                                   "'frist_name'"))
    find(problems, "customers.cursor", "cursor column 'updatd_at'", "did you mean 'updated_at'")
    # An undefined join alias (x.name) is the loader's to report: test_mapping_joins.py
    find(problems, "products.fields.url", "template placeholder 'slgu'", "did you mean 'slug'")
    find(problems, "customers.children.tags.query", "the query fails", "tagz")
    find(problems, "products.children.categories.parent_key", "has 2 column(s) but the key has 1")
    find(problems, "products.fields", "needs the Metrilo field 'price'")
    find(problems, "orders.fields", "needs the Metrilo field 'amount'")
    find(problems, "deleted_products.fields", "need price from the order lines")
    find(problems, "orders.fields.email", "guest customers need orders.fields.email")
    # Every problem names a line of mappings.yaml and a fix.
    assert all(p.where.startswith("mappings.yaml:") and p.fix for p in problems)


DATABASE = """
    categories:
      table: flags
      key: born
      fields:
        id: id
        name: {column: active, type: timestamp}
        url: {column: born, type: number}
    customers:
      table: customers
      fields:
        email: email
        createdAt: created_at
        subscribed: created_at
    products:
      table: products
      where: no_such_column > 1
      fields: {id: id, name: name, price: price}
    orders:
      table: orders
      fields:
        id: id
        createdAt: created_at
        amount: total
        status: status
        ipAddress: {expression: "no_such_function(id)"}
      children:
        products:
          table: order_lines
          parent_key: order_id
          fields: {productId: product_id, quantity: {expression: "quantity +* 1"}}
"""


def test_check_reports_problems_only_the_database_can_find(shop: str) -> None:
    problems = check(shop, DATABASE)
    find(problems, "categories.fields.name", "type timestamp cannot apply", "BOOLEAN")
    find(problems, "categories.fields.url", "type number cannot apply", "DATE")
    find(problems, "customers.fields.subscribed", "type boolean cannot apply", "'created_at'")
    find(problems, "categories.key", "(born) is not unique", "'2024-01-0", "rows")
    find(problems, "products.where", "where fails", "no_such_column")
    find(problems, "orders.fields.ipAddress.expression", "the expression fails")
    find(problems, "orders.children.products.fields.quantity.expression", "the expression fails")


def test_a_fitting_mapping_has_no_problems(shop: str) -> None:
    demo = (Path(__file__).resolve().parent.parent / "mappings.yaml").read_text()
    assert check(shop, demo) == []


HIDDEN = """
    customers:
      table: customers
      fields:
        email: email
        createdAt: created_at
        subscribed: {column: created_at, type: boolean}
        firstName: {expression: "no_such_function(first_name)"}
      children:
        tags:
          query: SELECT customer_id, tag FROM no_such_table
          parent_key: customer_id
          value: tag
    orders:
      table: orders
      joins:
        - {table: customers, alias: c, on: {customer_id: no_such_column}}
      where: no_such_column > 1
      fields:
        id: id
        createdAt: created_at
        amount: total
        status: status
        email: c.email
      children:
        products:
          table: order_lines
          parent_key: order_id
          fields: {productId: product_id, quantity: {expression: "quantity +* 1"}}
"""


def test_a_failing_child_or_join_does_not_hide_the_resource_s_other_problems(shop: str) -> None:
    problems = check(shop, HIDDEN)
    find(problems, "customers.children.tags.query", "the query fails")
    find(problems, "customers.fields.firstName.expression", "the expression fails")
    find(problems, "customers.fields.subscribed", "type boolean cannot apply")
    find(problems, "orders.joins[0].on.customer_id", "'no_such_column'")
    find(problems, "orders.where", "where fails", "no_such_column")
    find(problems, "orders.children.products.fields.quantity.expression", "the expression fails")
