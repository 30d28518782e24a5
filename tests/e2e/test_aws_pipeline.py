"""The AWS pipeline end to end under moto: S3 drop -> diff function -> SQS -> consumer function -> Pinecone.

Real event payloads (tests/data/events) drive the real handlers; AWS is moto, Pinecone and OpenAI are local
doubles spoken to by their official SDKs, and the keys come from Secrets Manager.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from moto import mock_aws

from catalog_sync.adapters.aws import observability
from catalog_sync.logic.validation import RecordValidator
from catalog_sync.models.changes import RunStatus
from catalog_sync.models.config import load_config
from tests.conftest import product
from tests.doubles.aws_resources import BUCKET, EVENTS, REGION, create_table
from tests.doubles.catalog_config import catalog_toml
from tests.doubles.lambda_context import Context, ShortContext
from tests.doubles.openai_server import OpenAIDouble
from tests.doubles.pinecone_server import PineconeDouble

# "{openai}" stands for the OpenAI double's address.
CONFIG = catalog_toml(
    embedder={
        "kind": "openai",
        "openai_model": "text-embedding-3-small",
        "openai_dimensions": 8,
        "openai_base_url": "{openai}",
    }
)


@dataclass
class World:
    s3: Any
    sqs: Any
    queues: dict[str, str]
    pinecone: PineconeDouble
    openai: OpenAIDouble
    tmp: Path


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    from handlers import _shared

    with mock_aws(), PineconeDouble(8) as pinecone, OpenAIDouble() as openai:
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "CatalogSync",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        create_table(dynamodb)
        queues = {
            name: sqs.create_queue(QueueName=name, Attributes={"MaximumMessageSize": "262144"})["QueueUrl"]
            for name in ("changes", "priority")
        }
        secrets.create_secret(Name="pinecone-key", SecretString="pc-test-key")
        secrets.create_secret(Name="openai-key", SecretString="sk-test")
        s3.put_object(Bucket=BUCKET, Key="config/shop.toml", Body=CONFIG.replace("{openai}", openai.base_url).encode())
        settings = {
            "CATALOG_SYNC_TABLE_NAME": "catalog-sync",
            "CATALOG_SYNC_BUCKET": BUCKET,
            "CATALOG_SYNC_QUEUE_URL": queues["changes"],
            "CATALOG_SYNC_PRIORITY_QUEUE_URL": queues["priority"],
            "CATALOG_SYNC_PINECONE_HOST": pinecone.host,
            "CATALOG_SYNC_PINECONE_SECRET": "pinecone-key",
            "CATALOG_SYNC_OPENAI_SECRET": "openai-key",
            "CATALOG_SYNC_STATE_SHARDS": "4",
            "CATALOG_SYNC_STATE_CONCURRENCY": "1",  # moto is not safe for concurrent writes
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        _shared.pipeline.cache_clear()
        yield World(s3, sqs, queues, pinecone, openai, tmp_path)
        _shared.pipeline.cache_clear()


_WRITES = itertools.count(1)


def sequencer() -> str:
    """S3's sequencer for the next write: 18 hexadecimal digits, as S3 writes them (moto's events carry one
    constant value, or none), greater for every later write: the order S3 gives the writes of one key."""
    return f"{0x00617F08299329D189 + next(_WRITES):018X}"


def object_created(key: str, version: str | None, size: int, *, bucket: str = BUCKET) -> dict[str, Any]:
    """The EventBridge "Object Created" event S3 sends for a write just made (its sequencer is the next one)."""
    event = json.loads((EVENTS / "eventbridge-s3-object-created.json").read_text())
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"].update({"key": key, "version-id": version, "size": size, "sequencer": sequencer()})
    return event


def drop(world: World, name: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Upload a catalog and return the EventBridge "Object Created" event S3 would send.

    Drops of different keys made within one second are ordered by key name (README, "Same-second drops"): the
    tests name successive drops so that their names sort in the order they are made.
    """
    key = f"catalogs/shop/{name}"
    body = b"".join(orjson.dumps(r) + b"\n" for r in records)
    version = world.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"]
    return object_created(key, version, len(body))


