"""The diff function's triggers, parsed from real event payloads (tests/data/events)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from catalog_sync.adapters.aws.triggers import (
    BadTrigger,
    catalog_for_key,
    check_prefixes,
    parse_trigger,
)
from catalog_sync.models.requests import SyncMode, Trigger

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


def test_a_deletion_notification_is_refused_naming_it():
    payload = event("s3-delete.json")
    payload["Records"][0]["s3"]["object"]["key"] = "catalogs/shop/old.jsonl"
    message = (
        "an S3 ObjectRemoved:Delete notification for s3://catalog-bucket/catalogs/shop/old.jsonl: "
        "the diff syncs only object-created events"
    )
    with pytest.raises(BadTrigger, match=re.escape(message)):
        parse_trigger(payload)


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
        (
            event("sqs-receive-message.json"),
            "an SQS batch of 1 message from catalog-sync: its records come from aws:sqs",
        ),
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


# ---------------------------------------------------------------- what S3 events carry, and what is refused


def test_s3_events_carry_their_sequencer():
    bridged = event("eventbridge-s3-object-created.json")
    bridged["detail"]["object"]["key"] = "catalogs/shop/a.jsonl"
    notified = event("s3-put.json")
    notified["Records"][0]["s3"]["object"]["key"] = "catalogs/shop/a.jsonl"
    assert [r.sequencer for p in (bridged, notified) for r in parse_trigger(p)] == [
        "00617F08299329D189",
        "0A1B2C3D4E5F678901",
    ]
    assert parse_trigger({"trigger": "schedule", "catalog": "shop"})[0].sequencer is None  # listed: none


@pytest.mark.parametrize("name", ["eventbridge-s3-object-created.json", "s3-put.json"])
def test_an_event_for_another_bucket_is_refused(name: str):
    payload = event(name)
    if "detail" in payload:
        payload["detail"]["object"]["key"] = "catalogs/shop/a.jsonl"
    else:
        payload["Records"][0]["s3"]["object"]["key"] = "catalogs/shop/a.jsonl"
    [request] = parse_trigger(payload, bucket="catalog-bucket")
    assert request.bucket == "catalog-bucket"
    message = "an event for bucket 'catalog-bucket', but this function's catalog bucket is 'other-bucket'"
    with pytest.raises(BadTrigger, match=re.escape(message)):
        parse_trigger(payload, bucket="other-bucket")


REST_API_REQUEST = {
    "resource": "/{proxy+}",
    "path": "/catalogs/shop/sync",
    "httpMethod": "POST",
    "headers": {},
    "requestContext": {"resourcePath": "/{proxy+}", "httpMethod": "POST", "stage": "prod"},
    "body": "{}",
    "isBase64Encoded": False,
}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {**event("eventbridge-s3-object-created.json"), "detail-type": "Object Deleted"},
            "an S3 'Object Deleted' event (EventBridge) for s3://catalog-bucket/feeds/products.jsonl: the diff syncs "
            "only object-created events",
        ),
        (
            {"version": "0", "source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification"},
            "an EventBridge 'EC2 Instance State-change Notification' event from aws.ec2: not a trigger of the diff",
        ),
        (event("apigateway-http-api-proxy.json"), "an API Gateway HTTP API request (POST /path/to/resource): not a"),
        (REST_API_REQUEST, "an API Gateway REST API request (POST /catalogs/shop/sync): not a trigger of the diff"),
        ({"Records": []}, "an S3 notification without records: nothing to sync"),
        ({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}, "an S3 test event (s3:TestEvent) for"),
    ],
)
def test_events_it_is_not_built_for_are_named(payload: dict[str, Any], message: str):
    with pytest.raises(BadTrigger, match=re.escape(message)):
        parse_trigger(payload)
