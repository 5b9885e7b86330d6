"""The garbage collector during a cycle: what existed before the cycle is not scanned again.

A push allocates a few dicts and lists per record, so Python's cyclic collector runs often,
and every few thousand records a full collection walks the whole heap: the imported modules,
SQLAlchemy's reflected schema and compiled statements, the mapping. Those outlive any cycle,
yet walking them cost 15-20% of a first push's CPU (bench/README.md, "where the time goes").
Freezing them for the cycle (`gc.freeze`) leaves the collector the cycle's own objects;
unfreezing afterwards hands the older objects back, so a reference cycle among them that
died meanwhile is still collected, only later. Reference counting frees everything else as
before: nothing about what the cycle does changes, only how much the collector looks at.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def older_objects_frozen() -> Iterator[None]:
    """Run the body with every object that exists now out of the collector's sight."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
