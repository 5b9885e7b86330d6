"""`cdc-sync db upgrade` and `cdc-sync db current`: the state DB's schema revision."""

from __future__ import annotations

from typing import Any

import click

from cdc_sync.cli.common import settings_from, settings_options
from cdc_sync.settings import redact_url
from cdc_sync.state import migrate
from cdc_sync.state.engine import create_state_engine


@click.group()
def db() -> None:
    """Create or update the state DB's tables (the daemon also does this when it starts)."""


@db.command()
@settings_options
def upgrade(**kwargs: Any) -> None:
    """Bring the state DB to the newest schema revision; safe to run again."""
    url = settings_from(kwargs).state_url.get_secret_value()
    engine = create_state_engine(url)
    try:
        migrate.upgrade(engine)
        revision = migrate.current(engine)
    finally:
        engine.dispose()
    click.echo(f"state DB {redact_url(url)} is at revision {revision} (newest)")


@db.command()
@settings_options
def current(**kwargs: Any) -> None:
    """Show the state DB's schema revision and whether it is the newest this version knows."""
    url = settings_from(kwargs).state_url.get_secret_value()
    engine = create_state_engine(url)
    try:
        revision = migrate.current(engine)
    finally:
        engine.dispose()
    newest = migrate.head()
    if revision is None:
        click.echo(f"state DB {redact_url(url)} has no tables yet; run `cdc-sync db upgrade`")
    elif revision == newest:
        click.echo(f"state DB {redact_url(url)} is at revision {revision} (newest)")
    else:
        click.echo(
            f"state DB {redact_url(url)} is at revision {revision}; newest is {newest}: "
            "run `cdc-sync db upgrade`"
        )


COMMANDS: list[click.Command] = [db]
