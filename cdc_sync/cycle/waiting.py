"""Which orders wait: an order whose customer or products Metrilo has not accepted yet is kept
pending instead of being sent (Metrilo would drop it silently).

Per chunk of orders, two state queries at most, for the ids not already known to be synced;
the synced ones are remembered for the rest of the planner's life (`SyncedIds`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from cdc_sync.core.prepare import Prepared
from cdc_sync.state import Status

SYNCED_IDS_REMEMBERED = 200_000
"""How many customers' and products' Metrilo ids a planner remembers as synced (about 25 MB
at most): later chunks' orders need not ask state for them again."""


class DependencyState(Protocol):
    """What deciding waits reads of state (`StateStore` is one)."""

    def dependency_status(
        self, resources: Sequence[str], metrilo_ids: Collection[str]
    ) -> dict[str, Status]: ...


@dataclass
class Dependencies:
    """Which resources must have accepted an order's customer and products first."""

    customer_resources: tuple[str, ...] = ()
    product_resources: tuple[str, ...] = ()
    # Whether every email / product id is expected to be in state (guests and deleted
    # products on): then an unknown one means "not delivered yet", so the order waits.
    customers_complete: bool = False
    products_complete: bool = False


class SyncedIds:
    """Customers' and products' Metrilo ids known to be synced, up to `limit` in all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.customers: set[str] = set()
        self.products: set[str] = set()

    def remember(self, known: set[str], statuses: dict[str, Status]) -> None:
        room = self.limit - len(self.customers) - len(self.products)
        synced = [ident for ident, status in statuses.items() if status is Status.SYNCED]
        known.update(synced[:max(room, 0)])


class Blockers:
    """The dependency status of one chunk of orders: two state queries at most, for the ids
    not already known to be synced."""

    def __init__(
        self, state: DependencyState, deps: Dependencies, orders: Sequence[Prepared],
        synced: SyncedIds, *, only_refused: bool = False,
    ) -> None:
        self.deps = deps
        self.only_refused = only_refused
        self.known_customers = synced.customers
        self.known_products = synced.products
        emails = {o.email for o in orders if o.email}
        products = {product for o in orders for product in o.product_ids}
        self.customers = _statuses(state, deps.customer_resources, emails, synced,
                                   synced.customers)
        self.products = _statuses(state, deps.product_resources, products, synced,
                                  synced.products)

    def why_waiting(self, order: Prepared) -> str | None:
        email = order.email
        if email and email not in self.known_customers:
            why = self._blocked("customer", email, self.customers, self.deps.customers_complete)
            if why:
                return why
        known = self.known_products
        for ident in order.product_ids:
            if ident in known:
                continue
            why = self._blocked("product", ident, self.products, self.deps.products_complete)
            if why:
                return why
        return None

    def _blocked(
        self, kind: str, ident: str, statuses: dict[str, Status], complete: bool
    ) -> str | None:
        status = statuses.get(ident)
        if status is Status.SYNCED:
            return None
        if self.only_refused and status is not Status.REJECTED:
            return None
        if status is None:
            if not complete:
                return None
            return f"waiting for {kind} {ident!r}, which Metrilo has not received yet"
        return f"waiting for {kind} {ident!r}, which is {status.value} (see `cdc-sync status`)"


def _statuses(
    state: DependencyState, resources: Sequence[str], ids: set[str], synced: SyncedIds,
    known: set[str],
) -> dict[str, Status]:
    """The status of those of `ids` not known to be synced already (absent: unknown to
    state), in one query; the synced ones among them are remembered."""
    asked = ids - known
    found = state.dependency_status(resources, asked) if asked else {}
    synced.remember(known, found)
    return found
