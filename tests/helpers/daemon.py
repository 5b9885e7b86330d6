"""`cdc-sync run` as a real process against a SQLite demo shop (seeded by the test), the real
sandbox (in the test's process, so the test can look inside it and inject faults) and a state
DB: the harness of test_daemon_run.py and test_mapping_reload.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cdc_sync.demo.generate import SMALL, generate
from cdc_sync.sandbox import Sandbox
from cdc_sync.state import StateStore, Status
from helpers.outages import wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
TOKEN, SECRET = "daemon-token", "daemon-secret-value"
# `cdc-sync run`, whether or not the command is registered in cdc_sync.cli yet.
RUN = [sys.executable, "-c",
       "import sys; from cdc_sync.cli import cli; from cdc_sync.cli.common import run_guarded; "
       "from cdc_sync.cli.daemon_cmds import COMMANDS; [cli.add_command(c) for c in COMMANDS]; "
       "sys.exit(run_guarded(cli))", "run"]
SANDBOX_OF = {"customers": ("customers", "guest_customers"), "categories": ("categories",),
              "products": ("products", "deleted_products"), "orders": ("orders",)}
# The daemon's log line once its first cycle sent the seeded shop.
FIRST_CYCLE = r"sync cycle ok in \S+: customers 40 sent"


@dataclass(eq=False)
class Daemon:
    """One `cdc-sync run` process, its output in a file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str, timeout: float = 20, count: int = 1) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            matches = list(re.finditer(pattern, self.log()))
            if self.process.poll() is not None and len(matches) < count:
                raise AssertionError(f"the daemon exited ({self.process.returncode}):\n"
                                     f"{self.log()}")
            return matches[count - 1] if len(matches) >= count else None
        return wait_until(found, timeout, f"{pattern!r} in the daemon's log")

    def health_url(self) -> str:
        return self.wait_for(r"health endpoint at (http://\S+)/healthz").group(1)

    def stop(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@dataclass
class World:
    tmp: Path
    sandbox: Sandbox
    shop_path: Path
    state_url: str
    daemons: list[Daemon] = field(default_factory=list)

    @property
    def shop_url(self) -> str:
        return f"sqlite:///{self.shop_path}"

    def seed(self) -> None:
        engine = sa.create_engine(self.shop_url)
        try:
            generate(engine, customers=SMALL.customers, categories=SMALL.categories,
                     products=SMALL.products, orders=SMALL.orders, seed=1)
        finally:
            engine.dispose()

    def shop(self) -> sa.Engine:
        return sa.create_engine(self.shop_url)

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("CDC_SYNC_", "METRILO_"))}
        return base | {
            "METRILO_API_URL": self.sandbox.url, "METRILO_API_TOKEN": TOKEN,
            "METRILO_API_SECRET": SECRET, "CDC_SYNC_SOURCE_URL": self.shop_url,
            "CDC_SYNC_STATE_URL": self.state_url,
            "CDC_SYNC_MAPPINGS": str(ROOT / "mappings.yaml"),
            "CDC_SYNC_INTERVAL": "1", "CDC_SYNC_POLL_SECONDS": "0.2",
            "CDC_SYNC_MAX_ATTEMPTS": "2", "CDC_SYNC_MAX_RETRY_SECONDS": "1",
            "CDC_SYNC_BACKOFF_MAX": "1",
        } | extra

    def start(self, *args: str, **env: str) -> Daemon:
        log_path = self.tmp / f"daemon-{len(self.daemons)}.log"
        with log_path.open("wb") as out:
            process = subprocess.Popen([*RUN, *args], cwd=self.tmp, env=self.env(**env),
                                       stdout=out, stderr=subprocess.STDOUT)
        daemon = Daemon(process, log_path)
        self.daemons.append(daemon)
        return daemon

    def state(self) -> StateStore:
        return StateStore.open(self.state_url)

    def synced(self) -> dict[str, int]:
        """Synced state rows per sandbox resource."""
        with self.state() as state:
            return {name: sum(state.count_by_status(r)[Status.SYNCED] for r in members)
                    for name, members in SANDBOX_OF.items()}

    def held(self, resource: str, key: str) -> dict[str, Any]:
        """The record the sandbox holds, or {} when it holds none."""
        return self.sandbox.store.get(resource, key) or {}

    def requests(self, path: str) -> int:
        return sum(self.sandbox.store.stats()["requests"].get(path, {}).values())


def daemon_world(tmp_path: Path, state_url: str) -> Iterator[World]:
    """A sandbox and a World around it; the daemons the test started are killed after it."""
    with Sandbox(token=TOKEN, secret=SECRET) as sandbox:
        found = World(tmp_path, sandbox, tmp_path / "shop.sqlite", state_url)
        try:
            yield found
        finally:
            for daemon in found.daemons:
                if daemon.process.poll() is None:
                    daemon.process.kill()
                    daemon.process.wait(10)
