"""Sums that stay exact where the database adds binary floats (SQLite, REAL/DOUBLE columns).

PostgreSQL and MySQL/MariaDB add DECIMAL columns exactly and return a Decimal. SQLite has no
decimal type: it adds 0.1 + 0.2 + 0.6 as floats and gives 0.8999999999999999, and so does any
database summing a float column. Rounded to 15 significant digits (what a float holds
exactly), such a sum of money is the decimal the shop stored: 0.9.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

FLOAT_DIGITS = 15
"""Significant decimal digits a binary float always represents exactly."""


class ExactSum(sa.types.TypeDecorator[Any]):
    """The result type of SUM(...): floats become the Decimal they stand for; others as given."""

    impl = sa.types.NullType
    cache_ok = True

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:  # noqa: ARG002
        if isinstance(value, float):
            return Decimal(format(value, f".{FLOAT_DIGITS}g"))
        return value


def exact_sum(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """SUM(column), 0 for no rows (or only NULLs), floats read back as the decimal they mean."""
    # The column's own type is bypassed on purpose: SQLite's NUMERIC processor would round a
    # sum of unknown scale to 10 places and mask nothing more than this does.
    return sa.type_coerce(sa.func.coalesce(sa.func.sum(column), 0), ExactSum())