def sqs_event(world: World) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """What the event source mapping would hand the consumer: the queued messages, priority lane first."""
    template = json.loads((EVENTS / "sqs-receive-message.json").read_text())["Records"][0]
    records, handles = [], []
    for lane in ("priority", "changes"):
        url = world.queues[lane]
        while messages := world.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                record = copy.deepcopy(template)
                record.update(
                    messageId=message["MessageId"], receiptHandle=message["ReceiptHandle"], body=message["Body"]
                )
                records.append(record)
                handles.append((url, message["ReceiptHandle"]))
    return {"Records": records}, handles


def run_pipeline(world: World, event: dict[str, Any]) -> dict[str, Any]:
    from handlers import consumer, diff

    result = diff.handler(event, Context())
    batch, handles = sqs_event(world)
    if not batch["Records"]:  # Lambda never invokes a consumer with an empty batch
        return {"diff": result, "consumer": {"batchItemFailures": []}}
    response = consumer.handler(batch, Context())
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    for (url, handle), record in zip(handles, batch["Records"], strict=True):
        if record["messageId"] not in failed:
            world.sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)  # what Lambda does on success
    return {"diff": result, "consumer": response}


def index_matches(world: World, records: list[dict[str, Any]]) -> None:
    config = load_config(_config_file(world))
    validator = RecordValidator(config)
    stored = world.pinecone.vectors("shop")
    assert set(stored) == {r["sku"] for r in records}
    for record in records:
        metadata = dict(stored[record["sku"]]["metadata"])
        metadata.pop("_text_hash")
        assert metadata == validator.validate(record["sku"], record).metadata


def _config_file(world: World) -> Path:
    path = world.tmp / "shop.toml"
    path.write_text(CONFIG.replace("{openai}", world.openai.base_url))
    return path


def embedded_inputs(world: World) -> int:
    return sum(len(request["body"]["input"]) for request in world.openai.requests)


def test_v1_then_v2_through_the_handlers(world: World):
    v1 = [product(str(i)) for i in range(50)]
    first = run_pipeline(world, drop(world, "v1.jsonl", v1))
    [run] = first["diff"]["runs"]
    assert run["status"] == "dispatched" and run["counts"]["added"] == 50
    assert first["consumer"]["batchItemFailures"] == []
    index_matches(world, v1)
    assert embedded_inputs(world) == 50

    v2 = [product(str(i), price=3.0) if i % 5 == 0 else product(str(i), description=f"v2 {i}") for i in range(45)]
    second = run_pipeline(world, drop(world, "v2.jsonl", v2))
    counts = second["diff"]["runs"][0]["counts"]
    assert (counts["text_changed"], counts["metadata_only"], counts["deleted"]) == (36, 9, 5)
    index_matches(world, v2)
    # Embedding calls: exactly the text-changed products; metadata-only changes were updated in place.
    assert embedded_inputs(world) == 50 + 36
    assert sum(1 for r in world.pinecone.requests if r["path"] == "/vectors/update") == 9
    # Each run is marked complete once its consumers have handled all of its changes.
    from handlers import _shared

    runs = _shared.pipeline().state(_shared.pipeline().config("shop")).runs()
    v2_changes = counts["text_changed"] + counts["metadata_only"] + counts["deleted"]
    assert [(r.status.value, r.counts["applied_changes"], r.counts["dispatched_changes"]) for r in runs] == [
        ("succeeded", v2_changes, v2_changes),
        ("succeeded", 50, 50),
    ]


