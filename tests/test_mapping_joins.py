"""Joins inside a child (a child's rows joined to other tables, chained, with constants) and
join aliases: loader errors, check problems, records through the sandbox, and change detection
that follows the joined tables with no extra configuration."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cdc_sync.core.dependencies import resource_dependencies
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.demo.generate import generate
from cdc_sync.mapping.loader import parse_mapping
from helpers.backends import COMBINATIONS
from helpers.problems import check, find, loader_problems
from helpers.product_texts import add_texts, options_named_in_german, product_texts, texts_added
from helpers.world import World
from helpers.worlds import world_fixture

FILE = Path("mappings.yaml")

world = world_fixture(COMBINATIONS, prepare=texts_added)


def _tags_by_join(data: dict[str, Any]) -> None:
    data["customers"]["children"]["tags"] = {
        "table": "customer_tags", "parent_key": "customer_id",
        "joins": [{"table": "tags", "alias": "t", "on": {"tag_id": "id"}}],
        "value": "t.name", "order_by": "t.name",
    }


def test_child_joins_read_what_a_raw_sql_child_read_and_reach_the_sandbox(world: World) -> None:
    by_query = world.composed(Resource.CUSTOMERS)
    world.edit_mapping(_tags_by_join)
    world.edit_mapping(options_named_in_german)
    assert world.composed(Resource.CUSTOMERS) == by_query
    assert any(payload.get("tags") for payload in by_query.values())
    report = world.sync()
    assert report.ok, report
    assert world.differences() == []
    with world.shop.connect() as conn:
        variant = conn.execute(sa.text(
            "SELECT v.id, v.product_id, v.name, p.sku FROM product_variants v "
            "JOIN products p ON p.id = v.product_id ORDER BY v.id")).first()
    assert variant is not None
    options = world.held("products", str(variant.product_id))["options"]
    option = next(o for o in options if o["id"] == str(variant.id))
    assert option["name"] == f"de {variant.product_id} / {variant.name}"
    assert option["sku"] == variant.sku


def test_check_resolves_names_in_child_joins(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    generate(engine, customers=3, categories=2, products=3, orders=3)
    engine.dispose()
    problems = check(sqlite_url, """
        customers:
          table: customers
          fields: {email: email, createdAt: created_at}
          children:
            tags:
              table: customer_tags
              parent_key: customer_id
              joins:
                - {table: tagz, alias: t, on: {tag_id: id}}
                - {table: tags, alias: u, on: {tag_idd: id, nam: {const: x}}}
              value: u.nam
              order_by: u.nme
    """)
    find(problems, "(customers.children.tags.joins[0].table)", "'tagz' does not exist",
         "did you mean 'tags'?")
    find(problems, "(customers.children.tags.joins[1].on.tag_idd)", "did you mean 'tag_id'?")
    find(problems, "(customers.children.tags.joins[1].on.nam)", "did you mean 'name'?")
    find(problems, "(customers.children.tags.value.column)", "'nam' is not a column of join 'u'")
    find(problems, "(customers.children.tags.order_by)", "'nme' is not a column of join 'u'",
         "did you mean 'name'?")


def test_undefined_and_repeated_join_aliases_are_reported_with_their_line() -> None:
    problems = loader_problems("""
        orders:
          table: orders
          joins:
            - {table: customers, alias: c, on: {customer_id: id, co.id: id}}
            - {table: countries, alias: co, on: {c.country_id: id}}
            - {table: countries, alias: co, on: {cc.id: id}}
          fields:
            id: id
            email: cu.email
            city: {template: "{co.name}, {cc.name}"}
            amount: {sum: payments.pp.amount}
          children:
            payments:
              table: payments
              parent_key: order_id
              joins: [{table: methods, alias: m, on: {method_id: id}}]
              value: c.name
              order_by: [m.name, p.name]
    """)
    by_where = {p.where: p for p in problems}
    assert set(by_where) == {
        "mappings.yaml:5 (orders.joins[0].on.co.id)",
        "mappings.yaml:7 (orders.joins[2].alias)",
        "mappings.yaml:7 (orders.joins[2].on.cc.id)",
        "mappings.yaml:10 (orders.fields.email)",
        "mappings.yaml:11 (orders.fields.city.template)",
        "mappings.yaml:12 (orders.fields.amount.sum)",
        "mappings.yaml:18 (orders.children.payments.value)",
        "mappings.yaml:19 (orders.children.payments.order_by)",
    }, problems
    later = by_where["mappings.yaml:5 (orders.joins[0].on.co.id)"]
    assert "not defined before this join" in later.what
    assert "did you mean 'c'?" in by_where["mappings.yaml:10 (orders.fields.email)"].fix
    assert "given twice" in by_where["mappings.yaml:7 (orders.joins[2].alias)"].what
    aggregate = by_where["mappings.yaml:12 (orders.fields.amount.sum)"]
    assert "children.payments's joins (defined: m)" in aggregate.what
    # A child sees its own joins only, not the resource's.
    assert "(defined: m)" in by_where["mappings.yaml:18 (orders.children.payments.value)"].what


def test_check_finds_a_child_join_that_repeats_child_rows(shop_url: str) -> None:
    engine = sa.create_engine(shop_url)
    generate(engine, customers=3, categories=2, products=3, orders=3)
    add_texts(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO product_variants (id, product_id, name, sku, price) "
                             "VALUES (900, 1, 'XL', 'x-xl', 1.5)"))
    engine.dispose()
    mapping = """
        products:
          table: products
          fields: {{id: id, name: name}}
          children:
            options:
              table: product_variants
              parent_key: product_id
              joins: [{{table: product_texts, alias: t, on: {on}}}]
              fields: {{id: id, name: t.title, price: price}}
    """
    problems = check(shop_url, mapping.format(on="{product_id: product_id}"))
    find(problems, "(products.children.options.joins)", "match several rows for one "
         "'product_variants' row", "comes out 2 times", "{const: 1}")
    fixed = "{product_id: product_id, lang_id: {const: 1}}"
    assert check(shop_url, mapping.format(on=fixed)) == []


def test_the_dependency_map_lists_child_joins_and_aggregated_children() -> None:
    loaded = parse_mapping(textwrap.dedent("""
        products:
          table: products
          cursor: updated_at
          joins:
            - {table: product_texts, alias: t, on: {id: product_id, lang_id: {const: 2}}}
          fields: {id: id, name: t.title, price: {max: options.price}}
          children:
            options:
              table: product_variants
              parent_key: product_id
              joins:
                - {table: products, alias: p, on: {product_id: id}}
                - {table: product_texts, alias: pt, on: {p.id: product_id, lang_id: {const: 2}},
                   cursor: updated_at}
              fields: {id: id, name: pt.title}
        orders:
          table: orders
          fields: {id: id, amount: {sum: payments.amount}}
          children:
            payments: {table: payments, parent_key: order_id}
            products: {table: order_lines, parent_key: order_id,
                       fields: {productId: product_id, quantity: quantity}}
    """), FILE)
    assert loaded.spec.products is not None
    assert loaded.spec.orders is not None
    found, unparsed = resource_dependencies(Resource.PRODUCTS, loaded.spec.products, "sqlite")
    assert unparsed == []
    seen = {(d.table, d.via): d.how() for d in found}
    assert seen == {
        ("products", "table"): "cursor updated_at",
        ("product_texts", "joins.t"): "reconciliation only",
        ("product_variants", "children.options"): "reconciliation only",
        ("products", "children.options.joins.p"): "reconciliation only",
        ("product_texts", "children.options.joins.pt"): "cursor updated_at",
    }
    found, _ = resource_dependencies(Resource.ORDERS, loaded.spec.orders, "sqlite")
    assert {(d.table, d.via) for d in found} == {
        ("orders", "table"), ("payments", "children.payments"),
        ("order_lines", "children.products")}


def test_a_change_in_a_child_joins_table_arrives_in_one_incremental_cycle(world: World) -> None:
    def edit(data: dict[str, Any]) -> None:
        options_named_in_german(data)
        data["products"]["children"]["options"]["joins"][1]["cursor"] = "updated_at"

    world.edit_mapping(edit)
    assert world.sync().ok
    with world.shop.connect() as conn:
        product_id = conn.execute(sa.text("SELECT MIN(product_id) FROM product_variants")).scalar()
    with world.shop.begin() as conn:
        conn.execute(product_texts.update()
                     .where(product_texts.c.product_id == product_id, product_texts.c.lang_id == 2)
                     .values(title="neu", updated_at=datetime(2030, 1, 1)))
        conn.execute(product_texts.update()  # another language: no record reads it
                     .where(product_texts.c.product_id == product_id, product_texts.c.lang_id == 1)
                     .values(title="new", updated_at=datetime(2030, 1, 1)))
    # No reconciliation slice: on a shop this small one covers every product, and would
    # resend the product even if the join's cursor were not followed.
    report = world.sync(CycleOptions(reconcile=False))
    assert report.ok, report.errors()
    products = report.resources[Resource.PRODUCTS]
    assert products.mode == "incremental"
    assert products.counts.sent == 1
    assert sum(r.counts.sent for r in report.resources.values()) == 1
    options = world.held("products", str(product_id))["options"]
    assert options
    assert all(o["name"].startswith("neu / ") for o in options)
