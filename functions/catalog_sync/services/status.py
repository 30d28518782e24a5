"""A catalog's status for its operator: counts, recent runs and their statistics, and the health report.

Two reads of the state store, whichever it is: one pass over the products (`counts`) and the recent runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from catalog_sync.logic.health import HealthReport, HealthSettings, assess_health
from catalog_sync.logic.runs import RunStatistics, run_statistics
from catalog_sync.models.changes import RunRecord, StateCounts
from catalog_sync.ports import StateStore

RUNS_WINDOW = 30


class CatalogStatus(BaseModel):
    catalog: str
    generated_at: datetime
    products: int
    indexed: int
    pending: int
    deleting: int
    synced: int
    vectors_in_index: int | None = None
    runs: list[RunRecord]  # newest first
    statistics: RunStatistics
    health: HealthReport


def catalog_status(
    state: StateStore,
    *,
    catalog: str,
    now: datetime,
    settings: HealthSettings,
    runs_limit: int = RUNS_WINDOW,
    vectors_in_index: int | None = None,
) -> CatalogStatus:
    """`vectors_in_index`, when the caller counted them, is checked against what the state expects."""
    counts: StateCounts = state.counts()
    runs = state.runs(runs_limit)
    return CatalogStatus(
        catalog=catalog,
        generated_at=now,
        products=counts.products,
        indexed=counts.indexed,
        pending=counts.pending,
        deleting=counts.deleting,
        synced=counts.synced,
        vectors_in_index=vectors_in_index,
        runs=runs,
        statistics=run_statistics(runs, now=now, stuck_after=timedelta(hours=settings.stuck_after_hours)),
        health=assess_health(counts, runs, now=now, settings=settings, vectors_in_index=vectors_in_index),
    )
