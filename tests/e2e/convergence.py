"""The convergence property: whatever goes wrong, once the queues drain the index equals the catalog.

Random sequences of catalog versions go through the real handlers (diff, consumer) under moto, with the real
`pinecone` and `openai` SDKs against local doubles, while faults are injected along the way:

- DynamoDB and SQS throttling (answered before moto, for botocore's retries to absorb);
- OpenAI 429/500 and Pinecone 429/5xx responses, in bursts that sometimes outlast the SDKs' retries;
- a consumer that crashes before its index write, or after it and before the commit;
- deliveries in random batches and order, and duplicates (the same message delivered again later);
- a diff that runs out of time part way and continues in another invocation, later, in any order;
- overlapping work: at an index write or a diff's desired-state write, another invocation runs first (a newer
  drop's diff, a consumer batch, a pending continuation or repair).

Messages are received from the real (moto) queues with a visibility timeout of 0 and a redrive policy, so a
message that keeps failing lands in its dead-letter queue; after the drain the DLQs are redriven with the
project's own redrive function. Then the index must equal the last catalog version, product by product (ids,
text through its hash and its vector, metadata), nothing may be pending, the queues and DLQs must be empty and
every run must have completed with its counters adding up.

The oracle is independent of the diff: per product, the first record with its (normalized) id in a version
wins; an invalid one keeps the product's last good version; an id absent from a version is deleted.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import orjson
from botocore.exceptions import ClientError
from hypothesis import strategies as st
from moto import mock_aws
from moto.s3 import models as moto_s3

from catalog_sync.logic.canonical import text_hash
from catalog_sync.logic.validation import RecordValidator
from catalog_sync.models.changes import RunStatus
from catalog_sync.models.config import CatalogConfig, load_config
from tests.doubles.faults import FaultLog, LambdaCrash, Throttler
from tests.doubles.lambda_context import Context, ShortContext
from tests.doubles.openai_server import OpenAIDouble, fake_vector
from tests.doubles.pinecone_server import PineconeDouble
from tests.e2e.test_aws_pipeline import BUCKET, EVENTS, REGION
from tests.integration.test_state_stores import TABLE, create_table

CATALOG = "shop"
DIMENSIONS = 8
MAX_RECEIVE_COUNT = 3
CONFIG = """
name = "shop"
id_field = "sku"
[text]
fields = ["title", "description"]
[metadata]
title = "string"
price = "number"
stock = "integer"
[guard]
# Convergence is the subject here: any share of deletions and an all-invalid catalog are let through.
max_delete_share = 1.0
allow_empty_catalog = true
[embedder]
kind = "openai"
openai_model = "text-embedding-3-small"
openai_dimensions = 8
openai_base_url = "{openai}"
"""

# Ids that differ only in case are different products; ids that differ only in surrounding whitespace are not.
IDS = ["p0", "p1", "p2", "p3", "p4", "P0", " p1", "p2 "]


def normalized(product_id: str) -> str:
    return product_id.strip()


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {
        "sku": draw(st.sampled_from(IDS)),
        "title": draw(st.sampled_from(["Lamp", "Desk lamp"])),
        "description": draw(st.sampled_from(["warm light", "cold light", "a lamp for reading"])),
        "price": draw(st.sampled_from([10.0, 12.5])),
        "stock": draw(st.sampled_from([0, 3])),
    }
    if draw(st.integers(0, 7)) == 0:
        record["price"] = "ask us"  # invalid: quarantined; the product keeps its last good version
    return record


catalog_versions = st.lists(st.lists(records(), min_size=1, max_size=7), min_size=1, max_size=4)


def expected_index(versions: list[list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Product id -> the record the index must hold after the last version."""
    return _replay(versions)[0]


def kept_back(versions: list[list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Products invalid in the last version -> every good version they ever had.

    When a newer catalog overtakes a run part way (or a drop is superseded whole), that run's undispatched changes,
    deletions included, are left to the newer run; a product the newer catalog holds invalid keeps the good
    version the index last received, which may then be another than the oracle's, or none.
    """
    return _replay(versions)[1]


def _replay(versions: list[list[dict[str, Any]]]) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    current: dict[str, dict[str, Any]] = {}
    good: dict[str, list[dict[str, Any]]] = {}  # not forgotten on deletion: a superseded drop's may not apply
    first: dict[str, dict[str, Any]] = {}
    for version in versions:
        first = {}
        for record in version:
            first.setdefault(normalized(record["sku"]), record)
        for product_id, record in first.items():
            if isinstance(record["price"], float):
                current[product_id] = record
                good.setdefault(product_id, []).append(record)
        current = {product_id: record for product_id, record in current.items() if product_id in first}
    invalid_now = {product_id for product_id, record in first.items() if not isinstance(record["price"], float)}
    return current, {product_id: good[product_id] for product_id in invalid_now if product_id in good}


# ---------------------------------------------------------------- the world: AWS under moto, the two doubles


@dataclass
class World:
    s3: Any
    sqs: Any
    dynamodb: Any
    pinecone: PineconeDouble
    openai: OpenAIDouble
    queues: dict[str, str]
    dead_letters: dict[str, str]
    config: CatalogConfig
    log: FaultLog
    throttlers: dict[str, Throttler] = field(default_factory=dict)
    scenario: Scenario | None = None
    slept: float = 0.0
    drop_clock: float = 0.0  # seconds S3's clock is ahead of the wall's


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _patched(target: Any, name: str, replacement: Any) -> Iterator[None]:
    original = getattr(target, name)
    setattr(target, name, replacement)
    try:
        yield
    finally:
        setattr(target, name, original)


@contextlib.contextmanager
def aws_world(log: FaultLog, tmp: Path) -> Iterator[World]:
    """One world for many examples (each example resets it): moto, the doubles, the handlers' wiring."""
    from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
    from catalog_sync.adapters.pinecone.index import PineconeVectorIndex
    from handlers import _shared

    credentials = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "CatalogSync",
        "POWERTOOLS_LOG_LEVEL": "CRITICAL",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    with _environment(credentials), mock_aws(), PineconeDouble(DIMENSIONS) as pinecone, OpenAIDouble() as openai:
        for double in (pinecone, openai):
            # The SDKs drop pooled connections as clients come and go; the servers need not print each one.
            double.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        create_table(dynamodb)
        queues, dead_letters = {}, {}
        for lane in ("changes", "priority"):
            dlq = sqs.create_queue(QueueName=f"{lane}-dlq")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            queues[lane] = sqs.create_queue(
                QueueName=lane,
                Attributes={
                    "MaximumMessageSize": "262144",
                    # A message that failed is visible again at once (the test's clock does not wait).
                    "VisibilityTimeout": "0",
                    "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVE_COUNT}),
                },
            )["QueueUrl"]
            dead_letters[lane] = dlq
        secrets.create_secret(Name="pinecone-key", SecretString="pc-test-key")
        secrets.create_secret(Name="openai-key", SecretString="sk-test")
        text = CONFIG.replace("{openai}", openai.base_url)
        s3.put_object(Bucket=BUCKET, Key=f"config/{CATALOG}.toml", Body=text.encode())
        (tmp / "shop.toml").write_text(text)
        settings = {
            "CATALOG_SYNC_TABLE_NAME": TABLE,
            "CATALOG_SYNC_BUCKET": BUCKET,
            "CATALOG_SYNC_QUEUE_URL": queues["changes"],
            "CATALOG_SYNC_PRIORITY_QUEUE_URL": queues["priority"],
            "CATALOG_SYNC_PINECONE_HOST": pinecone.host,
            "CATALOG_SYNC_PINECONE_SECRET": "pinecone-key",
            "CATALOG_SYNC_OPENAI_SECRET": "openai-key",
            "CATALOG_SYNC_STATE_SHARDS": "2",  # moto scans the whole table for each shard's query
            "CATALOG_SYNC_STATE_CONCURRENCY": "1",  # moto is not safe for concurrent writes
            "CATALOG_SYNC_DISPATCH_WINDOW": "2",  # several windows per run: a diff can stop between them
            "CATALOG_SYNC_DIFF_FUNCTION": "arn:aws:lambda:us-east-1:123456789012:function:diff",
        }
        world = World(s3, sqs, dynamodb, pinecone, openai, queues, dead_letters, load_config(tmp / "shop.toml"), log)

        def virtual_sleep(seconds: float) -> None:
            world.slept += seconds  # retries back off on the test's clock, not the wall's

        def at_write(method: Callable[..., Any]) -> Callable[..., Any]:
            def write(self: Any, *args: Any, **kwargs: Any) -> Any:
                if world.scenario is not None:
                    world.scenario.at_index_write()
                return method(self, *args, **kwargs)

            return write

        def at_commit(method: Callable[..., Any]) -> Callable[..., Any]:
            def commit(self: Any, *args: Any, **kwargs: Any) -> Any:
                if world.scenario is not None:
                    world.scenario.at_commit()
                return method(self, *args, **kwargs)

            return commit

        def at_record_desired(method: Callable[..., Any]) -> Callable[..., Any]:
            def record(self: Any, changes: Any, *args: Any, **kwargs: Any) -> Any:
                result = method(self, changes, *args, **kwargs)
                if world.scenario is not None and changes:
                    world.scenario.at_desired_write()
                return result

            return record

        with contextlib.ExitStack() as patches:
            patches.enter_context(_environment(settings))
            patches.enter_context(_patched(time, "sleep", virtual_sleep))
            # S3 stamps objects to the second: drops are made a few seconds apart (see Scenario.drop_next).
            real_utcnow = moto_s3.utcnow
            patches.enter_context(
                _patched(moto_s3, "utcnow", lambda: real_utcnow() + timedelta(seconds=world.drop_clock))
            )
            for name in ("upsert", "update_metadata", "delete"):
                patches.enter_context(_patched(PineconeVectorIndex, name, at_write(getattr(PineconeVectorIndex, name))))
            patches.enter_context(_patched(DynamoStateStore, "commit", at_commit(DynamoStateStore.commit)))
            patches.enter_context(
                _patched(DynamoStateStore, "record_desired", at_record_desired(DynamoStateStore.record_desired))
            )
            level = _shared.logger.log_level
            _shared.logger.setLevel("CRITICAL")  # thousands of invocations: their logs would drown the report
            patches.callback(_shared.logger.setLevel, level)
            _shared.pipeline.cache_clear()
            pipeline = _shared.pipeline()
            patches.callback(_shared.pipeline.cache_clear)

            def invoke(function_arn: str, payload: dict[str, Any]) -> None:
                assert world.scenario is not None
                world.scenario.invocations.append(payload)  # Lambda's asynchronous invocation queue

            pipeline.invoke_self = invoke  # type: ignore[method-assign]
            make_index = pipeline.index

            def sequential_index(config: CatalogConfig) -> Any:
                # Metadata updates one at a time: which request meets an injected failure must not depend on
                # thread scheduling, or hypothesis could not replay an example.
                index = make_index(config)
                index.update_concurrency = 1
                return index

            pipeline.index = sequential_index  # type: ignore[method-assign]

            def throttled(kind: str) -> None:
                if world.scenario is not None:
                    world.scenario.inject(kind)

            world.throttlers = {
                "dynamodb": Throttler(pipeline.dynamodb, "dynamodb", throttled),
                "sqs": Throttler(pipeline.sqs, "sqs", throttled),
            }
            yield world


# ---------------------------------------------------------------- one example


class Scenario:
    """One example: drops the versions, runs invocations and deliveries in an order the draws decide, injects
    faults, drains, redrives, and checks."""

    def __init__(self, world: World, data: st.DataObject, versions: list[list[dict[str, Any]]]) -> None:
        self.world = world
        self.data = data
        self.versions = versions
        self.dropped = 0
        self.invocations: list[dict[str, Any]] = []  # asynchronous invocations of the diff function, pending
        self.drops: list[dict[str, Any]] = []  # drop events, in the order S3 sent them
        self.ghosts: list[dict[str, Any]] = []  # deliveries SQS will make again (at-least-once)
        self.diff_failures: list[dict[str, Any]] = []  # diff invocations that failed three times
        self.faults: Counter[str] = Counter()
        self.trail: list[str] = []  # what was drawn, in order (shown when an example fails)
        self.calm = False
        self.overtaken = False  # a drop was not synced: a newer one had begun (see `kept_back`)
        self.depth = 0
        self.crash: str | None = None
        self.race = False

    # ------------------------------------------------------------ helpers

    def draw(self, strategy: st.SearchStrategy[Any], label: str) -> Any:
        value = self.data.draw(strategy, label=label)
        if os.environ.get("CONVERGENCE_TRACE"):
            print(f"    draw {label}: {value!r}")
        self.trail.append(f"{label}: {value!r}")
        return value

    def inject(self, kind: str, count: int = 1) -> None:
        self.faults[kind] += count

    def reset(self) -> None:
        """A clean world: empty table, queues, bucket prefix and index."""
        world = self.world
        world.dynamodb.delete_table(TableName=TABLE)
        create_table(world.dynamodb)
        for url in [*world.queues.values(), *world.dead_letters.values()]:  # PurgeQueue allows one a minute
            while messages := world.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
                for message in messages:
                    world.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        listing = world.s3.list_object_versions(Bucket=BUCKET, Prefix="catalogs/")
        for version in listing.get("Versions", []):
            world.s3.delete_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])
        world.pinecone.namespaces.clear()
        world.pinecone.failures.clear()
        world.openai.failures.clear()
        for throttler in world.throttlers.values():
            throttler.armed = 0

    # ------------------------------------------------------------ fault hooks (called from the patched adapters)

    def at_index_write(self) -> None:
        if self.crash == "before write":
            self.crash = None
            self.inject("consumer crashed before its index write")
            raise LambdaCrash("consumer crashed before its index write")
        self._maybe_race("index write")

    def at_commit(self) -> None:
        if self.crash == "after write":
            self.crash = None
            self.inject("consumer crashed after its index write, before the commit")
            raise LambdaCrash("consumer crashed after its index write, before the commit")

    def at_desired_write(self) -> None:
        self._maybe_race("desired-state write")

    def _maybe_race(self, where: str) -> None:
        if not self.race or self.depth > 0:
            return
        self.race = False
        self.depth += 1
        try:
            if self.step(nested=True):
                self.inject(f"another invocation ran during a {where}")
        finally:
            self.depth -= 1

    def arm_faults(self) -> None:
        if self.calm:
            self.crash, self.race = None, False
            return
        world = self.world
        for service, throttler in world.throttlers.items():
            throttler.armed = self.draw(st.sampled_from([0, 0, 0, 1, 2, 3]), f"{service} throttles")
        openai = self.draw(st.sampled_from([[], [], [], [429], [500, 429], [429] * 8]), "openai failures")
        world.openai.failures.extend(openai)
        self.inject_list("openai", openai)
        pinecone = self.draw(st.sampled_from([[], [], [], [429], [503, 500], [500] * 8]), "pinecone failures")
        world.pinecone.failures.extend(pinecone)
        self.inject_list("pinecone", pinecone)
        self.crash = self.draw(st.sampled_from([None, None, None, None, "before write", "after write"]), "crash")
        self.race = self.draw(st.integers(0, 4), "race") == 0

    def inject_list(self, service: str, statuses: list[int]) -> None:
        for status in statuses:
            self.inject(f"{service} {status}")

    # ------------------------------------------------------------ actions

    def drop_next(self) -> None:
        """The next catalog version lands in S3: its event is queued for the diff function, in order."""
        records = self.versions[self.dropped]
        # Drops a few seconds apart, as S3 orders them by their timestamps (whole seconds); drops within the same
        # second are not ordered (the later run to begin wins), which this suite does not try.
        self.world.drop_clock += 5
        key = f"catalogs/{CATALOG}/v{self.dropped + 1}.jsonl"
        body = b"".join(orjson.dumps(record) + b"\n" for record in records)
        version = self.world.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"]
        event = json.loads((EVENTS / "eventbridge-s3-object-created.json").read_text())
        event["detail"]["bucket"]["name"] = BUCKET
        event["detail"]["object"].update({"key": key, "version-id": version, "size": len(body)})
        self.drops.append(event)
        self.dropped += 1

    def run_diff(self, payload: dict[str, Any]) -> None:
        from handlers import diff

        looks = None if self.calm else self.draw(st.sampled_from([None, None, 1, 2]), "diff looks at its clock")
        context = Context() if looks is None else ShortContext(looks_left=looks)
        attempts = payload.pop("_attempts", 0)
        if os.environ.get("CONVERGENCE_TRACE"):
            print(f"    diff invoked with {str(payload)[:300]}")
        try:
            result = diff.handler(payload, context)
        except (LambdaCrash, Exception) as exc:
            # Lambda retries a failed asynchronous invocation twice, then sends it to the on-failure destination,
            # from which it is redriven (here: after the drain).
            self.inject(f"diff invocation failed ({type(exc).__name__}), retried")
            if os.environ.get("CONVERGENCE_TRACE"):
                print(f"    diff failed: {exc!r}")
            retry = {**payload, "_attempts": attempts + 1}
            (self.invocations if attempts < 2 else self.diff_failures).append(retry)
            return
        assert result["status"] == "ok", result
        if os.environ.get("CONVERGENCE_TRACE"):
            print(f"    diff result: {str(result)[:400]}")
        for run in result.get("runs", []):
            assert run["status"] != "bad_input", run
            if run["status"] == "continuing":
                self.inject("diff ran out of time part way")
            if run["status"] == "superseded":
                self.inject("drop arrived after a newer one")
                self.overtaken = True

    def deliver(self) -> bool:
        """One invocation of the consumer by an event source mapping: a batch from one lane."""
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
        from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

        from handlers import consumer

        world = self.world
        lanes = list(world.queues)
        first = lanes[-1] if self.calm else self.draw(st.sampled_from(lanes), "lane")
        size = 10 if self.calm else self.draw(st.integers(1, 10), "batch size")
        records: list[dict[str, Any]] = []
        handles: dict[str, tuple[str, str]] = {}
        template = json.loads((EVENTS / "sqs-receive-message.json").read_text())["Records"][0]
        for lane in [first, *(lane for lane in lanes if lane != first)]:
            url = world.queues[lane]
            messages = world.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=size).get("Messages", [])
            for message in messages:
                record = copy.deepcopy(template)
                record.update(messageId=message["MessageId"], receiptHandle=message["ReceiptHandle"])
                record["body"] = message["Body"]
                records.append(record)
                handles[message["MessageId"]] = (url, message["ReceiptHandle"])
            if records:
                break
        if self.ghosts and not self.calm and self.draw(st.booleans(), "deliver a duplicate"):
            records.append(self.ghosts.pop(self.draw(st.integers(0, len(self.ghosts) - 1), "which duplicate")))
            self.inject("duplicate delivery")
        if not records:
            return False
        if not self.calm and self.draw(st.integers(0, 3), "keep a duplicate") == 0:
            self.ghosts.append(copy.deepcopy(records[self.draw(st.integers(0, len(records) - 1), "duplicated")]))
        if len(records) > 1 and not self.calm:
            order = self.draw(st.permutations(range(len(records))), "delivery order")
            records = [records[i] for i in order]
        self.arm_faults()
        # A nested invocation stands for another execution environment: its own batch processor (module state).
        outer = consumer.processor
        if self.depth > 0:
            consumer.processor = BatchProcessor(event_type=EventType.SQS)
        try:
            response = consumer.handler({"Records": records}, Context())
        except LambdaCrash:
            return True  # nothing acknowledged: every message comes back
        except BatchProcessingError:
            return True  # every record failed: the batch comes back
        finally:
            self.crash, self.race = None, False
            consumer.processor = outer
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        if os.environ.get("CONVERGENCE_TRACE"):
            print(f"    delivered {[r['messageId'][:8] for r in records]}, failed {[f[:8] for f in failed]}")
        for message_id, (url, handle) in handles.items():
            if message_id not in failed:
                with contextlib.suppress(ClientError):  # a handle from an earlier delivery may be stale
                    world.sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
        return True

    def queued(self) -> int:
        total = 0
        for url in self.world.queues.values():
            attributes = self.world.sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            total += int(attributes["ApproximateNumberOfMessages"]) + int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            )
        return total

    def step(self, *, nested: bool = False) -> bool:
        """One thing happens; False when there was nothing to do."""
        choices: list[str] = []
        if self.dropped < len(self.versions):
            choices.append("drop")
        if self.drops:
            choices.append("diff of the oldest drop")
        if self.invocations:
            choices.append("pending invocation")
        if self.queued() or self.ghosts:
            choices.append("deliver")
        if not choices:
            return False
        choice = self.draw(st.sampled_from(choices), "nested step" if nested else "step")
        if choice == "drop":
            self.drop_next()
            if nested:  # a drop lands while something runs: its diff starts at once (an overlapping run)
                self.run_diff(self.drops.pop(0))
        elif choice == "diff of the oldest drop":
            self.run_diff(self.drops.pop(0))
        elif choice == "pending invocation":
            # Lambda's asynchronous queue keeps no order: continuations and repairs run in any order.
            payload = self.invocations.pop(self.draw(st.integers(0, len(self.invocations) - 1), "invocation"))
            self.run_diff(payload)
        else:
            self.deliver()
        return True

    # ------------------------------------------------------------ the example

    def run(self) -> None:
        self.reset()
        self.world.scenario = self
        try:
            steps = 0
            while self.dropped < len(self.versions) or self.drops:
                self.step()
                steps += 1
                assert steps < 400, "the scenario does not progress"
            # Drain: faults go on for a while, then stop, as they do.
            for _ in range(self.draw(st.integers(0, 15), "noisy drain steps")):
                if not self.step():
                    break
            self.calm = True
            self.drain()
            for _ in range(5):
                if not self.redrive():
                    break
                self.drain()
            assert self.dead_lettered() == 0, "messages stay dead-lettered after redrives"
        finally:
            self.world.scenario = None

    def drain(self) -> None:
        for _ in range(1000):
            if self.invocations:
                self.run_diff(self.invocations.pop(0))
            elif not self.deliver():
                return
        raise AssertionError("the queues do not drain")

    def waiting(self, url: str) -> int:
        attributes = self.world.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    def dead_lettered(self) -> int:
        return sum(self.waiting(url) for url in self.world.dead_letters.values())

    def redrive(self) -> int:
        from catalog_sync.adapters.aws.sqs_queue import redrive_dead_letters

        moved = len(self.diff_failures)
        self.invocations.extend({**payload, "_attempts": 0} for payload in self.diff_failures)
        self.diff_failures.clear()
        for lane, dlq in self.world.dead_letters.items():
            waiting = self.waiting(dlq)
            if waiting:  # moto's long poll of an empty queue is not thread-safe: never ask for more than is there
                moved += redrive_dead_letters(
                    self.world.sqs, dead_letter_url=dlq, target_url=self.world.queues[lane], limit=waiting
                )
        if moved:
            self.inject("message dead-lettered, then redriven", moved)
        return moved


