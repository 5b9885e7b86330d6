"""First pushes with and without the compose worker, alternated: `python -m bench.workers`.

Each push is `bench.cycle` in a process of its own with a fresh SQLite state DB, against the
minimal sink (optionally with `--latency-ms` before every answer); runs alternate between
`--compose-workers 0` and `1` so that the machine's load hits both alike. Prints one line per
run: wall time, records/s, the cycle process's CPU and the worker's per record, the 1-minute
load average before it. The shop is only read.

    .venv/bin/python -m bench.workers --shop cdc_bench_100000 --runs 2 --latency-ms 50
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

from bench.proc import run_module
from bench.sinks import running_sink

DEFAULT_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432"


def load() -> str:
    return open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"


def push(shop: str, api_url: str, state: str, workers: int) -> dict[str, Any]:
    return run_module("bench.cycle", "--source", shop, "--state", state, "--api-url", api_url,
                      "--compose-workers", str(workers))


def line(workers: int, before: str, result: dict[str, Any]) -> str:
    sent = sum(counts["sent"] for counts in result["counts"].values())
    seconds, cpu, worker = result["seconds"], result["cpu_seconds"], result["worker_cpu_seconds"]
    return (f"workers={workers} load={before:>5} {seconds:7.2f} s {sent / seconds:8,.0f} rec/s "
            f"cycle CPU {cpu / sent * 1e6:6.1f} us/rec, worker {worker / sent * 1e6:6.1f} "
            f"us/rec, peak RSS {result['peak_rss_mb']:.0f} MB, sent {sent:,}, ok={result['ok']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shop", default="cdc_bench_20000", help="a built bench shop (database)")
    parser.add_argument("--admin-url", default=os.environ.get("CDC_BENCH_PG_URL", DEFAULT_ADMIN))
    parser.add_argument("--runs", type=int, default=2, help="pairs of pushes")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    shop = f"{args.admin_url.rstrip('/')}/{args.shop}"
    with running_sink("minimal", args.latency_ms / 1000) as api_url, \
            tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for workers in (0, 1) if run % 2 == 0 else (1, 0):
                before = load()
                state = f"sqlite:///{tmp}/state-{run}-{workers}.sqlite"
                print(line(workers, before, push(shop, api_url, state, workers)), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
