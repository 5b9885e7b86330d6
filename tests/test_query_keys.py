"""Keys read from a `query` source keep their real type when bound back into a query.

State keeps keys as text; pending re-reads, deletion checks and `preview --key` bind them
back. On PostgreSQL a text parameter against an integer column fails (`integer = character
varying`), and on SQLite a computed key has no affinity, so '5' never equals 5.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.source import ShopSource, connect_shop
from helpers.backends import COMBINATIONS
from helpers.cli import run_cli
from helpers.world import ShopSize, World
from helpers.worlds import world_fixture

MAPPING = """
    categories:
      query: SELECT id * 1 AS category_id, name FROM cats
      key: category_id
      fields: {id: category_id, name: name}
    products:
      query: SELECT id AS product_id, name, price FROM prods
      key: product_id
      fields: {id: product_id, name: name, price: price}
      children:
        categories:
          query: SELECT prod_id, cat_id FROM prod_cats
          parent_key: prod_id
          value: cat_id
"""


@pytest.fixture
def source(shop_url: str) -> Iterator[ShopSource]:
    writer = sa.create_engine(shop_url)
    meta = sa.MetaData()
    cats = sa.Table("cats", meta, sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(20)))
    prods = sa.Table("prods", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("name", sa.String(20)), sa.Column("price", sa.Numeric(8, 2)))
    links = sa.Table("prod_cats", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("prod_id", sa.Integer), sa.Column("cat_id", sa.Integer))
    meta.create_all(writer)
    with writer.begin() as conn:
        conn.execute(cats.insert(), [{"id": i, "name": f"c{i}"} for i in range(1, 13)])
        conn.execute(prods.insert(), [{"id": i, "name": f"p{i}", "price": i} for i in range(1, 13)])
        conn.execute(links.insert(), [{"id": i, "prod_id": i, "cat_id": i % 3 + 1}
                                      for i in range(1, 13)])
    writer.dispose()
    engine = connect_shop(shop_url)
    loaded = parse_mapping(textwrap.dedent(MAPPING), Path("mappings.yaml"))
    yield ShopSource(engine, loaded)
    engine.dispose()


def test_keys_of_a_query_are_bound_back_in_their_own_type(source: ShopSource) -> None:
    assert source.check() == []
    assert source.existing_keys(Resource.CATEGORIES, ["2", "11", "99"]) == {"2", "11"}
    picked = {r.key: r.payload for r in source.records(Resource.CATEGORIES, keys=["3", "10"])}
    assert picked == {"3": {"id": "3", "name": "c3"}, "10": {"id": "10", "name": "c10"}}
    products = source.records(Resource.PRODUCTS, keys=["4", "12"])
    assert {r.key: r.payload["categories"] for r in products} == {"4": ["2"], "12": ["1"]}
    assert source.existing_keys(Resource.PRODUCTS, ["5", "x"]) == {"5"}


def test_numeric_query_keys_sort_as_numbers_where_the_driver_says_so(
        source: ShopSource, shop_url: str) -> None:
    first = source.sample_keys(Resource.PRODUCTS, 3)
    # SQLite does not report a query's column types: its keys sort as text (docs/mappings.md).
    expected = ["1", "10", "11"] if shop_url.startswith("sqlite") else ["1", "2", "3"]
    assert first == expected


def _categories_from_a_query(data: dict[str, Any]) -> None:
    data["categories"] = {
        "query": "SELECT id AS category_id, name, slug FROM categories",
        "key": "category_id",
        "fields": {"id": "category_id", "name": "name",
                   "url": {"template": "https://demo-shop.example/c/{slug}"}},
    }


world = world_fixture(COMBINATIONS, edit=_categories_from_a_query,
                      size=ShopSize(customers=5, categories=4, products=5, orders=10))


def test_a_query_source_syncs_and_previews_after_its_first_sync(world: World) -> None:
    first = world.sync()
    assert first.ok, first.errors()
    # A full read checks state's keys against the shop first: keys bound back into the query.
    again = world.sync(CycleOptions(full=True))
    assert again.ok, again.errors()
    assert world.differences() == []
    shown = run_cli(world, "preview", "categories", "--key", "2")
    assert shown.returncode == 0, shown.stderr
    assert [r["key"] for r in json.loads(shown.stdout)] == ["2"]
