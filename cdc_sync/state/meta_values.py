"""Meta values: named strings state keeps between cycles (high-water marks, mapping
fingerprints...; `marks` gives them their meaning)."""

from __future__ import annotations

import sqlalchemy as sa

from cdc_sync.state import statements
from cdc_sync.state.access import StateAccess, utc_now
from cdc_sync.state.tables import meta


class MetaValues(StateAccess):
    """Read and set one meta value by name."""

    def get_meta(self, name: str) -> str | None:
        """The meta value `name` (a high-water mark, a mapping fingerprint...), or None."""
        stmt = sa.select(meta.c.value).where(meta.c.name == name)
        with self._errors(f"read meta {name!r}"), self._engine.connect() as conn:
            value = conn.execute(stmt).scalar_one_or_none()
        return None if value is None else str(value)

    def meta_values(self) -> dict[str, str]:
        """Every meta value by name, in one query (a cycle reads its marks once: a few values
        per resource and tracker, and the mapping each resource was last synced on)."""
        stmt = sa.select(meta.c.name, meta.c.value)
        return {str(name): str(value) for name, value in self._fetch("read meta values", stmt)}

    def set_meta(self, name: str, value: str) -> None:
        """Set the meta value `name`."""
        insert = statements.upsert(self._dialect, meta)
        stmt = insert.values(name=name, value=value, updated_at=utc_now()).on_conflict_do_update(
            index_elements=[meta.c.name],
            set_={"value": insert.excluded.value, "updated_at": insert.excluded.updated_at},
        )
        self._write(f"write meta {name!r}", stmt, [{}])
