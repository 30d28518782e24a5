"""The bad-input corpus (tests/data/bad/cases.toml) through the AWS pipeline's real handlers.

Every case gets a clear error or a quarantine; a rejected input changes nothing in the index or the state, nothing
crashes, and the error names the problem. One world (moto S3, SQS, DynamoDB and Secrets Manager; the Pinecone and
OpenAI doubles) serves every case: it is synced once with the baselines, and each case must leave it as it found
it (the accepted cases hold the baseline's content), which is what each case checks.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import re
import time
import tomllib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import boto3
import orjson
import pytest
from moto import mock_aws
from moto.s3 import models as moto_s3
from pydantic import BaseModel, ConfigDict, Field, model_validator

from catalog_sync.bootstrap import api
from catalog_sync.formats.catalog import open_catalog
from catalog_sync.formats.json_records import MAX_NESTING, nested_too_deep
from catalog_sync.formats.limits import ReaderLimits
from catalog_sync.formats.records import CatalogFormatError
from catalog_sync.logic.packing import BadMessage, unpack_envelope
from tests.doubles.aws_resources import TABLE, create_table
from tests.doubles.http_api import Recorder, call, event, use_recorder
from tests.doubles.lambda_context import Context
from tests.doubles.openai_server import OpenAIDouble
from tests.doubles.pinecone_server import PineconeDouble
from tests.e2e.test_aws_pipeline import (
    BUCKET,
    CONFIG,
    EVENTS,
    REGION,
    World,
    object_created,
    run_pipeline,
    sqs_event,
)

CORPUS = Path(__file__).resolve().parent.parent / "data" / "bad"
MANIFEST = CORPUS / "cases.toml"
CATALOGS = ("shop", "bulk", "feed")
# The feed catalog's records are where an API response wraps them.
CATALOG_SETTINGS = {"feed": '[source]\nrecords = "data.items"\n'}
SHARDS = 1  # the state's sharding plays no part here; one shard is one query per snapshot
WEBHOOK_SECRET = "catalog-sync/webhook-bad-inputs"
WEBHOOK_KEY = b"whsec-bad-inputs"

Entry = Literal["s3-drop", "diff-event", "sqs-body", "sqs-event", "health-event", "webhook", "webhook-event"]
Expect = Literal[
    "accepted", "bad_input", "quarantined", "held", "rejected", "ignored", "batch_error", "item_failures", "skipped",
    "http",
]  # fmt: skip
_OUTCOMES: dict[Entry, set[str]] = {
    "s3-drop": {"accepted", "bad_input", "quarantined", "held"},
    "diff-event": {"bad_input", "rejected", "ignored"},
    "sqs-body": {"batch_error", "skipped"},
    "sqs-event": {"batch_error", "item_failures", "rejected"},
    "health-event": {"rejected"},
    "webhook": {"http"},
    "webhook-event": {"http"},
}
_NEEDS: dict[str, tuple[str, ...]] = {
    "bad_input": ("error",),
    "held": ("error",),
    "rejected": ("error",),
    "quarantined": ("reasons", "where"),
    "batch_error": ("exception", "error"),
    "item_failures": ("failed",),
    "http": ("status",),
}


class Case(BaseModel):
    """One entry of the manifest, checked: a case must say everything its outcome is judged by."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9-]+$")
    description: str = Field(min_length=10)
    entry: Entry
    expect: Expect
    file: str | None = None
    generate: dict[str, Any] | None = None
    object: str | None = None
    catalog: str = "shop"
    env: dict[str, str] = Field(default_factory=dict)
    never_shown: list[str] = Field(default_factory=list)
    error: str | None = None
    hint: str | None = None
    reasons: list[str] = Field(default_factory=list)
    where: str | None = None
    exception: str | None = None
    failed: list[str] = Field(default_factory=list)
    status: int | None = None
    loc: list[str | int] | None = None
    method: str = "POST"
    path: str = "/catalogs/shop/changes"
    sign: Literal["key", "none", "other-key", "expired", "tampered"] = "key"
    content_type: str = "application/json"
    base64: bool = False
    xfail: str | None = None
    # What the known gap raises: the case must fail for the reason it documents, not any other.
    xfail_raises: Literal["KeyError", "ClientError"] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Case:
        if (self.file is None) == (self.generate is None):
            raise ValueError(f"{self.name}: give file or generate, not both")
        if self.generate is not None and self.entry == "s3-drop" and self.object is None:
            raise ValueError(f"{self.name}: a generated drop needs its object name")
        if self.expect not in _OUTCOMES[self.entry]:
            raise ValueError(f"{self.name}: {self.entry} cannot come to {self.expect}")
        if (self.xfail is None) != (self.xfail_raises is None):
            raise ValueError(f"{self.name}: a known gap says what it raises (xfail and xfail_raises)")
        missing = [name for name in _NEEDS.get(self.expect, ()) if not getattr(self, name)]
        if missing:
            raise ValueError(f"{self.name}: {self.expect} needs {', '.join(missing)}")
        return self

    @property
    def object_name(self) -> str:
        assert self.file is not None or self.object is not None
        return self.object or Path(self.file or "").name


