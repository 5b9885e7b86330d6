"""What `check` says of a mapping on a shop, and the one problem a test looks for in it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cdc_sync.errors import MappingError, Problem
from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.source import ShopSource, connect_shop


def check(url: str, text: str) -> list[Problem]:
    """The problems `check` finds in the mapping `text` (indented as in a test) on the shop."""
    engine = connect_shop(url)
    try:
        return ShopSource(engine, parse_mapping(textwrap.dedent(text),
                                                Path("mappings.yaml"))).check()
    finally:
        engine.dispose()


def loader_problems(text: str) -> list[Problem]:
    """The problems the loader raises for the mapping `text` (indented as in a test)."""
    with pytest.raises(MappingError) as raised:
        parse_mapping(textwrap.dedent(text), Path("mappings.yaml"))
    return raised.value.problems


def find(problems: list[Problem], where: str, *words: str) -> Problem:
    """The first problem located at `where` that says all of `words`; fails when none does."""
    for problem in problems:
        if where in problem.where and all(w in str(problem) for w in words):
            return problem
    raise AssertionError(f"no problem at {where} with {words} in:\n" +
                         "\n".join(map(str, problems)))
