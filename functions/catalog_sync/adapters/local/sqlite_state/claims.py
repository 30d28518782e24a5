"""The claim on a catalog's newest object, on SQLite (the `source` meta row): the same rules as on DynamoDB
(catalog_sync.logic.drops), read, judged and written in one transaction."""

from __future__ import annotations

import sqlite3

from catalog_sync.adapters.local.sqlite_state.table import SqliteTable
from catalog_sync.logic.drops import DropClaim, claimed, may_claim

_SOURCE = "source"


class SourceClaims(SqliteTable):
    def claim_source(self, *, modified: float, key: str, version_id: str | None, sequencer: str | None = None) -> bool:
        """Record that a run reads the catalog object `key` (at `version_id`, written with `sequencer` when known),
        last modified at `modified` (epoch seconds), unless a run already read a newer one: False then, and this
        object must not be synced. Which drop is newer: catalog_sync.logic.drops."""
        claim = DropClaim(key=key, modified=modified, version_id=version_id, sequencer=sequencer)
        with self._transaction() as connection:
            stored = self._newest_claim(connection)
            if not may_claim(claim, stored):
                return False
            self._set_meta(connection, [(_SOURCE, claimed(claim, stored).model_dump_json())])
        return True

    def newest_source(self) -> tuple[float, str, str | None] | None:
        """(modified, key, version id) of the newest catalog object a run has read, if any."""
        claim = self._newest_claim(self._connection)
        return None if claim is None else (claim.modified, claim.key, claim.version_id)

    def _newest_claim(self, connection: sqlite3.Connection) -> DropClaim | None:
        row = connection.execute("SELECT value FROM meta WHERE key = ?", (_SOURCE,)).fetchone()
        return DropClaim.model_validate_json(row[0]) if row else None
