"""The statements a test's code sends to a database, seen from SQLAlchemy's cursor events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import sqlalchemy as sa


class Sent(NamedTuple):
    statement: str
    parameters: Any
    executemany: bool  # one statement for many rows
    cursor: type[Any]  # the DBAPI cursor's class: server-side or client-side, which loop


class Statements:
    """Records what is sent through `target` (an engine, or `sa.Engine`: every engine) while
    inside the `with`: an executemany counts once."""

    def __init__(self, target: sa.Engine | type[sa.Engine]) -> None:
        self.statements: list[Sent] = []
        self._target = target

    def __enter__(self) -> Statements:
        sa.event.listen(self._target, "before_cursor_execute", self._keep)
        return self

    def __exit__(self, *_: object) -> None:
        sa.event.remove(self._target, "before_cursor_execute", self._keep)

    def matching(self, wanted: Callable[[str], bool]) -> list[str]:
        """The SQL of the statements sent so far that `wanted` picks, in the order sent."""
        return [sent.statement for sent in self.statements if wanted(sent.statement)]

    def _keep(self, _conn: Any, cursor: Any, statement: str, parameters: Any, _context: Any,
              executemany: bool) -> None:
        self.statements.append(Sent(statement, parameters, executemany, type(cursor)))
