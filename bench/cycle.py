"""One cycle of the real engine, in a process of its own: `python -m bench.cycle ...`.

Wired like `cdc_sync.app.open_engine` (same settings, the same checked source, the same client
parameters), except that the HTTP transport counts requests and bytes. Emits the cycle's time
(`SyncEngine.run`; the mapping check before it is timed apart), per-resource times and counts,
requests, bytes, the process's RSS before the cycle and at its peak, and what the shop's
server did for the cycle (`bench.shopstats`: rows and bytes read, its own time).
"""

from __future__ import annotations

import argparse
import resource
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.proc import ROOT, current_rss_mb, emit, peak_rss_mb
from bench.shopstats import ShopCounters
from cdc_sync import __version__
from cdc_sync.app import checked_source
from cdc_sync.core.report import ResourceCounts
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.engine import SyncEngine
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.mapping.loader import load_mapping
from cdc_sync.metrilo.client import MetriloClient
from cdc_sync.metrilo.retry import RetryPolicy
from cdc_sync.settings import Settings
from cdc_sync.source import connect_shop
from cdc_sync.state import StateStore

RSS_EVERY_SECONDS = 2.0


class CountingTransport(httpx.BaseTransport):
    """Counts what goes over the wire, then lets the real transport send it."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self._lock = threading.Lock()
        self.requests = 0
        self.bytes = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests += 1
            self.bytes += len(request.content)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class ResourceClock:
    """Per-resource wall time, from the engine's progress callbacks (the last one ends it),
    and the RSS now and then, to show whether memory grows while a cycle runs."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.ended: dict[str, float] = {}
        self.rss: list[tuple[float, str, int, float]] = []  # (seconds, resource, scanned, MB)

    def __call__(self, resource: Resource, counts: ResourceCounts) -> None:
        now = self.ended[resource.value] = time.perf_counter()
        if not self.rss or now - self.started - self.rss[-1][0] >= RSS_EVERY_SECONDS:
            self.rss.append((now - self.started, resource.value, counts.scanned,
                             current_rss_mb()))

    def seconds(self) -> dict[str, float]:
        out, previous = {}, self.started
        for name, ended in sorted(self.ended.items(), key=lambda item: item[1]):
            out[name], previous = ended - previous, ended
        return out


def run_cycle(settings: Settings, *, full: bool, reconcile: bool = True) -> dict[str, Any]:
    mapping = load_mapping(settings.mappings)
    shop = connect_shop(settings.source_url.get_secret_value())
    state = StateStore.open(settings.state_url.get_secret_value())
    transport = CountingTransport()
    client = MetriloClient(
        token=settings.metrilo_api_token, secret=settings.secret(),
        base_url=settings.metrilo_api_url, platform=f"cdc-sync/{shop.dialect.name}",
        plugin_version=__version__, timeout=settings.http_timeout,
        max_items=settings.batch_size, concurrency=settings.concurrency,
        retry=RetryPolicy(max_attempts=settings.max_attempts,
                          max_elapsed=settings.max_retry_seconds),
        transport=transport,
    )
    check_started = time.perf_counter()
    # as open_engine: reflects and checks the mapping (CDC_SYNC_SOURCE_DIGESTS applies)
    source = checked_source(shop, mapping, digests=settings.digests)
    check_seconds = time.perf_counter() - check_started
    clock = ResourceClock()
    engine = SyncEngine(mapping=mapping, source=source, state=state, client=client,
                        on_progress=clock, compose_workers=settings.workers)
    rss_before = current_rss_mb()
    counters = ShopCounters(shop)
    counters.attach()
    try:
        cpu_before, workers_before = time.process_time(), _children_cpu()
        # The main thread's own: it bounds a push (reading, planning); the process's CPU
        # also holds the senders' and the state writer's threads.
        main_before = time.thread_time()
        clock.started = started = time.perf_counter()
        report = engine.run(CycleOptions(full=full, reconcile=reconcile))
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_before
        main_cpu_seconds = time.thread_time() - main_before
        # The compose worker's CPU (engine.run waits for it to end, so it is counted now).
        worker_cpu_seconds = _children_cpu() - workers_before
    finally:
        client.close()
        state.close()
        shop.dispose()
    return {
        "shop": counters.result(),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "main_cpu_seconds": main_cpu_seconds,
        "compose_workers": settings.workers,
        "worker_cpu_seconds": worker_cpu_seconds,
        "check_seconds": check_seconds,
        "ok": report.ok,
        "errors": report.errors(),
        "modes": {str(r): rep.mode for r, rep in report.resources.items()},
        # Rows the rolling-reconciliation slice read, per resource (also in counts' scanned).
        "reconciled": {str(r): rep.reconciled for r, rep in report.resources.items()},
        "counts": report.counts(),
        "resource_seconds": clock.seconds(),
        "requests": transport.requests,
        "bytes": transport.bytes,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "rss_trace": clock.rss,
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, help="the shop's SQLAlchemy URL")
    parser.add_argument("--state", required=True, help="the state DB's SQLAlchemy URL")
    parser.add_argument("--api-url", required=True, help="the sink's /v2 URL")
    parser.add_argument("--full", action="store_true", help="a full read even with a cursor")
    parser.add_argument("--no-reconcile", action="store_true",
                        help="no rolling-reconciliation slice (the incremental read alone)")
    parser.add_argument("--compose-workers", type=int, choices=(0, 1), default=None,
                        help="0: compose in the cycle's process; 1: also in a worker process "
                             "(default: CDC_SYNC_COMPOSE_WORKERS, else 1 with a second CPU)")
    args = parser.parse_args()
    settings = Settings(  # token and secret come from the environment (bench.proc.child_env)
        source_url=args.source, state_url=args.state, metrilo_api_url=args.api_url,
        mappings=Path(ROOT, "mappings.yaml"), compose_workers=args.compose_workers,
    )
    emit(run_cycle(settings, full=args.full, reconcile=not args.no_reconcile))


if __name__ == "__main__":
    main()
