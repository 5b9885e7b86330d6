"""The demo shop at benchmark scale in PostgreSQL or MariaDB: built once per scale, reused.

Each scale lives in a database of its own, `cdc_bench_<orders>` (cdc_bench_1000000 for the
default 1M orders), with a one-row `cdc_bench_scale` table saying what it holds. A database
whose marker matches is reused as is; anything else (missing, another scale, a build that
was interrupted before the marker was written) is dropped and built again.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta

import sqlalchemy as sa

from cdc_sync.demo.generate import Scale, generate

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_MYSQL_ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306/mysql"
SEED = 1

_MARKER = sa.Table(
    "cdc_bench_scale", sa.MetaData(),
    sa.Column("customers", sa.Integer, nullable=False),
    sa.Column("categories", sa.Integer, nullable=False),
    sa.Column("products", sa.Integer, nullable=False),
    sa.Column("orders", sa.Integer, nullable=False),
    sa.Column("seed", sa.Integer, nullable=False),
    sa.Column("built_at", sa.DateTime, nullable=False),
)


def scaled(factor: float) -> Scale:
    """The default shop (200k customers, 500 categories, 50k products, 1M orders) times factor."""
    return Scale(
        customers=max(40, round(200_000 * factor)),
        categories=max(5, round(500 * factor)),
        products=max(20, round(50_000 * factor)),
        orders=max(100, round(1_000_000 * factor)),
    )


def database_name(scale: Scale) -> str:
    return f"cdc_bench_{scale.orders}"


def shop_url(admin_url: str, scale: Scale) -> str:
    """The URL of the benchmark shop for `scale` (same server and user as `admin_url`)."""
    url = sa.make_url(admin_url).set(database=database_name(scale))
    return url.render_as_string(hide_password=False)


def ensure_shop(admin_url: str, scale: Scale) -> tuple[str, bool]:
    """The shop's URL, building it unless it already holds `scale`; True when it was built."""
    url = shop_url(admin_url, scale)
    if _holds(url, scale):
        return url, False
    _recreate(admin_url, database_name(scale))
    engine = sa.create_engine(url)
    try:
        generate(engine, seed=SEED, **asdict(scale))
        _analyze(engine)
        with engine.begin() as conn:
            _MARKER.create(conn)
            conn.execute(_MARKER.insert(), [{**asdict(scale), "seed": SEED,
                                            "built_at": datetime.now()}])
    finally:
        engine.dispose()
    return url, True


def _holds(url: str, scale: Scale) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(_MARKER.name):
                return False
            row = conn.execute(sa.select(_MARKER)).mappings().first()
    except sa.exc.OperationalError:
        return False  # no such database yet
    finally:
        engine.dispose()
    wanted = {**asdict(scale), "seed": SEED}
    return row is not None and all(row[name] == value for name, value in wanted.items())


def is_mysql(url: str) -> bool:
    return sa.make_url(url).get_backend_name() in ("mysql", "mariadb")


def _recreate(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if is_mysql(admin_url):
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
                conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            else:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def _analyze(engine: sa.Engine) -> None:
    # Fresh tables have no statistics; the planner would guess badly for the first reads.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name in ("mysql", "mariadb"):
            tables = sa.inspect(conn).get_table_names()
            conn.execute(sa.text("ANALYZE TABLE " + ", ".join(f"`{t}`" for t in tables)))
        else:
            conn.execute(sa.text("VACUUM ANALYZE"))


TEMPLATE_BUSY_WAIT_SECONDS = 900.0
"""How long a copy waits for other sessions to leave the shop (PostgreSQL copies a database
only while nobody else is connected to it)."""


@contextmanager
def scratch_copy(admin_url: str, scale: Scale,
                 log: Callable[[str], None] = lambda _line: None) -> Iterator[str]:
    """A copy of the built shop for `scale`, dropped on exit: its URL.

    The cycles that change the shop (orders, child rows) run on it, so the shared shop stays as
    built and every rerun starts from the same data. A state DB filled from the shop is valid
    for the copy: the rows, keys and high-water marks are the same.
    """
    name = f"{database_name(scale)}_scratch_{os.getpid()}"
    started = time.perf_counter()
    if is_mysql(admin_url):
        _copy_mysql(admin_url, database_name(scale), name)
    else:
        _copy_postgresql(admin_url, database_name(scale), name, log)
    log(f"  copied the shop to {name} in {time.perf_counter() - started:.1f} s")
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _drop(admin_url, name)


def _copy_postgresql(admin_url: str, source: str, name: str,
                     log: Callable[[str], None]) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + TEMPLATE_BUSY_WAIT_SECONDS
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            while True:
                try:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
                    return
                except sa.exc.OperationalError as exc:
                    # Another session reads the shop (someone else's benchmark): wait.
                    if "being accessed by other users" not in str(exc) or (
                            time.monotonic() > deadline):
                        raise
                    log(f"  {source} is in use by another session; copying it again in 5 s")
                    time.sleep(5)
    finally:
        admin.dispose()


def _copy_mysql(admin_url: str, source: str, name: str) -> None:
    _recreate(admin_url, name)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            tables = sa.inspect(conn).get_table_names(schema=source)
            for table in tables:
                conn.execute(sa.text(f"CREATE TABLE `{name}`.`{table}` LIKE `{source}`.`{table}`"))
                conn.execute(sa.text(f"INSERT INTO `{name}`.`{table}` "
                                     f"SELECT * FROM `{source}`.`{table}`"))
            conn.execute(sa.text("ANALYZE TABLE " + ", ".join(f"`{name}`.`{t}`" for t in tables)))
    finally:
        admin.dispose()


def _drop(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if is_mysql(admin_url):
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
            else:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def change_orders(url: str, count: int, *, seed: int) -> int:
    """Change `count` orders as a shop would (status and updated_at); returns how many changed.

    The orders are spread over the whole id range; each gets another status and an updated_at
    after every other order's, so a cursor read finds exactly these.
    """
    engine = sa.create_engine(url)
    orders = sa.table("orders", sa.column("id"), sa.column("status"), sa.column("updated_at"))
    try:
        with engine.begin() as conn:
            total = int(conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar_one())
            latest = conn.execute(sa.select(sa.func.max(orders.c.updated_at))).scalar_one()
            stamp = max(datetime.now().replace(microsecond=0), latest + timedelta(seconds=1))
            ids = sorted(random.Random(seed).sample(range(1, total + 1), min(count, total)))
            toggled = sa.case((orders.c.status == 3, 5), else_=3)
            result = conn.execute(
                orders.update().where(orders.c.id.in_(ids)).values(status=toggled, updated_at=stamp)
            )
            return int(result.rowcount)
    finally:
        engine.dispose()


def table_counts(url: str, *names: str) -> dict[str, int]:
    """Rows in each of these tables of the shop."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {name: int(conn.execute(sa.select(sa.func.count()).select_from(
                sa.table(name))).scalar_one()) for name in names}
    finally:
        engine.dispose()
