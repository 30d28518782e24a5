"""Runs on SQLite: numbered by the file, listed newest first. Here a run applies its own changes: consumers
count nothing."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from catalog_sync.adapters.local.sqlite_state.table import STATE_FILE, SqliteTable
from catalog_sync.logic.runs import new_run_id
from catalog_sync.models.changes import RunRecord, RunStatus

_RUN_COLUMNS = "run_id, seq, catalog, mode, source, status, started_at, finished_at, counts, timings, message"


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


class RunState(SqliteTable):
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

    def get_run(self, run_id: str) -> RunRecord:
        """The run as last saved; KeyError if this catalog has none of that id."""
        run = self.find_run(run_id)
        if run is None:
            raise KeyError(f"no run {run_id!r} of catalog {self.catalog!r}")
        return run

    def record_progress(
        self, run_id: str, handled: int, applied: Mapping[str, int] | None = None, *, message_id: str | None = None
    ) -> bool:
        """Nothing to count: on the embedded default a run applies its own changes (and counts them) before it ends."""
        return False
