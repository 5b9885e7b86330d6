"""Every command has help text and is documented in README.md; the demo mapping stays in sync."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cdc_sync.cli import cli
from cdc_sync.demo.scenario import demo_mapping_path

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[tuple[str, click.Command]]:
    found = []
    for name, command in cli.commands.items():
        found.append((name, command))
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", c) for sub, c in command.commands.items()]
    return found


@pytest.mark.parametrize(("name", "command"), _commands(), ids=[n for n, _ in _commands()])
def test_every_command_has_help(name: str, command: click.Command) -> None:
    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert (command.help or "").strip(), f"{name} has no help text"


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_is_documented_in_the_readme(name: str) -> None:
    assert f"`{name}" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_packaged_demo_mapping_equals_the_top_level_one() -> None:
    packaged = demo_mapping_path().read_text(encoding="utf-8")
    assert packaged == (ROOT / "mappings.yaml").read_text(encoding="utf-8")
