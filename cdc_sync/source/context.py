"""What ShopSource hands the parts it delegates to (`Deriving`, `Tracking`): one shop read
through one mapping.

Both read with the same engine, schema, mapping, catalogue and batch size, and build on the
direct resources' plans, which ShopSource makes once and caches (a derived resource and a
tracker are made from them), so they share one `ShopContext` rather than each a copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from cdc_sync.core.catalogue import Catalogue
from cdc_sync.errors import MappingError, Problem
from cdc_sync.mapping.loader import LoadedMapping
from cdc_sync.source.plan import ResourcePlan
from cdc_sync.source.reflect import ShopSchema

# A direct resource's plan (None when it does not fit) and its problems.
Planned = tuple[ResourcePlan | None, list[Problem]]


@dataclass(frozen=True)
class ShopContext:
    """The shop and the mapping it is read through; reads nothing itself."""

    engine: sa.Engine
    mapping: LoadedMapping
    schema: ShopSchema
    catalogue: Catalogue
    batch: int
    # ShopSource's plan of a direct resource by name, made once and cached there.
    plan: Callable[[str], Planned]

    def plan_or_raise(self, name: str) -> ResourcePlan:
        """The direct resource's plan, or a MappingError naming every problem of it."""
        plan, problems = self.plan(name)
        if plan is None:
            raise MappingError(problems, title=f"{name} cannot be read as mapped")
        return plan
