"""The state store contract, held by both stores: SQLite (embedded default) and DynamoDB (under moto)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
from catalog_sync.adapters.local.sqlite_state import SqliteEmbeddingCache, SqliteStateStore
from catalog_sync.logic.diff import FingerprintUpdate
from catalog_sync.models.changes import Change, ChangeKind, IndexAction, RunStatus

TABLE = "catalog-sync"


def create_table(client: Any) -> None:
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture(params=["sqlite", "dynamodb"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A factory of stores for one catalog; calling it twice opens the same state again."""
    if request.param == "sqlite":
        yield lambda: SqliteStateStore(tmp_path / "s.sqlite", "shop")
        return
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client)
        # One request at a time: moto is not safe for concurrent writes (DynamoDB is).
        yield lambda: DynamoStateStore(client, table=TABLE, catalog="shop", shards=4, concurrency=1)


def upsert(pid: str, version: int, text_hash: str = "t", fingerprint: bytes = b"f" * 16) -> Change:
    return Change(
        product_id=pid,
        kind=ChangeKind.ADDED,
        action=IndexAction.UPSERT,
        version=version,
        text_hash=text_hash,
        metadata_hash="m",
        field_hashes={"title": "x"},
        fingerprint=fingerprint,
    )


def delete(pid: str, version: int) -> Change:
    return Change(product_id=pid, kind=ChangeKind.DELETED, action=IndexAction.DELETE, version=version)


def record(store: Any, changes: list[Change]) -> None:
    store.record_desired(changes, [])
    store.record_index_settings(embedding_model="model", text_template="tpl")


def test_desired_then_commit(make_store):
    store = make_store()
    record(store, [upsert("A", 1, fingerprint=b"a" * 16), upsert("B", 1, fingerprint=b"b" * 16)])
    assert store.pending_count() == 2
    snapshot = store.snapshot()
    assert snapshot.fingerprints == {} and snapshot.live_ids == {"A", "B"}
    assert store.commit([upsert("A", 1), upsert("B", 1)]) == 2
    snapshot = store.snapshot()
    assert snapshot.fingerprints == {b"a" * 16: "A", b"b" * 16: "B"}
    assert snapshot.embedding_model == "model"
    stored = snapshot.get_many(["A"])["A"]
    assert stored.committed_version == 1 and not stored.pending and stored.field_hashes == {"title": "x"}
    assert store.indexed_count() == 2


def test_a_stale_change_is_not_committed(make_store):
    store = make_store()
    record(store, [upsert("A", 1)])
    record(store, [upsert("A", 2, text_hash="t2")])
    assert store.commit([upsert("A", 1)]) == 0  # version 1 is no longer desired
    assert store.pending_count() == 1
    assert store.desired_versions(["A", "missing"]) == {"A": 2}
    assert store.commit([upsert("A", 2, text_hash="t2")]) == 1
    assert store.pending_count() == 0


def test_delete_is_pending_until_committed(make_store):
    store = make_store()
    record(store, [upsert("A", 1)])
    store.commit([upsert("A", 1)])
    record(store, [delete("A", 2)])
    snapshot = store.snapshot()
    assert snapshot.pending_deletes == {"A"} and snapshot.live_ids == set()
    assert store.commit([delete("A", 2)]) == 1
    assert store.product_count() == 0 and store.snapshot().pending_deletes == set()


def test_uncommit_all_makes_everything_pending(make_store):
    store = make_store()
    record(store, [upsert("A", 1), upsert("B", 1)])
    store.commit([upsert("A", 1), upsert("B", 1)])
    assert store.uncommit_all() == 2
    assert store.pending_count() == 2 and store.indexed_count() == 0


def test_runs_are_recorded_in_order(make_store):
    store = make_store()
    first = store.begin_run(mode="incremental", source="a.jsonl")
    first.status = RunStatus.SUCCEEDED
    first.counts = {"added": 3}
    store.finish_run(first)
    second = store.begin_run(mode="full", source="b.jsonl")
    assert second.seq == first.seq + 1
    runs = store.runs()
    assert [r.run_id for r in runs] == [second.run_id, first.run_id]
    assert runs[1].status is RunStatus.SUCCEEDED and runs[1].counts == {"added": 3}
    assert runs[0].status is RunStatus.RUNNING


def test_state_survives_reopening(make_store):
    record(make_store(), [upsert("A", 1)])
    assert make_store().pending_count() == 1


def test_an_older_run_cannot_overwrite_a_newer_desired_state(make_store):
    store = make_store()
    record(store, [upsert("A", 5, text_hash="new")])
    record(store, [upsert("A", 4, text_hash="old")])  # a slower, older run finishing late
    stored = store.snapshot().get_many(["A"])["A"]
    assert stored.desired_version == 5 and stored.text_hash == "new"


def test_a_respelling_applies_only_to_the_version_it_was_computed_for(make_store):
    store = make_store()
    record(store, [upsert("A", 1, fingerprint=b"1" * 16)])
    store.commit([upsert("A", 1)])
    store.record_desired([], [FingerprintUpdate("A", b"2" * 16, 1)])
    assert store.snapshot().fingerprints == {b"2" * 16: "A"}
    record(store, [upsert("A", 2, text_hash="t2", fingerprint=b"3" * 16)])
    store.record_desired([], [FingerprintUpdate("A", b"4" * 16, 1)])  # stale: computed against version 1
    assert store.snapshot().get_many(["A"])["A"].fingerprint == b"3" * 16


def test_embedding_cache_round_trip(tmp_path: Path):
    cache = SqliteEmbeddingCache(tmp_path / "cache.sqlite")
    vector = np.arange(4, dtype=np.float32)
    cache.put_many({"k1": vector}, model_id="m")
    found = cache.get_many(["k1", "k2"])
    assert list(found) == ["k1"]
    np.testing.assert_array_equal(found["k1"], vector)


def test_a_dispatched_run_completes_when_its_changes_are_handled(make_store):
    store = make_store()
    if not isinstance(store, DynamoStateStore):
        pytest.skip("the embedded default applies its changes within the run")
    run = store.begin_run(mode="incremental", source="s3://b/k.jsonl")
    run.status = RunStatus.DISPATCHED
    run.counts = {"dispatched_changes": 5}
    assert store.finish_run(run) is False
    assert store.record_progress(run.run_id, 3) is False
    assert store.runs()[0].status is RunStatus.DISPATCHED
    # Exactly one caller completes the run (it publishes the metric the staleness alarms watch).
    assert store.record_progress(run.run_id, 2) is True
    assert store.record_progress(run.run_id, 1) is False  # a duplicate delivery
    finished = store.runs()[0]
    assert finished.status is RunStatus.SUCCEEDED and finished.counts["applied_changes"] == 6
    empty = store.begin_run(mode="incremental", source="s3://b/k.jsonl")
    empty.status, empty.counts = RunStatus.DISPATCHED, {"dispatched_changes": 0}
    assert store.finish_run(empty) is True
    assert store.runs()[0].status is RunStatus.SUCCEEDED
    # Consumers may finish before the dispatch records its total (a resumed dispatch): then finishing completes.
    late = store.begin_run(mode="incremental", source="s3://b/k.jsonl")
    assert store.record_progress(late.run_id, 2) is False
    late.status, late.counts = RunStatus.DISPATCHED, {"dispatched_changes": 2}
    assert store.finish_run(late) is True
    assert store.finish_run(late) is False
