"""The Alembic migrations and cdc_sync.state.tables describe the same schema, on both backends."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner

from cdc_sync.cli.db_cmds import db
from cdc_sync.state import migrate
from cdc_sync.state.engine import create_state_engine
from cdc_sync.state.tables import metadata


def _differences(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def test_migrated_database_matches_the_table_definitions(state_url: str) -> None:
    engine = create_state_engine(state_url)
    try:
        migrate.upgrade(engine)
        assert _differences(engine) == []
    finally:
        engine.dispose()


def test_comparison_notices_a_schema_that_drifted(state_url: str) -> None:
    engine = create_state_engine(state_url)
    try:
        migrate.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX ix_sync_state_resource_status"))
        assert _differences(engine) != []
    finally:
        engine.dispose()


def test_upgrade_twice_is_harmless_and_current_is_head(state_url: str) -> None:
    engine = create_state_engine(state_url)
    try:
        assert migrate.current(engine) is None
        migrate.upgrade(engine)
        migrate.upgrade(engine)
        assert migrate.current(engine) == migrate.head()
        assert set(sa.inspect(engine).get_table_names()) >= {
            "sync_state", "runs", "meta", "resync_requests", "alembic_version"
        }
    finally:
        engine.dispose()


def test_head_is_the_newest_revision_file() -> None:
    versions = Path(migrate.__file__).resolve().parents[2] / "migrations" / "versions"
    newest = max(p.name.split("_")[0] for p in versions.glob("0*.py"))
    assert migrate.head() == newest


def test_db_cli_upgrades_then_reports_newest(state_url: str) -> None:
    runner = CliRunner()
    before = runner.invoke(db, ["current", "--state-url", state_url])
    assert before.exit_code == 0, before.output
    assert "no tables yet" in before.output

    result = runner.invoke(db, ["upgrade", "--state-url", state_url])
    assert result.exit_code == 0, result.output
    assert f"revision {migrate.head()} (newest)" in result.output

    after = runner.invoke(db, ["current", "--state-url", state_url])
    assert f"revision {migrate.head()} (newest)" in after.output


def test_processes_upgrading_at_once_do_not_collide(state_url: str) -> None:
    engines = [create_state_engine(state_url) for _ in range(3)]
    failures: list[BaseException] = []

    def run(engine: sa.Engine) -> None:
        try:
            migrate.upgrade(engine)
        except BaseException as exc:  # collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert migrate.current(engines[0]) == migrate.head()
    finally:
        for engine in engines:
            engine.dispose()


def test_state_rows_refuse_an_unknown_status(state_url: str) -> None:
    engine = create_state_engine(state_url)
    try:
        migrate.upgrade(engine)
        row = sa.text(
            "INSERT INTO sync_state (resource, key, status, tags, forced, attempts, updated_at)"
            " VALUES ('orders', 'o1', 'lost', '[]', false, 0, CURRENT_TIMESTAMP)"
        )
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(row)
    finally:
        engine.dispose()
