"""The convergence property: whatever goes wrong, once the queues drain the index is what the catalog says.

Random sequences of catalog versions go through the real handlers (diff, consumer) under moto, with the real
`pinecone` and `openai` SDKs against local doubles, while faults are injected along the way:

- DynamoDB and SQS throttling (answered before moto, for botocore's retries to absorb);
- OpenAI 429/500 and Pinecone 429/5xx responses, in bursts that sometimes outlast the SDKs' retries;
- a consumer that crashes before its index write, or after it and before the commit;
- deliveries in random batches and order, and duplicates (the same message delivered again later);
- a diff that runs out of time part way and continues in another invocation, later, in any order;
- overlapping work: at an index write or a diff's desired-state write, another invocation runs first (a newer
  drop's diff, a consumer batch, a pending continuation or repair);
- drops out of order (an older drop's diff running after a newer one's), and drops within one second.

Each example draws its catalog config too: the text joined or from a template, a required field, and for some
the deletion guard on. Messages are received from the real (moto) queues with a visibility timeout of 0 and a
redrive policy, so a message that keeps failing lands in its dead-letter queue; after the drain the DLQs are
redriven with the project's own redrive function.

The oracle is `tests/harness/reference_model.py`, written from the README's rules, sharing no code with the product:
per product, the outcomes the rules allow after the last version (its text, compared with the text the OpenAI
double embedded for the stored vector, the vector with the double's own function, its metadata). What depends on
timing (the guard's share while deletions are on their way, a drop a newer one overtook) is decided by the model
from the catalog versions and from this harness's own schedule, never from the product's state or its counts.
Faults count where they were delivered (tests/doubles/faults.py).
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
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import numpy as np
import orjson
from botocore.exceptions import ClientError
from hypothesis import note
from hypothesis import strategies as st
from moto import mock_aws
from moto.s3 import models as moto_s3

from tests.doubles.faults import FaultLog, LambdaCrash, Throttler
from tests.doubles.lambda_context import Context, ShortContext
from tests.doubles.openai_server import OpenAIDouble, fake_vector
from tests.doubles.pinecone_server import PineconeDouble
from tests.e2e.test_aws_pipeline import BUCKET, EVENTS, REGION
from tests.harness import reference_model as model
from tests.harness.reference_model import Entry, Expectation, Guard, ModelConfig
from tests.integration.test_state_stores import TABLE, create_table

CATALOG = "shop"
DIMENSIONS = 8
MAX_RECEIVE_COUNT = 3
# Ids beyond ASCII reach Pinecone under an encoded vector id (README: "Vector ids"); two drops within one second are
# ordered (README: "Same-second drops"). Either can be switched off (=0) to look at a failure without them.
NON_ASCII_IDS = os.environ.get("CONVERGENCE_NON_ASCII_IDS", "1") == "1"
SAME_SECOND_DROPS = os.environ.get("CONVERGENCE_SAME_SECOND", "1") == "1"

# ---------------------------------------------------------------- what is drawn

_METADATA = (("title", "string"), ("price", "number"), ("stock", "integer"), ("tags", "string_list"))
CONFIGS = {
    "joined": ModelConfig(
        text_fields=("title", "description"), metadata=_METADATA, max_chars=60, max_metadata_bytes=1000
    ),
    "template": ModelConfig(
        text_fields=("title", "description", "tags"),
        metadata=_METADATA,
        template="{title}: {description}\nTags: {tags}",
        required=("title",),
        max_chars=60,
        max_metadata_bytes=1000,
    ),
}
GUARDS = {"off": (1.0, True), "on at 25%": (0.25, False), "on at 50%": (0.5, False)}

# Ids that differ only in case are different products; ids that differ only in surrounding whitespace are not; an
# integer id is its digits. Blank and over-long ids are quarantined (no product is seen).
LONG_ID = "long-" + "x" * (model.MAX_ID_BYTES - 5)
ASCII_IDS = ["p0", "p1", "p2", "p3", "P0", " p1", "p2 ", "\tp3", 7, "7", LONG_ID, LONG_ID + "x", "   "]
# NFC and NFD spellings of one id, a Cyrillic look-alike of p1, an id of a zero-width space (empty), 512 bytes of
# two-byte characters and one character more.
NON_ASCII = [
    "café-1",
    "cafe\u0301-1",
    "ürün-7",
    "\u0440" + "1",
    "\u200b",
    "é" * (model.MAX_ID_BYTES // 2),
    "é" * (model.MAX_ID_BYTES // 2 + 1),
]
IDS = ASCII_IDS + (NON_ASCII if NON_ASCII_IDS else [])

# Texts around max_chars (60): "Lamp: " and 54 characters make 60 with the template; "Lamp\n" and 55 with a join.
EDGE = "e" * 54
# Tags over the config's max_metadata_bytes (1,000), by far.
HUGE_TAGS = ["t" * 100] * 15


def _common(values: list[Any], edges: list[Any]) -> st.SearchStrategy[Any]:
    """One of the common values, or one time in six an edge case."""
    return st.integers(0, 5).flatmap(lambda n: st.sampled_from(edges if n == 0 else values))


FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "title": _common(["Lamp", "Desk lamp"], ["Cafe\u0301 lamp", "Café lamp", "  Lamp  ", "", None, 7]),
    "description": _common(
        ["warm light", "cold light", "a lamp for reading"],
        ["", None, EDGE, EDGE + "e", " warm light ", 12.0, "cafe\u0301 light", "café light"],
    ),
    "price": _common([10.0, 12.5], [10, "12.5", "ask us", None]),
    "stock": _common([0, 3], [3.0, "4", 2.5, None, True]),
    "tags": _common([["desk"], ["desk", "light"]], [[], ["cafe\u0301"], ["a", 3], None, HUGE_TAGS, "desk| light |"]),
}


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {}
    raw_id = draw(st.sampled_from(IDS), label="id")
    if draw(st.integers(0, 30), label="no id") > 0:
        record["sku"] = raw_id
    for name, strategy in FIELDS.items():
        if draw(st.integers(0, 9), label=f"{name} present") > 0:
            record[name] = draw(strategy, label=name)
    return record


def _respelled(record: dict[str, Any]) -> dict[str, Any]:
    """The same record written otherwise: its keys in reverse order, whole numbers as floats or ints."""

    def respelled(name: str, value: Any) -> Any:
        if type(value) is float and value.is_integer():
            return int(value)
        if type(value) is int and name != "sku":
            return float(value)
        return value

    return {name: respelled(name, value) for name, value in reversed(record.items())}


@st.composite
def next_version(draw: st.DrawFn, previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A catalog a little different from the last, as a day's changes are: records kept (some written
    otherwise), edited, dropped, added."""
    version = []
    for record in previous:
        fate = draw(st.sampled_from(["kept", "kept", "kept", "respelled", "edited", "dropped"]), label="record")
        if fate == "kept":
            version.append(record)
        elif fate == "respelled":
            version.append(_respelled(record))
        elif fate == "edited":
            name = draw(st.sampled_from(sorted(FIELDS)), label="field edited")
            version.append({**record, name: draw(FIELDS[name], label=name)})
    version += draw(st.lists(records(), max_size=3), label="added")
    return version


