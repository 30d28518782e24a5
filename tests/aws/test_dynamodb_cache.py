"""The DynamoDB embedding cache under moto."""

from __future__ import annotations

from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from catalog_sync.adapters.aws.dynamodb_cache import CacheUnavailable, DynamoEmbeddingCache
from tests.aws.conftest import REGION


@pytest.fixture
def dynamodb(aws_credentials: None):
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        client.update_time_to_live(
            TableName="state", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
        yield client


def test_round_trip_in_batches_within_the_limits(dynamodb):
    cache = DynamoEmbeddingCache(dynamodb, table="state", ttl_days=30)
    vectors = {f"k{i}": np.arange(4, dtype=np.float32) + i for i in range(260)}
    cache.put_many(vectors, model_id="m")
    assert cache.requests["write"] == 11  # ceil(260 / 25)
    found = cache.get_many([*vectors, "absent", "k1"])
    assert cache.requests["get"] == 3  # ceil(261 unique keys / 100)
    assert set(found) == set(vectors)
    np.testing.assert_array_equal(found["k42"], vectors["k42"])
    item = dynamodb.get_item(TableName="state", Key={"pk": {"S": "E#k42"}, "sk": {"S": "v"}})["Item"]
    assert item["model"]["S"] == "m" and int(item["expires_at"]["N"]) > 0


class Throttled:
    """The real (moto) client, except that DynamoDB leaves the first write of the next calls unprocessed."""

    def __init__(self, inner: Any, times: int) -> None:
        self._inner = inner
        self.times = times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        if self.times <= 0:
            return self._inner.batch_write_item(RequestItems=RequestItems)
        self.times -= 1
        ((table, requests),) = RequestItems.items()
        response = self._inner.batch_write_item(RequestItems={table: requests[1:]}) if requests[1:] else {}
        response["UnprocessedItems"] = {table: requests[:1]}
        return response


def test_unprocessed_writes_are_retried_then_reported(dynamodb):
    cache = DynamoEmbeddingCache(Throttled(dynamodb, times=2), table="state", backoff_seconds=0.001)
    cache.put_many({"a": np.ones(2, dtype=np.float32), "b": np.zeros(2, dtype=np.float32)}, model_id="m")
    assert set(cache.get_many(["a", "b"])) == {"a", "b"}
    stubborn = DynamoEmbeddingCache(Throttled(dynamodb, times=100), table="state", attempts=3, backoff_seconds=0.001)
    with pytest.raises(CacheUnavailable):
        stubborn.put_many({"c": np.ones(2, dtype=np.float32)}, model_id="m")
