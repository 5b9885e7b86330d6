"""Set-based reads: the number of queries per resource does not grow with the rows."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.demo import schema
from cdc_sync.demo.generate import generate
from cdc_sync.mapping.loader import load_mapping
from cdc_sync.source import ShopSource, connect_shop
from helpers.statements import Statements

DEMO_MAPPING = Path(__file__).resolve().parent.parent / "mappings.yaml"


def queries_per_resource(url: str) -> dict[Resource, int]:
    engine = connect_shop(url)
    counts: dict[Resource, int] = {}
    try:
        # A small batch: fetching more batches must not mean more queries.
        source = ShopSource(engine, load_mapping(DEMO_MAPPING), batch_size=7)
        for resource in Resource:
            list(source.records(resource))  # plans and reflects once
            with Statements(engine) as seen:
                assert list(source.records(resource))
            counts[resource] = len(seen.statements)
    finally:
        engine.dispose()
    return counts


def test_queries_per_resource_do_not_grow_with_the_number_of_orders(shop_url: str) -> None:
    writer = sa.create_engine(shop_url)
    try:
        generate(writer, customers=5, categories=3, products=6, orders=10)
        few = queries_per_resource(shop_url)
        schema.metadata.drop_all(writer)
        generate(writer, customers=60, categories=3, products=30, orders=200)
        many = queries_per_resource(shop_url)
    finally:
        writer.dispose()
    assert few == many
    # One query for the resource, one per child collection: never one per parent.
    assert many == {
        Resource.CUSTOMERS: 2, Resource.GUEST_CUSTOMERS: 1, Resource.CATEGORIES: 1,
        Resource.DELETED_PRODUCTS: 1, Resource.PRODUCTS: 3, Resource.ORDERS: 3,
    }
