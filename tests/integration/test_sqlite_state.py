from pathlib import Path

import numpy as np

from catalog_sync.adapters.local.sqlite_state import SqliteEmbeddingCache, SqliteStateStore
from catalog_sync.models.changes import Change, ChangeKind, IndexAction, RunStatus


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


def record(store: SqliteStateStore, changes: list[Change]) -> None:
    store.record_desired(changes, [])
    store.record_index_settings(embedding_model="model", text_template="tpl")


def test_desired_then_commit(tmp_path: Path):
    store = SqliteStateStore(tmp_path / "s.sqlite", "shop")
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


def test_a_stale_change_is_not_committed(tmp_path: Path):
    store = SqliteStateStore(tmp_path / "s.sqlite", "shop")
    record(store, [upsert("A", 1)])
    record(store, [upsert("A", 2, text_hash="t2")])
    assert store.commit([upsert("A", 1)]) == 0  # version 1 is no longer desired
    assert store.pending_count() == 1
    assert store.desired_versions(["A", "missing"]) == {"A": 2}
    assert store.commit([upsert("A", 2, text_hash="t2")]) == 1
    assert store.pending_count() == 0


def test_delete_is_pending_until_committed(tmp_path: Path):
    store = SqliteStateStore(tmp_path / "s.sqlite", "shop")
    record(store, [upsert("A", 1)])
    store.commit([upsert("A", 1)])
    record(store, [delete("A", 2)])
    snapshot = store.snapshot()
    assert snapshot.pending_deletes == {"A"} and snapshot.live_ids == set()
    assert store.commit([delete("A", 2)]) == 1
    assert store.product_count() == 0 and store.snapshot().pending_deletes == set()


def test_uncommit_all_makes_everything_pending(tmp_path: Path):
    store = SqliteStateStore(tmp_path / "s.sqlite", "shop")
    record(store, [upsert("A", 1), upsert("B", 1)])
    store.commit([upsert("A", 1), upsert("B", 1)])
    assert store.uncommit_all() == 2
    assert store.pending_count() == 2 and store.indexed_count() == 0


def test_runs_are_recorded_in_order(tmp_path: Path):
    store = SqliteStateStore(tmp_path / "s.sqlite", "shop")
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


def test_state_survives_reopening(tmp_path: Path):
    store = SqliteStateStore(tmp_path / "s.sqlite", "shop")
    record(store, [upsert("A", 1)])
    store.close()
    assert SqliteStateStore(tmp_path / "s.sqlite", "shop").pending_count() == 1


def test_embedding_cache_round_trip(tmp_path: Path):
    cache = SqliteEmbeddingCache(tmp_path / "cache.sqlite")
    vector = np.arange(4, dtype=np.float32)
    cache.put_many({"k1": vector}, model_id="m")
    found = cache.get_many(["k1", "k2"])
    assert list(found) == ["k1"]
    np.testing.assert_array_equal(found["k1"], vector)
