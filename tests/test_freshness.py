"""Every table a record reads is a dependency (raw SQL parsed per dialect), and `check` and
`status` say how each one's changes are seen, how late they can arrive, and what is blind."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from test_dependencies_follow import MAPPING, _seed

from cdc_sync.cli import cli
from cdc_sync.core import freshness
from cdc_sync.core.catalogue import Catalogue
from cdc_sync.core.dependencies import Seen, dependency_map, sql_tables, sqlglot_dialect
from cdc_sync.core.resources import Resource
from cdc_sync.demo.scenario import demo_mapping_path
from cdc_sync.errors import MappingError
from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.sandbox import Sandbox
from helpers.world import SECRET, TOKEN

RAW = """\
version: 1
orders:
  query: {query}
  key: id
  cursor: modified
  where: id NOT IN (SELECT order_id FROM {quote}test_orders{quote})
  fields:
    id: id
    createdAt: created
    email: {{expression: "(SELECT c.email FROM customers c WHERE c.id = customer_id)"}}
    amount: total
    status: {{const: paid}}
  children:
    products:
      query: >-
        WITH lines AS (SELECT order_id, product_id, qty FROM order_items)
        SELECT l.order_id, l.product_id, l.qty
        FROM lines l JOIN {quote}stock{quote} s ON s.id = l.product_id
      parent_key: order_id
      fields: {{productId: product_id, quantity: qty}}
  watch:
    - table: customers
      cursor: updated_at
      parent_key: id
