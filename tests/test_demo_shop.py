"""The demo shop: deterministic, the same records on every database, and its commands."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner

from cdc_sync.cli import cli
from cdc_sync.core.resources import Resource
from cdc_sync.demo import mutate, schema
from cdc_sync.demo.generate import DELETED_PRODUCT_NAME, SMALL, generate
from cdc_sync.errors import MappingError
from cdc_sync.mapping.loader import load_mapping
from cdc_sync.source import ShopSource, connect_shop

DEMO_MAPPING = Path(__file__).resolve().parent.parent / "mappings.yaml"


def seed(url: str, **sizes: int) -> None:
    engine = sa.create_engine(url)
    try:
        generate(engine, **({"customers": SMALL.customers, "categories": SMALL.categories,
                             "products": SMALL.products, "orders": SMALL.orders} | sizes))
    finally:
        engine.dispose()


def read_all(url: str) -> dict[Resource, list[Any]]:
    engine = connect_shop(url)
    try:
        source = ShopSource(engine, load_mapping(DEMO_MAPPING))
        assert source.check() == []
        # By key: the order differs where a `query` child's key type is known (PostgreSQL and
        # MariaDB report it: numbers) or not (SQLite: text order).
        return {r: sorted((x.key, x.payload, x.problems) for x in source.records(r))
                for r in Resource}
    finally:
        engine.dispose()


def test_the_demo_shop_reads_the_same_on_every_database(
    sqlite_url: str, pg_url: str, mysql_url: str
) -> None:
    for url in (sqlite_url, pg_url, mysql_url):
        seed(url)
    on_sqlite, on_pg, on_mariadb = (read_all(u) for u in (sqlite_url, pg_url, mysql_url))
    assert on_sqlite == on_pg == on_mariadb
    assert len(on_sqlite[Resource.ORDERS]) == SMALL.orders
    assert on_sqlite[Resource.GUEST_CUSTOMERS], "the demo shop has guest orders"
    deleted = [payload for _, payload, _ in on_sqlite[Resource.DELETED_PRODUCTS]]
    assert deleted == [{"id": str(SMALL.products + 1), "name": DELETED_PRODUCT_NAME,
                        "price": 19.99}]
    statuses = {payload["status"] for _, payload, _ in on_sqlite[Resource.ORDERS]}
    assert "other" in statuses
    assert "completed" in statuses
    assert all(not problems for records in on_sqlite.values() for *_, problems in records)


def dump(url: str) -> dict[str, list[Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key))]
                    for name, t in schema.metadata.tables.items()}
    finally:
        engine.dispose()


def test_the_same_seed_makes_the_same_shop(tmp_path: Path) -> None:
    urls = [f"sqlite:///{tmp_path}/{name}.sqlite" for name in ("a", "b", "c")]
    for url, seed_value in zip(urls, (7, 7, 8), strict=True):
        engine = sa.create_engine(url)
        generate(engine, customers=20, categories=3, products=10, orders=50, seed=seed_value)
        engine.dispose()
    first, again, other = (dump(u) for u in urls)
    assert first == again
    assert first != other
    assert len(first["orders"]) == 50
    assert len(first["order_lines"]) > 50


def test_mutations_show_up_in_incremental_and_derived_reads(sqlite_url: str) -> None:
    seed(sqlite_url)
    writer = sa.create_engine(sqlite_url)
    engine = connect_shop(sqlite_url)
    try:
        source = ShopSource(engine, load_mapping(DEMO_MAPPING))
        since = source.cursor_high_water(Resource.ORDERS)
        mutate.set_order_status(writer, 2, 4)
        new_order = mutate.add_order(writer, email="Newbie@Example.org", lines=[(3, 2)])
        changed = {r.key: r.payload for r in source.records(Resource.ORDERS, since=since)}
        assert changed["2"]["status"] == "cancelled"
        assert changed[str(new_order)]["products"] == [{"productId": "3", "quantity": 2}]
        changed_guests = source.changed_guest_orders(since)
        assert changed_guests is not None
        guests = [g.key for g in changed_guests.rows]
        # One row per changed order (customers' emails too: cycle/guests.py asks state);
        # `since` is inclusive: the order at the high-water mark itself may come along.
        assert "newbie@example.org" in guests
        assert len(guests) <= 3

        mutate.delete_product(writer, 3)
        deleted = {r.key for r in source.records(Resource.DELETED_PRODUCTS)}
        assert deleted == {"3", str(SMALL.products + 1)}
        assert source.existing_keys(Resource.PRODUCTS, ["3", "4"]) == {"4"}

        tagged = next(r for r in source.records(Resource.CUSTOMERS) if r.payload.get("tags"))
        tag = tagged.payload["tags"][0]
        mutate.remove_tag(writer, int(tagged.key), tag)
        after = next(iter(source.records(Resource.CUSTOMERS, keys=[tagged.key])))
        assert tag not in after.payload.get("tags", [])
        mutate.set_product_price(writer, 4, Decimal("9.50"))
        assert next(iter(source.records(Resource.PRODUCTS, keys=["4"]))).payload["price"] == 9.5
    finally:
        engine.dispose()
        writer.dispose()


def test_demo_shop_check_and_preview_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/demo.sqlite"
    runner = CliRunner()
    made = runner.invoke(cli, ["demo-shop", url])
    assert made.exit_code == 0, made.output
    assert "40 customers" in made.output

    again = runner.invoke(cli, ["demo-shop", url])
    assert again.exit_code != 0
    assert "already has demo shop tables" in str(again.exception)

    flags = ["--source-url", url, "--mappings", str(DEMO_MAPPING)]
    checked = runner.invoke(cli, ["check", *flags])
    assert checked.exit_code == 0, checked.output
    assert checked.output.strip().endswith("OK (6 resources, 10 tables)")

    shown = runner.invoke(cli, ["preview", "orders", "--limit", "2", *flags])
    assert shown.exit_code == 0, shown.output
    records = json.loads(shown.output)
    assert [r["key"] for r in records] == ["1", "2"]
    assert all(r["problems"] == [] and r["contract"] == [] for r in records)

    one = json.loads(runner.invoke(cli, ["preview", "products", "--key", "5", *flags]).output)
    assert [r["payload"]["id"] for r in one] == ["5"]

    # A key the shop does not have is named, not answered with a silent [].
    absent = runner.invoke(cli, ["preview", "products", "--key", "5", "--key", "999", *flags])
    assert absent.exit_code == 0
    assert [r["key"] for r in json.loads(absent.stdout)] == ["5"]
    assert "no products record with key 999" in absent.stderr

    # A query names no table in the mapping, but it reads one.
    queried = tmp_path / "queried.yaml"
    queried.write_text("version: 1\ncategories:\n  query: SELECT id, name FROM categories\n"
                       "  key: id\n  fields: {id: id, name: name}\n")
    counted = runner.invoke(cli, ["check", "--source-url", url, "--mappings", str(queried)])
    assert counted.exit_code == 0, counted.output
    assert counted.output.strip().endswith("OK (1 resource, 1 table)")

    broken = tmp_path / "broken.yaml"
    broken.write_text(DEMO_MAPPING.read_text().replace("table: orders", "table: orderz"))
    failed = runner.invoke(cli, ["check", "--source-url", url, "--mappings", str(broken)])
    assert isinstance(failed.exception, MappingError)
    assert failed.exception.exit_code == 2
    assert "did you mean 'orders'" in str(failed.exception)


def test_every_mapping_command_explains_itself() -> None:
    runner = CliRunner()
    for command in ("check", "preview", "demo-shop"):
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0
        assert len(result.output.splitlines()) > 5, command


def test_demo_shop_takes_the_url_style_hosting_providers_write(pg_url: str) -> None:
    """`postgres://…` works for CDC_SYNC_SOURCE_URL (README), so it must for demo-shop too."""
    provider_style = "postgres://" + pg_url.partition("://")[2]
    made = CliRunner().invoke(cli, ["demo-shop", provider_style])
    assert made.exit_code == 0, made.output + str(made.exception)
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM customers")).scalar() == 40
    finally:
        engine.dispose()
