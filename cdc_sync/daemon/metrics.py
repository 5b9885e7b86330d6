"""Counters and gauges for /metrics, written by prometheus_client (text format 0.0.4).

Counters count since this process started (Prometheus handles restarts); the per-status
record gauges come from the state DB after each cycle, so they agree with `cdc-sync status`.
Metrilo's answers are counted per HTTP attempt by a transport wrapped around the client's.

`Metrics` keeps plain values under one lock and is a custom collector (of a private registry,
so tests and two daemons in one process do not share it): a scrape sees one consistent
snapshot, and a gauge without a value yet (no successful cycle) is left out, not shown as 0.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from cdc_sync.daemon.outcome import CycleOutcome

_PREFIX = "cdc_sync"


class Metrics:
    """Thread-safe metric values; `render` writes them out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._sent: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._cycles: Counter[tuple[str, str]] = Counter()
        self._duration_sum = 0.0
        self._duration_count = 0
        self._last_duration: float | None = None
        self._last_success: float | None = None
        self._responses: Counter[str] = Counter()
        self._state: dict[tuple[str, str], int] = {}
        self._mapping_problems = 0
        self._held: dict[str, int] = {}
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    def set_active(self, active: bool) -> None:
        with self._lock:
            self._active = int(active)

    def cycle_finished(self, outcome: CycleOutcome) -> None:
        with self._lock:
            self._cycles[(outcome.kind.value, outcome.result.value)] += 1
            self._duration_sum += outcome.seconds
            self._duration_count += 1
            self._last_duration = outcome.seconds
            if outcome.ok:
                self._last_success = outcome.finished_at
            if outcome.report is not None:
                for resource, rep in outcome.report.resources.items():
                    self._sent[str(resource)] += rep.counts.sent
                    self._rejected[str(resource)] += rep.counts.rejected

    def set_state_counts(self, resource: str, counts: Mapping[str, int]) -> None:
        """The state DB's record count per status of `resource`."""
        with self._lock:
            for status, n in counts.items():
                self._state[(resource, str(status))] = n

    def set_mapping_problems(self, count: int) -> None:
        """Problems of a refused edit of the mapping (0: the mapping in force is fine)."""
        with self._lock:
            self._mapping_problems = count

    def set_mapping_held(self, held: Mapping[str, int]) -> None:
        """Held mapping changes: records each would resend, per resource."""
        with self._lock:
            self._held = dict(held)

    def count_response(self, code: str) -> None:
        with self._lock:
            self._responses[code] += 1

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self._registry).decode("utf-8")

    def collect(self) -> Iterator[Metric]:
        """What prometheus_client's registry asks of a collector: every family, one snapshot."""
        with self._lock:
            families = [*self._counters(), *self._gauges(), *self._durations()]
        yield from families

    def _counters(self) -> Iterator[Metric]:
        yield _family(CounterMetricFamily, "records_sent_total",
                      "Records Metrilo accepted (200), per resource",
                      ["resource"], [((r,), n) for r, n in self._sent.items()])
        yield _family(CounterMetricFamily, "records_rejected_total",
                      "Records rejected (by Metrilo or local validation), per resource",
                      ["resource"], [((r,), n) for r, n in self._rejected.items()])
        yield _family(CounterMetricFamily, "cycles_total",
                      "Cycles run, by kind (sync, resync) and result (ok, partial, failed, "
                      "stopped)", ["kind", "result"], self._cycles.items())
        yield _family(CounterMetricFamily, "metrilo_responses_total",
                      "HTTP attempts to Metrilo by status code (timeout, error: no answer)",
                      ["code"], [((c,), n) for c, n in self._responses.items()])

    def _gauges(self) -> Iterator[Metric]:
        yield _family(GaugeMetricFamily, "active",
                      "1 while this daemon holds the lease and pushes, 0 on standby",
                      [], [((), self._active)])
        yield _family(GaugeMetricFamily, "state_records",
                      "Records in the state DB per resource and status "
                      "(synced, pending, rejected, gone)", ["resource", "status"],
                      self._state.items())
        yield _family(GaugeMetricFamily, "mapping_problems",
                      "Problems of a refused edit of mappings.yaml (the daemon runs on its "
                      "last good mapping while above 0)", [], [((), self._mapping_problems)])
        yield _family(GaugeMetricFamily, "mapping_held_records",
                      "Records a held mapping change would resend, per resource",
                      ["resource"], [((r,), n) for r, n in self._held.items()])
        if self._last_success is not None:
            yield _family(GaugeMetricFamily, "last_success_timestamp_seconds",
                          "Unix time of the latest successful cycle", [],
                          [((), self._last_success)])

    def _durations(self) -> Iterator[Metric]:
        yield SummaryMetricFamily(f"{_PREFIX}_cycle_duration_seconds", "Duration of cycles",
                                  count_value=self._duration_count,
                                  sum_value=self._duration_sum)
        if self._last_duration is not None:
            yield _family(GaugeMetricFamily, "last_cycle_duration_seconds",
                          "Duration of the latest cycle", [], [((), self._last_duration)])


def _family(
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily], name: str, help_text: str,
    labels: list[str], values: Iterable[tuple[tuple[str, ...], float]],
) -> Metric:
    """One metric family with a sample per label tuple, in a stable (sorted) order."""
    family = kind(f"{_PREFIX}_{name}", help_text, labels=labels)
    for label_values, value in sorted(values):
        family.add_metric(list(label_values), value)
    return family


class CountingTransport(httpx.BaseTransport):
    """Counts every answer (or failure to answer) from Metrilo by status code."""

    def __init__(self, metrics: Metrics, inner: httpx.BaseTransport) -> None:
        self._metrics = metrics
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = self._inner.handle_request(request)
        except httpx.TimeoutException:
            self._metrics.count_response("timeout")
            raise
        except httpx.TransportError:
            self._metrics.count_response("error")
            raise
        self._metrics.count_response(str(response.status_code))
        return response

    def close(self) -> None:
        self._inner.close()
