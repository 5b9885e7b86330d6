"""A bad mappings.yaml stops `check` and `sync` with one clear problem, before anything is sent.

Each case edits the demo mapping in one place, then runs the real CLI as a subprocess against
a SQLite demo shop and a sandbox: both commands must exit 2 naming the file, the line and a
fix, and the sandbox must have received nothing.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from cdc_sync.demo.generate import generate
from cdc_sync.demo.scenario import demo_mapping_path
from cdc_sync.sandbox import Sandbox

TOKEN, SECRET = "bad-mapping-token", "bad-mapping-secret"
DEMO = demo_mapping_path().read_text(encoding="utf-8")
# The demo's tags child, from its first line to its last (a case swaps it for a raw query).
TAGS_CHILD = DEMO[DEMO.index("    tags:"):DEMO.index("      order_by: t.name\n") + 23]


@dataclass(frozen=True)
class Case:
    """One edit of the demo mapping: `old` becomes `new`; `marker` is on the bad line."""

    old: str
    new: str
    marker: str
    words: tuple[str, ...]

    def text(self) -> str:
        assert DEMO.count(self.old) == 1, f"the demo mapping changed: {self.old!r}"
        return DEMO.replace(self.old, self.new)

    def line(self) -> int:
        lines = self.text().splitlines()
        found = [n for n, line in enumerate(lines, 1) if self.marker in line]
        assert len(found) == 1, f"marker {self.marker!r} is on lines {found}"
        return found[0]


# Problems the loader finds from the file alone.
LOADER_CASES = {
    "malformed YAML (a tab indents a key)": Case(
        "    firstName: first_name\n", "\tfirstName: first_name\n", "\tfirstName",
        ("malformed YAML", "fix the YAML syntax")),
    "a wrong type (text where a number belongs)": Case(
        "\ncategories:\n", "\nsync:\n  delete_guard: lots\n\ncategories:\n", "delete_guard",
        ("delete_guard must be a number", "set delete_guard to a number")),
    "a wrong type (a number where a field belongs)": Case(
        "    lastName: last_name\n", "    lastName: 5\n", "lastName: 5",
        ("field lastName must be a column name or a mapping", "write `name: column`")),
    "an unknown key": Case(
        "products:\n  table: products\n  cursor: updated_at\n",
        "products:\n  table: products\n  curser: updated_at\n", "curser",
        ("unknown key 'curser'; did you mean 'cursor'?", "rename it to cursor")),
    "a duplicate resource": Case(
        "deleted_products:", "categories:  # again\n  table: categories\n"
        "  fields: {id: id, name: name}\n\ndeleted_products:", "# again",
        ("duplicate key 'categories'", "merge the two categories: blocks into one")),
}

# Problems only the shop's schema reveals, in the first resource read (customers).
SCHEMA_CASES_FIRST = {
    "a template naming a missing column": Case(
        "    lastName: last_name\n", '    lastName: {template: "{last_nam}"}\n', "{last_nam}",
        ("template placeholder 'last_nam' is not a column", "did you mean 'last_name'?")),
    "a query that fails": Case(
        TAGS_CHILD, "    tags:\n      query: >-\n        SELECT ct.customer_id, t.name\n"
        "        FROM customer_tagz ct JOIN tags t ON t.id = ct.tag_id\n"
        "      parent_key: customer_id\n      value: name\n",
        "query: >-", ("the query fails", "customer_tagz", "correct it")),
}

# The same, in a resource read after others: a sync that only finds out while reading would
# already have sent the resources before it.
SCHEMA_CASES_LATER = {
    "a template naming a missing column": Case(
        '"https://demo-shop.example/p/{slug}"', '"https://demo-shop.example/p/{slugg}"',
        "{slugg}", ("template placeholder 'slugg' is not a column", "did you mean 'slug'?")),
    "a where that fails": Case(
        "orders:\n  table: orders\n", "orders:\n  table: orders\n  where: statuz = 1\n",
        "statuz", ("where fails", "statuz", "correct it")),
    "an expression that fails": Case(
        "    amount: total\n", "    amount: {expression: total * nosuchcolumn}\n",
        "nosuchcolumn", ("the expression fails", "nosuchcolumn", "correct it")),
}


@dataclass
class World:
    """A demo shop in SQLite, a sandbox, and the environment that points the CLI at them."""

    path: Path
    sandbox: Sandbox

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("METRILO_", "CDC_SYNC_"))}
        return base | {
            "METRILO_API_URL": self.sandbox.url, "METRILO_API_TOKEN": TOKEN,
            "METRILO_API_SECRET": SECRET, "CDC_SYNC_MAX_ATTEMPTS": "1",
            "CDC_SYNC_SOURCE_URL": f"sqlite:///{self.path}/shop.sqlite",
            "CDC_SYNC_STATE_URL": f"sqlite:///{self.path}/state.sqlite",
            "CDC_SYNC_MAPPINGS": str(self.path / "mappings.yaml"),
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cdc_sync", *args], cwd=self.path,
                              env=self.env(), capture_output=True, text=True, timeout=120,
                              check=False)

    def requests_received(self) -> dict[str, dict[str, int]]:
        requests: dict[str, dict[str, int]] = self.sandbox.store.stats()["requests"]
        return requests

    def synced_rows(self) -> int:
        state = self.path / "state.sqlite"
        if not state.exists():
            return 0
        with sqlite3.connect(state) as db:
            found = db.execute("SELECT name FROM sqlite_master WHERE name = 'sync_state'")
            if found.fetchone() is None:
                return 0
            return int(db.execute("SELECT COUNT(*) FROM sync_state").fetchone()[0])


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo shop for the module: every command reads it read-only."""
    path = tmp_path_factory.mktemp("shop") / "shop.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    generate(engine, customers=6, categories=2, products=5, orders=10)
    engine.dispose()
    return path