def load_cases() -> list[Case]:
    return [Case.model_validate(raw) for raw in tomllib.loads(MANIFEST.read_text())["case"]]


CASES = load_cases()


# ---------------------------------------------------------------- generated inputs (too big to commit)


def _baseline() -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (CORPUS / "baseline" / "shop.jsonl").read_bytes().splitlines()]


def _as_catalog(records: list[bytes], name: str) -> bytes:
    """Serialized records as the object name's format says: a JSON array or JSON Lines, gzipped if .gz."""
    plain = name.removesuffix(".gz")
    data = b"[" + b",\n".join(records) + b"]" if plain.endswith(".json") else b"".join(r + b"\n" for r in records)
    return gzip.compress(data, compresslevel=1, mtime=0) if name.endswith(".gz") else data


def _with_third(raw_third: bytes, name: str) -> bytes:
    """The baseline with its third record replaced by raw bytes."""
    p1, p2, _ = _baseline()
    return _as_catalog([orjson.dumps(p1), orjson.dumps(p2), raw_third], name)


def _deep(depth: int) -> bytes:
    return b'{"a":' * depth + b'"bottom"' + b"}" * depth


def gen_deep(case: Case, *, depth: int) -> bytes:
    return _with_third(b'{"sku": "p3", "title": "Deep", "description": ' + _deep(depth) + b"}", case.object_name)


