"""Printing reports and status for people (tables) and machines (JSON)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from typing import Any, Protocol

import click

from cdc_sync.core.report import COUNT_NAMES, CycleReport, RunStatus
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.marks import held_changes
from cdc_sync.cycle.reconcile import progress
from cdc_sync.cycle.resync import unfinished_resync
from cdc_sync.daemon.mapping_meta import last_refused_edit
from cdc_sync.state import RunRow, Status
from cdc_sync.state.meta_keys import MetaStore

_REPORT_COLUMNS = COUNT_NAMES
_RUNS_SEARCHED_FOR_AN_ERROR = 50


class StatusState(MetaStore, Protocol):
    """What `status` reads of state (`StateStore` is one): counts and reasons per resource,
    the latest runs, and meta values (held changes, a resync under way, reconciliation,
    a refused mapping edit)."""

    def count_by_status(self, resource: str) -> dict[Status, int]: ...
    def top_reasons(
        self, resource: str, limit: int = 5, status: Status = Status.REJECTED
    ) -> list[tuple[str, int]]: ...
    def last_runs(self, limit: int = 10) -> list[RunRow]: ...


def print_report(report: CycleReport) -> None:
    """One line per resource with its counts, then notes, samples (dry runs) and errors."""
    title = f"{report.kind}{' (dry run: nothing written or sent)' if report.dry_run else ''}"
    click.echo(f"{title}: {report.seconds:.1f}s")
    header = f"  {'resource':<17}{'mode':<22}" + "".join(f"{c:>10}" for c in _REPORT_COLUMNS)
    click.echo(header)
    for resource, rep in report.resources.items():
        values = rep.counts.as_dict()
        click.echo(f"  {resource.value:<17}{rep.mode:<22}"
                   + "".join(f"{values[c]:>10}" for c in _REPORT_COLUMNS))
    for resource, rep in report.resources.items():
        for note in rep.notes:
            click.echo(f"  note: {resource}: {note}")
        for sample in rep.samples:
            body = json.dumps(sample.payload, ensure_ascii=False, default=str)
            click.echo(f"  sample {resource} {sample.change} {sample.key}: {body[:300]}")
    if report.stopped:
        left = ", ".join(r.value for r in report.unfinished) or "nothing"
        click.echo(f"  stopped early on request; not finished: {left}; the next cycle goes on")
    for error in report.errors():
        click.echo(f"error: {error}", err=True)


OwnerGone = Callable[[str | None], bool]
"""Whether the process that owns a run ("pid@host") is gone (see daemon.handoff.owner_gone)."""


def status_data(state: StatusState, owner_gone: OwnerGone | None = None,
                detection: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything `status` shows, as plain data (also for --json and the health endpoint).

    With `owner_gone`, a run still marked running whose process is gone (killed) is shown as
    interrupted: it is, and nothing will finish it but the next cycle. `detection`: how each
    dependency's changes are seen (`follow.detection_status`).
    """
    resources = {}
    for resource in Resource:
        counts = state.count_by_status(resource.value)
        if not any(counts.values()):
            continue
        resources[resource.value] = {
            "counts": {s.value: counts.get(s, 0) for s in Status},
            "top_rejections": _reasons(state, resource, Status.REJECTED),
            "top_pending": _reasons(state, resource, Status.PENDING),
        }
    runs = state.last_runs(_RUNS_SEARCHED_FOR_AN_ERROR)
    failed = next((r for r in runs if r.error), None)
    refused = last_refused_edit(state)
    return {
        "resources": resources,
        "last_runs": [_run(r, owner_gone) for r in runs[:5]],
        "last_error": None if failed is None else _run(failed),
        "held_mapping_changes": {r.value: n for r, n in held_changes(state).items()},
        "unfinished_resync": [r.value for r in unfinished_resync(state) or ()],
        "refused_mapping_edit": None if refused is None else refused.as_dict(),
        "reconciliation": progress(state),
        "change_detection": detection,
    }


def _reasons(state: StatusState, resource: Resource, status: Status) -> list[dict[str, Any]]:
    return [{"reason": reason, "count": n}
            for reason, n in state.top_reasons(resource.value, status=status)]


def _run(run: RunRow, owner_gone: OwnerGone | None = None) -> dict[str, Any]:
    seconds = None
    if run.finished_at is not None:
        seconds = round((run.finished_at - run.started_at).total_seconds(), 1)
    finished = None if run.finished_at is None else run.finished_at.isoformat(timespec="seconds")
    gone = (run.status == RunStatus.RUNNING and owner_gone is not None
            and owner_gone(run.owner))
    return {"id": run.id, "kind": run.kind,
            "status": RunStatus.INTERRUPTED.value if gone else run.status,
            "started_at": run.started_at.isoformat(timespec="seconds"), "finished_at": finished,
            "seconds": seconds, "counts": run.counts, "error": run.error, "owner": run.owner,
            "owner_gone": gone, "unfinished": list(run.unfinished)}


