"""The state store contract, held by both stores: SQLite (embedded default) and DynamoDB (under moto); and by the
services' in-memory fake (tests/doubles/memory_state.py), which must be as faithful."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
from catalog_sync.adapters.local.sqlite_state import SqliteEmbeddingCache, SqliteStateStore
from catalog_sync.logic.snapshot import FingerprintUpdate
from catalog_sync.models.changes import RunStatus, StateCounts
from catalog_sync.models.config import EmbedderKind
from catalog_sync.models.index import IndexEmbedder, IndexSettings
from tests.doubles.aws_resources import TABLE
from tests.doubles.state_stores import counts_consumers, delete, moto_state_table, record, upsert


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


def test_the_index_settings_are_recorded_whole_and_survive_reopening(make_store):
    store = make_store()
    assert store.index_settings() is None  # never recorded: no complete sync yet
    hashing = IndexSettings(
        embedding_model="catalog-sync/hashing-v2-256",
        text_template="template-1",
        embedder=IndexEmbedder(kind=EmbedderKind.HASHING, settings={"hashing_dimensions": 256}, dimension=256),
    )
    store.record_index_settings(hashing)
    assert make_store().index_settings() == hashing
    snapshot = make_store().snapshot()
    assert (snapshot.embedding_model, snapshot.text_template) == ("catalog-sync/hashing-v2-256", "template-1")
    # A later record replaces the whole of the earlier one, settings left unset (None) included...
    openai = IndexSettings(
        embedding_model="openai/text-embedding-3-small@1536",
        text_template="template-2",
        embedder=IndexEmbedder(
            kind=EmbedderKind.OPENAI,
            settings={"openai_model": "text-embedding-3-small", "openai_dimensions": None},
            dimension=1536,
        ),
    )
    store.record_index_settings(openai)
    assert make_store().index_settings() == openai
    # ...and one without an embedder leaves none of the earlier one behind.
    bare = IndexSettings(embedding_model="model", text_template="template-3")
    store.record_index_settings(bare)
    assert make_store().index_settings() == bare
    # An index part way re-embedded with another embedder is recorded as not settled, and read back so.
    unsettled = openai.model_copy(update={"settled": False})
    store.record_index_settings(unsettled)
    assert make_store().index_settings() == unsettled
    store.record_index_settings(openai)
    assert make_store().index_settings().settled is True


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
    if not counts_consumers(store):
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


def test_a_message_delivered_twice_is_counted_once(make_store):
    store = make_store()
    if not counts_consumers(store):
        pytest.skip("the embedded default applies its changes within the run")
    run = store.begin_run(mode="incremental", source="s3://b/k.jsonl")
    run.status, run.counts = RunStatus.DISPATCHED, {"dispatched_changes": 5}
    store.finish_run(run)
    assert store.record_progress(run.run_id, 3, {"upserted": 3}, message_id=f"{run.run_id}-n-000001") is False
    # The same message again (SQS delivers at least once; a redrive sends it again): not counted twice, so the
    # run does not complete before its other message was handled.
    assert store.record_progress(run.run_id, 3, {"upserted": 3}, message_id=f"{run.run_id}-n-000001") is False
    assert store.runs()[0].counts["applied_changes"] == 3
    assert store.record_progress(run.run_id, 2, message_id=f"{run.run_id}-p-000001") is True
    done = store.runs()[0]
    assert done.status is RunStatus.SUCCEEDED and done.counts["applied_changes"] == 5
    assert done.counts["applied_upserted"] == 3
    # A message naming no run adds no row (the runs stay readable).
    assert store.record_progress("no-such-run", 1, message_id="no-such-run-n-000001") is False
    assert store.record_progress("no-such-run", 1) is False
    assert [r.run_id for r in store.runs()] == [run.run_id]


def test_the_newest_catalog_object_is_claimed_and_an_older_one_refused(make_store):
    store = make_store()
    assert store.newest_source() is None
    assert store.claim_source(modified=100.0, key="catalogs/shop/a.jsonl", version_id="v1") is True
    assert store.claim_source(modified=200.0, key="catalogs/shop/b.jsonl", version_id=None) is True
    assert store.newest_source() == (200.0, "catalogs/shop/b.jsonl", None)
    # A late (or retried) event for the older object: refused; the same second: not ordered, let through.
    assert store.claim_source(modified=100.0, key="catalogs/shop/a.jsonl", version_id="v1") is False
    assert store.claim_source(modified=200.0, key="catalogs/shop/c.jsonl", version_id="v3") is True
    assert store.newest_source() == (200.0, "catalogs/shop/c.jsonl", "v3")


def test_a_claim_keeps_the_sequencer_known_and_survives_reopening(make_store):
    store = make_store()
    assert store.claim_source(modified=100.0, key="catalogs/shop/a.jsonl", version_id="v2", sequencer="0002")
    # The same key in the same second, written earlier (a smaller sequencer): refused.
    assert not store.claim_source(modified=100.5, key="catalogs/shop/a.jsonl", version_id="v1", sequencer="0001")
    # A schedule re-reading the claimed version (no sequencer) may; the sequencer stays known, so the stale event
    # is still refused after it.
    assert store.claim_source(modified=100.0, key="catalogs/shop/a.jsonl", version_id="v2")
    assert not make_store().claim_source(modified=100.0, key="catalogs/shop/a.jsonl", version_id="v1", sequencer="0001")
    assert make_store().newest_source() == (100.0, "catalogs/shop/a.jsonl", "v2")


def test_a_run_is_read_back_as_it_was_saved(make_store):
    store = make_store()
    run = store.begin_run(mode="full", source="a.jsonl")
    assert store.get_run(run.run_id) == run
    run.status, run.counts, run.timings = RunStatus.FAILED, {"added": 2}, {"diff": 0.5}
    run.finished_at, run.message = run.started_at, "the catalog could not be read"
    store.finish_run(run)
    assert make_store().get_run(run.run_id) == run
    with pytest.raises(KeyError):
        store.get_run("20990101T000000Z-00001-ffffff")


def test_counts_in_one_pass_agree_with_the_single_counts(make_store):
    store = make_store()
    assert store.counts() == StateCounts()
    record(store, [upsert(pid, 1) for pid in "ABCD"])
    store.commit([upsert(pid, 1) for pid in "ABC"])
    # B changed again (committed at an older version), C deleted from the catalog, Z an orphan in the index.
    record(store, [upsert("B", 2, text_hash="t2"), delete("C", 2), delete("Z", 2)])
    counts = store.counts()
    assert counts == StateCounts(products=3, indexed=4, pending=4, deleting=2, synced=1)
    assert (counts.products, counts.indexed, counts.pending) == (
        store.product_count(),
        store.indexed_count(),
        store.pending_count(),
    )
    store.commit([upsert("B", 2, text_hash="t2"), delete("C", 2), delete("Z", 2), upsert("D", 1)])
    assert store.counts() == StateCounts(products=3, indexed=3, pending=0, deleting=0, synced=3)


def test_a_run_is_found_by_its_id(make_store):
    store = make_store()
    first = store.begin_run(mode="incremental", source="a.jsonl")
    first.status, first.counts = RunStatus.SUCCEEDED, {"added": 2, "applied_upserted": 2}
    store.finish_run(first)
    second = store.begin_run(mode="full", source="b.jsonl")
    found = store.find_run(first.run_id)
    assert found == store.runs()[1]
    assert found is not None and found.counts == {"added": 2, "applied_upserted": 2}
    assert store.find_run(second.run_id) == store.runs()[0]
    assert store.find_run("20990101T000000Z-00001-ffffff") is None
    assert make_store().find_run(first.run_id) == found  # from the stored state, not from memory


def test_consumers_add_what_they_applied_to_a_dispatched_run(make_store):
    store = make_store()
    run = store.begin_run(mode="incremental", source="s3://b/k.jsonl")
    run.status, run.counts = RunStatus.DISPATCHED, {"dispatched_changes": 5, "added": 4, "deleted": 1}
    store.finish_run(run)
    if not counts_consumers(store):
        # The embedded default applies a run's changes within it and counts them itself: nothing to add.
        assert store.record_progress(run.run_id, 5, {"embedded": 4}) is False
        assert "applied_embedded" not in store.runs()[0].counts
        return
    assert store.record_progress(run.run_id, 3, {"embedded": 2, "cache_hits": 1, "upserted": 3, "repairs": 0}) is False
    assert store.runs()[0].counts["applied_embedded"] == 2
    assert store.record_progress(run.run_id, 2, {"embedded": 0, "cache_hits": 1, "upserted": 1, "deleted": 1}) is True
    finished = store.runs()[0]
    assert finished.status is RunStatus.SUCCEEDED
    assert {name: count for name, count in finished.counts.items() if name.startswith("applied_")} == {
        "applied_changes": 5,
        "applied_embedded": 2,
        "applied_cache_hits": 2,
        "applied_upserted": 4,
        "applied_deleted": 1,
        "applied_repairs": 0,
    }
    assert finished.counts["added"] == 4  # the diff's own counts stay
    assert store.find_run(run.run_id) == finished
    with pytest.raises(ValueError, match="not a counter name"):
        store.record_progress(run.run_id, 0, {"no such#name": 1})


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with moto_state_table(monkeypatch) as client:
        yield client


def test_dynamodb_finds_a_runs_catalog_and_lists_the_catalogs(dynamodb: Any, monkeypatch: pytest.MonkeyPatch):
    from catalog_sync.adapters.aws import dynamodb_state
    from catalog_sync.adapters.aws.dynamodb_state import runs

    # Two catalogs' runs that start in the same second at the same sequence number, and draw the same token.
    tokens = iter(["aaaaaa", "aaaaaa", "bbbbbb"])
    monkeypatch.setattr(runs.secrets, "token_hex", lambda n: next(tokens))
    monkeypatch.setattr(runs, "new_run_id", lambda started, seq, token: f"20250101T000000Z-{seq}-{token}")
    shop = DynamoStateStore(dynamodb, table=TABLE, catalog="shop", shards=4, concurrency=1)
    outlet = DynamoStateStore(dynamodb, table=TABLE, catalog="outlet", shards=8, concurrency=1)
    shop_run = shop.begin_run(mode="incremental", source="a")
    outlet_run = outlet.begin_run(mode="incremental", source="b")
    assert (shop_run.seq, outlet_run.seq) == (1, 1)
    assert (shop_run.run_id, outlet_run.run_id) == ("20250101T000000Z-1-aaaaaa", "20250101T000000Z-1-bbbbbb")
    assert dynamodb_state.catalog_of_run(dynamodb, table=TABLE, run_id=shop_run.run_id) == "shop"
    assert dynamodb_state.catalog_of_run(dynamodb, table=TABLE, run_id=outlet_run.run_id) == "outlet"
    assert dynamodb_state.catalog_of_run(dynamodb, table=TABLE, run_id="20250101T000000Z-1-cccccc") is None
    assert dynamodb_state.registered_catalogs(dynamodb, table=TABLE) == {"outlet": 8, "shop": 4}
    assert outlet.find_run(outlet_run.run_id) is not None and shop.find_run(outlet_run.run_id) is None


def test_sqlite_finds_a_runs_catalog_among_the_local_catalogs(tmp_path: Path):
    from catalog_sync.adapters.local.sqlite_state import catalog_of_run, local_catalogs

    stores = {name: SqliteStateStore(tmp_path / name / "state.sqlite", name) for name in ("shop", "outlet")}
    (tmp_path / "not-a-catalog").mkdir()
    runs = {name: store.begin_run(mode="incremental", source="x") for name, store in stores.items()}
    assert runs["shop"].run_id != runs["outlet"].run_id
    assert local_catalogs(tmp_path) == ["outlet", "shop"]
    assert local_catalogs(tmp_path / "missing") == []
    for name, run in runs.items():
        assert catalog_of_run(tmp_path, run.run_id) == name
    assert catalog_of_run(tmp_path, "20990101T000000Z-00001-ffffff") is None
    for store in stores.values():
        store.close()