@st.composite
def versions(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    drawn = [draw(st.lists(records(), max_size=7), label="v1")]
    for _ in range(draw(st.integers(0, 3), label="more versions")):
        fresh = draw(st.integers(0, 3), label="a fresh catalog") == 0
        drawn.append(draw(st.lists(records(), max_size=7) if fresh else next_version(drawn[-1])))
    return drawn


catalog_versions = versions()


def draw_config(draw: Callable[[st.SearchStrategy[Any], str], Any]) -> ModelConfig:
    from dataclasses import replace

    text = draw(st.sampled_from(sorted(CONFIGS)), "config")
    share, allow_empty = GUARDS[draw(st.sampled_from(["off", "off", "on at 25%", "on at 50%"]), "guard")]
    return replace(CONFIGS[text], max_delete_share=share, allow_empty_catalog=allow_empty)


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


# ---------------------------------------------------------------- one example


class _Clock(ShortContext):
    """A Lambda context whose clock runs out after a few looks; `ran_out` once the function saw it run out."""

    ran_out: bool = False

    def get_remaining_time_in_millis(self) -> int:
        remaining = super().get_remaining_time_in_millis()
        if remaining < 60_000:
            self.ran_out = True
        return remaining


NOT_A_DROP = 0  # the lineage of work no drop started (a consumer's repair)


class Scenario:
    """One example: drops the versions, runs invocations and deliveries in an order the draws decide, injects
    faults, drains, redrives; then `check_converged`.

    Every diff invocation belongs to a lineage: the drop whose event started it (its retries and continuations
    too), or none (a repair a consumer asked for). A drop is `overtakable` when a newer drop's work began while some
    of its own was still to run: its event not yet handled, an invocation of it pending, failed or running. That is
    this harness's schedule, not the product's state, and it is all the model is told about timing.
    """

    def __init__(self, world: World, data: st.DataObject, versions: list[list[dict[str, Any]]]) -> None:
        self.world = world
        self.data = data
        self.versions = versions
        self.config: ModelConfig = CONFIGS["joined"]
        self.dropped = 0
        self.keys: list[str] = []  # the object key of each drop
        self.sequencer = 0
        # Asynchronous invocations of the diff function, pending, with their lineage.
        self.invocations: list[tuple[int, dict[str, Any]]] = []
        self.drops: list[tuple[int, dict[str, Any]]] = []  # drop events, in the order S3 sent them
        self.ghosts: list[dict[str, Any]] = []  # deliveries SQS will make again (at-least-once)
        self.diff_failures: list[tuple[int, dict[str, Any]]] = []  # diff invocations that failed three times
        self.running: list[int] = []  # the lineages of the invocations running, innermost last
        self.begun = 0  # the newest drop whose work began
        self.overtakable: set[int] = set()
        self.faults: Counter[str] = Counter()
        self.trail: list[str] = []  # what was drawn, in order (shown when an example fails)
        self.calm = False
        self.depth = 0
        self.crash: str | None = None
        self.race = False
        self._delivered_before: dict[str, Counter[int] | int] = {}

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
        """A clean world: empty table, queues, bucket prefix and index; this example's catalog config."""
        from handlers import _shared

        world = self.world
        world.dynamodb.delete_table(TableName=TABLE)
        create_table(world.dynamodb)
        for url in [*world.queues.values(), *world.dead_letters.values()]:  # PurgeQueue allows one a minute
            while messages := world.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
                for message in messages:
                    world.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        # Every object version and delete marker, whatever its prefix (drops, pushes, change archives, checkpoints,
        # claims, quarantine, configs): moto keeps them in memory, and thousands of examples would exhaust it.
        for page in world.s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET):
            for version in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                world.s3.delete_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])
        world.pinecone.namespaces.clear()
        world.pinecone.failures.clear()
        world.pinecone.requests.clear()
        world.openai.failures.clear()
        world.openai.requests.clear()
        for throttler in world.throttlers.values():
            throttler.armed = 0
        self.config = draw_config(self.draw)
        text = self.config.toml(openai_url=world.openai.base_url, dimensions=DIMENSIONS)
        world.s3.put_object(Bucket=BUCKET, Key=f"config/{CATALOG}.toml", Body=text.encode())
        _shared.pipeline()._configs.clear()  # a warm function would read it within its cache's 5 minutes
        self._delivered_before = {
            "openai": Counter(world.openai.faults_delivered),
            "pinecone": Counter(world.pinecone.faults_delivered),
            **{service: throttler.delivered for service, throttler in world.throttlers.items()},
        }

    def delivered(self) -> Counter[str]:
        """The faults delivered in this example, by kind: the doubles' and the throttlers' counts, and the rest."""
        world = self.world
        faults = Counter(self.faults)
        for service, double in (("openai", world.openai), ("pinecone", world.pinecone)):
            before = self._delivered_before.get(service, Counter())
            assert isinstance(before, Counter)
            for status, count in (double.faults_delivered - before).items():
                faults[f"{service} {status}"] += count
        for service, throttler in world.throttlers.items():
            before_count = self._delivered_before.get(service, throttler.delivered)
            assert isinstance(before_count, int)
            if throttler.delivered > before_count:
                faults[f"{service} throttled"] += throttler.delivered - before_count
        return faults

    # ------------------------------------------------------------ lineages

    def invoked(self, payload: dict[str, Any]) -> None:
        """The product invoked the diff function asynchronously (a continuation, a repair)."""
        self.invocations.append((self.running[-1] if self.running else NOT_A_DROP, payload))

    def unfinished(self, drop: int) -> bool:
        return (
            any(lineage == drop for lineage, _ in self.drops)
            or any(lineage == drop for lineage, _ in self.invocations)
            or any(lineage == drop for lineage, _ in self.diff_failures)
            or drop in self.running
        )

    def _work_begins(self, lineage: int) -> None:
        if lineage == NOT_A_DROP:
            return
        if lineage < self.begun:
            self.inject("drop's work ran after a newer drop's diff began")
        self.begun = max(self.begun, lineage)
        for older in range(1, lineage):
            if older not in self.overtakable and self.unfinished(older):
                self.overtakable.add(older)
                self.inject("drop overtaken: a newer drop's diff began before its work was done")

    # ------------------------------------------------------------ fault hooks (called from the patched adapters)

    def at_index_write(self) -> None:
        if self.crash == "before write":
            self.crash = None
            self.inject("consumer crashed before its index write")
            raise LambdaCrash("consumer crashed before its index write")
        self._maybe_race("an index write")

    def at_commit(self) -> None:
        if self.crash == "after write":
            self.crash = None
            self.inject("consumer crashed after its index write, before the commit")
            raise LambdaCrash("consumer crashed after its index write, before the commit")

    def at_desired_write(self) -> None:
        self._maybe_race("a desired-state write")

    def _maybe_race(self, where: str) -> None:
        if not self.race or self.depth > 0:
            return
        self.race = False
        self.depth += 1
        try:
            if self.step(nested=True):
                self.inject(f"another invocation ran during {where}")
        finally:
            self.depth -= 1

    def arm_faults(self) -> None:
        if self.calm:
            self.crash, self.race = None, False
            return
        world = self.world
        for service, throttler in world.throttlers.items():
            throttler.armed = self.draw(st.sampled_from([0, 0, 0, 1, 2, 3]), f"{service} throttles")
        world.openai.failures.extend(
            self.draw(st.sampled_from([[], [], [], [429], [500, 429], [429] * 8]), "openai failures")
        )
        world.pinecone.failures.extend(
            self.draw(st.sampled_from([[], [], [], [429], [503, 500], [500] * 8]), "pinecone failures")
        )
        self.crash = self.draw(st.sampled_from([None, None, None, None, "before write", "after write"]), "crash")
        self.race = self.draw(st.integers(0, 4), "race") == 0

    # ------------------------------------------------------------ actions

    def drop_next(self) -> None:
        """The next catalog version lands in S3: its event is queued for the diff function, in order."""
        records = self.versions[self.dropped]
        number = self.dropped + 1
        # A JSON Lines drop, or a JSON array for an empty catalog (an empty .jsonl object is refused as broken).
        suffix = "jsonl" if records else "json"
        when = "seconds later"
        if SAME_SECOND_DROPS and self.keys:
            when = self.draw(
                st.sampled_from(["seconds later"] * 4 + ["same second", "same second, same object"]), "drop"
            )
        if when == "same second, same object" and self.keys[-1].endswith(f".{suffix}"):
            key = self.keys[-1]  # the same key again, within the second: only the sequencer orders the two
            self.inject("drops within one second: one object written twice")
        elif when.startswith("same second"):
            key = f"catalogs/{CATALOG}/v{number}.{suffix}"  # within the second: the greater key is the newer
            self.inject("drops within one second: two objects")
        else:
            self.world.s3_clock += timedelta(seconds=5)  # S3 stamps objects to the second
            key = f"catalogs/{CATALOG}/v{number}.{suffix}"
        body = b"".join(orjson.dumps(record) + b"\n" for record in records) if records else b"[]"
        version = self.world.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"]
        event = json.loads((EVENTS / "eventbridge-s3-object-created.json").read_text())
        event["detail"]["bucket"]["name"] = BUCKET
        self.sequencer += 1  # S3's sequencer grows with each event of a key (hex, compared after padding)
        event["detail"]["object"].update(
            {"key": key, "version-id": version, "size": len(body), "sequencer": f"{self.sequencer:018X}"}
        )
        self.keys.append(key)
        self.drops.append((number, event))
        self.dropped += 1

    def run_diff(self, lineage: int, payload: dict[str, Any]) -> None:
        from handlers import diff

        looks = None if self.calm else self.draw(st.sampled_from([None, None, 1, 2]), "diff looks at its clock")
        context = Context() if looks is None else _Clock(looks_left=looks)
        if not self.calm and self.depth == 0:
            self.race = self.draw(st.integers(0, 4), "race") == 0  # at its desired-state write
        attempts = payload.pop("_attempts", 0)
        if os.environ.get("CONVERGENCE_TRACE"):
            print(f"    diff ({lineage}) invoked with {str(payload)[:300]}")
        self._work_begins(lineage)
        self.running.append(lineage)
        try:
            result = diff.handler(payload, context)
        except (LambdaCrash, Exception) as exc:
            # Lambda retries a failed asynchronous invocation twice, then sends it to the on-failure destination,
            # from which it is redriven (here: after the drain).
            self.inject(f"diff invocation failed ({type(exc).__name__}), retried")
            if os.environ.get("CONVERGENCE_TRACE"):
                print(f"    diff failed: {exc!r}")
            retry = {**payload, "_attempts": attempts + 1}
            (self.invocations if attempts < 2 else self.diff_failures).append((lineage, retry))
            return
        finally:
            self.running.pop()
            if self.depth == 0:
                self.race = False
            if isinstance(context, _Clock) and context.ran_out:
                self.inject("diff ran out of time part way")
        assert result["status"] == "ok", result
        if os.environ.get("CONVERGENCE_TRACE"):
            print(f"    diff result: {str(result)[:400]}")
        for run in result.get("runs", []):
            assert run["status"] != "bad_input", run

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
        self.running.append(NOT_A_DROP)
        try:
            response = consumer.handler({"Records": records}, Context())
        except LambdaCrash:
            return True  # nothing acknowledged: every message comes back
        except BatchProcessingError:
            return True  # every record failed: the batch comes back
        finally:
            self.running.pop()
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
                self.run_diff(*self.drops.pop())
        elif choice == "diff of the oldest drop":
            self.run_diff(*self.drops.pop(0))
        elif choice == "pending invocation":
            # Lambda's asynchronous queue keeps no order: continuations and repairs run in any order.
            self.run_diff(*self.invocations.pop(self.draw(st.integers(0, len(self.invocations) - 1), "invocation")))
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
        for _ in range(300):  # calm: every delivery succeeds; a few dozen steps drain the largest example
            if self.invocations:
                self.run_diff(*self.invocations.pop(0))
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
        self.invocations.extend((lineage, {**payload, "_attempts": 0}) for lineage, payload in self.diff_failures)
        self.diff_failures.clear()
        for lane, dlq in self.world.dead_letters.items():
            waiting = self.waiting(dlq)
            if waiting:  # moto's long poll of an empty queue is not thread-safe: never ask for more than is there
                redrive_dead_letters(
                    self.world.sqs, dead_letter_url=dlq, target_url=self.world.queues[lane], limit=waiting
                )
                moved += waiting
        if moved:
            self.inject("message dead-lettered, then redriven", moved)
        return moved


