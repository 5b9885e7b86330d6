"""Counters and gauges for /metrics, in Prometheus' text exposition format (version 0.0.4).

Counters count since this process started (Prometheus handles restarts); the per-status
record gauges come from the state DB after each cycle, so they agree with `cdc-sync status`.
Metrilo's answers are counted per HTTP attempt by a transport wrapped around the client's.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Mapping

import httpx

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

    def set_active(self, active: bool) -> None:
        with self._lock:
            self._active = int(active)

    def cycle_finished(self, outcome: CycleOutcome) -> None:
        with self._lock:
            self._cycles[(outcome.kind, outcome.result)] += 1
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
        with self._lock:
            return "".join(self._lines())

    def _lines(self) -> Iterator[str]:
        yield from _metric("active", "gauge",
                           "1 while this daemon holds the lease and pushes, 0 on standby",
                           [({}, self._active)])
        yield from _metric("records_sent_total", "counter",
                           "Records Metrilo accepted (200), per resource",
                           [({"resource": r}, n) for r, n in sorted(self._sent.items())])
        yield from _metric("records_rejected_total", "counter",
                           "Records rejected (by Metrilo or local validation), per resource",
                           [({"resource": r}, n) for r, n in sorted(self._rejected.items())])
        yield from _metric("state_records", "gauge",
                           "Records in the state DB per resource and status "
                           "(synced, pending, rejected, gone)",
                           [({"resource": r, "status": s}, n)
                            for (r, s), n in sorted(self._state.items())])
        yield from _metric("cycles_total", "counter",
                           "Cycles run, by kind (sync, resync) and result "
                           "(ok, partial, failed, stopped)",
                           [({"kind": k, "result": r}, n)
                            for (k, r), n in sorted(self._cycles.items())])
        yield from _metric("cycle_duration_seconds", "summary", "Duration of cycles",
                           [({}, self._duration_sum), ({}, self._duration_count)],
                           suffixes=("_sum", "_count"))
        if self._last_duration is not None:
            yield from _metric("last_cycle_duration_seconds", "gauge",
                               "Duration of the latest cycle", [({}, self._last_duration)])
        if self._last_success is not None:
            yield from _metric("last_success_timestamp_seconds", "gauge",
                               "Unix time of the latest successful cycle",
                               [({}, self._last_success)])
        yield from _metric("mapping_problems", "gauge",
                           "Problems of a refused edit of mappings.yaml (the daemon runs on "
                           "its last good mapping while above 0)", [({}, self._mapping_problems)])
        yield from _metric("mapping_held_records", "gauge",
                           "Records a held mapping change would resend, per resource",
                           [({"resource": r}, n) for r, n in sorted(self._held.items())])
        yield from _metric("metrilo_responses_total", "counter",
                           "HTTP attempts to Metrilo by status code "
                           "(timeout, error: no answer)",
                           [({"code": c}, n) for c, n in sorted(self._responses.items())])


Sample = tuple[dict[str, str], float]


def _metric(name: str, kind: str, help_text: str, samples: list[Sample],
            suffixes: tuple[str, ...] = ()) -> Iterator[str]:
    """HELP, TYPE, then one line per sample; `suffixes` name a summary's parts (_sum, _count)."""
    full = f"{_PREFIX}_{name}"
    yield f"# HELP {full} {help_text}\n"
    yield f"# TYPE {full} {kind}\n"
    for index, (labels, value) in enumerate(samples):
        suffix = suffixes[index] if suffixes else ""
        yield f"{full}{suffix}{_labels(labels)} {_number(value)}\n"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


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
