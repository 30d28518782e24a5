"""Local files: the catalog source, and the run artifacts (quarantine and change log, JSON Lines)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import orjson

from catalog_sync.models.changes import Change, QuarantinedRecord


class FileCatalogSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)

    def open(self) -> IO[bytes]:
        return self.path.open("rb")


class LocalRunArtifacts:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.change_log = directory / "changes.jsonl"
        self.quarantine_dir = directory / "quarantine"

    def write_quarantine(self, run_id: str, records: Iterable[QuarantinedRecord]) -> str:
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        path = self.quarantine_dir / f"{run_id}.jsonl"
        with path.open("wb") as out:
            for record in records:
                out.write(orjson.dumps({"run": run_id, **record.model_dump()}, default=str) + b"\n")
        return str(path)

    def append_change_log(self, run_id: str, changes: Sequence[Change]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC).isoformat()
        with self.change_log.open("ab") as out:
            for change in changes:
                entry = {
                    "time": now,
                    "run": run_id,
                    "kind": change.kind,
                    "id": change.product_id,
                    "fields_changed": list(change.fields_changed),
                    "priority": change.priority,
                }
                if change.reason:
                    entry["reason"] = change.reason
                out.write(orjson.dumps(entry) + b"\n")
