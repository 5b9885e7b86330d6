"""One sync cycle: every mapped resource in Metrilo's import order, from shop rows to state.

For each resource: choose full or incremental reading, stream composed records through the
planner (diff against state, validate, hold back orders whose dependencies failed), send the
rest in batches, and commit each batch's state only once Metrilo answered 200 for it. A full
read also looks for records gone from the shop. Nothing here prints: the CLI shows the report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Generic

from typing_extensions import TypeVar

from cdc_sync import __version__
from cdc_sync.core.catalogue import DERIVED, Catalogue
from cdc_sync.core.diff import source_seed
from cdc_sync.core.report import (
    CycleKind,
    CycleReport,
    ReadMode,
    ResourceCounts,
    ResourceReport,
)
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.composing import Composing
from cdc_sync.cycle.deletes import DeleteHandler, DeleteRules
from cdc_sync.cycle.delivery import Delivery
from cdc_sync.cycle.follow import Follower
from cdc_sync.cycle.heap import older_objects_frozen
from cdc_sync.cycle.inputs import InputsCheck, UnchangedInputs
from cdc_sync.cycle.marks import ResourceMarks
from cdc_sync.cycle.options import CycleOptions, CycleState, ProgressCallback
from cdc_sync.cycle.passes import ReadPasses
from cdc_sync.cycle.planner import Dependencies, Planner
from cdc_sync.cycle.preview import MappingChange, preview, would_send
from cdc_sync.cycle.reconcile import RollingReconciliation, Slice
from cdc_sync.errors import (
    CdcSyncError,
    DeleteGuardError,
    MetriloUnavailableError,
    SourceError,
)
from cdc_sync.mapping.loader import LoadedMapping
from cdc_sync.mapping.model import DeleteAction
from cdc_sync.metrilo.client import MetriloClient
from cdc_sync.source import ShopSource
from cdc_sync.source.sample import no_rows_note
from cdc_sync.state import StateStore

log = logging.getLogger(__name__)

# The state a cycle is handed: the engine uses only `CycleState`; its callers keep the type
# they passed (`engine.state` of an engine over a StateStore is that StateStore).
S = TypeVar("S", bound=CycleState, default=StateStore)


class SyncEngine(Generic[S]):
    """Runs cycles; owns none of the connections it is handed."""

    def __init__(
        self,
        *,
        mapping: LoadedMapping,
        source: ShopSource,
        state: S,
        client: MetriloClient | None,
        chunk_size: int = 1000,
        on_progress: ProgressCallback | None = None,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
        recheck_seconds: float = 300.0,
        rejection_threshold: int = 1,
        keep_holds: bool = False,
        compose_workers: int = 0,
    ) -> None:
        self.mapping = mapping
        self.source = source
        self.state = state
        self.client = client
        self.chunk_size = chunk_size
        self.on_progress = on_progress
        self.clock = clock
        # How long after an attempt with an unknown outcome (a timeout) Metrilo is assumed to
        # have applied it, if ever: the record is sent once more after that (cycle/delivery.py).
        self.recheck_seconds = recheck_seconds
        # Rejected records from which a cycle ends as "rejected" (exit code 5, status, healthz).
        self.rejection_threshold = rejection_threshold
        self.catalogue = Catalogue(mapping.spec)
        # keep_holds: this engine syncs on the mapping applied before a held change
        # (_run_held), so its reads must not release the hold.
        self.marks = ResourceMarks(state, mapping, clock, keep_holds=keep_holds)
        self.rolling = RollingReconciliation(
            state, source, mapping.spec.sync.full_reconcile_minutes, clock)
        # Set by a signal handler: the cycle stops reading at the next chunk, lets the batches in
        # flight finish, commits what Metrilo acknowledged and returns.
        self.stop = stop or threading.Event()
        # Where records are composed: here, or (compose_workers=1) also in a worker process
        # started when a cycle has many rows to compose and stopped when the cycle ends.
        self.composing = Composing(compose_workers)
        self.passes = ReadPasses(
            source=source, state=state, marks=self.marks, catalogue=self.catalogue,
            chunk_size=chunk_size, overlap_seconds=mapping.spec.sync.cursor_overlap_seconds)
        self.delivery = Delivery(state=state, client=client, recheck_seconds=recheck_seconds)
        # The high-water mark of each cursor this cycle, read once (see _high_water).
        self._high_waters: dict[Resource, object] = {}
        # Skips a guests' full read whose inputs are unchanged (cycle/inputs.py).
        self.inputs = UnchangedInputs(state, source)

    def mapped_resources(self) -> list[Resource]:
        """The resources this mapping produces, in import order (the catalogue's)."""
        return self.catalogue.resources()

    def run(self, options: CycleOptions = CycleOptions()) -> CycleReport:
        """One cycle; Metrilo trouble ends it early, recorded in the report and the run history."""
        try:
            with older_objects_frozen():  # the collector skips what outlives the cycle
                return self._run(options)
        finally:
            self.marks.end_cycle()
            self.composing.close()  # no worker process outlives its cycle

    def _run(self, options: CycleOptions) -> CycleReport:
        report = CycleReport(kind=options.kind, dry_run=options.dry_run,
                             rejection_threshold=self.rejection_threshold)
        wanted = set(options.resources)
        report.unfinished = [r for r in self.mapped_resources() if not wanted or r in wanted]
        self._high_waters.clear()
        self.passes.new_cycle()
        self.marks.begin_cycle(self.state.meta_values())
        run_id = None
        if not options.dry_run:
            self.state.interrupt_unfinished_runs()
            run_id = self.state.start_run(options.kind.value, _names(report.unfinished))
        try:
            for resource in list(report.unfinished):
                if self.stop.is_set():
                    report.stopped = True
                    break
                self._run_resource(resource, options, report)
                if not report.stopped:  # read to its end (or failed): nothing left of it
                    report.unfinished.remove(resource)
                if run_id is not None:
                    self.state.record_run_progress(run_id, report.counts(),
                                                   _names(report.unfinished))
        except MetriloUnavailableError as exc:
            report.error = f"{exc}; the cycle stopped, unsent records stay pending"
        except CdcSyncError as exc:  # fatal Metrilo answers, a lost state DB...: recorded, raised
            report.error = str(exc)
            raise
        finally:
            report.finished = time.monotonic()
            if run_id is not None:
                errors = "\n".join(report.errors()) or None
                self.state.finish_run(run_id, status=report.status, counts=report.counts(),
                                      error=errors, unfinished=_names(report.unfinished))
        return report

    # -- one resource -------------------------------------------------------------------

    def _run_resource(self, resource: Resource, options: CycleOptions, report: CycleReport) -> None:
        rep = report.for_resource(resource)
        change = self._mapping_check(resource, options, rep)
        if change is MappingChange.HOLD:
            self._run_held(resource, options, report)
            return
        # A changed mapping changes records the cursor does not show as changed: read them all.
        full = (options.full or options.kind is not CycleKind.SYNC
                or change is MappingChange.APPLY or self.marks.full_due(resource))
        rep.mode = ReadMode.of(full=full, dry_run=options.dry_run)
        cursor = self.marks.cursor(resource)
        high_water = self._high_water(resource) if cursor else None
        # Only a full read looks for deletions; an incremental one skips the count (a scan of
        # the resource's state rows, every cycle).
        live_before = self.state.live_count(resource) if full else 0
        # Set when Metrilo stops taking records: the planner reads no further (cycle/delivery.py).
        give_up = threading.Event()
        planner = self._planner(resource, options, rep, give_up)
        deletes = self._deletes(resource, rep, dry_run=options.dry_run)
        check: InputsCheck | None = None
        if full and options.kind is CycleKind.SYNC and not options.assume_forced:
            check = self.inputs.check(resource, planner.source_seed)
        piece: Slice | None = None
        try:
            follower = self._follower(resource, full)
            deletes.precheck(full=full)
            if not full and resource not in DERIVED and options.reconcile:
                piece = self.rolling.plan(resource, options.intervals)
            # Digest-only reads only where the marks in state were made under this seed (a
            # mapping change or an upgrade changes every mark) and a resync has not forced
            # every record (forced records have no mark): else values are read, once.
            marked = (options.kind is not CycleKind.RESYNC
                      and self.marks.marked_under(resource, planner.source_seed))
            if check is not None and check.unchanged:  # every record as the last read left it
                self.inputs.skipped(check, rep, live_before)
            else:
                items = self.passes.items(resource, planner, full, piece, follower, marked)
                self.delivery.deliver(resource, items, planner, rep, give_up)
                if full and not planner.stopped:
                    deletes.detect(live_before=live_before, seen_live=planner.seen_live)
            if piece is not None and not planner.stopped and not options.dry_run:
                self._reconciled(piece, deletes, rep)
        except (SourceError, DeleteGuardError) as exc:
            rep.error = str(exc)
            log.error("%s: %s", resource, exc)
            return
        empty = full and not planner.stopped and rep.counts.scanned == 0
        note = no_rows_note(self.mapping, resource) if empty else None
        if note is not None:  # not "nothing to do": a wrong where reads nothing too
            rep.notes.append(note)
            log.warning("%s: %s", resource, note)
        if planner.stopped:
            report.stopped = True
            rep.notes.append("stopped early on request; the rest is read next cycle")
        elif not options.dry_run:
            self.marks.advance(resource, high_water, full=full)
            if full:
                skipped = check is not None and check.unchanged
                self._read_fully(resource, rep.counts.scanned, skipped)
                self.marks.record_marks_seed(resource, planner.source_seed)
                if not planner.dry_run:
                    self.inputs.record(check)
            if follower is not None:
                follower.commit()
        self._progress(resource, rep.counts)

    def _high_water(self, resource: Resource) -> object:
        """The largest value of the resource's cursor column, read before its rows, once a
        cycle per cursor: guests and deleted products follow the orders' cursor, and read
        before orders. A value read earlier in the cycle is never newer than one read now, so
        the rows changed in between are read again next cycle (at-least-once), as the cursor's
        overlap does."""
        entry = self.catalogue.entry(resource)
        cursor_of = resource if entry is None else entry.cursor_of
        if cursor_of not in self._high_waters:
            self._high_waters[cursor_of] = self.source.cursor_high_water(resource)
        return self._high_waters[cursor_of]

    def _read_fully(self, resource: Resource, records: int, skipped: bool) -> None:
        """A full read starts a new reconciliation window (status shows the others' reads)."""
        windowed = (self.marks.cursor(resource) is not None
                    and self.mapping.spec.sync.full_reconcile_minutes > 0)
        if windowed and resource not in DERIVED:
            self.rolling.restart(resource)
        else:
            self.rolling.read_fully(resource, records, every_cycle=not windowed, skipped=skipped)

    def _reconciled(self, piece: Slice, deletes: DeleteHandler, rep: ResourceReport) -> None:
        try:
            self.rolling.finish(piece, deletes)
        finally:
            rep.reconciled = piece.read
            rep.notes.extend(piece.notes)

    def _planner(self, resource: Resource, options: CycleOptions, rep: ResourceReport,
                 give_up: threading.Event) -> Planner:
        return Planner(
            resource=resource,
            state=self.state,
            report=rep,
            dry_run=options.dry_run or self.client is None,
            chunk_size=self.chunk_size,
            dependencies=self._dependencies(resource),
            on_chunk=lambda: self._progress(resource, rep.counts),
            stop=self.stop,
            halt=give_up,
            keep_payloads=self.keeps_payloads(resource),
            assume_forced=options.assume_forced,
            ignore_forced=options.ignore_forced,
            source_seed=self._source_seed(resource),
            composing=self.composing,
            synced=self.passes.known_synced(resource),
        )

    def _source_seed(self, resource: Resource) -> bytes:
        """The key of the resource's source marks: its mapping, cdc-sync's version, and the
        kind of mark (a switch between Python marks and the database's digests recomposes
        each record once; it sends none, as the records' own fingerprints are compared)."""
        parts = [self.marks.fingerprint(resource), __version__]
        if self.source.digesting and resource not in DERIVED:
            parts.append("database digests")
        return source_seed(*parts)

    def _deletes(self, resource: Resource, rep: ResourceReport, *, dry_run: bool) -> DeleteHandler:
        rules = DeleteRules.of(self.mapping.spec, resource, self.catalogue.entry(resource))
        return DeleteHandler(resource, rep, rules, state=self.state, source=self.source,
                             client=self.client, dry_run=dry_run, cursor_found=self._has_rows)

    def _has_rows(self, resource: Resource) -> bool:
        """Whether the resource's own cursor found a row this cycle (its high-water mark,
        read once a cycle: the resource reads it later anyway). False says nothing: no
        cursor, or no row."""
        entry = self.catalogue.entry(resource)
        if entry is None or entry.cursor_of is not resource or not self.marks.cursor(resource):
            return False
        return self._high_water(resource) is not None

    def keeps_payloads(self, resource: Resource) -> bool:
        """Orders with `on_delete: status` keep their payload: the status is sent with it.
        Guests keep their first order instead (`SourceRecord.kept`, cycle/guests.py)."""
        if resource is Resource.GUEST_CUSTOMERS:
            return True
        orders = self.mapping.spec.orders
        return (resource is Resource.ORDERS and orders is not None
                and orders.on_delete.action is DeleteAction.STATUS)

    def _follower(self, resource: Resource, full: bool) -> Follower | None:
        """The resource's followed joins, children and watches (cycle/passes.py)."""
        return self.passes.follower(resource, full=full)

    # -- mapping changes ------------------------------------------------------------------

    def _mapping_check(
        self, resource: Resource, options: CycleOptions, rep: ResourceReport
    ) -> MappingChange:
        """A mapping edit that would resend many records waits for a confirm."""
        if not self.marks.mapping_changed(resource):
            return MappingChange.UNCHANGED
        if options.dry_run or options.accept_mapping:
            rep.notes.append("the mapping changed since the last sync; these counts include "
                             "every record the change touches")
            return MappingChange.APPLY
        limit = self.mapping.spec.sync.hold_changes_over
        held = self.marks.held(resource)
        if held is None:
            counted = self._preview(resource)
            sending = would_send(counted)
            rep.samples = counted.samples
            rep.counts = counted.counts
            if sending <= limit:
                rep.notes.append(f"mapping changed: {sending} records change; sending them")
                rep.counts = ResourceCounts()
                return MappingChange.APPLY
            held = self.marks.hold(resource, sending)
        rep.mode = ReadMode.HELD
        rep.notes.append(
            f"mapping changed: {held.would_send} records would be resent (more than "
            f"sync.hold_changes_over={limit}); held until `cdc-sync resync {resource} --confirm` "
            f"or `cdc-sync sync --accept-mapping` (`cdc-sync sync --dry-run` shows samples)"
        )
        log.warning("%s: %s", resource, rep.notes[-1])
        return MappingChange.HOLD

    def _preview(self, resource: Resource) -> ResourceReport:
        """A dry-run full read on the new mapping, counting what it changes whatever an
        unfinished resync forced (preview.py); its progress is shown like a read's."""
        counted = ResourceReport(resource)
        options = CycleOptions(dry_run=True, full=True, ignore_forced=True)
        planner = self._planner(resource, options, counted, threading.Event())
        deletes = self._deletes(resource, counted, dry_run=True)
        preview(planner, deletes, lambda: self.source.readings(resource),
                live_before=self.state.live_count(resource))
        self._progress(resource, counted.counts)
        return counted

    def _run_held(self, resource: Resource, options: CycleOptions, report: CycleReport) -> None:
        """While a change waits for a confirm, the resource goes on syncing on the mapping
        last applied to it: real changes in the shop still reach Metrilo meanwhile."""
        rep = report.for_resource(resource)
        applied = self.marks.applied(resource)
        if applied is None:
            rep.notes.append("the mapping applied before was not recorded (an older cdc-sync); "
                             "nothing of this resource syncs until the change is confirmed")
            return
        rep.counts = ResourceCounts()  # the held change's own counts are in the notes
        before = SyncEngine(
            mapping=applied, source=self.source.with_mapping(applied), state=self.state,
            client=self.client, chunk_size=self.chunk_size, on_progress=self.on_progress,
            clock=self.clock, stop=self.stop, recheck_seconds=self.recheck_seconds,
            rejection_threshold=self.rejection_threshold, keep_holds=True,
        )
        before.composing = self.composing  # this cycle's, closed when it ends
        before._run_resource(resource, options, report)
        rep.notes.append("synced on the mapping applied before, until the change is confirmed")
        rep.mode = ReadMode.HELD

    # -- dependencies ---------------------------------------------------------------------

    def _dependencies(self, resource: Resource) -> Dependencies | None:
        if resource is not Resource.ORDERS:
            return None
        return Dependencies(
            customer_resources=(Resource.CUSTOMERS.value, Resource.GUEST_CUSTOMERS.value),
            product_resources=(Resource.PRODUCTS.value, Resource.DELETED_PRODUCTS.value),
            customers_complete=Resource.GUEST_CUSTOMERS in self.catalogue,
            products_complete=Resource.DELETED_PRODUCTS in self.catalogue,
        )

    def _progress(self, resource: Resource, counts: ResourceCounts) -> None:
        if self.on_progress is not None:
            self.on_progress(resource, counts)


def _names(resources: Iterable[Resource]) -> list[str]:
    return [resource.value for resource in resources]
