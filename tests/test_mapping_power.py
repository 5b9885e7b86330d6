"""Mapping power that keeps people out of raw SQL: constant join conditions, child joins,
aggregates over a child. Loader errors, check problems, and records through the sandbox."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_sync.core.dependencies import resource_dependencies
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.demo.generate import generate
from cdc_sync.errors import MappingError, Problem
from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.mapping.related import JoinConst
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.source.plan import plan_resource
from cdc_sync.source.query import rows_select
from cdc_sync.source.reflect import ShopSchema
from cdc_sync.source.sample import sample_findings
from helpers.backends import COMBINATIONS
from helpers.cli import run_cli
from helpers.problems import check, find
from helpers.world import World, demo_world
from helpers.worlds import world_fixture

FILE = Path("mappings.yaml")


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(MappingError) as raised:
        parse_mapping(textwrap.dedent(text), FILE)
    return raised.value.problems


# --- the shop: the demo shop plus product texts per language (PrestaShop's product_lang) ---

texts_meta = sa.MetaData()
product_texts = sa.Table(
    "product_texts", texts_meta,
    sa.Column("product_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("lang_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("lang_code", sa.String(5), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False, default=datetime(2024, 1, 1)),
)
LANGUAGES = {1: "en", 2: "de"}


def add_texts(shop: sa.Engine) -> None:
    texts_meta.create_all(shop)
    with shop.begin() as conn:
        ids = conn.execute(sa.text("SELECT id FROM products")).scalars().all()
        conn.execute(product_texts.insert(), [
            {"product_id": pid, "lang_id": lang, "lang_code": code, "title": f"{code} {pid}"}
            for pid in ids for lang, code in LANGUAGES.items()
        ])


def _texts_added(world: World) -> None:
    add_texts(world.shop)


world = world_fixture(COMBINATIONS, prepare=_texts_added)


# --- constant join conditions ---


def _joined_texts(on: dict[str, Any]) -> Any:
    def edit(data: dict[str, Any]) -> None:
        data["products"]["joins"] = [{"table": "product_texts", "alias": "t", "on": on}]
        data["products"]["fields"]["name"] = "t.title"

    return edit


def test_a_constant_in_on_picks_the_joined_row_end_to_end(world: World) -> None:
    world.edit_mapping(_joined_texts({"id": "product_id", "lang_id": {"const": 2}}))
    report = world.sync()
    assert report.ok, report
    assert [world.held("products", str(pid))["name"] for pid in (1, 2, 3)] == [
        "de 1", "de 2", "de 3"]
    # A text constant against a text column
    world.edit_mapping(_joined_texts({"id": "product_id", "lang_code": {"const": "en"}}))
    assert world.sync().ok
    assert world.held("products", "1")["name"] == "en 1"
    # and a number against a text column (bound as text)
    with world.shop.begin() as conn:
        conn.execute(product_texts.update().where(product_texts.c.lang_id == 2)
                     .values(lang_code="7"))
    world.edit_mapping(_joined_texts({"id": "product_id", "lang_code": {"const": 7}}))
    assert world.sync().ok
    assert world.held("products", "1")["name"] == "de 1"


def test_a_constant_is_bound_as_a_parameter_never_pasted(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    texts_meta.create_all(engine)
    hostile = "de' OR '1'='1"
    loaded = parse_mapping(textwrap.dedent(f"""
        products:
          table: product_texts
          key: [product_id, lang_id]
          joins:
            - table: product_texts
              alias: other
              on: {{product_id: product_id, lang_code: {{const: "{hostile}"}}}}
          fields: {{id: product_id, name: other.title}}
    """), FILE)
    spec = loaded.spec.products
    assert spec is not None
    plan, problems = plan_resource(ShopSchema(engine), loaded, "products", spec)
    assert plan is not None, problems
    compiled = rows_select(plan, "sqlite").compile(engine)
    assert hostile not in str(compiled)
    assert hostile in compiled.params.values()
    engine.dispose()


def test_on_entries_load_as_pairs_and_constants() -> None:
    loaded = parse_mapping(textwrap.dedent("""
        products:
          table: p
          joins:
            - table: product_lang
              alias: pl
              on: {id_product: id_product, id_lang: {const: 1}, iso: {const: de}, on: {const: true}}
          fields: {id: id, name: pl.name}
    """), FILE)
    assert loaded.spec.products is not None
    join = loaded.spec.products.joins[0]
    assert join.pairs() == {"id_product": "id_product"}
    assert join.constants() == {"id_lang": 1, "iso": "de", "on": True}
    assert join.on["id_lang"] == JoinConst(const=1)


@pytest.mark.parametrize("entry", ["1", "{const: [1, 2]}", "{const: 1, also: 2}", "{value: 1}"])
def test_a_malformed_on_entry_says_how_to_write_a_constant(entry: str) -> None:
    problems = problems_of(f"""
        products:
          table: p
          joins:
            - table: product_lang
              alias: pl
              on:
                id_product: id_product
                id_lang: {entry}
          fields: {{id: id}}
    """)
    assert len(problems) == 1, problems
    assert problems[0].where == "mappings.yaml:9 (products.joins[0].on.id_lang)"
    assert "`joined_column: {const: value}`" in problems[0].what


def test_check_finds_unknown_constant_columns_with_a_hint(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    texts_meta.create_all(engine)
    sa.Table("items", texts_meta, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("lang_id", sa.Integer)).create(engine)
    engine.dispose()
    problems = check(sqlite_url, """
        products:
          table: items
          joins:
            - table: product_texts
              alias: t
              on: {id: product_id, lang_idd: {const: 1}}
            - table: product_texts
              alias: u
              on: {id: product_id, lang_code: {const: de}}
            - table: product_texts
              alias: v
              on: {t.product_idd: product_id}
          fields: {id: id, name: t.title, price: {const: 1}}
    """)
    find(problems, "(products.joins[0].on.lang_idd)", "'lang_idd' is not a column of join 't'",
         "did you mean 'lang_id'?")
    find(problems, "(products.joins[2].on.t.product_idd)", "did you mean 'product_id'?")
    assert not [p for p in problems if "joins[1]" in p.where]
    # A resource column named as if it were the joined table's: the hint says where it goes.
    problems = check(sqlite_url, """
        products:
          table: product_texts
          key: [product_id, lang_id]
          joins:
            - table: items
              alias: i
              on: {product_id: id, lang_code: {const: de}}
          fields: {id: product_id, name: title, price: {const: 1}}
    """)
    find(problems, "(products.joins[0].on.lang_code)", "compares the joined table's column",
         "where:")


# --- joins inside a child ---


def _tags_by_join(data: dict[str, Any]) -> None:
    data["customers"]["children"]["tags"] = {
        "table": "customer_tags", "parent_key": "customer_id",
        "joins": [{"table": "tags", "alias": "t", "on": {"tag_id": "id"}}],
        "value": "t.name", "order_by": "t.name",
    }


def _options_named_in_german(data: dict[str, Any]) -> None:
    # variant -> its product -> the product's German text: a chain with a constant
    data["products"]["children"]["options"].update({
        "joins": [
            {"table": "products", "alias": "p", "on": {"product_id": "id"}},
            {"table": "product_texts", "alias": "t",
             "on": {"p.id": "product_id", "lang_id": {"const": 2}}},
        ],
        "fields": {"id": "id", "name": {"template": "{t.title} / {name}"}, "sku": "p.sku",
                   "price": "price"},
        "order_by": ["t.title", "id"],
    })


def _records(world: World, resource: Resource) -> dict[str, Any]:
    engine = connect_shop(world.shop_url)
    try:
        return {r.key: r.payload for r in ShopSource(engine, world.mapping).records(resource)}
    finally:
        engine.dispose()


def test_child_joins_read_what_a_raw_sql_child_read_and_reach_the_sandbox(world: World) -> None:
    by_query = _records(world, Resource.CUSTOMERS)
    world.edit_mapping(_tags_by_join)
    world.edit_mapping(_options_named_in_german)
    assert _records(world, Resource.CUSTOMERS) == by_query
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


# --- aggregates over a child ---

payments_meta = sa.MetaData()
payments = sa.Table(
    "payments", payments_meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("order_id", sa.Integer, nullable=False),
    sa.Column("amount", sa.Numeric(10, 2)),
    sa.Column("method", sa.String(20), nullable=False),
)


def add_payments(shop: sa.Engine) -> list[int]:
    """Payments of 0.10, 0.20, 10.10... for every order but the first two (none: amount 0)."""
    payments_meta.create_all(shop)
    with shop.begin() as conn:
        ids = sorted(conn.execute(sa.text("SELECT id FROM orders")).scalars().all())
        rows, next_id = [], 1
        for index, order_id in enumerate(ids[2:]):
            for cents in (10, 20, 1010)[: 1 + index % 3]:
                rows.append({"id": next_id, "order_id": order_id,
                             "amount": Decimal(cents) / 100, "method": f"m{next_id}"})
                next_id += 1
        rows.append({"id": next_id, "order_id": ids[-1], "amount": None, "method": "void"})
        conn.execute(payments.insert(), rows)
    return ids


def _amount_from_payments(data: dict[str, Any]) -> None:
    data["orders"]["children"]["payments"] = {"table": "payments", "parent_key": "order_id"}
    data["orders"]["fields"]["amount"] = {"sum": "payments.amount"}


def test_a_sum_over_a_child_is_exact_and_zero_without_rows_end_to_end(world: World) -> None:
    ids = add_payments(world.shop)
    world.edit_mapping(_amount_from_payments)
    report = world.sync()
    assert report.ok, report
    held = {i: world.held("orders", str(i))["amount"] for i in ids[:5]}
    assert held == {ids[0]: 0, ids[1]: 0, ids[2]: 0.1, ids[3]: 0.3, ids[4]: 10.4}
    assert "payments" not in world.held("orders", str(ids[2]))  # read for the sum, not sent
    assert world.differences() == []
    # A new payment changes the order's record: a full read finds it and sends it.
    with world.shop.begin() as conn:
        conn.execute(payments.insert().values(id=10_000, order_id=ids[0], amount=Decimal("5.05"),
                                              method="late"))
    assert world.sync(CycleOptions(full=True)).ok
    assert world.held("orders", str(ids[0]))["amount"] == 5.05
    # An incremental read aggregates the payments of the orders whose cursor moved.
    with world.shop.begin() as conn:
        conn.execute(payments.insert().values(id=10_001, order_id=ids[1], amount=Decimal("0.07"),
                                              method="late"))
        conn.execute(sa.text("UPDATE orders SET updated_at = :now WHERE id = :id"),
                     {"now": datetime(2030, 1, 1), "id": ids[1]})
    report = world.sync()
    assert report.ok, report
    assert report.resources[Resource.ORDERS].mode == "incremental"
    assert world.held("orders", str(ids[1]))["amount"] == 0.07


def test_count_min_max_and_joins_in_an_aggregated_child(world: World) -> None:
    ids = add_payments(world.shop)

    def edit(data: dict[str, Any]) -> None:
        _amount_from_payments(data)
        data["orders"]["children"]["payments"]["joins"] = [
            {"table": "orders", "alias": "o", "on": {"order_id": "id"}}]
        data["orders"]["fields"].update({
            "payments_made": {"count": "payments"},
            "amounts_given": {"count": "payments.amount"},
            "smallest": {"min": "payments.amount"},
            "biggest": {"max": "payments.amount", "default": "none"},
            "last_method": {"max": "payments.method"},
            "own_status": {"max": "payments.o.status", "type": "integer"},
        })

    world.edit_mapping(edit)
    records = _records(world, Resource.ORDERS)
    first, second, last = records[str(ids[0])], records[str(ids[3])], records[str(ids[-1])]
    assert (first["payments_made"], first["amounts_given"], first["biggest"]) == ("0", "0", "none")
    assert not {"smallest", "last_method", "own_status"} & first.keys()
    assert (second["payments_made"], second["smallest"], second["biggest"]) == ("2", "0.1", "0.2")
    assert isinstance(second["own_status"], int)
    assert last["payments_made"] == str(int(last["amounts_given"]) + 1)  # the NULL amount


ORDERS_WITH = """
    guest_customers: {{enabled: false}}
    orders:
      table: orders
      fields:
        id: id
        createdAt: created_at
        status: status
        {fields}
      children:
        products:
          table: order_lines
          parent_key: order_id
          fields: {{productId: product_id, quantity: quantity}}
        payments:
          table: payments
          parent_key: order_id
