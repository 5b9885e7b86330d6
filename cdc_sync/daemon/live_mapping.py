"""The mapping the daemon works with: swapped in between cycles, its refusals and its holds.

A checked edit (reload.py) arrives from the check's thread: a refusal is logged and shown by
/healthz at once; a good mapping waits for the worker, which swaps it in between two cycles,
so a cycle never mixes two mappings. Whatever the edit, the daemon goes on with the last good
mapping until a good one replaces it, and `status` (the meta value `mapping:problems`) says so.

What a swap changes is left to the engine, which notices a changed resource by its mapping
fingerprint and measures the change with a dry run before sending anything: with the policy
`hold` (CDC_SYNC_MAPPING_CHANGES) a change above `sync.hold_changes_over` records waits for
`cdc-sync resync --confirm`; with `apply` it is sent at once, in the normal batches. A
resource newly mapped starts its first import in the next cycle, in Metrilo's import order;
one no longer mapped stops syncing and keeps its state, so mapping it again sends only what
changed meanwhile.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass

from cdc_sync.core.report import CycleReport, ReadMode, Sample
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.marks import ResourceMarks
from cdc_sync.daemon.health import Health
from cdc_sync.daemon.mapping_meta import RefusedEdit, record_refused_edit, refused_edit
from cdc_sync.daemon.metrics import Metrics
from cdc_sync.daemon.reload import CheckedEdit
from cdc_sync.errors import StateError
from cdc_sync.mapping.loader import LoadedMapping
from cdc_sync.state.meta_keys import MetaStore

log = logging.getLogger("cdc_sync.daemon")

# The sections of mappings.yaml that make records (derived resources have sections too).
SECTIONS = tuple(r.value for r in Resource)
# `apply` is `hold` with a threshold no mapping change reaches: measured, then sent.
NEVER_HOLD = sys.maxsize
SAMPLE_CHARACTERS = 300


@dataclass(frozen=True)
class Swap:
    """A mapping swapped in: engines use `mapping` from now on."""

    mapping: LoadedMapping  # with the policy applied
    changed: bool  # False: the same meaning (comments, layout; only the YAML lines moved)


class LiveMapping:
    """The mapping in force and what to tell about it; thread-safe where the doc says so."""

    def __init__(self, mapping: LoadedMapping, *, policy: str, health: Health,
                 metrics: Metrics) -> None:
        self._policy = policy
        self._health = health
        self._metrics = metrics
        self._lock = threading.Lock()  # guards _loaded, _staged and _refused
        self._loaded = mapping
        self._staged: LoadedMapping | None = None
        self._refused: RefusedEdit | None = None
        self._publish = True  # the state DB's view (`status`) needs writing
        self._held: dict[Resource, int] = {}

    @property
    def loaded(self) -> LoadedMapping:
        """The mapping in force, as loaded (fingerprints, YAML lines)."""
        with self._lock:
            return self._loaded

    def for_engine(self) -> LoadedMapping:
        """The mapping in force with the policy applied: what engines are built with."""
        mapping = self.loaded
        if self._policy != "apply":
            return mapping
        sync = mapping.spec.sync.model_copy(update={"hold_changes_over": NEVER_HOLD})
        return dataclasses.replace(mapping, spec=mapping.spec.model_copy(update={"sync": sync}))

    def accept_held(self) -> bool:
        """Whether the next cycle sends held changes: with `apply`, one held before is too."""
        return self._policy == "apply" and bool(self._held)

    # -- from the check's thread -------------------------------------------------------------

    def checked(self, edit: CheckedEdit) -> None:
        """Take a checked edit: report a refusal now; stage a good mapping for the worker."""
        if edit.mapping is None:
            self._refuse(edit)
            return
        with self._lock:
            was_refused = self._refused is not None
            self._refused = None
            self._staged = edit.mapping
            self._publish = True
        self._health.mapping_refused(None)
        self._metrics.set_mapping_problems(0)
        if was_refused or not edit.unchanged:
            log.info("%s: the edit fits the shop; it applies from the next cycle%s",
                     edit.mapping.path, "" if not was_refused else
                     " (the earlier problems are resolved)")
        elif edit.on_request:
            log.info("%s: unchanged, and it still fits the shop", edit.mapping.path)

    def _refuse(self, edit: CheckedEdit) -> None:
        path = self.loaded.path
        summary = ("the mapping in force no longer fits the shop" if edit.unchanged
                   else "the edit could not be checked yet" if edit.unchecked
                   else "the edit was not applied")
        refusal = refused_edit(path, summary, list(edit.problems))
        with self._lock:
            self._refused = refusal
            self._publish = True
        self._health.mapping_refused([str(p) for p in edit.problems])
        self._metrics.set_mapping_problems(len(edit.problems))
        log.error("%s: %s (%d problem%s); the daemon goes on with the last good mapping:\n%s",
                  path, summary, len(edit.problems), "" if len(edit.problems) == 1 else "s",
                  "\n".join(f"  - {p}" for p in edit.problems))

    # -- on the worker, between cycles -------------------------------------------------------

    def between_cycles(self, state: MetaStore) -> Swap | None:
        """Swap in a staged mapping and update `status`; what engines use from now on."""
        with self._lock:
            staged, self._staged = self._staged, None
            old = self._loaded
            if staged is not None:
                self._loaded = staged
        self._publish_refusal(state)
        if staged is None:
            return None
        changed = staged.fingerprint != old.fingerprint
        if changed:
            _log_swap(old, staged, self._policy)
            self._refresh_held(state)
        return Swap(self.for_engine(), changed)

    def republish(self) -> None:
        """Write the refusal (or its absence) again: after taking over from another daemon."""
        with self._lock:
            self._publish = True

    def after_cycle(self, report: CycleReport | None, state: MetaStore) -> None:
        """Log the measured mapping changes a cycle applied; refresh the holds."""
        if report is not None:
            for resource, rep in report.resources.items():
                if rep.samples and rep.mode is not ReadMode.HELD:  # the engine logs holds itself
                    _log_applied(resource.value, rep.notes, rep.samples)
        self._refresh_held(state)

    def _publish_refusal(self, state: MetaStore) -> None:
        with self._lock:
            publish, refused = self._publish, self._refused
            self._publish = False
        if not publish:
            return
        try:
            record_refused_edit(state, refused)
        except StateError as exc:
            with self._lock:
                self._publish = True  # tried again before the next cycle
            log.warning("could not record the mapping's problems for `cdc-sync status`: %s", exc)

    def _refresh_held(self, state: MetaStore) -> None:
        marks = ResourceMarks(state, self.loaded, time.time)
        try:
            held = {r: h.would_send for r in Resource if (h := marks.held(r)) is not None}
        except StateError as exc:
            log.debug("held mapping changes not refreshed: %s", exc)
            return
        self._held = held
        self._health.mapping_held({r.value: n for r, n in held.items()})
        self._metrics.set_mapping_held({r.value: n for r, n in held.items()})


def _log_swap(old: LoadedMapping, new: LoadedMapping, policy: str) -> None:
    before, after = _sections(old), _sections(new)
    added = [name for name in SECTIONS if name in after and name not in before]
    removed = [name for name in SECTIONS if name in before and name not in after]
    changed = [name for name in SECTIONS
               if name in after and name in before and after[name] != before[name]]
    log.info("%s reloaded: %s", new.path, "; ".join(filter(None, [
        f"changed {', '.join(changed)}" if changed else "",
        f"added {', '.join(added)}" if added else "",
        f"removed {', '.join(removed)}" if removed else "",
    ])) or "sync options changed")
    for name in added:
        log.info("%s: newly mapped: its first import runs in the next cycle, in Metrilo's "
                 "import order", name)
    for name in removed:
        log.info("%s: no longer mapped: it stops syncing; its state is kept, so mapping it "
                 "again sends only what changed meanwhile", name)
    if changed:
        limit = new.spec.sync.hold_changes_over
        then = ("are sent" if policy == "apply" else
                f"are sent if at most sync.hold_changes_over={limit}, else held until "
                "`cdc-sync resync RESOURCE --confirm`")
        log.info("%s: the next cycle counts the records the change touches (a dry run) before "
                 "sending any; they %s (CDC_SYNC_MAPPING_CHANGES=%s)",
                 ", ".join(changed), then, policy)


def _sections(mapping: LoadedMapping) -> dict[str, str]:
    """Fingerprint of each enabled section of the mapping."""
    found = {}
    for name in SECTIONS:
        section = getattr(mapping.spec, name)
        if section is not None and section.enabled:
            found[name] = mapping.resource_fingerprint(name)
    return found


def _log_applied(resource: str, notes: list[str], samples: list[Sample]) -> None:
    for note in notes:
        log.info("%s: %s", resource, note)
    for sample in samples:
        body = json.dumps(sample.payload, ensure_ascii=False, default=str)[:SAMPLE_CHARACTERS]
        log.info("%s: sample %s %s: %s", resource, sample.change, sample.key, body)
