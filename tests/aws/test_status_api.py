"""The status routes under moto: a catalog's status and runs, a run by its id, every catalog's health."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from moto import mock_aws

from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
from catalog_sync.models.changes import RunStatus
from tests.doubles.aws_resources import TABLE
from tests.doubles.control_world import BUCKET, ControlWorld, build_control_world
from tests.doubles.http_api import assert_problem, call, event, use_recorder


@pytest.fixture
def world(aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[ControlWorld]:
    with mock_aws():
        built = build_control_world(monkeypatch.setenv)
        use_recorder(monkeypatch)
        yield built
        use_recorder(monkeypatch)


def get(world: ControlWorld, path: str, *, signed: bool = True, query: dict[str, str] | None = None):
    return call(event("GET", path, query=urlencode(query or {}), key=world.key if signed else None))


def test_a_catalogs_status_has_its_counts_runs_statistics_and_health(world: ControlWorld):
    code, _, body = get(world, "/catalogs/shop/status")
    assert code == 200
    assert body["catalog"] == "shop"
    assert [run["run_id"] for run in body["runs"]] == [world.run_id]
    assert body["statistics"]["success_rate"] == 1.0
    assert 0 <= body["health"]["score"] <= 100
    assert set(body["health"]["components"]) == {"coverage", "freshness", "quality"}


def test_runs_newest_first_and_one_run_by_its_id(world: ControlWorld):
    state = DynamoStateStore(world.dynamodb, table=TABLE, catalog="shop", concurrency=1)
    second = state.begin_run(mode="full", source=f"s3://{BUCKET}/catalogs/shop/v2.jsonl")
    second.status = RunStatus.FAILED
    second.message = "boom"
    state.finish_run(second)
    code, _, body = get(world, "/catalogs/shop/runs", query={"limit": "5"})
    assert code == 200 and [run["run_id"] for run in body["runs"]] == [second.run_id, world.run_id]
    code, _, found = get(world, f"/runs/{second.run_id}")
    assert code == 200 and (found["status"], found["message"], found["catalog"]) == ("failed", "boom", "shop")
    code, _, one = get(world, "/catalogs/shop/runs", query={"limit": "1"})
    assert [run["run_id"] for run in one["runs"]] == [second.run_id]
    assert_problem(get(world, "/catalogs/shop/runs", query={"limit": "0"}), 422)


def test_deployment_health_lists_every_catalog_with_state(world: ControlWorld):
    code, _, body = get(world, "/health")
    assert code == 200
    [shop] = body["catalogs"]
    assert shop["catalog"] == "shop" and 0 <= shop["score"] <= 100
    # A healthy deployment has no warning or critical alert anywhere.
    assert body["healthy"] is not any(a["level"] in ("warning", "critical") for a in shop["alerts"])


@pytest.mark.parametrize(
    "path",
    ["/catalogs/nope/status", "/catalogs/nope/runs", "/runs/20260101T000000Z-00001-abcdef"],
)
def test_what_does_not_exist_is_404(world: ControlWorld, path: str):
    assert_problem(get(world, path), 404)


@pytest.mark.parametrize("path", ["/catalogs/shop/status", "/catalogs/shop/runs", "/health"])
def test_status_is_signed(world: ControlWorld, path: str):
    assert_problem(get(world, path, signed=False), 401)
