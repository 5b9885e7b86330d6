"""Bad shop data is rejected record by record, with its reason; the cycle and the rest go on.

Every case runs a real cycle (cdc_sync.app.open_engine) from a small shop on SQLite,
PostgreSQL and MariaDB into the sandbox. Each database holds only what it can hold:
PostgreSQL text cannot contain NUL or invalid UTF-8, MariaDB's utf8mb4 text cannot contain
invalid UTF-8 and its DOUBLE cannot hold NaN or infinity, SQLite stores NaN as NULL. Invalid
UTF-8 is therefore covered on every database through a binary column, and additionally in a
SQLite TEXT column.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from cdc_sync.app import open_engine
from cdc_sync.core.coerce import to_text
from cdc_sync.core.compose import coerce
from cdc_sync.core.report import CycleReport
from cdc_sync.core.resources import Resource
from cdc_sync.core.validate import validate
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.errors import CoercionError
from cdc_sync.mapping.model import Coercion, FieldSpec
from cdc_sync.sandbox import Sandbox
from cdc_sync.settings import load_settings
from cdc_sync.source import connect_shop

TOKEN, SECRET = "bad-data-token", "bad-data-secret"
GOOD_DAY = datetime(2024, 3, 1, 12, 0, 0)
FIVE_MB = 5_000_000

MAPPING = """
    customers:
      table: people
      fields:
        email: email
        createdAt: joined
        firstName: first_name
        lastName: {column: raw_name, type: string}
    products:
      table: goods
      fields:
        id: id
        name: name
        price: price
