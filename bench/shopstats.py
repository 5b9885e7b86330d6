"""What a cycle costs the shop database: rows and bytes it read and sent, and its own time.

PostgreSQL: `pg_stat_database` of the benchmark shop's database (only the benchmark uses it),
read before the cycle and after its connections closed (a backend flushes its counters when
it exits): rows the server read (`tup_returned` by scans, `tup_fetched` by index), the bytes
of the blocks it touched (`blks_hit + blks_read`, 8 kB each) and `active_time`, the time its
sessions spent executing statements (PostgreSQL 14+). `pg_stat_statements` would split that
per statement but needs `shared_preload_libraries`, which a shop's server may not have.

MariaDB/MySQL: the session counters of every shop connection, read when the pool hands it out
and when it comes back (`SHOW SESSION STATUS`, no setting needed): `Rows_read` (rows the
engine read), `Rows_sent` and `Bytes_sent` (what went over the wire to cdc-sync), and, when
the server runs with `userstat=ON` (`SET GLOBAL userstat=1`; otherwise n/a), the sessions'
`Cpu_time` (the server's CPU for them) and `Busy_time` (wall time of their statements, summed
over connections: a result streamed to a busy client counts as busy all along, so it can
exceed the cycle's own time).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import sqlalchemy as sa

BLOCK = 8192
MYSQL_COUNTERS = ("Rows_read", "Rows_sent", "Bytes_sent", "Busy_time", "Cpu_time")
PG_COUNTERS = ("tup_returned", "tup_fetched", "blks_hit", "blks_read", "active_time",
               "xact_commit")


class ShopCounters:
    """Counts what the shop's server did for one engine (call `attach` before using it)."""

    def __init__(self, shop: sa.Engine) -> None:
        self._shop = shop
        self.dialect = shop.dialect.name
        self._mysql: Counter[str] = Counter()
        self._pg_before: dict[str, float] = {}

    def attach(self) -> None:
        if self.dialect in ("mysql", "mariadb"):
            sa.event.listen(self._shop, "checkout", self._on_checkout)
            sa.event.listen(self._shop, "checkin", self._on_checkin)
        elif self.dialect == "postgresql":
            self._pg_before = self._pg_snapshot()

    def result(self) -> dict[str, Any]:
        """The figures since `attach`; call after the engine's pool was disposed."""
        if self.dialect in ("mysql", "mariadb"):
            busy, cpu = self._mysql["Busy_time"], self._mysql["Cpu_time"]
            return {"rows_read": int(self._mysql["Rows_read"]),
                    "rows_sent": int(self._mysql["Rows_sent"]),
                    "bytes_sent": int(self._mysql["Bytes_sent"]),
                    "db_seconds": cpu if cpu else None,
                    "busy_seconds": busy if busy else None,
                    "source": "SHOW SESSION STATUS per connection"}
        if self.dialect == "postgresql":
            time.sleep(1.2)  # a backend that just went idle may defer its flush by up to 1 s
            after = self._pg_snapshot()
            delta = {k: after[k] - self._pg_before.get(k, 0) for k in after}
            return {"rows_read": int(delta["tup_returned"] + delta["tup_fetched"]),
                    "rows_sent": None,
                    "bytes_touched": int((delta["blks_hit"] + delta["blks_read"]) * BLOCK),
                    "db_seconds": delta["active_time"] / 1000,
                    "source": "pg_stat_database"}
        return {}

    def _pg_snapshot(self) -> dict[str, float]:
        names = ", ".join(PG_COUNTERS)
        # A connection of its own, outside the engine's pool (its own reads barely count).
        with self._shop.connect() as conn:
            conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            row = conn.execute(sa.text(
                f"SELECT {names} FROM pg_stat_database WHERE datname = current_database()"
            )).one()
        return {name: float(value or 0) for name, value in zip(PG_COUNTERS, row, strict=True)}

    def _session(self, dbapi_conn: Any) -> dict[str, float]:
        cursor = dbapi_conn.cursor()
        try:
            names = ", ".join(f"'{n}'" for n in MYSQL_COUNTERS)
            cursor.execute(f"SHOW SESSION STATUS WHERE Variable_name IN ({names})")
            return {str(name): float(value) for name, value in cursor.fetchall()}
        finally:
            cursor.close()

    def _on_checkout(self, dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        record.info["cdc_bench_status"] = self._session(dbapi_conn)

    def _on_checkin(self, dbapi_conn: Any, record: Any) -> None:
        before = record.info.pop("cdc_bench_status", None)
        if before is None or dbapi_conn is None:
            return
        after = self._session(dbapi_conn)
        for name, value in after.items():
            self._mysql[name] += value - before.get(name, 0.0)
