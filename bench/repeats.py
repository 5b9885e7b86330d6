"""One changed cycle run several times from one snapshot of the state DB (rows 2 and 2c).

A 0.2-0.7 s cycle measured once on two busy cores is mostly noise, and measured against the
strict sandbox it pays that sink's own CPU (validation, the check of every order's customer
and products against 1.3M stored records, the merge) on the same cores, which the no-change
full cycle it is divided by never pays (it sends nothing). So the state DB is copied just
before the cycle (SQLite's backup API: a WAL file beside a plain copy would be replayed into
it), and the same cycle runs from copies of that snapshot, alternating the minimal sink and
the sandbox: every run reads the same shop rows from the same state and sends the same
records. The order of the sinks is reversed every other round; the last run to the sandbox
is the one the benchmark continues from.
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

Result = dict[str, Any]
RunCycle = Callable[[str, str, str], Result]
"""Runs the cycle (label, state URL, sink URL) in a process of its own; returns its result."""


def sqlite_path(url: str) -> str:
    path = sa.make_url(url).database
    if not path:
        raise ValueError(f"not a SQLite file URL: {url}")
    return path


def snapshot(state_url: str, path: str) -> None:
    """Copy the state DB, WAL included, into the single file at `path`."""
    with closing(sqlite3.connect(sqlite_path(state_url))) as source, \
            closing(sqlite3.connect(path)) as target:
        source.backup(target)


def restore(snapshot_path: str, state_url: str) -> None:
    """A fresh state DB at `state_url` holding the snapshot (never opened since, so no WAL
    beside it: a plain file copy is the whole database)."""
    shutil.copyfile(snapshot_path, sqlite_path(state_url))


@dataclass
class Spread:
    """The median and the range of one figure over the repeats."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def text(self, unit: str = "s") -> str:
        return f"{self.median:.2f} {unit} ({self.low:.2f}-{self.high:.2f})"


@dataclass
class Repeats:
    """Every run of one cycle, per sink, in the order they ran."""

    runs: dict[str, list[Result]] = field(default_factory=dict)
    uneven: str = ""  # which runs read or sent other records than the first (see _uneven)

    def seconds(self, sink: str) -> Spread:
        return Spread.of([r["seconds"] for r in self.runs[sink]])

    def cpu(self, sink: str) -> Spread:
        return Spread.of([r["cpu_seconds"] for r in self.runs[sink]])

    def median_run(self, sink: str) -> Result:
        """The run whose time is the median (the lower of two middles): its counts and its
        shop-side figures stand for the row."""
        ordered = sorted(self.runs[sink], key=lambda r: float(r["seconds"]))
        return ordered[(len(ordered) - 1) // 2]

    def count(self) -> int:
        return min(len(runs) for runs in self.runs.values())

    def as_dict(self) -> dict[str, list[Result]]:
        return self.runs


def repeat(run: RunCycle, what: str, state: str, sinks: dict[str, str], times: int,
           fresh_state: Callable[[], str], workdir: str) -> tuple[Repeats, str]:
    """Run the cycle `times` times against each sink, each from its own copy of `state` as it
    is now, the sinks' order reversed every other round (ABBA: the first run after the shop
    changed, which may find colder caches, falls to each sink in turn); returns the runs and
    the state URL of the last run against the last sink in `sinks` (the benchmark goes on
    from that one)."""
    frozen = f"{workdir}/{sqlite_path(state).rsplit('/', 1)[-1]}.snapshot"
    snapshot(state, frozen)
    repeats = Repeats({name: [] for name in sinks})
    continued, going_on = "", list(sinks)[-1]
    for round_ in range(times):
        order = list(sinks.items()) if round_ % 2 == 0 else list(reversed(sinks.items()))
        for name, url in order:
            copy = fresh_state()
            restore(frozen, copy)
            label = f"{what} -> {name} sink ({round_ + 1}/{times})"
            repeats.runs[name].append(run(label, copy, url))
            if name != going_on:
                _discard(copy)
                continue
            _discard(continued)  # only the last run's state goes on
            continued = copy
    _discard(f"sqlite:///{frozen}")
    repeats.uneven = _uneven(repeats)
    return repeats, continued


def _discard(state_url: str) -> None:
    """Remove a state DB copy no later row reads (a 1M-order state is ~0.5 GB)."""
    if state_url:
        path = sqlite_path(state_url)
        for name in (path, f"{path}-wal", f"{path}-shm"):
            Path(name).unlink(missing_ok=True)


def _uneven(repeats: Repeats) -> str:
    """Which runs read or sent another number of records, per resource, or read one in
    another mode than the first run: their figures compare different work. It happens when
    the runs straddle the end of a derived resource's 15-minute window (its full read falls
    into the later ones); the row says so rather than the benchmark stopping at its end."""
    shapes = {(name, i): (r["counts"], r["modes"])
              for name, runs in repeats.runs.items() for i, r in enumerate(runs)}
    first = next(iter(shapes.values()))
    uneven = [f"{name} run {i + 1}" for (name, i), shape in shapes.items() if shape != first]
    return f"{', '.join(uneven)} read or sent other records than the first" if uneven else ""
