"""What every command shares: settings flags, the root-error guard, logging set-up."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from cdc_sync.core.catalogue import Catalogue
from cdc_sync.core.report import RunStatus
from cdc_sync.core.resources import Resource
from cdc_sync.daemon.settings import DaemonSettings, load_daemon_settings
from cdc_sync.errors import CdcSyncError, ConfigError, MappingError, Problem
from cdc_sync.mapping.loader import LoadedMapping, load_mapping
from cdc_sync.settings import Settings, load_settings, settings_and_problems

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES: dict[RunStatus, int] = {
    RunStatus.OK: 0,
    RunStatus.FAILED: 1,
    RunStatus.REJECTED: 5,
    RunStatus.INTERRUPTED: 6,
    RunStatus.RUNNING: 1,  # never the end of a run; here so every status has a code
}
"""The exit code of a cycle that ran to its end (or was stopped); errors that stop a command
before or during a cycle carry their own (`CdcSyncError.exit_code`). EXIT_HELP lists them all."""

EXIT_HELP = """\b
Exit codes:
  0    done; nothing (or fewer than CDC_SYNC_REJECTION_THRESHOLD records) rejected
  1    the cycle failed (shop, state DB or Metrilo unreachable): see the error
  2    a setting or mappings.yaml is wrong: every problem is listed with a fix
  3    Metrilo refused the token or secret (401/402/403)
  4    another cdc-sync process holds the state DB (a daemon is running)
  5    done, but at least CDC_SYNC_REJECTION_THRESHOLD records (default 1) were
       rejected: `cdc-sync status`, `cdc-sync rejected RESOURCE`
  6    interrupted (SIGTERM / Ctrl-C) before the end: the next cycle goes on
  130  a second Ctrl-C (143: SIGTERM) stopped it at once, or aborted at a prompt"""


def run_guarded(group: click.Group) -> int:
    """Run the click group; turn a CdcSyncError into a message and its exit code."""
    try:
        # Without standalone mode click returns the code of `raise Exit(code)` instead of exiting.
        code = group.main(standalone_mode=False)
    except CdcSyncError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    return code if isinstance(code, int) else 0


def settings_options(func: F) -> F:
    """Flags that override the environment; the secret deliberately has no flag."""
    options = [
        click.option("--mappings", "mappings", type=click.Path(path_type=Path),
                     help="Mapping file [env CDC_SYNC_MAPPINGS; default mappings.yaml]."),
        click.option("--source-url", "source_url",
                     help="SQLAlchemy URL of the shop DB [env CDC_SYNC_SOURCE_URL]. Prefer the "
                          "environment when the URL holds a password."),
        click.option("--state-url", "state_url",
                     help="SQLAlchemy URL of the state DB [env CDC_SYNC_STATE_URL; default "
                          "sqlite:///cdc-sync-state.sqlite]."),
        click.option("--api-url", "metrilo_api_url",
                     help="Metrilo API base URL [env METRILO_API_URL; default "
                          "https://trk.mtrl.me/v2]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


SETTING_FLAGS = ("mappings", "source_url", "state_url", "metrilo_api_url")


def settings_from(kwargs: dict[str, Any]) -> Settings:
    """Settings with the flags in `kwargs` applied (and removed from it)."""
    overrides = {name: kwargs.pop(name, None) for name in SETTING_FLAGS}
    return load_settings(overrides)


@dataclass(frozen=True)
class Configured:
    """What a command that reads the shop (and sends) needs, every piece checked."""

    settings: Settings
    mapping: LoadedMapping
    daemon: DaemonSettings | None = None


def configured(kwargs: dict[str, Any], *, send: bool,
               daemon_flags: Mapping[str, Any] | None = None,
               resources: Sequence[str] = ()) -> Configured:
    """Settings (flags in `kwargs` applied and removed from it), daemon settings when
    `daemon_flags` is given, and the mapping; one ConfigError listing every problem of all
    three, so `run`, `sync`, `retry` and `resync` report the same full set at once.
    `resources` named on the command line must be ones the mapping produces."""
    overrides = {name: kwargs.pop(name, None) for name in SETTING_FLAGS}
    settings, problems = settings_and_problems(overrides)
    daemon = None
    if daemon_flags is not None:
        try:
            daemon = load_daemon_settings(daemon_flags)
        except ConfigError as exc:
            problems += exc.problems
    required = ("source_url", *(("metrilo_api_token", "metrilo_api_secret") if send else ()))
    try:
        settings.require(*required)
    except ConfigError as exc:
        problems += exc.problems
    try:
        mapping = load_mapping(settings.mappings)
        problems += _unmapped(resources, mapping)
    except MappingError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return Configured(settings, mapping, daemon)


def _unmapped(names: Sequence[str], mapping: LoadedMapping) -> list[Problem]:
    """A problem for each named resource the mapping does not produce (a silent empty cycle
    would read as done)."""
    produced = Catalogue(mapping.spec).resources()
    known = ", ".join(r.value for r in produced)
    return [Problem(str(mapping.path), f"{name} is not mapped (or is disabled) in it",
                    f"map it (a {name}: block without enabled: false; docs/mappings.md), or "
                    f"name one of {known}")
            for name in dict.fromkeys(names) if Resource(name) not in produced]


class _LibraryErrorsInOneLine(logging.Filter):
    """A library's error as one line: its message and the exception's, no traceback.

    SQLAlchemy logs "Error closing cursor" with a traceback when the server has just killed
    the connection under a server-side cursor (an outage, a DBA's pg_terminate_backend); the
    cycle reports that failure itself, in one line with its fix, and a traceback in the log
    reads as a crash of cdc-sync. Our own records keep theirs (a real bug shows one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("sqlalchemy.") and record.exc_info:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def setup_logging(*, json_lines: bool = False, level: int = logging.INFO) -> None:
    """Readable log lines by default; JSON lines for log shippers."""
    handler = logging.StreamHandler()
    handler.addFilter(_LibraryErrorsInOneLine())
    if json_lines:
        from cdc_sync.logjson import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO; our own lines already say what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
