"""bench/repeats.py: rows 2 and 2c run again and again from one snapshot of the state DB."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from bench.repeats import Spread, repeat, snapshot


def _wal_db(path: Path, rows: int) -> sqlite3.Connection:
    """A state-like DB in WAL mode whose rows are still in the WAL (no checkpoint yet)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE sync_state (key INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO sync_state VALUES (?)", [(i,) for i in range(rows)])
    conn.commit()
    return conn


def _count(path: str | Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        found: int = conn.execute("SELECT count(*) FROM sync_state").fetchone()[0]
    return found


def test_snapshot_holds_the_rows_still_in_the_wal(tmp_path: Path) -> None:
    with closing(_wal_db(tmp_path / "state.sqlite", 100)):  # open: the WAL stays
        assert (tmp_path / "state.sqlite-wal").stat().st_size > 0
        snapshot(f"sqlite:///{tmp_path / 'state.sqlite'}", str(tmp_path / "snap"))
    assert not (tmp_path / "snap-wal").exists()
    assert _count(tmp_path / "snap") == 100


class _Cycles:
    """Stands in for a cycle's process: records what state it found, then sends one more."""

    def __init__(self, counts: list[int] | None = None) -> None:
        self.found: list[tuple[str, int]] = []
        self.counts = counts

    def __call__(self, label: str, state: str, sink: str) -> dict[str, Any]:
        path = state.removeprefix("sqlite:///")
        found = _count(path)
        self.found.append((sink, found))
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("INSERT INTO sync_state VALUES (?)", (10_000 + len(self.found),))
            conn.commit()
        sent = self.counts[len(self.found) - 1] if self.counts else 1
        return {"seconds": float(len(self.found)), "cpu_seconds": 0.1,
                "counts": {"orders": {"sent": sent}}, "modes": {"orders": "incremental"}}


def _fresh_states(tmp_path: Path) -> Any:
    made = iter(range(1, 100))
    return lambda: f"sqlite:///{tmp_path / f'copy{next(made)}.sqlite'}"


def test_every_run_starts_from_the_snapshot_and_the_last_sandbox_run_goes_on(
        tmp_path: Path) -> None:
    with closing(_wal_db(tmp_path / "state.sqlite", 5)):
        cycles = _Cycles()
        runs, going_on = repeat(cycles, "row 2", f"sqlite:///{tmp_path / 'state.sqlite'}",
                                {"minimal": "m", "sandbox": "s"}, 3,
                                _fresh_states(tmp_path), str(tmp_path))
    # ABBA: the sinks' order flips every round; each run found the 5 rows of the snapshot
    assert cycles.found == [("m", 5), ("s", 5), ("s", 5), ("m", 5), ("m", 5), ("s", 5)]
    assert [r["seconds"] for r in runs.runs["sandbox"]] == [2.0, 3.0, 6.0]
    assert runs.seconds("minimal") == Spread(4.0, 1.0, 5.0)
    assert _count(going_on.removeprefix("sqlite:///")) == 6  # the last sandbox run's send
    assert going_on.endswith("copy6.sqlite")
    assert sorted(p.name for p in tmp_path.glob("copy*")) == ["copy6.sqlite"]


def test_runs_that_sent_other_records_are_named(tmp_path: Path) -> None:
    with closing(_wal_db(tmp_path / "state.sqlite", 5)):
        runs, _ = repeat(_Cycles([1, 2]), "row 2", f"sqlite:///{tmp_path / 'state.sqlite'}",
                         {"minimal": "m", "sandbox": "s"}, 1, _fresh_states(tmp_path),
                         str(tmp_path))
    assert runs.uneven == "sandbox run 1 read or sent other records than the first"


def test_runs_that_did_the_same_work_are_even(tmp_path: Path) -> None:
    with closing(_wal_db(tmp_path / "state.sqlite", 5)):
        runs, _ = repeat(_Cycles(), "row 2", f"sqlite:///{tmp_path / 'state.sqlite'}",
                         {"minimal": "m", "sandbox": "s"}, 2, _fresh_states(tmp_path),
                         str(tmp_path))
    assert runs.uneven == ""
