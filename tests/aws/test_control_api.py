"""The webhook's control routes under moto: real HTTP API (payload v2) events through the real handler.

Pushed changes (S3, the diff invocation recorded), Idempotency-Key (DynamoDB), schedules (EventBridge), pause and
resume (Lambda's event source mappings: botocore's Stubber for the exact calls and the transitional states a real
mapping goes through, moto for the round trip). The push's way through the diff and the consumer:
tests/e2e/test_push_pipeline.py.
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from catalog_sync.adapters.aws import pushes
from catalog_sync.adapters.aws.consumer_mappings import ConsumerMappings
from catalog_sync.adapters.aws.schedules import ScheduleRules
from catalog_sync.adapters.aws.triggers import parse_trigger
from catalog_sync.bootstrap import api as wiring
from catalog_sync.formats.catalog import open_catalog
from catalog_sync.logic.diff import CatalogDiff
from catalog_sync.logic.snapshot import EmptySnapshot
from catalog_sync.models.config import load_config
from catalog_sync.models.requests import SyncMode, Trigger
from handlers.routes.models import PushChanges
from tests.conftest import product
from tests.doubles.aws_resources import TABLE
from tests.doubles.control_world import (
    BUCKET,
    CONSUMER_FUNCTION,
    RULE_PREFIX,
    SCHEDULE,
    SHOP_CONFIG,
    ControlWorld,
    build_control_world,
)
from tests.doubles.http_api import REQUEST_ID, Answer, Recorder, assert_problem, call, event, use_recorder
from tests.doubles.lambda_context import Context

CHANGES = "/catalogs/shop/changes"
PUSH_KEY = "pushes/shop/JKJaXmPLvHcESHA=.jsonl"


class Api:
    def __init__(self, world: ControlWorld, recorder: Recorder) -> None:
        self.world = world
        self.recorder = recorder

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        request_id: str = REQUEST_ID,
        signed: bool = True,
    ) -> Answer:
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        key = self.world.key if signed else None
        return call(event(method, path, data, key=key, headers=headers, request_id=request_id))

    def push(self, body: Any, **options: Any) -> Answer:
        return self.send("POST", CHANGES, body, **options)


@pytest.fixture
def api(aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    with mock_aws():
        world = build_control_world(monkeypatch.setenv)
        recorder = use_recorder(monkeypatch)
        yield Api(world, recorder)
        use_recorder(monkeypatch)  # forget clients bound to this moto world


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    from handlers._shared import logger

    stream = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


# ---------------------------------------------------------------- the gate covers the router's routes


CONTROL_ROUTES = [
    ("POST", "/catalogs/shop/sync", {}),
    ("POST", CHANGES, {"upserts": [product("1")]}),
    ("PUT", "/catalogs/shop/schedule", {"enabled": False}),
    ("POST", "/catalogs/shop/pause", None),
    ("POST", "/catalogs/shop/resume", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CONTROL_ROUTES)
def test_every_control_route_is_behind_the_signature(api: Api, method: str, path: str, body: Any):
    before = api.world.mapping_states()
    assert_problem(api.send(method, path, body, signed=False), 401, detail="headers are required")
    wrong = event(method, path, orjson.dumps(body) if body is not None else None, key=b"another-key")
    assert_problem(call(wrong), 401, detail="does not match")
    assert api.recorder.payloads == [] and api.world.pushed() == {}
    assert api.world.events.describe_rule(Name=api.world.rule)["State"] == "ENABLED"
    assert api.world.mapping_states() == before
    # Signed, the same request is answered by the route.
    assert api.send(method, path, body)[0] in {200, 202}


def test_an_unsigned_request_is_refused_before_its_body_or_headers_are_judged(api: Api):
    assert_problem(api.push({"upserts": "not a list"}, signed=False), 401)
    assert_problem(api.push({"upserts": [product("1")]}, headers={"Idempotency-Key": "é x"}, signed=False), 401)
    assert_problem(api.send("PUT", "/catalogs/shop/schedule", {"expression": "sometimes"}, signed=False), 401)


# ---------------------------------------------------------------- pushed changes


def test_a_valid_push_is_written_and_queued_for_the_diff_as_a_push(api: Api):
    upserts = [product("1", price=3.5), product(" 2 ", title="Café")]  # ids are normalized as the diff does
    code, headers, answer = api.push({"upserts": upserts, "deletes": ["7", "8"]})
    assert (code, headers["content-type"]) == (202, "application/json")
    assert answer == {"catalog": "shop", "accepted": True, "request_id": REQUEST_ID, "upserts": 2, "deletes": 2}
    [payload] = api.recorder.payloads
    assert payload == {"catalog": "shop", "key": PUSH_KEY, "ids": ["1", "2", "7", "8"], "mode": "incremental"}
    assert api.world.pushed() == {PUSH_KEY: b"".join(orjson.dumps(r) + b"\n" for r in upserts)}
    [request] = parse_trigger(payload)  # the diff function's own parser
    assert (request.trigger, request.catalog, request.key, request.ids) == (
        Trigger.PUSH,
        "shop",
        PUSH_KEY,
        ("1", "2", "7", "8"),
    )
    assert request.force and request.mode is SyncMode.INCREMENTAL


def test_a_push_that_only_deletes_is_an_empty_json_array(api: Api):
    assert api.push({"deletes": ["3"]})[2]["deletes"] == 1
    assert api.world.pushed() == {"pushes/shop/JKJaXmPLvHcESHA=.json": b"[]"}
    assert api.recorder.payloads[0]["key"] == "pushes/shop/JKJaXmPLvHcESHA=.json"


def test_a_request_id_is_made_safe_for_an_object_key(api: Api):
    assert api.push({"deletes": ["3"]}, request_id="a/b+c=")[0] == 202
    assert list(api.world.pushed()) == ["pushes/shop/a_b-c=.json"]


def test_invalid_changes_are_refused_whole_each_with_its_location_and_reason(api: Api):
    body = (
        b'{"upserts": ['
        b'{"sku": "1", "title": "Fine", "price": 2},'
        b'{"title": "No id"},'
        b'{"sku": "3", "title": "Bad price", "price": "cheap"},'
        b'{"sku": "4", "title": "", "description": "no title"},'
        b'{"sku": "1", "title": "Twice"},'
        b'{"sku": "6", "title": "Odd number", "untracked": NaN},'
        b'{"sku": "7", "title": "Huge", "untracked": 123456789012345678901234567890},'
        b'{"sku": "8", "title": "Also deleted"}'
        b'], "deletes": ["9", "9", "8", "  "]}'
    )
    problem = assert_problem(api.push(None, raw=body), 422, detail="9 of the changes are invalid")
    errors = [(error["loc"], error["reason"]) for error in problem["errors"]]
    assert [loc for loc, _ in errors] == [
        ["body", "upserts", 1],
        ["body", "upserts", 2],
        ["body", "upserts", 3],
        ["body", "upserts", 4],
        ["body", "upserts", 5],
        ["body", "upserts", 6],
        ["body", "deletes", 1],
        ["body", "deletes", 2],
        ["body", "deletes", 3],
    ][: len(errors)]
    reasons = {tuple(loc): reason for loc, reason in errors}
    assert reasons[("body", "upserts", 1)] == "missing id"
    assert reasons[("body", "upserts", 2)].startswith("price: Input should be a valid number")
    assert reasons[("body", "upserts", 3)] == "required field 'title' is missing or empty"
    assert reasons[("body", "upserts", 4)] == "duplicate id (first at upserts[0])"
    assert reasons[("body", "upserts", 5)] == "NaN and Infinity are not JSON numbers"
    assert "JSON Lines" in reasons[("body", "upserts", 6)]
    assert reasons[("body", "deletes", 1)] == "duplicate id (first at deletes[0])"
    assert reasons[("body", "deletes", 2)] == "id is also upserted (upserts[7])"
    assert reasons[("body", "deletes", 3)] == "empty id"
    assert len(errors) == 9  # upserts[0] and upserts[7] are fine (deletes[2] is not)
    assert api.recorder.payloads == [] and api.world.pushed() == {}


def test_pushed_records_get_the_reasons_the_diff_quarantines_them_with(api: Api):
    """The push is validated by the catalog's own code: the same records in a catalog drop are quarantined for the
    same reasons."""
    records: list[dict[str, Any]] = [
        {"title": "No id"},
        {"sku": "", "title": "Empty id"},
        {"sku": True, "title": "Boolean id"},
        {"sku": "3", "title": "Bad price", "price": "cheap"},
        {"sku": "4", "title": "", "description": "no title"},
        {"sku": "5", "title": "x", "stock": 1.5},
        {"sku": "6", "title": "x", "tags": [1, {"a": 2}]},
        {"sku": "7", "title": "x" * 30_000},
        {"sku": "8", "title": "Valid", "price": 1},
    ]
    problem = assert_problem(api.push({"upserts": records}), 422)
    pushed = {error["loc"][2]: error["reason"] for error in problem["errors"]}

    config = load_config_text(SHOP_CONFIG)
    drop = b"".join(orjson.dumps(record) + b"\n" for record in records)
    stream = open_catalog(io.BytesIO(drop), "drop.jsonl", id_field=config.id_field)
    result = CatalogDiff(config, model_id="hashing").run(stream, EmptySnapshot())
    quarantined = {int(q.location.removeprefix("line ")) - 1: q.reason for q in result.quarantined}
    assert pushed == quarantined
    assert set(pushed) == set(range(8))  # every record but the valid one


def load_config_text(text: str) -> Any:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "shop.toml"
        path.write_text(text)
        return load_config(path)


@pytest.mark.parametrize(
    ("body", "locations"),
    [
        ({}, [["body"]]),
        ({"upserts": [], "deletes": []}, [["body"]]),
        ({"upserts": "x"}, [["body", "upserts"]]),
        ({"upserts": [1]}, [["body", "upserts", 0]]),
        ({"deletes": [""]}, [["body", "deletes", 0]]),
        ({"deletes": ["x" * 513]}, [["body", "deletes", 0]]),
        ({"deletes": [f"sku-{i}" for i in range(1_001)]}, [["body", "deletes"]]),
        ({"upserts": [product("1")] * 600, "deletes": [f"d{i}" for i in range(401)]}, [["body"]]),
        ({"deletes": ["1"], "surprise": True}, [["body", "surprise"]]),
        ([1], [["body"]]),
    ],
)
def test_a_malformed_push_is_422_listing_locations_only(api: Api, body: Any, locations: list[list[Any]]):
    problem = assert_problem(api.push(body), 422)
    assert [error["loc"] for error in problem["errors"]][: len(locations)] == locations
    assert all(set(error) == {"loc"} for error in problem["errors"])
    assert api.recorder.payloads == []


def test_a_push_to_an_unknown_catalog_is_404(api: Api):
    assert_problem(api.send("POST", "/catalogs/outlet/changes", {"deletes": ["1"]}), 404, detail="no such catalog")
    assert api.recorder.payloads == [] and api.world.pushed() == {}


def test_a_broken_config_is_a_500_that_names_nothing_internal(api: Api, logs: io.StringIO):
    api.world.s3.put_object(Bucket=BUCKET, Key="config/outlet.toml", Body=b'name = "shop"\n[text]\nfields = ["t"]\n')
    problem = assert_problem(api.send("POST", "/catalogs/outlet/changes", {"deletes": ["1"]}), 500)
    assert problem["detail"] == "the catalog's configuration cannot be loaded" and "outlet.toml" not in str(problem)
    assert "names catalog 'shop'" in logs.getvalue()


def test_a_push_too_large_to_invoke_writes_nothing(api: Api, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(pushes, "MAX_EVENT_PAYLOAD_BYTES", 100)
    assert_problem(api.push({"deletes": [f"sku-{i}" for i in range(20)]}), 413, detail="too large to queue")
    assert api.recorder.payloads == [] and api.world.pushed() == {}


# ---------------------------------------------------------------- Idempotency-Key


def idempotency_items(world: ControlWorld) -> list[dict[str, Any]]:
    items = world.dynamodb.scan(TableName=TABLE)["Items"]
    return [item for item in items if item["pk"]["S"].startswith("idempotency#")]


def test_a_retried_push_with_the_same_key_is_applied_once_and_answered_the_same(api: Api):
    body = {"upserts": [product("1", price=2.0)], "deletes": ["2"]}
    first = api.push(body, headers={"Idempotency-Key": "push-0001"}, request_id="first")
    retry = api.push(body, headers={"Idempotency-Key": "push-0001"}, request_id="retry")
    assert first[0] == retry[0] == 202
    assert (
        retry[2]
        == first[2]
        == {
            "catalog": "shop",
            "accepted": True,
            "request_id": "first",  # the first answer, as it was
            "upserts": 1,
            "deletes": 1,
        }
    )
    assert len(api.recorder.payloads) == 1 and list(api.world.pushed()) == ["pushes/shop/first.jsonl"]
    [item] = idempotency_items(api.world)
    assert item["sk"]["S"].startswith("webhook.changes#") and item["status"]["S"] == "COMPLETED"
    assert 3_500 < int(item["expires_at"]["N"]) - time.time() <= 3_600  # the table's TTL attribute
    # Another key is another request.
    assert api.push(body, headers={"Idempotency-Key": "push-0002"}, request_id="other")[2]["request_id"] == "other"
    assert len(api.recorder.payloads) == 2


def test_a_retry_is_a_new_signed_request_not_a_replay(api: Api):
    body = orjson.dumps({"deletes": ["1"]})
    request = event("POST", CHANGES, body, key=api.world.key, headers={"Idempotency-Key": "k-0"})
    assert call(request)[0] == 202
    assert_problem(call(request), 401, detail="replay")  # the same signed request: refused before the key is read
    retry = event("POST", CHANGES, body, key=api.world.key, headers={"Idempotency-Key": "k-0"}, request_id="retry")
    assert request["headers"]["x-catalog-sync-nonce"] != retry["headers"]["x-catalog-sync-nonce"]
    code, _, answer = call(retry)  # signed anew: the first answer, the push done once
    assert (code, answer["request_id"]) == (202, REQUEST_ID)
    assert len(api.recorder.payloads) == 1


def test_the_same_key_with_another_request_is_refused(api: Api):
    assert api.push({"deletes": ["1"]}, headers={"Idempotency-Key": "k-1"})[0] == 202
    for other in (
        lambda: api.push({"deletes": ["2"]}, headers={"Idempotency-Key": "k-1"}),
        lambda: api.send("POST", "/catalogs/outlet/changes", {"deletes": ["1"]}, headers={"Idempotency-Key": "k-1"}),
    ):
        problem = assert_problem(other(), 422, detail="Idempotency-Key was used before with a different request")
        assert problem["errors"] == [{"loc": ["header", "idempotency-key"]}]
    assert len(api.recorder.payloads) == 1


def test_without_a_key_every_request_is_done(api: Api):
    body = {"deletes": ["1"]}
    assert api.push(body, request_id="a")[0] == api.push(body, request_id="b")[0] == 202
    assert len(api.recorder.payloads) == 2 and len(api.world.pushed()) == 2
    assert idempotency_items(api.world) == []


def test_a_failed_request_keeps_no_answer_and_its_retry_is_done(api: Api, monkeypatch: pytest.MonkeyPatch):
    failures = [RuntimeError("Lambda said no")]
    record = api.recorder.invoke

    def flaky(payload: Any) -> None:
        if failures:
            raise failures.pop()
        record(payload)

    monkeypatch.setattr(api.recorder, "invoke", flaky)
    assert_problem(api.push({"deletes": ["1"]}, headers={"Idempotency-Key": "k-2"}), 500)
    assert idempotency_items(api.world) == []
    assert api.push({"deletes": ["1"]}, headers={"Idempotency-Key": "k-2"})[0] == 202
    assert len(api.recorder.payloads) == 1


def test_a_retry_while_the_first_is_in_progress_is_409(api: Api):
    body = {"deletes": ["1"]}
    overlapping: list[Answer] = []

    def first_attempt() -> dict[str, Any]:
        # While the first request is being handled (its record is in progress), its retry arrives.
        overlapping.append(api.push(body, headers={"Idempotency-Key": "k-3"}, request_id="retry"))
        return first_answer

    first_answer = {"catalog": "shop", "accepted": True, "request_id": "first", "upserts": 0, "deletes": 1}
    request = {"catalog": "shop", "body": PushChanges.model_validate(body).model_dump(mode="json")}
    assert wiring.idempotency().run("changes", "k-3", request, first_attempt, context=Context()) == first_answer
    [retry] = overlapping
    assert_problem(retry, 409, detail="in progress")
    assert retry[1]["retry-after"] == "1"
    assert api.recorder.payloads == []
    # Once the first is done, a retry gets its answer.
    assert api.push(body, headers={"Idempotency-Key": "k-3"}) == (
        202,
        {"content-type": "application/json"},
        first_answer,
    )


def test_a_sync_with_a_key_is_queued_once(api: Api):
    for request_id in ("first", "retry"):
        answer = api.send(
            "POST", "/catalogs/shop/sync", {"mode": "full"}, headers={"Idempotency-Key": "s-1"}, request_id=request_id
        )
        assert answer[0] == 202 and answer[2]["request_id"] == "first"
    [payload] = api.recorder.payloads  # once, for the run the first answer named
    assert payload == {"catalog": "shop", "mode": "full", "force": False, "run_id": answer[2]["run_id"]}
    assert_problem(api.send("POST", "/catalogs/shop/sync", {}, headers={"Idempotency-Key": "s-1"}), 422)
    # The key is per operation: the same key on another route is another request.
    assert api.push({"deletes": ["1"]}, headers={"Idempotency-Key": "s-1"})[0] == 202


@pytest.mark.parametrize("key", ["", "with space", "é", "x" * 256])
def test_a_malformed_key_is_422(api: Api, key: str):
    request = event("POST", CHANGES, b'{"deletes": ["1"]}', key=api.world.key)
    request["headers"]["idempotency-key"] = key
    problem = assert_problem(call(request), 422)
    assert problem["errors"] == [{"loc": ["header", "idempotency-key"]}]
    assert api.recorder.payloads == []


# ---------------------------------------------------------------- schedule

SCHEDULE_PATH = "/catalogs/shop/schedule"


def rule(world: ControlWorld) -> dict[str, Any]:
    return world.events.describe_rule(Name=world.rule)


def test_a_schedule_is_disabled_and_enabled(api: Api):
    code, _, answer = api.send("PUT", SCHEDULE_PATH, {"enabled": False})
    assert (code, answer) == (
        200,
        {"catalog": "shop", "rule": f"{RULE_PREFIX}shop", "enabled": False, "expression": SCHEDULE},
    )
    assert rule(api.world)["State"] == "DISABLED"
    assert api.send("PUT", SCHEDULE_PATH, {"enabled": True})[2]["enabled"] is True
    assert rule(api.world)["State"] == "ENABLED"


def test_a_new_expression_keeps_the_rest_of_the_rule_and_its_targets(api: Api):
    targets = api.world.events.list_targets_by_rule(Rule=api.world.rule)["Targets"]
    answer = api.send("PUT", SCHEDULE_PATH, {"expression": "cron(0 3 * * ? *)", "enabled": False})[2]
    assert (answer["expression"], answer["enabled"]) == ("cron(0 3 * * ? *)", False)
    now = rule(api.world)
    assert (now["ScheduleExpression"], now["State"]) == ("cron(0 3 * * ? *)", "DISABLED")
    assert now["Description"] == "Scheduled incremental sync of shop"  # PutRule would have cleared it
    assert api.world.events.list_targets_by_rule(Rule=api.world.rule)["Targets"] == targets
    api.send("PUT", SCHEDULE_PATH, {"expression": "rate(1 day)"})
    assert (rule(api.world)["ScheduleExpression"], rule(api.world)["State"]) == ("rate(1 day)", "DISABLED")


def test_a_catalog_without_a_schedule_rule_is_404(api: Api):
    assert_problem(api.send("PUT", "/catalogs/outlet/schedule", {"enabled": False}), 404, detail="no schedule")
    api.world.events.put_rule(Name=f"{RULE_PREFIX}events", EventPattern='{"source": ["aws.s3"]}')
    assert_problem(api.send("PUT", "/catalogs/events/schedule", {"enabled": False}), 404)  # a rule, not a schedule
    # A name too long for a rule: no rule can have it.
    assert_problem(api.send("PUT", f"/catalogs/{'a' * 60}/schedule", {"enabled": False}), 404)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"enabled": None},
        {"enabled": "yes"},
        {"expression": "every day"},
        {"expression": "rate(2 hour)"},
        {"expression": "rate(1 hours)"},
        {"expression": "cron(0 3 * *)"},
        {"expression": "rate(1 day)", "extra": 1},
    ],
)
def test_an_invalid_schedule_change_is_422_and_changes_nothing(api: Api, body: dict[str, Any]):
    assert_problem(api.send("PUT", SCHEDULE_PATH, body), 422)
    assert (rule(api.world)["ScheduleExpression"], rule(api.world)["State"]) == (SCHEDULE, "ENABLED")


def test_an_expression_eventbridge_refuses_is_422(api: Api, monkeypatch: pytest.MonkeyPatch):
    import boto3

    client = boto3.client("events")
    described = {
        "Name": api.world.rule,
        "Arn": f"arn:aws:events:us-east-1:123456789012:rule/{api.world.rule}",
        "ScheduleExpression": SCHEDULE,
        "State": "ENABLED",
        "Description": "d",
        "EventBusName": "default",
    }
    with Stubber(client) as stub:
        stub.add_response("describe_rule", described, {"Name": api.world.rule})
        stub.add_client_error(
            "put_rule",
            service_error_code="ValidationException",
            service_message="Parameter ScheduleExpression is not valid.",
            http_status_code=400,
            expected_params={
                "Name": api.world.rule,
                "ScheduleExpression": "cron(0 3 * * * *)",
                "State": "ENABLED",
                "Description": "d",
                "EventBusName": "default",
            },
        )
        monkeypatch.setattr(wiring, "schedules", lambda: ScheduleRules(RULE_PREFIX, client))
        problem = assert_problem(api.send("PUT", SCHEDULE_PATH, {"expression": "cron(0 3 * * * *)"}), 422)
        stub.assert_no_pending_responses()
    assert problem["errors"] == [{"loc": ["body", "expression"]}]


def test_a_change_to_nothing_new_calls_only_describe_rule(api: Api, monkeypatch: pytest.MonkeyPatch):
    import boto3

    client = boto3.client("events")
    described = {"Name": api.world.rule, "ScheduleExpression": SCHEDULE, "State": "ENABLED"}
    with Stubber(client) as stub:
        stub.add_response("describe_rule", described, {"Name": api.world.rule})
        monkeypatch.setattr(wiring, "schedules", lambda: ScheduleRules(RULE_PREFIX, client))
        answer = api.send("PUT", SCHEDULE_PATH, {"enabled": True, "expression": SCHEDULE})
        stub.assert_no_pending_responses()
    assert answer[2] == {"catalog": "shop", "rule": api.world.rule, "enabled": True, "expression": SCHEDULE}


# ---------------------------------------------------------------- pause and resume


def test_pause_and_resume_switch_every_consumer_mapping(api: Api):
    code, _, paused = api.send("POST", "/catalogs/shop/pause")
    assert code == 200
    assert (paused["catalog"], paused["consumption"], paused["scope"]) == ("shop", "paused", "all-catalogs")
    assert sorted(m["uuid"] for m in paused["mappings"]) == sorted(api.world.mappings)
    assert sorted(m["queue"] for m in paused["mappings"]) == sorted(api.world.queues)
    assert set(api.world.mapping_states().values()) == {"Disabled"}
    resumed = api.send("POST", "/catalogs/shop/resume")[2]
    assert resumed["consumption"] == "running"
    assert set(api.world.mapping_states().values()) == {"Enabled"}


def test_pause_of_an_unknown_catalog_is_404_and_pauses_nothing(api: Api):
    assert_problem(api.send("POST", "/catalogs/outlet/pause"), 404, detail="no such catalog")
    assert set(api.world.mapping_states().values()) == {"Enabled"}


UUIDS = {name: str(uuid.UUID(int=number)) for number, name in enumerate(("u-1", "u-2", "u-3"), start=1)}


def esm(name: str, state: str, queue: str = "arn:aws:sqs:us-east-1:123456789012:q") -> dict[str, Any]:
    return {"UUID": UUIDS[name], "State": state, "EventSourceArn": queue}


def stubbed_mappings(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Stubber]:
    import boto3

    client = boto3.client("lambda")
    monkeypatch.setattr(wiring, "consumer_mappings", lambda: ConsumerMappings(CONSUMER_FUNCTION, client))
    return client, Stubber(client)


def test_pause_disables_each_mapping_once_and_reports_the_transition(api: Api, monkeypatch: pytest.MonkeyPatch):
    _, stub = stubbed_mappings(monkeypatch)
    with stub:
        stub.add_response(
            "list_event_source_mappings",
            {"EventSourceMappings": [esm("u-1", "Enabled"), esm("u-2", "Disabled")], "NextMarker": "m"},
            {"FunctionName": CONSUMER_FUNCTION},
        )
        stub.add_response(
            "list_event_source_mappings",
            {"EventSourceMappings": [esm("u-3", "Enabling")]},
            {"FunctionName": CONSUMER_FUNCTION, "Marker": "m"},
        )
        for name in ("u-1", "u-3"):  # u-2 is disabled already
            stub.add_response(
                "update_event_source_mapping", esm(name, "Disabling"), {"UUID": UUIDS[name], "Enabled": False}
            )
        answer = api.send("POST", "/catalogs/shop/pause")
        stub.assert_no_pending_responses()
    assert [(m["uuid"], m["state"]) for m in answer[2]["mappings"]] == [
        (UUIDS["u-1"], "Disabling"),
        (UUIDS["u-2"], "Disabled"),
        (UUIDS["u-3"], "Disabling"),
    ]


def test_a_mapping_being_updated_is_409(api: Api, monkeypatch: pytest.MonkeyPatch):
    _, stub = stubbed_mappings(monkeypatch)
    with stub:
        stub.add_response(
            "list_event_source_mappings",
            {"EventSourceMappings": [esm("u-1", "Disabled")]},
            {"FunctionName": CONSUMER_FUNCTION},
        )
        stub.add_client_error(
            "update_event_source_mapping",
            service_error_code="ResourceInUseException",
            service_message="Cannot update the event source mapping because it is in use.",
            http_status_code=400,
            expected_params={"UUID": UUIDS["u-1"], "Enabled": True},
        )
        problem = assert_problem(api.send("POST", "/catalogs/shop/resume"), 409, detail="try again")
    assert "in use" not in json.dumps(problem)


def test_a_consumer_without_mappings_is_a_500(api: Api, monkeypatch: pytest.MonkeyPatch):
    _, stub = stubbed_mappings(monkeypatch)
    with stub:
        stub.add_response(
            "list_event_source_mappings", {"EventSourceMappings": []}, {"FunctionName": CONSUMER_FUNCTION}
        )
        assert_problem(api.send("POST", "/catalogs/shop/pause"), 500, detail="no queue mappings")


def test_a_route_whose_setting_is_missing_is_a_500(api: Api, monkeypatch: pytest.MonkeyPatch, logs: io.StringIO):
    monkeypatch.delenv("CATALOG_SYNC_CONSUMER_FUNCTION")
    use_recorder(monkeypatch)
    assert_problem(api.send("POST", "/catalogs/shop/pause"), 500, detail="an internal error occurred")
    assert "CATALOG_SYNC_CONSUMER_FUNCTION is not set" in logs.getvalue()


# ---------------------------------------------------------------- the OpenAPI document


def test_the_openapi_document_describes_the_control_routes(api: Api):
    code, _, document = api.send("GET", "/openapi.json", signed=False)
    assert code == 200
    from openapi_spec_validator import validate

    validate(document)
    paths = document["paths"]
    operations = {
        ("post", "/catalogs/{catalog}/sync"): ("202", {"401", "404", "409", "413", "415", "422", "500"}, "SyncNow"),
        ("post", "/catalogs/{catalog}/changes"): (
            "202",
            {"401", "404", "409", "413", "415", "422", "500"},
            "PushChanges",
        ),
        ("put", "/catalogs/{catalog}/schedule"): ("200", {"401", "404", "413", "415", "422", "500"}, "ScheduleUpdate"),
        ("post", "/catalogs/{catalog}/pause"): ("200", {"401", "404", "409", "422", "500"}, None),
        ("post", "/catalogs/{catalog}/resume"): ("200", {"401", "404", "409", "422", "500"}, None),
    }
    schemas = document["components"]["schemas"]
    for (method, path), (success, problems, body) in operations.items():
        operation = paths[path][method]
        assert set(operation["responses"]) == {success, *problems}, path
        for status in problems:
            content = operation["responses"][status]["content"]
            assert list(content) == ["application/problem+json"], (path, status)
            assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
        assert list(operation["responses"][success]["content"]) == ["application/json"]
        assert operation["security"] == [{"timestamp": [], "nonce": [], "signature": []}]
        if body is None:
            assert "requestBody" not in operation
        else:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert body in json.dumps(schema)
            assert schemas[body]["additionalProperties"] is False
    headers = {
        path: [p["name"] for p in paths[path]["post"].get("parameters", []) if p["in"] == "header"]
        for path in ("/catalogs/{catalog}/sync", "/catalogs/{catalog}/changes")
    }
    assert headers == {path: ["idempotency-key"] for path in headers}  # HTTP APIs lower-case header names
    for path in ("/catalogs/{catalog}/pause", "/catalogs/{catalog}/resume"):
        assert "every catalog" in paths[path]["post"]["description"]
    assert set(schemas["ConsumptionState"]["properties"]) >= {"scope", "mappings", "consumption"}
    assert schemas["ProblemLocation"]["properties"]["reason"]


# ---------------------------------------------------------------- the signature binds the whole request

EVENTS = Path(__file__).resolve().parent.parent / "data" / "events"
OUTLET_CONFIG = SHOP_CONFIG.replace('name = "shop"', 'name = "outlet"')
SIGNATURE_HEADERS = ("x-catalog-sync-timestamp", "x-catalog-sync-nonce", "x-catalog-sync-signature")


def what_requests_may_change(api: Api) -> dict[str, Any]:
    """Everything a refused request must leave as it was: the state table (but for the nonces the gate records),
    the queues' messages, the bucket's objects, the consumer's mappings, the schedule rule, the diff invocations."""
    world = api.world
    items = world.dynamodb.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    table = sorted((item for item in items if not item["pk"]["S"].startswith("NONCE#")), key=json.dumps)
    queues = {}
    for arn in world.queues:
        url = world.sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"]
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        queues[arn] = world.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    listed = world.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    rule = world.events.describe_rule(Name=world.rule)
    return {
        "table": table,
        "queues": queues,
        "objects": {obj["Key"]: obj["ETag"] for obj in listed},
        "mappings": world.mapping_states(),
        "rule": (rule["State"], rule["ScheduleExpression"]),
        "invocations": list(api.recorder.payloads),
    }