def print_status(state: StatusState, *, as_json: bool,
                 owner_gone: OwnerGone | None = None,
                 detection: dict[str, Any] | None = None,
                 composing: dict[str, Any] | None = None) -> None:
    data = status_data(state, owner_gone, detection)
    if composing is not None:
        data["composing"] = composing
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if not data["resources"]:
        click.echo("nothing synced yet: run `cdc-sync sync`")
    else:
        click.echo(f"  {'resource':<17}" + "".join(f"{s.value:>10}" for s in Status))
    for name, info in data["resources"].items():
        click.echo(f"  {name:<17}" + "".join(f"{info['counts'][s.value]:>10}" for s in Status))
        for top in info["top_rejections"]:
            click.echo(f"      rejected {top['count']}x: {top['reason']}")
        for top in info["top_pending"]:
            click.echo(f"      pending {top['count']}x: {top['reason']}")
    for name, would_send in data["held_mapping_changes"].items():
        click.echo(f"held: the {name} mapping changed ({would_send} records would be resent); "
                   f"release it with `cdc-sync resync {name} --confirm`")
    for name, window in data["reconciliation"].items():
        click.echo(f"  {name}: {window['summary']}")
    if detection is not None:
        print_freshness(detection)
        for warning in detection["warnings"]:
            click.echo(f"  warning: {warning}")
    _print_refused_edit(data["refused_mapping_edit"])
    if data["unfinished_resync"]:
        click.echo(f"unfinished resync of {', '.join(data['unfinished_resync'])}: "
                   "`cdc-sync resync` goes on where it stopped")
    _print_last_cycle(data)
    if composing is not None:
        click.echo(f"composing: {composing_text(composing)}")
        if "digests" in composing:
            click.echo(f"source marks: {digests_text(composing['digests'])}")


def composing_text(composing: dict[str, Any]) -> str:
    """Where cycles compose records, and why (from `Settings`: CDC_SYNC_COMPOSE_WORKERS)."""
    where = ("in a worker process beside the cycle's, once a cycle has many records to compose"
             if composing["workers"] else "in the cycle's own process")
    setting = composing["setting"]
    why = (f"CDC_SYNC_COMPOSE_WORKERS unset, {composing['cpus']} CPUs" if setting is None
           else f"CDC_SYNC_COMPOSE_WORKERS={setting}")
    return f"{where} ({why})"


def digests_text(setting: str) -> str:
    """Where rows' source marks are computed (from `Settings`: CDC_SYNC_SOURCE_DIGESTS)."""
    if setting == "off":
        return ("from each row's values, in Python: full cycles read every value "
                "(CDC_SYNC_SOURCE_DIGESTS=off)")
    return ("md5 digests computed by the shop database on PostgreSQL and MySQL/MariaDB; a full "
            "cycle reads keys and digests only (CDC_SYNC_SOURCE_DIGESTS=auto)")


def _print_refused_edit(refused: dict[str, Any] | None) -> None:
    if refused is None:
        return
    problems = refused["problems"]
    click.echo(f"mapping: {refused['file']}: {refused['summary']} (noticed at "
               f"{refused['noticed_at']}, {len(problems)} problem"
               f"{'' if len(problems) == 1 else 's'}); the daemon goes on with the last good "
               "mapping:")
    for problem in problems:
        click.echo(f"  - {problem['where']}: {problem['what']}")
        if problem["fix"]:
            click.echo(f"      fix: {problem['fix']}")


def _print_interrupted(run: dict[str, Any]) -> None:
    if run["status"] != RunStatus.INTERRUPTED:
        return
    if run["owner_gone"] or run["seconds"] is None or not run["unfinished"]:
        why = f"its process ({run['owner'] or 'unknown'}) ended before the cycle did (killed?)"
    else:
        why = "stopped before its end (SIGTERM, Ctrl-C, or a resync waiting)"
    left = []
    for name in run["unfinished"]:
        scanned = run["counts"].get(name, {}).get("scanned")
        left.append(f"{name} (read in part: {scanned} records so far)" if scanned else name)
    click.echo(f"  interrupted: {why}; not finished: {', '.join(left) or 'unknown'}; the "
               "records of these not yet read or sent go out in the next cycle")


def _print_last_cycle(data: dict[str, Any]) -> None:
    if not data["last_runs"]:
        return
    run = data["last_runs"][0]
    took = f"took {run['seconds']}s"
    if run["seconds"] is None:
        took = "its process is gone" if run["owner_gone"] else f"still running ({run['owner']})"
    click.echo(f"last cycle: #{run['id']} {run['kind']} {run['status']}, started "
               f"{run['started_at']}, {took}")
    _print_interrupted(run)
    if run["status"] == RunStatus.REJECTED:
        rejected = sum(c.get("rejected", 0) for c in run["counts"].values())
        click.echo(f"  {rejected} records rejected in this cycle (at least "
                   "CDC_SYNC_REJECTION_THRESHOLD): `cdc-sync rejected RESOURCE` lists them; fix "
                   "the shop data or the mapping, then `cdc-sync retry`")
    for resource in Resource:  # in import order
        counts = run["counts"].get(resource.value)
        if counts is not None:
            shown = ", ".join(f"{counts[n]} {n}" for n in COUNT_NAMES if counts.get(n))
            click.echo(f"  {resource}: {shown or 'nothing to do'}")
    failed = data["last_error"]
    if failed is None:
        click.echo("last error: none")
    else:
        click.echo(f"last error: #{failed['id']} {failed['kind']} at {failed['started_at']}: "
                   f"{failed['error']}")


def print_freshness(data: dict[str, Any]) -> None:
    """Per resource, each table its records read: how its changes are seen, the worst delay."""
    minutes = data["reconcile_minutes"]
    window = "every cycle reads everything" if minutes == 0 else (
        f"reconciliation verifies every record within {minutes:g} min")
    click.echo(f"change detection (worst-case delay; {window}):")
    for resource, deps in data["resources"].items():
        click.echo(f"  {resource}")
        for dep in deps:
            flag = "  (blind: see the warning)" if dep["blind"] else ""
            if dep.get("last_change_seen") is not None:
                flag += f"  (last change seen: {dep['last_change_seen']})"
            click.echo(f"    {dep['table']:<24}{dep['via']:<32}{dep['how']:<36}"
                       f"{dep['delay']}{flag}")
            if dep.get("later"):  # what its cursor does not bring (guests' rare cases)
                click.echo(textwrap.fill(f"the rest {dep['later']}", width=100,
                                         initial_indent=" " * 28, subsequent_indent=" " * 30))

