"""The claim on a catalog's newest object in the DynamoDB state (M#<catalog> / source), under moto: ordered by
catalog_sync.logic.drops, and written only over the claim it was judged against."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
from catalog_sync.logic.drops import DropClaim
from tests.doubles.aws_resources import TABLE, create_table

T = 1_795_000_000.0
KEY = "catalogs/shop/feed.jsonl"


@pytest.fixture
def store(aws_credentials: None) -> Iterator[DynamoStateStore]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client)
        yield DynamoStateStore(client, table=TABLE, catalog="shop", shards=1, concurrency=1)


def _item(store: DynamoStateStore) -> dict[str, Any]:
    item: dict[str, Any] = store._dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": "M#shop"}, "sk": {"S": "source"}}
    )["Item"]
    return item


def test_one_keys_writes_in_one_second_are_ordered_by_their_sequencers(store: DynamoStateStore):
    assert store.claim_source(modified=T, key=KEY, version_id="v2", sequencer="0000000000000002")
    assert not store.claim_source(modified=T, key=KEY, version_id="v1", sequencer="0000000000000001")
    assert store.newest_claim() == DropClaim(key=KEY, modified=T, version_id="v2", sequencer="0000000000000002")
    assert store.newest_source() == (T, KEY, "v2")
    # A schedule reading the same version (no sequencer) may read it, and the sequencer stays known.
    assert store.claim_source(modified=T, key=KEY, version_id="v2")
    assert _item(store)["source_sequencer"] == {"S": "0000000000000002"}
    assert not store.claim_source(modified=T, key=KEY, version_id="v1", sequencer="0000000000000001")
    # Another version without a sequencer, in the same second: not ordered; the later claim wins and names none.
    assert store.claim_source(modified=T, key=KEY, version_id="v3")
    assert "source_sequencer" not in _item(store)


def test_other_keys_in_one_second_are_ordered_by_name(store: DynamoStateStore):
    assert store.claim_source(modified=T, key="catalogs/shop/b.jsonl", version_id="v1", sequencer="05")
    assert not store.claim_source(modified=T + 0.4, key="catalogs/shop/a.jsonl", version_id="v2", sequencer="06")
    assert store.claim_source(modified=T + 1, key="catalogs/shop/a.jsonl", version_id="v2", sequencer="06")


def test_a_claim_judged_against_a_claim_since_replaced_is_judged_again(
    store: DynamoStateStore, monkeypatch: pytest.MonkeyPatch
):
    """Between reading the claim and writing its own, another run claims a newer object: the write's condition
    fails, the claim is read again, and the older object is refused (not written over the newer one)."""
    assert store.claim_source(modified=T, key=KEY, version_id="v1", sequencer="01")
    read = store._source_item
    raced: list[bool] = []

    def read_then_race() -> dict[str, Any] | None:
        item = read()
        if not raced:
            raced.append(True)
            other = DynamoStateStore(store._dynamodb, table=TABLE, catalog="shop", shards=1, concurrency=1)
            assert other.claim_source(modified=T, key=KEY, version_id="v3", sequencer="03")
        return item

    monkeypatch.setattr(store, "_source_item", read_then_race)
    assert not store.claim_source(modified=T, key=KEY, version_id="v2", sequencer="02")
    assert raced and store.newest_claim() == DropClaim(key=KEY, modified=T, version_id="v3", sequencer="03")
    assert _item(store)["claims"] == {"N": "2"}


def test_a_claim_written_before_claims_were_counted_is_taken_over(store: DynamoStateStore):
    store._dynamodb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": "M#shop"},
            "sk": {"S": "source"},
            "modified": {"N": repr(T)},
            "source_key": {"S": KEY},
            "source_version": {"S": "v1"},
        },
    )
    assert not store.claim_source(modified=T - 1, key=KEY, version_id="v0", sequencer="01")
    assert store.claim_source(modified=T, key=KEY, version_id="v2", sequencer="02")  # same second: a tie
    assert _item(store)["claims"] == {"N": "1"}
