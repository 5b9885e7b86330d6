"""Composing in a worker process (`sync.compose_workers`, cycle/composing.py): the same cycle as
composing in the engine's own thread, byte for byte, and a worker that dies, a Ctrl-C or a
stop end the cycle cleanly, leaving no process behind.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cdc_sync.core.diff import SourceHasher, source_seed
from cdc_sync.core.prepare import UNKNOWN
from cdc_sync.core.report import CycleReport, ResourceCounts
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.composing import DEPTH, Composing, Job
from cdc_sync.cycle.engine import SyncEngine
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.demo import mutate
from cdc_sync.errors import ComposeWorkerError
from cdc_sync.metrilo.client import MetriloClient
from cdc_sync.sandbox import Sandbox
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.state import StateStore
from helpers.backends import database_urls
from helpers.cli import run_cli
from helpers.world import SECRET, TOKEN, World, demo_world
from helpers.worlds import world_fixture

CHUNK = 40  # several chunks per resource, so chunks are composed while others are planned

BOTH_SHOPS = [
    pytest.param(("sqlite", "sqlite"), id="shop=sqlite,state=sqlite"),
    pytest.param(("postgresql", "sqlite"), id="shop=postgresql,state=sqlite"),
]


world = world_fixture(BOTH_SHOPS)


class Recording(httpx.BaseTransport):
    """Forwards every request, keeping each batch's path and records in the order sent."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.sent: list[tuple[str, list[Any]]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.sent.append((request.url.path, body.get("batch", [body.get("params")])))
        return self._inner.handle_request(request)


def _worker_engine(engine: SyncEngine[StateStore], workers: int) -> SyncEngine[StateStore]:
    # The worker composes every chunk from the first one on, even in a small shop.
    engine.composing = Composing(workers, start_after=0, wait_for_start=True)
    return engine


def _cycle(world: World, sandbox: Sandbox, state_url: str, workers: int,
           options: CycleOptions | None = None) -> tuple[CycleReport, Recording, int]:
    recording = Recording()
    with MetriloClient(token=TOKEN, secret=SECRET, base_url=sandbox.url, transport=recording,
                       concurrency=1, retry=world.retry) as client, \
            StateStore.open(state_url) as state, \
            world.engine(client=client, state=state, chunk_size=CHUNK) as engine:
        report = _worker_engine(engine, workers).run(options or CycleOptions())
        assert engine.composing.worker_pid is None  # ended with the cycle
        if workers:  # a chunk waited in the worker's pipe while it composed the one before
            assert engine.composing.most_in_flight == DEPTH
        return report, recording, engine.composing.starts


def _state_rows(state_url: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(state_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT resource, key, metrilo_id, status, synced_fingerprint, "
                "attempt_fingerprint, tags, forced, attempts, last_error, payload, "
                "source_fingerprint FROM sync_state ORDER BY resource, key")).all()
    finally:
        engine.dispose()
    return [tuple(row) for row in rows]


def _held(sandbox: Sandbox) -> dict[str, Any]:
    return {name: sandbox.store.records(name) for name in ("customers", "categories",
                                                             "products", "orders")}


def _counts(report: CycleReport) -> dict[str, ResourceCounts]:
    return {str(resource): rep.counts for resource, rep in report.resources.items()}


def _change_the_shop(world: World) -> None:
    """Changed orders are sent, a new one too; a fixed customer's waiting orders go."""
    mutate.rename_customer(world.shop, 1, "Fixed")
    for order_id in (5, 7, 9):
        mutate.set_order_status(world.shop, order_id, 8)
    mutate.add_order(world.shop, email="new.buyer@shop.test", lines=[(1, 2), (2, 1)])


