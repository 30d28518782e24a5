"""A catalog's status for its operator: counts, recent runs and their statistics, and the health report.

Three reads of the state store, whichever it is: one pass over the products (`counts`), the recent runs, and
the products the index refused (`rejections`, few).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from catalog_sync.logic.health import Alert, AlertLevel, HealthReport, HealthSettings, assess_health
from catalog_sync.logic.runs import RunStatistics, run_statistics
from catalog_sync.models.changes import RunRecord, StateCounts
from catalog_sync.models.config import ConfigError
from catalog_sync.models.index import IndexRejection
from catalog_sync.ports import PipelineParts, StateStore

RUNS_WINDOW = 30
# Rejected products listed by a status (the newest); `rejected` counts them all.
REJECTIONS_SHOWN = 20


class CatalogStatus(BaseModel):
    catalog: str
    generated_at: datetime
    products: int
    indexed: int
    pending: int
    deleting: int
    synced: int
    vectors_in_index: int | None = None
    # Pending products whose change the index refused (an id, a value, a size), and the newest of them with the
    # index's reason.
    rejected: int = 0
    rejections: list[IndexRejection] = []
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
    rejections = state.rejections()
    health = assess_health(counts, runs, now=now, settings=settings, vectors_in_index=vectors_in_index)
    if rejections:
        first = rejections[0]
        alert = Alert(
            level=AlertLevel.WARNING,
            code="rejected",
            message=(
                f"the index refused {len(rejections):,} products: they stay pending (each sync sends them "
                f"again), e.g. {first.product_id!r}: {first.reason}"
            ),
        )
        alerts = sorted([*health.alerts, alert], key=lambda a: a.level.rank, reverse=True)
        health = health.model_copy(update={"alerts": alerts})
    return CatalogStatus(
        catalog=catalog,
        generated_at=now,
        products=counts.products,
        indexed=counts.indexed,
        pending=counts.pending,
        deleting=counts.deleting,
        synced=counts.synced,
        vectors_in_index=vectors_in_index,
        rejected=len(rejections),
        rejections=rejections[:REJECTIONS_SHOWN],
        runs=runs,
        statistics=run_statistics(runs, now=now, stuck_after=timedelta(hours=settings.stuck_after_hours)),
        health=health,
    )


@dataclass
class CatalogScore:
    """One catalog of a deployment, scored; or why not (`error`: state without a config that loads)."""

    catalog: str
    status: CatalogStatus | None = None
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        if self.status is None:
            return {"catalog": self.catalog, "status": "no_config", "error": self.error}
        health = self.status.health
        return {
            "catalog": self.catalog,
            "status": "scored",
            "score": health.score,
            "components": health.components.model_dump(),
            "alerts": [alert.model_dump(mode="json") for alert in health.alerts],
            "products": self.status.products,
            "pending": self.status.pending,
        }


def score_catalogs(parts: PipelineParts, *, now: datetime, settings: HealthSettings) -> Iterator[CatalogScore]:
    """Every catalog of the deployment (state in the table, or a config in the bucket), each read once."""
    for catalog in parts.catalogs():
        try:
            config = parts.config(catalog)
        except ConfigError as exc:  # a catalog taken out of service, or a config that no longer loads
            yield CatalogScore(catalog, error=str(exc))
            continue
        yield CatalogScore(catalog, catalog_status(parts.state(config), catalog=catalog, now=now, settings=settings))


class CatalogHealth(BaseModel):
    catalog: str
    score: float
    level: AlertLevel | None  # the most severe open alert's
    alerts: list[Alert]


class DeploymentHealth(BaseModel):
    healthy: bool  # no catalog has a warning or critical alert
    catalogs: list[CatalogHealth]


def deployment_health(statuses: Iterable[CatalogStatus]) -> DeploymentHealth:
    """Every catalog's health, from their statuses."""
    catalogs = [
        CatalogHealth(
            catalog=status.catalog, score=status.health.score, level=status.health.level, alerts=status.health.alerts
        )
        for status in statuses
    ]
    healthy = all(
        not any(alert.level in (AlertLevel.WARNING, AlertLevel.CRITICAL) for alert in c.alerts) for c in catalogs
    )
    return DeploymentHealth(healthy=healthy, catalogs=catalogs)
