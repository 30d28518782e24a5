"""The status routes: a catalog's status and runs, one run by its id, and every catalog's health. All signed.

Thin: the state store is read through catalog_sync (services/status.py, bootstrap/api.py); errors become
application/problem+json through the webhook's exception handlers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from catalog_sync.bootstrap import api
from catalog_sync.models.changes import RunRecord
from catalog_sync.services.status import RUNS_WINDOW, CatalogStatus, DeploymentHealth
from handlers.routes._common import SIGNED, SIGNING, ProblemError, responses
from handlers.routes.models import CATALOG_PATTERN, RunList

router = Router()  # type: ignore[no-untyped-call]  # powertools leaves its __init__ unannotated

CatalogName = Annotated[str, Path(pattern=CATALOG_PATTERN, description="The catalog's name.")]
RUN_ID_PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9]+(-[0-9a-f]+)?$"


def _unknown(catalog: str) -> ProblemError:
    return ProblemError(HTTPStatus.NOT_FOUND, f"no catalog {catalog!r} has state in this deployment")


@router.get(
    "/catalogs/<catalog>/status",
    summary="A catalog's status and health",
    description=(
        "Products, how many the index holds at their desired version, pending changes, the last 30 runs with "
        f"their statistics, and the health score with its alerts. {SIGNING}"
    ),
    responses=responses(HTTPStatus.OK, CatalogStatus, "The catalog's status.", HTTPStatus.NOT_FOUND),
    security=SIGNED,
    tags=["status"],
)
def catalog_status(catalog: CatalogName) -> CatalogStatus:
    status = api.catalog_status(catalog, now=datetime.now(UTC))
    if status is None:
        raise _unknown(catalog)
    return status


@router.get(
    "/catalogs/<catalog>/runs",
    summary="A catalog's runs, newest first",
    description=f"The catalog's last runs (30 unless `limit` says otherwise). {SIGNING}",
    responses=responses(HTTPStatus.OK, RunList, "The runs.", HTTPStatus.NOT_FOUND),
    security=SIGNED,
    tags=["status"],
)
def catalog_runs(
    catalog: CatalogName, limit: Annotated[int, Query(ge=1, le=100, description="How many runs.")] = RUNS_WINDOW
) -> RunList:
    runs = api.catalog_runs(catalog, limit=limit)
    if runs is None:
        raise _unknown(catalog)
    return RunList(catalog=catalog, runs=runs)


@router.get(
    "/runs/<run_id>",
    summary="One run, by its id",
    description=f"A run of any catalog: status, counts, timings and what its consumers have applied. {SIGNING}",
    responses=responses(HTTPStatus.OK, RunRecord, "The run.", HTTPStatus.NOT_FOUND),
    security=SIGNED,
    tags=["status"],
)
def run(run_id: Annotated[str, Path(pattern=RUN_ID_PATTERN, description="The run's id.")]) -> RunRecord:
    found = api.find_run(run_id)
    if found is None:
        raise ProblemError(HTTPStatus.NOT_FOUND, f"no run {run_id!r}")
    return found


@router.get(
    "/health",
    summary="Every catalog's health",
    description=(
        "The health score (0-100: coverage, freshness and quality) and open alerts of every catalog with state "
        f"in this deployment; `healthy` when none has a warning or critical alert. {SIGNING}"
    ),
    responses=responses(HTTPStatus.OK, DeploymentHealth, "The catalogs' health."),
    security=SIGNED,
    tags=["status"],
)
def health() -> DeploymentHealth:
    return api.deployment_health(now=datetime.now(UTC))