# ---------------------------------------------------------------- the checks


def expectation(scenario: Scenario) -> Expectation:
    # The model reads the catalog objects as written, as the product does.
    written = [[orjson.loads(orjson.dumps(record)) for record in records] for records in scenario.versions]
    return model.expect(scenario.config, written, overtakable=scenario.overtakable)


def embedded_texts(world: World) -> list[str]:
    """Every text the OpenAI double was asked to embed in this example."""
    texts: list[str] = []
    for request in world.openai.requests:
        inputs = request["body"]["input"]
        texts.extend(inputs if isinstance(inputs, list) else [inputs])
    return texts


@dataclass(frozen=True)
class Stored:
    """One vector of the index as the model's terms: the texts whose embedding (by the OpenAI double's own
    function) it is, among those the double was asked for, and the metadata fields of the config."""

    texts: frozenset[str]
    metadata: tuple[tuple[str, Any], ...]

    def holds(self, entry: Entry | None) -> bool:
        return entry is not None and entry.text in self.texts and entry.metadata == self.metadata

    def __str__(self) -> str:
        return f"{sorted(self.texts)} {dict(self.metadata)}"


def stored_vectors(world: World, config: ModelConfig) -> dict[str, Stored]:
    texts = set(embedded_texts(world))
    names = {name for name, _ in config.metadata}
    stored = {}
    for vector_id, vector in world.pinecone.vectors(CATALOG).items():
        values = np.asarray(vector["values"], dtype=np.float64)
        matching = frozenset(text for text in texts if np.allclose(values, fake_vector(text, DIMENSIONS), atol=1e-6))
        assert matching, f"{vector_id!r}: the stored vector is the embedding of no text the embedder was given"
        metadata = vector["metadata"]
        unknown = {name for name in metadata if name not in names and not name.startswith("_")}
        assert not unknown, f"{vector_id!r}: metadata fields the config does not name: {unknown}"
        fields = {name: tuple(value) if isinstance(value, list) else value for name, value in metadata.items()}
        stored[vector_id] = Stored(matching, tuple(sorted((k, v) for k, v in fields.items() if k in names)))
    return stored


