"""The webhook function under moto: real API Gateway HTTP API (payload v2) events through the real handler.

The signing key is in (moto's) Secrets Manager, the nonces seen in (moto's) state table. moto would need Docker
to run an invoked function, so the diff function's invoker is replaced by a recorder; one test drives the real
boto3 call through botocore's Stubber.
(The control routes beyond sync, and the attacks on the signature with what they would touch: test_control_api.py.)
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import io
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from aws_lambda_powertools.utilities import parameters
from botocore.stub import Stubber
from moto import mock_aws

from catalog_sync.adapters.aws.diff_invoker import DiffInvoker
from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
from catalog_sync.adapters.aws.triggers import parse_trigger
from catalog_sync.bootstrap import api
from catalog_sync.logic.signing import signature_headers
from catalog_sync.models.changes import RunStatus
from catalog_sync.models.config import CatalogConfig
from catalog_sync.models.requests import SyncMode, Trigger
from catalog_sync.services.signed_requests import SEEN_NONCE_MARGIN_SECONDS
from handlers.routes.models import CATALOG_PATTERN
from tests.doubles.aws_resources import TABLE, create_table
from tests.doubles.control_world import BUCKET, SHOP_CONFIG
from tests.doubles.http_api import REQUEST_ID, Recorder, assert_problem, call, event, respond, use_recorder

DIFF_FUNCTION = "catalog-sync-diff"


@dataclass
class Webhook:
    key: bytes
    secret_name: str
    recorder: Recorder
    secrets: Any
    dynamodb: Any


@pytest.fixture
def webhook(aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    key = f"whsec-{uuid.uuid4().hex}".encode()
    secret_name = f"catalog-sync/webhook-{uuid.uuid4().hex[:8]}"  # distinct: powertools caches secrets by name
    with mock_aws():
        secrets = boto3.client("secretsmanager")
        secrets.create_secret(Name=secret_name, SecretString=key.decode())
        dynamodb = boto3.client("dynamodb")
        create_table(dynamodb)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="config/shop.toml", Body=SHOP_CONFIG.encode())
        for name, value in {
            "CATALOG_SYNC_BUCKET": BUCKET,
            "CATALOG_SYNC_WEBHOOK_SECRET": secret_name,
            "CATALOG_SYNC_DIFF_FUNCTION": DIFF_FUNCTION,
            "CATALOG_SYNC_TABLE_NAME": TABLE,
            "POWERTOOLS_TRACE_DISABLED": "true",
        }.items():
            monkeypatch.setenv(name, value)
        for name in ("CATALOG_SYNC_MAX_BODY_BYTES", "CATALOG_SYNC_SIGNATURE_TOLERANCE_SECONDS"):
            monkeypatch.delenv(name, raising=False)
        recorder = use_recorder(monkeypatch)
        yield Webhook(key=key, secret_name=secret_name, recorder=recorder, secrets=secrets, dynamodb=dynamodb)
        parameters.clear_caches()
        api.settings.cache_clear()
        api.seen_nonces.cache_clear()  # its client belongs to this moto world


SYNC = "/catalogs/shop/sync"


def without_run_ids(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The payloads sent, less the run ids (each sync begins a run; the ids carry a random token)."""
    assert all(payload["run_id"] for payload in payloads)
    return [{name: value for name, value in payload.items() if name != "run_id"} for payload in payloads]


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """What the function logs, as it would reach CloudWatch (the powertools Logger's JSON lines)."""
    from handlers._shared import logger

    stream = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous, level = handler.setStream(stream), logger.log_level
    logger.setLevel("DEBUG")
    try:
        yield stream
    finally:
        handler.setStream(previous)
        logger.setLevel(level)


# ---------------------------------------------------------------- accepted


