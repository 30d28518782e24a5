"""A deployment's status, read from its state table: what the webhook's status routes answer.

Catalogs are those registered in the table (a run began); each is read with the shard count its state was
written with. Health thresholds come from CATALOG_SYNC_HEALTH (JSON), as for the health function.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

import boto3
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from catalog_sync.adapters.aws.dynamodb_state import (
    DEFAULT_SHARDS,
    DynamoStateStore,
    catalog_of_run,
    registered_catalogs,
)
from catalog_sync.adapters.aws.webhook import required
from catalog_sync.logic.health import Alert, AlertLevel, HealthSettings
from catalog_sync.models.changes import RunRecord
from catalog_sync.services.status import CatalogStatus
from catalog_sync.services.status import catalog_status as compute_status


class StatusSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_SYNC_", extra="ignore")

    table_name: str | None = None
    # The diff function's own setting: a catalog's state is written over this many shards.
    state_shards: int = DEFAULT_SHARDS
    health: HealthSettings = Field(default_factory=HealthSettings)


class RunList(BaseModel):
    catalog: str
    runs: list[RunRecord]  # newest first


class CatalogHealth(BaseModel):
    catalog: str
    score: float
    level: AlertLevel | None  # the most severe open alert's
    alerts: list[Alert]


class DeploymentHealth(BaseModel):
    healthy: bool  # no catalog has a warning or critical alert
    catalogs: list[CatalogHealth]


@cache
def settings() -> StatusSettings:
    return StatusSettings()


@cache
def _dynamodb() -> Any:
    return boto3.client("dynamodb")


def clear_caches() -> None:
    """Forget the settings and the client (the environment changed)."""
    settings.cache_clear()
    _dynamodb.cache_clear()


def _table() -> str:
    return required(settings().table_name, "table_name")


def _store(catalog: str, shards: int) -> DynamoStateStore:
    return DynamoStateStore(_dynamodb(), table=_table(), catalog=catalog, shards=shards)


def _registered() -> dict[str, int]:
    return registered_catalogs(_dynamodb(), table=_table())


def begin_run(catalog: str, *, mode: str, source: str) -> str:
    """Begin a run of `catalog` now (the diff carries it on), so that the caller can answer with its id."""
    shards = _registered().get(catalog, settings().state_shards)
    return _store(catalog, shards).begin_run(mode=mode, source=source).run_id


def catalog_status(catalog: str, *, now: datetime) -> CatalogStatus | None:
    """The catalog's status, or None when it has no state here."""
    shards = _registered().get(catalog)
    if shards is None:
        return None
    return compute_status(_store(catalog, shards), catalog=catalog, now=now, settings=settings().health)


def catalog_runs(catalog: str, *, limit: int) -> RunList | None:
    shards = _registered().get(catalog)
    if shards is None:
        return None
    return RunList(catalog=catalog, runs=_store(catalog, shards).runs(limit))


def find_run(run_id: str) -> RunRecord | None:
    catalog = catalog_of_run(_dynamodb(), table=_table(), run_id=run_id)
    if catalog is None:
        return None
    shards = _registered().get(catalog)
    return None if shards is None else _store(catalog, shards).find_run(run_id)


def deployment_health(*, now: datetime) -> DeploymentHealth:
    catalogs = []
    for catalog, shards in sorted(_registered().items()):
        report = compute_status(_store(catalog, shards), catalog=catalog, now=now, settings=settings().health).health
        catalogs.append(CatalogHealth(catalog=catalog, score=report.score, level=report.level, alerts=report.alerts))
    healthy = all(
        not any(alert.level in (AlertLevel.WARNING, AlertLevel.CRITICAL) for alert in c.alerts) for c in catalogs
    )
    return DeploymentHealth(healthy=healthy, catalogs=catalogs)
