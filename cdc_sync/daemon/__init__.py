"""`cdc-sync run`: the scheduler daemon, its lease, health endpoint, metrics and webhook.

Nothing here runs at import time; `Daemon(settings, options, mapping).run()` does the work.
"""

from cdc_sync.daemon.handoff import (
    HandedOver,
    active_daemon,
    foreground_lease,
    resync_or_hand_over,
)
from cdc_sync.daemon.scheduler import Daemon
from cdc_sync.daemon.settings import DaemonSettings, load_daemon_settings
from cdc_sync.errors import DaemonRunningError

__all__ = [
    "Daemon",
    "DaemonRunningError",
    "DaemonSettings",
    "HandedOver",
    "active_daemon",
    "foreground_lease",
    "load_daemon_settings",
    "resync_or_hand_over",
]
