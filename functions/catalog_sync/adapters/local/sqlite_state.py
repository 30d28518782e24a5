"""State store and embedding cache of the embedded default, on SQLite."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from catalog_sync.logic.diff import FingerprintUpdate, StoredProduct
from catalog_sync.logic.gc import paused_gc
from catalog_sync.logic.runs import new_run_id
from catalog_sync.models.changes import Change, IndexAction, RunRecord, RunStatus, StateCounts
from catalog_sync.models.index import IndexRejection
from catalog_sync.ports import Vectors

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
_CURRENT_REJECTION = (
    "EXISTS (SELECT 1 FROM products p WHERE p.id = rejections.id AND p.desired_version = rejections.version "
    "AND p.committed_version IS NOT p.desired_version)"
)
# Orphans found in the index have no known version: they count as present.
UNKNOWN_COMMITTED_VERSION = 0
_CHUNK = 500
_RUN_COLUMNS = "run_id, seq, catalog, mode, source, status, started_at, finished_at, counts, timings, message"
STATE_FILE = "state.sqlite"


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    # Reads of a large catalog's state go through memory-mapped pages and a bigger page cache.
    connection.execute("PRAGMA mmap_size=1073741824")
    connection.execute("PRAGMA cache_size=-131072")
    return connection


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _run(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        seq=row[1],
        catalog=row[2],
        mode=row[3],
        source=row[4],
        status=RunStatus(row[5]),
        started_at=datetime.fromisoformat(row[6]),
        finished_at=datetime.fromisoformat(row[7]) if row[7] else None,
        counts=orjson.loads(row[8]) if row[8] else {},
        timings=orjson.loads(row[9]) if row[9] else {},
        message=row[10],
    )


def local_catalogs(root: Path) -> list[str]:
    """The catalogs with state under a state root (`<root>/<catalog>/state.sqlite`), by name."""
    if not root.is_dir():
        return []
    return sorted(entry.name for entry in root.iterdir() if (entry / STATE_FILE).is_file())


def catalog_of_run(root: Path, run_id: str) -> str | None:
    """The catalog under `root` that has the run `run_id`, or None. Reads only: opens each state read-only."""
    for catalog in local_catalogs(root):
        uri = f"{(root / catalog / STATE_FILE).resolve().as_uri()}?mode=ro"
        connection = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            found = connection.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        except sqlite3.Error:
            found = None  # not (yet) a state file with runs
        finally:
            connection.close()
        if found:
            return catalog
    return None


@dataclass
class SqliteSnapshot:
    fingerprints: dict[bytes, str]
    live_ids: set[str]
    pending_deletes: set[str]
    embedding_model: str | None
    text_template: str | None
    _connection: sqlite3.Connection = field(repr=False)

    def get_many(self, product_ids: Sequence[str]) -> dict[str, StoredProduct]:
        found: dict[str, StoredProduct] = {}
        for chunk in _chunks(product_ids):
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


class SqliteStateStore:
    """One catalog's state in one SQLite file."""

    def __init__(self, path: Path, catalog: str) -> None:
        self.path = path
        self.catalog = catalog
        self._connection = _connect(path)
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

    def snapshot(self) -> SqliteSnapshot:
        with paused_gc():
            return self._snapshot()

    def _snapshot(self) -> SqliteSnapshot:
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
        return SqliteSnapshot(
            fingerprints=fingerprints,
            live_ids=live_ids,
            pending_deletes=pending_deletes,
            embedding_model=self._meta("embedding_model"),
            text_template=self._meta("text_template"),
            _connection=self._connection,
        )

    def begin_run(self, *, mode: str, source: str) -> RunRecord:
        started = datetime.now(UTC)
        with self._transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO runs (run_id, catalog, mode, source, status, started_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    f"pending-{started.timestamp()}",
                    self.catalog,
                    mode,
                    source,
                    RunStatus.RUNNING,
                    started.isoformat(),
                ),
            )
            seq = int(cursor.lastrowid or 0)
            run_id = new_run_id(started, seq, secrets.token_hex(3))
            connection.execute("UPDATE runs SET run_id = ? WHERE seq = ?", (run_id, seq))
        return RunRecord(
            run_id=run_id,
            seq=seq,
            catalog=self.catalog,
            mode=mode,
            source=source,
            status=RunStatus.RUNNING,
            started_at=started,
        )

    def finish_run(self, run: RunRecord) -> bool:
        with self._transaction() as connection:
            connection.execute(
                "UPDATE runs SET status = ?, finished_at = ?, counts = ?, timings = ?, message = ? WHERE seq = ?",
                (
                    run.status,
                    (run.finished_at or datetime.now(UTC)).isoformat(),
                    orjson.dumps(run.counts),
                    orjson.dumps(run.timings),
                    run.message,
                    run.seq,
                ),
            )
        # Here a run applies its own changes: it is complete when it succeeded.
        return run.status is RunStatus.SUCCEEDED

    def interrupt_running_runs(self, message: str) -> list[str]:
        """Mark the runs still `running` as interrupted, and return their ids. Only for a writer that holds the
        catalog's writer lock: no live process is running them then (their owner was killed or crashed)."""
        with self._transaction() as connection:
            ids = [
                row[0]
                for row in connection.execute(
                    "SELECT run_id FROM runs WHERE status = ? ORDER BY seq", (RunStatus.RUNNING,)
                )
            ]
            connection.execute(
                "UPDATE runs SET status = ?, message = ? WHERE status = ?",
                (RunStatus.INTERRUPTED, message, RunStatus.RUNNING),
            )
        return ids

    def runs(self, limit: int = 30) -> list[RunRecord]:
        rows = self._connection.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY seq DESC LIMIT ?", (limit,))
        return [_run(row) for row in rows.fetchall()]

    def find_run(self, run_id: str) -> RunRecord | None:
        row = self._connection.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _run(row) if row else None

    def record_index_settings(self, *, embedding_model: str, text_template: str) -> None:
        with self._transaction() as connection:
            connection.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [("embedding_model", embedding_model), ("text_template", text_template)],
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
        for chunk in _chunks(ids):
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

    def record_progress(
        self, run_id: str, handled: int, applied: Mapping[str, int] | None = None, *, message_id: str | None = None
    ) -> bool:
        """Nothing to count: on the embedded default a run applies its own changes (and counts them) before it ends."""
        return False

    def mark_pending(self, ids: Sequence[str]) -> None:
        with self._transaction() as connection:
            connection.executemany(
                "UPDATE products SET committed_version = NULL, committed_text_hash = NULL, "
                "committed_metadata_hash = NULL WHERE id = ? AND deleted = 0",
                [(product_id,) for product_id in ids],
            )

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


class SqliteEmbeddingCache:
    """Embeddings keyed by model and text hash; shared by every catalog under one state root."""

    def __init__(self, path: Path) -> None:
        self._connection = _connect(path)
        # A rowid table: SQLite advises against WITHOUT ROWID for rows this large (a vector is kilobytes).
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS embedding_cache (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
            "vector BLOB NOT NULL, created_at INTEGER NOT NULL)"
        )

    def close(self) -> None:
        self._connection.close()

    def get_many(self, keys: Sequence[str]) -> dict[str, Vectors]:
        found: dict[str, Vectors] = {}
        for chunk in _chunks(list(keys)):
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