def gen_big_field(case: Case, *, field: str, bytes: int) -> bytes:
    p3 = _baseline()[2]
    p3[field] = ("Dishwasher safe. " * (bytes // 17 + 1))[:bytes]
    return _with_third(orjson.dumps(p3), case.object_name)


def gen_gzip(case: Case, *, source: str, cut: int = 0) -> bytes:
    data = gzip.compress((CORPUS / source).read_bytes(), mtime=0)
    return data[: len(data) - cut]


def gen_gzip_bomb(case: Case, *, bytes: int) -> bytes:
    # One good line, then spaces: only the decompression limit stops the reader.
    first = orjson.dumps(_baseline()[0]) + b"\n"
    return gzip.compress(first + b" " * bytes, compresslevel=9, mtime=0)


def gen_long_line(case: Case, *, bytes: int) -> bytes:
    p1, p2, _ = _baseline()
    endless = b'{"sku": "p3", "description": "' + b"x" * bytes  # no closing quote, no newline
    data = orjson.dumps(p1) + b"\n" + orjson.dumps(p2) + b"\n" + endless
    return gzip.compress(data, compresslevel=1, mtime=0) if case.object_name.endswith(".gz") else data


def gen_oversize_push(case: Case, *, bytes: int) -> bytes:
    return orjson.dumps({"upserts": [{**_baseline()[0], "description": "x" * bytes}]})


def gen_deep_push(case: Case, *, depth: int) -> bytes:
    return b'{"upserts": [{"sku": "p1", "title": "Deep", "description": ' + _deep(depth) + b"}]}"


GENERATORS: dict[str, Callable[..., bytes]] = {
    "deep": gen_deep,
    "big-field": gen_big_field,
    "gzip": gen_gzip,
    "gzip-bomb": gen_gzip_bomb,
    "long-line": gen_long_line,
    "oversize-push": gen_oversize_push,
    "deep-push": gen_deep_push,
}


def case_input(case: Case) -> bytes:
    if case.file is not None:
        return (CORPUS / case.file).read_bytes()
    assert case.generate is not None
    options = dict(case.generate)
    return GENERATORS[options.pop("kind")](case, **options)


# ---------------------------------------------------------------- the world, synced once


@dataclass
class BadWorld(World):
    dynamodb: Any = None
    # Seconds S3's clock is moved on: every drop is made in a second of its own (drops within one second are
    # ordered by key name, and the cases' objects are named for what they hold).
    drop_clock: int = 0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BadWorld]:
    from handlers import _shared

    with pytest.MonkeyPatch.context() as patch, mock_aws(), PineconeDouble(8) as pinecone, OpenAIDouble() as openai:
        settings = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "CatalogSync",
            "CATALOG_SYNC_TABLE_NAME": TABLE,
            "CATALOG_SYNC_BUCKET": BUCKET,
            "CATALOG_SYNC_PINECONE_HOST": pinecone.host,
            "CATALOG_SYNC_PINECONE_SECRET": "pinecone-key",
            "CATALOG_SYNC_OPENAI_SECRET": "openai-key",
            "CATALOG_SYNC_STATE_SHARDS": str(SHARDS),
            "CATALOG_SYNC_STATE_CONCURRENCY": "1",  # moto is not safe for concurrent writes
            "CATALOG_SYNC_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "CATALOG_SYNC_DIFF_FUNCTION": "catalog-sync-diff",
        }
        for name, value in settings.items():
            patch.setenv(name, value)
        for name in ("CATALOG_SYNC_MAX_DECOMPRESSED_BYTES", "CATALOG_SYNC_MAX_RECORD_BYTES"):
            patch.delenv(name, raising=False)
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb)
        queues = {
            name: sqs.create_queue(QueueName=name, Attributes={"MaximumMessageSize": "262144"})["QueueUrl"]
            for name in ("changes", "priority")
        }
        patch.setenv("CATALOG_SYNC_QUEUE_URL", queues["changes"])
        patch.setenv("CATALOG_SYNC_PRIORITY_QUEUE_URL", queues["priority"])
        for name, value in (("pinecone-key", "pc-test-key"), ("openai-key", "sk-test"), (WEBHOOK_SECRET, WEBHOOK_KEY)):
            secrets.create_secret(Name=name, SecretString=value if isinstance(value, str) else value.decode())
        use_recorder(patch)  # forget the webhook's settings and clients made in other worlds
        config = CONFIG.replace("{openai}", openai.base_url)
        for catalog in CATALOGS:
            body = config.replace('"shop"', f'"{catalog}"') + CATALOG_SETTINGS.get(catalog, "")
            s3.put_object(Bucket=BUCKET, Key=f"config/{catalog}.toml", Body=body)
        _shared.pipeline.cache_clear()
        world = BadWorld(s3, sqs, queues, pinecone, openai, tmp_path_factory.mktemp("bad-inputs"), dynamodb)
        real_utcnow = moto_s3.utcnow
        patch.setattr(moto_s3, "utcnow", lambda: real_utcnow() + timedelta(seconds=world.drop_clock))
        for catalog in CATALOGS:
            body = (CORPUS / "baseline" / f"{catalog}.jsonl").read_bytes()
            result = run_pipeline(world, drop_event(world, catalog, "baseline.jsonl", body))
            assert result["diff"]["runs"][0]["counts"]["added"] == len(body.splitlines())
            assert result["consumer"]["batchItemFailures"] == []
        # What every case compares is there to compare: 3 + 20 + 3 products, indexed and in the state.
        assert [len(pinecone.vectors(catalog)) for catalog in CATALOGS] == [3, 20, 3]
        assert len(_state(world, respelled=False)) == 26
        yield world
        _shared.pipeline.cache_clear()
        use_recorder(patch)  # the webhook's clients belong to this world


def drop_event(world: BadWorld, catalog: str, name: str, body: bytes) -> dict[str, Any]:
    """Upload an object under the catalog's prefix, in a second of its own; the EventBridge "Object Created" event
    S3 would send."""
    world.drop_clock += 2
    key = f"catalogs/{catalog}/{name}"
    version = world.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"]
    return object_created(key, version, len(body))


# ---------------------------------------------------------------- what must not change


def _state(world: BadWorld, *, respelled: bool) -> dict[tuple[str, str], dict[str, Any]]:
    """Every product's state item and each catalog's index settings, as stored (dynamodb_state.py's layout).

    `respelled`: leave out the fingerprint of a record's spelling, which a file read spelled differently updates
    without changing anything else.
    """
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for catalog in CATALOGS:
        meta = world.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"M#{catalog}"}, "sk": {"S": "index"}})
        found = [meta["Item"]] if "Item" in meta else []
        for shard in range(SHARDS):
            pages = world.dynamodb.get_paginator("query").paginate(
                TableName=TABLE,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"P#{catalog}#{shard:03d}"}},
                # Desired and committed version, deletion, hashes, spelling: the per-field hashes (fh) are summed
                # up by th and mh, and moto is slow to serialize them.
                ProjectionExpression="pk, sk, dv, #del, fp, th, mh, cv, cth, cmh",
                ExpressionAttributeNames={"#del": "del"},
            )
            found.extend(item for page in pages for item in page["Items"])
        for item in found:
            items[item["pk"]["S"], item["sk"]["S"]] = {
                name: value for name, value in item.items() if not (respelled and name == "fp")
            }
    return items


