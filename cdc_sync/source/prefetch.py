"""Read ahead: a thread pulls the next items of a generator while the caller uses this one.

The shop database sorts and sends rows while cdc-sync composes and compares the previous
batch, instead of each waiting for the other. The queue holds at most `depth` items, so
memory stays bounded by the batch size; errors reach the caller in order, and closing the
reader stops the thread and closes the source (releasing its connection) in that thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator
from typing import Any, TypeVar

T = TypeVar("T")

_DONE: Any = object()
_POLL_SECONDS = 0.1


class _Failed:
    """An exception raised by the source, to be re-raised in the caller's thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(source: Generator[T, None, None], depth: int = 2) -> Generator[T, None, None]:
    """The items of `source`, produced by a background thread up to `depth` items ahead."""
    ahead: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    thread = threading.Thread(target=_pump, args=(source, ahead, stop), daemon=True,
                              name="cdc-sync-prefetch")
    thread.start()
    try:
        while True:
            item = ahead.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def _pump(source: Generator[T, None, None], ahead: queue.Queue[Any],
          stop: threading.Event) -> None:
    try:
        for item in source:
            if not _put(ahead, item, stop):
                return
        _put(ahead, _DONE, stop)
    except BaseException as error:  # handed over: the caller decides what it means
        _put(ahead, _Failed(error), stop)
    finally:
        source.close()


def _put(ahead: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Queue `item` unless the reader went away; False when it did."""
    while not stop.is_set():
        try:
            ahead.put(item, timeout=_POLL_SECONDS)
        except queue.Full:
            continue
        return True
    return False
