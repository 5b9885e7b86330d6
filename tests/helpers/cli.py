"""Running `cdc-sync` as a separate process against a World, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers.world import SECRET, TOKEN, World


def cli_env(world: World, **extra: str) -> dict[str, str]:
    """The environment of a cdc-sync process pointed at the world's shop, state and sandbox."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRILO_", "CDC_SYNC_"))}
    env.update({
        "METRILO_API_TOKEN": TOKEN,
        "METRILO_API_SECRET": SECRET,
        "METRILO_API_URL": world.sandbox.url,
        "CDC_SYNC_SOURCE_URL": world.shop_url,
        "CDC_SYNC_STATE_URL": world.state_url,
        "CDC_SYNC_MAPPINGS": str(world.mapping.path),
        "CDC_SYNC_MAX_RETRY_SECONDS": "5",
    })
    env.update(extra)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cdc_sync", *args]


def run_cli(world: World, *args: str, cwd: Path | None = None,
            **env: str) -> subprocess.CompletedProcess[str]:
    """Run `cdc-sync ARGS` to the end; the result holds the exit code, stdout and stderr."""
    return subprocess.run(
        command(*args), cwd=cwd or world.tmp, env=cli_env(world, **env),
        capture_output=True, text=True, timeout=120, check=False,
    )
