"""Records gone from the shop: guard first, find them after a full read, apply the mapped action.

Metrilo has no delete endpoint. Per resource, `on_delete` says what to do: record the key as
gone (the default; it is sent again if it comes back), tag the customer, or send the order
again with a status. A guard refuses to treat more than `sync.delete_guard` of a resource as
gone in one cycle: an emptied or broken source must not look like a mass deletion. It looks
twice: before reading (a random sample of the keys state holds, checked against the source,
so an emptied table or a broken `where:` stops the resource before anything is sent), and
after the full read (exactly, before anything is marked gone).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from cdc_sync.core.catalogue import Entry
from cdc_sync.core.report import ResourceReport, Sample
from cdc_sync.core.resources import Resource
from cdc_sync.errors import DeleteGuardError, MetriloRejectedError, MetriloUnavailableError
from cdc_sync.mapping.model import DeleteAction, MappingSpec, OnDelete
from cdc_sync.metrilo.client import Item, MetriloClient
from cdc_sync.state import StateRow

log = logging.getLogger(__name__)

EXISTENCE_CHUNK = 1000
"""Keys per existence query and per state lookup (one IN list each)."""
DERIVED_EXISTENCE_CHUNK = 10_000
"""Keys per existence query of a derived resource. Each query derives it anew (guests: a scan
of every order, normalising emails; no index can serve it), so checking every guest costs
guests / chunk scans: at 400k orders (17k guests) 20 s on PostgreSQL and 67 s on MariaDB with
1,000 a query, 3.5 s and 9 s with 10,000. The list stays far below drivers' parameter limits."""
SAMPLE_SIZE = 400
"""Keys the pre-check samples: enough to tell an emptied source from ordinary deletions."""
_SAMPLE_MARGIN = 3.0
"""Standard errors of slack before a sample trips the guard: a real share just under the
guard must not trip it by chance (about 1 in 1000 at 3)."""


class GoneState(Protocol):
    """What deletes read and write of the state DB (`StateStore` is one)."""

    def live_count(self, resource: str) -> int: ...
    def sample_live_keys(self, resource: str, size: int, *,
                         live: int | None = None) -> list[str]: ...
    def iter_live_keys(self, resource: str, chunk: int = 1000) -> Iterator[list[str]]: ...
    def lookup(self, resource: str, keys: Sequence[str]) -> dict[str, StateRow]: ...
    def mark_gone(self, resource: str, keys: Sequence[str]) -> None: ...
    def mark_gone_tagged(self, resource: str, tags: Mapping[str, Sequence[str]]) -> None: ...
    def payloads(self, resource: str, keys: Sequence[str]) -> dict[str, str]: ...


class KeySource(Protocol):
    """What deletes ask the shop: which keys still exist (`ShopSource` is one)."""

    def existing_keys(self, resource: Resource, keys: Sequence[str]) -> set[str]: ...
    def existing_in_pages(self, resource: Resource, pages: Iterable[Sequence[str]],
                          ) -> Iterator[tuple[Sequence[str], set[str]]]: ...
    def has_rows(self, resource: Resource) -> bool: ...


@dataclass(frozen=True)
class DeleteRules:
    """What the mapping says about deletions of one resource."""

    share: float  # sync.delete_guard
    floor: int  # sync.delete_guard_min
    on_delete: OnDelete
    basis: Resource | None  # see catalogue.Entry
    derived: bool

    @classmethod
    def of(cls, spec: MappingSpec, resource: Resource, entry: Entry | None) -> DeleteRules:
        block = getattr(spec, resource.value, None)
        return cls(
            share=spec.sync.delete_guard, floor=spec.sync.delete_guard_min,
            on_delete=getattr(block, "on_delete", None) or OnDelete(),
            basis=entry.basis if entry is not None else None,
            derived=entry is not None and entry.derived,
        )


