"""What the diff produces: changes, quarantined records, counts, and runs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ChangeKind(StrEnum):
    """What happened to a product since the last sync (relative to the desired state)."""

    ADDED = "added"
    TEXT_CHANGED = "text_changed"
    METADATA_ONLY = "metadata_only"
    DELETED = "deleted"
    # Only emitted by a full re-sync, which rewrites every product through the embedding cache.
    UNCHANGED = "unchanged"


class IndexAction(StrEnum):
    """What the consumer must do to the index (relative to the committed state)."""

    UPSERT = "upsert"  # embed (cache first) and write vector + metadata
    UPDATE_METADATA = "update_metadata"  # metadata in place, no embedding
    DELETE = "delete"


class Change(BaseModel):
    """One product's change, self-contained so that a consumer can apply it without the catalog."""

    # Bytes (the record fingerprint) travel as base64 when a change is written as JSON (spool, queue).
    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    product_id: str
    kind: ChangeKind
    action: IndexAction
    priority: bool = False
    fields_changed: tuple[str, ...] = ()
    reason: str | None = None
    # Version the state store gives the change; a consumer applies it only if it is still the desired one.
    version: int = 0
    text: str | None = None
    metadata: dict[str, Any] | None = None
    text_hash: str | None = None
    metadata_hash: str | None = None
    field_hashes: dict[str, str] | None = None
    fingerprint: bytes | None = None


class QuarantinedRecord(BaseModel):
    """A record that failed validation: it never reaches the index."""

    reason: str
    location: str
    product_id: str | None = None
    record: Any = None


class DiffCounts(BaseModel):
    records: int = 0
    valid: int = 0
    invalid: int = 0
    added: int = 0
    text_changed: int = 0
    metadata_only: int = 0
    deleted: int = 0
    unchanged: int = 0
    priority: int = 0

    @property
    def changed(self) -> int:
        return self.added + self.text_changed + self.metadata_only + self.deleted


class RunStatus(StrEnum):
    RUNNING = "running"
    # The diff recorded and queued its changes; consumers elsewhere apply them.
    DISPATCHED = "dispatched"
    SUCCEEDED = "succeeded"
    HELD = "held"
    FAILED = "failed"
    # Stopped part way (Ctrl+C, or a process killed or crashed: then marked by the next writer of the catalog).
    # What it did not apply stays pending and the next sync re-sends it.
    INTERRUPTED = "interrupted"
    DRY_RUN = "dry_run"


class RunRecord(BaseModel):
    """A row of run history."""

    run_id: str
    seq: int
    catalog: str
    mode: str
    source: str
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    message: str | None = None


class StateCounts(BaseModel):
    """A catalog's products by state, counted in one pass over the state store."""

    products: int = 0  # present in the catalog (not deleted)
    indexed: int = 0  # with a committed version (in the index at some version)
    pending: int = 0  # committed version differs from the desired one (deletions included)
    deleting: int = 0  # deleted from the catalog, not yet from the index
    synced: int = 0  # present and committed at their desired version
