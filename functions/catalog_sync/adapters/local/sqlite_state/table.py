"""What every part of the SQLite state store shares: the schema, the connection and its transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    id TEXT PRIMARY KEY,
    desired_version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    fingerprint BLOB,
    text_hash TEXT,
    metadata_hash TEXT,
    field_hashes BLOB,
    committed_version INTEGER,
    committed_text_hash TEXT,
    committed_metadata_hash TEXT
) WITHOUT ROWID;
-- Products not committed at their desired version: few, and looked up on every diff.
CREATE INDEX IF NOT EXISTS products_pending ON products (id)
    WHERE committed_version IS NOT desired_version OR fingerprint IS NULL;
-- The fast path's map (fingerprint -> id of products committed at their desired version), kept by triggers
-- in the same transactions as `products`: a narrow table loads faster than a scan of the wide one. Keyed by
-- id, so that it loads in id order, which is usually the catalog's order (memory locality in the diff).
CREATE TABLE IF NOT EXISTS fast_path (id TEXT PRIMARY KEY, fingerprint BLOB NOT NULL) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS fast_path_insert AFTER INSERT ON products
WHEN NEW.deleted = 0 AND NEW.fingerprint IS NOT NULL AND NEW.committed_version IS NEW.desired_version
BEGIN
    INSERT OR REPLACE INTO fast_path (id, fingerprint) VALUES (NEW.id, NEW.fingerprint);
END;
CREATE TRIGGER IF NOT EXISTS fast_path_update AFTER UPDATE ON products
BEGIN
    DELETE FROM fast_path WHERE id = OLD.id;
    INSERT OR REPLACE INTO fast_path (id, fingerprint) SELECT NEW.id, NEW.fingerprint
    WHERE NEW.deleted = 0 AND NEW.fingerprint IS NOT NULL AND NEW.committed_version IS NEW.desired_version;
END;
CREATE TRIGGER IF NOT EXISTS fast_path_delete AFTER DELETE ON products
BEGIN
    DELETE FROM fast_path WHERE id = OLD.id;
END;
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT UNIQUE NOT NULL,
    catalog TEXT NOT NULL,
    mode TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    counts BLOB,
    timings BLOB,
    message TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Changes the index refused, with its reason: current while that version is desired and not committed.
CREATE TABLE IF NOT EXISTS rejections (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
) WITHOUT ROWID;
"""
_CHUNK = 500
STATE_FILE = "state.sqlite"


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    # Reads of a large catalog's state go through memory-mapped pages and a bigger page cache.
    connection.execute("PRAGMA mmap_size=1073741824")
    connection.execute("PRAGMA cache_size=-131072")
    return connection


def chunks(items: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqliteTable:
    """One catalog's state in one SQLite file."""

    def __init__(self, path: Path, catalog: str) -> None:
        self.path = path
        self.catalog = catalog
        self._connection = connect(path)
        self._connection.executescript(_SCHEMA)

    def close(self) -> None:
        self._connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield self._connection
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, connection: sqlite3.Connection, items: Sequence[tuple[str, str]]) -> None:
        connection.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", items
        )
