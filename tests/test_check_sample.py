"""`check` composes a sample of real rows: values that do not convert, resources reading nothing.

Names and types can fit while the values do not (`createdAt` mapped to a column of names);
a sync would reject every record. Each test runs on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.demo.generate import generate
from cdc_sync.errors import Problem
from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.source.sample import Findings, sample_findings
from helpers.cli import run_cli
from helpers.world import demo_world


@pytest.fixture
def shop(shop_url: str) -> str:
    writer = sa.create_engine(shop_url)
    generate(writer, customers=6, categories=3, products=5, orders=8)
    writer.dispose()
    return shop_url


def sample(url: str, text: str) -> tuple[list[Problem], Findings]:
    engine = connect_shop(url)
    try:
        source = ShopSource(engine, parse_mapping(textwrap.dedent(text), Path("mappings.yaml")))
        return source.check(), sample_findings(source, source.mapping)
    finally:
        engine.dispose()


def one(problems: list[Problem], where: str) -> Problem:
    found = [p for p in problems if where in p.where]
    assert len(found) == 1, "\n".join(map(str, problems))
    return found[0]


WRONG_VALUES = """
    customers:
      table: customers
      fields:
        email: email
        createdAt: first_name
        subscribed: {expression: "CASE WHEN id = 2 THEN 'maybe' ELSE 'Y' END"}
    categories:
      table: categories
      where: id < 0
      fields: {id: id, name: name}
    products:
      table: products
      fields:
        id: id
        name: name
        price: name
        sku: {expression: "CASE WHEN id = 1 THEN 'x' END"}
"""


def test_check_reports_fields_whose_sampled_values_do_not_convert(shop: str) -> None:
    problems, findings = sample(shop, WRONG_VALUES)
    assert problems == []  # names and types fit: only the values tell
    created = one(findings.errors, "(customers.fields.createdAt)")
    assert "6 of 6 sampled records cannot be sent: createdAt: value" in created.what
    assert "is not a timestamp" in created.what
    assert created.where.startswith("mappings.yaml:6 ")
    assert "cdc-sync preview customers --key" in created.fix
    price = one(findings.errors, "(products.fields.price)")
    assert "5 of 5 sampled records" in price.what
    assert "is not a number" in price.what
    # One bad row is the data's problem, not the mapping's: a warning.
    flag = one(findings.warnings, "(customers.fields.subscribed)")
    assert "1 of 6 sampled records" in flag.what
    assert "'maybe' is not a boolean" in flag.what
    assert "(key 2)" in flag.what
    assert len(findings.errors) == 2


def test_check_warns_about_a_resource_that_reads_no_rows(shop: str) -> None:
    _, findings = sample(shop, WRONG_VALUES)
    empty = one(findings.warnings, "(categories.where)")
    assert empty.what == "categories reads no rows with where: id < 0"
    assert "look them up by code" in empty.fix


EMPTY_CHILD = """
    orders:
      table: orders
      fields: {id: id, createdAt: created_at, email: email, amount: total, status: status}
      children:
        products:
          table: order_lines
          where: quantity < 0
          parent_key: order_id
          fields: {productId: product_id, quantity: quantity}
        coupons:
          query: SELECT order_id, code FROM order_coupons WHERE code = 'NO-SUCH-CODE'
          parent_key: order_id
          value: code
"""


def test_check_warns_about_a_child_whose_where_or_query_reads_no_rows(shop: str) -> None:
    _, findings = sample(shop, EMPTY_CHILD)
    lines = one(findings.warnings, "(orders.children.products.where)")
    assert lines.what == "orders.children.products reads no rows with where: quantity < 0"
    coupons = one(findings.warnings, "(orders.children.coupons.query)")
    assert coupons.what == "orders.children.coupons: the query returns no rows"


def test_the_demo_mapping_samples_clean(shop: str) -> None:
    demo = (Path(__file__).resolve().parent.parent / "mappings.yaml").read_text()
    problems, findings = sample(shop, demo)
    assert (problems, findings.errors, findings.warnings) == ([], [], [])


def _wrong_values(data: dict[str, Any]) -> None:
    data["categories"]["where"] = "id < 0"
    data["products"]["fields"]["price"] = "name"


def test_check_and_sync_say_what_the_sample_shows(tmp_path: Path) -> None:
    shop_url = f"sqlite:///{tmp_path}/shop.sqlite"
    state_url = f"sqlite:///{tmp_path}/state.sqlite"
    with demo_world(tmp_path, shop_url, state_url, edit=_wrong_values) as world:
        checked = run_cli(world, "check")
        assert checked.returncode == 2, checked.stderr
        assert "warnings (1):" in checked.stdout
        assert "(categories.where): categories reads no rows with where: id < 0" in checked.stdout
        assert "(products.fields.price): products:" in checked.stderr
        assert "sampled records cannot be sent: price: value" in checked.stderr
        report = world.sync()
    notes = report.resources[Resource.CATEGORIES].notes
    assert any(n.startswith("read no rows: categories reads no rows with where: id < 0")
               for n in notes), notes