"""


def test_check_validates_aggregates_against_the_schema(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    generate(engine, customers=3, categories=2, products=3, orders=3)
    payments_meta.create_all(engine)
    engine.dispose()
    problems = check(sqlite_url, ORDERS_WITH.format(fields="""
        amount: {sum: payments.amont}
        first: {min: payments.payment_date}"""))
    find(problems, "(orders.fields.amount.sum)", "'amont' is not a column of 'payments'",
         "did you mean 'amount'?")
    find(problems, "(orders.fields.first.min)", "'payment_date' is not a column of 'payments'")
    assert len(problems) == 2, problems
    problems = check(sqlite_url, ORDERS_WITH.format(fields="""
        amount: {sum: payments.method}
        mail: {max: payments.amount, type: email}
        ok: {min: payments.method}"""))
    find(problems, "(orders.fields.amount.sum)", "'method' is a VARCHAR(20) column, not a number",
         "count: payments counts rows")
    find(problems, "(orders.fields.mail.max)", "type email cannot apply",
         "(max: payments.amount)")
    assert len(problems) == 2, problems
    assert check(sqlite_url, ORDERS_WITH.format(fields="amount: {sum: payments.amount}")) == []


def test_aggregate_mistakes_are_reported_with_their_line() -> None:
    problems = problems_of("""
        orders:
          table: orders
          fields:
            id: id
            amount: {sum: paymnets.amount}
            total: {sum: payments}
            billed: {count: billing}
          children:
            payments: {table: payments, parent_key: order_id, value: amount}
            billing: {table: addresses, parent_key: order_id, single: true, fields: {city: city}}
            unused: {table: notes, parent_key: order_id}
            products:
              table: order_lines
              parent_key: order_id
              fields: {productId: product_id, quantity: {max: order_lines.qty}}
        guest_customers:
          fields: {firstName: {min: payments.name}}
    """)
    by_where = {p.where: p for p in problems}
    assert "did you mean 'payments'?" in by_where[
        "mappings.yaml:6 (orders.fields.amount.sum)"].fix
    assert "write sum: payments.<column>" in by_where["mappings.yaml:7 (orders.fields.total)"].what
    assert "single child" in by_where["mappings.yaml:8 (orders.fields.billed.count)"].what
    assert "neither value nor fields" in by_where["mappings.yaml:12 (orders.children.unused)"].what
    misplaced = "only a resource's own fields may aggregate"
    assert misplaced in by_where[
        "mappings.yaml:16 (orders.children.products.fields.quantity.max)"].what
    assert misplaced in by_where["mappings.yaml:18 (guest_customers.fields.firstName.min)"].what
    assert len(problems) == 6, problems


def test_a_child_only_aggregated_loads_and_is_not_sent() -> None:
    loaded = parse_mapping(textwrap.dedent("""
        orders:
          table: orders
          fields: {id: id, amount: {sum: payments.amount}, lines: {count: products},
                   payments: {count: payments}}
          children:
            payments: {table: payments, parent_key: order_id}
            products: {table: order_lines, parent_key: order_id, fields: {productId: pid}}
    """), FILE)
    assert loaded.spec.orders is not None
    assert not loaded.spec.orders.children["payments"].sent
    amount = loaded.spec.orders.fields["amount"].aggregate()
    assert amount is not None
    assert (amount.child, amount.column) == ("payments", "amount")


def test_undefined_and_repeated_join_aliases_are_reported_with_their_line() -> None:
    problems = problems_of("""
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