def test_a_bad_drop_and_a_poison_message_change_nothing(world: World):
    v1 = [product(str(i)) for i in range(10)]
    run_pipeline(world, drop(world, "v1.jsonl", v1))
    from handlers import consumer, diff

    key = "catalogs/shop/v2-broken.jsonl"
    version = world.s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"sku": "1", "ti')["VersionId"]
    result = diff.handler(object_created(key, version, 16), Context())
    assert result["runs"][0]["status"] == "bad_input" and "broken.jsonl, line 1" in result["runs"][0]["error"]
    rejected = diff.handler({"something": "else"}, Context())
    assert rejected["status"] == "rejected"

    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    from catalog_sync.logic.packing import encode_body

    template = json.loads((EVENTS / "sqs-receive-message.json").read_text())
    poison = copy.deepcopy(template["Records"][0])
    poison.update(messageId="poison", body="not a change message")
    fine = copy.deepcopy(template["Records"][0])
    fine.update(
        messageId="fine", body=encode_body({"format": 1, "run": "r", "catalog": "shop", "changes": []}, compress=True)
    )
    response = consumer.handler({"Records": [fine, poison]}, Context())
    assert [item["itemIdentifier"] for item in response["batchItemFailures"]] == ["poison"]
    with pytest.raises(BatchProcessingError):  # every record failed: the whole batch goes back
        consumer.handler({"Records": [poison]}, Context())
    index_matches(world, v1)


def collect(world: World) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    return sqs_event(world)


def test_duplicate_and_reversed_deliveries_leave_the_index_unchanged(world: World):
    from handlers import consumer, diff

    v1 = [product(str(i)) for i in range(30)]
    run_pipeline(world, drop(world, "v1.jsonl", v1))
    v2 = [product(str(i), price=7.0) if i % 2 else product(str(i), description=f"v2 {i}") for i in range(28)]
    diff.handler(drop(world, "v2.jsonl", v2), Context())
    batch, _ = collect(world)
    reversed_batch = {"Records": list(reversed(batch["Records"]))}
    assert consumer.handler(reversed_batch, Context())["batchItemFailures"] == []
    index_matches(world, v2)
    snapshot = {k: (list(v["values"]), dict(v["metadata"])) for k, v in world.pinecone.vectors("shop").items()}
    embedded = embedded_inputs(world)
    assert consumer.handler(batch, Context())["batchItemFailures"] == []  # delivered again
    assert {k: (list(v["values"]), dict(v["metadata"])) for k, v in world.pinecone.vectors("shop").items()} == snapshot
    assert embedded_inputs(world) == embedded  # the second delivery embedded nothing


def test_a_consumer_failing_mid_batch_is_retried_and_converges(world: World, monkeypatch: pytest.MonkeyPatch):
    from handlers import _shared, consumer, diff

    monkeypatch.setenv("CATALOG_SYNC_MAX_MESSAGE_BYTES", "2048")  # several messages in the batch
    monkeypatch.setenv("CATALOG_SYNC_PINECONE_WRITE_ATTEMPTS", "1")  # no retries but the SDK's own
    _shared.pipeline.cache_clear()
    v1 = [product(str(i)) for i in range(40)]
    diff.handler(drop(world, "v1.jsonl", v1), Context())
    batch, _ = collect(world)
    world.pinecone.failures.extend([500] * 8)  # outlasts the SDK's retries: the first message fails
    first = consumer.handler(batch, Context())
    failed = {item["itemIdentifier"] for item in first["batchItemFailures"]}
    assert 0 < len(failed) < len(batch["Records"])  # only the failed message comes back, not the batch
    redelivery = {"Records": [r for r in batch["Records"] if r["messageId"] in failed]}
    assert consumer.handler(redelivery, Context())["batchItemFailures"] == []
    index_matches(world, v1)


def test_two_drops_a_second_apart_converge_to_the_later_one(world: World):
    from handlers import consumer, diff

    v1 = [product(str(i)) for i in range(20)]
    run_pipeline(world, drop(world, "v1.jsonl", v1))
    early = [product(str(i), price=1.0) for i in range(20)]
    late = [product(str(i), price=2.0, description=f"late {i}") for i in range(20)]
    diff.handler(drop(world, "v2-early.jsonl", early), Context())
    diff.handler(drop(world, "v3-late.jsonl", late), Context())
    batch, _ = collect(world)
    # Whatever order the consumers see them in, the later drop wins.
    assert consumer.handler({"Records": list(reversed(batch["Records"]))}, Context())["batchItemFailures"] == []
    index_matches(world, late)


