"""The SQS sender and the S3 adapters under moto."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest
from moto import mock_aws

from catalog_sync.adapters.aws.s3 import S3CatalogSource, S3ClaimStore
from catalog_sync.adapters.aws.sqs_queue import QueueSendError, SqsChangeSender
from catalog_sync.formats.catalog import iter_records
from catalog_sync.logic.packing import unpack_message
from catalog_sync.models.changes import Change, ChangeKind, IndexAction
from tests.aws.conftest import REGION
from tests.unit.test_packing import change


@pytest.fixture
def aws(aws_credentials: None):
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="catalogs")
        s3.put_bucket_versioning(Bucket="catalogs", VersioningConfiguration={"Status": "Enabled"})
        queues = {
            name: sqs.create_queue(QueueName=name, Attributes={"MaximumMessageSize": "262144"})["QueueUrl"]
            for name in ("changes", "priority")
        }
        yield sqs, s3, queues


def drain(sqs: Any, url: str, s3: Any) -> list[tuple[str, list[Change]]]:
    claims = S3ClaimStore(s3, bucket="catalogs")
    found = []
    while True:
        response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        messages = response.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            message_id = message["MessageAttributes"]["message_id"]["StringValue"]
            found.append((message_id, unpack_message(message["Body"], resolve_claim=claims.get)))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_changes_arrive_packed_in_order_on_their_lanes(aws):
    sqs, s3, queues = aws
    sender = SqsChangeSender(sqs, queue_url=queues["changes"], priority_queue_url=queues["priority"], run_id="r1")
    normal = [change(i) for i in range(1500) if i % 3]
    urgent = [change(i) for i in range(1500) if not i % 3]
    assert sender.send([normal], priority=False) >= 1
    assert sender.send([urgent[:200], urgent[200:]], priority=True) >= 1
    received = drain(sqs, queues["changes"], s3)
    assert sorted(c.product_id for _, batch in received for c in batch) == sorted(c.product_id for c in normal)
    by_id = dict(received)
    assert [c for mid in sorted(by_id) for c in by_id[mid]] == normal  # ids order the messages
    assert [c for _, batch in sorted(drain(sqs, queues["priority"], s3)) for c in batch] == urgent
    # 1,500 changes of ~0.8 KB took a handful of messages and one SendMessageBatch per lane.
    assert sender.requests == 2 and sender.messages_sent <= 8


def test_a_change_too_big_for_a_message_travels_by_claim_check(aws):
    sqs, s3, queues = aws
    sender = SqsChangeSender(
        sqs,
        queue_url=queues["changes"],
        priority_queue_url=queues["priority"],
        run_id="r2",
        claims=S3ClaimStore(s3, bucket="catalogs"),
    )
    big = Change(product_id="huge", kind=ChangeKind.ADDED, action=IndexAction.UPSERT, text=os.urandom(300_000).hex())
    sender.send([[change(1), big]], priority=False)
    [(_, batch)] = drain(sqs, queues["changes"], s3)
    assert batch == [change(1), big]
    assert s3.list_objects_v2(Bucket="catalogs", Prefix="claims/r2/")["KeyCount"] == 1


class FlakySqs:
    """The real (moto) client, except that SQS reports the first entry of the next batches as failed."""

    def __init__(self, inner: Any, failures: int, sender_fault: bool = False) -> None:
        self._inner = inner
        self.failures = failures
        self.sender_fault = sender_fault

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self.failures <= 0:
            return self._inner.send_message_batch(QueueUrl=QueueUrl, Entries=Entries)
        self.failures -= 1
        rest = Entries[1:]
        response = self._inner.send_message_batch(QueueUrl=QueueUrl, Entries=rest) if rest else {"Successful": []}
        response.setdefault("Failed", []).append(
            {"Id": Entries[0]["Id"], "SenderFault": self.sender_fault, "Code": "InternalError", "Message": "injected"}
        )
        return response


def test_failed_entries_are_retried_and_never_dropped(aws):
    sqs, s3, queues = aws
    flaky = FlakySqs(sqs, failures=2)
    sender = SqsChangeSender(
        flaky,
        queue_url=queues["changes"],
        priority_queue_url=queues["priority"],
        run_id="r3",
        max_message_bytes=16 * 1024,
        backoff_seconds=0.01,
    )
    changes = [change(i) for i in range(60)]
    sender.send([changes], priority=False)
    assert sorted(c.product_id for _, batch in drain(sqs, queues["changes"], s3) for c in batch) == sorted(
        c.product_id for c in changes
    )
    refusing = FlakySqs(sqs, failures=100, sender_fault=True)
    stubborn = SqsChangeSender(
        refusing, queue_url=queues["changes"], priority_queue_url=queues["priority"], run_id="r4"
    )
    with pytest.raises(QueueSendError, match="refused 1 of"):
        stubborn.send([changes[:3]], priority=False)


def test_catalog_objects_are_read_at_their_version(aws):
    _, s3, _ = aws
    first = s3.put_object(Bucket="catalogs", Key="feeds/shop.jsonl", Body=b'{"sku": "A"}\n')["VersionId"]
    s3.put_object(Bucket="catalogs", Key="feeds/shop.jsonl", Body=b'{"sku": "B"}\n{"sku": "C"}\n')
    latest = S3CatalogSource(s3, bucket="catalogs", key="feeds/shop.jsonl")
    with latest.open() as raw:
        assert [r["sku"] for _, r in iter_records(raw, latest.name)[1]] == ["B", "C"]
    assert latest.version_id and latest.version_id != first
    pinned = S3CatalogSource(s3, bucket="catalogs", key="feeds/shop.jsonl", version_id=first)
    with pinned.open() as raw:
        assert [r["sku"] for _, r in iter_records(raw, pinned.name)[1]] == ["A"]


def test_message_ids_never_repeat_within_a_run(aws):
    sqs, s3, queues = aws
    sender = SqsChangeSender(sqs, queue_url=queues["changes"], priority_queue_url=queues["priority"], run_id="r5")
    sender.send([[change(1)]], priority=False)
    sender.send([[change(2)]], priority=False)  # a second dispatch window of the same run
    ids = [message_id for message_id, _ in drain(sqs, queues["changes"], s3)]
    assert sorted(ids) == ["r5-n-000001", "r5-n-000002"]
