"""The pure core imports no I/O library, and nothing reads settings or does I/O at import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cdc_sync"
PURE = [
    "mapping/model.py", "mapping/labels.py", "mapping/loader.py", "mapping/locations.py",
    "compose.py", "coerce.py", "validate.py", "diff.py", "cursor.py", "report.py",
    "resources.py", "errors.py", "signing.py", "catalogue.py",
]
IO_LIBRARIES = {"sqlalchemy", "httpx", "apscheduler", "click", "rich", "psycopg", "pymysql"}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", PURE)
def test_pure_core_module_imports_no_io_library(module: str) -> None:
    assert _imported_roots(PACKAGE / module) & IO_LIBRARIES == set()


def test_only_the_cli_prints() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "cli" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "print"):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []
