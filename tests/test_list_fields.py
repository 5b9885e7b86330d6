"""List fields (tags, categories, coupons, anything `split`): NULL is `[]`, a default is a list.

Metrilo replaces lists on each upsert, so a list left out of a record keeps whatever Metrilo
held: a product whose category column became NULL would keep its stale categories.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.source import ShopSource, connect_shop


@pytest.fixture
def shop(shop_url: str) -> str:
    writer = sa.create_engine(shop_url)
    meta = sa.MetaData()
    goods = sa.Table("goods", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("name", sa.String(20)), sa.Column("cats", sa.String(50)),
                     sa.Column("labels", sa.String(50)))
    meta.create_all(writer)
    with writer.begin() as conn:
        conn.execute(goods.insert(), [
            {"id": 1, "name": "with", "cats": "a, b,,a", "labels": "x"},
            {"id": 2, "name": "null", "cats": None, "labels": None},
        ])
    writer.dispose()
    return shop_url


@contextmanager
def source_for(url: str, products: str) -> Iterator[ShopSource]:
    text = "products:" + textwrap.indent(products, "  ")
    engine = connect_shop(url)
    try:
        yield ShopSource(engine, parse_mapping(text, Path("mappings.yaml")))
    finally:
        engine.dispose()


def payloads(source: ShopSource) -> dict[str, dict[str, object]]:
    return {r.key: r.payload for r in source.records(Resource.PRODUCTS)}


BASE = textwrap.dedent("""
    table: goods
    fields:
      id: id
      name: name
      price: {const: 1}
""")


@pytest.mark.parametrize(("field", "with_value", "on_null"), [
    ('categories: {column: cats, split: ","}', ["a", "b"], []),
    ('categories: {column: cats, split: ",", default: []}', ["a", "b"], []),
    ('categories: {column: cats, split: ",", default: [none]}', ["a", "b"], ["none"]),
    ("categories: {column: labels}", "x", []),
    ('sku: {column: labels, split: ";"}', ["x"], []),
])
def test_null_in_a_list_field_is_an_empty_list(shop: str, field: str, with_value: object,
                                               on_null: object) -> None:
    name = field.split(":")[0]
    with source_for(shop, BASE + f"  {field}\n") as source:
        assert source.check() == []
        found = payloads(source)
    assert found["1"][name] == with_value
    assert found["2"][name] == on_null


def test_check_rejects_a_list_field_whose_default_is_not_a_list(shop: str) -> None:
    with source_for(shop, BASE + '  categories: {column: cats, split: ",", default: misc}\n') as s:
        problems = s.check()
    assert [p.where for p in problems] == ["mappings.yaml:7 (products.fields.categories.default)"]
    assert "categories is a list, but its default 'misc' is not" in str(problems[0])
    assert "default: [misc]" in str(problems[0])
