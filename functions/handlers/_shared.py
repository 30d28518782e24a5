"""Observability and wiring shared by the functions, built once per warm container."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools import Logger, Metrics, Tracer

from catalog_sync.adapters.aws.pipeline import Pipeline, PipelineSettings

logger = Logger(service="catalog-sync")
metrics = Metrics(namespace="CatalogSync", service="catalog-sync")
tracer = Tracer(service="catalog-sync")


@cache
def pipeline() -> Pipeline:
    return Pipeline(PipelineSettings())  # settings come from the environment