def test_a_signed_sync_is_queued_with_the_diff_functions_direct_invocation(webhook: Webhook):
    body = {
        "mode": "full",
        "force": True,
        "key": "catalogs/shop/2026-11-22.jsonl",
        "version_id": "3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo",
        "ids": ["sku-1", "sku-2"],
    }
    code, headers, answer = call(event("POST", SYNC, orjson.dumps(body), key=webhook.key))
    assert (code, headers["content-type"]) == (202, "application/json")
    run_id = answer.pop("run_id")
    assert answer == {"catalog": "shop", "accepted": True, "request_id": REQUEST_ID}
    [payload] = webhook.recorder.payloads
    assert payload == {"catalog": "shop", **body, "run_id": run_id}
    # The run was begun here, so the answer names it; the diff carries it on (GET /runs/{run_id} follows it).
    begun = DynamoStateStore(webhook.dynamodb, table=TABLE, catalog="shop").find_run(run_id)
    assert begun is not None and begun.status is RunStatus.RUNNING and begun.mode == "ids"  # it names ids
    # What the diff function will make of it, with its own parser:
    [request] = parse_trigger(payload)
    assert request.trigger is Trigger.DIRECT
    assert (request.catalog, request.key, request.version_id) == ("shop", body["key"], body["version_id"])
    assert (request.mode, request.force, request.ids) == (SyncMode.FULL, True, ("sku-1", "sku-2"))


def test_an_empty_body_asks_for_an_incremental_sync_of_the_newest_object(webhook: Webhook):
    for body in (None, b"{}"):
        code, _, answer = call(event("POST", SYNC, body, key=webhook.key))
        assert (code, answer["accepted"]) == (202, True)
    assert (
        without_run_ids(webhook.recorder.payloads) == [{"catalog": "shop", "mode": "incremental", "force": False}] * 2
    )
    assert len({payload["run_id"] for payload in webhook.recorder.payloads}) == 2  # two syncs, two runs
    [request] = parse_trigger(webhook.recorder.payloads[0])
    assert (request.trigger, request.key, request.ids, request.mode) == (
        Trigger.DIRECT,
        None,
        None,
        SyncMode.INCREMENTAL,
    )


def test_a_base64_encoded_body_is_verified_as_the_raw_bytes_sent(webhook: Webhook):
    raw = '{"ids": ["café-1"]}'.encode()
    assert call(event("POST", SYNC, raw, key=webhook.key, base64_body=True))[0] == 202
    assert without_run_ids(webhook.recorder.payloads) == [
        {"catalog": "shop", "mode": "incremental", "force": False, "ids": ["café-1"]}
    ]
    # Signing what API Gateway handed the function (the base64 text) instead of the body is not the same thing.
    signed_wrongly = event("POST", SYNC, raw, base64_body=True)
    wrong = signature_headers(webhook.key, "POST", SYNC, "", signed_wrongly["body"].encode(), int(time.time()))
    signed_wrongly["headers"].update({name.lower(): value for name, value in wrong.items()})
    assert_problem(call(signed_wrongly), 401, detail="does not match")


def test_the_real_lambda_call_is_an_asynchronous_invocation(webhook: Webhook, monkeypatch: pytest.MonkeyPatch):
    client = boto3.client("lambda")
    monkeypatch.setattr(api, "begin_run", lambda catalog, **_: "20261124T000000Z-00001-abcdef")
    expected = {
        "catalog": "shop",
        "mode": "full",
        "force": False,
        "ids": ["sku-9"],
        "run_id": "20261124T000000Z-00001-abcdef",
    }
    with Stubber(client) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 202},
            {"FunctionName": DIFF_FUNCTION, "InvocationType": "Event", "Payload": orjson.dumps(expected)},
        )
        monkeypatch.setattr(api, "invoker", lambda: DiffInvoker(DIFF_FUNCTION, client))
        body = orjson.dumps({"mode": "full", "ids": ["sku-9"]})
        assert call(event("POST", SYNC, body, key=webhook.key))[0] == 202
        stub.assert_no_pending_responses()


