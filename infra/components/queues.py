"""The two lanes changes travel in (priority and change), each with its dead-letter queue, and the queue that
keeps the diff's failed invocations."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.components.naming import TransparentConstruct
from infra.config import StackConfig


class Queues(TransparentConstruct):
    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig) -> None:
        super().__init__(scope, construct_id)
        # Created in the stack itself, not in this construct: CDK derives names of other resources from these
        # ones' paths (event source mappings, rule permissions), which naming.py cannot make transparent.
        self.home = cdk.Stack.of(self)
        self.config = config
        self.change_queue, self.change_dlq = self._lane("ChangeQueue")
        self.priority_queue, self.priority_dlq = self._lane("PriorityQueue")
        # Diff invocations that failed after Lambda's own retries (S3 drops, schedules, webhook calls).
        self.diff_failures = sqs.Queue(
            self.home,
            "DiffFailures",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )

    @property
    def lanes(self) -> tuple[sqs.Queue, sqs.Queue]:
        return self.change_queue, self.priority_queue

    def _lane(self, name: str) -> tuple[sqs.Queue, sqs.Queue]:
        settings = self.config.queues
        dead_letters = sqs.Queue(
            self.home,
            f"{name}DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        queue = sqs.Queue(
            self.home,
            name,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            max_message_size_bytes=settings.max_message_bytes,
            retention_period=cdk.Duration.days(settings.retention_days),
            visibility_timeout=cdk.Duration.seconds(self.config.visibility_timeout_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters, max_receive_count=settings.max_receive_count),
        )
        return queue, dead_letters
