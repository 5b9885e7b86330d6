"""The benchmark: the demo shop at scale, every figure of issue 6, one table.

    .venv/bin/python -m bench.run                 # 200k customers, 50k products, 1M orders
    .venv/bin/python -m bench.run --scale 0.01    # a hundredth of that, to try it out

Builds (or reuses) the shop in PostgreSQL, then measures, each in a process of its own, with a
state DB of its own (SQLite in a temporary directory): the first full push, the plugin-style
baseline, a no-change full cycle, the bare reference read, then on a copy of the shop an
incremental cycle after 1,000 orders changed, another after 1,000 changes in child tables only
and one rolling-reconciliation slice, the push against a minimal sink (with and without a
simulated round trip), and peak RSS at this scale and at 100k orders. Prints one Markdown
table (see bench/README.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.children import (
    change_children,
    compare,
    in_reach,
    rechecks,
    sent_since,
    slice_reach,
    synced_mark,
)
from bench.proc import ROOT, run_module
from bench.repeats import Repeats, repeat
from bench.report import Figures, machine, render
from bench.shop import (
    DEFAULT_ADMIN_URL,
    DEFAULT_MYSQL_ADMIN_URL,
    change_orders,
    ensure_shop,
    scaled,
    scratch_copy,
    table_counts,
)
from bench.sinks import running_sink
from cdc_sync.demo.generate import Scale

RSS_SCALE = 0.1  # the 100k-order shop the peak RSS is compared with


@dataclass
class Bench:
    """One benchmark run: where things are, and how to run each piece."""

    admin_url: str
    workdir: Path
    latency: float
    changes: int
    child_changes: int
    baseline_fraction: float
    log: Callable[[str], None]
    repeats: int = 3
    also_mysqlclient: bool = False
    states: int = 0
    figures: Figures = field(default_factory=Figures)

    def shop(self, scale: Scale) -> str:
        self.log(f"shop at {scale.orders:,} orders: checking (built once, then reused)")
        started = time.perf_counter()
        url, built = ensure_shop(self.admin_url, scale)
        if built:
            self.log(f"  built in {time.perf_counter() - started:.0f} s")
        return url

    def fresh_state(self) -> str:
        self.states += 1
        return f"sqlite:///{self.workdir / f'state{self.states}.sqlite'}"

    def cycle(self, what: str, shop: str, state: str, api_url: str, *,
              full: bool = False, reconcile: bool = True) -> dict[str, Any]:
        self.log(f"{what} ...")
        args = ["--source", shop, "--state", state, "--api-url", api_url]
        args += ["--full"] if full else []
        args += [] if reconcile else ["--no-reconcile"]
        result = run_module("bench.cycle", *args)
        if not result["ok"]:
            raise RuntimeError(f"{what} failed: {result['errors']}")
        self.log(f"  {result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB")
        return result

    def baseline(self, what: str, shop: str, api_url: str,
                 push: dict[str, Any]) -> dict[str, Any]:
        self.log(f"{what} ...")
        limits = {name: max(1, math.ceil(counts["scanned"] * self.baseline_fraction))
                  for name, counts in push["counts"].items() if counts["scanned"]}
        spec = ",".join(f"{name}={n}" for name, n in limits.items())
        result = run_module("bench.plugin", "--source", shop, "--api-url", api_url,
                            "--limits", spec)
        self.log(f"  {result['delivered']:,} records in {result['seconds']:.1f} s")
        return result

    def reference(self, shop: str) -> dict[str, Any]:
        self.log("bare reference read (psycopg + json + sha256) ...")
        result = run_module("bench.reference", "--source", shop)
        self.log(f"  {result['seconds']:.1f} s")
        return result

    def run(self, scale: Scale) -> Figures:
        shop = self.shop(scale)
        figures = self.figures
        figures.scale = asdict(scale)
        figures.tables = table_counts(shop, "order_lines")
        state = self.fresh_state()
        with running_sink("sandbox") as sandbox:
            figures.push["sandbox"] = self.cycle("first full push -> sandbox", shop, state,
                                                 sandbox)
            figures.baseline["sandbox"] = self.baseline(
                "plugin-style baseline -> sandbox", shop, sandbox, figures.push["sandbox"])
            figures.full = self.cycle("no-change full cycle", shop, state, sandbox, full=True)
            figures.reference = self.reference(shop)
            # The cycles that follow change the shop: they run on a copy, so the shared shop
            # stays as built and reruns start from the same rows (state is valid for both).
            # Rows 2c and 2 alternate the minimal sink (their verdict: cdc-sync's own cost)
            # with the sandbox (whose CPU shares the cores), minimal first.
            with scratch_copy(self.admin_url, scale, self.log) as copy, \
                    running_sink("minimal") as minimal:
                self._changed_cycles(copy, state, {"minimal": minimal, "sandbox": sandbox})
        self._minimal_sinks(shop)
        if self.also_mysqlclient:
            self._through_mysqlclient(shop)
        self._rss_at_small_scale(scale)
        return figures

    def _changed_cycles(self, shop: str, state: str, sinks: dict[str, str]) -> None:
        """Row 2c (changes in child tables only), row 2 (orders changed) and row 2b (one
        reconciliation slice), each checked against the records its changes must resend
        (bench/children.py). The child changes go first so that their cycle's cursor overlap
        re-reads none of row 2's orders: it measures what following the children costs.
        Rows 2c and 2 run `repeats` times per sink from one snapshot of state (bench/repeats.py);
        the checks and the rows after them go on from the last run to the sandbox."""
        figures = self.figures
        self.log(f"changing {self.child_changes:,} child rows (lines, coupons, links, tags) ...")
        changes = change_children(shop, ROOT / "mappings.yaml", self.child_changes,
                                  seed=int(time.time()))
        figures.child_changes = changes.as_dict()
        mark, due = synced_mark(state), rechecks(state)
        figures.child_runs, state = self.repeated("incremental cycle after child changes",
                                                  shop, state, sinks)
        figures.child = figures.child_runs.median_run("minimal")
        compare("incremental cycle after child changes", sent_since(state, mark),
                changes.expected(followed=True), due)
        self.log(f"changing {self.changes:,} orders ...")
        figures.changed = change_orders(shop, self.changes, seed=int(time.time()))
        mark = synced_mark(state)
        figures.incremental_runs, state = self.repeated("incremental cycle", shop, state, sinks)
        figures.incremental = figures.incremental_runs.median_run("minimal")
        resent = sent_since(state, mark)  # orders re-read by their cursor take their coupons
        # The window began with the no-change full cycle; a one-shot sync sizes its slice
        # for 60 s cycles: about 1/15 of every resource with the default 15 minutes. The
        # child changes no cursor sees must come back in the key ranges it reads.
        mark, due = synced_mark(state), rechecks(state)
        figures.slice = self.cycle("rolling reconciliation slice", shop, state,
                                   sinks["sandbox"])
        expected = in_reach(changes.expected(followed=False), slice_reach(state))
        expected = {r: keys - resent.get(r, set()) for r, keys in expected.items()}
        compare("rolling reconciliation slice", sent_since(state, mark), expected, due)
        figures.reconciled_changes = sum(len(keys) for keys in expected.values())
        self.log(f"  checked: the slice resent the {figures.reconciled_changes} cursor-less "
                 "child changes in its key ranges")

    def repeated(self, what: str, shop: str, state: str,
                 sinks: dict[str, str]) -> tuple[Repeats, str]:
        """One incremental cycle (no slice), `self.repeats` times per sink from one snapshot
        of `state`; returns the runs and the state the last one left."""
        def run(label: str, copy: str, sink: str) -> dict[str, Any]:
            return self.cycle(label, shop, copy, sink, reconcile=False)

        runs, going_on = repeat(run, what, state, sinks, self.repeats, self.fresh_state,
                                str(self.workdir))
        if runs.uneven:
            self.log(f"  NOT COMPARABLE: {runs.uneven}")
        return runs, going_on

    def _minimal_sinks(self, shop: str) -> None:
        latencies = [0.0] + ([self.latency] if self.latency else [])
        for latency in latencies:
            name = "minimal" if not latency else f"minimal+{latency * 1000:.0f}ms"
            with running_sink("minimal", latency) as sink:
                push = self.cycle(f"first full push -> {name} sink", shop, self.fresh_state(),
                                  sink)
                self.figures.push[name] = push
                self.figures.baseline[name] = self.baseline(
                    f"plugin-style baseline -> {name} sink", shop, sink, push)

    def _through_mysqlclient(self, shop: str) -> None:
        """Row 3c's push (3b's without latency) and the no-change full cycle after it again,
        on the same shop read through mysqlclient: bare `mysql://` URLs and the Docker image
        use that C driver, the benchmark's URL names PyMySQL."""
        url = sa.make_url(shop).set(drivername="mysql+mysqldb")
        source = url.render_as_string(hide_password=False)
        name = f"minimal+{self.latency * 1000:.0f}ms" if self.latency else "minimal"
        with running_sink("minimal", self.latency) as sink:
            state = self.fresh_state()
            push = self.cycle(f"first full push -> {name} sink through mysqlclient", source,
                              state, sink)
            full = self.cycle("no-change full cycle through mysqlclient", source, state, sink,
                              full=True)
        self.figures.mysqlclient = {"sink": name, "push": push, "full": full}

    def _rss_at_small_scale(self, scale: Scale) -> None:
        small = scaled(RSS_SCALE)
        if small == scale:
            self.figures.small = {"push": self.figures.push["sandbox"], "full": self.figures.full}
            return
        shop = self.shop(small)
        state = self.fresh_state()
        with running_sink("sandbox") as sandbox:
            push = self.cycle(f"first full push at {small.orders:,} orders", shop, state,
                              sandbox)
            full = self.cycle(f"no-change full cycle at {small.orders:,} orders", shop, state,
                              sandbox, full=True)
        self.figures.small = {"push": push, "full": full, "scale": asdict(small)}


