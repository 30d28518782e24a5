"""The Pinecone adapter on the real `pinecone` SDK, against a local double of the index's data plane."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from pinecone import Pinecone

from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from catalog_sync.adapters.local.files import FileCatalogSource, LocalRunArtifacts
from catalog_sync.adapters.local.memory_queue import InProcessChangeQueue
from catalog_sync.adapters.local.sqlite_state import SqliteEmbeddingCache, SqliteStateStore
from catalog_sync.adapters.pinecone.index import PineconeIndexError, PineconeVectorIndex
from catalog_sync.adapters.pinecone.limits import MAX_REQUEST_BYTES, UPSERT_BYTES, WRITES, pinecone_rates
from catalog_sync.logic.validation import RecordValidator
from catalog_sync.models.changes import Change, ChangeKind, IndexAction
from catalog_sync.resilience.pacing import Pacer, Rate
from catalog_sync.resilience.retry import RetryPolicy
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


FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.02)


@pytest.fixture
def no_sdk_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK's own backoff (0.25 s and up) only slows these tests down; its retry decisions stay as they are.
    monkeypatch.setattr("pinecone._internal.http_client._retry_sleep", lambda seconds: None)
    # Its retry budget is per host and per process (every local double is 127.0.0.1): earlier tests that made
    # it fail many times would have emptied it. Each test starts with a full one.
    from pinecone._internal import http_client

    http_client._budget_registry._reset()


def writes(double: PineconeDouble) -> list[dict[str, Any]]:
    return [r for r in double.requests if r["path"] in ("/vectors/upsert", "/vectors/update", "/vectors/delete")]


def test_throttling_is_retried_by_the_sdk_and_persistent_errors_raise(no_sdk_sleep: None):
    with PineconeDouble(4) as double:
        index = adapter(double, retry=FAST)
        double.failures.extend([429, 503])
        index.upsert(["a"], random_vectors(1, 4), [change("a")])
        assert "a" in double.vectors("shop")
        assert index.retries == 0  # the SDK's own retries sufficed
        double.failures.extend([500] * 100)
        with pytest.raises(Exception, match=r"500|Server|Service"):
            index.upsert(["b"], random_vectors(1, 4), [change("b")])
        assert "b" not in double.vectors("shop")
        # Bounded: the adapter's 4 attempts, each with at most the SDK's 3 retries.
        assert len(writes(double)) <= 3 + 4 * 4
        assert index.retries == 3


def test_writes_the_sdk_gave_up_on_are_retried_by_the_adapter(no_sdk_sleep: None):
    with PineconeDouble(4) as double:
        index = adapter(double, retry=FAST)
        # The SDK tries 4 times (3 retries) and raises; the adapter tries again, and the SDK 3 times more.
        double.failures.extend([429] * 6)
        index.upsert(["a"], random_vectors(1, 4), [change("a")])
        index.update_metadata([change("a", price=2.0)])
        double.failures.extend([503] * 5)
        index.delete(["a"])
        assert double.vectors("shop") == {}
        assert index.retries == 2
        assert [r["path"] for r in writes(double)].count("/vectors/upsert") == 7
        assert index.requests["upsert"] == index.requests["update"] == index.requests["delete"] == 1


def test_a_refused_update_is_not_retried_and_the_others_are_applied(no_sdk_sleep: None):
    with PineconeDouble(4) as double:
        index = adapter(double, retry=FAST, update_concurrency=1)
        ids = [f"p{i}" for i in range(20)]
        index.upsert(ids, random_vectors(20, 4), [change(i) for i in ids])
        double.failures.append(400)
        before = len(double.requests)
        refused = index.update_metadata([change(i, price=2.0) for i in ids])
        # The first update was refused for its content: sent once, reported with the reason; the other 19 applied.
        assert set(refused) == {"p0"} and "400" in refused["p0"]
        assert len(double.requests) - before == 20
        assert index.retries == 0
        assert {c: v["metadata"].get("price") for c, v in double.vectors("shop").items()} == {
            **dict.fromkeys(ids, 2.0),
            "p0": 1.0,
        }


def test_an_error_not_about_the_content_fails_the_batch_and_stops_the_other_updates(no_sdk_sleep: None):
    with PineconeDouble(4) as double:
        index = adapter(double, retry=FAST, update_concurrency=1)
        ids = [f"p{i}" for i in range(20)]
        index.upsert(ids, random_vectors(20, 4), [change(i) for i in ids])
        double.failures.append(403)  # the key may not write: no retry, and no product is to blame
        before = len(double.requests)
        with pytest.raises(Exception, match="403"):
            index.update_metadata([change(i, price=2.0) for i in ids])
        assert len(double.requests) - before == 1
        assert index.retries == 0


def test_every_write_attempt_is_paced_the_sdks_retries_included(no_sdk_sleep: None):
    pacer = Pacer(pinecone_rates(10, None))
    with PineconeDouble(4) as double:
        index = adapter(double, retry=FAST, pacer=pacer)
        assert index._paced_in_transport
        ids = [f"p{i}" for i in range(25)]
        index.upsert(ids, random_vectors(25, 4), [change(i) for i in ids])
        double.failures.extend([429, 429, 503])
        started = time.monotonic()
        index.update_metadata([change(i, price=2.0) for i in ids])  # 8 threads, one pacer
        elapsed = time.monotonic() - started
        sent = writes(double)
        # Every attempt the double saw went through the pacer: 1 upsert, 25 updates and 3 retried ones.
        assert pacer.taken[WRITES] == len(sent) == 29
        # 10 a second: the 28 after the upsert take at least two more windows, and they arrive spread out (by
        # arrival time, which threads and connections skew: over 0.8 s windows; unpaced, all 28 come at once).
        assert elapsed >= 1.9
        times = [r["at"] for r in sent]
        assert max(sum(1 for u in times if t - 0.8 < u <= t) for t in times) <= 10
        assert {c: v["metadata"]["price"] for c, v in double.vectors("shop").items()} == dict.fromkeys(ids, 2.0)


def test_upserts_are_packed_within_the_share_of_upserted_bytes():
    pacer = Pacer(pinecone_rates(None, 600_000))
    with PineconeDouble(384) as double:
        index = adapter(double, pacer=pacer)
        ids = [f"p{i}" for i in range(300)]
        index.upsert(ids, random_vectors(300, 384), [change(i) for i in ids])
        upserts = [r for r in double.requests if r["path"] == "/vectors/upsert"]
        assert len(upserts) >= 2 and all(r["bytes"] <= 600_000 for r in upserts)
        assert pacer.taken[UPSERT_BYTES] == sum(r["bytes"] for r in upserts)
        assert set(double.vectors("shop")) == set(ids)


class _BareIndex:
    """An index object without the SDK's HTTP transport: the adapter paces each call itself."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def delete(self, ids: list[str], namespace: str) -> None:
        self.calls.append("delete")


