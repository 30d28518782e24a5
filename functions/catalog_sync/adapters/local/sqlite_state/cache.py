"""The embedding cache of the embedded default, on SQLite."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from catalog_sync.adapters.local.sqlite_state.table import chunks, connect
from catalog_sync.ports import Vectors


class SqliteEmbeddingCache:
    """Embeddings keyed by model and text hash; shared by every catalog under one state root."""

    def __init__(self, path: Path) -> None:
        self._connection = connect(path)
        # A rowid table: SQLite advises against WITHOUT ROWID for rows this large (a vector is kilobytes).
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS embedding_cache (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
            "vector BLOB NOT NULL, created_at INTEGER NOT NULL)"
        )

    def close(self) -> None:
        self._connection.close()

    def get_many(self, keys: Sequence[str]) -> dict[str, Vectors]:
        found: dict[str, Vectors] = {}
        for chunk in chunks(list(keys)):
            marks = ",".join("?" * len(chunk))
            for key, blob in self._connection.execute(
                f"SELECT key, vector FROM embedding_cache WHERE key IN ({marks})", chunk
            ):
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, items: Mapping[str, Vectors], *, model_id: str) -> None:
        now = int(datetime.now(UTC).timestamp())
        rows = [(key, model_id, np.asarray(vector, dtype=np.float32).tobytes(), now) for key, vector in items.items()]
        self._connection.execute("BEGIN")
        try:
            self._connection.executemany(
                "INSERT OR REPLACE INTO embedding_cache (key, model, vector, created_at) VALUES (?, ?, ?, ?)", rows
            )
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def count(self) -> int:
        return int(self._connection.execute("SELECT count(*) FROM embedding_cache").fetchone()[0])