"""

QUERIES = {
    "postgresql": "SELECT o.id, o.created, o.modified, o.customer_id, o.total::numeric AS total "
                  "FROM shop.orders o LEFT JOIN order_notes n ON n.order_id = o.id",
    "mysql": "SELECT o.id, o.created, o.modified, o.customer_id, o.total FROM `orders` o "
             "LEFT JOIN `order_notes` n ON n.order_id = o.id",
    "sqlite": "SELECT o.id, o.created, o.modified, o.customer_id, o.total FROM \"orders\" o "
              "LEFT JOIN order_notes n ON n.order_id = o.id",
}


@pytest.mark.parametrize("dialect", list(QUERIES))
def test_raw_sql_tables_are_found_in_the_shops_dialect(dialect: str) -> None:
    quote = "`" if dialect == "mysql" else '"'
    text = RAW.format(query=json.dumps(QUERIES[dialect]), quote=quote)
    mapping = parse_mapping(text, Path("mappings.yaml"))
    found = dependency_map(Catalogue(mapping.spec), sqlglot_dialect(dialect))
    assert found.unparsed == []
    seen = {(d.table, d.via): d.seen for d in found.by_resource[Resource.ORDERS]}
    orders = "shop.orders" if dialect == "postgresql" else "orders"
    assert seen == {
        (orders, "query"): Seen.CURSOR,  # the cursor `modified` is o.modified
        ("order_notes", "query"): Seen.RECONCILIATION,
        ("test_orders", "where"): Seen.RECONCILIATION,
        ("customers", "fields.email.expression"): Seen.WATCHED,
        ("order_items", "children.products"): Seen.RECONCILIATION,  # the CTE `lines` is no table
        ("stock", "children.products"): Seen.RECONCILIATION,
    }
    assert {d.table for d in found.blind()} == {
        "order_notes", "test_orders", "order_items", "stock"}


def test_sql_the_parser_cannot_read_is_reported_not_guessed() -> None:
    mapping = parse_mapping(
        "version: 1\ncategories:\n  table: c\n  where: \"id IN (SELEC\"\n"
        "  fields: {id: id, name: name}\n", Path("mappings.yaml"))
    found = dependency_map(Catalogue(mapping.spec), "sqlite")
    assert [u.path for u in found.unparsed] == [("categories", "where")]
    assert sql_tables("SELECT 1 FROM a JOIN b.c ON 1 = 1", "postgres") == ["a", "b.c"]


def _changed_mapping() -> str:
    # Two blind spots: the payments watch removed (raw SQL in an expression) and the tags
    # query's link table no longer watched; and a child without a cursor to suggest one for.
    text = MAPPING.replace(
        "  watch:\n    - table: payments\n      cursor: {column: id, kind: append}\n"
        "      parent_key: order_id\n", "")
    text = text.replace(
        "  watch:\n    - table: customer_tags\n      cursor: {column: id, kind: append}\n"
        "      parent_key: customer_id\n", "")
    return text.replace("      cursor: {column: id, kind: append}\n", "", 1)  # the M:N link


def test_check_says_how_each_table_is_seen_and_warns_of_blind_raw_sql(
    tmp_path: Path, sqlite_url: str
) -> None:
    _seed(sa.create_engine(sqlite_url))
    path = tmp_path / "mappings.yaml"
    path.write_text(_changed_mapping(), encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", "--source-url", sqlite_url, "--mappings",
                                      str(path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "reconciliation verifies every record within 600 min" in out
    assert re.search(r"customers +joins\.c +cursor updated_at +next cycle", out)
    assert re.search(r"order_lines +children\.products +cursor updated_at +next cycle", out)
    assert re.search(r"order_coupons +children\.coupons +reconciliation only +600 min", out)
    # Blind raw SQL: a warning at the expression's line, with the watch block to add.
    assert re.search(r"mappings\.yaml:\d+ \(orders\.fields\.amount\.expression\): table "
                     r"payments is read by raw SQL", out)
    assert ("add under orders: watch: [{table: payments, cursor: {column: id, kind: append} "
            "(if its rows are only ever inserted), parent_key: order_id}]") in out
    assert "add under customers: watch: [{table: customer_tags" in out
    # A child without a cursor: the schema suggests its serial key.
    assert ("products.children.categories (product_categories): add `cursor: {column: id, "
            "kind: append}`") in out


def test_status_shows_change_detection_and_the_last_change_seen(
    tmp_path: Path, sqlite_url: str, state_url: str
) -> None:
    _seed(sa.create_engine(sqlite_url))
    path = tmp_path / "mappings.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    flags = ["--source-url", sqlite_url, "--state-url", state_url, "--mappings", str(path)]
    runner = CliRunner()
    with Sandbox(token=TOKEN, secret=SECRET) as sandbox:
        env = {"METRILO_API_TOKEN": TOKEN, "METRILO_API_SECRET": SECRET,
               "METRILO_API_URL": sandbox.url}
        synced = runner.invoke(cli, ["sync", *flags], env=env)
        assert synced.exit_code == 0, synced.output
    shown = runner.invoke(cli, ["status", "--json", *flags])
    assert shown.exit_code == 0, shown.output
    detection = json.loads(shown.output)["change_detection"]
    orders = {(d["table"], d["via"]): d for d in detection["resources"]["orders"]}
    payments = orders[("payments", "fields.amount.expression")]
    assert payments["how"] == "watched (watch.0: append key id)"
    assert payments["last_change_seen"] == 8  # the largest payment id when it synced
    assert orders[("customers", "joins.c")]["last_change_seen"] == "2025-12-31 12:00:00"
    assert orders[("order_coupons", "children.coupons")]["delay"] == "600 min"
    # Tag names are read through the tags query and nothing watches them: the one blind spot.
    assert [w.split(": table ")[1].split(" ")[0] for w in detection["warnings"]] == ["tags"]
    text = runner.invoke(cli, ["status", *flags])
    assert re.search(r"payments +fields\.amount\.expression +watched .*last change seen: 8",
                     text.output)


def test_a_wrong_cursor_or_watch_is_a_problem_at_its_line(tmp_path: Path, sqlite_url: str) -> None:
    _seed(sa.create_engine(sqlite_url))
    text = MAPPING.replace("    - table: payments\n", "    - table: paymens\n").replace(
        "      cursor: updated_at\n      fields: {productId", "      cursor: updatd_at\n"
        "      fields: {productId")
    path = tmp_path / "mappings.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", "--source-url", sqlite_url, "--mappings",
                                      str(path)])
    assert isinstance(result.exception, MappingError)  # `cdc-sync check` exits 2 with it
    message = str(result.exception)
    assert re.search(r"mappings\.yaml:\d+ \(orders\.watch\[0\]\.table\): table 'paymens' "
                     r"does not exist", message), message
    assert "fix: did you mean 'payments'?" in message
    assert re.search(r"mappings\.yaml:\d+ \(orders\.children\.products\.cursor\): cursor "
                     r"column 'updatd_at' is not a column of 'order_lines'", message), message
    assert ("fix: did you mean 'updated_at'? columns there: id, order_id, product_id, qty, "
            "updated_at") in message


def test_a_cursor_on_a_child_of_a_resource_without_one_is_called_useless() -> None:
    text = MAPPING.replace("  table: products\n  cursor: updated_at\n", "  table: products\n")
    mapping = parse_mapping(text, Path("mappings.yaml"))
    found = dependency_map(Catalogue(mapping.spec), "sqlite")
    warnings = [str(p) for p in freshness.blind_spots(found, mapping, 15)]
    assert [w for w in warnings if "has no effect" in w] == [
        f"mappings.yaml:{_line(text, 'cursor: {column: id, kind: append}', 2)} "
        "(products.children.categories.cursor): the cursor on "
        "products.children.categories has no effect: products has no cursor of its own, so "
        "every cycle reads it whole\n    fix: give products a cursor: (a column bumped on every "
        "change) for incremental cycles, or remove this one"]


def _line(text: str, needle: str, occurrence: int) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return lines[occurrence - 1]


def test_deleted_products_see_the_order_lines_as_the_orders_follow_them() -> None:
    # Deleted products derive from every order an incremental cycle re-reads (cycle/deleted.py),
    # the orders a new line re-reads included; a product deleted from the shop with no order
    # re-read is still found by the full read once per window.
    mapping = parse_mapping(demo_mapping_path().read_text(encoding="utf-8"),
                            demo_mapping_path())
    dependencies = dependency_map(Catalogue(mapping.spec), sqlglot_dialect("sqlite"))
    rows = freshness.rows(dependencies, 15)
    deleted = {(d["table"], d["via"]): d for d in rows[Resource.DELETED_PRODUCTS.value]}
    lines = deleted[("order_lines", "orders.children.products")]
    assert (lines["how"], lines["delay"]) == ("append key id", "next cycle")
    assert deleted[("products", "products.table")]["how"] == "reconciliation only"
