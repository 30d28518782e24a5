"""The diff function's triggers, parsed from real event payloads (tests/data/events)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from catalog_sync.adapters.aws.triggers import BadTrigger, SyncMode, Trigger, catalog_for_key, parse_trigger

EVENTS = Path(__file__).resolve().parent.parent / "data" / "events"


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def test_eventbridge_object_created():
    payload = event("eventbridge-s3-object-created.json")
    payload["detail"]["object"]["key"] = "catalogs/shop/2026-11-22.jsonl"
    [request] = parse_trigger(payload)
    assert request.trigger is Trigger.S3_EVENTBRIDGE
    assert (request.catalog, request.bucket, request.key) == (
        "shop",
        "catalog-bucket",
        "catalogs/shop/2026-11-22.jsonl",
    )
    assert request.version_id == "IYV3p45BT0ac8hjHg1houSdS1a.Mppz"


def test_classic_notification_with_several_records_and_encoded_keys():
    payload = event("s3-put.json")
    first = payload["Records"][0]
    first["s3"]["object"]["key"] = "catalogs/shop/spring+drop%282%29.jsonl"
    second = copy.deepcopy(first)
    second["s3"]["object"]["key"] = "catalogs/outlet/all.csv.gz"
    second["s3"]["object"]["versionId"] = "v2"
    removed = copy.deepcopy(first)
    removed["eventName"] = "ObjectRemoved:Delete"
    payload["Records"] = [first, second, removed]
    requests = parse_trigger(payload)
    assert [(r.trigger, r.catalog, r.key, r.version_id) for r in requests] == [
        (Trigger.S3_NOTIFICATION, "shop", "catalogs/shop/spring drop(2).jsonl", None),
        (Trigger.S3_NOTIFICATION, "outlet", "catalogs/outlet/all.csv.gz", "v2"),
    ]


def test_a_deletion_notification_asks_for_nothing():
    payload = event("s3-delete.json")
    payload["Records"][0]["s3"]["object"]["key"] = "catalogs/shop/old.jsonl"
    assert parse_trigger(payload) == []


def test_schedule_input_and_direct_invocation():
    [scheduled] = parse_trigger({"trigger": "schedule", "catalog": "shop", "mode": "full"})
    assert (scheduled.trigger, scheduled.catalog, scheduled.mode, scheduled.key) == (
        Trigger.SCHEDULE,
        "shop",
        SyncMode.FULL,
        None,
    )
    [direct] = parse_trigger(
        {"catalog": "shop", "key": "catalogs/shop/a.jsonl", "version_id": "v1", "force": True, "ids": ["A", "B"]}
    )
    assert direct.trigger is Trigger.DIRECT and direct.version_id == "v1" and direct.force and direct.ids == ("A", "B")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (event("cloudwatch-scheduled-event.json"), "must pass"),
        ({"catalog": "shop", "key": "catalogs/other/a.jsonl"}, "does not belong"),
        ({"catalog": "shop", "mode": "sometimes"}, "unrecognised event"),
        ({"trigger": "schedule"}, "unrecognised event"),
        ({"unexpected": 1}, "unrecognised event"),
        ([1, 2], "expected a JSON object"),
        (event("sqs-receive-message.json"), "unrecognised event"),
    ],
)
def test_malformed_events_are_refused_with_a_reason(payload: Any, message: str):
    with pytest.raises(BadTrigger, match=message):
        parse_trigger(payload)


def test_keys_map_to_catalogs():
    assert catalog_for_key("catalogs/shop/x/y.jsonl") == "shop"
    for key in ("feeds/products.jsonl", "catalogs/shop", "catalogs//x.jsonl"):
        with pytest.raises(BadTrigger):
            catalog_for_key(key)
