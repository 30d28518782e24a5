"""The health function, on a schedule: every catalog's health score as a metric, its alerts in the logs.

For each catalog of the deployment (state in the table, or a config in the bucket) it reads the state once
(counts and the recent runs), scores it (catalog_sync.logic.health), publishes `HealthScore` with the
dimensions {"service", "catalog"}, and logs each alert: critical as errors, warnings as warnings.

It takes its scheduled event (EventBridge's "Scheduled Event") or an empty invocation (`aws lambda invoke` with
no payload: score now). Anything else is rejected: logged, counted (RejectedEvents), answered {"status":
"rejected"}, nothing scored or published.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from catalog_sync.adapters.aws import observability as names
from catalog_sync.adapters.aws.events import describe
from catalog_sync.logic.health import AlertLevel
from catalog_sync.services.status import score_catalogs
from handlers._shared import logger, pipeline, rejected, tracer


def publish_score(catalog: str, score: float) -> None:
    with single_metric(
        name=names.HEALTH_SCORE,
        unit=MetricUnit.NoUnit,
        value=score,
        namespace=names.NAMESPACE,
        default_dimensions={"service": names.SERVICE},
    ) as metric:
        metric.add_dimension(name=names.CATALOG_DIMENSION, value=catalog)


_LOG_AT = {AlertLevel.CRITICAL: logger.error, AlertLevel.WARNING: logger.warning, AlertLevel.INFO: logger.info}


def _not_its_schedule(event: Any) -> str | None:
    """Why `event` is neither the health schedule's event nor an empty invocation, or None."""
    scheduled = isinstance(event, dict) and event.get("detail-type") == "Scheduled Event"
    if event == {} or (scheduled and event.get("source") in ("aws.events", "aws.scheduler")):
        return None
    return f"{describe(event)}: the health function takes its scheduled event (or an empty invocation)"


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = datetime.now(UTC)
    reason = _not_its_schedule(event)
    if reason is not None:
        rejected("health", reason, event)  # answered, not raised: a retry would not make it one
        return {"status": "rejected", "error": reason, "generated_at": now.isoformat(), "catalogs": []}
    catalogs: list[dict[str, Any]] = []
    for scored in score_catalogs(pipeline(), now=now, settings=pipeline().settings.health):
        catalogs.append(scored.summary())
        if scored.status is None:
            logger.warning("catalog not scored", extra={"catalog": scored.catalog, "error": scored.error})
            continue
        publish_score(scored.catalog, scored.status.health.score)
        for alert in scored.status.health.alerts:
            _LOG_AT[alert.level](
                alert.message, extra={"catalog": scored.catalog, "alert": alert.code, "level": alert.level.value}
            )
    logger.info("health scored", extra={"catalogs": len(catalogs)})
    return {"status": "ok", "generated_at": now.isoformat(), "catalogs": catalogs}
