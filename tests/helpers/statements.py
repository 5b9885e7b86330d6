"""The statements a test's code sends to a database, seen from SQLAlchemy's cursor events."""

from __future__ import annotations

from typing import Any, NamedTuple

import sqlalchemy as sa


class Sent(NamedTuple):
    statement: str
    parameters: Any
    executemany: bool  # one statement for many rows


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

    def _keep(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
              executemany: bool) -> None:
        self.statements.append(Sent(statement, parameters, executemany))
