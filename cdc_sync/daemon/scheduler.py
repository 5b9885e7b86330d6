"""The daemon: cycles on an interval, resync requests, one active instance, clean stops.

Threads and who does what:
- the main thread is the only worker: it runs every cycle and every resync, one at a time,
  so work never overlaps, and a stop request is honoured between chunks;
- an APScheduler BackgroundScheduler keeps time: interval jobs mark resources due (coalesced,
  one instance each), and a watch job, every poll, keeps the lease (or, on standby, tries to
  take it) and looks for resync requests, cutting a running sync short when one waits;
- the optional health endpoint serves /healthz and /metrics from its own thread;
- the watch job also looks at mappings.yaml; an edit is checked in a thread of its own and
  a good one swapped in by the worker between cycles (reload.py, live_mapping.py).

Failures of the shop, the state DB or Metrilo end the cycle, never the daemon: the error is
logged (and sent to the webhook), the shop and Metrilo connections are made again, and the
next attempt waits an exponentially growing, capped delay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from cdc_sync.core.report import CycleKind, CycleReport, ResourceCounts
from cdc_sync.core.resources import IMPORT_ORDER, Resource
from cdc_sync.cycle.engine import SyncEngine
from cdc_sync.cycle.options import CycleOptions, ProgressCallback
from cdc_sync.cycle.resync import active_resync, run_resync
from cdc_sync.daemon.backoff import Backoff
from cdc_sync.daemon.bookkeeping import CycleBookkeeping
from cdc_sync.daemon.connections import Connections
from cdc_sync.daemon.endpoint import Endpoint
from cdc_sync.daemon.health import Health
from cdc_sync.daemon.lease import open_lease, refusal
from cdc_sync.daemon.live_mapping import LiveMapping
from cdc_sync.daemon.metrics import Metrics
from cdc_sync.daemon.outcome import CycleOutcome, CycleResult
from cdc_sync.daemon.reload import CheckedEdit, MappingWatcher
from cdc_sync.daemon.resyncs import ResyncJob, job_for
from cdc_sync.daemon.settings import DaemonSettings
from cdc_sync.daemon.webhook import Webhook
from cdc_sync.errors import CdcSyncError, DaemonRunningError, StateError
from cdc_sync.mapping.loader import LoadedMapping
from cdc_sync.settings import Settings, redact_url

log = logging.getLogger("cdc_sync.daemon")

# A PostgreSQL session that stops pinging for this long loses the lease (see lease.py).
MIN_SESSION_TIMEOUT = 30.0
# A resync that keeps failing gives way to regular cycles after this many attempts.
MAX_RESYNC_ATTEMPTS = 3


class Daemon:
    """`Daemon(settings, options, mapping).run()` until `request_stop()`; see the module doc."""

    def __init__(self, settings: Settings, options: DaemonSettings, mapping: LoadedMapping, *,
                 on_progress: ProgressCallback | None = None) -> None:
        self._options = options
        self._state_url = settings.state_url.get_secret_value()
        self._on_progress = on_progress
        self.metrics = Metrics()
        self.health = Health(stale_after=options.stale_seconds(),
                             fails_on_hold=options.health_fails_on_hold)
        self.live = LiveMapping(mapping, policy=options.mapping_changes, health=self.health,
                                metrics=self.metrics)
        self.connections = Connections(settings, self.live.for_engine(), self.metrics)
        self._watcher = MappingWatcher(
            settings.mappings, settings.source_url.get_secret_value(),
            current=lambda: self.live.loaded, on_checked=self._mapping_checked,
            retry_seconds=options.tick_seconds(),
        )
        self.lease = open_lease(self._state_url, session_timeout=max(
            MIN_SESSION_TIMEOUT, 5 * options.poll_seconds))
        hook = options.webhook_url.get_secret_value()
        self._webhook = Webhook(hook, rejections=options.webhook_rejections) if hook else None
        self._backoff = Backoff(base=options.tick_seconds(), cap=options.backoff_max)
        self._bookkeeping = CycleBookkeeping(
            health=self.health, metrics=self.metrics, backoff=self._backoff,
            connections=self.connections, live=self.live, webhook=self._webhook)
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._endpoint: Endpoint | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._active = threading.Event()
        self._resync_waiting = threading.Event()
        self._resume = threading.Event()
        self._lock = threading.Lock()  # guards _due and _current
        self._due: set[Resource] = set()
        self._current: tuple[CycleKind, threading.Event] | None = None
        self._resync: ResyncJob | None = None
        self._next_lease_try = 0.0
        self._standby_noted = ""  # what standby last logged, to say each thing once

    # -- lifecycle ------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop cleanly: the running cycle ends at its next chunk, then `run` returns."""
        if not self._stopping.is_set():
            log.info("stop requested: finishing the batches in flight, then exiting")
        self._stopping.set()
        self._interrupt()
        self._wake.set()

    def request_reload(self) -> None:
        """Check mappings.yaml now (SIGHUP); a good edit applies from the next cycle."""
        log.info("reload requested: checking %s against the shop", self._watcher.path)
        self._watcher.request()

    def run(self) -> None:
        """Work until `request_stop`; raises only for what a restart cannot fix."""
        try:
            self._start()
            while not self._stopping.is_set():
                self._wake.wait(self._options.poll_seconds)
                self._wake.clear()
                if not self._stopping.is_set():
                    self._work()
        finally:
            self._shutdown()

    def _start(self) -> None:
        if self._options.http_port is not None:
            self._endpoint = Endpoint(self._options.http_host, self._options.http_port,
                                      self.health, self.metrics).start()
        if not self.lease.allows_standby:
            if not self.lease.acquire():
                raise DaemonRunningError(refusal(self.lease, self._state_url))
            self._promote()
        self._open_state()
        for seconds, resources in _groups(self._options.intervals()).items():
            self._scheduler.add_job(self._mark_due, IntervalTrigger(seconds=seconds),
                                    args=[resources], id=f"due-{seconds:g}s",
                                    name=f"cycle every {seconds:g}s")
        self._scheduler.add_job(self._watch, IntervalTrigger(seconds=self._options.poll_seconds),
                                id="watch", name="lease and resync requests",
                                next_run_time=datetime.now(UTC))
        self._scheduler.start()

    def _open_state(self) -> None:
        """Open (and migrate) the state DB, waiting out an outage."""
        while not self._stopping.is_set():
            try:
                self.connections.state  # noqa: B018 (opens it)
            except StateError as exc:
                delay = self._backoff.failed(time.monotonic())
                log.error("%s; trying again in %.0fs", exc, delay)
                self._stopping.wait(delay)
            else:
                self._backoff.succeeded()
                return

    def _shutdown(self) -> None:
        self._stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        if self._endpoint is not None:
            self._endpoint.stop()
        self.lease.release()
        self._watcher.close()
        self.connections.close()
        if self._webhook is not None:
            self._webhook.close()
        log.info("stopped")

    # -- the worker (main thread) ---------------------------------------------------------

    def _work(self) -> None:
        if not self._active.is_set():
            self._resync = None  # the new holder resumes it (see _resume_unfinished)
            return
        if self._resume.is_set():
            self._resume_unfinished()
        self._between_cycles()
        if self._resync is None and self._resync_waiting.is_set():
            self._resync_waiting.clear()
            self._take_request()
        job = self._resync
        if job is not None and (job.attempts == 0 or self._backoff.ready(time.monotonic())):
            self._run_resync(job)
        elif job is None and self._backoff.ready(time.monotonic()):
            due = self._take_due()
            if due:
                self._sync(due)

    def _sync(self, due: set[Resource]) -> None:
        every = due >= set(Resource)
        options = CycleOptions(
            kind=CycleKind.SYNC,
            resources=() if every else tuple(r for r in IMPORT_ORDER if r in due),
            accept_mapping=self.live.accept_held(),
            intervals=self._options.intervals(),  # sizes each reconciliation slice
        )
        outcome = self._cycle(CycleKind.SYNC, lambda engine: engine.run(options))
        if outcome.result in (CycleResult.FAILED, CycleResult.STOPPED):
            self._mark_due(due)  # after the backoff, or right after the resync that cut in

    def _between_cycles(self) -> None:
        """Swap in a checked mapping edit; a changed one makes every resource due at once."""
        swap = self.live.between_cycles(self.connections.state)
        if swap is not None:
            self.connections.use_mapping(swap.mapping)
            if swap.changed:
                self._mark_due(Resource)  # added resources import in order, before their users

    def _mapping_checked(self, edit: CheckedEdit) -> None:
        self.live.checked(edit)
        self._wake.set()

    def _take_request(self) -> None:
        try:
            request = self.connections.state.take_resync_request()
        except StateError as exc:
            log.error("could not take a resync request: %s", exc)
            return
        if request is not None:
            self._resync = job_for(request, self.connections.state)

    def _run_resync(self, job: ResyncJob) -> None:
        job.attempts += 1
        restart = job.restart and job.attempts == 1  # a retry resumes what the first began
        outcome = self._cycle(CycleKind.RESYNC, lambda engine: run_resync(
            engine, job.resources, confirm=job.confirm, restart=restart))
        result = outcome.result
        if outcome.ok:
            with self._lock:
                self._due -= set(job.resources or Resource)  # just read in full
        elif result is CycleResult.FAILED and job.attempts < MAX_RESYNC_ATTEMPTS:
            return  # tried again after the backoff; regular cycles wait meanwhile
        elif result is not CycleResult.STOPPED:
            log.error("the resync of %s ended with errors (attempt %d); what was not sent "
                      "stays forced: run `cdc-sync resync` again once the cause is fixed",
                      ", ".join(job.resources) or "every resource", job.attempts)
        if result is not CycleResult.STOPPED:
            job.finish(self.connections.state)
            self._resync = None
        self._resync_waiting.set()  # another request may be queued
        self._wake.set()

    def _resume_unfinished(self) -> None:
        """A resync cut short (stop, crash, failover) goes on where it stopped."""
        self._resume.clear()
        try:
            unfinished = active_resync(self.connections.engine(stop=threading.Event()))
        except CdcSyncError as exc:
            log.warning("could not look for an unfinished resync: %s", exc)
            return
        if unfinished and self._resync is None:
            log.info("resuming the unfinished resync of %s", ", ".join(unfinished))
            self._resync = ResyncJob(tuple(unfinished), requested_by="an unfinished resync")

    def _cycle(self, kind: CycleKind, run: Callable[[SyncEngine], CycleReport]) -> CycleOutcome:
        stop = threading.Event()
        with self._lock:
            self._current = (kind, stop)
        if self._stopping.is_set() or not self._active.is_set():
            stop.set()
        self.health.cycle_started(kind)
        began = time.monotonic()
        report: CycleReport | None = None
        raised: str | None = None
        try:
            report = run(self.connections.engine(stop=stop, on_progress=self._progress))
        except CdcSyncError as exc:
            raised = str(exc)
        except Exception as exc:  # a bug must not end the daemon: log it whole, carry on
            log.exception("%s cycle failed unexpectedly", kind)
            raised = f"unexpected {type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                self._current = None
        outcome = CycleOutcome(kind, time.time(), time.monotonic() - began, report, raised)
        self._bookkeeping.after(outcome)
        return outcome

    def _progress(self, resource: Resource, counts: ResourceCounts) -> None:
        self.health.progress()
        if self._on_progress is not None:
            self._on_progress(resource, counts)

    # -- timers and the watch job (scheduler threads) -------------------------------------

    def _mark_due(self, resources: Iterable[Resource]) -> None:
        with self._lock:
            self._due |= set(resources)
        self._wake.set()

    def _take_due(self) -> set[Resource]:
        with self._lock:
            due, self._due = self._due, set()
        return due

    def _interrupt(self, only: CycleKind | None = None) -> None:
        with self._lock:
            if self._current is not None and only in (None, self._current[0]):
                self._current[1].set()

    def _watch(self) -> None:
        if self._stopping.is_set():
            return
        if self._active.is_set():
            if not self.lease.alive():
                self._demote()
        else:
            self._try_promote()
        if self._active.is_set() and self._resync_requested():
            self._resync_waiting.set()
            self._interrupt(only=CycleKind.SYNC)  # the resync reads everything anyway
            self._wake.set()
        self._watcher.poll()  # last: a slow file system must not delay the lease

    def _resync_requested(self) -> bool:
        try:
            return self.connections.state.resync_requested()
        except StateError as exc:
            log.debug("could not look for resync requests: %s", exc)
            return False

    def _try_promote(self) -> None:
        now = time.monotonic()
        if now < self._next_lease_try:
            return
        self._next_lease_try = now + self._options.standby_retry_seconds()
        try:
            got = self.lease.acquire()
        except StateError as exc:
            if self._standby_noted != str(exc):  # once per distinct failure, not every retry
                log.warning("standby: cannot reach the state DB for the lease: %s", exc)
            self._standby_noted = str(exc)
            self.health.standby_failed(str(exc))
            return
        self.health.standby_failed(None)
        if got:
            self._promote()
        elif self._standby_noted != "held":
            self._standby_noted = "held"
            log.info("standby: %s holds the lease on %s; taking over when it is free",
                     self.lease.holder() or "another daemon", redact_url(self._state_url))

    def _promote(self) -> None:
        self._standby_noted = ""
        self._active.set()
        self.health.set_active(True)
        self.metrics.set_active(True)
        self._resume.set()
        self.live.republish()
        log.info("active: this daemon holds the lease on %s", redact_url(self._state_url))
        self._mark_due(Resource)

    def _demote(self) -> None:
        self._active.clear()
        self.health.set_active(False)
        self.metrics.set_active(False)
        self._interrupt()
        self._next_lease_try = 0.0
        log.error("lost the lease on %s: stopping the current cycle and standing by",
                  redact_url(self._state_url))


def _groups(intervals: dict[Resource, float]) -> dict[float, tuple[Resource, ...]]:
    found: dict[float, list[Resource]] = {}
    for resource, seconds in intervals.items():
        found.setdefault(seconds, []).append(resource)
    return {seconds: tuple(resources) for seconds, resources in found.items()}
