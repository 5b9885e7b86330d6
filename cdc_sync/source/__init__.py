"""Reading the shop database: reflection, checks, set-based streaming (read-only)."""

from cdc_sync.source.connect import connect_shop
from cdc_sync.source.shop import ShopSource
from cdc_sync.source.stream import SourceRow

__all__ = ["ShopSource", "SourceRow", "connect_shop"]
