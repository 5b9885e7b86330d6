"""Outages for tests: `cdc-sync run` as a process, database connections killed or locked, and
the end check that nothing was lost or marked synced wrongly.

The daemon runs in a subprocess (as in production), pointed at a `World`: the test process
keeps the sandbox, so it can inject faults, stop it and look inside it while the daemon works.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from cdc_sync.core.diff import fingerprint
from cdc_sync.core.validate import reasons_to_hold
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.state.tables import sync_state
from helpers.cli import cli_env, command
from helpers.world import SANDBOX_RESOURCE, World

T = TypeVar("T")

# A daemon that notices changes, failures and recoveries within a second.
FAST_DAEMON = {
    "CDC_SYNC_INTERVAL": "0.3",
    "CDC_SYNC_POLL_SECONDS": "0.1",
    "CDC_SYNC_BACKOFF_MAX": "1",
    "CDC_SYNC_MAX_ATTEMPTS": "2",
    "CDC_SYNC_MAX_RETRY_SECONDS": "1",
    "CDC_SYNC_HTTP_TIMEOUT": "5",
    "CDC_SYNC_BATCH_SIZE": "50",
    "CDC_SYNC_CONCURRENCY": "2",
}


def wait_until(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `check` until it returns something true, and return that; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@dataclass(eq=False)
class DaemonProcess:
    """One `cdc-sync run` process; its stdout and stderr go to `log_path`."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, world: World, name: str = "daemon", **env: str) -> DaemonProcess:
        log_path = world.tmp / f"{name}.log"
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                command("run"), cwd=world.tmp, env=cli_env(world, **(FAST_DAEMON | env)),
                stdout=out, stderr=subprocess.STDOUT,
            )
        daemon = cls(process, log_path)
        _STARTED.append(daemon)
        return daemon

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log()))

    def wait_for(self, pattern: str, timeout: float = 30, count: int = 1) -> str:
        """Wait for the `count`-th line matching `pattern`; fail at once if the daemon exits."""
        def found() -> str | None:
            lines = [line for line in self.log().splitlines() if re.search(pattern, line)]
            if len(lines) >= count:
                return lines[count - 1]
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the daemon exited ({self.process.returncode}) before {pattern!r}:\n"
                    + self.log()[-4000:])
            return None
        line = wait_until(found, timeout, f"{pattern!r} (x{count}) in the daemon's log")
        assert line is not None
        return line

    def wait_for_more(self, pattern: str, timeout: float = 30) -> str:
        """Wait for one more line matching `pattern` than the log holds now."""
        return self.wait_for(pattern, timeout, count=self.count(pattern) + 1)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit code (a clean stop is 0)."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait(30)


_STARTED: list[DaemonProcess] = []


def kill_leftover_daemons() -> int:
    """Kill the daemons a test started and left running (it failed before `stop`): a daemon
    left behind keeps syncing into a world that is gone, and grows. How many were left."""
    left = [daemon for daemon in _STARTED if daemon.alive()]
    for daemon in left:
        daemon.kill()
    _STARTED.clear()
    return len(left)


def sandbox_requests(world: World, path: str) -> int:
    """Requests the sandbox answered (or dropped) on a contract path, whatever the answer."""
    return sum(world.sandbox.store.stats()["requests"].get(path, {}).values())


# -- database outages --------------------------------------------------------------------------


def _server_admin(url: str) -> sa.Engine:
    """An autocommit engine on the same server, outside the database under test."""
    parsed = sa.make_url(url)
    other = "postgres" if parsed.get_backend_name() == "postgresql" else "mysql"
    return sa.create_engine(parsed.set(database=other), isolation_level="AUTOCOMMIT")


def terminate_postgresql_sessions(url: str) -> int:
    """pg_terminate_backend every session on the database at `url`; how many there were."""
    admin = _server_admin(url)
    try:
        with admin.connect() as conn:
            ended = conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"
            ), {"db": sa.make_url(url).database}).all()
    finally:
        admin.dispose()
    return len(ended)


