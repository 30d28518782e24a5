"""The diff function's triggers, parsed from real event payloads (tests/data/events)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from catalog_sync.adapters.aws.triggers import (
    BadTrigger,
    SyncMode,
    Trigger,
    catalog_for_key,
    check_prefixes,
    parse_trigger,
)

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


# ---------------------------------------------------------------- pushes


def test_a_direct_invocation_of_a_push_object_is_a_push():
    payload = {"catalog": "shop", "key": "pushes/shop/req-1.jsonl", "ids": ["A", "B"], "mode": "incremental"}
    [request] = parse_trigger(payload)
    assert request.trigger is Trigger.PUSH
    assert (request.catalog, request.key, request.ids, request.mode) == (
        "shop",
        "pushes/shop/req-1.jsonl",
        ("A", "B"),
        SyncMode.INCREMENTAL,
    )
    assert request.force  # every deletion is named: the guard is not for pushes
    [custom] = parse_trigger({**payload, "key": "in/shop/r.json"}, pushes_prefix="in/")
    assert custom.trigger is Trigger.PUSH


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"catalog": "shop", "key": "pushes/shop/r.jsonl"}, "must name the products"),
        ({"catalog": "shop", "key": "pushes/shop/r.jsonl", "ids": []}, "must name the products"),
        ({"catalog": "shop", "key": "pushes/outlet/r.jsonl", "ids": ["A"]}, "does not belong"),
        ({"catalog": "shop", "key": "pushes/shop", "ids": ["A"]}, "must be stored as"),
        ({"catalog": "shop", "key": "pushes/shop/r.jsonl", "ids": ["A"], "mode": "full"}, "is incremental"),
    ],
)
def test_a_push_must_name_its_catalogs_products(payload: dict[str, Any], message: str):
    with pytest.raises(BadTrigger, match=message):
        parse_trigger(payload)


def test_a_push_object_never_starts_a_sync_from_s3():
    bridged = event("eventbridge-s3-object-created.json")
    bridged["detail"]["object"]["key"] = "pushes/shop/req-1.jsonl"
    notified = event("s3-put.json")
    notified["Records"][0]["s3"]["object"]["key"] = "pushes/shop/req-1.jsonl"
    for payload in (bridged, notified):
        with pytest.raises(BadTrigger, match="not under 'catalogs/'"):
            parse_trigger(payload)


def test_catalogs_and_pushes_live_apart():
    check_prefixes("catalogs/", "pushes/")
    for catalogs, pushes in (
        ("catalogs/", "catalogs/pushes/"),
        ("data/", "data/"),
        ("catalogs", "pushes/"),
        ("/", "p/"),
    ):
        with pytest.raises(ValueError, match=r"overlap|folder"):
            check_prefixes(catalogs, pushes)
