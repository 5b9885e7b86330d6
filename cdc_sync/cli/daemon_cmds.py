"""`cdc-sync run` (the daemon), and the hand-over of `cdc-sync resync` to a running daemon."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from cdc_sync.cli.common import configured, settings_options, setup_logging
from cdc_sync.cli.progress import progress_callback
from cdc_sync.core.resources import Resource
from cdc_sync.daemon import Daemon, resync_or_hand_over, signals
from cdc_sync.settings import Settings


@click.command("run")
@settings_options
@click.option("--interval", type=click.FloatRange(min=0, min_open=True),
              help="Seconds between cycles [env CDC_SYNC_INTERVAL; default 60]. Per resource: "
                   "CDC_SYNC_INTERVALS=orders=30,products=600.")
@click.option("--http-port", type=click.IntRange(0, 65535),
              help="Serve /healthz and /metrics on this port [env CDC_SYNC_HTTP_PORT; default: "
                   "no endpoint].")
@click.option("--http-host",
              help="Address the endpoint listens on [env CDC_SYNC_HTTP_HOST; default 127.0.0.1]. "
                   "Anything else exposes health and counts to the network.")
@click.option("--log-json", is_flag=True,
              help="Log JSON lines instead of readable lines [env CDC_SYNC_LOG_JSON].")
@click.option("--mapping-changes", type=click.Choice(["hold", "apply"]),
              help="An edit of mappings.yaml that changes more than sync.hold_changes_over "
                   "records: hold it for `cdc-sync resync --confirm`, or apply it at once "
                   "[env CDC_SYNC_MAPPING_CHANGES; default hold].")
def run(interval: float | None, http_port: int | None, http_host: str | None, log_json: bool,
        mapping_changes: str | None, **kwargs: Any) -> None:
    """Run as a daemon: a cycle every interval, until SIGTERM or Ctrl-C.

    Never two cycles at once; an outage of the shop DB, the state DB or Metrilo is logged and
    retried with a growing delay, never fatal. SIGTERM/Ctrl-C lets the batches in flight finish,
    commits what Metrilo acknowledged, and exits 0 (a second signal exits at once).

    An edit of mappings.yaml is noticed within a second (at once on SIGHUP), checked against
    the shop like `cdc-sync check`, and applied from the next cycle; a broken edit is logged,
    shown by `cdc-sync status` and /healthz, and the daemon goes on with the last good mapping.

    `cdc-sync resync` from another shell hands the resync to this daemon. With a PostgreSQL
    state DB a second `run` waits as a standby and takes over when this one dies; with SQLite
    state it refuses to start.
    """
    ready = configured(kwargs, send=True, daemon_flags={
        "interval": interval, "http_port": http_port, "http_host": http_host,
        "log_json": log_json or None, "mapping_changes": mapping_changes})
    assert ready.daemon is not None  # daemon_flags given: loaded or raised
    setup_logging(json_lines=ready.daemon.log_json)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # it logs every job run at INFO
    daemon = Daemon(ready.settings, ready.daemon, ready.mapping,
                    on_progress=progress_callback())
    signals.install(daemon.request_stop)
    signals.install_reload(daemon.request_reload)
    daemon.run()


@contextmanager
def hand_resync_to_daemon(
    settings: Settings, resources: Sequence[Resource], *, confirm: bool = False,
    restart: bool = False,
) -> Iterator[bool]:
    """For `cdc-sync resync`: True when a running daemon was asked to do it (a line saying so
    is printed; do nothing more); False while this process holds the daemon lease: run the
    resync in the foreground inside the block (a standby daemon waits meanwhile)."""
    state_url = settings.state_url.get_secret_value()
    with resync_or_hand_over(state_url, resources, confirm=confirm, restart=restart) as handed:
        if handed is not None:
            click.echo(
                f"resync request {handed.request_id} handed to the running daemon "
                f"({handed.daemon}); it starts within a few seconds. Follow it in the daemon's "
                "log or with `cdc-sync status`."
            )
        yield handed is not None


COMMANDS: list[click.Command] = [run]
