"""The push floor: a first full push written by hand, beside the engine and the plugin baseline.

What a first push must do for every record, with nothing else: the bare reference's read
(psycopg server-side cursors, hand-written SQL and merge, `bench/reference.py`), its
hand-written compose (the same records as cdc-sync's: `bench.reference --check`), orjson with
sorted keys (fingerprint and request body, one encoding) and sha256, the raw values'
fingerprint a later no-change cycle needs (blake2b of their repr, as cdc-sync keeps), sending
with cdc-sync's own client and settings (500 a request, 4 in flight, HMAC) and, after each
200, the batch's rows written to a state table of the same shape (cdc-sync's SQLite schema
and upsert, one executemany and commit per answered request). What it leaves out: mapping,
validation, dependency checks (it knows the import order), classification against state.

    .venv/bin/python -m bench.floor --scale 0.1 [--latency-ms 50]   # side by side, one run
    .venv/bin/python -m bench.floor --source URL --api-url URL --state FILE   # the floor alone

Side by side starts a minimal sink (optionally answering after `--latency-ms`), then runs in
processes of their own, one after another against it: the engine's first push (`bench.cycle`,
fresh SQLite state), the plugin-style baseline (`bench.plugin`, the first 1% of each
resource, sending timed alone) and the floor; it prints one Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench.cycle import CountingTransport
from bench.proc import emit, peak_rss_mb, run_module
from bench.reference import RESOURCES, Record, open_reader, raw_records
from bench.shop import DEFAULT_ADMIN_URL, ensure_shop, scaled
from bench.sinks import running_sink
from cdc_sync import __version__
from cdc_sync.core.resources import Resource
from cdc_sync.metrilo.client import Item, MetriloClient
from cdc_sync.settings import Settings
from cdc_sync.state import StateStore
from cdc_sync.state.statements import _UPSERT_SYNCED  # the engine's own statement

_BY_EMAIL = ("customers", "guest_customers")


class FloorState:
    """cdc-sync's state table (created by its migrations), written with its upsert through
    plain sqlite3: one executemany and one commit per answered request."""

    def __init__(self, path: Path) -> None:
        StateStore.open(f"sqlite:///{path}").close()
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")

    def synced(self, resource: str, rows: list[tuple[str, str | None, str, str, str]]) -> None:
        now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
        params = [(resource, key, ident, fp, fp, tags, now, now, None, source_fp, None)
                  for key, ident, fp, tags, source_fp in rows]
        self.db.execute("BEGIN")
        self.db.executemany(_UPSERT_SYNCED, params)
        self.db.execute("COMMIT")


def push(source_url: str, api_url: str, state_path: Path) -> dict[str, Any]:
    settings = Settings(metrilo_api_url=api_url)  # token and secret: the environment
    state = FloorState(state_path)
    transport = CountingTransport()
    sent: dict[str, int] = {}
    seconds: dict[str, float] = {}
    cpu_before, started = time.process_time(), time.perf_counter()
    with (MetriloClient(token=settings.metrilo_api_token, secret=settings.secret(),
                        base_url=settings.metrilo_api_url, platform="cdc-sync/floor",
                        plugin_version=__version__, max_items=settings.batch_size,
                        concurrency=settings.concurrency, transport=transport) as client,
          open_reader(source_url) as read):
        for name in RESOURCES:  # Metrilo's import order
            begun = time.perf_counter()
            waiting: dict[str, tuple[str, str | None, str, str, str]] = {}
            items = _items(name, raw_records(read, name), waiting)
            for result in client.deliver(Resource(name).batch_path, items):
                if result.pending or result.rejected:
                    raise RuntimeError(f"{name}: the sink did not take every record")
                state.synced(name, [waiting.pop(item.key) for item in result.delivered])
                sent[name] = sent.get(name, 0) + len(result.delivered)
            seconds[name] = time.perf_counter() - begun
    return {"seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu_before, "sent": sent,
            "resource_seconds": seconds, "requests": transport.requests,
            "bytes": transport.bytes, "peak_rss_mb": peak_rss_mb()}


def _items(name: str, keyed: Iterator[tuple[Any, Record, Any]],
           waiting: dict[str, tuple[str, str | None, str, str, str]]) -> Iterator[Item]:
    id_field = "email" if name in _BY_EMAIL else "id"
    for key, record, raw in keyed:
        body = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        text_key = str(key)
        source_fp = hashlib.blake2b(repr(raw).encode(), digest_size=16).hexdigest()
        tags = orjson.dumps(record.get("tags", [])).decode()
        waiting[text_key] = (text_key, record.get(id_field), hashlib.sha256(body).hexdigest()[:32],
                             tags, source_fp)
        yield Item(text_key, record, body=body)


# -- side by side ----------------------------------------------------------------------------

def side_by_side(shop: str, latency: float, fraction: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work, running_sink("minimal", latency) as sink:
        engine = run_module("bench.cycle", "--source", shop, "--state",
                            f"sqlite:///{work}/engine.sqlite", "--api-url", sink)
        if not engine["ok"]:
            raise RuntimeError(f"the engine's push failed: {engine['errors']}")
        limits = ",".join(f"{name}={max(1, math.ceil(c['scanned'] * fraction))}"
                          for name, c in engine["counts"].items() if c["scanned"])
        baseline = run_module("bench.plugin", "--source", shop, "--api-url", sink,
                              "--limits", limits)
        floor = run_module("bench.floor", "--source", shop, "--api-url", sink,
                           "--state", f"{work}/floor.sqlite")
    return {"engine": engine, "baseline": baseline, "floor": floor}


def render(figures: dict[str, Any], latency: float) -> str:
    engine, baseline, floor = figures["engine"], figures["baseline"], figures["floor"]
    engine_records = sum(c["sent"] for c in engine["counts"].values())
    floor_records = sum(floor["sent"].values())
    base_rate = baseline["delivered"] / baseline["seconds"]
    sink = "minimal sink" + (f" + {latency * 1000:.0f} ms per answer" if latency else "")
    rows = [
        ("cdc-sync engine, first full push", engine_records, engine["seconds"],
         engine["cpu_seconds"]),
        ("push floor (hand-written, same read, client, state table)", floor_records,
         floor["seconds"], floor["cpu_seconds"]),
    ]
    lines = [f"First full push -> {sink} (load {os.getloadavg()[0]:.1f} after the run):", "",
             "| push | records | seconds | records/s | CPU per record | vs plugin-style |",
             "|---|---|---|---|---|---|"]
    for what, count, seconds, cpu in rows:
        lines.append(f"| {what} | {count:,} | {seconds:.1f} s | {count / seconds:,.0f} | "
                     f"{cpu / count * 1e6:.0f} us | {count / seconds / base_rate:.1f}x |")
    lines.append(f"| plugin-style baseline (50 a request, one at a time, sending only) | "
                 f"{baseline['delivered']:,} | {baseline['seconds']:.1f} s | {base_rate:,.0f} "
                 "| - | 1.0x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", help="the shop's URL (default: the demo shop at --scale)")
    parser.add_argument("--api-url", help="push to this sink alone (the floor by itself)")
    parser.add_argument("--state", help="the floor's SQLite state file (with --api-url)")
    parser.add_argument("--scale", type=float, default=0.1,
                        help="the demo shop's scale when no --source; default 0.1 (100k orders)")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="the minimal sink waits this long before each answer; default 0")
    parser.add_argument("--baseline-fraction", type=float, default=0.01)
    args = parser.parse_args()
    if args.api_url:
        state = Path(args.state) if args.state else Path(tempfile.mkdtemp(), "floor.sqlite")
        emit(push(args.source, args.api_url, state))
        return
    shop = args.source or ensure_shop(DEFAULT_ADMIN_URL, scaled(args.scale))[0]
    figures = side_by_side(shop, args.latency_ms / 1000, args.baseline_fraction)
    print(render(figures, args.latency_ms / 1000))


if __name__ == "__main__":
    main()