class DeleteHandler:
    """The delete guard and gone-record handling of one resource in one cycle."""

    def __init__(
        self, resource: Resource, report: ResourceReport, rules: DeleteRules, *,
        state: GoneState, source: KeySource, client: MetriloClient | None, dry_run: bool,
        cursor_found: Callable[[Resource], bool] | None = None,
    ) -> None:
        self.resource = resource
        self.report = report
        self.rules = rules
        self.state = state
        self.source = source
        self.client = client
        self.dry_run = dry_run
        # Whether a resource's cursor found a row in the shop this cycle (the engine reads
        # each cursor's high-water mark once a cycle anyway): then its source is not empty.
        self.cursor_found = cursor_found

    # -- before reading -------------------------------------------------------------------

    def precheck(self, *, full: bool) -> None:
        """Stop the resource before anything is sent if its source looks emptied or broken.

        Full reads sample the keys state holds (one state query, one source query); an
        incremental read only checks that the source of a derived resource is not empty.
        """
        # A derived resource is computed from another's absence (a guest is an order email no
        # customer row has): if that source is emptied, every order turns into a guest.
        if self.rules.basis is not None:
            self._check_source(self.rules.basis, sampled=full)
        if full and not self.rules.derived:
            self._check_source(self.resource, sampled=True)

    def _check_source(self, resource: Resource, *, sampled: bool) -> None:
        if not sampled:
            self._check_not_emptied(resource)
            return
        state, source = self.state, self.source
        live = state.live_count(resource)
        if live == 0:
            return
        sample = state.sample_live_keys(resource, SAMPLE_SIZE, live=live)
        existing = source.existing_keys(resource, sample)
        missing = sum(1 for key in sample if key not in existing)
        if _sample_trips(missing, len(sample), live, self._share(), self._floor()):
            seen = f"{missing} of {len(sample)} keys sampled from state are gone from the shop"
            raise DeleteGuardError(self._guard_message(resource, live, seen))

    def _check_not_emptied(self, resource: Resource) -> None:
        """Stop if state holds records of `resource` and the shop has none (incremental reads).

        Two first-row lookups, not counts: this runs every cycle, and counting the state rows of
        a resource (200k customers) or ordering its source keys cost tens of milliseconds each.
        None at all when the resource's cursor found a row this cycle: a shop with a row is
        not empty (the same rows: its `where` and keys as the lookup's).
        """
        if self.cursor_found is not None and self.cursor_found(resource):
            return
        state, source = self.state, self.source
        holds_some = next(iter(state.iter_live_keys(resource, chunk=1)), None) is not None
        if holds_some and not source.has_rows(resource):
            live = state.live_count(resource)
            raise DeleteGuardError(self._guard_message(resource, live, "the shop has none"))

    # -- after a full read ----------------------------------------------------------------

    def detect(self, *, live_before: int, seen_live: int) -> None:
        """Find, guard and handle keys in state that the full read did not see.

        When every live key was seen (the usual case) nothing more is read. Otherwise live keys
        are checked against the source in chunks, keeping at most the guard's worth in memory.
        """
        if seen_live >= live_before:
            return
        limit = guard_limit(live_before, self._share(), self._floor())
        gone = self._find_gone(limit, live_before)
        if gone:
            self._handle(gone)

    def _handle(self, gone: list[str]) -> None:
        self.report.counts.gone += len(gone)
        action = self._action()
        if self.dry_run:
            shown = {"on_delete": action.action.value}
            self.report.samples.extend(Sample("gone", k, shown) for k in gone[:3])
            return
        for start in range(0, len(gone), EXISTENCE_CHUNK):
            self._apply(gone[start:start + EXISTENCE_CHUNK], action)
        log.info("%s: %d records gone from the shop (%s)", self.resource, len(gone),
                 action.action.value)

    # -- during a rolling reconciliation ----------------------------------------------------

    def detect_walked(self, pages: Iterable[tuple[int, list[str]]], *, window_total: int,
                      window_gone: int) -> int:
        """Handle the keys a slice's walk found gone: `pages` are (keys checked, those of them
        the shop no longer yields), a walk's share of state (cycle/reconcile.py).

        Guarded twice: per slice, at most `delete_guard` of the keys it checked (or
        `delete_guard_min`), so an emptied table trips at its first slice; per window, at most
        `delete_guard` of the resource (`window_total`, never all of it) in one window.
        Returns how many were found gone.
        """
        window_limit = guard_limit(window_total, self._share(), self._floor()) - window_gone
        gone: list[str] = []
        checked = 0
        for count, missing in pages:
            gone.extend(missing)
            checked += count
            if len(gone) > window_limit:
                seen = f"{window_gone + len(gone)} were found gone this reconciliation window"
                raise DeleteGuardError(self._guard_message(self.resource, window_total, seen))
        slice_limit = max(int(checked * self._share()), self._floor())
        if len(gone) > slice_limit:
            seen = f"{len(gone)} of the {checked} keys checked in this slice are gone from the shop"
            raise DeleteGuardError(self._guard_message(self.resource, window_total, seen))
        if gone:
            self._handle(gone)
        return len(gone)

    def _find_gone(self, limit: int, live_before: int) -> list[str]:
        state, source = self.state, self.source
        gone: list[str] = []
        chunk = DERIVED_EXISTENCE_CHUNK if self.rules.derived else EXISTENCE_CHUNK
        pages = state.iter_live_keys(self.resource, chunk=chunk)
        for keys, existing in source.existing_in_pages(self.resource, pages):
            gone.extend(k for k in keys if k not in existing)
            if len(gone) > limit:
                seen = f"at least {len(gone)} are gone from the shop"
                raise DeleteGuardError(self._guard_message(self.resource, live_before, seen))
        return gone

    def _share(self) -> float:
        return self.rules.share

    def _floor(self) -> int:
        return self.rules.floor

    def _guard_message(self, resource: Resource, live: int, evidence: str) -> str:
        share = self._share()
        whose = "" if resource is self.resource else f" ({self.resource} are derived from them)"
        return (
            f"{resource}: {evidence}{whose}; more than sync.delete_guard={share:.0%} of the "
            f"{live} records Metrilo holds would be gone at once, so none of {self.resource} is "
            f"marked gone (nor tagged or sent a status). Check the source (an emptied table, a "
            f"broken `where:` or query) or, if the deletions are real, raise sync.delete_guard "
            f"in mappings.yaml for one cycle"
        )

    # -- on_delete actions ------------------------------------------------------------------

    def _action(self) -> OnDelete:
        action = self.rules.on_delete
        usable = {
            DeleteAction.TAG: Resource.CUSTOMERS, DeleteAction.STATUS: Resource.ORDERS,
        }.get(action.action, self.resource)
        if usable is not self.resource:
            log.warning("%s: on_delete %s applies to %s only; recording them as gone",
                        self.resource, action.action.value, usable)
            return OnDelete()
        return action

    def _apply(self, gone: Sequence[str], action: OnDelete) -> None:
        if action.action is DeleteAction.TAG and self.client is not None:
            self._tag_customers(gone, action.tag)
        elif action.action is DeleteAction.STATUS and self.client is not None:
            self._send_status(gone, action.status)
        else:
            self.state.mark_gone(self.resource, gone)

    def _tag_customers(self, gone: Sequence[str], tag: str) -> None:
        """Tag each customer Metrilo holds; state remembers the tag, to untag it on return."""
        client, state = self.client, self.state
        assert client is not None
        rows = state.lookup(self.resource, gone)
        tagged: dict[str, tuple[str, ...]] = {}
        try:
            for key in gone:
                row = rows.get(key)
                if row is None or row.synced_fingerprint is None or not row.metrilo_id:
                    continue  # Metrilo never accepted this customer: nothing to tag
                try:
                    client.tag(row.metrilo_id, [tag])
                except MetriloRejectedError as exc:
                    log.warning("%s %s: tagging %r refused: %s", self.resource, key, tag,
                                exc.reason)
                    continue
                tagged[key] = (*[t for t in row.tags if t != tag], tag)
        finally:
            # Record what was done even when Metrilo stops answering halfway; the rest stays
            # live and is found gone again next cycle.
            state.mark_gone_tagged(self.resource, tagged)
        state.mark_gone(self.resource, [k for k in gone if k not in tagged])

    def _send_status(self, gone: Sequence[str], status: str) -> None:
        """Send each kept order again with the status; only then record it as gone."""
        client, state = self.client, self.state
        assert client is not None
        kept = state.payloads(self.resource, gone)
        missing = [k for k in gone if k not in kept]
        if missing:
            self.report.notes.append(
                f"{len(missing)} gone orders have no kept payload (synced before on_delete: "
                f"status was set); recorded as gone without a status"
            )
            state.mark_gone(self.resource, missing)
        items = [Item(k, {**json.loads(p), "status": status}) for k, p in kept.items()]
        failure = None
        for result in client.deliver(self.resource.batch_path, items):
            done = [i.key for i in result.delivered] + [i.key for i, _ in result.rejected]
            state.mark_gone(self.resource, done)
            for item, why in result.rejected:
                log.warning("%s %s: status %r refused: %s", self.resource, item.key, status, why)
            if result.pending and failure is None:
                failure = result.pending[0][1]
        if failure is not None:
            raise MetriloUnavailableError(
                f"Metrilo at {client.base_url} did not accept the {status!r} status of gone "
                f"{self.resource}: {failure}; fix: if this lasts, check that METRILO_API_URL "
                f"({client.base_url}) is right and reachable from this machine"
            )


def guard_limit(live: int, share: float, floor: int) -> int:
    """How many of `live` records may be treated as gone in one cycle.

    The share, but at least `floor` so that one deletion in a small resource is not refused;
    never all of them: an emptied source must not look like a mass deletion.
    """
    return min(max(int(live * share), floor), max(live - 1, 0))


def _sample_trips(missing: int, sampled: int, live: int, share: float, floor: int) -> bool:
    """Whether `missing` of `sampled` keys say more than the guard allows of `live` are gone."""
    if sampled == 0:
        return False
    if sampled >= live:  # the sample is everything: exact, as after the read
        return missing > guard_limit(live, share, floor)
    if missing * live <= floor * sampled:  # the estimate is within what may always go
        return False
    error = math.sqrt(max(share * (1 - share), 1e-9) / sampled)
    return missing / sampled > share + _SAMPLE_MARGIN * error
