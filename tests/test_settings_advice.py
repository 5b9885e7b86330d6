"""Settings as users give them: the URLs hosting providers hand out work, and every bad value of
every setting ends in a clean error naming the setting, with a fix line, never a traceback.
The advice for the usual mistakes (a missing state database, a wrong password, an unreachable
Metrilo) says what to do, and `run` and `sync` report the same problems."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from cdc_sync.daemon.settings import DaemonSettings
from cdc_sync.settings import Settings, usual_url
from helpers.cli import run_cli
from helpers.world import World
from helpers.worlds import world_fixture, world_on

world = world_fixture()


def _bare(url: str) -> str:
    """The URL as a hosting provider writes it: postgres://, mysql:// (no driver)."""
    parsed = sa.make_url(url)
    scheme = {"postgresql": "postgres", "mysql": "mysql"}[parsed.get_backend_name()]
    return f"{scheme}://" + url.split("://", 1)[1]


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_shop_url_without_a_driver_is_read(tmp_path: Path, request: pytest.FixtureRequest,
                                             backend: str) -> None:
    with world_on(request, tmp_path, backend, "sqlite") as world:
        bare = _bare(world.shop_url)
        checked = run_cli(world, "check", CDC_SYNC_SOURCE_URL=bare)
        assert checked.returncode == 0, checked.stderr
        synced = run_cli(world, "sync", CDC_SYNC_SOURCE_URL=bare)
        assert synced.returncode == 0, synced.stderr
        assert world.sandbox.store.counts()["orders"] > 0


def test_a_bare_mysql_url_reads_through_mysqlclient_when_it_is_installed() -> None:
    # The C driver halves the CPU of reading a MariaDB shop (bench/README.md); a URL that
    # names its driver keeps it.
    pytest.importorskip("MySQLdb", reason="mysqlclient is optional: pip install '.[mysqlclient]'")
    assert usual_url("mysql://reader:pw@db/shop") == "mysql+mysqldb://reader:pw@db/shop"
    assert usual_url("MariaDB://reader@db/shop") == "mariadb+mysqldb://reader@db/shop"
    assert usual_url("mysql+pymysql://reader@db/shop") == "mysql+pymysql://reader@db/shop"


def test_a_bare_mysql_url_reads_through_pymysql_without_mysqlclient() -> None:
    # A process where MySQLdb does not import, as where mysqlclient or its C library is not
    # installed: the bundled PyMySQL, as before.
    code = ("import sys; sys.modules['MySQLdb'] = None; "
            "from cdc_sync.settings import usual_url; "
            "print(usual_url('mysql://r@db/shop'), usual_url('mariadb://r@db/shop'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["mysql+pymysql://r@db/shop", "mariadb+pymysql://r@db/shop"]


def test_a_state_url_without_a_driver_is_used(tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    with world_on(request, tmp_path, "sqlite", "postgresql") as world:
        bare = _bare(world.state_url)
        synced = run_cli(world, "sync", CDC_SYNC_STATE_URL=bare)
        assert synced.returncode == 0, synced.stderr
        status = run_cli(world, "status", CDC_SYNC_STATE_URL=bare)
        assert status.returncode == 0, status.stderr
        assert "last cycle: #1 sync ok" in status.stdout


# Every setting with a bad value; `run` for the daemon's, `sync` for the rest.
_BAD_SETTINGS = [
    ("sync", "METRILO_API_TOKEN", ""),
    ("sync", "METRILO_API_SECRET", ""),
    ("sync", "METRILO_API_SECRET_FILE", "/nonexistent/secret"),
    ("sync", "METRILO_API_URL", "ftp://metrilo.example"),
    ("sync", "CDC_SYNC_SOURCE_URL", "oracle://reader:pw@db/shop"),
    ("sync", "CDC_SYNC_SOURCE_URL", "not a url"),
    ("sync", "CDC_SYNC_STATE_URL", "mysql://root@127.0.0.1/state"),
    ("sync", "CDC_SYNC_STATE_URL", "::"),
    ("sync", "CDC_SYNC_MAPPINGS", "."),
    ("sync", "CDC_SYNC_BATCH_SIZE", "0"),
    ("sync", "CDC_SYNC_CONCURRENCY", "many"),
    ("sync", "CDC_SYNC_HTTP_TIMEOUT", "-1"),
    ("sync", "CDC_SYNC_MAX_ATTEMPTS", "1.5"),
    ("sync", "CDC_SYNC_MAX_RETRY_SECONDS", "0"),
    ("sync", "CDC_SYNC_REJECTION_THRESHOLD", "-2"),
    ("sync", "CDC_SYNC_COMPOSE_WORKERS", "3"),
    ("sync", "CDC_SYNC_SOURCE_DIGESTS", "sometimes"),
    ("run", "CDC_SYNC_INTERVAL", "abc"),
    ("run", "CDC_SYNC_INTERVALS", "order=30"),
    ("run", "CDC_SYNC_BACKOFF_MAX", "0"),
    ("run", "CDC_SYNC_POLL_SECONDS", "600"),
    ("run", "CDC_SYNC_STANDBY_RETRY", "-1"),
    ("run", "CDC_SYNC_HTTP_PORT", "70000"),
    ("run", "CDC_SYNC_HTTP_HOST", ""),
    ("run", "CDC_SYNC_HEALTH_STALE_SECONDS", "soon"),
    ("run", "CDC_SYNC_WEBHOOK_URL", "ftp://hooks.example"),
    ("run", "CDC_SYNC_WEBHOOK_REJECTIONS", "0"),
    ("run", "CDC_SYNC_LOG_JSON", "maybe"),
    ("run", "CDC_SYNC_MAPPING_CHANGES", "later"),
    ("run", "CDC_SYNC_HEALTH_FAILS_ON_HOLD", "maybe"),
]


def test_the_bad_values_cover_every_setting() -> None:
    covered = {name for _, name, _ in _BAD_SETTINGS}
    fields = {**Settings.model_fields, **DaemonSettings.model_fields}
    assert {str(f.validation_alias) for f in fields.values()} <= covered


@pytest.mark.parametrize(("command", "name", "value"), _BAD_SETTINGS,
                         ids=[f"{n}={v!r}" for _, n, v in _BAD_SETTINGS])
def test_a_bad_setting_ends_in_a_clean_error_with_a_fix(world: World, command: str, name: str,
                                                        value: str) -> None:
    alone = {"METRILO_API_SECRET": ""} if name == "METRILO_API_SECRET_FILE" else {}
    result = run_cli(world, command, cwd=world.tmp, **{name: value, **alone})
    assert result.returncode == 2 or (name.endswith("_URL") and result.returncode == 1), (
        result.stderr)
    assert "Traceback" not in result.stderr
    assert name in result.stderr
    assert "fix: " in result.stderr
    if value and not name.startswith("METRILO_API") and not name.endswith("_URL"):
        assert value in result.stderr  # the value is echoed, unless it may hold a secret
    assert ":pw@" not in result.stderr


def _bare_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("METRILO_", "CDC_SYNC_"))}


