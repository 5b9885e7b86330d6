"""`sync`, `resync`, `retry`, `status`, `rejected`: the commands around one cycle."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from cdc_sync.app import open_engine, open_state
from cdc_sync.cli.common import (
    EXIT_CODES,
    EXIT_HELP,
    configured,
    settings_from,
    settings_options,
    setup_logging,
)
from cdc_sync.cli.daemon_cmds import hand_resync_to_daemon
from cdc_sync.cli.progress import cycle_progress, expect_known_records
from cdc_sync.cli.show import print_report, print_status
from cdc_sync.core.report import CycleKind, CycleReport
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.follow import detection_status
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.cycle.resync import run_resync
from cdc_sync.daemon import signals
from cdc_sync.daemon.handoff import foreground_lease, owner_gone
from cdc_sync.errors import MappingError, StateError
from cdc_sync.mapping.loader import load_mapping
from cdc_sync.settings import Settings, available_cpus
from cdc_sync.state import StateStore

RESOURCE_NAMES = [r.value for r in Resource]


def _exit_code(report: CycleReport) -> int:
    return EXIT_CODES[report.status]


def _pushing(settings: Settings, command: str, *, dry_run: bool) -> AbstractContextManager[None]:
    """Hold the daemon lease while pushing, so a foreground cycle never races a running daemon
    (DaemonRunningError says so); a dry run reads only and needs none."""
    if dry_run:
        return nullcontext()
    return foreground_lease(settings.state_url.get_secret_value(), command)


@click.command(epilog=EXIT_HELP)
@settings_options
@click.option("--dry-run", is_flag=True,
              help="Print counts and samples of what would be sent; write and send nothing.")
@click.option("--full", is_flag=True, help="Read everything, even where a cursor allows less.")
@click.option("--accept-mapping", is_flag=True,
              help="Send a held mapping change now (same as `resync --confirm` for it).")
@click.argument("resources", nargs=-1, type=click.Choice(RESOURCE_NAMES))
def sync(dry_run: bool, full: bool, accept_mapping: bool, resources: tuple[str, ...],
         **kwargs: Any) -> None:
    """Run one cycle: send what changed since the last one, in Metrilo's import order.

    New and changed records are sent; failed sends stay pending and are retried next cycle;
    records Metrilo or local validation rejected are kept with the reason (see `rejected`).
    Name RESOURCES to sync only those.
    """
    ready = configured(kwargs, send=not dry_run, resources=resources)
    settings = ready.settings
    setup_logging()
    options = CycleOptions(
        kind=CycleKind.SYNC, resources=tuple(Resource(r) for r in resources), dry_run=dry_run,
        full=full, accept_mapping=accept_mapping,
    )
    with (_pushing(settings, "sync", dry_run=dry_run), cycle_progress() as progress,
          open_engine(settings, send=not dry_run, mapping=ready.mapping,
                      on_progress=progress) as engine):
        progress.expected = expect_known_records(engine.state)
        signals.install(engine.stop.set)
        report = engine.run(options)
    print_report(report)
    raise click.exceptions.Exit(_exit_code(report))


@click.command(epilog=EXIT_HELP)
@settings_options
@click.option("--dry-run", is_flag=True, help="Print what would be sent; write and send nothing.")
@click.option("--confirm", is_flag=True, help="Also send a mapping change that is being held.")
@click.option("--restart", is_flag=True,
              help="Start over instead of resuming an unfinished resync.")
@click.argument("resources", nargs=-1, type=click.Choice(RESOURCE_NAMES))
def resync(dry_run: bool, confirm: bool, restart: bool, resources: tuple[str, ...],
           **kwargs: Any) -> None:
    """Send every record (or those of RESOURCES) again, whatever was sent before.

    Resumable: killed halfway, the next `resync` goes on where it stopped. With a daemon
    running on the same state DB, the resync is handed to it and starts there at once.
    """
    ready = configured(kwargs, send=not dry_run, resources=resources)
    settings = ready.settings
    setup_logging()
    chosen = [Resource(r) for r in resources]
    if dry_run:
        with (cycle_progress() as progress,
              open_engine(settings, send=False, mapping=ready.mapping,
                          on_progress=progress) as engine):
            progress.expected = expect_known_records(engine.state)
            report = run_resync(engine, chosen, dry_run=True)
        print_report(report)
        raise click.exceptions.Exit(_exit_code(report))
    with hand_resync_to_daemon(settings, chosen, confirm=confirm, restart=restart) as handed:
        if handed:
            raise click.exceptions.Exit(0)
        with (cycle_progress() as progress,
              open_engine(settings, mapping=ready.mapping, on_progress=progress) as engine):
            progress.expected = expect_known_records(engine.state)
            signals.install(engine.stop.set)
            report = run_resync(engine, chosen, confirm=confirm, restart=restart)
    print_report(report)
    raise click.exceptions.Exit(_exit_code(report))


@click.command(epilog=EXIT_HELP)
@settings_options
@click.argument("resources", nargs=-1, type=click.Choice(RESOURCE_NAMES))
def retry(resources: tuple[str, ...], **kwargs: Any) -> None:
    """Send rejected records again (after fixing the shop data or the mapping), then sync."""
    ready = configured(kwargs, send=True, resources=resources)
    setup_logging()
    chosen = [Resource(r) for r in resources]
    with (_pushing(ready.settings, "retry", dry_run=False), cycle_progress() as progress,
          open_engine(ready.settings, mapping=ready.mapping,
                      on_progress=progress) as engine):
        progress.expected = expect_known_records(engine.state)
        for resource in chosen or engine.mapped_resources():
            engine.state.retry_rejected(resource.value)
        signals.install(engine.stop.set)
        report = engine.run(CycleOptions(kind=CycleKind.RETRY, resources=tuple(chosen)))
    print_report(report)
    raise click.exceptions.Exit(_exit_code(report))


@click.command()
@settings_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool, **kwargs: Any) -> None:
    """Per resource: synced, pending, rejected (top reasons), gone; the last cycles."""
    settings = settings_from(kwargs)
    _require_sqlite_state(settings)
    state = open_state(settings)
    try:
        print_status(state, as_json=as_json,
                     owner_gone=owner_gone(settings.state_url.get_secret_value()),
                     detection=_detection(settings, state),
                     composing={"workers": settings.workers, "setting": settings.compose_workers,
                                "cpus": available_cpus(), "digests": settings.source_digests})
    finally:
        state.close()


def _require_sqlite_state(settings: Settings) -> None:
    """Commands that only read state must not create an empty SQLite state DB where none is:
    run in the wrong directory, they would say "nothing synced yet" of the wrong file."""
    url = sa.make_url(settings.state_url.get_secret_value())
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") \
            or database.startswith("file:") or Path(database).exists():
        return
    raise StateError(f"no state DB at {Path(database).resolve()}; fix: run from the directory "
                     "your syncs run in, or set CDC_SYNC_STATE_URL (--state-url) to their state "
                     "DB; `cdc-sync sync` creates it")


def _detection(settings: Settings, state: StateStore) -> dict[str, Any] | None:
    """Change detection as the mapping declares it; None without a loadable mapping (status
    still shows what state holds)."""
    try:
        mapping = load_mapping(settings.mappings)
    except MappingError:
        return None
    url = settings.source_url.get_secret_value() if settings.source_url else ""
    dialect = sa.make_url(url).get_backend_name() if url else None
    return detection_status(mapping, dialect, state)


@click.command()
@settings_options
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1),
              help="How many to list.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.argument("resource", type=click.Choice(RESOURCE_NAMES))
def rejected(resource: str, limit: int, as_json: bool, **kwargs: Any) -> None:
    """List rejected records of RESOURCE with the reason for each."""
    settings = settings_from(kwargs)
    _require_sqlite_state(settings)
    state = open_state(settings)
    try:
        rows = state.rejected(resource, limit=limit)
    finally:
        state.close()
    for row in rows:
        if as_json:
            click.echo(json.dumps({"key": row.key, "id": row.metrilo_id, "reason": row.last_error,
                                   "attempts": row.attempts}))
        else:
            click.echo(f"{row.key}\t{row.metrilo_id or ''}\t{row.last_error}")
    if as_json:
        return
    if not rows:
        click.echo(f"no rejected {resource}")
    else:
        click.echo(f"{len(rows)} shown (key, Metrilo id, reason); fix the shop data or the "
                   f"mapping, then `cdc-sync retry {resource}`", err=True)


COMMANDS: list[click.Command] = [sync, resync, retry, status, rejected]
