"""`cdc-sync sandbox`: run the strict local stand-in for Metrilo in the foreground."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import click

from cdc_sync.cli.common import setup_logging
from cdc_sync.sandbox import Sandbox
from cdc_sync.settings import load_settings

DEFAULT_TOKEN = "sandbox-token"  # noqa: S105 - a published default, like the secret
DEFAULT_SECRET = "sandbox-secret"  # noqa: S105 - a published default for a local test double
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but localhost exposes every record the "
                   "sandbox holds to the network (a warning is printed).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free one.")
@click.option("--store", "store", type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite file to keep records in, so a restarted sandbox still holds them "
                   "[default: a temporary database, gone on exit].")
def sandbox(host: str, port: int, store: Path | None) -> None:
    """Run a strict local stand-in for Metrilo's v2 API, until Ctrl-C.

    It checks what Metrilo checks (paths, 5 MB limit, X-Digest, token, every record against
    the contract), answers with Metrilo's status codes, keeps the latest version of every
    record with Metrilo's merge rules, and flags orders Metrilo would silently drop. Point
    cdc-sync at it with METRILO_API_URL (printed on start).

    The token and secret come from METRILO_API_TOKEN and METRILO_API_SECRET (or
    METRILO_API_SECRET_FILE), never from a flag; unset, they default to "sandbox-token" and
    "sandbox-secret". Inspect it at / (an HTML page), /_sandbox/summary and
    /_sandbox/records/<resource>[/<id>]; inject faults with POST /_sandbox/faults, e.g.
    {"error_rate": 0.1, "throttle_rate": 0.05, "retry_after": 1, "drop_rate": 0.01,
    "delay_rate": 0.1, "delay": 2, "limit": null, "paths": ["order/batch"], "seed": 0};
    POST /_sandbox/reset forgets everything.
    """
    setup_logging()
    settings = load_settings()
    token = settings.metrilo_api_token or DEFAULT_TOKEN
    configured_secret = settings.secret()
    secret = configured_secret or DEFAULT_SECRET
    if not settings.metrilo_api_token:
        click.echo(f"note: METRILO_API_TOKEN is not set; the sandbox expects {DEFAULT_TOKEN!r}")
    if not configured_secret:
        click.echo("note: METRILO_API_SECRET is not set; the sandbox checks X-Digest with "
                   f"{DEFAULT_SECRET!r}")
    if host not in LOCAL_HOSTS and not host.startswith("127."):
        click.echo(f"warning: listening on {host}: other machines can send to this sandbox and "
                   "read every record it holds, without authentication", err=True)
    running = Sandbox(token=token, secret=secret, host=host, port=port, store_path=store).start()
    click.echo(f"sandbox listening; use METRILO_API_URL={running.url}")
    click.echo(f"status page: {running.base}/   (Ctrl-C to stop)")
    # `docker stop` and service managers stop cleanly; SIGINT explicitly too: a process started
    # in the background by a non-interactive shell inherits SIGINT ignored, and Python then
    # leaves it ignored (Ctrl-C or `kill -INT` would do nothing).
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _interrupt)
    running.serve_forever()
    kept = f"records kept in {store}" if store else "records discarded"
    click.echo(f"sandbox stopped; {kept}")


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


COMMANDS: list[click.Command] = [sandbox]
