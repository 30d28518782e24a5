"""The embedding cache on DynamoDB: one item per (model, text) key, expiring through the table's TTL.

Reads go through BatchGetItem (100 keys a call) and writes through BatchWriteItem (25 items a call); both
retry what DynamoDB leaves unprocessed, with backoff (resilience/policy.py), and raise if it never goes through.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from catalog_sync.adapters.aws.dynamodb_state.keys import (
    EMBEDDINGS_PREFIX,
    EXPIRY_ATTRIBUTE,
    PARTITION_KEY,
    embedding_key,
)
from catalog_sync.adapters.aws.dynamodb_state.table import attribute_values, plain
from catalog_sync.ports import Vectors
from catalog_sync.resilience.policy import EMBEDDING_CACHE_BATCH_RETRY, batch_retry

MAX_BATCH_GET = 100
MAX_BATCH_WRITE = 25


class CacheUnavailable(RuntimeError):
    """DynamoDB kept part of a batch unprocessed after every retry."""


class DynamoEmbeddingCache:
    def __init__(
        self,
        dynamodb: Any,
        *,
        table: str,
        ttl_days: float = 90,
        attempts: int = EMBEDDING_CACHE_BATCH_RETRY.attempts,
        backoff_seconds: float = EMBEDDING_CACHE_BATCH_RETRY.base_delay,
    ) -> None:
        self._dynamodb = dynamodb
        self.table = table
        self.ttl_seconds = int(ttl_days * 86_400)
        self.retry = batch_retry(EMBEDDING_CACHE_BATCH_RETRY, attempts, backoff_seconds)
        self.requests = {"get": 0, "write": 0}

    def get_many(self, keys: Sequence[str]) -> dict[str, Vectors]:
        found: dict[str, Vectors] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), MAX_BATCH_GET):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [embedding_key(key) for key in unique[start : start + MAX_BATCH_GET]],
                    "ProjectionExpression": "pk, vec",
                }
            }
            for attempt in range(self.retry.attempts):
                response = self._dynamodb.batch_get_item(RequestItems=request)
                self.requests["get"] += 1
                for item in map(plain, response.get("Responses", {}).get(self.table, [])):
                    found[item[PARTITION_KEY][len(EMBEDDINGS_PREFIX) :]] = np.frombuffer(item["vec"], dtype=np.float32)
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(self.retry.delay(attempt))
            else:
                raise CacheUnavailable("DynamoDB left embedding-cache reads unprocessed after every retry")
        return found

    def put_many(self, items: Mapping[str, Vectors], *, model_id: str) -> None:
        expires = int(time.time()) + self.ttl_seconds
        puts = [
            {
                "PutRequest": {
                    "Item": {
                        **embedding_key(key),
                        **attribute_values(
                            {
                                "model": model_id,
                                "vec": np.asarray(vector, dtype=np.float32).tobytes(),
                                EXPIRY_ATTRIBUTE: expires,
                            }
                        ),
                    }
                }
            }
            for key, vector in items.items()
        ]
        for start in range(0, len(puts), MAX_BATCH_WRITE):
            request: dict[str, Any] = {self.table: puts[start : start + MAX_BATCH_WRITE]}
            for attempt in range(self.retry.attempts):
                response = self._dynamodb.batch_write_item(RequestItems=request)
                self.requests["write"] += 1
                request = response.get("UnprocessedItems") or {}
                if not request:
                    break
                time.sleep(self.retry.delay(attempt))
            else:
                raise CacheUnavailable("DynamoDB left embedding-cache writes unprocessed after every retry")