def test_a_worker_composes_the_same_cycles_as_the_engine_thread(
        world: World, tmp_path: Path) -> None:
    sandboxes = {workers: Sandbox(token=TOKEN, secret=SECRET).__enter__() for workers in (0, 1)}
    try:
        for customer_id in (1, 2):  # rejected: their orders wait
            mutate.rename_customer(world.shop, customer_id, "Bad\x01Name")
        states = {workers: f"sqlite:///{tmp_path}/state-{workers}.sqlite" for workers in (0, 1)}
        push = {w: _cycle(world, sandboxes[w], states[w], w) for w in (0, 1)}
        _change_the_shop(world)
        again = {w: _cycle(world, sandboxes[w], states[w], w, CycleOptions(full=True))
                 for w in (0, 1)}
        held = {w: _held(sandboxes[w]) for w in (0, 1)}
    finally:
        for sandbox in sandboxes.values():
            sandbox.__exit__(None, None, None)
    rows = {w: _state_rows(states[w]) for w in (0, 1)}
    assert (push[0][2], push[1][2]) == (0, 1)  # a worker started, by the worker engine only
    assert push[0][1].sent == push[1][1].sent  # the same bodies, in the same order
    assert again[0][1].sent == again[1][1].sent
    assert _counts(push[0][0]) == _counts(push[1][0])
    assert _counts(again[0][0]) == _counts(again[1][0])
    assert held[0] == held[1]
    assert rows[0] == rows[1]
    orders = push[1][0].resources[Resource.ORDERS].counts
    assert orders.waiting > 0  # the comparison covers waits,
    assert again[1][0].resources[Resource.ORDERS].counts.retried > 0  # retries,
    assert any(row[3] == "rejected" for row in rows[1])  # and rejects


def _killing(engine: SyncEngine[StateStore], act: Callable[[int], None],
             pids: list[int]) -> Callable[[Resource, ResourceCounts], None]:
    """Progress callback: `act` on the worker once, while it composes a chunk of orders (the
    next chunk is in it while the planner hands out this one's records)."""
    done = [False]

    def on_progress(resource: Resource, _counts: ResourceCounts) -> None:
        pid = engine.composing.worker_pid
        if (resource is Resource.ORDERS and pid is not None and not done[0]
                and engine.composing.composing_elsewhere):
            done[0] = True
            pids.append(pid)
            act(pid)

    return on_progress


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_worker_that_dies_ends_the_cycle_and_the_next_one_sends_the_rest(world: World) -> None:
    pids: list[int] = []
    with world.engine(chunk_size=CHUNK) as engine:
        engine.on_progress = _killing(engine, lambda pid: os.kill(pid, signal.SIGKILL), pids)
        with pytest.raises(ComposeWorkerError, match=r"code -9.*while composing orders"):
            _worker_engine(engine, 1).run()
        assert engine.composing.worker_pid is None
    assert pids
    assert _gone(pids[0])
    assert world.differences() != []  # the cycle stopped halfway

    report = world.sync(chunk_size=CHUNK, compose_workers=1)
    assert report.ok
    assert world.differences() == []


def test_ctrl_c_during_a_cycle_leaves_no_worker_behind(world: World) -> None:
    pids: list[int] = []

    def interrupt(_pid: int) -> None:
        raise KeyboardInterrupt

    with world.engine(chunk_size=CHUNK) as engine:
        engine.on_progress = _killing(engine, interrupt, pids)
        with pytest.raises(KeyboardInterrupt):
            _worker_engine(engine, 1).run()
        assert engine.composing.worker_pid is None
    assert pids
    assert _gone(pids[0])
    assert world.sync(chunk_size=CHUNK).ok
    assert world.differences() == []


def test_a_stop_request_ends_the_cycle_cleanly_and_repeated_cycles_keep_no_worker(
        world: World) -> None:
    pids: list[int] = []
    with world.engine(chunk_size=CHUNK) as engine:
        engine.on_progress = _killing(engine, lambda _pid: engine.stop.set(), pids)
        stopped = _worker_engine(engine, 1).run()
        assert stopped.stopped
        assert engine.composing.worker_pid is None
        engine.stop.clear()
        for _ in range(2):  # as the daemon runs cycle after cycle
            assert engine.run(CycleOptions(full=True)).ok
            assert engine.composing.worker_pid is None
        assert engine.composing.starts == 2  # the stopped cycle's and the next one's
    assert all(_gone(pid) for pid in pids)
    assert world.differences() == []