def test_an_index_without_the_sdks_transport_is_paced_call_by_call():
    now = [0.0]
    pacer = Pacer({WRITES: Rate(2, 1.0)}, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    bare = _BareIndex()
    index = PineconeVectorIndex(host="https://unused", namespace="shop", metadata_fields=[], index=bare, pacer=pacer)
    assert not index._paced_in_transport
    index.delete([f"p{i}" for i in range(5_000)])  # 5 requests of 1,000 ids, 2 a second
    assert bare.calls == ["delete"] * 5 and now[0] == pytest.approx(2.0)


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


# Encoded ids written out from the README's rules (the digests by `sha256sum`, see tests/unit/test_vector_ids.py).
ENCODED = {
    "café-1": "~cafe-1~a71eef5490ff53947e6817fd7188ef93",
    "商品-42": "~-42~a5121a3a679bc6554fdb9ba38325a45e",
    "🎉": "~~6146299cd54818a0e659eb6ac88e80f6",
    "р1": "~1~27e4bbc8d1a8e39dc5bfe91456918d74",  # Cyrillic er
    "~abc": "~-abc~ae4be1ed9894ba5f9418209b6bb44200",
    "é" * 256: "~" + "e" * 64 + "~57ed0ef12199207a92e3484cdf02cc0d",  # 512 bytes
}
PASSING = ["p1", "P1", "x" * 512]


def test_the_sdk_refuses_non_ascii_ids_before_sending_and_the_double_refuses_what_pinecone_refuses():
    with PineconeDouble(4) as double:
        raw = Pinecone(api_key="test-key").Index(host=double.host)
        with pytest.raises(ValueError, match="ASCII"):
            raw.upsert(vectors=[{"id": "café-1", "values": [1.0, 0, 0, 0]}], namespace="shop")
        assert double.requests == []  # refused in the SDK: nothing was sent
        # What the SDK lets through and the service refuses: an upsert with an id over 512 characters.
        with pytest.raises(Exception, match="400") as refused:
            raw.upsert(vectors=[{"id": "x" * 513, "values": [1.0, 0, 0, 0]}], namespace="shop")
        assert "512" in str(refused.value)
        # Sent without the SDK, a non-ASCII id gets the service's 400 too.
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            f"{double.host}/vectors/upsert",
            data=orjson.dumps({"vectors": [{"id": "café-1", "values": [1.0, 0, 0, 0]}], "namespace": "shop"}),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request)
        assert answer.value.code == 400 and double.vectors("shop") == {}