def test_a_failed_invocation_is_a_500_without_the_services_words(webhook: Webhook, monkeypatch: pytest.MonkeyPatch):
    client = boto3.client("lambda")
    with Stubber(client) as stub:
        stub.add_client_error(
            "invoke",
            service_error_code="TooManyRequestsException",
            service_message="Rate exceeded for arn:aws:lambda:us-east-1:123456789012:function:catalog-sync-diff",
            http_status_code=429,
        )
        monkeypatch.setattr(api, "invoker", lambda: DiffInvoker(DIFF_FUNCTION, client))
        response = call(event("POST", SYNC, b"{}", key=webhook.key))
    problem = assert_problem(response, 500)
    text = json.dumps(problem)
    assert "TooManyRequests" not in text and "arn:aws" not in text and "Traceback" not in text


# ---------------------------------------------------------------- refused: the signature


def test_an_unsigned_request_is_401_and_nothing_is_queued(webhook: Webhook):
    _, headers, _ = response = call(event("POST", SYNC, b"{}"))
    assert_problem(response, 401, detail="headers are required")
    assert headers["www-authenticate"] == "CatalogSync-HMAC-SHA256"
    assert webhook.recorder.payloads == []


@pytest.mark.parametrize(("offset", "detail"), [(-310, "expired"), (-3_600, "expired"), (310, "in the future")])
def test_a_signature_outside_the_window_is_401(webhook: Webhook, offset: int, detail: str):
    request = event("POST", SYNC, b"{}", key=webhook.key, timestamp=int(time.time()) + offset)
    assert_problem(call(request), 401, detail=detail)
    assert webhook.recorder.payloads == []


