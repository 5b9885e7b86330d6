#!/usr/bin/env python3
"""Soak: `cdc-sync run` under chaos still ends with Metrilo holding exactly what the shop holds.

    python scripts/soak.py                       # ~90 s, as CI runs it
    python scripts/soak.py --seconds 3600 --seed 7 --kills 20 --customers 2000

1. A demo shop is seeded (a SQLite file, or the empty database at --shop-url), the sandbox
   starts with a store file, and the daemon starts as a subprocess with a short interval.
2. For --seconds: a writer process keeps inserting, updating and deleting shop rows (the
   helpers of cdc_sync.demo.mutate; deletions stay far under the delete guard), the sandbox
   injects faults in phases (5xx storms, 429s, slow answers, dropped connections, calm), and
   the daemon is SIGKILLed --kills times and started again.
3. The writer stops and the faults go off; the daemon catches up (an ok cycle with nothing to
   send), runs on for two reconciliation windows (a short --window-minutes: a key that changed
   after its slice was read is read again in the next window) and is stopped with SIGTERM. Its
   own cycles must have left the sandbox equal to the shop (deletes, child-only edits, missed
   bumps included) BEFORE a final `cdc-sync sync --full` runs.
4. Checks (`soak_check`): the sandbox equals the source field by field before and after the
   final full cycle (records gone from the shop stay in Metrilo; tags merge; product options
   merge by id), state agrees with both, and the run history accounts for every record. The
   figures are printed; the exit code is 1 when it did not converge, 0 when it did.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

# soak_check and soak_writer live beside this file: Python puts a script's directory first
# on sys.path (and multiprocessing hands that path to the writer process).
from soak_check import Run, Verdict, check, differences
from soak_writer import Changes, write_shop

from cdc_sync.demo.generate import generate
from cdc_sync.demo.scenario import demo_mapping_path
from cdc_sync.sandbox import Sandbox

TOKEN, SECRET = "soak-token", "soak-secret-value"

# Fast enough to show many cycles, failures and recoveries in a minute. Slow answers stay
# well under the HTTP timeout: an answer that comes after the client gave up is still applied
# by the sandbox (as by Metrilo) and could overwrite a newer version sent since.
DAEMON_ENV = {
    "CDC_SYNC_INTERVAL": "0.5",
    "CDC_SYNC_POLL_SECONDS": "0.2",
    "CDC_SYNC_BACKOFF_MAX": "2",
    "CDC_SYNC_BATCH_SIZE": "20",
    "CDC_SYNC_CONCURRENCY": "2",
    "CDC_SYNC_MAX_ATTEMPTS": "3",
    "CDC_SYNC_MAX_RETRY_SECONDS": "3",
    "CDC_SYNC_HTTP_TIMEOUT": "5",
}

# The fault phases the chaos draws from: (name, sandbox fault settings).
PHASES: list[tuple[str, dict[str, Any]]] = [
    ("mixed", {"error_rate": 0.1, "throttle_rate": 0.05, "retry_after": 1, "drop_rate": 0.04,
               "delay_rate": 0.15, "delay": 0.3}),
    ("5xx storm", {"error_rate": 1.0}),
    ("throttled", {"throttle_rate": 0.6, "retry_after": 1}),
    ("dropping", {"drop_rate": 0.3}),
    ("slow", {"delay_rate": 1.0, "delay": 0.3}),
    ("calm", {}),
]
PHASE_SECONDS = (2.0, 6.0)
CATCH_UP_SECONDS = 60.0
IDLE = re.compile(r"sync cycle ok in \S+: nothing to send")


@dataclass(frozen=True)
class Options:
    seconds: float
    seed: int
    kills: int
    customers: int
    window_minutes: float
    shop_url: str | None
    state_url: str | None
    workdir: Path | None


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=90.0,
                        help="how long the chaos lasts (default 90; longer for a real soak)")
    parser.add_argument("--seed", type=int, default=1, help="seeds the shop, writer and chaos")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs of the daemon (default 3)")
    parser.add_argument("--customers", type=int, default=200,
                        help="demo shop size: customers (orders are 4 per customer)")
    parser.add_argument("--window-minutes", "--full-every", type=float, default=0.1,
                        metavar="MINUTES", dest="window_minutes",
                        help="sync.full_reconcile_minutes of the mapping: the rolling "
                             "reconciliation's window (0: every cycle reads fully; default 0.1)")
    parser.add_argument("--shop-url", help="an EMPTY database to seed as the shop "
                                           "(default: a SQLite file in the work directory)")
    parser.add_argument("--state-url", help="an empty state DB (default: a SQLite file)")
    parser.add_argument("--workdir", type=Path,
                        help="keep the shop, state, sandbox store and daemon logs here "
                             "(default: a temporary directory, removed at the end)")
    args = parser.parse_args(argv)
    return Options(args.seconds, args.seed, args.kills, args.customers, args.window_minutes,
                   args.shop_url, args.state_url, args.workdir)


@dataclass
class DaemonSupervisor:
    """The `cdc-sync run` process: started, killed, restarted; unexpected exits are noted."""

    env: dict[str, str]
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    deaths: list[int] = field(default_factory=list)  # exit codes nobody asked for

    def start(self) -> None:
        self.starts += 1
        with (self.workdir / f"daemon-{self.starts}.log").open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cdc_sync", "run"], env=self.env, cwd=self.workdir,
                stdout=log, stderr=subprocess.STDOUT,
            )

    def watch(self) -> None:
        """A daemon must never exit by itself: note it, and start another."""
        if self.process is not None and self.process.poll() is not None:
            self.deaths.append(self.process.returncode)
            self.start()

    def kill(self) -> None:
        assert self.process is not None
        self.watch()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self.kills += 1

    def working(self) -> bool:
        """Started up: it holds the lease (killing it before then tests only its start)."""
        return "holds the lease" in self.current_log()

    def stop(self) -> int:
        """SIGTERM; the exit code (0 after a clean stop)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)

    def end(self) -> None:
        """Whatever happened, leave no daemon behind."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def current_log(self) -> str:
        return (self.workdir / f"daemon-{self.starts}.log").read_text("utf-8", "replace")

    def logs(self) -> str:
        return "".join((self.workdir / f"daemon-{n}.log").read_text("utf-8", "replace")
                       for n in range(1, self.starts + 1))


@dataclass
class Soak:
    options: Options
    workdir: Path
    shop_url: str = ""
    state_url: str = ""
    mapping_path: Path = Path()
    phases: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def prepare(self) -> None:
        """Seed the shop and write the mapping (the demo's, with the soak's sync options)."""
        options = self.options
        self.shop_url = options.shop_url or f"sqlite:///{self.workdir}/shop.sqlite"
        self.state_url = options.state_url or f"sqlite:///{self.workdir}/state.sqlite"
        shop = sa.create_engine(self.shop_url)
        try:
            n = options.customers
            generate(shop, customers=n, categories=6, products=max(20, n // 4), orders=4 * n,
                     seed=options.seed)
        finally:
            shop.dispose()
        mapping = yaml.safe_load(demo_mapping_path().read_text(encoding="utf-8"))
        mapping["sync"] = {"full_reconcile_minutes": options.window_minutes}
        self.mapping_path = self.workdir / "mappings.yaml"
        self.mapping_path.write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")

    def env(self, sandbox: Sandbox) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("CDC_SYNC_", "METRILO_"))}
        return base | DAEMON_ENV | {
            "METRILO_API_URL": sandbox.url, "METRILO_API_TOKEN": TOKEN,
            "METRILO_API_SECRET": SECRET, "CDC_SYNC_SOURCE_URL": self.shop_url,
            "CDC_SYNC_STATE_URL": self.state_url, "CDC_SYNC_MAPPINGS": str(self.mapping_path),
        }

    def run(self) -> Verdict:
        self.prepare()
        with Sandbox(token=TOKEN, secret=SECRET,
                     store_path=self.workdir / "sandbox.sqlite") as sandbox:
            daemon = DaemonSupervisor(self.env(sandbox), self.workdir)
            daemon.start()
            try:
                changes = self._chaos(sandbox, daemon)
                began = time.monotonic()
                caught_up = self._catch_up(daemon) and self._reconciled(daemon, began)
                stopped = daemon.stop()
            finally:
                daemon.end()
            # What the daemon's own cycles left, before the full cycle below could mend it.
            before_full = differences(self.shop_url, self.state_url, self.mapping_path, sandbox)
            final = subprocess.run(
                [sys.executable, "-m", "cdc_sync", "sync", "--full"], env=daemon.env,
                cwd=self.workdir, capture_output=True, text=True, timeout=600, check=False,
            )
            self.timings["converge"] = time.monotonic() - began
            run = Run(self.shop_url, self.state_url, self.mapping_path, *changes, daemon.kills,
                      daemon.deaths, daemon.logs(), stopped, final, caught_up, self.timings,
                      self.phases, before_full)
            return check(run, sandbox)

    def _chaos(self, sandbox: Sandbox, daemon: DaemonSupervisor) -> Changes:
        """Writer, fault phases and kills for --seconds; returns what the writer did."""
        spawn = multiprocessing.get_context("spawn")
        stop, results = spawn.Event(), spawn.Queue()
        writer = spawn.Process(target=write_shop, name="soak-writer",
                               args=(self.shop_url, self.options.seed, stop, results))
        writer.start()
        try:
            self._storm(sandbox, daemon)
        finally:
            stop.set()
            try:
                changes: Changes = results.get(timeout=60)
            except queue.Empty:
                changes = ({}, "the writer process ended without a word (see its stderr)")
            writer.join(30)
        sandbox.faults.clear()
        daemon.watch()
        return changes

    def _storm(self, sandbox: Sandbox, daemon: DaemonSupervisor) -> None:
        """Fault phases and kills, for --seconds."""
        rng = random.Random(self.options.seed)  # noqa: S311 - reproducible chaos
        began = time.monotonic()
        deadline = began + self.options.seconds
        # Spread over the run, each within its own slot, so no kill lands before the
        # previous daemon had a chance to work.
        slot = self.options.seconds / (self.options.kills + 1)
        kill_at = [began + slot * (n + 1 + rng.uniform(-0.3, 0.3))
                   for n in range(self.options.kills)]
        next_phase = began
        while (now := time.monotonic()) < deadline:
            daemon.watch()
            if now >= next_phase:
                name, faults = rng.choice(PHASES)
                sandbox.faults.clear()
                sandbox.faults.update({**faults, "seed": rng.randrange(1 << 30)})
                self.phases.append(name)
                next_phase = now + rng.uniform(*PHASE_SECONDS)
            if kill_at and now >= kill_at[0] and daemon.working():
                kill_at.pop(0)
                daemon.kill()
                time.sleep(rng.uniform(0.0, 1.0))  # down for a moment, as under a supervisor
                daemon.start()
            time.sleep(0.05)
        self.timings["chaos"] = time.monotonic() - began

    def _catch_up(self, daemon: DaemonSupervisor) -> bool:
        """Wait (faults off, writer stopped) for an ok cycle with nothing left to send."""
        began = time.monotonic()
        idle_before = len(IDLE.findall(daemon.current_log()))
        while time.monotonic() - began < CATCH_UP_SECONDS:
            daemon.watch()
            if len(IDLE.findall(daemon.current_log())) > idle_before:
                self.timings["catch_up"] = time.monotonic() - began
                return True
            time.sleep(0.1)
        return False


    def _reconciled(self, daemon: DaemonSupervisor, began: float) -> bool:
        """Let the daemon run two reconciliation windows more, then see an idle cycle: every key
        changed before `began` has been read again after its change."""
        windows = 2 * self.options.window_minutes * 60
        while time.monotonic() - began < windows:
            daemon.watch()
            time.sleep(0.1)
        return self._catch_up(daemon)


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    with tempfile.TemporaryDirectory(prefix="cdc-sync-soak-") as temporary:
        workdir = options.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"soak: {options.seconds:g}s of chaos, seed {options.seed}, {options.kills} "
              f"kills, {options.customers} customers; work directory {workdir}", flush=True)
        verdict = Soak(options, workdir).run()
        print(verdict.render(), flush=True)
        if not verdict.converged and options.workdir is None:
            print("(run again with --workdir DIR to keep the logs and databases)")
    return 0 if verdict.converged else 1


if __name__ == "__main__":
    sys.exit(main())
