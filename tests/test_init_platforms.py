"""`cdc-sync init` on the big platforms: each preset against the platform's real tables.

Each fixture recreates the tables a preset reads (their real names and types, from the
platform's public source) in MariaDB, as those platforms run, with rows shaped like the
platform's own; `init` then `sync` must put every generated customer, category, product and
order into the sandbox, field-equal to what the generated data says.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from cdc_sync.core.report import ReadMode
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.mapping.loader import load_mapping
from cdc_sync.sandbox import Sandbox
from cdc_sync.source import ShopSource, connect_shop
from helpers.cli import command
from helpers.platforms import magento, opencart, prestashop, woocommerce
from helpers.platforms.expected import Expected
from helpers.world import SECRET, TOKEN, World


def run_init(tmp_path: Path, url: str) -> tuple[str, str]:
    """Run `cdc-sync init` and check its mapping; (its output, the mapping's text)."""
    target = tmp_path / "mappings.yaml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRILO_", "CDC_SYNC_"))}
    env["CDC_SYNC_SOURCE_URL"] = url
    done = subprocess.run(command("init", "-o", str(target)), env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    mapping = load_mapping(target)
    shop = connect_shop(url)
    try:
        assert ShopSource(shop, mapping).check() == []
    finally:
        shop.dispose()
    return done.stdout, target.read_text(encoding="utf-8")


def synced(tmp_path: Path, url: str, expected: Expected) -> tuple[str, str, list[str]]:
    """`init`, then one sync into a sandbox: (init's output, the mapping, what differs)."""
    stdout, text = run_init(tmp_path, url)
    writable = sa.create_engine(url)
    with Sandbox(token=TOKEN, secret=SECRET) as sandbox:
        world = World(tmp_path, url, f"sqlite:///{tmp_path}/state.sqlite", sandbox, writable,
                      load_mapping(tmp_path / "mappings.yaml"))
        try:
            report = world.sync()
            differences = expected.differences(sandbox.store)
            rejected = sum(r.counts.rejected + r.counts.pending + r.counts.waiting
                           for r in report.resources.values())
        finally:
            world.close()
            writable.dispose()
    assert report.ok, report.errors()
    assert rejected == 0, report.counts()
    return stdout, text, differences


@pytest.mark.parametrize(("prefix", "hpos", "lookup"), [
    ("wp_", False, False),     # orders as posts, customers from users + usermeta
    ("shop7_", True, True),    # HPOS order tables, customers from wc_customer_lookup
])
def test_woocommerce(tmp_path: Path, mysql_url: str, prefix: str, hpos: bool,
                     lookup: bool) -> None:
    expected = woocommerce.build(mysql_url, prefix, hpos=hpos, lookup=lookup)
    stdout, text, differences = synced(tmp_path, mysql_url, expected)
    assert differences == []
    assert f"WooCommerce (table prefix '{prefix}'" in stdout
    assert f"table: {prefix}{'wc_orders' if hpos else 'posts'}" in text
    assert f"table: {prefix}{'wc_customer_lookup' if lookup else 'users'}" in text


@pytest.mark.parametrize(("version", "staged", "prefix"), [
    (2, False, ""),          # Magento 2 Open Source
    (2, True, "mg_"),        # Magento 2 Commerce: EAV values by row_id, staged updates
    (1, False, ""),          # Magento 1 / OpenMage: sales_flat_*, customer names in EAV
])
def test_magento(tmp_path: Path, mysql_url: str, version: int, staged: bool,
                 prefix: str) -> None:
    expected = magento.build(mysql_url, version=version, staged=staged, prefix=prefix)
    stdout, text, differences = synced(tmp_path, mysql_url, expected)
    assert differences == []
    assert f"Magento {version}" in stdout
    assert "entity_type_id = 4" not in text  # ids are looked up by code
    assert ("row_id" in text) == staged


@pytest.mark.parametrize(("version", "prefix"), [(3, "oc_"), (4, "shop_")])
def test_opencart(tmp_path: Path, mysql_url: str, version: int, prefix: str) -> None:
    expected = opencart.build(mysql_url, version=version, prefix=prefix)
    stdout, text, differences = synced(tmp_path, mysql_url, expected)
    assert differences == []
    assert f"OpenCart {version} (table prefix '{prefix}')" in stdout
    assert "decode: html" in text


def test_prestashop(tmp_path: Path, mysql_url: str) -> None:
    expected = prestashop.build(mysql_url, prefix="ps_")
    stdout, text, differences = synced(tmp_path, mysql_url, expected)
    assert differences == []
    assert "PrestaShop (table prefix 'ps_')" in stdout
    assert "PS_LANG_DEFAULT" in text


def test_woocommerce_preset_follows_a_changed_variation_incrementally(tmp_path: Path,
                                                                     mysql_url: str) -> None:
    """The preset declares the variations' cursor: a variation repriced (its product post
    untouched) reaches Metrilo in the next incremental cycle, not at reconciliation."""
    woocommerce.build(mysql_url, "wp_")
    run_init(tmp_path, mysql_url)
    writable = sa.create_engine(mysql_url)
    with Sandbox(token=TOKEN, secret=SECRET) as sandbox:
        world = World(tmp_path, mysql_url, f"sqlite:///{tmp_path}/state.sqlite", sandbox, writable,
                      load_mapping(tmp_path / "mappings.yaml"))
        try:
            world.sync()
            with writable.begin() as conn:
                variation, parent = conn.execute(sa.text(
                    "SELECT ID, post_parent FROM wp_posts WHERE post_type = 'product_variation' "
                    "ORDER BY ID LIMIT 1")).one()
                conn.execute(sa.text("UPDATE wp_postmeta SET meta_value = '77.70' WHERE "
                                     "post_id = :v AND meta_key = '_price'"), {"v": variation})
                conn.execute(sa.text("UPDATE wp_posts SET post_modified_gmt = UTC_TIMESTAMP() "
                                     "WHERE ID = :v"), {"v": variation})
            # No reconciliation slice: one covering the parent would resend it in the
            # place of the variations' cursor.
            report = world.sync(CycleOptions(reconcile=False))
            options = world.held("products", str(parent))["options"]
        finally:
            world.close()
            writable.dispose()
    assert report.for_resource(Resource.PRODUCTS).mode != ReadMode.FULL
    assert {o["id"]: o["price"] for o in options}[str(variation)] == 77.7
