"""Does every cycle grow linearly with the shop? The same cycles at several scales, per dialect.

    .venv/bin/python -m bench.linear --scales 0.1,0.2,0.4 --dialects postgresql,mariadb

For each dialect and scale: the demo shop (bench/shop.py, built once), then in processes of
their own a first full push to the minimal sink, a no-change full cycle and, after 1,000 orders
changed on a copy of the shop (dropped after: the shared shop stays as built), an incremental
cycle. Prints one Markdown table: each cycle's seconds, its time per 1,000 orders (flat when
the cycle is linear), the slowest resource, and what the shop's server did
(bench/shopstats.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.proc import run_module
from bench.report import shop_side
from bench.run import admin_url, server_version
from bench.shop import change_orders, ensure_shop, scaled, scratch_copy, shop_url
from bench.sinks import running_sink
from cdc_sync.demo.generate import Scale

KINDS = ("push", "no-change", "incremental")


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def cycles(admin: str, scale: Scale, workdir: Path, changes: int) -> dict[str, dict[str, Any]]:
    """The three cycle kinds on one shop, each in a process of its own; the changed orders
    and the incremental cycle on a copy of the shop, so the shared one stays as built."""
    shop = shop_url(admin, scale)
    state = f"sqlite:///{workdir / 'state.sqlite'}"
    out: dict[str, dict[str, Any]] = {}

    def cycle(kind: str, source: str, *flags: str) -> None:
        result = run_module("bench.cycle", "--source", source, "--state", state,
                            "--api-url", sink, *flags)
        if not result["ok"]:
            raise RuntimeError(f"{kind} failed: {result['errors']}")
        log(f"  {kind}: {result['seconds']:.1f} s {_rounded(result['resource_seconds'])}")
        out[kind] = result

    with running_sink("minimal") as sink:
        cycle("push", shop)
        cycle("no-change", shop, "--full")
        with scratch_copy(admin, scale, log) as copy:
            change_orders(copy, changes, seed=int(time.time()))
            cycle("incremental", copy)
    return out


def _rounded(seconds: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 2) for name, value in seconds.items()}


def row(dialect: str, orders: int, kind: str, result: dict[str, Any]) -> str:
    seconds = result["seconds"]
    slowest = max(result["resource_seconds"].items(), key=lambda item: item[1])
    return (f"| {dialect} | {orders:,} | {kind} | {seconds:.1f} s | "
            f"{seconds / orders * 1000:.3f} s | {result['cpu_seconds']:.1f} s | "
            f"{slowest[0]} {slowest[1]:.1f} s | {shop_side(result)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="0.1,0.2,0.4",
                        help="comma-separated factors of the default shop (1M orders)")
    parser.add_argument("--dialects", default="postgresql,mariadb",
                        help="comma-separated: postgresql, mariadb")
    parser.add_argument("--changes", type=int, default=1000,
                        help="orders changed before the incremental cycle; default 1000")
    args = parser.parse_args()
    lines = ["| dialect | orders | cycle | seconds | per 1,000 orders | our CPU | slowest "
             "resource | the shop's server |", "|---|---|---|---|---|---|---|---|"]
    servers = []
    for dialect in args.dialects.split(","):
        admin = admin_url(dialect, None)
        servers.append(server_version(admin))
        for factor in (float(f) for f in args.scales.split(",")):
            scale = scaled(factor)
            log(f"{dialect}, {scale.orders:,} orders")
            ensure_shop(admin, scale)
            with tempfile.TemporaryDirectory(prefix="cdc-bench-") as workdir:
                results = cycles(admin, scale, Path(workdir), args.changes)
            lines += [row(dialect, scale.orders, kind, results[kind]) for kind in KINDS]
    lines += ["", f"Servers: {'; '.join(servers)}.",
              f"Command: `.venv/bin/python -m bench.linear {' '.join(sys.argv[1:])}`"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
