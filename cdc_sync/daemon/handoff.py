"""Commands run beside a daemon: hand a resync to it, or hold its lease while working alone.

Whether a daemon is active is the lease (see lease.py): a command that can take the lease
knows no daemon pushes, and keeps it while it works, so a standby replica cannot start a
cycle underneath it. A command that cannot take it knows a daemon is active.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from cdc_sync.core.resources import Resource
from cdc_sync.daemon.lease import identity, open_lease
from cdc_sync.errors import DaemonRunningError
from cdc_sync.settings import redact_url
from cdc_sync.state import StateStore
from cdc_sync.state.run_history import process_gone


@dataclass(frozen=True)
class HandedOver:
    """A resync request written for the running daemon."""

    request_id: int
    daemon: str  # who holds the lease, as far as can be told


@contextmanager
def resync_or_hand_over(
    state_url: str, resources: Sequence[Resource], *, confirm: bool = False,
    restart: bool = False,
) -> Iterator[HandedOver | None]:
    """Yields HandedOver when a running daemon was asked to resync (do nothing more), or None
    while this process holds the lease: run the resync in the foreground inside the block."""
    lease = open_lease(state_url)
    try:
        if lease.acquire():
            yield None
            return
        with StateStore.open(state_url) as state:
            request_id = state.request_resync(
                [r.value for r in resources], identity(), confirm=confirm, restart=restart
            )
        yield HandedOver(request_id, lease.holder() or "the running daemon")
    finally:
        lease.release()


@contextmanager
def foreground_lease(state_url: str, command: str = "sync") -> Iterator[None]:
    """Hold the lease for a foreground `command`; DaemonRunningError when a daemon is active."""
    lease = open_lease(state_url)
    try:
        if not lease.acquire():
            raise DaemonRunningError(
                f"a cdc-sync daemon is running on the state DB {redact_url(state_url)} "
                f"({lease.holder() or 'another process'}); fix: let it do the work (it syncs "
                f"every interval; `cdc-sync resync` hands a resync to it), or stop it before "
                f"running `cdc-sync {command}`"
            )
        yield
    finally:
        lease.release()


def owner_gone(state_url: str) -> Callable[[str | None], bool]:
    """For `status`: whether the process that owns a run ("pid@host") is gone. Told by its pid
    on this host; otherwise by the lease: every process that runs cycles holds it, so a free
    lease means nobody runs one (asked once, as `active_daemon` does)."""

    @functools.cache
    def lease_free() -> bool:
        return active_daemon(state_url) is None

    def gone(owner: str | None) -> bool:
        local = process_gone(owner)
        return lease_free() if local is None else local

    return gone


def active_daemon(state_url: str) -> str | None:
    """Who holds the lease (a running daemon, or a foreground resync), or None (for `status`).

    Finding out takes the lease for an instant when it is free; a standby waits one retry more.
    """
    lease = open_lease(state_url)
    try:
        if lease.acquire():
            return None
        return lease.holder() or "another cdc-sync process"
    finally:
        lease.release()
