"""Exit codes, and the failures a command raises to end with one."""

from __future__ import annotations

from enum import IntEnum

from catalog_sync.models.changes import RunRecord, RunStatus


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    HELD = 2
    BAD_INPUT = 3
    BUSY = 4
    INTERRUPTED = 130


class CommandError(Exception):
    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


class Interrupted(Exception):
    """Ctrl+C stopped a sync: the run (recorded as interrupted) says what it applied."""

    def __init__(self, run: RunRecord | None) -> None:
        self.run = run
        if run is None or run.status is not RunStatus.INTERRUPTED:
            message = "stopped by Ctrl+C before a run began: nothing was changed"
        else:
            pending = run.counts.get("pending_after")
            left = f" {pending:,} products are pending." if pending is not None else ""
            message = (
                f"run {run.run_id} {run.message or 'was interrupted'}.{left} "
                "Run `catalog-sync sync` again to resume: it re-sends only what was not applied."
            )
        super().__init__(message)
