"""Products' desired and committed state, and the index settings, on SQLite: each write in one transaction, an
older desired version never over a newer, a commit only of the version still desired."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from catalog_sync.adapters.local.sqlite_state.table import SqliteTable, chunks
from catalog_sync.adapters.snapshot import Snapshot
from catalog_sync.logic.gc import paused_gc
from catalog_sync.logic.snapshot import FingerprintUpdate, StoredProduct
from catalog_sync.models.changes import Change, IndexAction, StateCounts
from catalog_sync.models.index import IndexEmbedder, IndexSettings

# Orphans found in the index have no known version: they count as present.
UNKNOWN_COMMITTED_VERSION = 0


class ProductState(SqliteTable):
    def snapshot(self) -> Snapshot:
        with paused_gc():
            return self._snapshot()

    def _snapshot(self) -> Snapshot:
        # Only products committed at their desired version may skip the full path.
        fingerprints = dict(self._connection.execute("SELECT fingerprint, id FROM fast_path"))
        live_ids = set(fingerprints.values())
        live_ids.update(
            row[0]
            for row in self._connection.execute(
                "SELECT id FROM products INDEXED BY products_pending WHERE (committed_version IS NOT "
                "desired_version OR fingerprint IS NULL) AND deleted = 0"
            )
        )
        pending_deletes = {
            row[0]
            for row in self._connection.execute(
                "SELECT id FROM products INDEXED BY products_pending WHERE (committed_version IS NOT "
                "desired_version OR fingerprint IS NULL) AND deleted = 1"
            )
        }
        return Snapshot(
            fingerprints=fingerprints,
            live_ids=live_ids,
            pending_deletes=pending_deletes,
            embedding_model=self._meta("embedding_model"),
            text_template=self._meta("text_template"),
            _get_many=self.get_many,
        )

    def get_many(self, product_ids: Sequence[str]) -> dict[str, StoredProduct]:
        found: dict[str, StoredProduct] = {}
        for chunk in chunks(product_ids):
            marks = ",".join("?" * len(chunk))
            for row in self._connection.execute(
                "SELECT id, desired_version, deleted, fingerprint, text_hash, metadata_hash, field_hashes, "
                f"committed_version, committed_text_hash, committed_metadata_hash FROM products WHERE id IN ({marks})",
                chunk,
            ):
                found[row[0]] = StoredProduct(
                    product_id=row[0],
                    desired_version=row[1],
                    deleted=bool(row[2]),
                    fingerprint=row[3],
                    text_hash=row[4],
                    metadata_hash=row[5],
                    field_hashes=orjson.loads(row[6]) if row[6] else {},
                    committed_version=row[7],
                    committed_text_hash=row[8],
                    committed_metadata_hash=row[9],
                )
        return found

    def record_index_settings(self, settings: IndexSettings) -> None:
        with self._transaction() as connection:
            self._set_meta(
                connection,
                [
                    ("embedding_model", settings.embedding_model),
                    ("text_template", settings.text_template),
                    ("index_settled", "1" if settings.settled else "0"),
                ],
            )
            if settings.embedder is None:
                connection.execute("DELETE FROM meta WHERE key = 'embedder'")
            else:
                self._set_meta(connection, [("embedder", settings.embedder.model_dump_json())])

    def index_settings(self) -> IndexSettings | None:
        keys = ("embedding_model", "text_template", "embedder", "index_settled")
        recorded = dict(self._connection.execute("SELECT key, value FROM meta WHERE key IN (?, ?, ?, ?)", keys))
        if "embedding_model" not in recorded:
            return None
        embedder = recorded.get("embedder")
        return IndexSettings(
            embedding_model=recorded["embedding_model"],
            text_template=recorded.get("text_template", ""),
            embedder=IndexEmbedder.model_validate_json(embedder) if embedder else None,
            settled=recorded.get("index_settled", "1") == "1",
        )

    def record_desired(self, changes: Sequence[Change], fingerprint_updates: Sequence[FingerprintUpdate]) -> None:
        """Write the desired state of every change, in one transaction; an older version never overwrites a newer."""
        present = [
            (
                change.product_id,
                change.version,
                change.fingerprint,
                change.text_hash,
                change.metadata_hash,
                orjson.dumps(change.field_hashes or {}),
            )
            for change in changes
            if change.action is not IndexAction.DELETE
        ]
        deletes = [(change.version, change.product_id) for change in changes if change.action is IndexAction.DELETE]
        with self._transaction() as connection:
            connection.executemany(
                "INSERT INTO products (id, desired_version, deleted, fingerprint, text_hash, metadata_hash, "
                "field_hashes) VALUES (?, ?, 0, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "desired_version = excluded.desired_version, deleted = 0, fingerprint = excluded.fingerprint, "
                "text_hash = excluded.text_hash, metadata_hash = excluded.metadata_hash, "
                "field_hashes = excluded.field_hashes WHERE excluded.desired_version > products.desired_version",
                present,
            )
            # A delete of an id the state never knew (an orphan in the index) needs a row to be tracked.
            connection.executemany(
                f"INSERT INTO products (id, desired_version, deleted, committed_version) VALUES (?, ?, 1, "
                f"{UNKNOWN_COMMITTED_VERSION}) ON CONFLICT(id) DO UPDATE SET desired_version = "
                "excluded.desired_version, deleted = 1 WHERE excluded.desired_version > products.desired_version",
                [(product_id, version) for version, product_id in deletes],
            )
            connection.executemany(
                "UPDATE products SET fingerprint = ? WHERE id = ? AND desired_version = ?",
                [(u.fingerprint, u.product_id, u.desired_version) for u in fingerprint_updates],
            )

    def desired_versions(self, ids: Sequence[str]) -> dict[str, int]:
        versions: dict[str, int] = {}
        for chunk in chunks(ids):
            marks = ",".join("?" * len(chunk))
            versions.update(
                self._connection.execute(f"SELECT id, desired_version FROM products WHERE id IN ({marks})", chunk)
            )
        return versions

    def commit(self, changes: Sequence[Change]) -> int:
        """Mark changes as applied to the index, but only those that are still the desired version."""
        written = [
            (change.version, change.text_hash, change.metadata_hash, change.product_id, change.version)
            for change in changes
            if change.action is not IndexAction.DELETE
        ]
        deleted = [(change.product_id, change.version) for change in changes if change.action is IndexAction.DELETE]
        with self._transaction() as connection:
            # rowcount counts the rows each statement changed, not the trigger's writes.
            updated = connection.executemany(
                "UPDATE products SET committed_version = ?, committed_text_hash = ?, committed_metadata_hash = ? "
                "WHERE id = ? AND desired_version = ? AND deleted = 0",
                written,
            ).rowcount
            removed = connection.executemany(
                "DELETE FROM products WHERE id = ? AND desired_version = ? AND deleted = 1", deleted
            ).rowcount
            return max(updated, 0) + max(removed, 0)

    def mark_pending(self, ids: Sequence[str]) -> None:
        with self._transaction() as connection:
            connection.executemany(
                "UPDATE products SET committed_version = NULL, committed_text_hash = NULL, "
                "committed_metadata_hash = NULL WHERE id = ? AND deleted = 0",
                [(product_id,) for product_id in ids],
            )

    def uncommit_all(self) -> int:
        """Forget what the index holds (it was rebuilt): every product is re-sent on the next pass."""
        with self._transaction() as connection:
            connection.execute("DELETE FROM products WHERE deleted = 1")
            cursor = connection.execute(
                "UPDATE products SET committed_version = NULL, committed_text_hash = NULL, "
                "committed_metadata_hash = NULL"
            )
            return cursor.rowcount

    def pending_count(self) -> int:
        row = self._connection.execute(
            "SELECT count(*) FROM products WHERE committed_version IS NOT desired_version"
        ).fetchone()
        return int(row[0])

    def product_count(self) -> int:
        return int(self._connection.execute("SELECT count(*) FROM products WHERE deleted = 0").fetchone()[0])

    def indexed_count(self) -> int:
        row = self._connection.execute("SELECT count(*) FROM products WHERE committed_version IS NOT NULL").fetchone()
        return int(row[0])

    def counts(self) -> StateCounts:
        row = self._connection.execute(
            "SELECT total(deleted = 0), total(committed_version IS NOT NULL), "
            "total(committed_version IS NOT desired_version), total(deleted = 1), "
            "total(deleted = 0 AND committed_version IS desired_version) FROM products"
        ).fetchone()
        products, indexed, pending, deleting, synced = (int(value) for value in row)
        return StateCounts(products=products, indexed=indexed, pending=pending, deleting=deleting, synced=synced)
