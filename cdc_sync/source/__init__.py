"""Reading the shop database: reflection, checks, set-based streaming (read-only).

Its names are imported when first used (PEP 562): the compose worker unpickles the driver's
converters of values a read left as bytes (core/deferred.py; `mysqltypes.parse_datetime`),
which imports this package, and must not pull SQLAlchemy in with them (0.32 s of CPU).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cdc_sync.source.connect import connect_shop
    from cdc_sync.source.shop import ShopSource
    from cdc_sync.source.stream import SourceRow

__all__ = ["ShopSource", "SourceRow", "connect_shop"]

_HOMES = {"ShopSource": "shop", "SourceRow": "stream", "connect_shop": "connect"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
