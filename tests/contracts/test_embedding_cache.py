"""The EmbeddingCache port's contract, run on every adapter: SQLite in a temporary directory, and DynamoDB
under moto. A new cache joins with one fixture param.

A cache gives back exactly the float32 vectors it was given, by key; a key it does not hold is simply missing
from the answer; a later write of a key replaces it; batches beyond the service's request limits work; and what
one instance wrote, another instance on the same store reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws

from catalog_sync.adapters.aws.dynamodb_cache import DynamoEmbeddingCache
from catalog_sync.adapters.local.sqlite_state import SqliteEmbeddingCache
from catalog_sync.logic.canonical import embedding_key
from catalog_sync.ports import EmbeddingCache
from tests.aws.conftest import REGION
from tests.doubles.memory import MemoryEmbeddingCache

# Opens a cache on the one store of the test (a second call: another instance on the same store).
OpenCache = Callable[[], EmbeddingCache]


def _state_table(client: object) -> None:
    client.create_table(  # type: ignore[attr-defined]
        TableName="state",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture(params=["sqlite", "dynamodb", "memory"])
def open_cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenCache]:
    if request.param == "memory":  # the services' fake (tests/doubles/memory.py): reopened on the same vectors
        shared = MemoryEmbeddingCache()
        yield lambda: shared
    elif request.param == "sqlite":
        opened: list[SqliteEmbeddingCache] = []

        def sqlite() -> EmbeddingCache:
            opened.append(SqliteEmbeddingCache(tmp_path / "embedding-cache.sqlite"))
            return opened[-1]

        yield sqlite
        for cache in opened:
            cache.close()
    else:
        request.getfixturevalue("aws_credentials")
        with mock_aws():
            client = boto3.client("dynamodb", region_name=REGION)
            _state_table(client)
            yield lambda: DynamoEmbeddingCache(client, table="state")


def vectors(n: int, dimension: int = 16, seed: int = 1) -> dict[str, np.ndarray]:
    values = np.random.default_rng(seed).standard_normal((n, dimension)).astype(np.float32)
    return {embedding_key(f"text {seed} {i}", model_id="m"): values[i] for i in range(n)}


def test_vectors_come_back_exactly(open_cache: OpenCache):
    cache = open_cache()
    items = vectors(5)
    cache.put_many(items, model_id="m")
    found = cache.get_many(list(items))
    assert set(found) == set(items)
    for key, vector in items.items():
        assert found[key].dtype == np.float32
        np.testing.assert_array_equal(found[key], vector)


def test_a_key_not_held_is_missing_from_the_answer(open_cache: OpenCache):
    cache = open_cache()
    assert cache.get_many([]) == {}
    assert cache.get_many(["absent"]) == {}
    items = vectors(2)
    cache.put_many(items, model_id="m")
    first = next(iter(items))
    assert set(cache.get_many([first, "absent", first])) == {first}


def test_a_later_write_replaces_the_vector(open_cache: OpenCache):
    cache = open_cache()
    key = embedding_key("same text", model_id="m")
    cache.put_many({key: np.ones(4, dtype=np.float32)}, model_id="m")
    cache.put_many({key: np.full(4, 2.0, dtype=np.float32)}, model_id="m")
    np.testing.assert_array_equal(cache.get_many([key])[key], np.full(4, 2.0, dtype=np.float32))


def test_large_batches_and_wide_vectors(open_cache: OpenCache):
    cache = open_cache()
    items = vectors(1_001, dimension=1536, seed=2)  # beyond any one request's item limit
    cache.put_many(items, model_id="openai/text-embedding-3-small@1536")
    found = cache.get_many(list(items))
    assert len(found) == len(items)
    key = list(items)[777]
    np.testing.assert_array_equal(found[key], items[key])


def test_another_instance_reads_what_one_wrote(open_cache: OpenCache):
    items = vectors(3, seed=3)
    open_cache().put_many(items, model_id="m")
    found = open_cache().get_many(list(items))
    assert set(found) == set(items)
