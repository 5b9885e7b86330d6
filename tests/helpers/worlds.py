"""The demo world (helpers/world.py) on the test's own fresh databases.

`world_fixture` makes the `world` fixture of a test module: the modules' worlds differ only in
the backends they run on, the shop's size, the mapping and what the test needs ready
beforehand, so each says just that. `world_on` builds one inside a test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from helpers.backends import database_urls
from helpers.world import ShopSize, World, demo_world

Edit = Callable[[dict[str, Any]], None]

# (shop, state) of a world whose fixture names no backends.
SQLITE = ("sqlite", "sqlite")


@contextmanager
def world_on(request: pytest.FixtureRequest, tmp: Path, shop: str = "sqlite",
             state: str = "sqlite", *, size: ShopSize | None = None,
             edit: Edit | None = None) -> Iterator[World]:
    """A demo world whose shop and state DBs are fresh ones on `shop` and `state`, its mapping
    the demo's edited by `edit`."""
    shop_url, state_url = database_urls(request, tmp, shop, state)
    with demo_world(tmp, shop_url, state_url, size=size or ShopSize(), edit=edit) as built:
        yield built


def world_fixture(backends: Sequence[Any] | None = None, *, size: ShopSize | None = None,
                  edit: Edit | None = None,
                  prepare: Callable[[World], None] | None = None) -> Any:
    """A fixture yielding a demo world (name it by assigning it: `world = world_fixture()`):
    on SQLite, or once per (shop, state) param of `backends` (helpers/backends.py), with
    `prepare` run on it before the test (tables the demo lacks, sandbox faults)."""

    @pytest.fixture(params=backends)
    def world(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
        shop, state = getattr(request, "param", SQLITE)
        with world_on(request, tmp_path, shop, state, size=size, edit=edit) as built:
            if prepare is not None:
                prepare(built)
            yield built

    return world