def snapshot(world: BadWorld, *, respelled: bool = False) -> dict[str, Any]:
    """The index (every vector, its values and metadata) and the products' state."""
    return {
        "index": {
            catalog: {
                product_id: (list(vector["values"]), dict(vector["metadata"]))
                for product_id, vector in world.pinecone.vectors(catalog).items()
            }
            for catalog in CATALOGS
        },
        "state": _state(world, respelled=respelled),
    }


def changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What differs between two snapshots, by catalog and product (for the failure message)."""
    diff: dict[str, Any] = {}
    for part in ("index", "state"):
        for key in sorted({*before[part], *after[part]}, key=str):
            old, new = before[part].get(key), after[part].get(key)
            if part == "index":
                old, new = old or {}, new or {}
                for product_id in sorted({*old, *new}):
                    if old.get(product_id) != new.get(product_id):
                        diff[f"index {key} {product_id}"] = (old.get(product_id), new.get(product_id))
            elif old != new:
                old, new = old or {}, new or {}
                diff[f"state {key}"] = {
                    name: (old.get(name), new.get(name)) for name in {*old, *new} if old.get(name) != new.get(name)
                }
    return diff


def index_writes(world: BadWorld) -> int:
    writes = ("/vectors/upsert", "/vectors/update", "/vectors/delete")
    return sum(1 for request in world.pinecone.requests if request["path"] in writes)


def queued(world: BadWorld) -> int:
    batch, _ = sqs_event(world)  # receives (and leaves in flight) whatever is queued
    return len(batch["Records"])


def pushed_objects(world: BadWorld) -> list[str]:
    return [obj["Key"] for obj in world.s3.list_objects_v2(Bucket=BUCKET, Prefix="pushes/").get("Contents", [])]


def _remove_runs_without_a_record(world: BadWorld) -> None:
    """Undo the one known gap that leaves a trace (sqs-unknown-run): a run row with a counter but no run."""
    for catalog in CATALOGS:
        items = world.dynamodb.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"R#{catalog}"}},
        )["Items"]
        for item in items:
            if "run_json" not in item:
                world.dynamodb.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})


# ---------------------------------------------------------------- feeding a case in


def _sqs_record(message_id: str, body: str) -> dict[str, Any]:
    template = json.loads((EVENTS / "sqs-receive-message.json").read_text())["Records"][0]
    return {**copy.deepcopy(template), "messageId": message_id, "body": body}


def feed_drop(world: BadWorld, case: Case, data: bytes) -> dict[str, Any]:
    result = run_pipeline(world, drop_event(world, case.catalog, case.object_name, data))
    assert result["consumer"]["batchItemFailures"] == []
    check_diff(world, case, result["diff"])
    return result


def feed_diff_event(world: BadWorld, case: Case, data: bytes, output: Callable[[], tuple[str, list[Any]]]) -> None:
    from handlers import diff

    answer = diff.handler(json.loads(data), Context())
    check_diff(world, case, answer)
    if case.expect == "rejected":
        check_rejected(case, answer, "diff", *output())


def check_diff(world: BadWorld, case: Case, answer: dict[str, Any]) -> None:
    if case.expect == "rejected":
        assert answer["status"] == "rejected" and answer["runs"] == [], answer
        assert case.error is not None and case.error in answer["error"], answer["error"]
        return
    if case.expect == "ignored":
        assert answer == {"status": "ok", "runs": []}
        return
    [run] = answer["runs"]
    if case.expect == "bad_input":
        assert run["status"] == "bad_input", run
        assert case.error is not None and case.error in run["error"], run["error"]
        if case.entry == "s3-drop" and case.catalog in CATALOGS:
            assert f"s3://{BUCKET}/catalogs/{case.catalog}/{case.object_name}" in run["error"]  # names the file
        assert case.hint is None or case.hint in run["error"], run["error"]
        return
    if case.expect == "held":
        assert (run["status"], run["held"]) == ("held", True), run
        assert case.error is not None and case.error in run["reason"], run["reason"]
        return
    counts = run["counts"]
    assert run["status"] in ("succeeded", "dispatched"), run
    assert counts["added"] == counts["text_changed"] == counts["metadata_only"] == counts["deleted"] == 0, counts
    if case.expect == "accepted":
        assert counts["invalid"] == 0 and run["quarantine"] is None, run
        assert counts["unchanged"] == counts["records"] == len(_baseline()), counts
        return
    assert case.expect == "quarantined"
    assert counts["invalid"] == len(case.reasons), counts
    location = run["quarantine"]
    assert location is not None and location.startswith(f"s3://{BUCKET}/quarantine/{case.catalog}/"), location
    body = world.s3.get_object(Bucket=BUCKET, Key=location.removeprefix(f"s3://{BUCKET}/"))["Body"].read()
    rows = [orjson.loads(line) for line in body.splitlines()]
    assert len(rows) == len(case.reasons)
    for row, reason in zip(rows, case.reasons, strict=True):
        assert reason in row["reason"], row["reason"]
        assert row["run"] == run["run_id"]
    assert rows[0]["location"] == case.where


def check_never_shown(case: Case, answer: dict[str, Any], printed: str, logged: list[Any]) -> None:
    """What the input would have leaked, had it been read, is nowhere: not in the answer, the output or the logs."""
    seen = orjson.dumps(answer, default=str).decode() + printed
    seen += "".join(f"{record.getMessage()} {record.__dict__}" for record in logged)
    for secret in case.never_shown:
        assert secret not in seen, secret


def check_rejected(case: Case, answer: dict[str, Any], function: str, output: str, logged: list[Any]) -> None:
    """One clear rejection: answered (not raised), logged as an error, counted once as RejectedEvents, with the
    function and what was received named beside the count."""
    assert answer["status"] == "rejected", answer
    assert case.error is not None and case.error in answer["error"], answer["error"]
    check_counted(function, answer["error"], output, logged)


def check_counted(function: str, reason: str, output: str, logged: list[Any]) -> None:
    """The rejection's one log line (an error, with the reason) and its one RejectedEvents data point."""
    counted = [
        blob
        for blob in map(json.loads, (line for line in output.splitlines() if line.startswith('{"_aws"')))
        if "RejectedEvents" in blob
    ]
    assert [(blob["RejectedEvents"], blob["service"], blob["function"]) for blob in counted] == [
        ([1.0], "catalog-sync", function)
    ], counted
    [record] = [record for record in logged if record.getMessage() == "rejected event"]
    assert record.levelname == "ERROR" and record.reason == reason and record.received, record.__dict__
    assert record.received == counted[0]["received"]