def server_version(admin_url: str) -> str:
    """E.g. 'PostgreSQL 15.20 (Debian ...)' or 'MariaDB 10.11.19-MariaDB-0+deb12u1'."""
    engine = sa.create_engine(admin_url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                version = conn.execute(sa.text("SHOW server_version")).scalar_one()
                return f"PostgreSQL {version}"
            version = str(conn.execute(sa.text("SELECT version()")).scalar_one())
            # MariaDB says e.g. '10.11.19-MariaDB-0+deb12u1'
            return f"MariaDB {version.split('-MariaDB')[0]}" if "MariaDB" in version else version
    finally:
        engine.dispose()


def admin_url(dialect: str, given: str | None) -> str:
    """The server to build the shop in: --admin-url, else the dialect's env or default."""
    if given:
        return given
    if dialect == "mariadb":
        return os.environ.get("CDC_BENCH_MYSQL_URL", DEFAULT_MYSQL_ADMIN_URL)
    return os.environ.get("CDC_BENCH_PG_URL", DEFAULT_ADMIN_URL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="times the default shop (200k customers, 500 categories, 50k "
                             "products, 1M orders with ~3M lines); default 1")
    parser.add_argument("--dialect", choices=("postgresql", "mariadb"), default="postgresql",
                        help="the shop's database server; default postgresql")
    parser.add_argument("--admin-url", default=None,
                        help="URL of a user allowed to create databases on that server "
                             "(env CDC_BENCH_PG_URL / CDC_BENCH_MYSQL_URL; default the local "
                             "postgres@127.0.0.1:5432 / root@127.0.0.1:3306)")
    parser.add_argument("--latency-ms", type=float, default=50.0,
                        help="simulated round trip per request for the second minimal-sink "
                             "comparison (0: skip it); default 50")
    parser.add_argument("--changes", type=int, default=1000,
                        help="orders changed before the incremental cycle; default 1000")
    parser.add_argument("--child-changes", type=int, default=1000,
                        help="child rows changed before the second incremental cycle (half "
                             "order lines, then coupons, category links, customer tags); "
                             "default 1000")
    parser.add_argument("--baseline-fraction", type=float, default=0.01,
                        help="share of each resource the plugin-style baseline sends; "
                             "default 0.01")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of rows 2 and 2c per sink (minimal sink and sandbox, "
                             "alternated, each from the same state snapshot); default 3")
    parser.add_argument("--also-mysqlclient", action="store_true",
                        help="MariaDB: run row 3c's push and the no-change cycle again "
                             "through mysqlclient (mysql+mysqldb://) and print them beside")
    args = parser.parse_args()
    if args.also_mysqlclient and args.dialect != "mariadb":
        parser.error("--also-mysqlclient needs --dialect mariadb")
    if args.also_mysqlclient and importlib.util.find_spec("MySQLdb") is None:
        # Found now, not after the 15 minutes of a 1M run that come before its rows.
        parser.error("--also-mysqlclient needs the mysqlclient driver in this venv: "
                     "apt-get install libmariadb-dev pkg-config, then "
                     "pip install -e '.[mysqlclient]'")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    def log(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)

    scale = scaled(args.scale)
    admin = admin_url(args.dialect, args.admin_url)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cdc-bench-") as workdir:
        bench = Bench(admin, Path(workdir), args.latency_ms / 1000, args.changes,
                      args.child_changes, args.baseline_fraction, log, args.repeats,
                      args.also_mysqlclient)
        figures = bench.run(scale)
    figures.machine = machine(server_version(admin), load_before, os.getloadavg())
    figures.command = " ".join([".venv/bin/python -m bench.run", *sys.argv[1:]])
    figures.python = platform.python_version()
    print(render(figures))


if __name__ == "__main__":
    main()
