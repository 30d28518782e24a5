"""What a sync says it did (SyncReport), and the failures and callbacks the sync service's callers share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from catalog_sync.logic.diff import DiffResult
from catalog_sync.logic.guard import GuardDecision
from catalog_sync.models.changes import RunRecord
from catalog_sync.services.apply import ApplyStats
from catalog_sync.services.dispatch import DispatchProgress

ProgressCallback = Callable[[str, int, int | None], None]
SUPERSEDED_MESSAGE = "a newer catalog began syncing: this run's other changes were left to it"


class BadCatalog(ValueError):
    """The catalog could not be read at all; nothing was changed."""


@dataclass
class SyncReport:
    catalog: str
    source: str
    embedder: str
    diff: DiffResult
    guard: GuardDecision
    run: RunRecord | None = None
    applied: ApplyStats = field(default_factory=ApplyStats)
    quarantine_location: str | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    pending_after: int = 0
    error: str | None = None
    dry_run: bool = False
    dispatch: DispatchProgress | None = None
    # The run completed within this call (on AWS: a dispatched run with nothing left for consumers to do).
    run_completed: bool = False

    @property
    def held(self) -> bool:
        return self.guard.held and not self.dry_run

    @property
    def failed(self) -> bool:
        return self.error is not None