def feed_consumer(world: BadWorld, case: Case, data: bytes, output: Callable[[], tuple[str, list[Any]]]) -> None:
    from handlers import consumer

    batch = {"Records": [_sqs_record("case", data.decode())]} if case.entry == "sqs-body" else json.loads(data)
    if case.expect == "rejected":
        answer = consumer.handler(batch, Context())
        check_rejected(case, answer, "consumer", *output())
        assert "batchItemFailures" not in answer  # no partial batch response: this is no batch of the queue's
        return
    if case.expect == "batch_error":
        with pytest.raises(Exception) as raised:  # noqa: PT011  # the type is checked by name below
            consumer.handler(batch, Context())
        assert type(raised.value).__name__ == case.exception, repr(raised.value)
        assert case.error is not None and case.error in str(raised.value), str(raised.value)
        return
    response = consumer.handler(batch, Context())
    assert [item["itemIdentifier"] for item in response["batchItemFailures"]] == case.failed


def feed_health(world: BadWorld, case: Case, data: bytes, output: Callable[[], tuple[str, list[Any]]]) -> None:
    from handlers import health

    answer = health.handler(json.loads(data), Context())
    printed, logged = output()
    check_rejected(case, answer, "health", printed, logged)
    assert answer["catalogs"] == [] and '"HealthScore"' not in printed  # nothing scored, nothing published


def feed_webhook_event(
    world: BadWorld,
    case: Case,
    data: bytes,
    monkeypatch: pytest.MonkeyPatch,
    output: Callable[[], tuple[str, list[Any]]],
) -> None:
    """The whole event handed to the webhook: anything but an HTTP API request is a 400 problem, in the proxy
    response shape, before any route is read."""
    from handlers import webhook

    recorder = Recorder()
    monkeypatch.setattr(api, "invoker", lambda: recorder)
    answer = webhook.handler(json.loads(data), Context())
    assert answer["statusCode"] == case.status, answer
    assert answer["headers"] == {"Content-Type": "application/problem+json"}
    problem = json.loads(answer["body"])
    assert problem["status"] == case.status
    assert case.error is not None and case.error in problem["detail"], problem
    printed, logged = output()
    [record] = [record for record in logged if record.getMessage() == "rejected event"]
    check_counted("webhook", record.reason, printed, logged)
    assert record.reason in problem["detail"]
    assert recorder.payloads == []  # nothing was handed to the diff function
    assert pushed_objects(world) == []