def test_a_poison_message_is_dead_lettered_and_redrive_applies_it_once_fixed(world: World):
    from typer.testing import CliRunner

    from catalog_sync import cli
    from handlers import _shared, consumer, diff

    dlq = world.sqs.create_queue(QueueName="changes-dlq")["QueueUrl"]
    dlq_arn = world.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for url in world.queues.values():
        world.sqs.set_queue_attributes(
            QueueUrl=url,
            Attributes={
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
                "VisibilityTimeout": "0",
            },
        )
    v1 = [product(str(i)) for i in range(12)]
    diff.handler(drop(world, "v1.jsonl", v1), Context())
    # The consumers cannot load the catalog's config: every delivery fails.
    config = world.s3.get_object(Bucket=BUCKET, Key="config/shop.toml")["Body"].read()
    world.s3.delete_object(Bucket=BUCKET, Key="config/shop.toml")
    _shared.pipeline.cache_clear()
    for _ in range(3):
        batch, _ = collect(world)
        if not batch["Records"]:
            break
        with pytest.raises(Exception, match="All records failed"):
            consumer.handler(batch, Context())
    assert world.pinecone.vectors("shop") == {}
    dead = int(
        world.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
    )
    assert dead >= 1  # nothing was dropped: it waits in the dead-letter queue

    # Fixed: the config is back. Redrive, and the same messages now apply.
    world.s3.put_object(Bucket=BUCKET, Key="config/shop.toml", Body=config)
    _shared.pipeline.cache_clear()
    result = CliRunner().invoke(
        cli.app, ["redrive", "--dlq-url", dlq, "--queue-url", world.queues["changes"], "--json"]
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["moved"] == dead
    batch, _ = collect(world)
    assert consumer.handler(batch, Context())["batchItemFailures"] == []
    index_matches(world, v1)


def test_rolling_back_to_an_earlier_version_of_the_catalog_object(world: World):
    v1 = [product(str(i)) for i in range(15)]
    v2 = [product(str(i), price=9.0) for i in range(14)]
    first = drop(world, "feed.jsonl", v1)
    run_pipeline(world, first)
    run_pipeline(world, drop(world, "feed.jsonl", v2))
    index_matches(world, v2)
    # One call: the same object, at yesterday's version, through the same diff.
    yesterday = {
        "catalog": "shop",
        "key": "catalogs/shop/feed.jsonl",
        "version_id": first["detail"]["object"]["version-id"],
    }
    result = run_pipeline(world, yesterday)
    assert result["diff"]["runs"][0]["counts"]["added"] == 1
    index_matches(world, v1)


def test_a_diff_near_its_timeout_checkpoints_and_continues_sending_nothing_twice(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    from handlers import _shared, consumer, diff

    monkeypatch.setenv("CATALOG_SYNC_DISPATCH_WINDOW", "7")
    _shared.pipeline.cache_clear()
    continuations: list[dict[str, Any]] = []
    monkeypatch.setattr(_shared.pipeline(), "invoke_self", lambda arn, payload: continuations.append(payload))

    v1 = [product(str(i), price=float(i)) for i in range(40)]
    result = diff.handler(drop(world, "v1.jsonl", v1), ShortContext(looks_left=2))
    assert result["runs"][0]["status"] == "continuing"
    invocations = 1
    while continuations:
        payload = continuations.pop()
        assert payload["resume"]["run_id"] == result["runs"][0]["run_id"]
        diff.handler(payload, ShortContext(looks_left=2))
        invocations += 1
    assert invocations == 3  # 40 changes in windows of 7, two windows per invocation: 14 + 14 + 12

    batch, _ = collect(world)
    ids = [r["messageId"] for r in batch["Records"]]
    bodies = [r["body"] for r in batch["Records"]]
    assert len(set(bodies)) == len(bodies)  # nothing was sent twice
    assert consumer.handler(batch, Context())["batchItemFailures"] == []
    index_matches(world, v1)
    state = _shared.pipeline().state(_shared.pipeline().config("shop"))
    [run] = state.runs()
    assert run.status.value == "succeeded" and run.counts["applied_changes"] == 40 and ids


def test_a_write_overtaken_by_a_newer_change_is_repaired(world: World, monkeypatch: pytest.MonkeyPatch):
    """A slow consumer writes an old version after a newer one was applied and committed: the product is put
    back by a targeted re-sync, so the index ends up at the latest catalog."""
    from catalog_sync.adapters.pinecone.index import PineconeVectorIndex
    from handlers import _shared, consumer, diff

    repairs: list[dict[str, Any]] = []
    monkeypatch.setenv("CATALOG_SYNC_DIFF_FUNCTION", "arn:aws:lambda:us-east-1:123456789012:function:diff")
    _shared.pipeline.cache_clear()
    monkeypatch.setattr(_shared.pipeline(), "invoke_self", lambda arn, payload: repairs.append(payload))

    v1 = [product(str(i)) for i in range(6)]
    run_pipeline(world, drop(world, "v1.jsonl", v1))
    old = [product(str(i), description="old edit") for i in range(6)]
    diff.handler(drop(world, "v2-old.jsonl", old), Context())
    slow_batch, _ = collect(world)

    newest = [product(str(i), description="newest edit") for i in range(6)]
    original_upsert = PineconeVectorIndex.upsert
    raced = []

    def upsert_slowly(self, ids, vectors, changes):  # type: ignore[no-untyped-def]
        if not raced:  # while the old write is in flight, the newest catalog arrives and is applied
            raced.append(True)
            run_pipeline(world, drop(world, "v3-newest.jsonl", newest))
        return original_upsert(self, ids, vectors, changes)

    monkeypatch.setattr(PineconeVectorIndex, "upsert", upsert_slowly)
    assert consumer.handler(slow_batch, Context())["batchItemFailures"] == []
    monkeypatch.setattr(PineconeVectorIndex, "upsert", original_upsert)
    config = load_config(_config_file(world))
    validator = RecordValidator(config)
    embedder_id = f"openai/{config.embedder.openai_model}@{config.embedder.openai_dimensions}"

    def expected_hash(record: dict[str, Any]) -> str:
        from catalog_sync.logic.canonical import text_hash

        valid = validator.validate(record["sku"], record)
        return text_hash(valid.text, model_id=embedder_id, template_id=config.text.fingerprint())

    stored = world.pinecone.vectors("shop")
    assert raced and stored["0"]["metadata"]["_text_hash"] == expected_hash(old[0])  # the old write landed last...
    # ...and was noticed: a re-sync of those products, from the newest catalog object when it runs.
    assert repairs == [{"catalog": "shop", "ids": [str(i) for i in range(6)], "force": True}]

    run_pipeline(world, repairs[0])  # the repair: a targeted re-sync of those products
    index_matches(world, newest)
    stored = world.pinecone.vectors("shop")
    assert all(stored[r["sku"]]["metadata"]["_text_hash"] == expected_hash(r) for r in newest)


def test_messages_are_packed_up_to_the_queues_configured_maximum(world: World):
    from handlers import _shared, diff

    for url in world.queues.values():
        world.sqs.set_queue_attributes(QueueUrl=url, Attributes={"MaximumMessageSize": "4096"})
    _shared.pipeline.cache_clear()
    diff.handler(drop(world, "v1.jsonl", [product(str(i), description="x" * 400) for i in range(60)]), Context())
    batch, _ = collect(world)
    assert len(batch["Records"]) > 1
    assert all(len(record["body"].encode()) <= 4096 for record in batch["Records"])


def emitted_metrics(output: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, dimensions, value) of every EMF data point the functions printed."""
    points = []
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == observability.NAMESPACE
            dimensions = {name: blob[name] for names in directive["Dimensions"] for name in names}
            for metric in directive["Metrics"]:
                values = blob[metric["Name"]]
                values = values if isinstance(values, list) else [values]
                points.extend((metric["Name"], dimensions, value) for value in values)
    return points


def test_the_metrics_the_alarms_watch_are_published(world: World, capsys: pytest.CaptureFixture[str]):
    v1 = [product(str(i)) for i in range(20)]
    run_pipeline(world, drop(world, "v1.jsonl", v1))
    points = emitted_metrics(capsys.readouterr().out)
    service = {"service": observability.SERVICE}
    # The run completed once, in the consumer, on the per-catalog metric of the staleness alarms.
    assert [p for p in points if p[0] == observability.RUNS_SUCCEEDED] == [
        (observability.RUNS_SUCCEEDED, {"service": observability.SERVICE, "catalog": "shop"}, 1.0)
    ]
    processed = sum(v for name, dims, v in points if name == observability.MESSAGES_PROCESSED and dims == service)
    failed = [v for name, dims, v in points if name == observability.MESSAGES_FAILED and dims == service]
    assert processed >= 1 and failed == [0.0]
    assert (observability.PRODUCTS_ADDED, service, 20.0) in points
    assert (observability.GUARD_TRIPS, service, 0.0) in points

    # An unchanged drop: the run has nothing to dispatch and completes in the diff function itself.
    run_pipeline(world, drop(world, "v2-unchanged.jsonl", v1))
    points = emitted_metrics(capsys.readouterr().out)
    assert [p for p in points if p[0] == observability.RUNS_SUCCEEDED] == [
        (observability.RUNS_SUCCEEDED, {"service": observability.SERVICE, "catalog": "shop"}, 1.0)
    ]


def test_a_run_begun_by_the_webhook_is_the_run_the_diff_carries_on(world: World):
    from handlers import _shared, consumer, diff

    v1 = [product(str(i)) for i in range(5)]
    drop(world, "v1.jsonl", v1)
    state = _shared.pipeline().state(_shared.pipeline().config("shop"))
    begun = state.begin_run(mode="incremental", source="webhook request r-1")
    result = diff.handler({"catalog": "shop", "run_id": begun.run_id}, Context())
    assert [run["run_id"] for run in result["runs"]] == [begun.run_id]
    batch, _ = sqs_event(world)
    assert consumer.handler(batch, Context())["batchItemFailures"] == []
    [run] = state.runs()  # no other run was begun
    assert (run.run_id, run.status, run.source) == (
        begun.run_id,
        RunStatus.SUCCEEDED,
        f"s3://{BUCKET}/catalogs/shop/v1.jsonl",
    )
    index_matches(world, v1)
    # A retry of an invocation whose run has settled begins a run of its own rather than rewriting that one.
    again = diff.handler({"catalog": "shop", "run_id": begun.run_id}, Context())
    assert again["runs"][0]["run_id"] != begun.run_id


def test_a_drop_whose_event_comes_after_a_newer_drop_is_not_synced(world: World, monkeypatch: pytest.MonkeyPatch):
    """EventBridge does not promise order, and Lambda retries a failed invocation: an older drop's event that
    arrives after a newer drop was synced must not undo it."""
    from moto.s3 import models as moto_s3

    from handlers import _shared, diff

    v1 = [product(str(i)) for i in range(6)]
    v2 = [product(str(i), price=2.0) for i in range(5)]
    # S3 stamps objects to the second: the older drop is made a minute earlier.
    now = moto_s3.utcnow
    monkeypatch.setattr(moto_s3, "utcnow", lambda: now() - timedelta(minutes=1))
    older = drop(world, "v1.jsonl", v1)
    monkeypatch.setattr(moto_s3, "utcnow", now)
    newer = drop(world, "v2.jsonl", v2)
    state = _shared.pipeline().state(_shared.pipeline().config("shop"))
    run_pipeline(world, newer)
    index_matches(world, v2)
    result = diff.handler(older, Context())
    assert result["runs"][0]["status"] == "superseded" and "catalogs/shop/v2.jsonl" in result["runs"][0]["reason"]
    index_matches(world, v2)
    assert [r.source for r in state.runs()] == [f"s3://{BUCKET}/catalogs/shop/v2.jsonl"]  # no run for v1


def test_a_write_landing_after_its_products_deletion_was_committed_is_undone(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    """A slow consumer upserts products while a newer catalog deletes them and that deletion is applied and
    committed: the late write would leave orphans in the index; the consumer deletes them again."""
    from catalog_sync.adapters.pinecone.index import PineconeVectorIndex
    from handlers import consumer, diff

    v1 = [product(str(i)) for i in range(10)]
    run_pipeline(world, drop(world, "v1.jsonl", v1))
    edited = [product(str(i), description="edited") for i in range(10)]
    diff.handler(drop(world, "v2-edited.jsonl", edited), Context())
    slow_batch, handles = sqs_event(world)
    for url, handle in handles:
        world.sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
    survivors = v1[:8]  # 8 and 9 deleted: 20%, what the deletion guard lets through
    original_upsert = PineconeVectorIndex.upsert
    raced: list[bool] = []

    def upsert_slowly(self, ids, vectors, changes):  # type: ignore[no-untyped-def]
        if not raced:  # while the edit is in flight, a catalog without products 8 and 9 is synced and applied
            raced.append(True)
            monkeypatch.setattr(PineconeVectorIndex, "upsert", original_upsert)
            run_pipeline(world, drop(world, "v3-fewer.jsonl", survivors))
        return original_upsert(self, ids, vectors, changes)

    monkeypatch.setattr(PineconeVectorIndex, "upsert", upsert_slowly)
    assert consumer.handler(slow_batch, Context())["batchItemFailures"] == []
    assert raced
    # 8 and 9 are deleted again, not orphaned; 0-7: their edit was overtaken by the newer catalog (a re-sync puts
    # the newer version back).
    assert set(world.pinecone.vectors("shop")) == {str(i) for i in range(8)}
    from handlers import _shared

    state = _shared.pipeline().state(_shared.pipeline().config("shop"))
    assert state.desired_versions(["8", "9"]) == {} and state.pending_count() == 8


# ---------------------------------------------------------------- drops within one second


def notified(key: str, version: str | None, size: int, *, bucket: str = BUCKET) -> dict[str, Any]:
    """The classic S3 notification S3 sends for a write just made (its sequencer is the next one)."""
    from urllib.parse import quote_plus

    event = json.loads((EVENTS / "s3-put.json").read_text())
    s3 = event["Records"][0]["s3"]
    s3["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    s3["object"].update(key=quote_plus(key), versionId=version, size=size, sequencer=sequencer())
    return event


def _in_one_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 stamps objects to the second: every write from now on gets the same LastModified."""
    from moto.s3 import models as moto_s3

    frozen = moto_s3.utcnow().replace(microsecond=0)
    monkeypatch.setattr(moto_s3, "utcnow", lambda: frozen)


def _last_modified(world: World, key: str, version: str) -> Any:
    return world.s3.head_object(Bucket=BUCKET, Key=key, VersionId=version)["LastModified"]


def _version(event: dict[str, Any]) -> str:
    if "detail" in event:
        return str(event["detail"]["object"]["version-id"])
    return str(event["Records"][0]["s3"]["object"]["versionId"])


def _put(world: World, key: str, records: list[dict[str, Any]], shape: str) -> dict[str, Any]:
    body = b"".join(orjson.dumps(r) + b"\n" for r in records)
    version = world.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"]
    return (object_created if shape == "eventbridge" else notified)(key, version, len(body))


def _changed_nothing(run: dict[str, Any]) -> None:
    """A run that read the object already synced: not superseded, and nothing to change."""
    counts = run["counts"]
    assert run["status"] == "dispatched" and counts["unchanged"] == counts["records"] > 0, run


@pytest.mark.parametrize("shape", ["eventbridge", "notification"])
def test_two_versions_of_one_key_in_one_second_end_at_the_newer_when_its_event_comes_first(
    world: World, monkeypatch: pytest.MonkeyPatch, shape: str
):
    """S3's timestamps cannot order them; its sequencer does (greater: later, for the same key)."""
    from handlers import _shared, diff

    key = "catalogs/shop/feed.jsonl"
    run_pipeline(world, drop(world, "feed.jsonl", [product(str(i)) for i in range(8)]))
    _in_one_second(monkeypatch)
    older_records = [product(str(i), price=1.0) for i in range(8)]
    newer_records = [product(str(i), price=2.0, description=f"newer {i}") for i in range(7)]
    older, newer = _put(world, key, older_records, shape), _put(world, key, newer_records, shape)
    assert _last_modified(world, key, _version(older)) == _last_modified(world, key, _version(newer))

    result = run_pipeline(world, newer)  # EventBridge and S3 do not promise order: the newer event first
    assert result["diff"]["runs"][0]["status"] == "dispatched"
    index_matches(world, newer_records)
    late = run_pipeline(world, older)
    [run] = late["diff"]["runs"]
    assert run["status"] == "superseded" and key in run["reason"], run
    index_matches(world, newer_records)
    state = _shared.pipeline().state(_shared.pipeline().config("shop"))
    assert len(state.runs()) == 2  # the baseline and the newer version: no run read the older one

    # A scheduled sync lists the key's current version (no sequencer: the same object, by its version id) and
    # keeps the claim's sequencer, so the older event retried after it is still refused.
    scheduled = run_pipeline(world, {"trigger": "schedule", "catalog": "shop", "mode": "incremental"})
    _changed_nothing(scheduled["diff"]["runs"][0])
    assert diff.handler(older, Context())["runs"][0]["status"] == "superseded"
    index_matches(world, newer_records)


@pytest.mark.parametrize("first", ["b", "a"])
def test_drops_of_two_keys_in_one_second_end_at_the_greater_key_whichever_event_comes_first(
    world: World, monkeypatch: pytest.MonkeyPatch, first: str
):
    """The documented rule for different keys within one second: the greater key name is the newer drop (keys
    named by time sort in time order), whatever order the events come in; the schedule picks the same one."""
    from handlers import diff

    run_pipeline(world, drop(world, "2026-11-22T07-59-00.jsonl", [product(str(i)) for i in range(8)]))
    _in_one_second(monkeypatch)
    catalogs = {
        "a": [product(str(i), price=1.0) for i in range(8)],
        "b": [product(str(i), price=2.0, description=f"b {i}") for i in range(7)],
    }
    events = {name: drop(world, f"2026-11-22T08-00-0{name}.jsonl", catalogs[name]) for name in ("b", "a")}
    answers = {name: run_pipeline(world, events[name])["diff"]["runs"][0] for name in (first, *{"a", "b"} - {first})}
    assert answers["b"]["status"] == "dispatched"
    assert answers["a"]["status"] == ("superseded" if first == "b" else "dispatched")
    index_matches(world, catalogs["b"])
    scheduled = run_pipeline(world, {"trigger": "schedule", "catalog": "shop", "mode": "incremental"})
    _changed_nothing(scheduled["diff"]["runs"][0])
    index_matches(world, catalogs["b"])
    assert diff.handler(events["a"], Context())["runs"][0]["status"] == "superseded"


def test_a_continuing_dispatch_stops_once_a_newer_version_of_its_key_is_claimed_in_the_same_second(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    """The continuation reads its run's claim from the checkpoint: a write of the same key in the same second,
    later by its sequencer, overtakes it (LastModified alone could not tell)."""
    from handlers import _shared, consumer, diff

    monkeypatch.setenv("CATALOG_SYNC_DISPATCH_WINDOW", "7")
    _shared.pipeline.cache_clear()
    continuations: list[dict[str, Any]] = []
    monkeypatch.setattr(_shared.pipeline(), "invoke_self", lambda arn, payload: continuations.append(payload))
    key = "catalogs/shop/feed.jsonl"
    _in_one_second(monkeypatch)
    older = _put(world, key, [product(str(i), price=1.0) for i in range(40)], "eventbridge")
    started = diff.handler(older, ShortContext(looks_left=2))
    assert started["runs"][0]["status"] == "continuing"
    newer_records = [product(str(i), price=2.0) for i in range(30)]
    newer = _put(world, key, newer_records, "eventbridge")
    assert diff.handler(newer, Context())["runs"][0]["status"] == "dispatched"
    [continuation] = continuations
    resumed = diff.handler(continuation, Context())
    assert resumed["superseded"] is True and resumed["finished"] is True, resumed
    while True:  # what the consumers then do, until the queues (and the re-syncs asked for) are done
        batch, handles = collect(world)
        if not batch["Records"]:
            if not continuations:
                break
            diff.handler(continuations.pop(), Context())
            continue
        assert consumer.handler(batch, Context())["batchItemFailures"] == []
        for url, handle in handles:
            world.sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
    index_matches(world, newer_records)
