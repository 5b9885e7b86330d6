"""Noticing an edited mappings.yaml and checking it, beside the worker.

The watch job hashes the file every poll (SHA-256 of a few KB: cheap, and blind to coarse or
preserved mtimes, editors that replace the file, and mounted ConfigMaps that swap a symlink).
A change is checked once the file stayed the same for one poll, so a save caught half-written
is not reported as broken. SIGHUP checks at once, an unchanged file too: the shop's schema may
have changed under it.

A check is exactly `cdc-sync check`: load the file (every YAML problem with its line), then
`ShopSource(shop, mapping).check()` against the reflected schema, over a short-lived shop
connection of its own. It runs in a thread of its own: the duplicate-key checks may read whole
tables, and the worker may be hours into a first import; a broken edit is reported within a
poll whatever the worker does. The worker swaps a good mapping in between two cycles (see
live_mapping.py), never in the middle of one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cdc_sync.errors import CdcSyncError, MappingError, Problem
from cdc_sync.mapping.loader import LoadedMapping, load_mapping
from cdc_sync.source import ShopSource, connect_shop

log = logging.getLogger("cdc_sync.daemon")

_RETRY_FIX = ("nothing to do if the shop is just restarting: the daemon checks the file again "
              "every interval (or at once on SIGHUP); meanwhile it runs on the last good mapping")


@dataclass(frozen=True)
class CheckedEdit:
    """What checking the mapping file found."""

    mapping: LoadedMapping | None  # it fits the shop: swap it in (None: keep the current one)
    problems: tuple[Problem, ...] = ()  # why not, each with its YAML line where it has one
    unchanged: bool = False  # means the same as the mapping in force (comments, layout)
    unchecked: bool = False  # the shop could not be asked: checked again later
    on_request: bool = False  # asked for by SIGHUP, not noticed by the watch


class MappingWatcher:
    """Watches one mapping file; hands each checked edit to `on_checked` (from its thread)."""

    def __init__(self, path: Path, shop_url: str, *, current: Callable[[], LoadedMapping],
                 on_checked: Callable[[CheckedEdit], None], retry_seconds: float) -> None:
        self.path = path
        self._shop_url = shop_url
        self._current = current
        self._on_checked = on_checked
        self._retry_seconds = retry_seconds
        self._lock = threading.Lock()  # guards everything below
        self._seen: str | None = None  # the digest at the last poll
        self._checked: str | None = None  # the digest last checked (None: not yet)
        self._retry_at = 0.0  # after an unchecked edit
        self._thread: threading.Thread | None = None
        self._again = False  # a SIGHUP came while a check ran

    def poll(self) -> None:
        """From the watch job: start a check when the file changed and has settled since."""
        digest = file_digest(self.path)
        with self._lock:
            settled = digest == self._seen
            self._seen = digest
            if (not settled or digest == self._checked or self._thread is not None
                    or time.monotonic() < self._retry_at):
                return
            self._start(digest, on_request=False)

    def request(self) -> None:
        """SIGHUP: check the file now, changed or not."""
        with self._lock:
            if self._thread is not None:
                self._again = True
                return
            self._start(file_digest(self.path), on_request=True)

    def close(self, timeout: float = 5.0) -> None:
        """Wait briefly for a running check (it only reads); the process may exit meanwhile."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _start(self, digest: str, *, on_request: bool) -> None:
        thread = threading.Thread(target=self._run, args=(digest, on_request),
                                  name="cdc-sync-mapping-check", daemon=True)
        self._thread = thread
        thread.start()

    def _run(self, digest: str, on_request: bool) -> None:
        try:
            while True:
                edit = self._check_safely(on_request)
                with self._lock:
                    if edit.unchecked:
                        self._retry_at = time.monotonic() + self._retry_seconds
                    else:
                        self._checked, self._retry_at = digest, 0.0
                self._on_checked(edit)
                with self._lock:
                    if not self._again:
                        self._thread = None  # under the lock: a SIGHUP now starts a new check
                        return
                    self._again, on_request = False, True
                    digest = file_digest(self.path)
        except Exception:  # a bug must not stop the watch for good: the next edit is checked
            log.exception("handling the check of %s failed unexpectedly", self.path)
            with self._lock:
                self._thread = None

    def _check_safely(self, on_request: bool) -> CheckedEdit:
        try:
            return self._check(on_request)
        except Exception as exc:  # a bug must not end the watch: report it, try again later
            log.exception("checking %s failed unexpectedly", self.path)
            what = f"could not be checked (unexpected {type(exc).__name__}: {exc})"
            return CheckedEdit(None, (Problem(str(self.path), what, _RETRY_FIX),),
                               unchecked=True, on_request=on_request)

    def _check(self, on_request: bool) -> CheckedEdit:
        try:
            mapping = load_mapping(self.path)
        except MappingError as exc:
            return CheckedEdit(None, tuple(exc.problems), on_request=on_request)
        if mapping.fingerprint == self._current().fingerprint and not on_request:
            return CheckedEdit(mapping, unchanged=True)
        try:
            problems = fit_problems(mapping, self._shop_url)
        except CdcSyncError as exc:
            what = f"could not be checked against the shop database: {exc}"
            return CheckedEdit(None, (Problem(str(self.path), what, _RETRY_FIX),),
                               unchecked=True, on_request=on_request)
        unchanged = mapping.fingerprint == self._current().fingerprint
        if problems:
            return CheckedEdit(None, tuple(problems), unchanged=unchanged, on_request=on_request)
        return CheckedEdit(mapping, unchanged=unchanged, on_request=on_request)


def fit_problems(mapping: LoadedMapping, shop_url: str) -> list[Problem]:
    """What `cdc-sync check` reports for `mapping` against the shop (reads only)."""
    shop = connect_shop(shop_url)
    try:
        return ShopSource(shop, mapping).check()
    finally:
        shop.dispose()


def file_digest(path: Path) -> str:
    """The SHA-256 of the file; a missing or unreadable file has a digest of its own."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable: {type(exc).__name__}"
