"""What every model of mappings.yaml shares (pure): strict frozen models, column lists.

Private to the mapping package: its spec modules (model, related) build on these.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


ColumnList = Annotated[list[str], BeforeValidator(_as_list)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
