"""The scheduled health function under moto: every catalog of the deployment scored, the score published as a
metric per catalog, the alerts logged; and the consumers' counters that feed the statistics."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from catalog_sync.adapters.aws import observability
from catalog_sync.logic.health import HealthSettings
from catalog_sync.services.status import catalog_status
from tests.conftest import product
from tests.doubles.lambda_context import Context
from tests.e2e.test_aws_pipeline import BUCKET, CONFIG, World, drop, emitted_metrics, run_pipeline

CATALOG_DIMENSIONS = {"service": observability.SERVICE, "catalog": "shop"}


def logged(caplog: pytest.LogCaptureFixture) -> set[tuple[str, Any, Any]]:
    """(level, catalog, alert) of what the functions logged (powertools' records carry the extra keys)."""
    return {
        (record.levelname, getattr(record, "catalog", None), getattr(record, "alert", None))
        for record in caplog.records
    }


def three_drops(world: World) -> None:
    """v1: 20 products and an invalid record; v2: 5 descriptions edited; v3: back to v1 (embeddings cached)."""
    v1 = [*(product(str(i)) for i in range(20)), product("bad", price="free")]
    v2 = [product(str(i), description=f"edited {i}") if i < 5 else product(str(i)) for i in range(20)]
    for name, records in (("v1.jsonl", v1), ("v2.jsonl", v2), ("v3.jsonl", v1)):
        result = run_pipeline(world, drop(world, name, records))
        assert result["consumer"]["batchItemFailures"] == []


def test_the_health_function_scores_every_catalog(
    world: World, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
):
    from handlers import _shared, health

    outlet = CONFIG.replace('name = "shop"', 'name = "outlet"').replace("{openai}", world.openai.base_url)
    world.s3.put_object(Bucket=BUCKET, Key="config/outlet.toml", Body=outlet.encode())  # configured, never run
    three_drops(world)

    # The consumers added up what they did on each run: what the statistics are made of.
    state = _shared.pipeline().state(_shared.pipeline().config("shop"))
    runs = state.runs()
    assert [(r.counts["applied_embedded"], r.counts["applied_cache_hits"]) for r in runs] == [(0, 5), (5, 0), (20, 0)]
    assert [r.counts["applied_upserted"] for r in runs] == [5, 5, 20]
    status = catalog_status(state, catalog="shop", now=datetime.now(UTC), settings=HealthSettings())
    assert status.statistics.cache_hit_rate == 5 / 30 and status.statistics.success_rate == 1.0
    assert status.statistics.products_synced == 30 and status.statistics.average_duration_s is not None

    capsys.readouterr()
    caplog.clear()
    result = health.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, Context())
    output = capsys.readouterr().out
    catalogs = {entry["catalog"]: entry for entry in result["catalogs"]}
    assert list(catalogs) == ["outlet", "shop"]
    # shop: all indexed and fresh; 1 of 21 records invalid: 50 + 30 + 20 * (20/21) = 99.05
    shop = catalogs["shop"]
    assert shop["status"] == "scored" and shop["score"] == 99.0
    assert [(a["level"], a["code"]) for a in shop["alerts"]] == [("info", "invalid_records")]
    outlet_entry = catalogs["outlet"]
    assert outlet_entry["score"] == 20.0
    assert [(a["level"], a["code"]) for a in outlet_entry["alerts"]] == [("critical", "never_succeeded")]

    points = [p for p in emitted_metrics(output) if p[0] == observability.HEALTH_SCORE]
    assert sorted(points, key=lambda p: p[1]["catalog"]) == [
        (observability.HEALTH_SCORE, {"service": observability.SERVICE, "catalog": "outlet"}, 20.0),
        (observability.HEALTH_SCORE, CATALOG_DIMENSIONS, 99.0),
    ]
    alerts = logged(caplog)
    assert ("ERROR", "outlet", "never_succeeded") in alerts  # critical: an error
    assert ("INFO", "shop", "invalid_records") in alerts


def test_settings_from_the_environment_and_a_catalog_without_config(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
):
    from handlers import _shared, health

    three_drops(world)
    settings = {"weights": {"coverage": 1, "freshness": 0, "quality": 0}, "invalid_info": 0.1, "invalid_warning": 0.2}
    monkeypatch.setenv("CATALOG_SYNC_HEALTH", json.dumps(settings))
    _shared.pipeline.cache_clear()
    result = health.handler({}, Context())
    [shop] = result["catalogs"]
    assert shop["score"] == 100.0 and shop["alerts"] == []  # coverage only; 4.8% invalid is under 10%

    # State without a config (the catalog was taken out of service): reported, not scored.
    world.s3.delete_object(Bucket=BUCKET, Key="config/shop.toml")
    _shared.pipeline.cache_clear()
    capsys.readouterr()
    caplog.clear()
    result = health.handler({}, Context())
    output = capsys.readouterr().out
    assert [(c["catalog"], c["status"]) for c in result["catalogs"]] == [("shop", "no_config")]
    assert not [p for p in emitted_metrics(output) if p[0] == observability.HEALTH_SCORE]
    assert ("WARNING", "shop", None) in logged(caplog)
