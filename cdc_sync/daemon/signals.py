"""SIGTERM / SIGINT: the first asks for a clean stop, a second one stops at once. SIGHUP:
check mappings.yaml now (see reload.py).

A clean stop lets the running cycle finish the batches in flight and commit what Metrilo
acknowledged. A second signal (an impatient Ctrl-C) ends the process right away with 128 + the
signal number, without waiting for requests in flight; nothing is lost either way, because
state only ever advances after a 200, and the lease dies with the process.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RELOAD_SIGNAL = signal.SIGHUP


def install(request_stop: Callable[[], None]) -> None:
    """Route SIGTERM and SIGINT to `request_stop`; call from the main thread."""
    asked = [False]  # a plain flag: the handler must take no lock itself

    def handle(signum: int, _frame: FrameType | None) -> None:
        if asked[0]:
            # No logging here: the interrupted code may hold the logging lock.
            os.write(2, b"second stop signal: exiting now; unacknowledged records stay pending\n")
            os._exit(128 + signum)
        asked[0] = True
        # A handler runs between two bytecodes of the main thread, which may hold the very lock
        # an Event.set() needs; a short thread takes the locks instead.
        threading.Thread(target=request_stop, name="cdc-sync-stop", daemon=True).start()

    for signum in STOP_SIGNALS:
        signal.signal(signum, handle)


def install_reload(request_reload: Callable[[], None]) -> None:
    """Route SIGHUP to `request_reload` (from a short thread, as above); call from main."""

    def handle(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=request_reload, name="cdc-sync-sighup", daemon=True).start()

    signal.signal(RELOAD_SIGNAL, handle)
