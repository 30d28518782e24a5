"""The claim on a catalog's newest object, on SQLite (the `source` meta row): the same rules as on DynamoDB
(catalog_sync.logic.drops), read, judged and written in one transaction."""

from __future__ import annotations

import sqlite3

from catalog_sync.adapters.local.sqlite_state.table import SqliteTable
from catalog_sync.logic.drops import DropClaim, claimed, may_claim, same_object

_SOURCE = "source"
_PRIOR = "source_prior"  # the claim the newest replaced: the newest again if the newest's run is held


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
            rows = [(_SOURCE, claimed(claim, stored).model_dump_json())]
            if stored is not None and not same_object(claim, stored):  # a re-claim (a retry) keeps its prior
                rows.append((_PRIOR, stored.model_dump_json()))
            elif stored is None:
                self._delete_meta(connection, _PRIOR)
            self._set_meta(connection, rows)
        return True

    def withdraw_claim(self, claim: DropClaim) -> None:
        """The guard held the run of `claim`'s drop: the drop is as if it had not come. The claim it replaced is the
        newest again; if another drop was claimed since, that one no longer falls back to the held drop."""
        with self._transaction() as connection:
            current, prior = self._newest_claim(connection), self._newest_claim(connection, _PRIOR)
            if current is not None and same_object(current, claim):
                if prior is None:
                    self._delete_meta(connection, _SOURCE)
                else:
                    self._set_meta(connection, [(_SOURCE, prior.model_dump_json())])
                self._delete_meta(connection, _PRIOR)
            elif prior is not None and same_object(prior, claim):
                self._delete_meta(connection, _PRIOR)

    def newest_claim(self) -> DropClaim | None:
        """The newest catalog object a run has read, with its sequencer when an event gave it."""
        return self._newest_claim(self._connection)

    def newest_source(self) -> tuple[float, str, str | None] | None:
        """(modified, key, version id) of the newest catalog object a run has read, if any."""
        claim = self._newest_claim(self._connection)
        return None if claim is None else (claim.modified, claim.key, claim.version_id)

    def _newest_claim(self, connection: sqlite3.Connection, row_key: str = _SOURCE) -> DropClaim | None:
        row = connection.execute("SELECT value FROM meta WHERE key = ?", (row_key,)).fetchone()
        return DropClaim.model_validate_json(row[0]) if row else None

    @staticmethod
    def _delete_meta(connection: sqlite3.Connection, row_key: str) -> None:
        connection.execute("DELETE FROM meta WHERE key = ?", (row_key,))
