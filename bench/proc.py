"""Running a measurement in a subprocess of its own, and reading its memory.

Every measured piece (a cycle, the reference read, the baseline, the sinks) runs in its own
process, so one's memory and warm caches never flatter another, and its peak RSS is its own.
The API secret reaches children through the environment, never their argv.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

TOKEN = "bench-token"
SECRET = "bench-secret"
ROOT = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "BENCH-RESULT "


class BenchError(RuntimeError):
    """A measurement subprocess failed; the message holds the end of its stderr."""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"METRILO_API_TOKEN": TOKEN, "METRILO_API_SECRET": SECRET, "PYTHONPATH": str(ROOT)})
    return env


def run_module(module: str, *args: str) -> dict[str, Any]:
    """Run `python -m module args`; returns the JSON it emitted with `emit`."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=child_env(),
        capture_output=True, text=True, check=False,
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            found: dict[str, Any] = json.loads(line.removeprefix(RESULT_PREFIX))
            return found
    tail = "\n".join(done.stderr.strip().splitlines()[-15:])
    raise BenchError(f"{module} {' '.join(args)} exited {done.returncode}:\n{tail}")


def emit(result: dict[str, Any]) -> None:
    """Hand a child's result to its parent (one line on stdout)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def peak_rss_mb() -> float:
    """This process's own peak resident set size so far.

    Linux's `VmHWM` (the high-water mark of this process's memory since its exec), not
    `ru_maxrss`: a child started by `subprocess` keeps the larger of its own peak and the
    parent's RSS at the fork, so every cycle measured after the bench's parent grew (it
    changes the shop and reads state for rows 2c and 2b) reported the parent's size.
    """
    hwm = _proc_status_mb("VmHWM:")
    if hwm:
        return hwm
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    """This process's resident set size now, from /proc (0 where there is no /proc)."""
    return _proc_status_mb("VmRSS:")


def _proc_status_mb(field: str) -> float:
    """A memory field of /proc/self/status in MB (0 where there is no /proc)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0
