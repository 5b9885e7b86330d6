"""One resource catalogue: `check`, `preview` and `sync` agree on which resources a mapping makes.

Every example mapping (the root mappings.yaml, examples/, the docs' full examples) is read
through the catalogue, the shop source and the engine; the demo mapping and its variants
(without `customers:`, issue 13.6) are run for real: `check`, `preview` and `sync` on a demo
shop must name the same resources, and a mapping without customers must send its guests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from test_mapping_loader import full_examples

from cdc_sync.cli import cli
from cdc_sync.core.catalogue import Catalogue
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.engine import SyncEngine
from cdc_sync.mapping.loader import LoadedMapping, load_mapping, parse_mapping
from cdc_sync.source import ShopSource
from cdc_sync.state import StateStore
from helpers.world import demo_world

ROOT = Path(__file__).resolve().parent.parent
C, G, K, D, P, R = (Resource.CUSTOMERS, Resource.GUEST_CUSTOMERS, Resource.CATEGORIES,
                    Resource.DELETED_PRODUCTS, Resource.PRODUCTS, Resource.ORDERS)
EVERYTHING = [C, G, K, D, P, R]


def _example(name: str) -> LoadedMapping:
    if name.startswith("docs:"):
        return parse_mapping(full_examples()[int(name[5:])], Path("docs/mappings.md"))
    return load_mapping(ROOT / name)


# What each shipped mapping produces, in import order.
EXAMPLES: dict[str, list[Resource]] = {
    "mappings.yaml": EVERYTHING,
    "cdc_sync/demo/mappings.yaml": EVERYTHING,
    "examples/chinook/mappings.yaml": [C, K, D, P, R],  # guest_customers: enabled: false
    "docs:0": EVERYTHING,  # a simple shop
    "docs:1": [G, D, P, R],  # WooCommerce: no customers block, so every order email is a guest
    "docs:2": [G, D, P, R],  # Magento
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_engine_source_and_catalogue_agree_on_every_example(
    name: str, tmp_path: Path, state_url: str
) -> None:
    mapping = _example(name)
    shop = sa.create_engine(f"sqlite:///{tmp_path}/empty.sqlite")  # nothing is read
    try:
        source = ShopSource(shop, mapping)
        with StateStore.open(state_url) as state:
            engine = SyncEngine(mapping=mapping, source=source, state=state, client=None)
            assert engine.mapped_resources() == EXAMPLES[name]
        assert source.mapped_resources() == EXAMPLES[name]
        assert Catalogue(mapping.spec).resources() == EXAMPLES[name]
    finally:
        shop.dispose()


def _drop(*names: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        for name in names:
            data.pop(name, None)
    return edit


def _disable(name: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data.setdefault(name, {})["enabled"] = False
    return edit


def _line_product_from_sql(data: dict[str, Any]) -> None:
    # Deleted products are found by the order lines' product id column; an expression has none.
    data["orders"]["children"]["products"]["fields"]["productId"] = {"expression": "product_id"}


VARIANTS: dict[str, tuple[Callable[[dict[str, Any]], None] | None, list[Resource]]] = {
    "as shipped": (None, EVERYTHING),
    "no customers (13.6)": (_drop("customers"), [G, K, D, P, R]),
    "customers disabled": (_disable("customers"), [G, K, D, P, R]),
    "guests off": (_disable("guest_customers"), [C, K, D, P, R]),
    "deleted products off": (_disable("deleted_products"), [C, G, K, P, R]),
    "line product ids from SQL": (_line_product_from_sql, [C, G, K, P, R]),
    "no products": (_drop("products", "deleted_products"), [C, G, K, R]),
    "no orders": (_drop("orders"), [C, K, P]),
}


def _checked(runner: CliRunner, flags: list[str]) -> list[Resource]:
    result = runner.invoke(cli, ["check", *flags])
    assert result.exit_code == 0, result.output
    listed = re.search(r"^resources: (.*)$", result.output, re.MULTILINE)
    assert listed is not None, result.output
    return [Resource(name) for name in listed.group(1).split(", ")]


def _previewable(runner: CliRunner, flags: list[str]) -> list[Resource]:
    found = []
    for resource in Resource:
        result = runner.invoke(cli, ["preview", resource.value, "--limit", "2", *flags])
        if result.exit_code == 0:
            found.append(resource)
        else:
            assert "is not mapped" in str(result.exception), result.output
    return found


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_check_preview_and_sync_agree_on_the_demo_mapping(
    variant: str, tmp_path: Path, sqlite_url: str, state_url: str
) -> None:
    edit, expected = VARIANTS[variant]
    with demo_world(tmp_path, sqlite_url, state_url, edit=edit) as world:
        runner = CliRunner()
        flags = ["--source-url", sqlite_url, "--mappings", str(world.mapping.path)]
        assert _checked(runner, flags) == expected
        assert _previewable(runner, flags) == expected
        report = world.sync()
        assert report.ok, report.errors()
        assert list(report.resources) == expected


def test_a_mapping_without_customers_sends_every_order_email_as_a_guest(
    tmp_path: Path, shop_url: str, state_url: str
) -> None:
    with demo_world(tmp_path, shop_url, state_url, edit=_drop("customers")) as world:
        report = world.sync()
        assert report.ok, report.errors()
        guests = report.resources[G].counts
        assert guests.sent > 0
        with world.shop.connect() as conn:
            emails = {e.strip().lower() for e in conn.execute(sa.text("SELECT email FROM orders"))
                      .scalars() if e and e.strip()}
        assert set(world.sandbox.store.records("customers")) == emails
        # Every order found its customer: none waits, none is dropped by Metrilo.
        assert report.resources[R].counts.pending == 0
        assert world.differences() == []


def test_the_catalogue_says_what_each_derived_resource_is_built_from() -> None:
    mapping = _example("mappings.yaml")
    catalogue = Catalogue(mapping.spec)
    guests, deleted = catalogue.entry(G), catalogue.entry(D)
    assert guests is not None
    assert deleted is not None
    assert (guests.built_from, guests.basis, guests.cursor_of) == ((R, C), C, R)
    assert (deleted.built_from, deleted.basis, deleted.cursor_of) == ((R, P), P, R)
    assert guests.cursor == "updated_at"
    assert guests.endpoint == "customer"
    assert [e.position for e in catalogue] == sorted(e.position for e in catalogue)
    alone = Catalogue(mapping_without_customers(mapping)).entry(G)
    assert alone is not None
    assert (alone.built_from, alone.basis) == ((R,), None)


def mapping_without_customers(mapping: LoadedMapping) -> Any:
    return mapping.spec.model_copy(update={"customers": None})
