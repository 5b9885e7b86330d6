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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cdc_sync.cursor import decode_high_water, encode_high_water
from cdc_sync.deletes import DeleteHandler
from cdc_sync.errors import (
    DeleteGuardError,
    MetriloError,
    MetriloFatalError,
    MetriloUnavailableError,
    SourceError,
)
from cdc_sync.mapping.loader import LoadedMapping
from cdc_sync.metrilo import BatchResult, Item, MetriloClient
from cdc_sync.planner import Dependencies, InFlight, Planner
from cdc_sync.report import CycleReport, ResourceCounts, ResourceReport
from cdc_sync.resources import IMPORT_ORDER, Resource
from cdc_sync.source import ShopSource
from cdc_sync.state import Outcome, StateStore

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Resource, ResourceCounts], None]


@dataclass(frozen=True)
class CycleOptions:
    """What kind of cycle to run."""

    kind: str = "sync"  # sync | resync | retry
    resources: tuple[Resource, ...] = ()  # empty: every mapped resource
    dry_run: bool = False
    full: bool = False  # read everything even where a cursor allows an incremental read
    accept_mapping: bool = False  # send a held mapping change now


class SyncEngine:
    """Runs cycles; owns none of the connections it is handed."""

    def __init__(
        self,
        *,
        mapping: LoadedMapping,
        source: ShopSource,
        state: StateStore,
        client: MetriloClient | None,
        chunk_size: int = 1000,
        on_progress: ProgressCallback | None = None,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
    ) -> None:
        self.mapping = mapping
        self.source = source
        self.state = state
        self.client = client
        self.chunk_size = chunk_size
        self.on_progress = on_progress
        self.clock = clock
        # Set by a signal handler: the cycle stops reading at the next chunk, lets the batches in
        # flight finish, commits what Metrilo acknowledged and returns.
        self.stop = stop or threading.Event()

    def mapped_resources(self) -> list[Resource]:
        """The resources this mapping produces, in import order."""
        spec = self.mapping.spec
        direct = {
            Resource.CUSTOMERS: spec.customers,
            Resource.CATEGORIES: spec.categories,
            Resource.PRODUCTS: spec.products,
            Resource.ORDERS: spec.orders,
        }
        found = []
        for resource in IMPORT_ORDER:
            if resource in direct:
                rspec = direct[resource]
                if rspec is not None and rspec.enabled:
                    found.append(resource)
            elif self._derived_enabled(resource):
                found.append(resource)
        return found

    def run(self, options: CycleOptions = CycleOptions()) -> CycleReport:
        """One cycle; Metrilo trouble ends it early, recorded in the report and the run history."""
        report = CycleReport(kind=options.kind, dry_run=options.dry_run)
        wanted = set(options.resources)
        run_id = None if options.dry_run else self.state.start_run(options.kind)
        try:
            for resource in self.mapped_resources():
                if wanted and resource not in wanted:
                    continue
                if self.stop.is_set():
                    report.stopped = True
                    break
                self._run_resource(resource, options, report)
        except MetriloFatalError as exc:
            report.error = str(exc)
            raise
        except MetriloUnavailableError as exc:
            report.error = f"{exc}; the cycle stopped, unsent records stay pending"
        finally:
            report.finished = time.monotonic()
            if run_id is not None:
                status = "ok" if report.ok else "failed"
                errors = "\n".join(report.errors()) or None
                self.state.finish_run(run_id, status=status, counts=report.counts(), error=errors)
        return report

    # -- one resource -------------------------------------------------------------------

    def _run_resource(self, resource: Resource, options: CycleOptions, report: CycleReport) -> None:
        rep = report.for_resource(resource)
        full = options.full or options.kind != "sync" or self._full_due(resource)
        if not options.dry_run and not options.accept_mapping and self._held(resource, rep):
            return
        rep.mode = ("full" if full else "incremental") + (" dry-run" if options.dry_run else "")
        since = None if full else self._since(resource)
        high_water = self.source.cursor_high_water(resource) if self._cursor(resource) else None
        live_before = self.state.live_count(resource)
        planner = Planner(
            resource=resource,
            state=self.state,
            report=rep,
            dry_run=options.dry_run,
            chunk_size=self.chunk_size,
            dependencies=self._dependencies(resource),
            on_chunk=lambda: self._progress(resource, rep.counts),
            stop=self.stop,
        )
        try:
            records = self.source.records(resource, since=since)
            self._deliver(resource, planner.items(records), planner.inflight, rep, options.dry_run)
            if full and not planner.stopped:
                DeleteHandler(self, resource, rep, dry_run=options.dry_run).detect(
                    live_before=live_before, seen_live=planner.seen_live
                )
        except (SourceError, DeleteGuardError) as exc:
            rep.error = str(exc)
            log.error("%s: %s", resource, exc)
            return
        if planner.stopped:
            report.stopped = True
            rep.notes.append("stopped early on request; the rest is read next cycle")
        elif not options.dry_run:
            self._advance(resource, high_water, full)
        self._progress(resource, rep.counts)

    def _deliver(
        self,
        resource: Resource,
        items: Iterable[Item],
        inflight: dict[str, InFlight],
        rep: ResourceReport,
        dry_run: bool,
    ) -> None:
        if dry_run or self.client is None:
            for _ in items:  # counting and sampling happen inside the planner
                pass
            return
        for result in self.client.deliver(resource.batch_path, items):
            self._commit(resource, result, inflight, rep)

    def _commit(
        self, resource: Resource, result: BatchResult, inflight: dict[str, InFlight],
        rep: ResourceReport,
    ) -> None:
        synced, pending = self._untag_removed(result.delivered, inflight)
        self.state.mark_synced(resource, synced)
        rejected = [_reasoned(inflight.pop(i.key).outcome, why) for i, why in result.rejected]
        pending += [_reasoned(inflight.pop(i.key).outcome, why) for i, why in result.pending]
        self.state.mark_rejected(resource, rejected)
        self.state.mark_pending(resource, pending)
        rep.counts.sent += len(synced)
        rep.counts.rejected += len(rejected)
        rep.counts.pending += len(pending)
        for item, why in result.rejected:
            log.warning("%s %s rejected by Metrilo: %s", resource, item.key, why)
        if result.pending:
            raise MetriloUnavailableError(
                f"Metrilo did not accept {len(result.pending)} {resource} records after retries: "
                f"{result.pending[0][1]}"
            )

    def _untag_removed(
        self, delivered: Sequence[Item], inflight: dict[str, InFlight]
    ) -> tuple[list[Outcome], list[Outcome]]:
        """Tags merge at Metrilo, so a tag gone from the shop is removed with customer/untag."""
        synced: list[Outcome] = []
        pending: list[Outcome] = []
        for item in delivered:
            entry = inflight.pop(item.key)
            if entry.removed_tags and entry.outcome.metrilo_id and self.client is not None:
                try:
                    self.client.untag(entry.outcome.metrilo_id, entry.removed_tags)
                except MetriloFatalError:
                    raise
                except MetriloError as exc:
                    pending.append(_reasoned(entry.outcome, f"untag failed: {exc}"))
                    continue
            synced.append(entry.outcome)
        return synced, pending

    # -- modes, cursors, held mapping changes ---------------------------------------------

    def _cursor(self, resource: Resource) -> str | None:
        spec = self.mapping.spec
        if resource in (Resource.GUEST_CUSTOMERS, Resource.DELETED_PRODUCTS):
            return spec.orders.cursor if spec.orders else None
        rspec = getattr(spec, resource.value)
        return rspec.cursor if rspec is not None else None

    def _full_due(self, resource: Resource) -> bool:
        if self._cursor(resource) is None or self.state.get_meta(_hw_key(resource)) is None:
            return True
        last_full = self.state.get_meta(_full_key(resource))
        every = self.mapping.spec.sync.full_reconcile_minutes * 60
        return last_full is None or self.clock() - float(last_full) >= every

    def _since(self, resource: Resource) -> object:
        stored = self.state.get_meta(_hw_key(resource))
        assert stored is not None  # _full_due returned False, so a mark exists
        return decode_high_water(
            stored, overlap_seconds=self.mapping.spec.sync.cursor_overlap_seconds
        )

    def _advance(self, resource: Resource, high_water: object, full: bool) -> None:
        if high_water is not None:
            self.state.set_meta(_hw_key(resource), encode_high_water(high_water))
        if full:
            self.state.set_meta(_full_key(resource), repr(self.clock()))
        self.state.set_meta(_mapping_key(resource), self._mapping_fingerprint(resource))

    def _held(self, resource: Resource, rep: ResourceReport) -> bool:
        """A mapping edit that would resend many records waits for `resync --confirm`."""
        applied = self.state.get_meta(_mapping_key(resource))
        if applied is None or applied == self._mapping_fingerprint(resource):
            return False
        preview = CycleReport(kind="sync", dry_run=True)
        self._run_resource(resource, CycleOptions(dry_run=True, full=True), preview)
        counts = preview.for_resource(resource).counts
        would_send = counts.new + counts.changed
        limit = self.mapping.spec.sync.hold_changes_over
        rep.samples = preview.for_resource(resource).samples
        if would_send <= limit:
            rep.notes.append(f"mapping changed: {would_send} records change; sending them")
            return False
        rep.mode = "held"
        rep.counts = counts
        rep.notes.append(
            f"mapping changed: {would_send} records would be resent (more than "
            f"sync.hold_changes_over={limit}); held until `cdc-sync resync {resource} --confirm`"
        )
        log.warning("%s: %s", resource, rep.notes[-1])
        return True

    def _mapping_fingerprint(self, resource: Resource) -> str:
        names = {
            Resource.GUEST_CUSTOMERS: ("customers", "orders", "guest_customers"),
            Resource.DELETED_PRODUCTS: ("products", "orders", "deleted_products"),
        }.get(resource, (resource.value,))
        return ",".join(self.mapping.resource_fingerprint(n) for n in names)

    # -- dependencies ---------------------------------------------------------------------

    def _derived_enabled(self, resource: Resource) -> bool:
        spec = self.mapping.spec
        orders = spec.orders is not None and spec.orders.enabled
        if resource is Resource.GUEST_CUSTOMERS:
            return orders and spec.customers is not None and spec.guest_customers.enabled
        if resource is Resource.DELETED_PRODUCTS:
            return (
                orders and spec.products is not None and spec.deleted_products.enabled
                and spec.orders is not None and "products" in spec.orders.children
            )
        return False

    def _dependencies(self, resource: Resource) -> Dependencies | None:
        if resource is not Resource.ORDERS:
            return None
        mapped = set(self.mapped_resources())
        return Dependencies(
            customer_resources=(Resource.CUSTOMERS.value, Resource.GUEST_CUSTOMERS.value),
            product_resources=(Resource.PRODUCTS.value, Resource.DELETED_PRODUCTS.value),
            customers_complete=Resource.GUEST_CUSTOMERS in mapped,
            products_complete=Resource.DELETED_PRODUCTS in mapped,
        )

    def _progress(self, resource: Resource, counts: ResourceCounts) -> None:
        if self.on_progress is not None:
            self.on_progress(resource, counts)


def _reasoned(outcome: Outcome, reason: str) -> Outcome:
    return Outcome(outcome.key, outcome.metrilo_id, outcome.fingerprint, outcome.tags, reason)


def _hw_key(resource: Resource) -> str:
    return f"high_water:{resource}"


def _full_key(resource: Resource) -> str:
    return f"last_full:{resource}"


def _mapping_key(resource: Resource) -> str:
    return f"mapping:{resource}"
