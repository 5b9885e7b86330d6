"""Chinook (a public sample store nobody here designed) loaded into a fresh test database.

The dataset lives in ../shared/datasets/chinook beside the repository (in CI too); a missing
dataset fails in CI and skips elsewhere, like a missing database server.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent.parent
DATASET = ROOT.parent / "shared" / "datasets" / "chinook"
_SCRIPTS = {"postgresql": ("Chinook_PostgreSql.sql", "\\c chinook;"),
            "mysql": ("Chinook_MySql.sql", "USE `Chinook`;")}


def load_chinook(url: str) -> None:
    """Create Chinook's tables and rows in the (empty) database at `url`."""
    backend = sa.make_url(url).get_backend_name()
    name, start = _SCRIPTS[backend]
    script = DATASET / name
    if not script.exists():
        message = f"the Chinook dataset is missing: {script}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    text = script.read_text(encoding="utf-8")
    body = text[text.index(start) + len(start):]  # after its own CREATE DATABASE and \c / USE
    options = {}
    if backend == "mysql":
        from pymysql.constants import CLIENT

        options = {"connect_args": {"client_flag": CLIENT.MULTI_STATEMENTS}}
    engine = sa.create_engine(url, **options)
    try:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(body)
            while backend == "mysql" and cursor.nextset():
                pass
            cursor.close()
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()
