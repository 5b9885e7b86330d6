"""Progress of long work: a rich bar per resource in a terminal, periodic log lines otherwise.

In a terminal each resource gets a bar with records read, the rate and an ETA. The bar's total
is the number of records state already knows for the resource (`expect`), so the ETA fits a
full read; where state knows none (a first sync) or the read outgrows it, the bar shows the
count and the rate without a total. Outside a terminal (cron, systemd, the daemon) a log line
every LOG_EVERY_SECONDS says the same, so logs are not flooded with redraws.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.file_proxy import FileProxy
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from cdc_sync.core.report import ResourceCounts
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import ProgressCallback
from cdc_sync.state import StateStore

log = logging.getLogger("cdc_sync.progress")

LOG_EVERY_SECONDS = 10.0

Expected = Callable[[Resource], int | None]
"""How many records a resource probably has (None: unknown), for the bar's total and ETA."""


class PlainProgress:
    """Log lines for SyncEngine(on_progress=...): one every LOG_EVERY_SECONDS, with the rate."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started: dict[Resource, float] = {}
        self._last_log = -LOG_EVERY_SECONDS
        self.expected: Expected | None = None  # unused: a log line has no bar

    def __call__(self, resource: Resource, counts: ResourceCounts) -> None:
        now = self._clock()
        elapsed = now - self._started.setdefault(resource, now)
        if now - self._last_log >= LOG_EVERY_SECONDS:
            self._last_log = now
            # A rate over the first instants says nothing (the first chunk arrives at once).
            rate = f", {counts.scanned / elapsed:,.0f} records/s" if elapsed >= 1.0 else ""
            log.info("progress: %s: %s%s", resource, _detail(counts), rate)


def progress_callback() -> ProgressCallback:
    """Plain progress, for the daemon (its output is a log)."""
    return PlainProgress()


class _RateColumn(ProgressColumn):
    """Records per second, as rich measures it over its recent samples."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text(f"{speed:,.0f} records/s" if speed else "", style="progress.data.speed")


class LiveProgress:
    """The terminal's bars: the engine calls it with counts; `expect` gives the totals."""

    def __init__(self, progress: Progress, expected: Expected | None = None) -> None:
        self._progress = progress
        self._tasks: dict[Resource, TaskID] = {}
        self._totals: dict[Resource, int | None] = {}
        self.expected = expected

    def __call__(self, resource: Resource, counts: ResourceCounts) -> None:
        task = self._tasks.get(resource)
        if task is None:
            self._finish_others()
            expected = self.expected(resource) if self.expected is not None else None
            self._totals[resource] = expected or None
            task = self._tasks[resource] = self._progress.add_task(
                str(resource), total=self._totals[resource], detail="")
        total = self._totals[resource]
        if total is not None and counts.scanned > total:
            # More than state knew: a count without a bar beats a wrong ETA (rich cannot take
            # a task's total away, so the task starts over without one).
            self._progress.remove_task(task)
            self._totals[resource] = None
            task = self._tasks[resource] = self._progress.add_task(
                str(resource), total=None, detail="")
        self._progress.update(task, completed=counts.scanned, detail=_detail(counts))

    def _finish_others(self) -> None:
        """Resources run one after another: the one before is done when the next one starts."""
        for task in self._progress.tasks:
            if not task.finished:
                self._progress.update(task.id, total=task.completed)


@contextmanager
def cycle_progress(
    *, console: Console | None = None, interactive: bool | None = None,
    get_time: Callable[[], float] | None = None,
) -> Iterator[PlainProgress | LiveProgress]:
    """The progress of one command: live bars on a terminal (stopped on leaving), else log lines.

    Bars go to stderr, so stdout keeps only the report a script may read.
    """
    console = console or Console(stderr=True)
    live = console.is_terminal if interactive is None else interactive
    if not live:
        yield PlainProgress()
        return
    columns = (TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
               _RateColumn(), TimeRemainingColumn(), TextColumn("{task.fields[detail]}"))
    with Progress(*columns, console=console, get_time=get_time) as progress, \
            _logs_above(progress.console):
        yield LiveProgress(progress)


@contextmanager
def _logs_above(console: Console) -> Iterator[None]:
    """Log lines written while the bars are live go above them instead of through them.

    The logging handlers were made before the bars and write to the terminal directly; for the
    while, those writing where the bars are write through rich, which keeps the bars below.
    """
    moved = [h for h in logging.getLogger().handlers
             if isinstance(h, logging.StreamHandler) and h.stream is console.file]
    for handler in moved:
        handler.setStream(FileProxy(console, handler.stream))
    try:
        yield
    finally:
        for handler in moved:
            handler.flush()
            handler.setStream(console.file)


def expect_known_records(state: StateStore) -> Expected:
    """Totals for the bars: the records state knows of a resource (not gone)."""
    return lambda resource: state.live_count(resource.value)


def _detail(counts: ResourceCounts) -> str:
    return f"{counts.scanned:,} read, {counts.sent:,} sent, {counts.rejected:,} rejected"
