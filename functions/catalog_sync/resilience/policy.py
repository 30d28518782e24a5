"""Every retry the product makes, and its numbers, in one place.

Two layers, by service:
- Pinecone: the SDK retries 408, 429 and 5xx (3 retries, with its own backoff and per-host retry budget; its
  REST data plane takes no retry settings). A write it gave up on is retried by the index adapter with
  `PINECONE_WRITE_RETRY`. Every attempt, the SDK's included, is paced (see `pinecone_sdk`).
- OpenAI: the SDK retries 429 and 5xx, honouring Retry-After, `OPENAI_MAX_RETRIES` times; every attempt is paced
  through its HTTP client's request hook.
- DynamoDB and SQS: botocore retries throttling and errors (standard mode, `AWS_MAX_ATTEMPTS`); what a batch
  call accepts and still leaves undone (unprocessed items, failed entries, cancelled transactions) is retried by
  the adapter with the `*_RETRY` policies below, without jitter.
"""

from __future__ import annotations

import math
from typing import Any

from catalog_sync.resilience.retry import RetryPolicy

# 12 attempts lose a write only when all are refused: at 20% throttling, 4 in a billion (a message makes up to
# ~3,000 writes). The delays add up to at most 32 s (0.25 s doubling to 4 s).
PINECONE_WRITE_RETRY = RetryPolicy(attempts=12, base_delay=0.25, max_delay=4.0)

OPENAI_MAX_RETRIES = 6

# botocore's attempts (standard retry mode) for the DynamoDB and SQS clients: a message makes about 200
# DynamoDB requests, and botocore's default 4 attempts lose 0.16% of requests at 20% throttling.
AWS_MAX_ATTEMPTS = 10

# What the calls below leave undone after botocore's own retries: the delay doubles from `base_delay`.
SQS_SEND_RETRY = RetryPolicy(attempts=5, base_delay=0.2, max_delay=math.inf, jitter=False)
EMBEDDING_CACHE_BATCH_RETRY = RetryPolicy(attempts=6, base_delay=0.05, max_delay=math.inf, jitter=False)
STATE_TRANSACTION_RETRY = RetryPolicy(attempts=6, base_delay=0.05, max_delay=math.inf, jitter=False)


def batch_retry(policy: RetryPolicy, attempts: int, backoff_seconds: float) -> RetryPolicy:
    """`policy` with an adapter's own attempts and first delay (its constructor's arguments)."""
    return RetryPolicy(attempts=attempts, base_delay=backoff_seconds, max_delay=policy.max_delay, jitter=policy.jitter)


def botocore_retries(max_attempts: int = AWS_MAX_ATTEMPTS) -> Any:
    """The botocore client config for the DynamoDB and SQS clients."""
    from botocore.config import Config

    return Config(retries={"max_attempts": max_attempts, "mode": "standard"})