def feed_webhook(world: BadWorld, case: Case, data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    monkeypatch.setattr(api, "invoker", lambda: recorder)
    headers = {"content-type": case.content_type}
    key = {"none": None, "other-key": b"not-the-key"}.get(case.sign, WEBHOOK_KEY)
    timestamp = int(time.time()) - 3_600 if case.sign == "expired" else None
    request = event(
        case.method, case.path, data, key=key, timestamp=timestamp, base64_body=case.base64, headers=headers
    )
    if case.sign == "tampered":
        request["body"] += " "
    code, answer_headers, answer = call(request)
    assert code == case.status, answer
    assert answer_headers["content-type"] == "application/problem+json"
    assert answer["status"] == case.status
    assert case.error is None or case.error in answer["detail"], answer
    errors = answer.get("errors", [])
    if case.reasons:
        assert len(errors) == len(case.reasons), errors
        for error, reason in zip(errors, case.reasons, strict=True):
            assert reason in error["reason"], error
    if case.loc is not None:
        assert errors and errors[0]["loc"] == case.loc, errors
    assert recorder.payloads == []  # nothing was handed to the diff function
    assert pushed_objects(world) == []


def _params() -> list[Any]:
    from botocore.exceptions import ClientError

    raised: dict[str | None, type[Exception]] = {"KeyError": KeyError, "ClientError": ClientError}

    def marks(case: Case) -> list[Any]:
        if case.xfail is None:
            return []
        return [pytest.mark.xfail(reason=case.xfail, strict=True, raises=raised[case.xfail_raises])]

    return [pytest.param(case, id=case.name, marks=marks(case)) for case in CASES]


@pytest.mark.parametrize("case", _params())
def test_a_bad_input_gets_its_outcome_and_changes_nothing(
    world: BadWorld,
    case: Case,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)

    def output() -> tuple[str, list[Any]]:
        """What the function printed (its metrics) and logged, since the case began."""
        return capsys.readouterr().out, list(caplog.records)

    data = case_input(case)
    capsys.readouterr()
    caplog.clear()
    # A file read (wholly, or but for its quarantined records) may record how its unchanged records are spelled.
    respelled = case.expect in ("accepted", "quarantined")
    before, writes = snapshot(world, respelled=respelled), index_writes(world)
    try:
        if case.entry == "s3-drop":
            answer = feed_drop(world, case, data)
            check_never_shown(case, answer, *output())
        elif case.entry == "diff-event":
            feed_diff_event(world, case, data, output)
        elif case.entry in ("sqs-body", "sqs-event"):
            feed_consumer(world, case, data, output)
        elif case.entry == "health-event":
            feed_health(world, case, data, output)
        elif case.entry == "webhook-event":
            feed_webhook_event(world, case, data, monkeypatch, output)
        else:
            feed_webhook(world, case, data, monkeypatch)
        after = snapshot(world, respelled=respelled)
        assert after == before, changed(before, after)  # the index and the products' state, exactly
        assert index_writes(world) == writes  # not even rewritten with the same values
        assert queued(world) == 0
        if case.entry in ("sqs-body", "sqs-event"):  # consumers count a run's progress in its row
            from handlers import _shared

            for catalog in CATALOGS:  # the runs stay readable (status, health and repairs list them)
                _shared.pipeline().state(_shared.pipeline().config(catalog)).runs()
    finally:
        if case.xfail:
            _remove_runs_without_a_record(world)


# ---------------------------------------------------------------- the manifest itself


def test_the_manifest_has_30_cases_or_more_each_with_its_input():
    assert len(CASES) >= 30
    names = [case.name for case in CASES]
    assert len(set(names)) == len(names)
    # A case may take its input from the sample events beside the corpus (tests/data/events).
    referenced = {(CORPUS / case.file).resolve() for case in CASES if case.file is not None}
    for path in referenced:
        assert path.is_file(), path
    referenced = {path for path in referenced if path.is_relative_to(CORPUS)}
    for case in CASES:
        if case.generate is not None:
            assert case.generate["kind"] in GENERATORS, case.name
            data = case_input(case)
            plain = zlib.decompressobj(wbits=31).decompress(data) if data[:2] == b"\x1f\x8b" else data  # cut or not
            wanted = case.generate.get("bytes", case.generate.get("depth", 0))
            assert len(plain) >= wanted, case.name  # as big (or as deep) as it says
    # Every committed input is some case's (the baselines are the world's).
    committed = {path for path in CORPUS.rglob("*") if path.is_file() and path.parent != CORPUS}
    baselines = set((CORPUS / "baseline").glob("*.jsonl"))
    assert committed - baselines == referenced - baselines
    # Generated inputs stay generated: nothing big is committed.
    assert max(path.stat().st_size for path in committed) < 64 * 1024


# ---------------------------------------------------------------- the fixes the corpus led to, one by one


def _read(data: bytes, name: str, **limits: int) -> list[dict[str, Any]]:
    return [record for _, record in open_catalog(io.BytesIO(data), name, id_field="sku", **limits).records()]


def _nested_record(sku: str, levels: int) -> bytes:
    """A record nested `levels` deep, itself included."""
    return b'{"sku": "%s", "x": ' % sku.encode() + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"


@pytest.mark.parametrize("name", ["c.json", "c.jsonl"])
def test_records_nested_deeper_than_can_be_written_back_are_refused(name: str):
    fits, deeper = _nested_record("1", MAX_NESTING), _nested_record("2", MAX_NESTING + 1)
    as_file = (lambda *rs: b"[" + b",".join(rs) + b"]") if name == "c.json" else (lambda *rs: b"\n".join(rs))
    [record] = _read(as_file(fits), name)
    orjson.dumps({"run": "r", "record": record})  # a quarantine line can hold it
    where = "record 2" if name == "c.json" else "line 2"
    with pytest.raises(CatalogFormatError, match=f"{where}: the record is nested more than {MAX_NESTING} levels deep"):
        _read(as_file(fits, deeper), name)


def test_nesting_is_counted_exactly_even_beside_an_integer_orjson_cannot_write():
    assert not nested_too_deep({"a": 2**70})
    assert nested_too_deep({"a": 2**70, "b": orjson.loads(b"[" * MAX_NESTING + b"]" * MAX_NESTING)})
    assert not nested_too_deep({"a": 2**70, "b": orjson.loads(b"[" * (MAX_NESTING - 1) + b"]" * (MAX_NESTING - 1))})


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("c.jsonl", b'{"sku": "1"}\n{"sku": "2", "d": "' + b"x" * 5_000, r"c\.jsonl, line 2: the line is longer than"),
        ("c.json", b'[{"sku": "1"}, {"sku": "2", "d": "' + b"x" * 50_000, r"c\.json, record 2, from byte 8,192: "),
        ("c.csv", b'sku,d\n1,a\n2,"' + b"x" * 5_000, r"c\.csv, line 3: malformed CSV: field larger than field limit"),
    ],
)
def test_a_record_past_the_record_limit_is_refused_rather_than_held(name: str, data: bytes, message: str):
    with pytest.raises(CatalogFormatError, match=message):
        _read(data, name, max_record_bytes=1_000)