def check_converged(world: World, scenario: Scenario) -> None:
    from catalog_sync.models.changes import RunStatus
    from handlers import _shared

    expected = expectation(scenario)
    stored = stored_vectors(world, scenario.config)
    pipeline = _shared.pipeline()
    state = pipeline.state(pipeline.config(CATALOG))
    assert state.pending_count() == 0, "products are still pending"
    # Committed products are in the index (a write reported done that did not land would show here first).
    assert state.product_count() == len(stored), (
        f"the state tracks {state.product_count()} products, the index holds {len(stored)}"
    )
    # Each stored vector is a product the model knows, by the vector id the README's rule gives it.
    products = {model.vector_id(pid): pid for pid in expected.allowed}
    orphans = sorted(set(stored) - set(products))
    assert not orphans, f"the index holds vectors of no product the catalog versions allow: {orphans}"
    vectors = world.pinecone.vectors(CATALOG)
    for vector_id, pid in sorted(products.items()):
        held = stored.get(vector_id)
        allowed = expected.allows(pid)
        if held is None:
            assert None in allowed, f"{pid!r} is not in the index; the catalog versions allow {_shown(allowed)}"
            continue
        assert any(held.holds(option) for option in allowed), (
            f"{pid!r}: the index holds {held}; the catalog versions allow {_shown(allowed)}"
        )
        if not model.passes_through(pid):
            kept = vectors[vector_id]["metadata"].get(model.ORIGINAL_ID_KEY)
            assert kept == pid, f"{vector_id!r}: the metadata keeps {kept!r} as the product id, not {pid!r}"

    # The runs: held exactly where the model says a drop is held, ended, their counters adding up.
    drops_of: dict[str, list[int]] = {}
    for number, key in enumerate(scenario.keys, start=1):
        drops_of.setdefault(f"s3://{BUCKET}/{key}", []).append(number)
    runs = state.runs(1000)
    held_sources = {run.source for run in runs if run.status is RunStatus.HELD}
    for number, decision in enumerate(expected.guard, start=1):
        source = f"s3://{BUCKET}/{scenario.keys[number - 1]}"
        if decision is Guard.HELD and number not in expected.overtakable:
            assert source in held_sources, f"drop {number} ({source}) should have been held by the guard"
    for run in runs:
        drops = drops_of.get(run.source, [])
        if run.status is RunStatus.HELD:
            assert run.mode == "incremental" and any(expected.guard[n - 1] is not Guard.APPLIED for n in drops), (
                f"run {run.run_id} of {run.source} ({run.mode}) was held: {run.message}"
            )
        else:
            # Every other run ended: succeeded, or failed with its reason (its work is done by the retry's run).
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
        if run.status is RunStatus.HELD:
            assert "dispatched_changes" not in counts, f"run {run.run_id} was held, yet dispatched: {counts}"
            continue
        changed = sum(counts[kind] for kind in ("added", "text_changed", "metadata_only", "deleted"))
        # Re-sent products (an earlier change never committed) may also have changed: they are counted in both.
        overtaken = run.mode == "incremental" and any(n in expected.overtakable for n in drops)
        assert overtaken or "undispatched_changes" not in counts, (
            f"run {run.run_id} of {run.source} left changes undispatched, yet no newer drop began before it ended"
        )
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


