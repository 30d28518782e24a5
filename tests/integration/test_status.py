"""A catalog's status (counts, runs, statistics, health) read through the state store contract, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
from catalog_sync.logic.health import AlertLevel, HealthSettings
from catalog_sync.models.changes import RunRecord, RunStatus
from catalog_sync.services.status import catalog_status
from tests.doubles.state_stores import record, upsert


def finish(store: Any, status: RunStatus, message: str | None = None, **counts: int) -> RunRecord:
    run = store.begin_run(mode="incremental", source="catalog.jsonl")
    run.status, run.message, run.counts = status, message, counts
    run.finished_at = datetime.now(UTC)
    store.finish_run(run)
    return run


def test_status_of_a_catalog(make_store):
    store = make_store()
    record(store, [upsert(pid, 1) for pid in "ABCD"])
    store.commit([upsert(pid, 1) for pid in "ABC"])  # D is pending
    finish(
        store,
        RunStatus.SUCCEEDED,
        records=100,
        invalid=2,
        added=4,
        applied_upserted=3,
        applied_embedded=1,
        applied_cache_hits=3,
    )
    failed = finish(store, RunStatus.FAILED, message="<boom>", records=100, invalid=0)
    now = datetime.now(UTC) + timedelta(hours=30)
    status = catalog_status(store, catalog="shop", now=now, settings=HealthSettings())

    assert (status.products, status.indexed, status.pending, status.deleting, status.synced) == (4, 3, 1, 0, 3)
    assert [run.status for run in status.runs] == [RunStatus.FAILED, RunStatus.SUCCEEDED]
    assert status.runs[0].run_id == failed.run_id
    stats = status.statistics
    assert (stats.runs, stats.succeeded, stats.failed, stats.success_rate) == (2, 1, 1, 0.5)
    assert stats.cache_hit_rate == 0.75 and stats.products_synced == 3
    assert stats.window_hours == pytest.approx(30, abs=0.01)
    assert stats.products_synced_per_hour == pytest.approx(3 / 30, abs=0.001)

    health = status.health
    # coverage 3/4; freshness 1 - (30 - 24) / 48; quality 1 - max(0 invalid in the newest run, 1 of 2 failed)
    assert health.components.coverage == 0.75
    assert health.components.freshness == pytest.approx(0.875, abs=0.001)
    assert health.components.quality == 0.5
    assert health.score == pytest.approx(50 * 0.75 + 30 * 0.875 + 20 * 0.5, abs=0.1)
    assert {alert.code: alert.level for alert in health.alerts} == {
        "coverage": AlertLevel.CRITICAL,
        "failure_rate": AlertLevel.CRITICAL,
        "last_run_failed": AlertLevel.WARNING,
        "pending": AlertLevel.INFO,
    }
    assert status.model_dump(mode="json")["health"]["alerts"][0]["level"] == "critical"


def test_runs_limit_bounds_the_window(make_store):
    store = make_store()
    record(store, [upsert("A", 1)])
    store.commit([upsert("A", 1)])
    for _ in range(5):
        finish(store, RunStatus.SUCCEEDED, records=1)
    status = catalog_status(store, catalog="shop", now=datetime.now(UTC), settings=HealthSettings(), runs_limit=3)
    assert len(status.runs) == 3 and status.statistics.runs == 3
    assert status.health.score == 100.0 and status.health.alerts == []


def test_a_dispatched_run_counts_what_its_consumers_did(make_store):
    store = make_store()
    if not isinstance(store, DynamoStateStore):
        pytest.skip("the embedded default applies its changes within the run")
    record(store, [upsert(pid, 1) for pid in "ABCDE"])
    run = store.begin_run(mode="incremental", source="s3://bucket/catalogs/shop/v1.jsonl")
    run.status, run.counts = RunStatus.DISPATCHED, {"records": 5, "added": 5, "dispatched_changes": 5}
    store.finish_run(run)
    now = datetime.now(UTC)
    in_flight = catalog_status(store, catalog="shop", now=now, settings=HealthSettings())
    assert in_flight.statistics.in_flight == 1 and in_flight.statistics.success_rate is None
    # While the consumers work, low coverage is news, not an alarm.
    assert {a.code: a.level for a in in_flight.health.alerts}["coverage"] is AlertLevel.INFO

    store.commit([upsert(pid, 1) for pid in "ABCDE"])
    store.record_progress(run.run_id, 3, {"embedded": 1, "cache_hits": 2, "upserted": 3})
    assert store.record_progress(run.run_id, 2, {"embedded": 2, "cache_hits": 0, "upserted": 2}) is True
    done = catalog_status(store, catalog="shop", now=datetime.now(UTC), settings=HealthSettings())
    stats = done.statistics
    assert (stats.succeeded, stats.products_synced, stats.texts_embedded, stats.cache_hits) == (1, 5, 3, 2)
    assert stats.cache_hit_rate == 0.4
    assert stats.average_duration_s is not None and stats.average_duration_s >= 0
    assert done.health.score == 100.0 and done.health.alerts == []
