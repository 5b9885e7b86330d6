"""Memory and state queries follow chunks and batches, never the number of records.

The same cycle runs on N and 10N customers: the state statements grow by two reads per chunk
(source marks, then a lookup of the rows that need composing) and one write per batch (never
one per record), and the peak of Python memory stays
the same, because neither the state nor the source is ever held whole.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.state import StateStore
from cdc_sync.state.engine import create_state_engine
from helpers.world import ShopSize, demo_world

N = 500
CHUNK = 100  # records per state lookup
BATCH = 50  # records per request
SOURCE_BATCH = 100  # rows per fetch from the shop
CUSTOMERS_ONLY = CycleOptions(resources=(Resource.CUSTOMERS,))


@dataclass
class Measured:
    statements: int
    rereads: int  # statements of a second cycle that finds nothing changed
    peak: int  # bytes


def _measure(tmp: Path, customers: int) -> Measured:
    tmp.mkdir()
    size = ShopSize(customers=customers, categories=5, products=20, orders=0)
    state_url = f"sqlite:///{tmp}/state.sqlite"
    with demo_world(tmp, f"sqlite:///{tmp}/shop.sqlite", state_url, size=size) as world:
        engine = create_state_engine(state_url)
        counted: list[str] = []

        def count(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
            counted.append(statement)

        try:
            with StateStore.open(state_url) as opened:  # migrate first, uncounted
                del opened
            sa.event.listen(engine, "before_cursor_execute", count)
            state = StateStore(engine)
            client = world.client(max_items=BATCH, concurrency=2)
            tracemalloc.start()
            try:
                report = world.sync(CUSTOMERS_ONLY, state=state, client=client,
                                    chunk_size=CHUNK, source_batch=SOURCE_BATCH)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert report.ok, report.errors()
            assert report.resources[Resource.CUSTOMERS].counts.sent == customers
            first = len(counted)
            # The clock far ahead: the reconciliation window is over, so this cycle's slice
            # reads every record again (and walks state's keys for deletions).
            world.sync(CUSTOMERS_ONLY, state=state, client=client, chunk_size=CHUNK,
                       source_batch=SOURCE_BATCH, clock=lambda: 1e12)
            client.close()
        finally:
            engine.dispose()
        return Measured(first, len(counted) - first, peak)


def test_state_statements_grow_per_chunk_and_batch_and_memory_stays_flat(
    tmp_path: Path,
) -> None:
    small = _measure(tmp_path / "n", N)
    large = _measure(tmp_path / "10n", 10 * N)

    extra = 9 * N
    per_chunk_and_batch = 2 * extra // CHUNK + extra // BATCH
    assert large.statements - small.statements <= per_chunk_and_batch + 10, (small, large)
    assert large.statements < 10 * N / 20, "about one state statement per record"
    # Re-reading unchanged records costs one query per chunk (their source marks: nothing is
    # composed or looked up) and one per 1,000 keys of the deletion walk; nothing per record.
    assert large.rereads - small.rereads <= extra // CHUNK + extra // 1000 + 2, (small, large)
    assert large.peak < 1.5 * small.peak, (small, large)
