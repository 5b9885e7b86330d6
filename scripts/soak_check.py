"""The soak's verdict: does the sandbox equal the shop, does state agree, does the run history
account for every record; and the figures of the run.

Metrilo's semantics decide what "equal" means (cdc_sync.sandbox.semantics): a record gone from
the shop stays in Metrilo (allowed when every state row naming it is `gone`); customer tags
merge and only customer/untag removes one (exact for a customer the shop still has; a
superset for an email whose customer row was deleted, e.g. now a guest); product options merge
by id (options the shop no longer has are ignored).
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cdc_sync.core.diff import fingerprint
from cdc_sync.core.resources import Payload, Resource
from cdc_sync.core.validate import validate
from cdc_sync.cycle.planner import metrilo_id
from cdc_sync.mapping.loader import load_mapping
from cdc_sync.sandbox import Sandbox
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.state import StateStore
from cdc_sync.state.tables import sync_state

SANDBOX_OF = {
    Resource.CUSTOMERS: "customers", Resource.GUEST_CUSTOMERS: "customers",
    Resource.CATEGORIES: "categories", Resource.DELETED_PRODUCTS: "products",
    Resource.PRODUCTS: "products", Resource.ORDERS: "orders",
}
SHOWN = 12  # problems listed at most


@dataclass
class Snapshot:
    """What the shop composes now."""

    records: dict[str, dict[str, Payload]] = field(default_factory=dict)  # sandbox name -> id
    fingerprints: dict[str, dict[str, str]] = field(default_factory=dict)  # resource -> key
    invalid: dict[str, set[str]] = field(default_factory=dict)  # resource -> keys
    scanned: Counter[str] = field(default_factory=Counter)  # resource -> records composed


def snapshot(shop_url: str, mapping_path: Path) -> Snapshot:
    found = Snapshot(records={name: {} for name in set(SANDBOX_OF.values())})
    shop = connect_shop(shop_url)
    try:
        source = ShopSource(shop, load_mapping(mapping_path))
        for resource in source.mapped_resources():
            prints = found.fingerprints.setdefault(resource.value, {})
            bad = found.invalid.setdefault(resource.value, set())
            for record in source.records(resource):
                found.scanned[resource.value] += 1
                if record.problems or validate(resource.endpoint, record.payload):
                    bad.add(record.key)
                    continue
                prints[record.key] = fingerprint(record.payload)
                mid = str(metrilo_id(resource, record.payload))
                found.records[SANDBOX_OF[resource]][mid] = record.payload
    finally:
        shop.dispose()
    return found


def state_rows(state_url: str) -> list[Any]:
    engine = sa.create_engine(state_url)
    c = sync_state.c
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(
                c.resource, c.key, c.metrilo_id, c.status, c.synced_fingerprint)))
    finally:
        engine.dispose()


# -- the sandbox against the shop ---------------------------------------------------------------


def sandbox_differences(shop: Snapshot, rows: list[Any], sandbox: Sandbox) -> Iterator[str]:
    live: set[tuple[str, str]] = set()  # (sandbox name, id) some state row still counts
    known: set[tuple[str, str]] = set()
    for resource, _key, mid, status, _fp in rows:
        known.add((SANDBOX_OF[Resource(resource)], str(mid)))
        if status != "gone":
            live.add((SANDBOX_OF[Resource(resource)], str(mid)))
    customers_gone = {str(mid) for resource, _key, mid, status, _fp in rows
                      if resource == "customers" and status == "gone"}
    for name, wanted in shop.records.items():
        held = sandbox.store.records(name)
        missing = sorted(set(wanted) - set(held))
        if missing:
            yield f"{name}: {len(missing)} in the shop, not in the sandbox, e.g. {missing[:3]}"
        extra = sorted(key for key in set(held) - set(wanted)
                       if (name, key) in live or (name, key) not in known)
        if extra:
            yield (f"{name}: {len(extra)} in the sandbox but neither in the shop nor gone in "
                   f"state, e.g. {extra[:3]}")
        for key in sorted(set(wanted) & set(held)):
            why = _unequal(name, held[key], wanted[key], tags_may_grow=key in customers_gone)
            if why:
                yield f"{name} {key}: {why}"


def _unequal(name: str, held: Payload, wanted: Payload, *, tags_may_grow: bool) -> str | None:
    held, wanted = dict(held), dict(wanted)
    if name == "customers":
        have, want = set(held.pop("tags", ())), set(wanted.pop("tags", ()))
        if not (have >= want if tags_may_grow else have == want):
            return f"tags {sorted(have)} != {sorted(want)}"
    if name == "products":
        keep = {o["id"] for o in wanted.get("options", ())}
        held["options"] = sorted((o for o in held.get("options", ()) if o["id"] in keep),
                                 key=_option_id)
        wanted["options"] = sorted(wanted.get("options", ()), key=_option_id)
    if held == wanted:
        return None
    fields = sorted(k for k in set(held) | set(wanted) if held.get(k) != wanted.get(k))
    return "differs in " + ", ".join(f"{k} (sandbox {held.get(k)!r}, shop {wanted.get(k)!r})"
                                     for k in fields[:3])


def _option_id(option: Payload) -> str:
    return str(option["id"])


# -- state against the shop and the sandbox -----------------------------------------------------


def state_disagreements(shop: Snapshot, rows: list[Any], sandbox: Sandbox) -> Iterator[str]:
    """No row synced for a record the sandbox does not hold at the shop's version; nothing
    pending; gone only for what the shop lacks; every valid record recorded."""
    seen: set[tuple[str, str]] = set()
    for resource, key, mid, status, synced_fp in rows:
        seen.add((resource, key))
        wanted = shop.fingerprints.get(resource, {}).get(key)
        in_shop = wanted is not None or key in shop.invalid.get(resource, set())
        if status == "synced":
            if sandbox.store.get(SANDBOX_OF[Resource(resource)], str(mid)) is None:
                yield f"{resource} {key}: synced, but the sandbox never got {mid!r}"
            elif wanted is None:
                yield f"{resource} {key}: synced, but the shop has no valid record for it"
            elif synced_fp != wanted:
                yield f"{resource} {key}: synced, but not at the shop's current version"
        elif status == "pending":
            yield f"{resource} {key}: still pending after the final cycle"
        elif status == "gone" and in_shop:
            yield f"{resource} {key}: gone, yet the shop has it"
        elif status == "rejected" and wanted is not None:
            yield f"{resource} {key}: rejected, yet it is valid"
    for resource, prints in shop.fingerprints.items():
        unrecorded = sorted(key for key in prints if (resource, key) not in seen)
        if unrecorded:
            yield f"{resource}: {len(unrecorded)} records with no state, e.g. {unrecorded[:3]}"


# -- the run history ----------------------------------------------------------------------------


def history_gaps(shop: Snapshot, state_url: str, kills: int, sandbox: Sandbox
                 ) -> tuple[list[str], dict[str, int]]:
    """Problems with the run history, and its totals (runs by status, records it says sent)."""
    with StateStore.open(state_url, upgrade=False) as state:
        runs = state.last_runs(1_000_000)
    totals: Counter[str] = Counter(run.status for run in runs)
    totals["sent"] = sum(c.get("sent", 0) for run in runs for c in run.counts.values())
    problems = []
    if totals["running"] > kills:
        problems.append(f"{totals['running']} runs never finished, but only {kills} kills")
    silent = [run.id for run in runs if run.status == "failed" and not run.error]
    if silent:
        problems.append(f"failed runs without an error: {silent[:5]}")
    accepted = sum(sandbox.store.stats()["items_accepted"].values())
    if totals["sent"] > accepted:
        problems.append(f"the history says {totals['sent']} sent, the sandbox took {accepted}")
    if not runs or runs[0].status != "ok":
        problems.append("the final full cycle is not the last run, or it did not end ok")
        return problems, dict(totals)
    for resource, scanned in shop.scanned.items():
        counts = runs[0].counts.get(resource, {})
        needing = sum(counts.get(k, 0) for k in ("new", "changed", "retried", "forced"))
        handled = sum(counts.get(k, 0) for k in ("sent", "rejected", "pending", "waiting"))
        if counts.get("scanned") != scanned:
            problems.append(f"final cycle: {resource} scanned {counts.get('scanned')}, "
                            f"the shop composes {scanned}")
        if needing + counts.get("unchanged", 0) != counts.get("scanned", 0):
            problems.append(f"final cycle: {resource} counts do not add up: {counts}")
        if needing != handled or counts.get("pending") or counts.get("waiting"):
            problems.append(f"final cycle: {resource} left records unhandled: {counts}")
    return problems, dict(totals)


# -- the verdict --------------------------------------------------------------------------------


@dataclass
class Verdict:
    problems: list[str]
    figures: list[tuple[str, str]]

    @property
    def converged(self) -> bool:
        return not self.problems

    def render(self) -> str:
        width = max(len(name) for name, _ in self.figures)
        lines = [f"{name:<{width}}  {value}" for name, value in self.figures]
        if self.problems:
            lines += ["", f"NOT CONVERGED ({len(self.problems)} problems):"]
            lines += [f"  - {p}" for p in self.problems[:SHOWN]]
        else:
            lines += ["", "CONVERGED: the sandbox equals the shop (by the daemon's own cycles, "
                          "and after a final full one), state agrees, and the run "
                          "history accounts for every record"]
        return "\n".join(lines)


@dataclass
class Run:
    """What the soak did, as the verdict needs it."""

    shop_url: str
    state_url: str
    mapping_path: Path
    changes: dict[str, int]  # the writer's counts, by operation and by kind
    writer_failure: str | None
    kills: int
    deaths: list[int]  # exit codes of daemons that ended by themselves
    logs: str  # every daemon's log
    stop_code: int  # the last daemon's exit code on SIGTERM
    final: subprocess.CompletedProcess[str]  # `cdc-sync sync --full`
    caught_up: bool
    timings: dict[str, float]
    phases: list[str]
    before_full: list[str]  # how the sandbox differed from the shop before `sync --full`


def differences(shop_url: str, state_url: str, mapping_path: Path,
                sandbox: Sandbox) -> list[str]:
    """How the sandbox differs from the shop now (empty: converged)."""
    shop = snapshot(shop_url, mapping_path)
    return list(sandbox_differences(shop, state_rows(state_url), sandbox))


def check(run: Run, sandbox: Sandbox) -> Verdict:
    problems = _process_problems(run)
    problems += [f"before the final sync --full (the daemon's cycles alone): {p}"
                 for p in run.before_full]
    shop = snapshot(run.shop_url, run.mapping_path)
    rows = state_rows(run.state_url)
    problems += list(sandbox_differences(shop, rows, sandbox))
    problems += list(state_disagreements(shop, rows, sandbox))
    history, totals = history_gaps(shop, run.state_url, run.kills, sandbox)
    problems += history
    if sandbox.store.dropped_count():
        problems.append(f"{sandbox.store.dropped_count()} orders Metrilo would drop "
                        "(customer or product never sent)")
    return Verdict(problems, _figures(run, sandbox, totals))


def _process_problems(run: Run) -> list[str]:
    problems = []
    if run.writer_failure:
        problems.append(f"the writer failed: {run.writer_failure}")
    if run.deaths:
        problems.append(f"the daemon exited by itself {len(run.deaths)} time(s), codes "
                        f"{run.deaths}")
    if run.stop_code != 0:
        problems.append(f"the daemon exited {run.stop_code} on SIGTERM, not 0")
    if run.final.returncode != 0:
        tail = (run.final.stderr or run.final.stdout).strip().splitlines()[-3:]
        problems.append(f"`cdc-sync sync --full` exited {run.final.returncode}: "
                        + " | ".join(tail))
    if not run.caught_up:
        problems.append("the daemon did not catch up (no ok idle cycle) once the chaos ended")
    if "Traceback" in run.logs:
        problems.append(f"{run.logs.count('Traceback')} tracebacks in the daemon logs "
                        "(a bug path)")
    return problems


def _figures(run: Run, sandbox: Sandbox, totals: dict[str, int]) -> list[tuple[str, str]]:
    changes, timings = run.changes, run.timings
    stats = sandbox.store.stats()
    caught_up = (f"the daemon caught up in {timings['catch_up']:.1f}s, then the final full cycle"
                 if "catch_up" in timings else "the daemon never caught up; the final full cycle")
    answers: Counter[str] = Counter()
    for by_status in stats["requests"].values():
        answers.update(by_status)
    held = ", ".join(f"{name} {n}" for name, n in stats["records"].items())
    kinds = ", ".join(f"{changes.get(k, 0)} {k}" for k in ("updates", "inserts", "deletes"))
    return [
        ("changes applied", f"{sum(changes.get(k, 0) for k in ('updates', 'inserts', 'deletes'))}"
                            f" ({kinds}; {changes.get('conflicts', 0)} writes hit a lock)"),
        ("records sent", f"{sum(stats['items_accepted'].values())} accepted by the sandbox; "
                         f"{totals.get('sent', 0)} per the run history (kills lose some counts)"),
        ("requests", ", ".join(f"{status}: {n}" for status, n in sorted(answers.items()))),
        ("retries", f"{run.logs.count('; retry ')} repeated requests (429/5xx/dropped/timeouts)"),
        ("duplicates sent", f"{sum(stats['duplicates'].values())} records received unchanged "
                            "(at least once: after kills and lost answers)"),
        ("kills survived", f"{run.kills} SIGKILLs; {len(run.deaths)} exits nobody asked for"),
        ("cycles", ", ".join(f"{n} {status}" for status, n in sorted(totals.items())
                             if status != "sent")),
        ("fault phases", ", ".join(f"{n} {name}"
                                   for name, n in Counter(run.phases).most_common())),
        ("time to converge", f"{timings.get('converge', 0):.1f}s after the chaos ({caught_up})"),
        ("sandbox holds", held),
    ]
