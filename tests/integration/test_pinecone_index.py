"""The Pinecone adapter on the real `pinecone` SDK, against a local double of the index's data plane."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from pinecone import Pinecone

from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from catalog_sync.adapters.local.files import FileCatalogSource, LocalRunArtifacts
from catalog_sync.adapters.local.memory_queue import InProcessChangeQueue
from catalog_sync.adapters.local.sqlite_state import SqliteEmbeddingCache, SqliteStateStore
from catalog_sync.adapters.pinecone.index import MAX_REQUEST_BYTES, PineconeIndexError, PineconeVectorIndex
from catalog_sync.logic.validation import RecordValidator
from catalog_sync.models.changes import Change, ChangeKind, IndexAction
from catalog_sync.services.sync import SyncService
from tests.conftest import make_config, product, write_jsonl
from tests.doubles.pinecone_server import PineconeDouble

FIELDS = ["title", "price", "availability", "stock", "tags"]


def change(pid: str, text: str | None = None, **metadata: object) -> Change:
    full = {"title": f"T {pid}", "price": 1.0, "availability": "in_stock", "stock": 3, "tags": ["a"]}
    full.update(metadata)
    return Change(
        product_id=pid,
        kind=ChangeKind.METADATA_ONLY if metadata else ChangeKind.ADDED,
        action=IndexAction.UPDATE_METADATA if metadata else IndexAction.UPSERT,
        fields_changed=tuple(metadata),
        text=text or f"text {pid}",
        text_hash=f"h{pid}",
        metadata={key: value for key, value in full.items() if value is not None},
    )


def adapter(double: PineconeDouble, **kwargs: object) -> PineconeVectorIndex:
    index = Pinecone(api_key="test-key").Index(host=double.host)
    return PineconeVectorIndex(host=double.host, namespace="shop", metadata_fields=FIELDS, index=index, **kwargs)


def random_vectors(n: int, dimension: int) -> np.ndarray:
    vectors = np.random.default_rng(1).standard_normal((n, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize(("dimension", "n"), [(384, 2500), (1536, 400)])
def test_upserts_are_packed_within_1000_vectors_and_2_mb(dimension: int, n: int):
    with PineconeDouble(dimension) as double:
        index = adapter(double)
        ids = [f"p{i}" for i in range(n)]
        vectors = random_vectors(n, dimension)
        index.upsert(ids, vectors, [change(i) for i in ids])
        upserts = [r for r in double.requests if r["path"] == "/vectors/upsert"]
        assert all(len(r["body"]["vectors"]) <= 1000 and r["bytes"] <= MAX_REQUEST_BYTES for r in upserts)
        # As few requests as the limits allow: every request but the last is nearly full.
        assert len(upserts) == index.requests["upsert"]
        assert all(r["bytes"] > MAX_REQUEST_BYTES * 0.9 or len(r["body"]["vectors"]) == 1000 for r in upserts[:-1])
        stored = double.vectors("shop")
        assert set(stored) == set(ids)
        np.testing.assert_allclose(stored["p7"]["values"], vectors[7], rtol=1e-6)
        assert stored["p7"]["metadata"] == {**change("p7").metadata, "_text_hash": "hp7"}


def test_metadata_only_changes_update_in_place_and_removed_fields_rewrite(tmp_path: Path):
    with PineconeDouble(4) as double:
        index = adapter(double)
        vectors = random_vectors(3, 4)
        index.upsert(["a", "b", "c"], vectors, [change("a"), change("b"), change("c")])
        before = len(double.requests)
        index.update_metadata([change("a", price=9.5), change("b", availability=None)])
        calls = [r["path"] for r in double.requests[before:]]
        assert calls.count("/vectors/update") == 1  # a: set_metadata in place
        assert "/vectors/fetch" in calls and calls.count("/vectors/upsert") == 1  # b: a field went away
        stored = double.vectors("shop")
        assert stored["a"]["metadata"]["price"] == 9.5 and stored["a"]["metadata"]["_text_hash"] == "ha"
        assert "availability" not in stored["b"]["metadata"]
        np.testing.assert_allclose(stored["b"]["values"], vectors[1], rtol=1e-6)


def test_deletes_are_chunked_and_lists_paginate():
    with PineconeDouble(4) as double:
        index = adapter(double)
        ids = [f"p{i:04d}" for i in range(2500)]
        index.upsert(ids, random_vectors(2500, 4), [change(i) for i in ids])
        assert index.count() == 2500
        assert index.ids() == set(ids)
        assert index.requests["list"] > 1
        index.delete(ids[:2100])
        deletes = [r for r in double.requests if r["path"] == "/vectors/delete"]
        assert [len(r["body"]["ids"]) for r in deletes] == [1000, 1000, 100]
        assert index.count() == 400


def test_query_filters_and_export():
    with PineconeDouble(4) as double:
        index = adapter(double)
        vectors = np.stack([np.array([1, 0, 0, 0]), np.array([0.9, 0.1, 0, 0]), np.array([0, 1, 0, 0])]).astype(
            np.float32
        )
        index.upsert(["a", "b", "c"], vectors, [change("a"), change("b", availability="sold_out"), change("c")])
        top = index.query(np.array([1, 0, 0, 0], dtype=np.float32), 2)
        assert [m.id for m in top] == ["a", "b"] and top[0].text_hash == "ha" and "_text_hash" not in top[0].metadata
        assert [m.id for m in index.query(vectors[0], 3, {"availability": "sold_out"})] == ["b"]
        assert {e.id: e.text_hash for e in index.export()} == {"a": "ha", "b": "hb", "c": "hc"}


def test_throttling_is_retried_by_the_sdk_and_persistent_errors_raise():
    with PineconeDouble(4) as double:
        index = adapter(double)
        double.failures.extend([429, 503])
        index.upsert(["a"], random_vectors(1, 4), [change("a")])
        assert "a" in double.vectors("shop")
        double.failures.extend([500] * 10)
        with pytest.raises(Exception, match=r"500|Server|Service"):
            index.upsert(["b"], random_vectors(1, 4), [change("b")])
        assert "b" not in double.vectors("shop")


def test_the_sync_service_keeps_pinecone_equal_to_the_catalog(tmp_path: Path):
    config = make_config()
    validator = RecordValidator(config)
    v1 = [product(str(i)) for i in range(40)]
    # v2: 6 of 40 deleted (under the guard's 20%), the rest with new prices or new descriptions.
    v2 = [product(str(i), price=99.0) if i % 4 == 0 else product(str(i), description=f"new {i}") for i in range(34)]
    with PineconeDouble(384) as double:
        service = SyncService(
            config=config,
            state=SqliteStateStore(tmp_path / "state.sqlite", config.name),
            index=adapter(double, store_text=True),
            embedder=HashingEmbedder(),
            queue=InProcessChangeQueue(),
            artifacts=LocalRunArtifacts(tmp_path),
            cache=SqliteEmbeddingCache(tmp_path / "cache.sqlite"),
            batch_size=16,
        )
        for records in (v1, v2):
            report = service.sync(FileCatalogSource(write_jsonl(tmp_path / "c.jsonl", records)))
            assert not report.failed and not report.held and report.pending_after == 0
            stored = double.vectors("shop")
            assert set(stored) == {r["sku"] for r in records}
            for record in records:
                valid = validator.validate(record["sku"], record)
                metadata = dict(stored[record["sku"]]["metadata"])
                assert metadata.pop("_text") == valid.text
                metadata.pop("_text_hash")
                assert metadata == valid.metadata


def test_metadata_stays_within_40_kb_and_updates_of_missing_vectors_fail():
    with PineconeDouble(4) as double:
        index = adapter(double, store_text=True)
        long_text = "caf\u00e9 " * 20_000  # about 120 KB of text
        index.upsert(["a", "b"], random_vectors(2, 4), [change("a", text=long_text), change("b")])
        stored = double.vectors("shop")
        assert set(stored) == {"a", "b"}  # the long text did not sink the request
        assert long_text.startswith(stored["a"]["metadata"]["_text"])
        assert len(orjson.dumps(stored["a"]["metadata"])) <= 40 * 1024
        with pytest.raises(PineconeIndexError, match="not in the index"):
            index.update_metadata([change("ghost", price=2.0)])


def test_an_optional_field_absent_before_and_after_is_still_updated_in_place():
    with PineconeDouble(4) as double:
        index = adapter(double)
        index.upsert(["a"], random_vectors(1, 4), [change("a", tags=None)])
        before = len(double.requests)
        # tags was absent before and is absent now: only price changed.
        index.update_metadata([change("a", tags=None, price=5.0).model_copy(update={"fields_changed": ("price",)})])
        assert [r["path"] for r in double.requests[before:]] == ["/vectors/update"]
        assert double.vectors("shop")["a"]["metadata"]["price"] == 5.0