@pytest.fixture
def world(shop_file: Path, tmp_path: Path) -> Iterator[World]:
    (tmp_path / "shop.sqlite").write_bytes(shop_file.read_bytes())
    with Sandbox(token=TOKEN, secret=SECRET) as sandbox:
        yield World(tmp_path, sandbox)


def the_one_problem(output: str) -> str:
    """The single problem an error output lists (failing when it lists more or none)."""
    assert "(1):" in output, output
    problems = re.findall(r"^  - .*(?:\n    fix: .*)?", output, flags=re.MULTILINE)
    assert len(problems) == 1, output
    return str(problems[0])


def assert_clear(problem: str, case: Case) -> None:
    assert f"mappings.yaml:{case.line()}" in problem
    assert "\n    fix: " in problem
    for words in case.words:
        assert words in problem


def assert_refused(world: World, case: Case, command: str) -> None:
    (world.path / "mappings.yaml").write_text(case.text(), encoding="utf-8")
    done = world.run(command)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert_clear(the_one_problem(done.stderr), case)
    assert world.requests_received() == {}
    assert world.synced_rows() == 0


# --- the file alone is wrong ------------------------------------------------------------------


@pytest.mark.parametrize("case", LOADER_CASES.values(), ids=LOADER_CASES.keys())
@pytest.mark.parametrize("command", ["check", "sync"])
def test_malformed_mapping_stops_the_command_with_its_line_and_fix(
    world: World, case: Case, command: str,
) -> None:
    assert_refused(world, case, command)


def test_every_problem_of_a_file_is_listed_at_once(world: World) -> None:
    text = LOADER_CASES["an unknown key"].text().replace("    lastName: last_name\n",
                                                         "    lastName: 5\n")
    (world.path / "mappings.yaml").write_text(text, encoding="utf-8")
    done = world.run("check")
    assert done.returncode == 2
    assert "mapping problems (2):" in done.stderr
    assert done.stderr.index("lastName") < done.stderr.index("curser")  # in file order


def test_a_missing_mapping_file_says_how_to_make_one(world: World) -> None:
    done = world.run("sync")
    assert done.returncode == 2
    problem = the_one_problem(done.stderr)
    assert "mappings.yaml: the mapping file does not exist" in problem
    assert "CDC_SYNC_MAPPINGS" in problem
    assert world.requests_received() == {}


# --- the file does not fit the shop ---------------------------------------------------------------


@pytest.mark.parametrize("case", SCHEMA_CASES_FIRST.values(), ids=SCHEMA_CASES_FIRST.keys())
@pytest.mark.parametrize("command", ["check", "sync"])
def test_mapping_that_does_not_fit_the_shop_stops_the_command(
    world: World, case: Case, command: str,
) -> None:
    assert_refused(world, case, command)


@pytest.mark.parametrize("case", SCHEMA_CASES_LATER.values(), ids=SCHEMA_CASES_LATER.keys())
def test_check_finds_misfits_in_any_resource(world: World, case: Case) -> None:
    assert_refused(world, case, "check")


@pytest.mark.parametrize("case", SCHEMA_CASES_LATER.values(), ids=SCHEMA_CASES_LATER.keys())
def test_sync_sends_nothing_when_a_later_resource_does_not_fit(world: World, case: Case) -> None:
    assert_refused(world, case, "sync")


def test_a_good_mapping_passes_check_and_syncs(world: World) -> None:
    # The baseline the cases above edit: without the edit, both commands succeed.
    (world.path / "mappings.yaml").write_text(DEMO, encoding="utf-8")
    assert world.run("check").returncode == 0
    done = world.run("sync")
    assert done.returncode == 0, done.stderr
    assert world.requests_received() != {}
    assert world.synced_rows() > 0
