"""Progress of a command: rich bars with rate and ETA on a terminal, log lines otherwise."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console

from cdc_sync.cli.progress import LiveProgress, PlainProgress, cycle_progress
from cdc_sync.core.report import ResourceCounts
from cdc_sync.core.resources import Resource


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=160, color_system=None), out


def test_a_terminal_shows_a_bar_with_count_rate_and_eta() -> None:
    console, out = _terminal()
    clock = Clock()
    with cycle_progress(console=console, get_time=clock) as progress:
        assert isinstance(progress, LiveProgress)
        progress.expected = lambda resource: 1000 if resource is Resource.ORDERS else None
        progress(Resource.ORDERS, ResourceCounts(scanned=0))
        for second in range(1, 6):
            clock.now += 1
            progress(Resource.ORDERS, ResourceCounts(scanned=100 * second, sent=90 * second))
    shown = out.getvalue()
    assert "orders" in shown
    assert "500/1000" in shown
    assert "100 records/s" in shown
    assert "0:00:05" in shown  # 500 left at 100 records/s
    assert "450 sent" in shown


def test_a_read_larger_than_state_knew_drops_the_total_rather_than_lie() -> None:
    console, out = _terminal()
    with cycle_progress(console=console, get_time=Clock()) as progress:
        progress.expected = lambda resource: 10
        progress(Resource.CUSTOMERS, ResourceCounts(scanned=5))
        progress(Resource.CUSTOMERS, ResourceCounts(scanned=25))
    final = out.getvalue().rsplit("customers", 1)[-1]
    assert "25/?" in final


def test_the_previous_resource_is_complete_when_the_next_starts() -> None:
    console, _ = _terminal()
    with cycle_progress(console=console, get_time=Clock()) as progress:
        assert isinstance(progress, LiveProgress)
        progress(Resource.CUSTOMERS, ResourceCounts(scanned=7))
        progress(Resource.ORDERS, ResourceCounts(scanned=1))
        customers = next(t for t in progress._progress.tasks if t.description == "customers")
    assert customers.finished
    assert customers.completed == 7


def test_outside_a_terminal_progress_is_a_log_line_every_ten_seconds(
        caplog: pytest.LogCaptureFixture) -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    with cycle_progress(console=console) as chosen:
        assert isinstance(chosen, PlainProgress)
    clock = Clock()
    progress = PlainProgress(clock)
    with caplog.at_level(logging.INFO, logger="cdc_sync.progress"):
        progress(Resource.ORDERS, ResourceCounts(scanned=1000))
        clock.now += 5
        progress(Resource.ORDERS, ResourceCounts(scanned=2000))
        clock.now += 5
        progress(Resource.ORDERS, ResourceCounts(scanned=3000, sent=2500, rejected=1))
    assert caplog.messages == [
        "progress: orders: 1,000 read, 0 sent, 0 rejected",
        "progress: orders: 3,000 read, 2,500 sent, 1 rejected, 300 records/s",
    ]


def test_log_lines_go_above_the_live_bars_not_through_them() -> None:
    console, out = _terminal()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with cycle_progress(console=console, get_time=Clock()) as progress:
            assert isinstance(progress, LiveProgress)
            progress(Resource.ORDERS, ResourceCounts(scanned=5))
            progress._progress.refresh()  # the bar is on the terminal now
            logging.getLogger("cdc_sync.test").warning("a line from the cycle")
            progress._progress.refresh()
        assert handler.stream is out  # given back afterwards
    finally:
        root.removeHandler(handler)
    shown = out.getvalue()
    before = shown[:shown.index("a line from the cycle")]
    # Rich clears the bar's line first (or starts a new one): the text is not glued to the bar.
    assert before.endswith(("\x1b[2K", "\n"))
    assert shown.rindex("orders") > shown.index("a line from the cycle")  # bar redrawn below