def test_check_passes_and_preview_shows_joined_and_aggregated_values(
        tmp_path: Path, sqlite_url: str) -> None:
    with demo_world(tmp_path, sqlite_url, f"sqlite:///{tmp_path}/state.sqlite") as built:
        add_texts(built.shop)
        ids = add_payments(built.shop)
        built.edit_mapping(_amount_from_payments)
        built.edit_mapping(_options_named_in_german)
        checked = run_cli(built, "check")
        assert checked.returncode == 0, checked.stderr
        shown = run_cli(built, "preview", "orders", "--key", str(ids[4]))
        assert shown.returncode == 0, shown.stderr
        [record] = json.loads(shown.stdout)
        assert record["payload"]["amount"] == 10.4
        assert (record["problems"], record["contract"]) == ([], [])
        shown = run_cli(built, "preview", "products", "--limit", "30")
        options = [o for r in json.loads(shown.stdout) for o in r["payload"].get("options", ())]
        assert options
        assert all(o["name"].startswith("de ") for o in options)


def test_aggregates_over_a_query_child_with_a_composite_text_key(shop_url: str) -> None:
    meta = sa.MetaData()
    sa.Table("sales", meta, sa.Column("store", sa.String(10), primary_key=True),
             sa.Column("number", sa.String(10), primary_key=True))
    items = sa.Table("items", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("store", sa.String(10)), sa.Column("number", sa.String(10)),
                     sa.Column("qty", sa.Integer), sa.Column("price", sa.Numeric(10, 2)))
    engine = sa.create_engine(shop_url)
    meta.create_all(engine)
    keys = [("b", "10"), ("b", "9"), ("a", "2"), ("B", "1")]
    with engine.begin() as conn:
        conn.execute(meta.tables["sales"].insert(), [{"store": s, "number": n} for s, n in keys])
        conn.execute(items.insert(), [
            {"id": i, "store": s, "number": n, "qty": i, "price": Decimal("0.10") * i}
            for i, (s, n) in enumerate(keys[:3] * 2, 1)
        ])
    engine.dispose()
    reader = connect_shop(shop_url)
    loaded = parse_mapping(textwrap.dedent("""
        orders:
          table: sales
          fields:
            id: {template: "{store}-{number}"}
            lines: {count: items}
            pieces: {sum: items.qty, type: integer}
            value: {sum: items.price}
            cheapest: {min: items.price}
            big: {count: large}
          children:
            items:
              query: SELECT store, number, qty, price FROM items WHERE qty > 1
              parent_key: [store, number]
            large: {table: items, where: qty > 3, parent_key: [store, number]}
    """), FILE)
    try:
        records = {r.key: r.payload for r in ShopSource(reader, loaded).records(Resource.ORDERS)}
    finally:
        reader.dispose()
    assert records == {
        '["B","1"]': {"id": "B-1", "lines": "0", "pieces": 0, "value": "0", "big": "0"},
        '["a","2"]': {"id": "a-2", "lines": "2", "pieces": 9, "value": "0.9",
                      "cheapest": "0.3", "big": "1"},
        '["b","10"]': {"id": "b-10", "lines": "1", "pieces": 4, "value": "0.4",
                       "cheapest": "0.4", "big": "1"},
        '["b","9"]': {"id": "b-9", "lines": "2", "pieces": 7, "value": "0.7", "cheapest": "0.2",
                      "big": "1"},
    }


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


# --- change detection follows what these features read, with no extra configuration ---


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
        _options_named_in_german(data)
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
    report = world.sync()
    assert report.ok, report.errors()
    products = report.resources[Resource.PRODUCTS]
    assert products.mode == "incremental"
    assert products.counts.sent == 1
    assert sum(r.counts.sent for r in report.resources.values()) == 1
    options = world.held("products", str(product_id))["options"]
    assert options
    assert all(o["name"].startswith("neu / ") for o in options)


def test_check_warns_when_an_aggregated_childs_where_reads_nothing(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    generate(engine, customers=3, categories=2, products=3, orders=3)
    add_payments(engine)
    engine.dispose()
    text = ORDERS_WITH.format(fields="amount: {sum: payments.amount}")
    loaded = parse_mapping(textwrap.dedent(text) + "      where: amount > 1000\n", FILE)
    reader = connect_shop(sqlite_url)
    try:
        source = ShopSource(reader, loaded)
        assert source.check() == []
        warnings = sample_findings(source, loaded).warnings
    finally:
        reader.dispose()
    find(warnings, "(orders.children.payments.where)", "reads no rows with where: amount > 1000")


def test_constants_are_bound_in_the_joined_columns_type(shop_url: str) -> None:
    meta = sa.MetaData()
    sa.Table("things", meta, sa.Column("id", sa.Integer, primary_key=True))
    flags = sa.Table("thing_flags", meta,
                     sa.Column("thing_id", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("kind", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("active", sa.Boolean, nullable=False),
                     sa.Column("label", sa.String(20), nullable=False))
    engine = sa.create_engine(shop_url)
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(meta.tables["things"].insert(), [{"id": 1}, {"id": 2}])
        conn.execute(flags.insert(), [
            {"thing_id": t, "kind": k, "active": a, "label": f"t{t}/{k}/{a}"}
            for t in (1, 2) for k in (1, 2) for a in (True,) if (t, k) != (2, 2)
        ])
    engine.dispose()
    loaded = parse_mapping(textwrap.dedent("""
        categories:
          table: things
          joins:
            - {table: thing_flags, alias: f, on: {id: thing_id, kind: {const: "2"},
                                                   active: {const: 1}}}
            - {table: thing_flags, alias: g, on: {id: thing_id, kind: {const: true}}}
            - {table: thing_flags, alias: h, on: {id: thing_id, label: {const: 0}}}
          fields: {id: id, name: f.label, url: g.label, never: h.label}
    """), FILE)
    reader = connect_shop(shop_url)
    try:
        records = {r.key: r.payload for r in ShopSource(reader, loaded).records(
            Resource.CATEGORIES)}
    finally:
        reader.dispose()
    # label = 0 is text = '0' (on MySQL a bound 0 would match every label not led by a digit)
    assert records == {"1": {"id": "1", "name": "t1/2/True", "url": "t1/1/True"},
                       "2": {"id": "2", "url": "t2/1/True"}}