def test_a_no_change_cycle_starts_no_worker(world: World) -> None:
    world.sync()
    with world.engine(compose_workers=1) as engine:
        report = engine.run(CycleOptions(full=True))
        assert report.ok
        assert engine.composing.starts == 0


def test_sync_and_status_through_the_cli_say_where_records_are_composed(world: World) -> None:
    synced = run_cli(world, "sync", CDC_SYNC_COMPOSE_WORKERS="1")
    assert synced.returncode == 0, synced.stderr
    assert world.differences() == []
    status = run_cli(world, "status", CDC_SYNC_COMPOSE_WORKERS="1").stdout
    assert ("composing: in a worker process beside the cycle's, once a cycle has many records "
            "to compose (CDC_SYNC_COMPOSE_WORKERS=1)") in status
    data = json.loads(run_cli(world, "status", "--json").stdout)
    assert data["composing"]["setting"] is None
    assert data["composing"]["workers"] == (1 if data["composing"]["cpus"] > 1 else 0)
    refused = run_cli(world, "status", CDC_SYNC_COMPOSE_WORKERS="2")
    assert refused.returncode == 2
    assert "CDC_SYNC_COMPOSE_WORKERS" in refused.stderr + refused.stdout


def test_a_dry_run_counts_and_samples_the_same_with_a_worker(world: World) -> None:
    mutate.rename_customer(world.shop, 1, "Bad\x01Name")  # a rejected sample too
    reports = {}
    for workers in (0, 1):
        with world.engine(chunk_size=CHUNK) as engine:
            reports[workers] = _worker_engine(engine, workers).run(CycleOptions(dry_run=True))
            assert engine.composing.starts == workers
    assert _counts(reports[0]) == _counts(reports[1])
    for resource, rep in reports[0].resources.items():
        assert rep.samples == reports[1].resources[resource].samples
    assert any(rep.samples for rep in reports[1].resources.values())


