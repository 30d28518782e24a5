"""The change queue's contract (the ChangeSender port, and what a consumer then receives), run on every adapter:
the in-process queue of the embedded default, and SQS under moto (two queues, one per lane, with claim checks
in S3 for changes too large for a message). A new queue joins with one fixture param.

Every change sent arrives once and whole, on its lane; a consumer reading as the queue intends gets the
priority lane's changes before the normal lane's; nothing is sent for empty batches; and the queue counts what
is still waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from catalog_sync.adapters.aws.s3 import S3ClaimStore
from catalog_sync.adapters.aws.sqs_queue import SqsChangeSender
from catalog_sync.adapters.local.memory_queue import InProcessChangeQueue
from catalog_sync.logic.packing import unpack_message
from catalog_sync.models.changes import Change, ChangeKind, IndexAction
from catalog_sync.ports import ChangeSender
from tests.aws.conftest import REGION
from tests.doubles.memory import MemoryChangeQueue


@dataclass
class Queue:
    sender: ChangeSender
    # Everything waiting, in the order a consumer gets it (and deleted, as a consumer does).
    drain: Callable[[], list[Change]]
    pending: Callable[[], int]


def _in_process() -> Queue:
    queue = InProcessChangeQueue()

    def drain() -> list[Change]:
        received: list[Change] = []
        while (batch := queue.receive()) is not None:
            received.extend(batch)
        return received

    return Queue(queue, drain, lambda: len(queue))


def _sqs() -> Queue:
    sqs = boto3.client("sqs", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="pipeline")
    urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("priority", "changes")}
    claims = S3ClaimStore(s3, bucket="pipeline")
    sender = SqsChangeSender(
        sqs, queue_url=urls["changes"], priority_queue_url=urls["priority"], run_id="r1", claims=claims
    )

    def drain_queue(url: str) -> list[Change]:
        received: list[Change] = []
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                received.extend(unpack_message(message["Body"], resolve_claim=claims.get))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return received

    # The priority lane has its own queue and consumers: its changes never wait behind the normal lane's.
    return Queue(sender, lambda: drain_queue(urls["priority"]) + drain_queue(urls["changes"]), lambda: len(sender))


def _memory() -> Queue:
    queue = MemoryChangeQueue()  # the services' fake (tests/doubles/memory.py), held to the same contract

    def drain() -> list[Change]:
        received: list[Change] = []
        while (batch := queue.receive()) is not None:
            received.extend(batch)
        return received

    return Queue(queue, drain, lambda: len(queue))


@pytest.fixture(params=["in-process", "sqs", "memory"])
def queue(request: pytest.FixtureRequest) -> Iterator[Queue]:
    if request.param == "memory":
        yield _memory()
    elif request.param == "in-process":
        yield _in_process()
    else:
        request.getfixturevalue("aws_credentials")
        with mock_aws():
            yield _sqs()


def change(i: int, *, priority: bool = False, text: str | None = None, **extra: Any) -> Change:
    return Change(
        product_id=f"p{i}",
        kind=ChangeKind.METADATA_ONLY if priority else ChangeKind.TEXT_CHANGED,
        action=IndexAction.UPDATE_METADATA if priority else IndexAction.UPSERT,
        priority=priority,
        fields_changed=("price",) if priority else ("description",),
        version=i + 1,
        text=text if text is not None else f"product {i}",
        metadata={"price": i + 0.5, "tags": ["a", "ü"]},
        text_hash="ab" * 16,
        field_hashes={"title": "0011223344556677"},
        fingerprint=bytes(range(16)),
        **extra,
    )


def test_every_change_arrives_once_and_whole(queue: Queue):
    changes = [change(i) for i in range(25)]
    assert queue.sender.send([changes[:10], changes[10:]], priority=False) > 0
    received = queue.drain()
    assert sorted(received, key=lambda c: c.version) == changes


def test_priority_changes_come_first(queue: Queue):
    normal = [change(i) for i in range(6)]
    urgent = [change(i, priority=True) for i in range(100, 104)]
    queue.sender.send([normal], priority=False)
    queue.sender.send([urgent], priority=True)
    received = queue.drain()
    assert {c.product_id for c in received[: len(urgent)]} == {c.product_id for c in urgent}
    assert sorted(received[len(urgent) :], key=lambda c: c.version) == normal


def test_empty_batches_send_nothing(queue: Queue):
    assert queue.sender.send([], priority=False) == 0
    assert queue.sender.send([[]], priority=True) == 0
    assert queue.pending() == 0
    assert queue.drain() == []


def test_the_queue_counts_what_waits(queue: Queue):
    queue.sender.send([[change(1), change(2)]], priority=False)
    assert queue.pending() > 0
    assert len(queue.drain()) == 2
    assert queue.pending() == 0


def test_many_changes_and_a_very_large_one_arrive(queue: Queue):
    changes = [change(i) for i in range(2_000)]
    large = change(5_000, text="lorem ipsum " * 40_000)  # about 480 KB: more than any one message holds
    queue.sender.send([changes[:1_000], changes[1_000:], [large]], priority=False)
    received = {c.product_id: c for c in queue.drain()}
    assert len(received) == 2_001
    assert received[large.product_id] == large
    assert received["p1999"] == changes[1_999]