def test_the_window_is_a_setting(webhook: Webhook, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CATALOG_SYNC_SIGNATURE_TOLERANCE_SECONDS", "30")
    api.settings.cache_clear()
    assert_problem(call(event("POST", SYNC, b"{}", key=webhook.key, timestamp=int(time.time()) - 60)), 401)


def test_a_tampered_body_is_401(webhook: Webhook):
    request = event("POST", SYNC, b'{"mode": "incremental"}', key=webhook.key)
    request["body"] = '{"mode": "full", "force": true}'
    assert_problem(call(request), 401, detail="does not match")
    assert webhook.recorder.payloads == []


def test_a_tampered_timestamp_is_401(webhook: Webhook):
    request = event("POST", SYNC, b"{}", key=webhook.key, timestamp=int(time.time()) - 3_600)
    request["headers"]["x-catalog-sync-timestamp"] = str(int(time.time()))  # refresh an old, captured request
    assert_problem(call(request), 401, detail="does not match")


def test_another_key_is_401(webhook: Webhook):
    assert_problem(call(event("POST", SYNC, b"{}", key=b"not-the-key")), 401, detail="does not match")


def test_a_malformed_signature_is_401(webhook: Webhook):
    request = event("POST", SYNC, b"{}", key=webhook.key)
    request["headers"]["x-catalog-sync-signature"] = "sha256=abc"
    assert_problem(call(request), 401, detail="must be v2=")


def test_a_bad_nonce_is_401(webhook: Webhook):
    request = event("POST", SYNC, b"{}", key=webhook.key)
    request["headers"]["x-catalog-sync-nonce"] = "too-short"
    assert_problem(call(request), 401, detail="X-Catalog-Sync-Nonce must be 16 to 128 characters")
    del request["headers"]["x-catalog-sync-nonce"]
    assert_problem(call(request), 401, detail="X-Catalog-Sync-Nonce and X-Catalog-Sync-Signature headers are required")
    assert webhook.recorder.payloads == [] and seen_nonces(webhook) == []


def test_a_v1_signed_request_is_401_saying_v1_is_no_longer_accepted(webhook: Webhook, logs: io.StringIO):
    body, now = b'{"mode": "full"}', int(time.time())
    v1 = hmac.new(webhook.key, f"{now}.".encode() + body, hashlib.sha256).hexdigest()  # a correct v1 signature
    request = event(
        "POST", SYNC, body, headers={"X-Catalog-Sync-Timestamp": str(now), "X-Catalog-Sync-Signature": f"v1={v1}"}
    )
    _, headers, _ = refusal = call(request)
    assert_problem(refusal, 401, detail="v1 signatures are no longer accepted")
    assert headers["www-authenticate"] == "CatalogSync-HMAC-SHA256"
    assert '"reason":"retired_scheme"' in logs.getvalue()
    assert webhook.recorder.payloads == [] and seen_nonces(webhook) == []


def test_the_signature_comes_before_the_body_is_judged(webhook: Webhook):
    # powertools validates before middlewares run: an unsigned caller must still not learn what is valid.
    for body in (b'{"mode": "sideways"}', b"{not json"):
        assert_problem(call(event("POST", SYNC, body)), 401)
    assert_problem(call(event("POST", SYNC, "é".encode("latin-1"), base64_body=True)), 401)  # not UTF-8
    assert_problem(call(event("POST", "/catalogs/../sync", b"{}")), 401)
    assert_problem(call(event("POST", SYNC, b"{}", headers={"content-type": "text/plain"})), 401)


# ---------------------------------------------------------------- refused: a replay


def seen_nonces(webhook: Webhook) -> list[dict[str, Any]]:
    items = webhook.dynamodb.scan(TableName=TABLE)["Items"]
    return [item for item in items if item["pk"]["S"].startswith("NONCE#")]


def test_a_replayed_request_is_401_and_nothing_is_queued(webhook: Webhook, logs: io.StringIO):
    request = event("POST", SYNC, b'{"mode": "full"}', key=webhook.key)
    assert call(request)[0] == 202
    _, headers, _ = replay = call(request)  # the same signed request again, well within the window
    assert_problem(replay, 401, detail="the request was already received (replay)")
    assert headers["www-authenticate"] == "CatalogSync-HMAC-SHA256"
    assert without_run_ids(webhook.recorder.payloads) == [{"catalog": "shop", "mode": "full", "force": False}]  # once
    assert "request refused: replayed" in logs.getvalue()
    assert len(seen_nonces(webhook)) == 1


def test_two_requests_alike_but_for_their_nonce_are_both_accepted(webhook: Webhook):
    # Same body, same second, same route: two requests (a dashboard polling, a pause-then-resume script).
    body, now = b'{"mode": "full"}', int(time.time())
    assert call(event("POST", SYNC, body, key=webhook.key, timestamp=now))[0] == 202
    assert call(event("POST", SYNC, body, key=webhook.key, timestamp=now))[0] == 202
    assert len(webhook.recorder.payloads) == 2 and len(seen_nonces(webhook)) == 2


def test_a_nonce_is_accepted_once_whatever_request_carries_it(webhook: Webhook):
    nonce = f"nonce-{uuid.uuid4().hex}"
    assert call(event("POST", SYNC, b"{}", key=webhook.key, nonce=nonce))[0] == 202
    # Signed anew with the key, for another body and route, but with the same nonce: refused.
    again = event("POST", "/catalogs/shop/sync", b'{"mode": "full"}', key=webhook.key, nonce=nonce)
    assert_problem(call(again), 401, detail="replay")
    assert_problem(call(event("GET", "/health", key=webhook.key, nonce=nonce)), 401, detail="replay")
    assert len(webhook.recorder.payloads) == 1


def test_a_seen_nonce_is_kept_until_its_timestamp_leaves_the_window(webhook: Webhook):
    timestamp = int(time.time()) - 10
    request = event("POST", SYNC, b"{}", key=webhook.key, timestamp=timestamp)
    assert call(request)[0] == 202
    [item] = seen_nonces(webhook)
    nonce = request["headers"]["x-catalog-sync-nonce"]
    assert (item["pk"]["S"], item["sk"]["S"]) == (f"NONCE#{nonce}", "seen")
    expires_at = int(item["expires_at"]["N"])  # the table's TTL attribute
    assert expires_at == timestamp + 300 + SEEN_NONCE_MARGIN_SECONDS
    assert_problem(call(request), 401, detail="replay")
    assert len(seen_nonces(webhook)) == 1


def test_a_refused_signature_is_not_recorded(webhook: Webhook):
    assert_problem(call(event("POST", SYNC, b"{}", key=b"not-the-key")), 401, detail="does not match")
    assert_problem(call(event("POST", SYNC, b"{}")), 401)
    captured = event("POST", SYNC, b"{}", key=webhook.key)
    moved = copy.deepcopy(captured)
    moved["rawPath"] = moved["requestContext"]["http"]["path"] = "/catalogs/outlet/sync"
    assert_problem(call(moved), 401, detail="does not match")  # its signature on another request
    assert seen_nonces(webhook) == []
    assert call(captured)[0] == 202  # the original, arriving later, still goes through


def test_without_the_state_table_every_signed_request_is_a_500(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch, logs: io.StringIO
):
    monkeypatch.delenv("CATALOG_SYNC_TABLE_NAME")
    use_recorder(monkeypatch)
    request = event("POST", SYNC, b"{}", key=webhook.key)
    for _ in range(2):  # refused, not accepted unchecked: a replay could not be told apart
        assert_problem(call(request), 500, detail="the webhook is not configured")
    assert webhook.recorder.payloads == []
    assert "CATALOG_SYNC_TABLE_NAME is not set" in logs.getvalue()
    assert call(event("GET", "/openapi.json"))[0] == 200  # the public route needs no configuration


# ---------------------------------------------------------------- refused: the request


def test_an_oversized_body_is_413_signed_or_not(webhook: Webhook):
    big = orjson.dumps({"ids": ["x" * 200] * 1_400})
    assert len(big) > 256 * 1024
    assert_problem(call(event("POST", SYNC, big, key=webhook.key)), 413, detail=str(256 * 1024))
    assert_problem(call(event("POST", SYNC, big)), 413)  # the size is checked first
    assert webhook.recorder.payloads == []


def test_the_size_limit_is_a_setting(webhook: Webhook, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CATALOG_SYNC_MAX_BODY_BYTES", "64")
    api.settings.cache_clear()
    body = orjson.dumps({"ids": ["sku-1", "sku-2", "sku-3", "sku-4", "sku-5", "sku-6", "sku-7"]})
    assert_problem(call(event("POST", SYNC, body, key=webhook.key, base64_body=True)), 413)
    assert call(event("POST", SYNC, b'{"ids": ["sku-1"]}', key=webhook.key))[0] == 202


def test_bad_json_is_422_problem_json(webhook: Webhook):
    problem = assert_problem(call(event("POST", SYNC, b'{"mode": "full",', key=webhook.key)), 422)
    assert [error["loc"][0] for error in problem["errors"]] == ["body"]
    assert webhook.recorder.payloads == []


@pytest.mark.parametrize(
    ("body", "locations"),
    [
        ({"mode": "sideways"}, [["body", "mode"]]),
        ({"force": "maybe"}, [["body", "force"]]),
        ({"force": "true"}, [["body", "force"]]),  # JSON has booleans: no coercion
        ({"force": 1}, [["body", "force"]]),
        ({"surprise": 1}, [["body", "surprise"]]),
        ({"ids": []}, [["body", "ids"]]),
        ({"ids": [""]}, [["body", "ids", 0]]),
        ({"ids": [f"sku-{i}" for i in range(1_001)]}, [["body", "ids"]]),
        ({"version_id": "v1"}, [["body"]]),
        ({"key": "catalogs/outlet/all.jsonl"}, [["body", "key"]]),
        ({"key": "elsewhere/shop/all.jsonl"}, [["body", "key"]]),
        ([1, 2], [["body"]]),
    ],
)
def test_an_invalid_body_is_422_listing_field_locations_only(webhook: Webhook, body: Any, locations: list[list[Any]]):
    problem = assert_problem(call(event("POST", SYNC, orjson.dumps(body), key=webhook.key)), 422)
    assert [error["loc"] for error in problem["errors"]][: len(locations)] == locations
    assert all(set(error) == {"loc"} for error in problem["errors"])  # no messages, no echoed input
    assert webhook.recorder.payloads == []


def test_a_body_that_is_not_utf8_is_422(webhook: Webhook):
    body = "é".encode("latin-1")
    problem = assert_problem(call(event("POST", SYNC, body, key=webhook.key, base64_body=True)), 422)
    assert problem["errors"] == [{"loc": ["body"]}]


@pytest.mark.parametrize("catalog", ["..", ".hidden", "-x", "a" * 64, "sh%20op", "ça", "caf%C3%A9"])
def test_an_unsafe_catalog_name_is_422(webhook: Webhook, catalog: str):
    problem = assert_problem(call(event("POST", f"/catalogs/{catalog}/sync", b"{}", key=webhook.key)), 422)
    assert problem["errors"] == [{"loc": ["path", "catalog"]}]


def test_an_encoded_slash_is_a_slash_as_the_http_api_decodes_the_path(webhook: Webhook):
    assert_problem(call(event("POST", "/catalogs/shop%2Fother/sync", b"{}", key=webhook.key)), 404)
    assert webhook.recorder.payloads == []


def test_catalog_names_are_the_ones_a_catalog_config_accepts(webhook: Webhook):
    patterns = [meta.pattern for meta in CatalogConfig.model_fields["name"].metadata if hasattr(meta, "pattern")]
    assert patterns == [CATALOG_PATTERN]
    for catalog in ("shop", "Shop-2.eu_west", "a" * 63, "0"):
        code, _, answer = call(event("POST", f"/catalogs/{catalog}/sync", b"{}", key=webhook.key))
        # The name passes; only shop has a configuration (the others are unknown catalogs, not bad names).
        assert (code, answer.get("title")) == (202, None) if catalog == "shop" else (404, "Not Found")


def test_another_content_type_is_415(webhook: Webhook):
    request = event("POST", SYNC, b"mode=full", key=webhook.key, headers={"content-type": "text/plain"})
    assert_problem(call(request), 415)


def test_an_unknown_route_is_404_problem_json_to_a_signed_caller(webhook: Webhook):
    assert_problem(call(event("GET", "/catalogs/shop", key=webhook.key)), 404)
    assert_problem(call(event("DELETE", SYNC, key=webhook.key)), 404)
    assert_problem(call(event("GET", "/admin")), 401)  # unsigned: told nothing about what exists


def test_a_missing_secret_is_a_500_that_says_nothing_internal(webhook: Webhook, logs: io.StringIO):
    webhook.secrets.delete_secret(SecretId=webhook.secret_name, ForceDeleteWithoutRecovery=True)
    problem = assert_problem(call(event("POST", SYNC, b"{}", key=webhook.key)), 500)
    assert problem["detail"] == "the request could not be checked"
    assert "ResourceNotFound" not in json.dumps(problem) and webhook.secret_name not in json.dumps(problem)
    [record] = [json.loads(line) for line in logs.getvalue().splitlines() if '"ERROR"' in line]
    assert record["message"] == "could not check the request"  # logged, for the operator
    assert "ResourceNotFoundException" in record["exception"]
    assert webhook.recorder.payloads == []


# ---------------------------------------------------------------- events it is not built for

EVENTS = Path(__file__).resolve().parent.parent / "data" / "events"


def sample(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def http_api_v1() -> dict[str, Any]:
    """An HTTP API request in payload format 1.0: the REST API's shape, with a version."""
    return {**sample("apigateway-rest-api-proxy.json"), "version": "1.0"}


NOT_HTTP_API_V2 = {
    "rest-api-proxy": (
        lambda: sample("apigateway-rest-api-proxy.json"),
        "an API Gateway REST API request (POST /catalogs/shop/pause)",
    ),
    "http-api-payload-1.0": (http_api_v1, "an API Gateway REST API request (POST /catalogs/shop/pause)"),
    "s3-put": (lambda: sample("s3-put.json"), "an S3 ObjectCreated:Put notification"),
    "s3-delete": (lambda: sample("s3-delete.json"), "an S3 ObjectRemoved:Delete notification"),
    "sqs": (lambda: sample("sqs-receive-message.json"), "an SQS batch of 1 message"),
    "eventbridge-s3": (lambda: sample("eventbridge-s3-object-created.json"), "an S3 'Object Created' event"),
    "schedule": (lambda: sample("cloudwatch-scheduled-event.json"), "a scheduled event from aws.events"),
    "direct-invocation": (lambda: {"catalog": "shop", "mode": "full"}, "an event with the fields catalog, mode"),
    "empty-object": (lambda: {}, "an empty event"),
    "null": (lambda: None, "a JSON null"),
    "array": (lambda: [1, 2], "a JSON array"),
    "string": (lambda: "POST /catalogs/shop/sync", "a JSON string"),
    "http-api-missing-fields": (
        lambda: {"version": "2.0", "requestContext": {"http": {"method": "GET"}}, "rawPath": "/health"},
        "one without the fields it reads: an API Gateway HTTP API request (GET /health)",
    ),
}


def printed_metrics(output: str) -> dict[str, float]:
    """The EMF data points the function printed (powertools Metrics writes them to stdout, as in Lambda)."""
    points: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blob = json.loads(line)
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    values = blob[metric["Name"]]
                    points[metric["Name"]] = sum(values) if isinstance(values, list) else values
    return points


@pytest.mark.parametrize("shape", sorted(NOT_HTTP_API_V2))
def test_an_event_that_is_not_an_http_api_request_gets_one_clear_rejection(
    webhook: Webhook, shape: str, logs: io.StringIO, capsys: pytest.CaptureFixture[str]
):
    make, kind = NOT_HTTP_API_V2[shape]
    table_before = webhook.dynamodb.scan(TableName=TABLE)["Items"]
    capsys.readouterr()
    answer = respond(make())  # no exception: an answer
    assert answer["statusCode"] == 400 and answer["isBase64Encoded"] is False
    assert answer["headers"] == {"Content-Type": "application/problem+json"}
    problem = json.loads(answer["body"])
    assert problem["status"] == 400 and problem["title"] == "Bad Request"
    reason = "the webhook answers API Gateway HTTP API requests (payload format 2.0) only"
    assert problem["detail"].startswith(f"{reason}; received {kind}"), problem["detail"]
    [record] = [json.loads(line) for line in logs.getvalue().splitlines() if '"rejected event"' in line]
    assert (record["level"], record["function"], record["reason"]) == ("ERROR", "webhook", reason)
    assert printed_metrics(capsys.readouterr().out) == {"RejectedEvents": 1.0}
    # Nothing read or changed: no diff invocation, no nonce recorded, no push written.
    assert webhook.recorder.payloads == []
    assert webhook.dynamodb.scan(TableName=TABLE)["Items"] == table_before
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]
    assert [obj["Key"] for obj in listed] == ["config/shop.toml"]


def test_a_rest_api_event_carrying_a_valid_signature_is_rejected_all_the_same(webhook: Webhook):
    rest = sample("apigateway-rest-api-proxy.json")
    rest["path"], rest["httpMethod"], rest["body"] = SYNC, "POST", "{}"
    signed = signature_headers(webhook.key, "POST", SYNC, "", b"{}", int(time.time()))
    rest["headers"].update(signed)
    rest["multiValueHeaders"].update({name: [value] for name, value in signed.items()})
    answer = respond(rest)
    assert answer["statusCode"] == 400 and "received an API Gateway REST API request" in answer["body"]
    assert webhook.recorder.payloads == [] and seen_nonces(webhook) == []


def test_an_http_api_request_is_still_answered_by_its_route(webhook: Webhook, capsys: pytest.CaptureFixture[str]):
    # The check admits the recorded HTTP API sample itself (what API Gateway sends), signed or not.
    assert respond(sample("apigateway-http-api-proxy.json"))["statusCode"] == 401
    assert call(event("GET", "/openapi.json"))[0] == 200
    assert "RejectedEvents" not in printed_metrics(capsys.readouterr().out)


# ---------------------------------------------------------------- public


def test_only_the_openapi_document_is_public(webhook: Webhook):
    # The catalogs' health is operational detail: it is signed like the other routes.
    code, headers, _ = call(event("GET", "/health"))
    assert (code, headers["content-type"]) == (401, "application/problem+json")


def test_the_openapi_document_is_public_and_valid(webhook: Webhook):
    code, headers, document = call(event("GET", "/openapi.json"))
    assert (code, headers["content-type"]) == (200, "application/json")
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "catalog-sync"
    assert {"/catalogs/{catalog}/sync", "/health", "/openapi.json"} <= set(document["paths"])
    sync = document["paths"]["/catalogs/{catalog}/sync"]["post"]
    assert set(sync["responses"]) >= {"202", "401", "413", "422", "500"}
    for status in ("401", "413", "422", "500"):
        assert list(sync["responses"][status]["content"]) == ["application/problem+json"]
    assert sync["security"] == [{"timestamp": [], "nonce": [], "signature": []}]
    assert document["components"]["schemas"]["SyncNow"]["additionalProperties"] is False
    schemes = document["components"]["securitySchemes"]
    assert {name: (scheme["type"], scheme["in"], scheme["name"]) for name, scheme in schemes.items()} == {
        "timestamp": ("apiKey", "header", "X-Catalog-Sync-Timestamp"),
        "nonce": ("apiKey", "header", "X-Catalog-Sync-Nonce"),
        "signature": ("apiKey", "header", "X-Catalog-Sync-Signature"),
    }
    assert "16 to 128" in schemes["nonce"]["description"]
    assert "catalog-sync-v2" in schemes["signature"]["description"]
    assert "v1= is no longer accepted" in schemes["signature"]["description"]

    from openapi_spec_validator import validate

    validate(document)


# ---------------------------------------------------------------- the example client


def test_the_example_client_signs_and_sends_requests_the_webhook_accepts(webhook: Webhook):
    from tests.harness.api_fuzz import serve

    client = Path(__file__).resolve().parents[2] / "examples" / "webhook_client.py"

    def run(key: bytes, *args: str) -> subprocess.CompletedProcess[str]:
        environment = {"PATH": os.environ.get("PATH", ""), "CATALOG_SYNC_WEBHOOK_KEY": key.decode()}
        return subprocess.run(
            [sys.executable, str(client), *args],
            check=False,
            capture_output=True,
            text=True,
            env=environment,
            timeout=60,
        )

    from handlers import webhook as function

    with serve(function.handler) as url:
        for _ in range(2):  # the same request twice in a second: two nonces, two requests
            sent = run(webhook.key, "POST", f"{url}{SYNC}", "--data", '{"mode": "full"}')
            assert (sent.returncode, sent.stdout.splitlines()[0]) == (0, "202"), sent.stdout + sent.stderr
        health = run(webhook.key, "GET", f"{url}/health?verbose=1")
        assert (health.returncode, health.stdout.splitlines()[0]) == (0, "200"), health.stdout
        refused = run(b"not-the-key", "POST", f"{url}{SYNC}", "--data", "{}")
        assert refused.returncode == 1 and refused.stdout.splitlines()[0] == "401"
        assert "does not match" in refused.stdout
    assert without_run_ids(webhook.recorder.payloads) == [{"catalog": "shop", "mode": "full", "force": False}] * 2
    assert len(seen_nonces(webhook)) == 3


# ---------------------------------------------------------------- the key stays secret


def test_the_secret_is_never_logged(
    webhook: Webhook, logs: io.StringIO, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="aws_lambda_powertools")
    call(event("POST", SYNC, b'{"mode": "full"}', key=webhook.key))  # accepted
    call(event("POST", SYNC, b"{}", key=b"wrong"))  # refused
    call(event("POST", SYNC, b'{"mode": 1}', key=webhook.key))  # invalid
    call(event("GET", "/health"))
    webhook.recorder.invoke = None  # type: ignore[assignment,method-assign]  # an internal error
    call(event("POST", SYNC, b"{}", key=webhook.key))
    logged = logs.getvalue()
    assert "sync queued" in logged and "bad signature" in logged and "unexpected error" in logged  # it sees the logs
    printed = capsys.readouterr()
    secret = webhook.key.decode()
    for text in (logged, printed.out, printed.err, caplog.text):
        assert secret not in text
