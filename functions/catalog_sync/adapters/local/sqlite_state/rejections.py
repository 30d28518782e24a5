"""Changes the index refused, with its reasons, on SQLite: current while that version is desired and not
committed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from catalog_sync.adapters.local.sqlite_state.table import SqliteTable
from catalog_sync.models.index import IndexRejection

_CURRENT_REJECTION = (
    "EXISTS (SELECT 1 FROM products p WHERE p.id = rejections.id AND p.desired_version = rejections.version "
    "AND p.committed_version IS NOT p.desired_version)"
)


class RejectionState(SqliteTable):
    def record_rejections(self, rejections: Sequence[IndexRejection]) -> None:
        rows = [
            (r.product_id, r.version, r.action, r.reason, (r.at or datetime.now(UTC)).isoformat()) for r in rejections
        ]
        if not rows:
            return
        with self._transaction() as connection:
            connection.executemany(
                "INSERT INTO rejections (id, version, action, reason, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO "
                "UPDATE SET version = excluded.version, action = excluded.action, reason = excluded.reason, "
                "at = excluded.at WHERE excluded.version >= rejections.version",
                rows,
            )
            # Rejections no longer current (committed since, or changed again) go as new ones come.
            connection.execute(f"DELETE FROM rejections WHERE NOT {_CURRENT_REJECTION}")

    def rejections(self, limit: int = 1_000) -> list[IndexRejection]:
        rows = self._connection.execute(
            f"SELECT id, version, action, reason, at FROM rejections WHERE {_CURRENT_REJECTION} "
            "ORDER BY at DESC, id LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            IndexRejection(
                product_id=row[0], version=row[1], action=row[2], reason=row[3], at=datetime.fromisoformat(row[4])
            )
            for row in rows
        ]
