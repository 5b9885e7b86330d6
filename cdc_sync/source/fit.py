"""Whether a coercion can apply to a column's reflected type (timestamp on a BOOLEAN cannot)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from cdc_sync.mapping.model import Coercion, FieldSpec

_UNFIT: dict[Coercion, frozenset[str]] = {
    Coercion.TIMESTAMP: frozenset({"boolean", "time"}),
    Coercion.BOOLEAN: frozenset({"datetime", "date", "time"}),
    Coercion.NUMBER: frozenset({"datetime", "date", "time"}),
    Coercion.INTEGER: frozenset({"datetime", "date", "time"}),
    Coercion.EMAIL: frozenset({"boolean", "datetime", "date", "time", "integer", "number"}),
}
_EPOCH_FIT = frozenset({"integer", "number", "text"})


def type_family(type_: sa.types.TypeEngine[Any]) -> str | None:
    """boolean, datetime, date, time, integer, number or text; None when unknown."""
    # MySQL and MariaDB store BOOLEAN as TINYINT(1).
    if isinstance(type_, sa.Boolean) or (
        isinstance(type_, mysql.TINYINT) and getattr(type_, "display_width", None) == 1
    ):
        return "boolean"
    families: list[tuple[type[Any], str]] = [
        (sa.DateTime, "datetime"), (sa.Date, "date"), (sa.Time, "time"),
        (sa.Integer, "integer"), (sa.Numeric, "number"), (sa.String, "text"),
    ]
    for kind, family in families:
        if isinstance(type_, kind):
            return family
    return None


def misfit(coercion: Coercion, spec: FieldSpec, type_: sa.types.TypeEngine[Any]) -> str | None:
    """Why the coercion cannot apply to a column of this type, or None when it can."""
    family = type_family(type_)
    if family is None:
        return None
    shown = "BOOLEAN" if family == "boolean" else type_display(type_)
    if family in _UNFIT.get(coercion, frozenset()):
        return f"type {coercion.value} cannot apply to a {shown} column"
    if spec.epoch is not None and family not in _EPOCH_FIT:
        return f"epoch: {spec.epoch.value} needs a numeric column, not {shown}"
    return None


def type_display(type_: sa.types.TypeEngine[Any]) -> str:
    try:
        return str(type_.compile())
    except sa.exc.CompileError:
        return type(type_).__name__.upper()
