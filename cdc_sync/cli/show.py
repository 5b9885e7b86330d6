"""Printing reports and status for people (tables) and machines (JSON)."""

from __future__ import annotations

import json
from typing import Any

import click

from cdc_sync.report import CycleReport
from cdc_sync.resources import Resource
from cdc_sync.state import StateStore, Status

_REPORT_COLUMNS = ("scanned", "new", "changed", "unchanged", "retried", "forced", "gone",
                   "sent", "rejected", "pending", "waiting", "untagged")


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
    for error in report.errors():
        click.echo(f"error: {error}", err=True)


def status_data(state: StateStore) -> dict[str, Any]:
    """Everything `status` shows, as plain data (also for --json and the health endpoint)."""
    resources = {}
    for resource in Resource:
        counts = state.count_by_status(resource.value)
        if not any(counts.values()):
            continue
        resources[resource.value] = {
            "counts": {s.value: counts.get(s, 0) for s in Status},
            "top_rejections": [
                {"reason": reason, "count": n} for reason, n in state.top_reasons(resource.value)
            ],
        }
    runs = [
        {"id": r.id, "kind": r.kind, "status": r.status, "started_at": str(r.started_at),
         "finished_at": str(r.finished_at), "counts": r.counts, "error": r.error}
        for r in state.last_runs(5)
    ]
    return {"resources": resources, "last_runs": runs}


def print_status(state: StateStore, *, as_json: bool) -> None:
    data = status_data(state)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if not data["resources"]:
        click.echo("nothing synced yet: run `cdc-sync sync`")
    click.echo(f"  {'resource':<17}" + "".join(f"{s.value:>10}" for s in Status))
    for name, info in data["resources"].items():
        click.echo(f"  {name:<17}" + "".join(f"{info['counts'][s.value]:>10}" for s in Status))
        for top in info["top_rejections"]:
            click.echo(f"      rejected {top['count']}x: {top['reason']}")
    for run in data["last_runs"][:1]:
        click.echo(f"last cycle: #{run['id']} {run['kind']} {run['status']} "
                   f"started {run['started_at']} finished {run['finished_at']}")
        if run["error"]:
            click.echo(f"last error: {run['error']}")
