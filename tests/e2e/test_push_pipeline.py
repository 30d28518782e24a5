"""Pushed changes end to end under moto: POST /catalogs/shop/changes (the webhook) -> the push object in S3 and
the diff's invocation (recorded) -> the diff function -> SQS (two lanes) -> the consumer function -> Pinecone.

The world is test_aws_pipeline's (real handlers, moto, Pinecone and OpenAI doubles behind their SDKs); the webhook
runs in it with its own signing key.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from catalog_sync.logic.packing import unpack_envelope
from tests.conftest import product
from tests.doubles.http_api import Answer, Recorder, assert_problem, call, event, use_recorder
from tests.doubles.lambda_context import Context
from tests.e2e.test_aws_pipeline import (  # the world fixture and its helpers
    BUCKET,
    World,
    drop,
    index_matches,
    object_created,
    run_pipeline,
    sqs_event,
    world,
)

__all__ = ["world"]  # a fixture, used by name

V1 = [product(str(i)) for i in range(10)]


@dataclass
class Webhook:
    key: bytes
    recorder: Recorder

    def push(self, body: Any, *, request_id: str = "push-1", headers: dict[str, str] | None = None) -> Answer:
        request = event("POST", "/catalogs/shop/changes", orjson.dumps(body), key=self.key, headers=headers)
        request["requestContext"]["requestId"] = request_id
        return call(request)


@pytest.fixture
def webhook(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    import boto3

    from handlers import _shared

    key = f"whsec-{uuid.uuid4().hex}".encode()
    secret = f"catalog-sync/webhook-{uuid.uuid4().hex[:8]}"
    boto3.client("secretsmanager").create_secret(Name=secret, SecretString=key.decode())
    monkeypatch.setenv("CATALOG_SYNC_WEBHOOK_SECRET", secret)
    # The same diff function the consumers ask for repairs.
    monkeypatch.setenv("CATALOG_SYNC_DIFF_FUNCTION", "arn:aws:lambda:us-east-1:123456789012:function:diff")
    _shared.pipeline.cache_clear()
    yield Webhook(key, use_recorder(monkeypatch))
    use_recorder(monkeypatch)


def lanes(world: World) -> tuple[dict[str, Any], dict[str, set[str]]]:
    """The queued messages as the consumer would get them, and the products each lane carries."""
    batch, handles = sqs_event(world)
    by_lane: dict[str, set[str]] = {"priority": set(), "changes": set()}
    lane_of = {url: lane for lane, url in world.queues.items()}
    for record, (url, _) in zip(batch["Records"], handles, strict=True):
        message = unpack_envelope(record["body"])
        by_lane[lane_of[url]].update(change.product_id for change in message.changes)
    return batch, by_lane


def written_ids(world: World, since: int) -> set[str]:
    """The products Pinecone was asked to write or delete since request number `since`."""
    ids: set[str] = set()
    for request in world.pinecone.requests[since:]:
        body = request["body"] or {}
        if request["path"] == "/vectors/upsert":
            ids.update(vector["id"] for vector in body["vectors"])
        elif request["path"] in {"/vectors/update"}:
            ids.add(body["id"])
        elif request["path"] == "/vectors/delete":
            ids.update(body.get("ids") or [])
    return ids


def expected_after_push() -> list[dict[str, Any]]:
    catalog = {record["sku"]: copy.deepcopy(record) for record in V1}
    catalog["3"] = product("3", price=99.0)
    catalog["4"] = product("4", description="Rewritten: a quieter, lighter model.")
    catalog["new-1"] = product("new-1", title="A new product")
    for gone in ("7", "8", "9"):
        del catalog[gone]
    return list(catalog.values())


PUSH = {
    "upserts": [
        product("3", price=99.0),  # a price change: metadata only, priority
        product("4", description="Rewritten: a quieter, lighter model."),  # a text change: re-embedded
        product("new-1", title="A new product"),  # added
    ],
    "deletes": ["7", "8", "9", "never-existed"],  # 3 of 10 indexed: over the guard's 20%, but each one named
}


def test_pushed_changes_reach_the_index_through_the_catalog_path(world: World, webhook: Webhook):
    from handlers import consumer, diff

    run_pipeline(world, drop(world, "v1.jsonl", V1))
    index_matches(world, V1)
    before = len(world.pinecone.requests)

    code, _, answer = webhook.push(PUSH)
    assert (code, answer) == (
        202,
        {"catalog": "shop", "accepted": True, "request_id": "push-1", "upserts": 3, "deletes": 4},
    )
    [payload] = webhook.recorder.payloads
    assert payload == {
        "catalog": "shop",
        "key": "pushes/shop/push-1.jsonl",
        "ids": ["3", "4", "new-1", "7", "8", "9", "never-existed"],
        "mode": "incremental",
    }
    result = diff.handler(payload, Context())  # what Lambda runs with the asynchronous invocation
    [run] = result["runs"]
    assert (run["status"], run["held"]) == ("dispatched", False)
    counts = run["counts"]
    assert (counts["added"], counts["text_changed"], counts["metadata_only"], counts["deleted"]) == (1, 1, 1, 3)
    assert (counts["records"], counts["invalid"], run["quarantine"]) == (3, 0, None)

    batch, by_lane = lanes(world)
    assert by_lane == {"priority": {"3", "7", "8", "9"}, "changes": {"4", "new-1"}}
    assert consumer.handler(batch, Context())["batchItemFailures"] == []

    index_matches(world, expected_after_push())  # pushed upserts with their metadata, deletes gone, rest as was
    assert written_ids(world, before) == {"3", "4", "new-1", "7", "8", "9"}  # no other product was touched


def test_an_invalid_push_is_422_and_changes_nothing(world: World, webhook: Webhook):
    from handlers import _shared

    run_pipeline(world, drop(world, "v1.jsonl", V1))
    state = _shared.pipeline().state(_shared.pipeline().config("shop"))
    runs_before = len(state.runs())
    body = {"upserts": [product("3", price=1.0), product("5", stock="many")], "deletes": ["6"]}
    problem = assert_problem(webhook.push(body), 422, detail="1 of the changes are invalid")
    assert problem["errors"] == [
        {"loc": ["body", "upserts", 1], "reason": problem["errors"][0]["reason"]},
    ]
    assert problem["errors"][0]["reason"].startswith("stock: Input should be a valid integer")
    assert webhook.recorder.payloads == []
    assert world.s3.list_objects_v2(Bucket=BUCKET, Prefix="pushes/").get("KeyCount") == 0
    assert len(state.runs()) == runs_before
    index_matches(world, V1)


def test_a_push_is_never_the_newest_drop_and_the_next_catalog_run_decides(world: World, webhook: Webhook):
    run_pipeline(world, drop(world, "v1.jsonl", V1))
    assert webhook.push(PUSH)[0] == 202
    run_pipeline(world, webhook.recorder.payloads[0])
    index_matches(world, expected_after_push())
    # The schedule syncs the newest object under catalogs/shop/: the catalog, not the push written since.
    scheduled = run_pipeline(world, {"trigger": "schedule", "catalog": "shop", "mode": "incremental"})
    counts = scheduled["diff"]["runs"][0]["counts"]
    assert (counts["added"], counts["deleted"]) == (3, 1)  # 7, 8, 9 back; new-1 is not in the catalog
    index_matches(world, V1)


def test_a_repair_rereads_pushed_products_from_their_push_and_no_other(
    world: World, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
):
    """A consumer asks for a repair of products whose write a newer change overtook: each is re-read from where its
    desired state came from. Re-reading the push for a product it does not name would delete that product; re-reading
    the catalog for a product the push deleted would bring it back."""
    from handlers import _shared

    run_pipeline(world, drop(world, "v1.jsonl", V1))
    assert webhook.push(PUSH)[0] == 202
    run_pipeline(world, webhook.recorder.payloads[0])  # the latest run is the push
    repairs: list[dict[str, Any]] = []
    monkeypatch.setattr(_shared.pipeline(), "invoke_self", lambda arn, payload: repairs.append(payload))
    assert _shared.pipeline().runs.request_repair("shop", ["3", "5", "8"])
    assert sorted(repairs, key=lambda r: r.get("key", "")) == [
        # Re-read from the newest catalog object as it is when the repair runs (v1 here).
        {"catalog": "shop", "ids": ["5"], "force": True},
        {"catalog": "shop", "ids": ["3"], "key": "pushes/shop/push-1.jsonl", "force": True},
    ]  # 8's deletion is committed: there is nothing to put back
    for repair in repairs:
        run_pipeline(world, repair)
    index_matches(world, expected_after_push())  # 5 kept, 3 at its pushed price, 8 still deleted


def test_a_retried_push_with_its_key_is_diffed_once(world: World, webhook: Webhook):
    run_pipeline(world, drop(world, "v1.jsonl", V1))
    headers = {"Idempotency-Key": "order-update-42"}
    first = webhook.push(PUSH, request_id="push-1", headers=headers)
    retry = webhook.push(PUSH, request_id="push-2", headers=headers)
    assert first == retry and first[0] == 202
    [payload] = webhook.recorder.payloads
    run_pipeline(world, payload)
    index_matches(world, expected_after_push())


def test_a_push_of_deletes_only_deletes_just_those(world: World, webhook: Webhook):
    run_pipeline(world, drop(world, "v1.jsonl", V1))
    assert webhook.push({"deletes": ["2"]})[2]["deletes"] == 1
    [payload] = webhook.recorder.payloads
    assert payload["key"] == "pushes/shop/push-1.json"
    result = run_pipeline(world, payload)
    [run] = result["diff"]["runs"]
    # An object of no records, which the guard would hold as an empty catalog: a push is not a catalog.
    assert (run["status"], run["counts"]["records"], run["counts"]["deleted"]) == ("dispatched", 0, 1)
    index_matches(world, [record for record in V1 if record["sku"] != "2"])


def test_a_push_to_a_catalog_that_reads_a_wrapped_array_is_read_too(world: World, webhook: Webhook):
    """[source] records names where a catalog's array is; a push's objects (JSON Lines, or "[]" when it only
    deletes) are read as they are."""
    from handlers import _shared

    config = world.s3.get_object(Bucket=BUCKET, Key="config/shop.toml")["Body"].read()
    world.s3.put_object(Bucket=BUCKET, Key="config/shop.toml", Body=config + b'[source]\nrecords = "data.items"\n')
    _shared.pipeline.cache_clear()
    key = "catalogs/shop/v1.json"
    body = orjson.dumps({"data": {"items": V1}, "total": len(V1)})
    version = world.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"]
    [run] = run_pipeline(world, object_created(key, version, len(body)))["diff"]["runs"]
    assert run["counts"]["added"] == len(V1)

    assert webhook.push({"upserts": [product("3", price=99.0)], "deletes": ["2"]}, request_id="push-a")[0] == 202
    assert webhook.push({"deletes": ["4"]}, request_id="push-b")[0] == 202
    for payload in webhook.recorder.payloads:
        [run] = run_pipeline(world, payload)["diff"]["runs"]
        assert run["status"] == "dispatched", run
    expected = [product("3", price=99.0) if r["sku"] == "3" else r for r in V1 if r["sku"] not in ("2", "4")]
    index_matches(world, expected)