def test_every_id_the_validator_accepts_is_written_under_its_vector_id_and_read_back_as_itself():
    ids = [*ENCODED, *PASSING]
    with PineconeDouble(4) as double:
        index = adapter(double)
        assert index.upsert(ids, random_vectors(len(ids), 4), [change(i) for i in ids]) == {}
        stored = double.vectors("shop")
        assert set(stored) == {*ENCODED.values(), *PASSING}
        for product_id, vector_id in ENCODED.items():
            assert stored[vector_id]["metadata"]["_product_id"] == product_id
        assert all("_product_id" not in stored[i]["metadata"] for i in PASSING)
        # Reads give product ids back, without the reserved keys.
        assert index.ids() == set(ids)
        exported = {e.id: e for e in index.export()}
        assert set(exported) == set(ids) and all("_product_id" not in e.metadata for e in exported.values())
        assert exported["café-1"].metadata == change("café-1").metadata
        target = np.asarray(stored[ENCODED["р1"]]["values"], dtype=np.float32)
        assert index.query(target, 1)[0].id == "р1"
        # Metadata updates, in place and by rewrite, and deletes reach the same vectors.
        assert index.update_metadata([change("café-1", price=7.0), change("🎉", availability=None)]) == {}
        assert stored[ENCODED["café-1"]]["metadata"]["price"] == 7.0
        assert "availability" not in stored[ENCODED["🎉"]]["metadata"]
        assert stored[ENCODED["🎉"]]["metadata"]["_product_id"] == "🎉"
        assert index.delete(["商品-42", "P1"]) == {}
        assert index.ids() == set(ids) - {"商品-42", "P1"}


def test_a_vector_an_earlier_version_wrote_under_a_tilde_id_is_replaced():
    with PineconeDouble(4) as double:
        raw = Pinecone(api_key="test-key").Index(host=double.host)
        raw.upsert(vectors=[{"id": "~abc", "values": [1.0, 0, 0, 0], "metadata": {"title": "old"}}], namespace="shop")
        index = adapter(double)
        index.upsert(["~abc"], random_vectors(1, 4), [change("~abc")])
        assert set(double.vectors("shop")) == {ENCODED["~abc"]}
        raw.upsert(vectors=[{"id": "~abc", "values": [1.0, 0, 0, 0]}], namespace="shop")
        index.delete(["~abc"])
        assert double.vectors("shop") == {}


def test_a_vector_pinecone_refuses_is_found_in_its_batch_and_the_others_are_written(
    monkeypatch: pytest.MonkeyPatch,
):
    # Let oversized metadata through the adapter's own check, so that the service is the one to refuse it: a 400
    # for the whole request, which does not say which vector.
    monkeypatch.setattr("catalog_sync.adapters.pinecone.index.MAX_METADATA_BYTES", 10**6)
    with PineconeDouble(4) as double:
        index = adapter(double)
        ids = [f"p{i:03d}" for i in range(1000)]
        changes = [change(i) for i in ids]
        changes[417] = changes[417].model_copy(update={"metadata": {"blob": "x" * 50_000}})
        refused = index.upsert(ids, random_vectors(1000, 4), changes)
        assert list(refused) == ["p417"] and "400" in refused["p417"] and "metadata too large" in refused["p417"]
        assert set(double.vectors("shop")) == set(ids) - {"p417"}
        upserts = [r for r in double.requests if r["path"] == "/vectors/upsert"]
        assert len(upserts) == 21  # the batch, then 2 per halving down to the one vector


def test_what_the_sdk_or_the_adapter_refuses_before_sending_is_refused_alone():
    with PineconeDouble(4) as double:
        index = adapter(double)
        nested = change("b").model_copy(update={"metadata": {"title": {"nested": "object"}}})
        huge = change("c").model_copy(update={"metadata": {"title": "x" * 50_000}})
        refused = index.upsert(["a", "b", "c", "d"], random_vectors(4, 4), [change("a"), nested, huge, change("d")])
        assert set(refused) == {"b", "c"}
        assert "SDK refused" in refused["b"] and "over Pinecone's 40 KB" in refused["c"]
        assert set(double.vectors("shop")) == {"a", "d"}
        assert "/vectors/upsert" in [r["path"] for r in double.requests]
