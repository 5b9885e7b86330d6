"""PyMySQL's DATETIME and TIMESTAMP values parsed in C (source/mysqltypes.py): every text gives
what PyMySQL's own parser gives, value and type, and a MariaDB shop reads the same values
through `connect_shop` as through PyMySQL's defaults."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from pymysql.converters import convert_datetime

from cdc_sync.source.connect import connect_shop
from cdc_sync.source.mysqltypes import parse_datetime

AWKWARD = [
    "2024-09-25 03:07:45",
    "2024-09-25 03:07:45.5",
    "2024-09-25 03:07:45.123",
    "2024-09-25 03:07:45.000001",
    "2024-09-25 03:07:45.",  # a dot without digits
    "2024-09-25 03:07:45.1234567",  # seven digits
    "2024-09-25T03:07:45",  # PyMySQL takes a T; MariaDB never writes one
    "2024-09-25x03:07:45",  # fromisoformat would take any separator
    "2024-W39-3 03:07:45",  # an ISO week date, as long as a DATETIME
    "2024-09-25 03:07:45+01",  # a time zone
    "2024-09-25 03:07:45.1+01",  # a fraction, then a time zone: fromisoformat reads both
    "2024-09-25 03:07:45.1²",  # a digit that is not a decimal digit
    "2024-09-25 03:07:45.١٢",  # Arabic-Indic digits: PyMySQL's \\d takes them
    "2024-09-25 03:07:45 ",
    "0000-00-00 00:00:00",  # a zero date: PyMySQL hands back the text
    "2024-00-10 00:00:00",
    "2024-02-31 10:00:00",  # an invalid day
    "2024-09-25 24:00:00",
    "2024-09-25 03:60:00",
    "2024-09-25",
    "9999-12-31 23:59:59.999999",
    "0001-01-01 00:00:00",
    "",
]


def _same(text: Any) -> None:
    expected = convert_datetime(text)
    got = parse_datetime(text)
    assert (type(got), got) == (type(expected), expected), text


@pytest.mark.parametrize("text", AWKWARD)
def test_awkward_texts_parse_as_pymysql_parses_them(text: str) -> None:
    _same(text)


def test_bytes_parse_as_pymysql_parses_them() -> None:
    _same(b"2024-09-25 03:07:45")


def test_random_datetimes_of_every_precision_parse_as_pymysql_parses_them() -> None:
    rng = random.Random(15)
    start = datetime(1000, 1, 1)
    for _ in range(5000):
        value = start + timedelta(microseconds=rng.randrange(9000 * 365 * 86400 * 10**6))
        digits = rng.randrange(7)
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        if digits:
            text += "." + f"{value.microsecond:06d}"[:digits]
        _same(text)


def test_a_mariadb_shop_reads_the_values_pymysql_reads(mysql_url: str) -> None:
    setup = sa.create_engine(mysql_url)
    with setup.begin() as conn:
        conn.execute(sa.text("SET SESSION sql_mode = ''"))  # zero dates, as legacy shops have
        conn.execute(sa.text(
            "CREATE TABLE t (id INT PRIMARY KEY, a DATETIME, b DATETIME(3), c DATETIME(6), "
            "d TIMESTAMP NULL, e DATETIME(1))"))
        conn.execute(sa.text(
            "INSERT INTO t VALUES "
            "(1, '2024-09-25 03:07:45', '2024-09-25 03:07:45.120', '2024-09-25 03:07:45.000001',"
            " '2024-09-25 03:07:45', '2024-09-25 03:07:45.5'),"
            "(2, '0000-00-00 00:00:00', '0000-00-00 00:00:00.000', '1000-01-01 00:00:00',"
            " NULL, '9999-12-31 23:59:59.9')"))
    setup.dispose()
    select = "SELECT a, b, c, d, e FROM t ORDER BY id"
    url = sa.make_url(mysql_url)
    plain = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username,
                            password=url.password or "", database=url.database)
    try:
        with plain.cursor() as cursor:
            cursor.execute(select)
            expected = [tuple(row) for row in cursor.fetchall()]
    finally:
        plain.close()
    shop = connect_shop(mysql_url)
    try:
        with shop.connect() as conn:
            got = [tuple(row) for row in conn.exec_driver_sql(select)]
            # ... and through the driver's decoders (the full reads bypass SQLAlchemy's rows)
            driver: Any = conn.connection.driver_connection
            decoders = driver.decoders
    finally:
        shop.dispose()
    assert [[(type(v), v) for v in row] for row in got] == \
        [[(type(v), v) for v in row] for row in expected]
    assert expected[1][0] == "0000-00-00 00:00:00"  # the zero date stays text
    assert decoders[pymysql.constants.FIELD_TYPE.DATETIME] is parse_datetime
