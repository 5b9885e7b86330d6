"""Aggregates over a child (sum, count, min, max of a child's rows, the child not sent):
loader errors, check problems and warnings, preview, records through the sandbox."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.demo.generate import generate
from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.source.sample import sample_findings
from helpers.backends import COMBINATIONS
from helpers.cli import run_cli
from helpers.problems import check, find, loader_problems
from helpers.product_texts import add_texts, options_named_in_german, texts_added
from helpers.world import World, demo_world
from helpers.worlds import world_fixture

FILE = Path("mappings.yaml")

world = world_fixture(COMBINATIONS, prepare=texts_added)


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
    report = world.sync(CycleOptions(reconcile=False))  # no slice: it would resend it too
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
    records = world.composed(Resource.ORDERS)
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
    problems = loader_problems("""
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


def test_check_passes_and_preview_shows_joined_and_aggregated_values(
        tmp_path: Path, sqlite_url: str) -> None:
    with demo_world(tmp_path, sqlite_url, f"sqlite:///{tmp_path}/state.sqlite") as built:
        add_texts(built.shop)
        ids = add_payments(built.shop)
        built.edit_mapping(_amount_from_payments)
        built.edit_mapping(options_named_in_german)
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