def _shown(options: frozenset[Entry | None]) -> str:
    return ", ".join(sorted("nothing" if option is None else str(option) for option in options))


def describe(world: World, scenario: Scenario) -> str:
    """What a failing example was: its config, versions, the model's expectation and the index."""
    lines = [f"config: {scenario.config}", "versions:"]
    for number, records in enumerate(scenario.versions, start=1):
        lines.append(f"  v{number} ({scenario.keys[number - 1] if number <= len(scenario.keys) else 'not dropped'}):")
        lines += [f"    {_short(record)}" for record in records]
    expected = expectation(scenario)
    lines.append(f"guard decisions: {[decision.value for decision in expected.guard]}")
    lines.append(f"overtakable drops: {sorted(expected.overtakable)}")
    lines.append("allowed:")
    for pid, options in sorted(expected.allowed.items()):
        lines.append(f"  {pid[:40]!r}: {sorted(map(str, options))}")
    lines.append("index:")
    for vector_id, vector in sorted(world.pinecone.vectors(CATALOG).items()):
        lines.append(f"  {vector_id[:40]!r}: {vector['metadata']}")
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) < 200 else text[:200] + "..."


def run_example(world: World, versions: list[list[dict[str, Any]]], data: st.DataObject) -> None:
    """One example, end to end, counted in the world's fault log (an example hypothesis abandons is not)."""
    scenario = Scenario(world, data, versions)
    try:
        scenario.run()
        check_converged(world, scenario)
    except Exception:
        draws = json.dumps([scenario.trail, scenario.versions], default=repr)
        world.log.example_ended(converged=False, faults=scenario.delivered(), draws=draws)
        note(describe(world, scenario))
        raise
    except BaseException:
        world.log.example_abandoned()
        raise
    world.log.example_ended(converged=True, faults=scenario.delivered())
