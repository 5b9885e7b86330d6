"""The collector during a cycle: older objects frozen while it runs, handed back after."""

from __future__ import annotations

import gc
import weakref

import pytest

from cdc_sync.cycle.heap import older_objects_frozen


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_objects_older_than_the_body_are_frozen_only_while_it_runs() -> None:
    assert gc.get_freeze_count() == 0
    with older_objects_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_a_reference_cycle_that_dies_during_the_body_is_collected_after_it() -> None:
    first, second = _Node(), _Node()
    first.other, second.other = second, first  # only the cyclic collector frees these
    alive = weakref.ref(first)
    with older_objects_frozen():
        del first, second
        gc.collect()
        assert alive() is not None  # frozen: the collector does not look at it
    gc.collect()
    assert alive() is None


def test_the_heap_is_handed_back_when_the_body_raises() -> None:
    with pytest.raises(RuntimeError), older_objects_frozen():
        raise RuntimeError("a cycle that fails")
    assert gc.get_freeze_count() == 0
