"""Observability and wiring shared by the functions, built once per warm container."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from catalog_sync.adapters.aws import observability as names
from catalog_sync.adapters.aws.events import describe
from catalog_sync.bootstrap.aws import Pipeline
from catalog_sync.bootstrap.settings import PipelineSettings

logger = Logger(service=names.SERVICE)
metrics = Metrics(namespace=names.NAMESPACE, service=names.SERVICE)
tracer = Tracer(service=names.SERVICE)


@cache
def pipeline() -> Pipeline:
    return Pipeline(PipelineSettings())  # settings come from the environment


def run_succeeded(catalog: str) -> None:
    """A run of `catalog` completed: one data point on the per-catalog metric the staleness alarms watch."""
    # The service dimension is explicit: the alarms must match the dimensions exactly, wherever this runs.
    with single_metric(
        name=names.RUNS_SUCCEEDED,
        unit=MetricUnit.Count,
        value=1,
        namespace=names.NAMESPACE,
        default_dimensions={"service": names.SERVICE},
    ) as metric:
        metric.add_dimension(name=names.CATALOG_DIMENSION, value=catalog)


def rejected(function: str, reason: str, event: Any) -> None:
    """`function` refuses an event it is not built for: logged (with what was received) and counted, in one place.

    Counted as RejectedEvents with the service dimension (one alarm sees every function's); the data point names
    the function and what was received, for the logs' queries. The caller answers with a rejection result rather
    than raising: for an asynchronous invocation an exception would be retried, then sent to the failure queue.
    """
    received = describe(event)
    logger.error("rejected event", extra={"function": function, "reason": reason, "received": received})
    with single_metric(
        name=names.REJECTED_EVENTS,
        unit=MetricUnit.Count,
        value=1,
        namespace=names.NAMESPACE,
        default_dimensions={"service": names.SERVICE},
    ) as metric:
        metric.add_metadata(key="function", value=function)
        metric.add_metadata(key="received", value=received)
