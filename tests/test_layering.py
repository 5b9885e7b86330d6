"""The layers' rules that import-linter cannot see: only the CLI prints, every module is under
the contracts, the pure core's own imports.

import-linter (`lint-imports`, contracts in pyproject.toml, run by README's test command)
checks the direction of imports, indirect ones included.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cdc_sync"
# The whole core package, plus the pure parts that live beside the layers they serve.
CORE = sorted(p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "core").glob("*.py"))
PURE = [
    *CORE,
    "mapping/model.py", "mapping/base.py", "mapping/related.py", "mapping/labels.py",
    "mapping/loader.py", "mapping/locations.py",
    "errors.py", "metrilo/signing.py",
    # init: schema facts in, mapping text out (reflection and checking live in reflect/build)
    "init/facts.py", "init/columns.py", "init/roles.py", "init/generic.py", "init/draft.py",
    "init/yamltext.py", "init/detect.py", "init/presets/__init__.py",
    "init/presets/woocommerce.py", "init/presets/magento.py", "init/presets/prestashop.py",
    "init/presets/opencart.py",
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


def _contracts() -> dict[str, dict[str, list[str]]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["name"]: c for c in config["tool"]["importlinter"]["contracts"]}


def test_every_module_but_the_cli_is_kept_from_the_terminal_by_a_contract() -> None:
    """A new module or package must join the contract, or it could import click unseen."""
    contract = next(c for name, c in _contracts().items() if name.startswith("Only the CLI"))
    top_level = {f"cdc_sync.{p.stem}" for p in PACKAGE.glob("*.py")} | {
        f"cdc_sync.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}
    exempt = {"cdc_sync.__init__", "cdc_sync.__main__", "cdc_sync.cli"}
    assert top_level - exempt - set(contract["source_modules"]) == set()


def test_the_pure_core_contract_names_every_pure_module() -> None:
    contract = next(c for name, c in _contracts().items() if name.startswith("The pure core"))
    listed = set(contract["source_modules"])
    for module in PURE:
        dotted = "cdc_sync." + module.removesuffix(".py").replace("/", ".")
        assert dotted in listed or dotted.rsplit(".", 1)[0] in listed, module
    assert set(contract["forbidden_modules"]) >= IO_LIBRARIES


def test_every_error_class_lives_in_errors_py() -> None:
    """One place to see what can go wrong and what each error's exit code is."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = [ast.unparse(b) for b in node.bases]
            if node.name.endswith(("Error", "Exception")) or any(
                    b.endswith(("Error", "Exception")) for b in bases):
                offenders.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert offenders == []