# ---------------------------------------------------------------- the checks


def check_converged(world: World, versions: list[list[dict[str, Any]]], *, overtaken: bool = False) -> None:
    """`overtaken`: a drop was not synced, as a newer one had begun (see `kept_back`)."""
    from handlers import _shared

    pipeline = _shared.pipeline()
    state = pipeline.state(pipeline.config(CATALOG))
    runs = state.runs(1000)
    # A run a newer catalog overtook part way left its other changes to that run (see `kept_back`).
    overtaken = overtaken or any("undispatched_changes" in run.counts for run in runs)
    expected = expected_index(versions)
    config = world.config
    validator = RecordValidator(config)
    model_id = f"openai/{config.embedder.openai_model}@{config.embedder.openai_dimensions}"
    stored = world.pinecone.vectors(config.index_namespace)
    if overtaken:
        for product_id, records in kept_back(versions).items():
            held = stored.get(product_id)
            texts = {validator.validate(product_id, record).text: record for record in records}
            if held is None:
                expected.pop(product_id, None)
                continue
            matching = [
                record for text, record in texts.items() if np.allclose(held["values"], fake_vector(text, DIMENSIONS))
            ]
            assert matching, f"{product_id}: the index holds none of its good versions"
            expected[product_id] = matching[-1]
    assert set(stored) == set(expected), (
        f"the index holds {sorted(stored)}, the catalog {sorted(expected)}: "
        f"orphaned {sorted(set(stored) - set(expected))}, lost {sorted(set(expected) - set(stored))}"
    )
    for product_id, record in expected.items():
        valid = validator.validate(product_id, record)
        vector = stored[product_id]
        metadata = dict(vector["metadata"])
        assert metadata.pop("_text_hash") == text_hash(
            valid.text, model_id=model_id, template_id=config.text.fingerprint()
        ), f"{product_id}: stale text"
        assert metadata == valid.metadata, f"{product_id}: stale metadata"
        assert np.allclose(vector["values"], fake_vector(valid.text, DIMENSIONS), atol=1e-6), f"{product_id}: vector"
    assert state.pending_count() == 0, "products are still pending"
    assert state.product_count() == len(expected)
    for url in [*world.queues.values(), *world.dead_letters.values()]:
        attributes = world.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    for run in runs:
        # Every run ended: succeeded, or failed with its reason (its work is done by the retry's run).
        assert run.status is RunStatus.SUCCEEDED or (run.status is RunStatus.FAILED and run.message), (
            f"run {run.run_id} ended {run.status.value}: {run.message}"
        )
        if run.status is RunStatus.FAILED:
            continue
        counts = run.counts
        if run.mode != "ids":  # a targeted re-sync reads every record and looks at those it was asked about
            assert counts["records"] == counts["valid"] + counts["invalid"], f"run {run.run_id}: {counts}"
            kinds = ("added", "text_changed", "metadata_only", "unchanged")
            assert counts["valid"] == sum(counts[kind] for kind in kinds), f"run {run.run_id}: {counts}"
        changed = sum(counts[kind] for kind in ("added", "text_changed", "metadata_only", "deleted"))
        # Re-sent products (an earlier change never committed) may also have changed: they are counted in both.
        # A run a newer catalog overtook leaves its other changes to that run.
        dispatched = counts.get("dispatched_changes", 0) + counts.get("undispatched_changes", 0)
        assert changed <= dispatched <= changed + counts["resent"], f"run {run.run_id}: {counts}"
        if "undispatched_changes" in counts:
            # Overtaken on a retry of an invocation that had sent a window before it failed: that window's
            # messages were delivered (and counted), though the checkpoint never recorded them.
            assert counts["dispatched_changes"] <= counts["applied_changes"] <= dispatched, (
                f"run {run.run_id}: {counts}"
            )
        elif counts.get("dispatched_changes"):
            assert counts["applied_changes"] == counts["dispatched_changes"], f"run {run.run_id}: {counts}"