def _problems(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("  - ")]


def test_run_and_sync_with_nothing_configured_report_the_same_problems(tmp_path: Path) -> None:
    def cdc_sync(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cdc_sync", *args], cwd=tmp_path,
                              env=_bare_env(), capture_output=True, text=True,
                              timeout=60, check=False)

    run, sync = cdc_sync("run"), cdc_sync("sync")
    assert run.returncode == sync.returncode == 2
    assert _problems(run) == _problems(sync)
    assert [p.split(":")[0] for p in _problems(run)] == [
        "  - CDC_SYNC_SOURCE_URL", "  - METRILO_API_TOKEN", "  - METRILO_API_SECRET",
        "  - mappings.yaml"]


def test_a_missing_postgres_state_database_says_how_to_create_it(world: World,
                                                                 pg_url: str) -> None:
    missing = sa.make_url(pg_url).set(database=f"{sa.make_url(pg_url).database}_nope")
    result = run_cli(world, "status",
                     CDC_SYNC_STATE_URL=missing.render_as_string(hide_password=False))
    assert result.returncode == 1
    assert "does not exist" in result.stderr
    assert "createdb" in result.stderr
    assert "CREATE DATABASE" in result.stderr
    assert "db upgrade" not in result.stderr


def test_a_wrong_shop_password_points_at_the_password(world: World, mysql_url: str) -> None:
    wrong = sa.make_url(mysql_url).set(password="not-the-password")
    result = run_cli(world, "check", CDC_SYNC_SOURCE_URL=wrong.render_as_string(
        hide_password=False))
    assert result.returncode == 1
    assert "Access denied" in result.stderr
    assert "password in CDC_SYNC_SOURCE_URL" in result.stderr
    assert "run `cdc-sync check`" not in result.stderr
    assert "not-the-password" not in result.stderr


def test_an_unreachable_metrilo_names_the_url_and_the_setting(world: World) -> None:
    closed = "http://127.0.0.1:9/v2"  # the discard port: nothing listens there
    result = run_cli(world, "sync", METRILO_API_URL=closed, CDC_SYNC_MAX_RETRY_SECONDS="0.5",
                     CDC_SYNC_MAX_ATTEMPTS="2")
    assert result.returncode == 1
    assert f"Metrilo at {closed} did not accept" in result.stderr
    assert "METRILO_API_URL" in result.stderr
