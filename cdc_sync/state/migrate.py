"""Alembic, driven from code: bring a state DB to the latest schema, or ask where it stands.

The scripts ship inside the package as `cdc_sync.migrations` (migrations/ in the repository),
so this works from an installed wheel as well as from a checkout.
"""

from __future__ import annotations

from importlib.resources import files

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from cdc_sync.state.engine import state_errors

# Any constant works; it only has to be the same for every cdc-sync process.
_PG_MIGRATION_LOCK = 0x0CDC5_7A7E


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    # Installed packages are directories on disk (wheels are unpacked), which Alembic needs.
    config.set_main_option("script_location", str(files("cdc_sync.migrations")))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision the installed cdc-sync knows."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None, "cdc_sync.migrations has no revisions"
    return revision


def current(engine: sa.Engine) -> str | None:
    """The revision the state DB is at, or None when it was never migrated."""
    with state_errors(engine.url, "read the schema revision"), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine) -> None:
    """Migrate the state DB to the newest revision; a no-op when it is already there."""
    with state_errors(engine.url, "migrate the state tables"), engine.begin() as conn:
        _serialize_migrations(conn)
        command.upgrade(_config(conn), "head")


def _serialize_migrations(conn: sa.Connection) -> None:
    # Two processes starting at once (daemon and CLI) must not both create the tables: the
    # second waits for the first's transaction, then finds the schema at head.
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    elif conn.dialect.name == "sqlite":
        # sqlite3 would start the transaction only at the first INSERT, after the DDL; taking
        # the write lock first makes the whole migration one atomic, serialized transaction.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
