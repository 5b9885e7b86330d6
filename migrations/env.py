"""Alembic environment for the state DB.

Two ways in: cdc_sync.state.migrate passes an open connection in
`config.attributes["connection"]`; the alembic CLI (alembic.ini at the repository root) gets
the URL from CDC_SYNC_STATE_URL / .env, falling back to alembic.ini's sqlalchemy.url.
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from alembic.autogenerate.api import AutogenContext

from cdc_sync.state.tables import UtcDateTime, metadata

config = context.config
if config.config_file_name is not None:  # the alembic CLI; cdc-sync sets up its own logging
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _render_item(type_: str, obj: Any, _autogen_context: AutogenContext) -> str | Literal[False]:
    # Migrations stay free of package imports: UtcDateTime is a DateTime(timezone=True) column.
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=_render_item,
        compare_type=True,
    )


def _cli_url() -> str:
    from cdc_sync.settings import load_settings

    configured = load_settings().state_url.get_secret_value()
    return configured or str(config.get_main_option("sqlalchemy.url"))


def run_offline() -> None:
    context.configure(
        url=_cli_url(),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _configure(given)
        with context.begin_transaction():
            context.run_migrations()
        return
    from cdc_sync.state.engine import create_state_engine

    engine = create_state_engine(_cli_url())
    try:
        with engine.begin() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
