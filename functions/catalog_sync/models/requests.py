"""A request to sync a catalog, whatever started it: an S3 drop, a schedule, a direct invocation, a push.

The diff function's triggers (catalog_sync.adapters.aws.triggers) parse their events into it; the services take it.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Trigger(StrEnum):
    S3_EVENTBRIDGE = "s3-eventbridge"
    S3_NOTIFICATION = "s3-notification"
    SCHEDULE = "schedule"
    DIRECT = "direct"
    PUSH = "push"


class SyncMode(StrEnum):
    INCREMENTAL = "incremental"
    FULL = "full"


class SyncRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    trigger: Trigger
    catalog: str
    bucket: str | None = None
    key: str | None = None  # None: the newest object under the catalog's prefix
    version_id: str | None = None  # None: the latest version
    mode: SyncMode = SyncMode.INCREMENTAL
    force: bool = False
    ids: tuple[str, ...] | None = None
    # A run the caller already began (the webhook answers with its id): the diff carries it on.
    run_id: str | None = None
    # S3's sequencer of the write the event reports: orders the writes of one key (catalog_sync.logic.drops).
    sequencer: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]+$", max_length=128)


class Continuation(BaseModel):
    """What a diff near its timeout hands the next invocation: {"resume": {"catalog": ..., "run_id": ...}}."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    catalog: str = Field(min_length=1)
    run_id: str = Field(min_length=1)
