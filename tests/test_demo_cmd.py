"""The README's main-job command: `cdc-sync demo` runs the whole tour on a fresh folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_syncs_changes_and_drops_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRILO_", "CDC_SYNC_"))}
    result = subprocess.run(
        [sys.executable, "-m", "cdc_sync", "demo", "--dir", str(tmp_path / "demo")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "orders Metrilo would have dropped: 0" in out
    assert "status='completed'" in out
    assert "arrived, dropped: no" in out
    assert "error" not in result.stderr.lower()
    assert (tmp_path / "demo" / "state.sqlite").exists()
