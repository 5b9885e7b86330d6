"""The run history: one row per sync, resync or retry run, with its counts and how it ended."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence

import sqlalchemy as sa

from cdc_sync.errors import StateError
from cdc_sync.state.access import StateAccess, utc_now
from cdc_sync.state.rows import RunRow, RunStatus
from cdc_sync.state.tables import runs


class RunHistory(StateAccess):
    """Runs started, progressing, finished or interrupted, and the latest of them."""

    def start_run(self, kind: str, resources: Sequence[str] = ()) -> int:
        """Record that a run of `kind` (sync/resync/retry) of `resources` started in this
        process (its owner); returns its id."""
        stmt = sa.insert(runs).values(kind=kind, started_at=utc_now(),
                                      status=RunStatus.RUNNING.value, owner=this_process(),
                                      unfinished=json.dumps(list(resources)))
        return self._insert_returning_id("record the start of a run", stmt)

    def record_run_progress(self, run_id: int, counts: Mapping[str, Mapping[str, int]],
                            unfinished: Sequence[str] | None = None) -> None:
        """The counts so far of a run still going, and the resources it has yet to finish, so
        a killed run still accounts for its work and for what it left."""
        values = {"counts": _counts_json(counts)}
        if unfinished is not None:
            values["unfinished"] = json.dumps(list(unfinished))
        stmt = sa.update(runs).where(runs.c.id == run_id).values(**values)
        self._update(f"record the progress of run {run_id}", stmt)

    def interrupt_unfinished_runs(self) -> int:
        """Runs left `running` by a process that died (SIGKILL, power loss) become `interrupted`.

        Only the holder of the daemon lease runs cycles, so it may call this before its own.
        """
        stmt = (sa.update(runs).where(runs.c.status == RunStatus.RUNNING.value)
                .values(status=RunStatus.INTERRUPTED.value, finished_at=utc_now()))
        return self._update("mark runs of dead processes interrupted", stmt)

    def finish_run(
        self,
        run_id: int,
        *,
        status: RunStatus,
        counts: Mapping[str, Mapping[str, int]],
        error: str | None = None,
        unfinished: Sequence[str] = (),
    ) -> None:
        """Record how run `run_id` ended, its per-resource counts and the resources it did not
        finish (an interrupted run)."""
        stmt = (
            sa.update(runs)
            .where(runs.c.id == run_id)
            .values(
                finished_at=utc_now(), status=status.value, error=error,
                counts=_counts_json(counts), unfinished=json.dumps(list(unfinished)),
            )
        )
        if self._update(f"record the end of run {run_id}", stmt) != 1:
            raise StateError(
                f"state DB {self._engine.url.render_as_string()}: run {run_id} does not exist; "
                "fix: pass the id start_run returned"
            )

    def last_runs(self, limit: int = 10) -> list[RunRow]:
        """The latest runs, newest first."""
        stmt = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
        return [
            RunRow(
                id=row.id, kind=row.kind, started_at=row.started_at,
                finished_at=row.finished_at, status=row.status,
                counts=json.loads(row.counts) if row.counts else {}, error=row.error,
                owner=row.owner,
                unfinished=tuple(json.loads(row.unfinished)) if row.unfinished else (),
            )
            for row in self._fetch("list runs", stmt)
        ]


def this_process() -> str:
    """How a run names the process running it: "pid@host" (see `process_gone`)."""
    return f"{os.getpid()}@{socket.gethostname()}"


def process_gone(owner: str | None) -> bool | None:
    """Whether the process `owner` ("pid@host") no longer runs: None when it cannot be told
    from here (another host, or a run recorded before owners were)."""
    pid_text, _, host = (owner or "").partition("@")
    if not pid_text.isdigit() or host != socket.gethostname():
        return None
    try:
        os.kill(int(pid_text), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, run by another user
        return False
    return False


def _counts_json(counts: Mapping[str, Mapping[str, int]]) -> str:
    return json.dumps({r: dict(c) for r, c in counts.items()}, sort_keys=True)