def signed_as(captured: dict[str, Any], method: str, path: str, body: bytes | None, query: str = "") -> Answer:
    """Another request, carrying the signature headers of a captured one, as an attacker would send it."""
    headers = {name: captured["headers"][name] for name in SIGNATURE_HEADERS}
    return call(event(method, path, body, query=query, headers=headers, request_id="attacker"))


def nonces(api: Api) -> list[str]:
    items = api.world.dynamodb.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return [item["pk"]["S"] for item in items if item["pk"]["S"].startswith("NONCE#")]


PUSH = orjson.dumps({"upserts": [product("1")]})
ATTACKS = {
    # name: (the captured request: method, path, query, body), (the attacker's: method, path, query, body)
    "another method": (("GET", "/catalogs/shop/status", "", None), ("POST", "/catalogs/shop/status", "", None)),
    "status on pause": (("GET", "/catalogs/shop/status", "", None), ("POST", "/catalogs/shop/pause", "", None)),
    "another path": (("POST", "/catalogs/shop/resume", "", None), ("POST", "/catalogs/shop/pause", "", None)),
    "health on pause": (("GET", "/health", "", None), ("POST", "/catalogs/shop/pause", "", None)),
    "another catalog's push": (("POST", CHANGES, "", PUSH), ("POST", "/catalogs/outlet/changes", "", PUSH)),
    "another catalog's sync": (
        ("POST", "/catalogs/shop/sync", "", b"{}"),
        ("POST", "/catalogs/outlet/sync", "", b"{}"),
    ),
    "another query": (
        ("GET", "/catalogs/shop/runs", "limit=1", None),
        ("GET", "/catalogs/shop/runs", "limit=30", None),
    ),
    "a query added": (("GET", "/catalogs/shop/runs", "", None), ("GET", "/catalogs/shop/runs", "limit=1", None)),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_captured_signature_is_refused_on_any_other_request_and_changes_nothing(api: Api, attack: str):
    (method, path, query, body), (other_method, other_path, other_query, other_body) = ATTACKS[attack]
    api.world.s3.put_object(Bucket=BUCKET, Key="config/outlet.toml", Body=OUTLET_CONFIG.encode())  # a real target
    captured = event(method, path, body, query=query, key=api.world.key)
    before = what_requests_may_change(api)
    # Sent before the original arrives (the probe's order): the original's nonce is still unseen.
    assert_problem(signed_as(captured, other_method, other_path, other_body, other_query), 401, detail="does not match")
    assert what_requests_may_change(api) == before
    assert nonces(api) == []
    assert call(captured)[0] in {200, 202}  # the original still goes through, once


def test_the_status_probe_reused_on_pause_leaves_both_mappings_enabled(api: Api):
    captured = event("GET", "/catalogs/shop/status", key=api.world.key)
    assert_problem(signed_as(captured, "POST", "/catalogs/shop/pause", None), 401)
    assert api.world.mapping_states() == dict.fromkeys(api.world.mappings, "Enabled")
    assert len(api.world.mappings) == 2


def test_the_push_probe_for_shop_sent_to_outlet_writes_nothing_under_outlet(api: Api):
    api.world.s3.put_object(Bucket=BUCKET, Key="config/outlet.toml", Body=OUTLET_CONFIG.encode())
    captured = event("POST", CHANGES, PUSH, key=api.world.key)
    assert_problem(signed_as(captured, "POST", "/catalogs/outlet/changes", PUSH), 401)
    assert api.world.s3.list_objects_v2(Bucket=BUCKET, Prefix="pushes/outlet/").get("KeyCount") == 0
    assert api.recorder.payloads == []
    assert call(captured)[0] == 202
    assert [key.split("/")[1] for key in api.world.pushed()] == ["shop"]


def test_a_nonce_is_accepted_once_on_any_route_and_its_replays_change_nothing(api: Api):
    nonce = f"replay-{uuid.uuid4().hex}"
    paused = event("POST", "/catalogs/shop/pause", key=api.world.key, nonce=nonce)
    assert call(paused)[0] == 200
    before = what_requests_may_change(api)
    assert set(before["mappings"].values()) == {"Disabled"}
    assert_problem(call(paused), 401, detail="replay")  # the same request again
    # Signed anew by a key holder, but with the same nonce: on another route, another catalog, another body.
    for method, path, body in (
        ("POST", "/catalogs/shop/resume", None),
        ("POST", CHANGES, PUSH),
        ("PUT", "/catalogs/shop/schedule", b'{"enabled": false}'),
        ("GET", "/health", None),
    ):
        assert_problem(call(event(method, path, body, key=api.world.key, nonce=nonce)), 401, detail="replay")
        assert what_requests_may_change(api) == before
    assert nonces(api) == [f"NONCE#{nonce}"]


def test_requests_alike_in_the_same_second_are_each_accepted(api: Api):
    # The same (empty) body, the same second: only their nonces differ.
    now = int(time.time())
    for method, path in (
        ("GET", "/catalogs/shop/status"),
        ("GET", "/health"),
        ("POST", "/catalogs/shop/pause"),
        ("POST", "/catalogs/shop/resume"),
        ("GET", "/health"),
    ):
        code, _, answer = call(event(method, path, key=api.world.key, timestamp=now))
        assert code == 200, answer
    assert set(api.world.mapping_states().values()) == {"Enabled"}  # paused, then resumed
    assert len(nonces(api)) == 5


@pytest.mark.parametrize(("offset", "detail"), [(-331, "expired"), (-86_400, "expired"), (331, "in the future")])
def test_a_timestamp_beyond_the_skew_is_refused_and_changes_nothing(api: Api, offset: int, detail: str):
    before = what_requests_may_change(api)
    for method, path, body in (("POST", "/catalogs/shop/pause", None), ("POST", CHANGES, PUSH)):
        stale = event(method, path, body, key=api.world.key, timestamp=int(time.time()) + offset)
        assert_problem(call(stale), 401, detail=detail)
    assert what_requests_may_change(api) == before and nonces(api) == []


def test_a_rest_api_event_signed_for_pause_pauses_nothing(api: Api):
    rest = json.loads((EVENTS / "apigateway-rest-api-proxy.json").read_text())
    signed = {
        name.lower(): value
        for name, value in event("POST", "/catalogs/shop/pause", key=api.world.key)["headers"].items()
        if name in SIGNATURE_HEADERS
    }
    rest["headers"].update(signed)
    rest["multiValueHeaders"].update({name: [value] for name, value in signed.items()})
    before = what_requests_may_change(api)
    from handlers import webhook

    answer = webhook.handler(rest, Context())
    assert answer["statusCode"] == 400
    assert what_requests_may_change(api) == before and nonces(api) == []
    assert set(api.world.mapping_states().values()) == {"Enabled"}
