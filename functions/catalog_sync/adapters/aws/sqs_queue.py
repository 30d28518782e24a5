"""SQS: the change queue and the priority queue of the AWS pipeline (sending side).

Changes are packed into as few messages as the queue's maximum message size allows, and messages into
SendMessageBatch calls of at most 10 entries and 1 MiB. SQS can accept a batch and still fail some of its
entries; those are retried with backoff, and an error is raised if any is still refused, so nothing is
dropped silently. Message ids are deterministic (run, lane, sequence) and never repeat within a run.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from catalog_sync.adapters.aws.s3 import S3ClaimStore
from catalog_sync.logic.packing import PackedMessage, bounded_batches, pack_messages
from catalog_sync.models.changes import Change
from catalog_sync.resilience.policy import SQS_SEND_RETRY, batch_retry

MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 1024 * 1024
DEFAULT_MESSAGE_BYTES = 256 * 1024


class QueueSendError(RuntimeError):
    """SQS refused some messages even after retries."""


def _entry_id(message_id: str) -> str:
    # Batch entry ids allow 80 characters of [A-Za-z0-9_-]: a digest of the message id fits any run id.
    return hashlib.sha1(message_id.encode()).hexdigest()


def group_for_batches(messages: Iterable[PackedMessage]) -> Iterator[list[PackedMessage]]:
    return bounded_batches(
        messages,
        size_of=lambda message: len(message.body.encode()),
        max_items=MAX_BATCH_ENTRIES,
        max_bytes=MAX_BATCH_BYTES,
    )


class SqsChangeSender:
    def __init__(
        self,
        sqs: Any,
        *,
        queue_url: str,
        priority_queue_url: str,
        run_id: str,
        max_message_bytes: int = DEFAULT_MESSAGE_BYTES,
        claims: S3ClaimStore | None = None,
        catalog: str | None = None,
        attempts: int = SQS_SEND_RETRY.attempts,
        backoff_seconds: float = SQS_SEND_RETRY.base_delay,
    ) -> None:
        self._sqs = sqs
        self.queue_url = queue_url
        self.priority_queue_url = priority_queue_url
        self.run_id = run_id
        self.max_message_bytes = max_message_bytes
        self.claims = claims
        self.catalog = catalog
        self.retry = batch_retry(SQS_SEND_RETRY, attempts, backoff_seconds)
        self.requests = 0
        self.messages_sent = 0
        self.next_sequence = {"p": 1, "n": 1}

    def send(self, batches: Iterable[Sequence[Change]], *, priority: bool) -> int:
        changes = (change for batch in batches for change in batch)
        claims = self.claims
        claim = (lambda oversized: claims.put(self.run_id, oversized)) if claims is not None else None
        lane = "p" if priority else "n"
        messages = pack_messages(
            changes,
            run_id=self.run_id,
            lane=lane,
            max_bytes=self.max_message_bytes,
            claim=claim,
            first_sequence=self.next_sequence[lane],
            catalog=self.catalog,
        )
        url = self.priority_queue_url if priority else self.queue_url
        sent = 0
        for group in group_for_batches(messages):
            self._send_group(url, group)
            sent += len(group)
            self.next_sequence[lane] += len(group)
        self.messages_sent += sent
        return sent

    def _send_group(self, url: str, group: list[PackedMessage]) -> None:
        pending = {_entry_id(m.message_id): m for m in group}
        failures: list[dict[str, Any]] = []
        for attempt in range(self.retry.attempts):
            entries = [
                {
                    "Id": entry_id,
                    "MessageBody": message.body,
                    "MessageAttributes": {
                        "message_id": {"DataType": "String", "StringValue": message.message_id},
                        "changes": {"DataType": "Number", "StringValue": str(message.changes)},
                    },
                }
                for entry_id, message in pending.items()
            ]
            response = self._sqs.send_message_batch(QueueUrl=url, Entries=entries)
            self.requests += 1
            for ok in response.get("Successful", []):
                pending.pop(ok["Id"], None)
            failures = response.get("Failed", [])
            if not pending:
                return
            if any(failure.get("SenderFault") for failure in failures):
                break  # our fault: retrying the same entry cannot help
            time.sleep(self.retry.delay(attempt))
        reasons = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in failures) or "no answer for them"
        raise QueueSendError(f"SQS refused {len(pending)} of {len(group)} messages ({reasons})")

    def __len__(self) -> int:
        total = 0
        for url in (self.priority_queue_url, self.queue_url):
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            total += int(attributes["ApproximateNumberOfMessages"]) + int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            )
        return total


def redrive_dead_letters(sqs: Any, *, dead_letter_url: str, target_url: str, limit: int | None = None) -> int:
    """Move messages from a dead-letter queue back to the queue they failed on; returns how many moved.

    Each message is sent back (body and attributes as they were) before it is deleted from the dead-letter
    queue, so a crash half way duplicates at worst, never loses: a duplicate change is harmless.
    """
    moved = 0
    while limit is None or moved < limit:
        wanted = MAX_BATCH_ENTRIES if limit is None else min(MAX_BATCH_ENTRIES, limit - moved)
        messages = sqs.receive_message(
            QueueUrl=dead_letter_url, MaxNumberOfMessages=wanted, MessageAttributeNames=["All"], WaitTimeSeconds=1
        ).get("Messages", [])
        if not messages:
            break
        entries = [
            {
                "Id": str(position),
                "MessageBody": message["Body"],
                "MessageAttributes": message.get("MessageAttributes", {}),
            }
            for position, message in enumerate(messages)
        ]
        response = sqs.send_message_batch(QueueUrl=target_url, Entries=entries)
        if response.get("Failed"):
            failure = response["Failed"][0]
            raise QueueSendError(
                f"redrive stopped: SQS refused a message ({failure.get('Code')}: {failure.get('Message')})"
            )
        sqs.delete_message_batch(
            QueueUrl=dead_letter_url,
            Entries=[{"Id": str(p), "ReceiptHandle": m["ReceiptHandle"]} for p, m in enumerate(messages)],
        )
        moved += len(messages)
    return moved
