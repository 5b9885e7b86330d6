"""Shared fixtures: a fresh, uniquely named database per test on every backend.

PostgreSQL and MariaDB are the machine's real servers. Outside CI a missing server skips
its tests with the reason; in CI (env CI set) it fails them, so a green run means they ran.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from cdc_sync.state import StateStore, migrate
from cdc_sync.state.engine import create_state_engine

PG_ADMIN_URL = os.environ.get(
    "CDC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_ADMIN_URL = os.environ.get("CDC_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")

BACKENDS = ("sqlite", "postgresql", "mariadb")


def _unavailable(what: str, exc: Exception) -> None:
    reason = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI needs it: .ci/run starts it")
    pytest.skip(reason)


def _admin_engine(url: str, what: str) -> sa.Engine:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        _unavailable(what, exc)
    return engine


def _fresh_name() -> str:
    return f"cdc_t_{uuid.uuid4().hex[:12]}"


@contextmanager
def _scratch_database(admin_url: str, what: str, create: str, drop: str) -> Iterator[str]:
    """A new database made by `create` and dropped by `drop` ({name} filled in): its URL."""
    admin = _admin_engine(admin_url, what)
    name = _fresh_name()
    with admin.connect() as conn:
        conn.execute(sa.text(create.format(name=name)))
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(drop.format(name=name)))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a new, empty PostgreSQL database, dropped after the test."""
    with _scratch_database(PG_ADMIN_URL, "PostgreSQL at 127.0.0.1:5432",
                           'CREATE DATABASE "{name}"',
                           'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)') as url:
        yield url


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """URL of a new, empty MariaDB database, dropped after the test."""
    with _scratch_database(MYSQL_ADMIN_URL, "MariaDB at 127.0.0.1:3306",
                           "CREATE DATABASE `{name}` CHARACTER SET utf8mb4",
                           "DROP DATABASE IF EXISTS `{name}`") as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: pytest.TempPathFactory) -> str:
    """URL of a new SQLite file database."""
    return f"sqlite:///{tmp_path}/shop.sqlite"


@pytest.fixture(params=BACKENDS)
def shop_url(request: pytest.FixtureRequest) -> str:
    """A fresh empty database URL, once per backend (sqlite, postgresql, mariadb)."""
    fixture = {"sqlite": "sqlite_url", "postgresql": "pg_url", "mariadb": "mysql_url"}
    return str(request.getfixturevalue(fixture[request.param]))


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: pytest.TempPathFactory) -> str:
    """A fresh state DB URL: SQLite file (the default) and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.sqlite"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def engine(state_url: str) -> Iterator[sa.Engine]:
    """A migrated state DB's engine (SQLite and PostgreSQL), which the test can observe."""
    created = create_state_engine(state_url)
    migrate.upgrade(created)
    yield created
    created.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> Iterator[StateStore]:
    """A StateStore on `engine`."""
    with StateStore(engine) as handed_in:
        yield handed_in


@pytest.fixture(autouse=True)
def _no_daemon_left_behind() -> Iterator[None]:
    """A test that fails before stopping its `cdc-sync run` process must not leave it running
    (it would go on syncing into a world that is gone, and grow)."""
    yield
    outages = sys.modules.get("helpers.outages")
    if outages is not None:
        outages.kill_leftover_daemons()
