"""The plugin-style baseline: the way Metrilo's own plugins import history, for comparison.

Metrilo's Magento and WooCommerce plugins import in batches of 50 records and send one request
at a time, waiting for each answer before reading the next batch. This does the same with
cdc-sync's own signed client (max_items=50, concurrency=1): the first `limit` records of each
resource, in import order. Records are read and composed first and held in memory (a subset,
so that is small), and only the sending is timed: the baseline gets its reading for free, so
the comparison flatters it, never the engine.
`python -m bench.plugin --source URL --api-url URL --limits customers=2000,orders=10000,...`
"""

from __future__ import annotations

import argparse
import time
from itertools import islice
from pathlib import Path
from typing import Any

from bench.cycle import CountingTransport
from bench.proc import ROOT, emit, peak_rss_mb
from cdc_sync import __version__
from cdc_sync.core.resources import Resource
from cdc_sync.mapping.loader import load_mapping
from cdc_sync.metrilo.client import Item, MetriloClient
from cdc_sync.settings import Settings
from cdc_sync.source import ShopSource, connect_shop

PLUGIN_BATCH = 50


def read_subset(source: ShopSource, limits: dict[str, int]) -> dict[Resource, list[Item]]:
    """The first `limits[resource]` records of each resource, composed, in import order."""
    subset: dict[Resource, list[Item]] = {}
    for resource in source.mapped_resources():
        limit = limits.get(resource.value, 0)
        if limit > 0:
            records = islice(source.records(resource), limit)
            subset[resource] = [Item(r.key, r.payload) for r in records]
    return subset


def send_all(client: MetriloClient, subset: dict[Resource, list[Item]]) -> dict[str, int]:
    """Send every batch, one request at a time; counts of delivered and failed records."""
    delivered = failed = 0
    for resource, items in subset.items():
        for result in client.deliver(resource.batch_path, items):
            delivered += len(result.delivered)
            failed += len(result.rejected) + len(result.pending)
    return {"delivered": delivered, "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, help="the shop's SQLAlchemy URL")
    parser.add_argument("--api-url", required=True, help="the sink's /v2 URL")
    parser.add_argument("--limits", required=True,
                        help="records per resource, e.g. customers=2000,orders=10000")
    args = parser.parse_args()
    limits = {name: int(n) for name, n in (pair.split("=") for pair in args.limits.split(","))}
    settings = Settings(metrilo_api_url=args.api_url)  # token and secret: the environment
    mapping = load_mapping(Path(ROOT, "mappings.yaml"))
    shop = connect_shop(args.source)
    try:
        subset = read_subset(ShopSource(shop, mapping), limits)
    finally:
        shop.dispose()
    transport = CountingTransport()
    with MetriloClient(token=settings.metrilo_api_token, secret=settings.secret(),
                       base_url=settings.metrilo_api_url, plugin_version=__version__,
                       max_items=PLUGIN_BATCH, concurrency=1, transport=transport) as client:
        started = time.perf_counter()
        sent = send_all(client, subset)
        seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "seconds": seconds, **sent, "requests": transport.requests, "bytes": transport.bytes,
        "records": {r.value: len(items) for r, items in subset.items()},
        "peak_rss_mb": peak_rss_mb(),
    }
    emit(result)


if __name__ == "__main__":
    main()
