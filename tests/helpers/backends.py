"""Shop and state databases for a test, from the conftest fixtures.

Shop and state never share a PostgreSQL database (the pg_url fixture is one per test), so the
combinations below put at most one of them on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHOP_FIXTURE = {"sqlite": "sqlite_url", "postgresql": "pg_url", "mariadb": "mysql_url"}

# (shop, state): every shop backend and both state backends, in few combinations.
COMBINATIONS = [
    pytest.param(("sqlite", "sqlite"), id="shop=sqlite,state=sqlite"),
    pytest.param(("postgresql", "sqlite"), id="shop=postgresql,state=sqlite"),
    pytest.param(("mariadb", "postgresql"), id="shop=mariadb,state=postgresql"),
]
# For tests too slow to run three times: both state backends and a server shop.
FEW_COMBINATIONS = [COMBINATIONS[0], COMBINATIONS[2]]
# (shop, state): a SQLite shop, the state on each backend, for what only the state decides.
BOTH_STATES = [pytest.param(("sqlite", state), id=state) for state in ("sqlite", "postgresql")]


def database_urls(request: pytest.FixtureRequest, tmp_path: Path, shop: str,
                  state: str) -> tuple[str, str]:
    """(shop URL, state URL), each a fresh empty database."""
    assert not (shop == state == "postgresql"), "shop and state would share one database"
    shop_url = str(request.getfixturevalue(SHOP_FIXTURE[shop]))
    if state == "sqlite":
        return shop_url, f"sqlite:///{tmp_path}/state.sqlite"
    return shop_url, str(request.getfixturevalue("pg_url"))
