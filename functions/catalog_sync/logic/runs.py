"""Facts about runs, read from their records: ids, outcomes, durations, changes by kind, what was applied.

Pure: every function takes the records (and the time it is) and returns numbers. A run's counts hold the diff's
counts (`records`, `invalid`, `added`, `text_changed`, `metadata_only`, `deleted`, ...) and what was applied,
as `applied_<name>` (`applied_upserted`, `applied_embedded`, `applied_cache_hits`, ...): written by the run
itself on the embedded default, added up by the consumers on AWS.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from catalog_sync.models.changes import RunRecord, RunStatus

CHANGE_KINDS = ("added", "text_changed", "metadata_only", "deleted")
# What a product synced is: a vector written, metadata updated in place, or a vector deleted.
SYNC_COUNTS = ("applied_upserted", "applied_metadata_updated", "applied_deleted")


def new_run_id(started: datetime, seq: int, token: str) -> str:
    """`<start time>-<seq>-<token>`: ordered by time within a catalog; the random token keeps two catalogs'
    runs apart when they start in the same second at the same sequence number (two nightly schedules)."""
    return f"{started:%Y%m%dT%H%M%SZ}-{seq:05d}-{token}"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    HELD = "held"
    # Stopped part way (Ctrl+C, or its process killed and the run marked by the next writer): neither a success
    # nor a failure; what it left is pending, and the next sync re-sends it.
    INTERRUPTED = "interrupted"
    IN_FLIGHT = "in_flight"  # running, or dispatched and waiting for its consumers
    STUCK = "stuck"  # in flight for longer than it should ever take: a crash, or messages dead-lettered
    NONE = "none"  # a dry run: not a sync


def outcome(run: RunRecord, *, now: datetime, stuck_after: timedelta) -> Outcome:
    if run.status is RunStatus.SUCCEEDED:
        return Outcome.SUCCEEDED
    if run.status is RunStatus.FAILED:
        return Outcome.FAILED
    if run.status is RunStatus.HELD:
        return Outcome.HELD
    if run.status is RunStatus.INTERRUPTED:
        return Outcome.INTERRUPTED
    if run.status in (RunStatus.RUNNING, RunStatus.DISPATCHED):
        return Outcome.STUCK if now - run.started_at > stuck_after else Outcome.IN_FLIGHT
    return Outcome.NONE


def duration_seconds(run: RunRecord) -> float | None:
    """From start to end: for a dispatched run, to when its consumers handled the last change; None in flight."""
    if run.status in (RunStatus.RUNNING, RunStatus.DISPATCHED) or run.finished_at is None:
        return None
    return max((run.finished_at - run.started_at).total_seconds(), 0.0)


def changes_by_kind(run: RunRecord) -> dict[str, int]:
    return {kind: run.counts.get(kind, 0) for kind in CHANGE_KINDS}


def products_synced(run: RunRecord) -> int:
    return sum(run.counts.get(name, 0) for name in SYNC_COUNTS)


def newest_first(runs: Sequence[RunRecord]) -> list[RunRecord]:
    return sorted(runs, key=lambda run: (run.started_at, run.seq), reverse=True)


class RunStatistics(BaseModel):
    """What a catalog's recent runs did, over the window from the oldest one's start to now (the rate per hour
    over at least an hour)."""

    runs: int = 0
    window_hours: float | None = None
    succeeded: int = 0
    failed: int = 0
    held: int = 0
    interrupted: int = 0
    in_flight: int = 0
    stuck: int = 0
    # Succeeded (failed and stuck) over settled runs: succeeded, failed and stuck (held, interrupted and in-flight
    # runs are neither). Both divided out, rather than one as 1 minus the other, so that 1 in 20 is exactly 0.05.
    success_rate: float | None = None
    failure_rate: float | None = None
    average_duration_s: float | None = None
    products_synced: int = 0
    products_synced_per_hour: float | None = None
    changes: dict[str, int] = Field(default_factory=dict)
    texts_embedded: int = 0
    cache_hits: int = 0
    # Cache hits over the texts an upsert needed (hits plus texts embedded).
    cache_hit_rate: float | None = None


def run_statistics(runs: Sequence[RunRecord], *, now: datetime, stuck_after: timedelta) -> RunStatistics:
    stats = RunStatistics(runs=len(runs), changes=dict.fromkeys(CHANGE_KINDS, 0))
    durations: list[float] = []
    for run in runs:
        result = outcome(run, now=now, stuck_after=stuck_after)
        if result is Outcome.SUCCEEDED:
            stats.succeeded += 1
        elif result is Outcome.FAILED:
            stats.failed += 1
        elif result is Outcome.HELD:
            stats.held += 1
        elif result is Outcome.INTERRUPTED:
            stats.interrupted += 1
        elif result is Outcome.IN_FLIGHT:
            stats.in_flight += 1
        elif result is Outcome.STUCK:
            stats.stuck += 1
        seconds = duration_seconds(run)
        if seconds is not None and result in (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.HELD):
            durations.append(seconds)
        for kind, count in changes_by_kind(run).items():
            stats.changes[kind] += count
        stats.products_synced += products_synced(run)
        stats.texts_embedded += run.counts.get("applied_embedded", 0)
        stats.cache_hits += run.counts.get("applied_cache_hits", 0)
    settled = stats.succeeded + stats.failed + stats.stuck
    if settled:
        stats.success_rate = stats.succeeded / settled
        stats.failure_rate = (stats.failed + stats.stuck) / settled
    if durations:
        stats.average_duration_s = sum(durations) / len(durations)
    if stats.cache_hits + stats.texts_embedded:
        stats.cache_hit_rate = stats.cache_hits / (stats.cache_hits + stats.texts_embedded)
    if runs:
        window = (now - min(run.started_at for run in runs)).total_seconds() / 3600
        if window > 0:
            stats.window_hours = window
            # Over an hour at least: 9 products synced in the last five minutes are 9 an hour, not 108.
            stats.products_synced_per_hour = stats.products_synced / max(window, 1.0)
    return stats
