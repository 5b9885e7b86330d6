"""Rolling reconciliation: every record checked against the shop once per window, a slice a cycle.

A cursor only shows changes to the resource's own row. Deletes, edits of child rows that have
no cursor and bumps a writer forgot are found by reading the records again. Instead of a full
read every `sync.full_reconcile_minutes` (a spike), each cycle reads one key-range slice
(`after < key <= upto`, in key order, parents and children, through the source-mark fast path)
so that the whole key space is read once per window, and walks the keys state holds (those in
the same range, or as many as were read: below) to find those gone from the shop.

- Slice size: the keys left in the window (state's live count when it started, minus those
  read) over the cycles left in it (time left over the cycle interval: the daemon's
  CDC_SYNC_INTERVAL(S); for a one-shot `sync`, the gap since the last slice, at least 60 s).
  Cycles that come late read more; once the window's time is up, one cycle reads the rest.
- Gone detection walks state's keys and asks the shop which still exist. A resource keyed by
  one integer column walks exactly the keys state holds inside the slice's span, found by
  their numbers (an index range on sync_state.key_number), in numeric order, against the
  shop's keys of the same span (one streamed, index-only statement): no key list is sent to
  the shop. Its last slice also checks the keys state holds that are no integer's text.
  Other keys (text, composite) are walked in state's own order (an index range), as many as
  the slice read, and looked up in the shop a page at a time. The delete guard holds per
  slice (at most `delete_guard` of the keys the slice checked, or `delete_guard_min`: an
  emptied table trips it at the first slice) and per window (at most `delete_guard` of the
  resource in one window, never all of it).
- The window (start, position, counts) lives in the state DB's meta table: a restart goes on
  from the last completed slice. A slice's position is saved only once Metrilo acknowledged all
  of it, so a kill mid-slice reads the slice again (unchanged records are not sent again).
- A full read (`sync --full`, `resync`, a changed mapping, resources without a cursor) starts
  a new window; derived resources (guest customers, deleted products) have no key column to
  range over, so they keep one full read per window.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from cdc_sync.core.resources import Resource
from cdc_sync.source.keys import KeySpan
from cdc_sync.source.stream import SourceRow
from cdc_sync.state import meta_keys
from cdc_sync.state.meta_keys import MetaStore

if TYPE_CHECKING:
    from cdc_sync.cycle.deletes import DeleteHandler
    from cdc_sync.source import ShopSource

KEY_WALK = "keys"  # state's keys in text order, as many as the slice read
SPAN_WALK = "span"  # state's keys inside the slice's numeric span
DEFAULT_INTERVAL = 60.0
"""Seconds between cycles assumed when nothing better is known (the daemon's default)."""
_WALK_CHUNK = 1000


class WindowState(MetaStore, Protocol):
    """What a reconciliation reads of state (`StateStore` is one): its window, a meta value;
    the live records a window starts from; their keys, walked for deletions."""

    def live_count(self, resource: str) -> int: ...
    def iter_live_keys(self, resource: str, chunk: int = 1000, *,
                       after: str | None = None) -> Iterator[list[str]]: ...
    def iter_live_numbers(self, resource: str, chunk: int = 1000, *, after: int | None = None,
                          upto: int | None = None) -> Iterator[list[int]]: ...
    def iter_live_keys_unnumbered(self, resource: str,
                                  chunk: int = 1000) -> Iterator[list[str]]: ...


@dataclass
class Window:
    """One reconciliation window of a resource, as the state DB keeps it between cycles."""

    started: float  # epoch seconds
    seconds: float  # its length (sync.full_reconcile_minutes when it started)
    total: int  # live records in state when it started: the keys to cover
    after: str | None = None  # the last source key read (labels.key_string); None: the start
    source_done: bool = False
    done: int = 0  # records read by this window's slices
    slices: int = 0  # slices completed
    planned: int = 1  # slices completed + cycles left, as last planned (for status)
    state_after: str | None = None  # the last state key checked (SPAN_WALK: span end walked)
    state_done: bool = False
    gone: int = 0  # records found gone this window (the per-window delete guard)
    last_slice: float | None = None  # when the last slice completed
    # "slices"; "every cycle" (no cursor: read fully each cycle); "per window" (a derived
    # resource: one full read per window). The last two are shown by status, never planned.
    mode: str = "slices"
    # "per window": the last full read was skipped, what it derives from being unchanged
    # (cycle/inputs.py).
    skipped: bool = False
    # How state's keys are walked for deletions: KEY_WALK or SPAN_WALK (module docstring).
    walk: str = "keys"

    @property
    def complete(self) -> bool:
        return self.source_done and self.state_done

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Window:
        return cls(**json.loads(text))


@dataclass
class Slice:
    """What one cycle reconciles of one resource."""

    resource: Resource
    window: Window
    span: KeySpan | None  # None: the window's keys were all read; only the walk is left
    walk: int | None  # KEY_WALK: state keys to check for deletion (None: all the rest)
    read: int = 0  # source rows the slice read
    notes: list[str] = field(default_factory=list)

    def rows(self, rows: Iterable[SourceRow]) -> Iterator[SourceRow]:
        """The slice's rows, counted as they pass."""
        for row in rows:
            self.read += 1
            yield row


def slice_size(window: Window, now: float, interval: float) -> tuple[int | None, int]:
    """(keys this cycle reads, None for all the rest; the cycles left, this one included)."""
    end = window.started + window.seconds
    if now >= end:
        return None, 1
    cycles = max(1, math.ceil((end - now) / max(interval, 1.0)))
    left = max(window.total - window.done, 1)
    return math.ceil(left / cycles), cycles


class RollingReconciliation:
    """Plans and records the slices of every resource; the engine reads and sends them."""

    def __init__(self, state: WindowState, source: ShopSource, window_minutes: float,
                 clock: Callable[[], float]) -> None:
        self.state = state
        self.source = source
        self.seconds = window_minutes * 60.0
        self.clock = clock

    def plan(self, resource: Resource, intervals: Mapping[Resource, float] | None) -> Slice:
        """This cycle's slice: the window's next key range and its share of the deletion walk."""
        now = self.clock()
        window = self._current(resource, now)
        interval = _interval(window, now, intervals, resource)
        size, cycles = slice_size(window, now, min(interval, self.seconds))
        window.planned = window.slices + cycles
        if window.source_done:
            return Slice(resource, window, None, None)
        upto = None if size is None else self.source.span_end(resource, window.after, size)
        return Slice(resource, window, KeySpan(after=window.after, upto=upto),
                     None if upto is None else size)

    def finish(self, piece: Slice, deletes: DeleteHandler) -> None:
        """After Metrilo acknowledged the slice: save the position, then look for deletions."""
        window, now = piece.window, self.clock()
        if piece.span is not None:
            window.done += piece.read
            window.after = piece.span.upto
            window.source_done = piece.span.upto is None
        self._save(piece.resource, window)  # the read is done even if the walk trips the guard
        if not window.state_done:
            walk = self._walk(piece)
            found = deletes.detect_walked(walk, window_total=window.total,
                                          window_gone=window.gone)
            window.gone += found
            window.state_after = walk.last
            window.state_done = walk.exhausted
        window.slices += 1
        window.last_slice = now
        piece.notes.append(_describe(window))
        self._save(piece.resource, window)

    def _walk(self, piece: Slice) -> _Walk | _SpanWalk:
        window, resource = piece.window, piece.resource
        if window.walk == SPAN_WALK:
            upto = None if piece.span is None else piece.span.upto
            return _SpanWalk(self.state, self.source, resource, window.state_after, upto)
        return _Walk(self.state, self.source, resource, window.state_after, piece.walk)

    def restart(self, resource: Resource) -> None:
        """A full read just verified everything: a new window starts now."""
        self._save(resource, self._new(resource, self.clock(), last_slice=None))

    def read_fully(self, resource: Resource, records: int, *, every_cycle: bool,
                   skipped: bool = False) -> None:
        """A resource that is not sliced was read fully (or, `skipped`, found unchanged by its
        inputs' checksum): recorded for status only."""
        mode = "every cycle" if every_cycle else "per window"
        self._save(resource, Window(started=self.clock(), seconds=self.seconds, total=records,
                                    source_done=True, done=records, slices=1, state_done=True,
                                    mode=mode, skipped=skipped))

    def _current(self, resource: Resource, now: float) -> Window:
        stored = self.state.get_meta(meta_keys.reconcile_window(resource))
        window = None if not stored else Window.from_json(stored)
        if (window is None or window.complete or window.seconds != self.seconds
                or window.walk != self._walk_of(resource)):
            # A window saved before key numbers (or by a mapping keyed otherwise) walked
            # state in another order: its position means nothing to this walk.
            last = None if window is None else window.last_slice
            window = self._new(resource, now, last_slice=last)
        return window

    def _new(self, resource: Resource, now: float, *, last_slice: float | None) -> Window:
        total = self.state.live_count(resource.value)
        return Window(started=now, seconds=self.seconds, total=total, last_slice=last_slice,
                      walk=self._walk_of(resource))

    def _walk_of(self, resource: Resource) -> str:
        return SPAN_WALK if self.source.integer_key(resource) else KEY_WALK

    def _save(self, resource: Resource, window: Window) -> None:
        self.state.set_meta(meta_keys.reconcile_window(resource), window.to_json())


class _Walk:
    """State's live keys after a position, `limit` of them (None: all), looked up in the shop a
    page at a time; remembers the last key checked."""

    def __init__(self, state: WindowState, source: ShopSource, resource: Resource,
                 after: str | None, limit: int | None) -> None:
        self.state, self.source, self.resource = state, source, resource
        self.after, self.limit = after, limit
        self.last = after
        self.exhausted = False

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        """(keys checked, those of them gone from the shop), a page at a time."""
        for keys, existing in self.source.existing_in_pages(self.resource, self._pages()):
            yield len(keys), [key for key in keys if key not in existing]

    def _pages(self) -> Iterator[list[str]]:
        left = self.limit
        chunk = _WALK_CHUNK if left is None else max(1, min(_WALK_CHUNK, left))
        for keys in self.state.iter_live_keys(self.resource.value, chunk, after=self.after):
            if left is not None:
                keys = keys[:left]
                left -= len(keys)
            self.last = keys[-1]
            yield keys
            if left is not None and left <= 0:
                return
        self.exhausted = True


class _SpanWalk:
    """State's live keys inside a span of integer keys (`after < key <= upto`, None: open),
    in numeric order, merged with the shop's keys of the same span: those state holds and the
    shop no longer yields are gone. The span that ends the window (`upto` None) also looks up
    the keys state holds that are no integer's text (a key typed by hand, an older mapping's),
    so every live key is checked once per window."""

    def __init__(self, state: WindowState, source: ShopSource, resource: Resource,
                 after: str | None, upto: str | None) -> None:
        self.state, self.source, self.resource = state, source, resource
        self.after, self.upto = after, upto
        self.last = after  # the span end walked so far
        self.exhausted = False

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        """(keys checked, those of them gone from the shop), a page of state at a time."""
        resource = self.resource
        shop = self.source.keys_in_span(resource, KeySpan(after=self.after, upto=self.upto))
        try:
            yield from _missing(self.state.iter_live_numbers(
                resource.value, _WALK_CHUNK, after=_number(self.after), upto=_number(self.upto),
            ), shop)
        finally:
            shop.close()
        if self.upto is None:
            pages = self.state.iter_live_keys_unnumbered(resource.value, _WALK_CHUNK)
            for keys, existing in self.source.existing_in_pages(resource, pages):
                yield len(keys), [key for key in keys if key not in existing]
        self.last = self.upto
        self.exhausted = self.upto is None


def _missing(pages: Iterable[list[int]], shop: Iterator[Any]) -> Iterator[tuple[int, list[str]]]:
    """Per page of state's numbers (ascending), how many and which the shop's ascending keys
    lack: a merge of two sorted streams."""
    found = next(shop, None)
    for numbers in pages:
        gone = []
        for number in numbers:
            while found is not None and found < number:
                found = next(shop, None)
            if found != number:
                gone.append(str(number))
        yield len(numbers), gone


def _number(key: str | None) -> int | None:
    return None if key is None else int(key)


def _interval(window: Window, now: float, intervals: Mapping[Resource, float] | None,
              resource: Resource) -> float:
    """Seconds until the next cycle of `resource`: the daemon's setting, else the last gap."""
    if intervals and resource in intervals:
        return intervals[resource]
    # One-shot syncs: their cadence (cron) if slower than the daemon's default. Syncs run by
    # hand in quick succession must not plan a slice a second.
    if window.last_slice is not None and now > window.last_slice:
        return max(DEFAULT_INTERVAL, now - window.last_slice)
    return DEFAULT_INTERVAL


def _describe(window: Window) -> str:
    if window.mode == "every cycle":
        return (f"reconciliation: read fully every cycle (no cursor), last at "
                f"{_hhmm(window.started)}")
    if window.mode == "per window":
        last = ("checked at {} (not derived: the checksum of the orders and customers it reads "
                "was unchanged)" if window.skipped else "last at {}").format(_hhmm(window.started))
        return (f"reconciliation: read fully once per window (derived from orders), {last}, "
                f"next by {_hhmm(window.started + window.seconds)}")
    share = 100.0 if window.source_done else min(99.9, 100.0 * window.done / max(window.total, 1))
    return (f"reconciliation: slice {window.slices}/{max(window.planned, window.slices)}, "
            f"{share:.0f}% of keys read, window started {_hhmm(window.started)}, full coverage "
            f"by {_hhmm(window.started + window.seconds)}")


def _hhmm(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M UTC")


def progress(state: MetaStore) -> dict[str, dict[str, Any]]:
    """Each resource's reconciliation window as `status` shows it (plain data)."""
    found: dict[str, dict[str, Any]] = {}
    for resource in Resource:
        stored = state.get_meta(meta_keys.reconcile_window(resource))
        if not stored:
            continue
        window = Window.from_json(stored)
        share = 1.0 if window.source_done else min(window.done / max(window.total, 1), 0.999)
        found[resource.value] = {
            "slice": window.slices,
            "slices": max(window.planned, window.slices),
            "keys_read": window.done,
            "keys_total": window.total,
            "share_read": round(share, 3),
            "gone_this_window": window.gone,
            "window_started": _iso(window.started),
            "full_coverage_by": _iso(window.started + window.seconds),
            "complete": window.complete,
            "mode": window.mode,
            "skipped": window.skipped,
            "summary": _describe(window),
        }
    return found


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
