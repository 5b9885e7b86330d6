"""The daemon's parts alone: settings, backoff, health, metrics, webhook, leases, endpoint."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from cdc_sync.core.report import CycleKind, CycleReport
from cdc_sync.core.resources import Resource
from cdc_sync.daemon import (
    DaemonRunningError,
    active_daemon,
    foreground_lease,
    resync_or_hand_over,
)
from cdc_sync.daemon.backoff import Backoff
from cdc_sync.daemon.endpoint import Endpoint
from cdc_sync.daemon.health import Health
from cdc_sync.daemon.lease import AdvisoryLease, FileLease, open_lease
from cdc_sync.daemon.metrics import Metrics
from cdc_sync.daemon.outcome import CycleOutcome
from cdc_sync.daemon.settings import load_daemon_settings
from cdc_sync.daemon.webhook import Webhook
from cdc_sync.errors import ConfigError, EndpointError
from cdc_sync.state import StateStore
from helpers.prom import sample

# -- settings -------------------------------------------------------------------------------


def test_per_resource_intervals_override_the_interval_and_derived_resources_follow_orders(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_SYNC_INTERVAL", "60")
    monkeypatch.setenv("CDC_SYNC_INTERVALS", "orders=30, products=600")
    options = load_daemon_settings(_env_file=None)
    intervals = options.intervals()
    assert intervals[Resource.ORDERS] == 30
    assert intervals[Resource.GUEST_CUSTOMERS] == 30
    assert intervals[Resource.DELETED_PRODUCTS] == 30
    assert intervals[Resource.PRODUCTS] == 600
    assert intervals[Resource.CUSTOMERS] == 60
    assert options.tick_seconds() == 30
    assert options.standby_retry_seconds() == 5
    assert options.stale_seconds() == 90


def test_a_malformed_interval_list_names_the_setting_and_the_fix(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_SYNC_INTERVALS", "orders=30,widgets=5")
    monkeypatch.setenv("CDC_SYNC_HTTP_PORT", "99999")
    with pytest.raises(ConfigError) as caught:
        load_daemon_settings(_env_file=None)
    text = str(caught.value)
    assert "CDC_SYNC_INTERVALS" in text
    assert "'widgets=5'" in text
    assert "orders=30" in text
    assert "CDC_SYNC_HTTP_PORT" in text


def test_a_webhook_url_that_is_not_http_is_refused_without_echoing_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_SYNC_WEBHOOK_URL", "ftp://hooks.example/T0KEN")
    with pytest.raises(ConfigError) as caught:
        load_daemon_settings(_env_file=None)
    assert "CDC_SYNC_WEBHOOK_URL" in str(caught.value)
    assert "T0KEN" not in str(caught.value)


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_SYNC_INTERVAL", "60")
    assert load_daemon_settings({"interval": 5.0, "http_port": None},
                                _env_file=None).interval == 5.0


# -- backoff --------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_and_resets_on_success() -> None:
    backoff = Backoff(base=10, cap=60)
    assert [backoff.failed(0) for _ in range(5)] == [10, 20, 40, 60, 60]
    assert not backoff.ready(59)
    assert backoff.ready(60)
    backoff.succeeded()
    assert backoff.ready(0)
    assert backoff.failed(0) == 10


# -- health ---------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _outcome(clock: Clock, *, ok: bool = True, rejected: int = 0,
             guard: bool = False) -> CycleOutcome:
    report = CycleReport(kind=CycleKind.SYNC)
    report.for_resource(Resource.ORDERS).counts.rejected = rejected
    if guard:
        report.for_resource(Resource.PRODUCTS).error = "90% of products look deleted"
    if not ok:
        report.error = "Metrilo did not accept 3 orders records after retries: 503"
    return CycleOutcome(CycleKind.SYNC, clock.now, 1.5, report)


def test_a_cycle_fails_when_nothing_went_through_and_partly_when_one_resource_failed() -> None:
    clock = Clock()
    assert _outcome(clock).result == "ok"
    assert _outcome(clock, guard=True).result == "partial"
    assert _outcome(clock, ok=False).result == "failed"
    raised = CycleOutcome(CycleKind.SYNC, clock.now, 0.1, None, raised="state DB down")
    assert raised.result == "failed"
    only_failure = CycleReport(kind=CycleKind.SYNC)
    only_failure.for_resource(Resource.ORDERS).error = "the shop went away"
    assert CycleOutcome(CycleKind.SYNC, clock.now, 0.1, only_failure).result == "failed"
    stopped = CycleReport(kind=CycleKind.SYNC, stopped=True)
    assert CycleOutcome(CycleKind.SYNC, clock.now, 0.1, stopped).result == "stopped"


def test_health_is_ok_after_a_success_and_503_once_the_success_is_stale() -> None:
    clock = Clock()
    health = Health(stale_after=180, clock=clock)
    health.set_active(True)
    assert health.check()[0] == 200  # just became active: the first cycle is due
    health.cycle_finished(_outcome(clock))
    code, body = health.check()
    assert (code, body["status"], body["last_success_age_seconds"]) == (200, "ok", 0)

    clock.now += 100
    health.cycle_finished(_outcome(clock, ok=False))
    code, body = health.check()
    assert (code, body["status"], body["consecutive_failures"]) == (200, "degraded", 1)
    assert "503" in body["last_error"]
    clock.now += 81
    assert health.check()[0] == 503

    health.cycle_finished(_outcome(clock, guard=True))  # the other resources went through
    code, body = health.check()
    assert (code, body["status"], body["last_error"]) == (
        200, "degraded", "products: 90% of products look deleted")


def test_rejections_over_the_threshold_make_the_cycle_rejected_and_health_degraded() -> None:
    clock = Clock()
    health = Health(stale_after=180, clock=clock)
    health.set_active(True)
    rejecting = _outcome(clock, rejected=2)
    assert rejecting.result == "rejected"
    assert rejecting.ok  # it went through: no backoff, nothing to retry
    health.cycle_finished(rejecting)
    code, body = health.check()
    assert (code, body["status"], body["consecutive_failures"]) == (200, "degraded", 0)
    assert body["last_cycle"]["result"] == "rejected"
    assert body["last_cycle"]["rejected"] == 2
    assert body["last_success_age_seconds"] == 0

    tolerant = CycleReport(kind=CycleKind.SYNC, rejection_threshold=3)
    tolerant.for_resource(Resource.ORDERS).counts.rejected = 2
    health.cycle_finished(CycleOutcome(CycleKind.SYNC, clock.now, 1.0, tolerant))
    assert health.check()[1]["status"] == "ok"
    off = CycleReport(kind=CycleKind.SYNC, rejection_threshold=0)
    off.for_resource(Resource.ORDERS).counts.rejected = 500
    assert CycleOutcome(CycleKind.SYNC, clock.now, 1.0, off).result == "ok"


def test_a_held_mapping_change_answers_503_only_when_the_operator_asks() -> None:
    clock = Clock()
    for fails_on_hold, code in ((False, 200), (True, 503)):
        health = Health(stale_after=180, clock=clock, fails_on_hold=fails_on_hold)
        health.set_active(True)
        health.cycle_finished(_outcome(clock))
        health.mapping_held({"orders": 120})
        assert health.check()[0] == code
        assert health.check()[1]["held_mapping_changes"] == {"orders": 120}
        health.mapping_held({})
        assert health.check()[0] == 200


def test_a_long_cycle_that_makes_progress_stays_healthy() -> None:
    clock = Clock()
    health = Health(stale_after=180, clock=clock)
    health.set_active(True)
    health.cycle_started(CycleKind.RESYNC)
    for _ in range(10):
        clock.now += 150
        health.progress()
    code, body = health.check()
    assert (code, body["cycle_running"]) == (200, "resync")
    clock.now += 181
    assert health.check()[0] == 503  # no progress for longer than stale_after: stuck


def test_a_standby_is_healthy_while_it_can_reach_the_state_db() -> None:
    health = Health(stale_after=1, clock=Clock())
    code, body = health.check()
    assert (code, body["status"], body["active"]) == (200, "standby", False)
    health.standby_failed("state DB postgresql://cdc@db/state: could not connect")
    code, body = health.check()
    assert (code, body["status"]) == (503, "standby")
    assert "could not connect" in body["last_error"]


# -- metrics --------------------------------------------------------------------------------


def test_metrics_render_prometheus_text_with_escaped_labels() -> None:
    clock = Clock()
    metrics = Metrics()
    report = CycleReport(kind=CycleKind.SYNC)
    report.for_resource(Resource.ORDERS).counts.sent = 7
    report.for_resource(Resource.ORDERS).counts.rejected = 2
    metrics.cycle_finished(CycleOutcome(CycleKind.SYNC, clock.now, 0.25, report))
    metrics.count_response("200")
    metrics.count_response("200")
    metrics.count_response("timeout")
    metrics.set_state_counts('we"ird\\name', {"pending": 3})
    text = metrics.render()
    assert sample(text, "cdc_sync_records_sent_total", resource="orders") == 7
    assert sample(text, "cdc_sync_records_rejected_total", resource="orders") == 2
    assert sample(text, "cdc_sync_cycles_total", kind="sync", result="rejected") == 1
    assert sample(text, "cdc_sync_cycle_duration_seconds_sum") == 0.25
    assert sample(text, "cdc_sync_cycle_duration_seconds_count") == 1
    assert sample(text, "cdc_sync_last_success_timestamp_seconds") == clock.now
    assert sample(text, "cdc_sync_metrilo_responses_total", code="200") == 2
    assert sample(text, "cdc_sync_metrilo_responses_total", code="timeout") == 1
    assert sample(text, "cdc_sync_state_records", resource='we"ird\\name', status="pending") == 3
    assert 'cdc_sync_state_records{resource="we\\"ird\\\\name",status="pending"} 3' in text
    assert "# TYPE cdc_sync_records_sent_total counter\n" in text


# -- webhook --------------------------------------------------------------------------------


def _hook(answers: list[httpx.Request], status: int = 204, *,
          rejections: int = 1) -> Webhook:
    def handle(request: httpx.Request) -> httpx.Response:
        answers.append(request)
        return httpx.Response(status)
    return Webhook("https://hooks.example/services/T0KEN", rejections=rejections,
                   transport=httpx.MockTransport(handle))


def test_webhook_posts_failures_rejections_over_the_threshold_and_recovery() -> None:
    clock, calls = Clock(), list[httpx.Request]()
    hook = _hook(calls, rejections=3)
    hook.cycle_finished(_outcome(clock))
    hook.cycle_finished(_outcome(clock, rejected=2))
    assert calls == []
    hook.cycle_finished(_outcome(clock, rejected=3))
    hook.cycle_finished(_outcome(clock, ok=False))
    hook.cycle_finished(_outcome(clock))
    hook.cycle_finished(_outcome(clock, guard=True))
    hook.cycle_finished(_outcome(clock, guard=True))  # the same failure: announced once
    events = [json.loads(c.content) for c in calls]
    assert [e["event"] for e in events] == [
        "rejections", "cycle_failed", "recovered", "cycle_failed"]
    assert events[1]["errors"] == ["Metrilo did not accept 3 orders records after retries: 503"]
    assert events[1]["text"].startswith("cdc-sync sync cycle failed: Metrilo")


def test_a_failing_webhook_is_logged_without_its_url_and_never_raises(
        caplog: pytest.LogCaptureFixture) -> None:
    calls: list[httpx.Request] = []
    with caplog.at_level(logging.WARNING):
        assert _hook(calls, status=500).post({"event": "test"}) is False
        down = Webhook("http://127.0.0.1:9/hook/T0KEN")
        assert down.post({"event": "test"}) is False
    assert "answered 500" in caplog.text
    assert "could not be called" in caplog.text
    assert "T0KEN" not in caplog.text
    assert "T0KEN" not in repr(down)


# -- leases ---------------------------------------------------------------------------------


def test_file_lease_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.sqlite"
    first, second = open_lease(url), open_lease(url)
    assert isinstance(first, FileLease)
    assert not first.allows_standby
    assert first.acquire()
    assert first.alive()
    assert not second.acquire()
    assert second.holder() is not None
    assert "pid" in (second.holder() or "")
    first.release()
    assert second.acquire()
    second.release()


def test_file_lease_of_a_killed_process_is_free_at_once(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from cdc_sync.daemon.lease import "
         "FileLease; lease = FileLease(Path(sys.argv[1])); assert lease.acquire(); "
         "print('held', flush=True); "
         "time.sleep(60)", str(path)], stdout=subprocess.PIPE)
    assert holder.stdout is not None
    assert holder.stdout.readline() == b"held\n"
    assert not FileLease(path).acquire()
    holder.kill()
    holder.wait()
    assert FileLease(path).acquire()


def test_advisory_lease_is_exclusive_and_freed_when_its_session_ends(pg_url: str) -> None:
    first = open_lease(pg_url, session_timeout=30)
    second = open_lease(pg_url)
    assert isinstance(first, AdvisoryLease)
    assert first.allows_standby
    try:
        assert first.acquire()
        assert first.alive()
        assert not second.acquire()
        assert f"pid {os.getpid()}" in (second.holder() or "")
        engine = sa.create_engine(pg_url)
        with engine.connect() as conn:  # what a crash or a DBA's kill does to the session
            conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name LIKE 'cdc-sync pid%' AND datname = current_database() "
                "AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"))
            conn.commit()
        engine.dispose()
        assert not first.alive()
        assert second.acquire()
    finally:
        first.release()
        second.release()


def test_a_foreground_command_holds_the_lease_and_meets_a_running_daemon(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.sqlite"
    with resync_or_hand_over(url, [Resource.ORDERS]) as handed:
        assert handed is None  # no daemon: run it here, the lease held meanwhile
        assert not open_lease(url).acquire()
    assert active_daemon(url) is None
    daemon = open_lease(url)
    assert daemon.acquire()
    assert f"pid {os.getpid()}" in (active_daemon(url) or "")
    with pytest.raises(DaemonRunningError, match=r"a cdc-sync daemon is running.*resync"), \
            foreground_lease(url, "sync"):
        pass
    with resync_or_hand_over(url, [Resource.ORDERS], confirm=True) as handed:
        assert handed is not None
    with StateStore.open(url) as state:
        request = state.take_resync_request()
    assert request is not None
    assert request.id == handed.request_id
    assert (request.resources, request.confirm, request.restart) == (("orders",), True, False)
    daemon.release()


# -- endpoint -------------------------------------------------------------------------------


def test_endpoint_answers_404_elsewhere_and_says_how_to_fix_a_taken_port() -> None:
    health, metrics = Health(stale_after=1), Metrics()
    endpoint = Endpoint("127.0.0.1", 0, health, metrics).start()
    try:
        missing = httpx.get(f"{endpoint.url}/")
        assert missing.status_code == 404
        assert b"/healthz" in missing.content
        port = int(endpoint.url.rsplit(":", 1)[1])
        with pytest.raises(EndpointError, match="CDC_SYNC_HTTP_PORT"):
            Endpoint("127.0.0.1", port, health, metrics)
    finally:
        endpoint.stop()


def test_resync_command_helper_hands_over_to_a_daemon_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cdc_sync.cli.daemon_cmds import hand_resync_to_daemon
    from cdc_sync.settings import load_settings

    url = f"sqlite:///{tmp_path}/state.sqlite"
    settings = load_settings({"state_url": url}, _env_file=None)
    with hand_resync_to_daemon(settings, []) as handed:
        assert handed is False
    assert capsys.readouterr().out == ""
    daemon = open_lease(url)
    assert daemon.acquire()
    with hand_resync_to_daemon(settings, [Resource.PRODUCTS], restart=True) as handed:
        assert handed is True
    out = capsys.readouterr().out
    assert "resync request 1 handed to the running daemon" in out
    assert f"pid {os.getpid()}" in out
    daemon.release()
