"""The counts the functions publish for a diff and for an applied message (names: adapters/aws/observability)."""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools.metrics import Metrics, MetricUnit

from catalog_sync.adapters.aws import observability as names
from catalog_sync.services.apply import ApplyStats
from catalog_sync.services.sync_report import SyncReport


def diff_counts(report: SyncReport) -> dict[str, int]:
    counts = report.diff.counts
    return {
        names.PRODUCTS_ADDED: counts.added,
        names.PRODUCTS_MODIFIED: counts.text_changed,
        names.PRODUCTS_METADATA_ONLY: counts.metadata_only,
        names.PRODUCTS_DELETED: counts.deleted,
        names.INVALID_RECORDS: counts.invalid,
        names.GUARD_TRIPS: int(report.guard.held),
    }


def applied_counts(stats: ApplyStats) -> dict[str, int]:
    return {
        names.PRODUCTS_REJECTED: len(stats.rejected),
        names.VECTORS_UPSERTED: stats.upserted,
        names.METADATA_UPDATED: stats.metadata_updated,
        names.VECTORS_DELETED: stats.deleted,
        names.TEXTS_EMBEDDED: stats.embedded,
        names.EMBEDDING_CACHE_HITS: stats.cache_hits,
        names.STALE_CHANGES_SKIPPED: stats.stale_skipped,
    }


def publish(metrics: Metrics, counts: Mapping[str, int]) -> None:
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