"""

metadata = sa.MetaData()
people = sa.Table(
    "people", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String(255)),
    sa.Column("first_name", sa.String(100)),
    sa.Column("joined", sa.DateTime),
    sa.Column("raw_name", sa.LargeBinary),
)
goods = sa.Table(
    "goods", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    # LONGTEXT on MariaDB so one name can exceed Metrilo's 5 MB request limit
    sa.Column("name", sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")),
    sa.Column("price", sa.Double),  # FLOAT would be single precision on MariaDB
)


def backend(url: str) -> str:
    """sqlite, postgresql or mariadb (the fixtures' MariaDB URLs say mysql)."""
    name = sa.make_url(url).get_backend_name()
    return "mariadb" if name == "mysql" else name


@dataclass
class Shop:
    """A small shop: customers 1 and 3, products 1 and 3 are good; tests add a bad 2."""

    url: str
    writer: sa.Engine
    path: Path

    @property
    def kind(self) -> str:
        return backend(self.url)

    def add_person(self, **values: Any) -> None:
        row = {"id": 2, "email": "two@example.com", "first_name": "Two", "joined": GOOD_DAY,
               "raw_name": None} | values
        with self.writer.begin() as conn:
            conn.execute(people.insert(), [row])

    def add_good(self, **values: Any) -> None:
        row = {"id": 2, "name": "Two", "price": 2.5} | values
        with self.writer.begin() as conn:
            conn.execute(goods.insert(), [row])

    def execute(self, sql: str) -> None:
        with self.writer.begin() as conn:
            conn.execute(sa.text(sql))


@contextmanager
def open_shop(url: str, path: Path) -> Iterator[Shop]:
    """The small shop created in the empty database at `url`."""
    writer = sa.create_engine(url)
    metadata.create_all(writer)
    with writer.begin() as conn:
        conn.execute(people.insert(), [
            {"id": i, "email": f"p{i}@example.com", "first_name": f"P{i}", "joined": GOOD_DAY,
             "raw_name": None} for i in (1, 3)
        ])
        conn.execute(goods.insert(), [{"id": i, "name": f"G{i}", "price": 9.5} for i in (1, 3)])
    try:
        yield Shop(url, writer, path)
    finally:
        writer.dispose()


@pytest.fixture
def shop(shop_url: str, tmp_path: Path) -> Iterator[Shop]:
    """The small shop, once per backend."""
    with open_shop(shop_url, tmp_path) as opened:
        yield opened


@pytest.fixture
def sqlite_shop(sqlite_url: str, tmp_path: Path) -> Iterator[Shop]:
    with open_shop(sqlite_url, tmp_path) as opened:
        yield opened


@pytest.fixture
def pg_shop(pg_url: str, tmp_path: Path) -> Iterator[Shop]:
    with open_shop(pg_url, tmp_path) as opened:
        yield opened


@pytest.fixture
def mariadb_shop(mysql_url: str, tmp_path: Path) -> Iterator[Shop]:
    with open_shop(mysql_url, tmp_path) as opened:
        yield opened


@dataclass
class Cycle:
    """What one cycle did: its report, the rejected keys with reasons, what Metrilo got."""

    report: CycleReport
    rejected: dict[str, dict[str, str]]
    arrived: dict[str, set[str]]

    def reason(self, resource: str, key: str) -> str:
        found = self.rejected[resource].get(key)
        assert found is not None, f"{resource} {key} was not rejected: {self.rejected}"
        return found


def sync_once(shop: Shop, mapping: str = MAPPING) -> Cycle:
    """One real cycle into a sandbox; the state DB is a file beside the shop."""
    mapping_file = shop.path / "mappings.yaml"
    mapping_file.write_text(textwrap.dedent(mapping), encoding="utf-8")
    with Sandbox(token=TOKEN, secret=SECRET) as sandbox:
        settings = load_settings(
            {"source_url": shop.url, "state_url": f"sqlite:///{shop.path}/state.sqlite",
             "mappings": mapping_file, "metrilo_api_url": sandbox.url,
             "metrilo_api_token": TOKEN, "metrilo_api_secret": SECRET,
             "max_attempts": 1},
            _env_file=None,
        )
        with open_engine(settings) as engine:
            report = engine.run(CycleOptions())
            rejected = {
                r.value: {row.key: row.last_error or "" for row in engine.state.rejected(r.value)}
                for r in (Resource.CUSTOMERS, Resource.PRODUCTS)
            }
        arrived = {name: set(sandbox.store.records(name)) for name in ("customers", "products")}
    return Cycle(report, rejected, arrived)


def assert_only_the_bad_one_held_back(cycle: Cycle, resource: str) -> str:
    """The cycle finished cleanly, everything else arrived, and key 2 was rejected: its reason."""
    assert cycle.report.ok, cycle.report.errors()
    good_ids = {"1", "3"}
    if resource == "customers":
        assert cycle.arrived["customers"] == {"p1@example.com", "p3@example.com"}
        assert cycle.arrived["products"] == {"1", "3"}
    else:
        assert cycle.arrived["products"] == good_ids
        assert len(cycle.arrived["customers"]) == 2
    assert set(cycle.rejected[resource]) == {"2"}
    return cycle.reason(resource, "2")


# --- emails and required fields -------------------------------------------------------------


def test_null_email_rejects_that_customer_only(shop: Shop) -> None:
    shop.add_person(email=None)
    reason = assert_only_the_bad_one_held_back(sync_once(shop), "customers")
    assert "email: is required" in reason


@pytest.mark.parametrize("email", ["not-an-email", "two @example.com"])
def test_invalid_email_rejects_that_customer_only(shop: Shop, email: str) -> None:
    shop.add_person(email=email)
    reason = assert_only_the_bad_one_held_back(sync_once(shop), "customers")
    assert "email: does not look like an email address" in reason


def test_null_required_field_rejects_that_record_only(shop: Shop) -> None:
    shop.add_person(joined=None)
    shop.add_good(id=2, name=None)
    cycle = sync_once(shop)
    assert "createdAt: is required" in assert_only_the_bad_one_held_back(cycle, "customers")
    assert "name: is required" in assert_only_the_bad_one_held_back(cycle, "products")


# --- text: invalid UTF-8, control characters --------------------------------------------------


def test_non_utf8_bytes_in_a_binary_column_reject_that_record_only(shop: Shop) -> None:
    shop.add_person(raw_name=b"Caf\xe9 \xff")
    reason = assert_only_the_bad_one_held_back(sync_once(shop), "customers")
    assert "lastName" in reason
    assert "not valid UTF-8" in reason


def test_non_utf8_bytes_in_a_sqlite_text_column_reject_that_record_only(
    sqlite_shop: Shop,
) -> None:
    shop = sqlite_shop
    shop.add_person()
    shop.execute("UPDATE people SET first_name = CAST(X'436166E9' AS TEXT) WHERE id = 2")
    reason = assert_only_the_bad_one_held_back(sync_once(shop), "customers")
    assert "firstName" in reason
    assert "not valid UTF-8" in reason


@pytest.mark.parametrize("text", ["Esc\x1b[31m", "C1\x85"])
def test_control_characters_reject_that_record_only(shop: Shop, text: str) -> None:
    shop.add_person(first_name=text)
    reason = assert_only_the_bad_one_held_back(sync_once(shop), "customers")
    assert "firstName: contains the control character" in reason


def test_nul_character_rejects_that_record_only(shop: Shop) -> None:
    if shop.kind == "postgresql":
        pytest.skip("PostgreSQL text cannot hold NUL (0x00) at all")
    shop.add_good(name="Nul\x00byte")
    reason = assert_only_the_bad_one_held_back(sync_once(shop), "products")
    assert "name: contains the control character U+0000" in reason


def test_tab_and_newlines_are_fine(shop: Shop) -> None:
    shop.add_person(first_name="Two\tlines\r\nhere")
    cycle = sync_once(shop)
    assert cycle.report.ok
    assert cycle.rejected["customers"] == {}
    assert "two@example.com" in cycle.arrived["customers"]


# --- numbers: NaN, infinity, huge ---------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_reject_that_product_only(shop: Shop, value: float) -> None:
    if shop.kind == "mariadb":
        pytest.skip("MariaDB's DOUBLE cannot hold NaN or infinity")
    if shop.kind == "sqlite" and value != value:
        pytest.skip("SQLite stores NaN as NULL")
    shop.add_good(price=value)
    reason = assert_only_the_bad_one_held_back(sync_once(shop), "products")
    assert "price: value" in reason
    assert "is not a finite number" in reason


@pytest.mark.parametrize("value", [-1e300, 1e13])
def test_huge_numbers_reject_that_product_only(shop: Shop, value: float) -> None:
    shop.add_good(price=value)
    reason = assert_only_the_bad_one_held_back(sync_once(shop), "products")
    assert "price: is absurdly large" in reason


@pytest.mark.parametrize("text", ["1e5000", "-1e5000", "9" * 5000])
def test_numbers_too_long_to_print_are_a_coercion_problem_not_a_crash(text: str) -> None:
    # Python refuses to turn ints of more than 4300 digits into text: such a value must
    # become a reason, never an exception escaping the cycle (fingerprints print numbers).
    spec = FieldSpec(column="c")
    for coercion in (Coercion.NUMBER, Coercion.INTEGER, Coercion.TIMESTAMP):
        with pytest.raises(CoercionError, match="out of range"):
            coerce(text, coercion, spec, UTC)
        with pytest.raises(CoercionError, match="out of range"):
            coerce(Decimal(text), coercion, spec, UTC)


def test_huge_decimals_print_as_text_without_crashing() -> None:
    assert to_text(Decimal("1e5000")) == "1" + "0" * 5000
    assert to_text(Decimal("-12.50")) == "-12.5"
    assert to_text(Decimal("-0.00")) == "0"


def test_validation_reasons_never_print_a_giant_integer() -> None:
    giant = 10**5000
    reasons = validate("product", {"id": "1", "name": "n", "price": giant})
    assert reasons
    assert "absurdly large" in reasons[0]
    assert len(reasons[0]) < 300
    reasons = validate("customer", {"email": "a@b.co", "createdAt": giant})
    assert reasons
    assert "far in the future" in reasons[0]
    assert len(reasons[0]) < 300


@pytest.mark.parametrize("value", [b"\x00", Decimal("1.5"), datetime(2024, 1, 1), float("nan"),
                                   {"nested": [1, float("inf")]}, {1: "int key"}])
def test_json_type_accepts_only_json_values(value: Any) -> None:
    with pytest.raises(CoercionError, match="is not a JSON value"):
        coerce(value, Coercion.JSON, FieldSpec(column="c", type=Coercion.JSON), UTC)


def test_json_type_passes_json_values_through() -> None:
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": False}}
    assert coerce(value, Coercion.JSON, FieldSpec(column="c", type=Coercion.JSON), UTC) == value


# --- dates: before 1970, far in the future, unreadable ------------------------------------------


@pytest.mark.parametrize(("joined", "words"), [
    (datetime(1960, 5, 1), "is before 1970"),
    (datetime(1985, 5, 1), "is before 1990-01-01"),
    (datetime(9999, 12, 31, 23, 59, 59), "is after 2100-01-01"),
])
def test_implausible_dates_reject_that_customer_only(shop: Shop, joined: datetime,
                                                     words: str) -> None:
    shop.add_person(joined=joined)
    reason = assert_only_the_bad_one_held_back(sync_once(shop), "customers")
    assert f"createdAt: {words}" in reason


def test_mariadb_zero_date_rejects_that_customer_only(mariadb_shop: Shop) -> None:
    shop = mariadb_shop
    shop.add_person()
    # Strict modes refuse zero dates; legacy shops ran without them and still hold some.
    with shop.writer.begin() as conn:
        conn.execute(sa.text("SET SESSION sql_mode = ''"))
        conn.execute(sa.text("UPDATE people SET joined = '0000-00-00 00:00:00' WHERE id = 2"))
    reason = assert_only_the_bad_one_held_back(sync_once(shop), "customers")
    assert "createdAt: value '0000-00-00 00:00:00' is not a timestamp" in reason


def test_mysqlclient_reads_a_zero_date_as_pymysql_does(mysql_url: str, tmp_path: Path) -> None:
    pytest.importorskip("MySQLdb", reason="mysqlclient is optional: pip install '.[mysqlclient]'")
    url = sa.make_url(mysql_url).set(drivername="mysql+mysqldb")
    with open_shop(url.render_as_string(hide_password=False), tmp_path) as shop:
        shop.add_person()
        with shop.writer.begin() as conn:
            conn.execute(sa.text("SET SESSION sql_mode = ''"))
            conn.execute(sa.text("UPDATE people SET joined = '0000-00-00 00:00:00' WHERE id = 2"))
        reason = assert_only_the_bad_one_held_back(sync_once(shop), "customers")
    assert "createdAt: value '0000-00-00 00:00:00' is not a timestamp" in reason


def test_postgresql_infinite_timestamp_rejects_that_customer_only(pg_shop: Shop) -> None:
    shop = pg_shop
    shop.add_person()
    shop.execute("UPDATE people SET joined = 'infinity' WHERE id = 2")
    reason = assert_only_the_bad_one_held_back(sync_once(shop), "customers")
    assert "createdAt" in reason


def test_postgresql_dates_load_as_python_values_or_as_their_text(pg_url: str) -> None:
    # Every date type the lenient loaders cover, read through the shop engine: a value Python
    # can hold comes back as psycopg loads it, one it cannot as the text PostgreSQL sent.
    engine = connect_shop(pg_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SET TIME ZONE 'UTC'"))
            row = conn.execute(sa.text(
                "SELECT DATE '2024-02-29', DATE 'infinity', DATE '12024-01-01', "
                "TIMESTAMP '2024-05-30 16:46:22.5', TIMESTAMP '-infinity', "
                "TIMESTAMPTZ '2024-05-30 16:46:22+02', TIMESTAMPTZ 'infinity'")).one()
    finally:
        engine.dispose()
    assert tuple(row) == (
        date(2024, 2, 29), "infinity", "12024-01-01",
        datetime(2024, 5, 30, 16, 46, 22, 500000), "-infinity",
        datetime(2024, 5, 30, 14, 46, 22, tzinfo=UTC), "infinity",
    )


def test_sqlite_unparseable_datetime_text_rejects_that_customer_only(sqlite_shop: Shop) -> None:
    shop = sqlite_shop
    shop.add_person()
    shop.execute("UPDATE people SET joined = '0000-00-00 00:00:00' WHERE id = 2")
    reason = assert_only_the_bad_one_held_back(sync_once(shop), "customers")
    assert "createdAt" in reason
    assert "not a timestamp" in reason


# --- keys and sizes ------------------------------------------------------------------------------

DUPLICATING = """
    customers:
      query: >-
        SELECT id, email, first_name, joined, raw_name FROM people
        UNION ALL SELECT id, 'again@example.com', first_name, joined, raw_name FROM people
        WHERE id = 2
      key: id
      fields:
        email: email
        createdAt: joined
        firstName: first_name
    products:
      table: goods
      fields: {id: id, name: name, price: price}
"""


def test_duplicate_keys_from_a_query_reject_that_key_only(shop: Shop) -> None:
    shop.add_person()
    cycle = sync_once(shop, DUPLICATING)
    assert cycle.report.ok, cycle.report.errors()
    # Neither row of the repeated key is sent: which one is right is anybody's guess.
    assert cycle.arrived["customers"] == {"p1@example.com", "p3@example.com"}
    assert "duplicate key" in cycle.reason("customers", "2")
    assert cycle.arrived["products"] == {"1", "3"}


def test_record_over_5_mb_rejects_that_product_only(shop: Shop) -> None:
    shop.add_good(name="x" * (FIVE_MB + 1000))
    reason = assert_only_the_bad_one_held_back(sync_once(shop), "products")
    assert "over Metrilo's 5,000,000-byte limit" in reason


# --- every kind at once, and where a user sees them -------------------------------------------


def test_status_and_rejected_show_each_bad_record_with_its_reason(sqlite_shop: Shop) -> None:
    shop, tmp_path = sqlite_shop, sqlite_shop.path
    shop.add_person(email=None)
    shop.add_good(price=float("inf"))
    cycle = sync_once(shop)
    assert cycle.report.ok
    env = {"CDC_SYNC_STATE_URL": f"sqlite:///{tmp_path}/state.sqlite", "PATH": "/usr/bin:/bin"}
    status = _cli(["status"], env, tmp_path)
    assert "rejected 1x: email: is required (customer)" in status
    assert "rejected 1x: price: value inf is not a finite number" in status
    customers = _cli(["rejected", "customers"], env, tmp_path)
    assert re.search(r"^2\t.*\temail: is required \(customer\)$", customers, re.MULTILINE)
    products = _json_lines(_cli(["rejected", "products", "--json"], env, tmp_path))
    assert [p["key"] for p in products] == ["2"]
    assert products[0]["reason"].startswith("price: value inf is not a finite number")


def test_a_bad_record_fixed_in_the_shop_is_sent_next_cycle(shop: Shop) -> None:
    shop.add_person(email="broken")
    assert "email" in sync_once(shop).reason("customers", "2")
    shop.execute("UPDATE people SET email = 'two@example.com' WHERE id = 2")
    cycle = sync_once(shop)
    assert cycle.rejected["customers"] == {}
    assert "two@example.com" in cycle.arrived["customers"]


# --- helpers -------------------------------------------------------------------------------------


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _cli(args: list[str], env: Mapping[str, str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "cdc_sync", *args], env=dict(env), cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout
