"""The read-only proof: cdc-sync reads the shop through a SELECT-only user, and its engine
cannot write even when the user could."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.demo.generate import generate
from cdc_sync.errors import SourceError
from cdc_sync.mapping.loader import load_mapping
from cdc_sync.source import ShopSource, connect_shop

DEMO_MAPPING = Path(__file__).resolve().parent.parent / "mappings.yaml"
WRITE = "UPDATE orders SET status = 4 WHERE id = 1"


def seed(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        generate(engine, customers=6, categories=2, products=5, orders=12)
    finally:
        engine.dispose()


def read_everything(url: str) -> int:
    engine = connect_shop(url)
    try:
        source = ShopSource(engine, load_mapping(DEMO_MAPPING))
        assert source.check() == []
        return sum(1 for r in Resource for _ in source.records(r))
    finally:
        engine.dispose()


def assert_cannot_write(url: str, message: str, *, plain: bool = False) -> None:
    """A write fails: through connect_shop, or (plain) through an ordinary engine."""
    engine = sa.create_engine(url) if plain else connect_shop(url)
    try:
        with pytest.raises(sa.exc.DBAPIError, match=message), engine.begin() as conn:
            conn.execute(sa.text(WRITE))
    finally:
        engine.dispose()


def unique(prefix: str) -> tuple[str, str]:
    token = uuid.uuid4().hex[:10]
    return f"{prefix}_{token}", f"pw-{token}"


@contextmanager
def select_only_user(url: str, creates: tuple[str, ...], drops: tuple[str, ...]) -> Iterator[str]:
    """A fresh user on the seeded demo shop at `url`, made by `creates` and dropped by `drops`
    (their {user}, {password} and {database} filled in): its URL."""
    seed(url)
    user, password = unique("cdc_ro")
    names = {"user": user, "password": password, "database": sa.make_url(url).database}
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for create in creates:
            conn.execute(sa.text(create.format(**names)))
    try:
        yield sa.make_url(url).set(username=user, password=password).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            for drop in drops:
                conn.execute(sa.text(drop.format(**names)))
        admin.dispose()


@pytest.fixture
def pg_reader(pg_url: str) -> Iterator[str]:
    """A SELECT-only PostgreSQL user on a seeded demo shop (dropped after)."""
    with select_only_user(pg_url, ("CREATE ROLE {user} LOGIN PASSWORD '{password}'",
                                   "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {user}"),
                          ("DROP OWNED BY {user}", "DROP ROLE {user}")) as url:
        yield url


@pytest.fixture
def mariadb_reader(mysql_url: str) -> Iterator[str]:
    """A SELECT-only MariaDB user on a seeded demo shop (dropped after)."""
    with select_only_user(mysql_url, ("CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'",
                                      "GRANT SELECT ON `{database}`.* TO '{user}'@'%'"),
                          ("DROP USER '{user}'@'%'",)) as url:
        yield url


def test_postgresql_select_only_user_can_check_and_read_all(pg_url: str, pg_reader: str) -> None:
    assert read_everything(pg_reader) > 12
    assert_cannot_write(pg_reader, "permission denied", plain=True)  # the user is SELECT-only
    assert_cannot_write(pg_reader, "read-only transaction")
    # Even the owner cannot write through connect_shop: its sessions are read-only.
    assert_cannot_write(pg_url, "read-only transaction")


def test_mariadb_select_only_user_can_check_and_read_all(mysql_url: str,
                                                         mariadb_reader: str) -> None:
    assert read_everything(mariadb_reader) > 12
    assert_cannot_write(mariadb_reader, "command denied", plain=True)
    assert_cannot_write(mariadb_reader, "READ ONLY transaction|command denied")
    assert_cannot_write(mysql_url, "READ ONLY transaction")


def test_sqlite_is_opened_read_only(sqlite_url: str) -> None:
    seed(sqlite_url)
    assert read_everything(sqlite_url) > 12
    assert_cannot_write(sqlite_url, "readonly database")


def test_a_missing_sqlite_file_is_named_with_its_full_path(tmp_path: Path) -> None:
    # sqlite3 alone says "unable to open database file", naming no file.
    missing = tmp_path / "shop.sqlite"
    with pytest.raises(SourceError) as raised:
        connect_shop(f"sqlite:///{missing}")
    assert f"the SQLite file {missing} does not exist" in str(raised.value)
    assert "fix: " in str(raised.value)
    assert not missing.exists()


def test_a_failed_read_names_the_resource_but_never_the_password(pg_reader: str) -> None:
    password = sa.make_url(pg_reader).password
    assert password
    missing = sa.make_url(pg_reader).set(database="no_such_shop_db").render_as_string(
        hide_password=False)
    engine = connect_shop(missing)
    try:
        with pytest.raises(SourceError) as raised:
            list(ShopSource(engine, load_mapping(DEMO_MAPPING)).records(Resource.ORDERS))
    finally:
        engine.dispose()
    assert "no_such_shop_db" in str(raised.value)
    assert re.search("fix:", str(raised.value))
    assert password not in str(raised.value)
