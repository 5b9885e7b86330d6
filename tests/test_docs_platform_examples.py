"""The platform examples in docs/mappings.md work on those platforms' real tables.

Each example is taken from the docs as written and checked against the platform fixture
(tables from the platform's public source, with generated rows): `check` finds no problem and
every resource reads rows. A hard-coded EAV id (as the Magento example once had) reads none.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from cdc_sync.mapping.loader import load_mapping
from cdc_sync.source import ShopSource, connect_shop
from helpers.chinook import ROOT
from helpers.platforms import magento, woocommerce

EXAMPLES: dict[str, Callable[[str], object]] = {
    "WooCommerce": lambda url: woocommerce.build(url, "wp_"),
    "Magento (EAV)": lambda url: magento.build(url, version=2),
}


def docs_example(heading: str) -> str:
    """The first YAML block under `### heading` in docs/mappings.md."""
    text = (ROOT / "docs" / "mappings.md").read_text(encoding="utf-8")
    section = text.split(f"\n### {heading}\n", 1)[1]
    found = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert found is not None, f"no YAML example under {heading}"
    return found.group(1)


@pytest.mark.parametrize("heading", sorted(EXAMPLES))
def test_docs_example_fits_the_platform_and_reads_rows(tmp_path: Path, mysql_url: str,
                                                       heading: str) -> None:
    EXAMPLES[heading](mysql_url)
    path = tmp_path / "mappings.yaml"
    path.write_text("version: 1\n" + docs_example(heading), encoding="utf-8")
    mapping = load_mapping(path)
    shop = connect_shop(mysql_url)
    try:
        source = ShopSource(shop, mapping)
        assert source.check() == []
        counts = {r.value: source.count(r, 1000) for r in source.mapped_resources()}
        orders = list(source.records(source.mapped_resources()[-1]))
    finally:
        shop.dispose()
    empty = {name for name, rows in counts.items() if rows == 0}
    assert empty <= {"deleted_products"}, counts  # deleted products: only if some are gone
    assert all(not record.problems for record in orders)
