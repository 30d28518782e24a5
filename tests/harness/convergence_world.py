"""The world the convergence property runs in: AWS under moto, the Pinecone and OpenAI doubles, the handlers' wiring,
and the hooks through which an example's scenario injects its faults (tests/harness/convergence.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from moto import mock_aws
from moto.s3 import models as moto_s3

from tests.doubles.aws_resources import BUCKET, REGION, TABLE, create_table
from tests.doubles.faults import FaultLog, Throttler
from tests.doubles.openai_server import OpenAIDouble
from tests.doubles.pinecone_server import PineconeDouble
from tests.harness.convergence_draws import DIMENSIONS, MAX_RECEIVE_COUNT

if TYPE_CHECKING:
    from tests.harness.convergence import Scenario


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
    log: FaultLog
    throttlers: dict[str, Throttler] = field(default_factory=dict)
    scenario: Scenario | None = None
    slept: float = 0.0
    # S3's clock: whole seconds, moved on by the drops (see Scenario.drop_next), so that drops share a second or not
    # as the example says, whatever the wall clock does.
    s3_clock: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0, tzinfo=None))


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
def aws_world(log: FaultLog) -> Iterator[World]:
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
        world = World(s3, sqs, dynamodb, pinecone, openai, queues, dead_letters, log)

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
            patches.enter_context(_patched(moto_s3, "utcnow", lambda: world.s3_clock))
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
                world.scenario.invoked(payload)  # Lambda's asynchronous invocation queue

            pipeline.invoke_self = invoke  # type: ignore[method-assign]
            make_index = pipeline.index

            def sequential_index(config: Any) -> Any:
                # Metadata updates one at a time: which request meets an injected failure must not depend on
                # thread scheduling, or hypothesis could not replay an example.
                index = make_index(config)
                index.update_concurrency = 1
                return index

            pipeline.index = sequential_index  # type: ignore[method-assign]
            world.throttlers = {
                "dynamodb": Throttler(pipeline.dynamodb, "dynamodb"),
                "sqs": Throttler(pipeline.sqs, "sqs"),
            }
            yield world
