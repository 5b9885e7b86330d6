"""docker/: what can be checked without a Docker engine, and the entrypoint's commands for real."""

from __future__ import annotations

import configparser
import fnmatch
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from cdc_sync.demo.generate import SMALL, generate
from cdc_sync.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
BIN = Path(sys.executable).parent


def _dockerfile() -> list[str]:
    """Instructions of docker/Dockerfile, continuation lines joined, comments dropped."""
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_is_slim_non_root_healthchecked_and_runs_the_entrypoint() -> None:
    lines = _dockerfile()
    assert [line for line in lines if line.startswith("FROM")] == [
        "FROM python:3.11-slim AS build", "FROM python:3.11-slim"]
    final = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM")):]
    users = [line.split()[1] for line in final if line.startswith("USER")]
    assert users
    assert users[-1] not in ("root", "0")
    health = next(line for line in final if line.startswith("HEALTHCHECK"))
    assert "/healthz" in health
    assert 'ENTRYPOINT ["cdc-sync-entrypoint"]' in final
    assert any("docker/entrypoint.sh /usr/local/bin/cdc-sync-entrypoint" in line
               for line in final)


def test_the_image_reads_mysql_shops_through_the_c_driver() -> None:
    # A bare mysql:// URL reads through mysqlclient when it imports (settings.usual_url): the
    # image builds its wheel against libmariadb-dev and installs the runtime library beside it.
    lines = _dockerfile()
    split = max(i for i, line in enumerate(lines) if line.startswith("FROM"))
    build, final = lines[:split], lines[split:]
    assert any("libmariadb-dev" in line and "pkg-config" in line for line in build)
    assert any(line.startswith("RUN pip wheel") and ".[mysqlclient]" in line for line in build)
    install = next(line for line in final if "pip install" in line)
    assert "libmariadb3" in install
    assert "cdc-sync[mysqlclient]" in install
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(r.startswith("mysqlclient") for r in extras["optional-dependencies"]["mysqlclient"])


def test_every_file_the_dockerfile_copies_exists_and_is_not_ignored() -> None:
    ignore = [p.strip() for p in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
              if p.strip() and not p.startswith("#")]
    for line in _dockerfile():
        if not line.startswith("COPY") or "--from" in line:
            continue
        sources = [w for w in line.split()[1:-1] if not w.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"{source} (in {line!r}) does not exist"
            assert _included(source, ignore), f"{source} is excluded by the .dockerignore"


def _included(path: str, patterns: list[str]) -> bool:
    included = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        bare = pattern.lstrip("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if bare == "**" or any(fnmatch.fnmatch(p, bare) for p in prefixes):
            included = negate
    return included


def test_compose_runs_a_postgresql_shop_the_sandbox_and_the_daemon_on_postgresql_state() -> None:
    compose: dict[str, Any] = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"shop-db", "state-db", "seed", "sandbox", "cdc-sync"} <= set(services)
    daemon = services["cdc-sync"]
    env = daemon["environment"]
    assert env["CDC_SYNC_STATE_URL"].startswith("postgresql+psycopg://")
    assert env["CDC_SYNC_SOURCE_URL"].startswith("postgresql+psycopg://")
    assert env["METRILO_API_URL"] == "http://sandbox:8765/v2"
    assert env["METRILO_API_TOKEN"] == services["sandbox"]["environment"]["METRILO_API_TOKEN"]
    assert env["METRILO_API_SECRET"] == services["sandbox"]["environment"]["METRILO_API_SECRET"]
    assert daemon["depends_on"]["seed"]["condition"] == "service_completed_successfully"
    assert "cdc-sync demo-shop postgresql+psycopg://" in services["seed"]["command"][0]
    assert daemon["build"]["dockerfile"] == "docker/Dockerfile"
    for service in services.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port} is published beyond this machine"
    assert services["cdc-sync-standby"]["profiles"] == ["ha"]


def test_systemd_unit_upgrades_then_runs_and_stops_with_sigterm() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DOCKER / "cdc-sync.service")
    service = unit["Service"]
    assert service["ExecStartPre"].endswith("cdc-sync db upgrade")
    assert service["ExecStart"].endswith("cdc-sync run")
    assert service["KillSignal"] == "SIGTERM"
    assert service["User"] == "cdc-sync"
    assert service["RestartPreventExitStatus"] == "2"
    assert "LoadCredential" in service
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_every_package_of_cdc_sync_ships_in_the_wheel() -> None:
    """The image installs a wheel: a package missing from pyproject would be missing there."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(project["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "cdc_sync").rglob("__init__.py")}
    assert found - listed == set()


@pytest.fixture
def entrypoint_env(tmp_path: Path) -> dict[str, str]:
    shop = tmp_path / "shop.sqlite"
    engine = sa.create_engine(f"sqlite:///{shop}")
    generate(engine, customers=SMALL.customers, categories=SMALL.categories,
             products=SMALL.products, orders=SMALL.orders, seed=1)
    engine.dispose()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CDC_SYNC_", "METRILO_"))}
    return base | {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "CDC_SYNC_SOURCE_URL": f"sqlite:///{shop}",
        "CDC_SYNC_STATE_URL": f"sqlite:///{tmp_path}/state.sqlite",
        "CDC_SYNC_MAPPINGS": str(ROOT / "mappings.yaml"),
        "METRILO_API_TOKEN": "t", "METRILO_API_SECRET": "s",
    }


def test_entrypoint_upgrades_the_state_db_then_execs_the_daemon(
        tmp_path: Path, entrypoint_env: dict[str, str]) -> None:
    log = tmp_path / "entrypoint.log"
    with Sandbox(token="t", secret="s") as sandbox, log.open("wb") as out:
        env = entrypoint_env | {"METRILO_API_URL": sandbox.url}
        process = subprocess.Popen(["sh", str(DOCKER / "entrypoint.sh"), "--interval", "1"],
                                   cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while "sync cycle ok" not in log.read_text() and time.monotonic() < deadline:
                assert process.poll() is None, log.read_text()
                time.sleep(0.1)
            process.send_signal(signal.SIGTERM)  # reaches cdc-sync itself: the shell exec'd it
            assert process.wait(20) == 0
        finally:
            if process.poll() is None:
                process.kill()
        text = log.read_text()
        assert re.search(r"state DB .* is at revision \w+ \(newest\)", text)
        assert text.index("(newest)") < text.index("sync cycle ok")
        assert sandbox.store.counts()["orders"] == SMALL.orders


def test_entrypoint_gives_up_when_the_state_db_never_comes(
        tmp_path: Path, entrypoint_env: dict[str, str]) -> None:
    env = entrypoint_env | {
        "CDC_SYNC_STATE_URL": f"sqlite:///{tmp_path}/missing/dir/state.sqlite",
        "CDC_SYNC_UPGRADE_ATTEMPTS": "2",
    }
    done = subprocess.run(["sh", str(DOCKER / "entrypoint.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert "state DB not ready (attempt 1 of 2)" in done.stderr
    assert "giving up" in done.stderr
