"""The planner's dependency checks: an order waits for a customer or product Metrilo has not
accepted, and ids state once said were synced are not asked for again in the same pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from cdc_sync.core.report import ResourceReport
from cdc_sync.core.resources import Resource, SourceRecord
from cdc_sync.cycle.planner import Dependencies, Planner
from cdc_sync.source.stream import RowShape, SourceRow
from cdc_sync.state import Outcome, StateStore, Status
from helpers.statements import Statements

_SHAPE = RowShape(labels=("id", "email", "product"))


@pytest.fixture
def state_url(tmp_path: Path) -> str:
    """The state on SQLite only (these tests count the planner's questions to state); the
    conftest's `engine` and `store` are built on it."""
    return f"sqlite:///{tmp_path}/state.sqlite"


def _dependency_queries(seen: Statements) -> list[str]:
    return seen.matching(lambda sql: "metrilo_id" in sql
                         and sql.lstrip().startswith("SELECT s.metrilo_id"))


def _order(row: SourceRow) -> SourceRecord:
    key, email, product = row.raw
    payload = {"id": key, "email": email, "createdAt": 1_700_000_000_000, "status": "paid",
               "amount": 1, "products": [{"productId": product, "quantity": 1}]}
    return SourceRecord(str(key), payload)


def _plan(store: StateStore, orders: list[tuple[str, str, str]]) -> ResourceReport:
    report = ResourceReport(Resource.ORDERS)
    planner = Planner(
        resource=Resource.ORDERS, state=store, report=report, chunk_size=2,
        dependencies=Dependencies(customer_resources=("customers",),
                                  product_resources=("products",),
                                  customers_complete=True, products_complete=True),
    )
    rows = [SourceRow(key, (key, email, product), (), _SHAPE) for key, email, product in orders]
    list(planner.items(rows, _order))
    return report


def test_synced_customers_and_products_are_asked_for_once_per_pass(
    store: StateStore, engine: sa.Engine,
) -> None:
    store.mark_synced("customers", [Outcome("c1", "a@shop.example", "f"),
                                    Outcome("c2", "b@shop.example", "f")])
    store.mark_synced("products", [Outcome("p1", "p1", "f")])
    orders = [(f"o{i}", "a@shop.example" if i % 2 else "b@shop.example", "p1") for i in range(6)]
    with Statements(engine) as seen:
        report = _plan(store, orders)
    assert report.counts.waiting == 0
    # Three chunks of two orders: the first asks for its customers and products, the other
    # two know them already.
    assert len(_dependency_queries(seen)) == 2


def test_an_id_state_does_not_hold_as_synced_is_asked_for_again_in_every_chunk(
    store: StateStore, engine: sa.Engine,
) -> None:
    store.mark_synced("products", [Outcome("p1", "p1", "f")])
    store.mark_rejected("customers", [Outcome("c1", "bad@shop.example", "f", reason="invalid")])
    orders = [("o1", "bad@shop.example", "p1"), ("o2", "new@shop.example", "p1"),
              ("o3", "bad@shop.example", "p1"), ("o4", "new@shop.example", "p1")]
    with Statements(engine) as seen:
        report = _plan(store, orders)
    assert report.counts.waiting == 4
    rows = store.lookup("orders", ["o1", "o2", "o3", "o4"])
    assert {row.status for row in rows.values()} == {Status.PENDING}
    assert "which is rejected" in (rows["o3"].last_error or "")
    assert "has not received yet" in (rows["o4"].last_error or "")
    # Customers are asked in both chunks; the synced product only in the first.
    assert len(_dependency_queries(seen)) == 3