def test_chunks_too_large_to_queue_in_the_pipe_wait_for_the_earlier_answers(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # Customers of 60 KB each (SQLite keeps a VARCHAR's text whole): the chunks of 40 and of 20
    # and their answers are over a MiB, more than the pipes hold, so the worker blocks writing
    # its answer until it is read; the next job written behind it would wait for the worker
    # to read it: a deadlock, unless the answer is read first.
    shop_url, _ = database_urls(request, tmp_path, "sqlite", "sqlite")
    with demo_world(tmp_path, shop_url, f"sqlite:///{tmp_path}/unused.sqlite") as world:
        for customer_id in range(1, 61):
            mutate.rename_customer(world.shop, customer_id, f"{customer_id}-" + "N" * 60_000)
        sent = {}
        for workers in (0, 1):
            with Sandbox(token=TOKEN, secret=SECRET) as sandbox:
                report, recording, _ = _cycle(world, sandbox, f"sqlite:///{tmp_path}/s{workers}",
                                              workers)
                assert report.ok
                sent[workers] = recording.sent
    assert sent[1] == sent[0]
    customers = [record for path, batch in sent[1] if path.endswith("/customer/batch")
                 for record in batch]
    assert sum(len(c.get("firstName", "")) > 60_000 for c in customers) == 60


mariadb_world = world_fixture([pytest.param(("mariadb", "sqlite"), id="shop=mariadb,state=sqlite")])


def _cycle_reading(world: World, state_url: str, workers: int, *,
                   digests: bool) -> tuple[CycleReport, Recording]:
    """A cycle of `world` into a sandbox of its own, its rows read with or without the
    shop's digests (with them, a full read leaves values as bytes: core/deferred.py)."""
    shop = connect_shop(world.shop_url)
    try:
        with Sandbox(token=TOKEN, secret=SECRET) as sandbox:
            recording = Recording()
            with MetriloClient(token=TOKEN, secret=SECRET, base_url=sandbox.url,
                               transport=recording, concurrency=1, retry=world.retry) as client, \
                    StateStore.open(state_url) as state, \
                    world.engine(client=client, state=state, chunk_size=CHUNK,
                                 source=ShopSource(shop, world.mapping,
                                                   digests=digests)) as engine:
                report = _worker_engine(engine, workers).run(CycleOptions())
                assert engine.composing.starts == workers
            return report, recording
    finally:
        shop.dispose()


def test_values_read_as_bytes_compose_the_records_read_as_values_here_and_in_a_worker(
        mariadb_world: World, tmp_path: Path) -> None:
    world = mariadb_world
    shop = connect_shop(world.shop_url)
    try:  # PyMySQL's full read for a worker leaves the values as bytes, with digests only
        for digests, late, deferred in ((True, True, True), (False, True, False),
                                        (True, False, False)):
            rows = ShopSource(shop, world.mapping, digests=digests).rows(Resource.ORDERS,
                                                                         late_values=late)
            assert isinstance(rows, Generator)  # closed: its connections go back
            assert (next(rows).shape.deferred is not None) is deferred
            rows.close()
    finally:
        shop.dispose()
    for customer_id in (1, 2):  # rejected: their orders wait
        mutate.rename_customer(world.shop, customer_id, "Bad\x01Name")
    runs = {(digests, workers): _cycle_reading(world, f"sqlite:///{tmp_path}/{digests}-{workers}",
                                               workers, digests=digests)
            for digests, workers in ((False, 0), (True, 0), (True, 1))}
    converted = runs[False, 0]
    for run in (runs[True, 0], runs[True, 1]):  # in the cycle's thread, and in the worker
        assert run[1].sent == converted[1].sent  # the same bodies, in the same order
        assert _counts(run[0]) == _counts(converted[0])
    # The same state but for the source fingerprints (marks of digests, or of values).
    without_marks = {(digests, workers): [
        row[:-1] for row in _state_rows(f"sqlite:///{tmp_path}/{digests}-{workers}")]
        for digests, workers in runs}
    assert without_marks[True, 0] == without_marks[True, 1] == without_marks[False, 0]
    assert converted[0].resources[Resource.ORDERS].counts.waiting > 0


def test_values_read_as_bytes_are_the_drivers_values_where_they_are_composed(
        mariadb_world: World) -> None:
    # A row's source fingerprint is the digest of the repr of its values: made in the
    # worker and here from a full read's rows (values left as bytes), it must be the one
    # of the same rows read by key (converted as read, as an incremental cycle reads them).
    seed = source_seed("test")
    shop = connect_shop(mariadb_world.shop_url)
    try:
        source = ShopSource(shop, mariadb_world.mapping)
        readings = source.readings(Resource.ORDERS, late_values=True)
        rows = list(readings.rows)
        converted = list(source.rows(Resource.ORDERS, keys=[row.key for row in rows]))
    finally:
        shop.dispose()
    assert rows[0].shape.deferred is not None
    assert converted[0].shape.deferred is None
    assert {type(value) for row in rows for value in row.read_raw} >= {bytes}
    expected = [SourceHasher(seed)(row.raw, row.kids) for row in converted]
    job = Job(Resource.ORDERS, readings.compose, seed, rows, [UNKNOWN] * len(rows))
    composing = Composing(1, start_after=0, wait_for_start=True)
    try:
        in_worker = composing.submit(job).result()
        assert composing.chunks_sent == 1
    finally:
        composing.close()
    assert [p.source_fingerprint for p in in_worker] == expected
    assert [p.source_fingerprint for p in job.run_here()] == expected  # here (SourceRow)
    assert [(row.raw, row.kids) for row in rows] == [(row.raw, row.kids) for row in converted]
