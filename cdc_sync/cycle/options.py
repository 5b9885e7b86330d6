"""What a cycle is handed by its callers: the kind of cycle to run (`CycleOptions`), the state
it reads and writes (`CycleState`, a Protocol `StateStore` satisfies) and the progress callback.

Apart from the engine so that the CLI, the daemon and the tests name a cycle's inputs without
the orchestration that runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from cdc_sync.core.report import CycleKind, ResourceCounts, RunStatus
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.deletes import GoneState
from cdc_sync.cycle.delivery import DeliveryState
from cdc_sync.cycle.inputs import InputsState
from cdc_sync.cycle.passes import ReadState
from cdc_sync.cycle.planner import PlanState
from cdc_sync.cycle.reconcile import WindowState

ProgressCallback = Callable[[Resource, ResourceCounts], None]


class CycleState(WindowState, PlanState, GoneState, ReadState, DeliveryState, InputsState,
                 Protocol):
    """What a cycle reads and writes of state (`StateStore` is one): what its parts need
    (planning, deletes, reconciliation, the read passes and delivery; marks and followed
    dependencies are meta values) and its own: the run history."""

    def meta_values(self) -> dict[str, str]: ...
    def interrupt_unfinished_runs(self) -> int: ...
    def start_run(self, kind: str, resources: Sequence[str] = ()) -> int: ...
    def record_run_progress(self, run_id: int, counts: Mapping[str, Mapping[str, int]],
                            unfinished: Sequence[str] | None = None) -> None: ...
    def finish_run(self, run_id: int, *, status: RunStatus,
                   counts: Mapping[str, Mapping[str, int]], error: str | None = None,
                   unfinished: Sequence[str] = ()) -> None: ...


@dataclass(frozen=True)
class CycleOptions:
    """What kind of cycle to run."""

    kind: CycleKind = CycleKind.SYNC
    resources: tuple[Resource, ...] = ()  # empty: every mapped resource
    dry_run: bool = False
    full: bool = False  # read everything even where a cursor allows an incremental read
    accept_mapping: bool = False  # send a held mapping change now
    # Count every known record as forced (a dry-run resync, which forces nothing in state).
    assume_forced: bool = False
    # Count what the records themselves need, not what a resync forced (a mapping preview).
    ignore_forced: bool = False
    # Seconds between this resource's cycles (the daemon's): sizes reconciliation slices.
    intervals: Mapping[Resource, float] | None = None
    # False: no rolling-reconciliation slice this cycle (the benchmark times the incremental
    # read alone, and the slice apart).
    reconcile: bool = True