def test_the_readers_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    bomb = gzip.compress(b'{"sku": "1"}\n' + b" " * 100_000)
    assert ReaderLimits().max_decompressed_bytes == 16 * 1024**3  # unless configured
    monkeypatch.setenv("CATALOG_SYNC_MAX_DECOMPRESSED_BYTES", "50000")
    with pytest.raises(CatalogFormatError, match="decompresses to more than 50,000 bytes"):
        _read(bomb, "c.jsonl.gz")
    assert _read(bomb, "c.jsonl.gz", max_decompressed_bytes=200_000) == [{"sku": "1"}]  # a caller's limit wins
    monkeypatch.setenv("CATALOG_SYNC_MAX_RECORD_BYTES", "100")
    with pytest.raises(CatalogFormatError, match="longer than 100 bytes"):
        _read(b'{"sku": "1", "d": "' + b"x" * 200 + b'"}\n', "c.jsonl")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("c.json", b'[{"sku": "1", "price": NaN}]'),
        ("c.json", b'[{"sku": "1", "price": -Infinity}]'),
        ("c.jsonl", b'{"sku": "1", "price": NaN}\n'),
        ("c.jsonl", b'{"sku": "caf\xc3\xa9", "price": [1, Infinity]}\n'),
        ("c.jsonl", b'{"sku": "1", "price": nan}\n'),
    ],
)
def test_nan_and_infinity_in_json_text_are_named(name: str, data: bytes):
    with pytest.raises(CatalogFormatError, match=r"invalid JSON: .*NaN and Infinity are not JSON numbers"):
        _read(data, name)


