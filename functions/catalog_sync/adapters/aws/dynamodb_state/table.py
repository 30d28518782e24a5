"""What every part of the DynamoDB state store shares: the client and table, parallel calls, conditional writes
and transactions, and the conversion of attribute values.

Every write that decides what the index should hold is conditional, so that concurrent runs and consumers cannot
regress it. Conditional writes go in transactions of up to 100 items (TransactWriteItems, the only batch form that
carries conditions; a transactional write costs twice the write units of a plain one), several in parallel.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

from catalog_sync.adapters.aws.dynamodb_state import keys
from catalog_sync.resilience.policy import STATE_TRANSACTION_RETRY, batch_retry

MAX_BATCH_GET = 100
MAX_TRANSACTION_ITEMS = 100
_RETRYABLE = {
    "TransactionCanceledException",  # cancelled for a conflict or throttling, not a condition
    "TransactionConflictException",
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
}
# Attribute names that are reserved words in expressions.
NAMES = {"#del": "del"}

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def attribute_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Python values (str, int, bool, bytes, Decimal) as DynamoDB attribute values, by name or placeholder."""
    return {name: _SERIALIZER.serialize(value) for name, value in values.items()}


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item as Python values: numbers as Decimal (int() where an int was written), binary as bytes."""
    values = {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}
    return {name: bytes(value) if isinstance(value, Binary) else value for name, value in values.items()}


def decimal(number: float) -> Decimal:
    """A float as DynamoDB stores it: its shortest decimal spelling (the serializer refuses floats)."""
    return Decimal(repr(number))


class StateWriteError(RuntimeError):
    """DynamoDB did not take a state write after the SDK's retries."""


def conditional_check_failed(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return bool(response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class StateTable:
    """One catalog's items in the state table, and the calls every part of the store makes."""

    def __init__(
        self,
        dynamodb: Any,
        *,
        table: str,
        catalog: str,
        shards: int = keys.DEFAULT_SHARDS,
        concurrency: int = 8,
        attempts: int = STATE_TRANSACTION_RETRY.attempts,
        backoff_seconds: float = STATE_TRANSACTION_RETRY.base_delay,
    ) -> None:
        self.retry = batch_retry(STATE_TRANSACTION_RETRY, attempts, backoff_seconds)
        self._dynamodb = dynamodb
        self.table = table
        self.catalog = catalog
        self.shards = shards
        self.concurrency = concurrency
        self.requests: dict[str, int] = {"query": 0, "get": 0, "write": 0}

    def _key(self, product_id: str) -> keys.Key:
        return keys.product_key(self.catalog, self.shards, product_id)

    def _meta_key(self, name: str) -> keys.Key:
        return keys.meta_key(self.catalog, name)

    def _run_key(self, run_id: str) -> keys.Key:
        return keys.run_key(self.catalog, run_id)

    def _parallel(self, work: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(work, items))

    # ------------------------------------------------------------ reads

    def _query(self, pk: str, **extra: Any) -> Iterator[list[dict[str, Any]]]:
        """The pages of items in partition `pk`, as stored."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            **extra,
        }
        while True:
            response = self._dynamodb.query(**kwargs)
            self.requests["query"] += 1
            yield response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _query_shard(self, shard: int) -> list[dict[str, Any]]:
        # Read as stored, not converted: the shards of a catalog hold every product, read on every diff.
        pages = self._query(
            keys.shard_partition(self.catalog, shard),
            ProjectionExpression="sk, fp, dv, cv, #del",
            ExpressionAttributeNames=NAMES,
        )
        return [item for page in pages for item in page]

    def _all_shards(self) -> list[list[dict[str, Any]]]:
        return self._parallel(self._query_shard, list(range(self.shards)))

    def _batch_get(self, product_ids: Sequence[str], projection: str) -> Iterator[dict[str, Any]]:
        unique = list(dict.fromkeys(product_ids))
        for start in range(0, len(unique), MAX_BATCH_GET):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [self._key(pid) for pid in unique[start : start + MAX_BATCH_GET]],
                    "ProjectionExpression": projection,
                    "ExpressionAttributeNames": NAMES,
                }
            }
            while request:
                response = self._dynamodb.batch_get_item(RequestItems=request)
                self.requests["get"] += 1
                yield from response.get("Responses", {}).get(self.table, [])
                request = response.get("UnprocessedKeys") or {}

    # ------------------------------------------------------------ writes

    def _update(self, key: keys.Key, **kwargs: Any) -> bool:
        """One conditional update; False when its condition did not hold (a newer writer got there first)."""
        try:
            self._dynamodb.update_item(TableName=self.table, Key=key, **kwargs)
        except Exception as exc:
            if conditional_check_failed(exc):
                return False
            raise StateWriteError(f"state write failed: {exc}") from exc
        finally:
            self.requests["write"] += 1
        return True

    def _transact(self, operations: Sequence[dict[str, Any]]) -> int:
        """Conditional writes, up to 100 per TransactWriteItems call; returns how many applied.

        A write whose condition fails is dropped (a newer writer got there first) and the rest of its
        transaction is retried without it; conflicts and throttling are retried with backoff.
        """
        applied = 0
        for start in range(0, len(operations), MAX_TRANSACTION_ITEMS):
            chunk = list(operations[start : start + MAX_TRANSACTION_ITEMS])
            attempt = 0
            while chunk:
                try:
                    self._dynamodb.transact_write_items(TransactItems=chunk)
                    self.requests["write"] += 1
                    applied += len(chunk)
                    break
                except Exception as exc:
                    self.requests["write"] += 1
                    response = getattr(exc, "response", None) or {}
                    code = response.get("Error", {}).get("Code")
                    reasons = response.get("CancellationReasons") or []
                    if code == "TransactionCanceledException" and len(reasons) == len(chunk):
                        failed = {
                            i for i, reason in enumerate(reasons) if reason.get("Code") == "ConditionalCheckFailed"
                        }
                        chunk = [op for i, op in enumerate(chunk) if i not in failed]
                        if failed:
                            continue  # the others were only cancelled with them: retry those at once
                    elif code not in _RETRYABLE:
                        raise StateWriteError(f"state write failed: {exc}") from exc
                    attempt += 1
                    if attempt >= self.retry.attempts:
                        raise StateWriteError(f"state write kept failing: {exc}") from exc
                    time.sleep(self.retry.delay(attempt))
        return applied

    def _in_parallel_transactions(self, operations: list[dict[str, Any]]) -> int:
        groups = [operations[i : i + MAX_TRANSACTION_ITEMS] for i in range(0, len(operations), MAX_TRANSACTION_ITEMS)]
        return sum(self._parallel(self._transact, groups))