@contextmanager
def postgresql_down(url: str) -> Iterator[None]:
    """The database at `url` refuses new sessions and loses its open ones, until the block ends
    (what a server restart or a failover looks like to a client)."""
    database = sa.make_url(url).database
    admin = _server_admin(url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
        terminate_postgresql_sessions(url)
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def kill_mariadb_sessions(url: str) -> int:
    """KILL every session using the database at `url`; how many there were."""
    admin = _server_admin(url)
    killed = 0
    try:
        with admin.connect() as conn:
            ids = conn.execute(sa.text(
                "SELECT id FROM information_schema.processlist "
                "WHERE db = :db AND id <> CONNECTION_ID()"
            ), {"db": sa.make_url(url).database}).scalars().all()
            for session in ids:
                try:
                    conn.execute(sa.text(f"KILL {int(session)}"))
                    killed += 1
                except sa.exc.OperationalError:  # it ended on its own meanwhile
                    pass
    finally:
        admin.dispose()
    return killed


@contextmanager
def sqlite_locked(path: Path, seconds: float) -> Iterator[threading.Event]:
    """Another connection holds `BEGIN EXCLUSIVE` on the SQLite file for `seconds` (from a
    thread, so the test goes on meanwhile); the block waits for the lock to be taken, and its
    end for it to be released. The event is set once the lock is released."""
    taken, released = threading.Event(), threading.Event()

    def hold() -> None:
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            db.execute("BEGIN EXCLUSIVE")
            taken.set()
            time.sleep(seconds)
            db.execute("ROLLBACK")
        finally:
            db.close()
            released.set()

    holder = threading.Thread(target=hold, name="sqlite-lock-holder", daemon=True)
    holder.start()
    assert taken.wait(30), f"could not lock {path}"
    try:
        yield released
    finally:
        holder.join(seconds + 30)


# -- the end check -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceView:
    """What the shop composes now, per state resource: the fingerprint of each valid record,
    and the keys of records that cannot be sent (rejected locally)."""

    valid: dict[str, dict[str, str]]  # resource -> key -> fingerprint
    invalid: dict[str, set[str]]


def source_view(world: World) -> SourceView:
    view = SourceView({}, {})
    shop = connect_shop(world.shop_url)
    try:
        source = ShopSource(shop, world.mapping)
        for resource in source.mapped_resources():
            valid = view.valid.setdefault(resource.value, {})
            invalid = view.invalid.setdefault(resource.value, set())
            for record in source.records(resource):
                if record.problems or reasons_to_hold(resource.endpoint, record.payload):
                    invalid.add(record.key)
                else:
                    valid[record.key] = fingerprint(record.payload)
    finally:
        shop.dispose()
    return view


def state_rows(state_url: str) -> list[Any]:
    """Every sync_state row (resource, key, metrilo_id, status, synced_fingerprint)."""
    engine = sa.create_engine(state_url)
    c = sync_state.c
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(
                c.resource, c.key, c.metrilo_id, c.status, c.synced_fingerprint)))
    finally:
        engine.dispose()


def state_problems(world: World) -> list[str]:
    """How state disagrees with the shop and the sandbox after convergence (empty: agrees).

    Every valid record of the shop is synced at its current fingerprint and held by the
    sandbox; nothing is pending; a record the shop cannot compose validly is not synced;
    a record gone from the shop is not synced.
    """
    view = source_view(world)
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for resource, key, mid, status, synced_fp in state_rows(world.state_url):
        seen.add((resource, key))
        wanted = view.valid.get(resource, {}).get(key)
        held = world.sandbox.store.get(SANDBOX_RESOURCE_BY_NAME[resource], str(mid))
        why = _row_problem(status, synced_fp, wanted, held is not None)
        if why:
            problems.append(f"{resource} {key}: {why}")
    for resource, records in view.valid.items():
        unknown = [key for key in records if (resource, key) not in seen]
        if unknown:
            problems.append(f"{resource}: {len(unknown)} records state never recorded, "
                            f"e.g. {unknown[:3]}")
    return problems[:20]


def _row_problem(status: str, synced_fp: str | None, wanted: str | None,
                 held: bool) -> str | None:
    if status == "synced":
        if not held:
            return "synced, but the sandbox holds no such record"
        if wanted is None:
            return "synced, but the shop has no valid record"
        return None if synced_fp == wanted else "synced at another version than the shop's"
    if status == "pending":
        return "still pending"
    if status == "gone" and wanted is not None:
        return "gone, but the shop has it"
    if status == "rejected" and wanted is not None:
        return "rejected, but it is valid"
    return None


SANDBOX_RESOURCE_BY_NAME = {resource.value: name for resource, name in SANDBOX_RESOURCE.items()}