def test_a_json_error_elsewhere_gets_no_nan_hint_for_a_string_saying_nan():
    with pytest.raises(CatalogFormatError) as raised:
        _read(b'{"sku": "1", "d": "price: NaN"}\n{"sku": "2",}\n', "c.jsonl")
    assert "line 2: invalid JSON" in str(raised.value) and "NaN and Infinity" not in str(raised.value)


def test_a_json_lines_line_that_is_not_utf8_names_the_byte():
    with pytest.raises(CatalogFormatError, match=r"c\.jsonl, line 2: not UTF-8 \(byte 0xe9, at byte 13 of the line\)"):
        _read(b'{"sku": "1"}\n{"sku": "caf\xe9"}\n', "c.jsonl")


def test_csv_records_are_located_where_they_begin_and_an_open_quote_is_pointed_at():
    rows = open_catalog(io.BytesIO(b'sku,d\n1,"two\nlines"\n2,x\n'), "c.csv", id_field="sku").records()
    assert [(line, record["sku"]) for line, record in rows] == [(2, "1"), (4, "2")]
    with pytest.raises(
        CatalogFormatError, match=r"line 4: .*in the record that begins at line 3: is a quote left open"
    ):
        _read(b'sku,d\n1,a\n2,"open\n3,c\n', "c.csv")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "not a change message: the body is not JSON"),
        ("[1]", "the body is a JSON list, not an object"),
        ("gz:%%%", "marked gz: but the rest is not base64"),
        ("gz:aGVsbG8=", "marked gz: but not gzip data"),
        ('{"format": 1}', "the change message has no list of changes"),
        ('{"format": 1, "changes": {}}', "the change message has no list of changes"),
        ('{"format": 1, "changes": [1]}', "change 1 of the message is invalid"),
        ('{"format": 1, "changes": [{"product_id": "p"}]}', "change 1 of the message is invalid: kind: Field required"),
        ('{"format": 1, "catalog": 7, "changes": []}', "the change message's catalog must be a string, got int"),
    ],
)
def test_a_queue_message_that_is_not_a_change_message_says_what_it_is(body: str, message: str):
    with pytest.raises(BadMessage, match=re.escape(message)):
        unpack_envelope(body, resolve_claim=lambda reference: b"{}")


def test_an_object_that_cannot_be_read_is_bad_input_and_claims_stay_in_their_store():
    from catalog_sync.adapters.aws.s3 import S3CatalogSource, S3ClaimStore

    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket=BUCKET, Key="catalogs/shop/v1.jsonl", Body=b"{}\n")
        with pytest.raises(FileNotFoundError, match=r"no such object \(NoSuchKey\)"):
            S3CatalogSource(s3, bucket=BUCKET, key="catalogs/shop/gone.jsonl").open()
        with pytest.raises(OSError, match="at version not-a-version"):
            S3CatalogSource(s3, bucket=BUCKET, key="catalogs/shop/v1.jsonl", version_id="not-a-version").open()
        claims = S3ClaimStore(s3, bucket=BUCKET)
        with pytest.raises(BadMessage, match="is not in s3://catalog-bucket/claims/"):
            claims.get({"bucket": "elsewhere", "key": "claims/r/1/p.json"})
        with pytest.raises(BadMessage, match="is not in s3://catalog-bucket/claims/"):
            claims.get({"bucket": BUCKET, "key": "catalogs/shop/v1.jsonl"})
        with pytest.raises(BadMessage, match="must name a bucket and a key"):
            claims.get({"bucket": BUCKET})
        with pytest.raises(LookupError, match=r"claims/r/1/p\.json is missing \(NoSuchKey\)"):
            claims.get({"bucket": BUCKET, "key": "claims/r/1/p.json"})


def test_an_sqs_batch_sent_to_the_diff_function_is_named_and_validation_errors_say_where():
    from catalog_sync.adapters.aws.triggers import BadTrigger, parse_trigger

    with pytest.raises(BadTrigger, match="its records come from aws:sqs, not aws:s3"):
        parse_trigger(json.loads((EVENTS / "sqs-receive-message.json").read_text()))
    with pytest.raises(BadTrigger, match="Records must be a list"):
        parse_trigger({"Records": "x"})
    with pytest.raises(BadTrigger, match=r"unrecognised event: ids\.1: Input should be a valid string"):
        parse_trigger({"catalog": "shop", "ids": ["a", 2]})
