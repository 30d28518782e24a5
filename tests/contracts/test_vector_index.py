"""The VectorIndex port's contract, run on every adapter: LanceDB in a temporary directory, and Pinecone through
the real `pinecone` SDK against the local double of its data plane. A new target joins with one fixture param.

The index takes and gives product ids (whatever vector ids it keeps), writes what it does not refuse, returns
what it refuses with a reason, keeps a vector through a metadata-only update, and honours the capabilities it
declares: a batch at each declared maximum is written, and every id in its alphabet up to its length limit (and
every other id, encoded) comes back as it went in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from pinecone import Pinecone

from catalog_sync.adapters.local.lance_index import LanceVectorIndex
from catalog_sync.adapters.pinecone.index import PineconeVectorIndex
from catalog_sync.models.changes import Change, ChangeKind, IndexAction
from catalog_sync.models.config import FieldType
from catalog_sync.models.index import IndexCapabilities
from catalog_sync.ports import VectorIndex
from tests.conftest import make_config
from tests.doubles.memory import MemoryVectorIndex
from tests.doubles.pinecone_server import PineconeDouble

DIMENSION = 8
METADATA = {
    "title": "string",
    "price": "number",
    "stock": "integer",
    "active": "boolean",
    "tags": "string_list",
}
# The size an unlimited target is still asked to take in one call.
UNLIMITED_BATCH = 2_500


@pytest.fixture(params=["lancedb", "pinecone", "memory"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    config = make_config(metadata=METADATA)
    if request.param == "memory":  # the services' fake (tests/doubles/memory.py), held to the same contract
        yield MemoryVectorIndex()
    elif request.param == "lancedb":
        yield LanceVectorIndex(tmp_path / "index.lance", config, DIMENSION)
    else:
        with PineconeDouble(DIMENSION) as double:
            sdk_index = Pinecone(api_key="test-key").Index(host=double.host)
            yield PineconeVectorIndex(
                host=double.host, namespace="shop", metadata_fields=list(METADATA), index=sdk_index
            )


def unit_vectors(n: int, seed: int = 1) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def metadata(pid: str, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"title": f"T {pid}", "price": 9.5, "stock": 3, "active": True, "tags": ["a", "b"]}
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def upsert(pid: str, **overrides: Any) -> Change:
    return Change(
        product_id=pid,
        kind=ChangeKind.ADDED,
        action=IndexAction.UPSERT,
        text=f"text of {pid}",
        text_hash=f"h-{pid}",
        metadata=metadata(pid, **overrides),
    )


def metadata_update(pid: str, **overrides: Any) -> Change:
    return Change(
        product_id=pid,
        kind=ChangeKind.METADATA_ONLY,
        action=IndexAction.UPDATE_METADATA,
        fields_changed=tuple(overrides),
        text=f"text of {pid}",
        text_hash=f"h-{pid}",
        metadata=metadata(pid, **overrides),
    )


def write(index: VectorIndex, changes: list[Change], seed: int = 1) -> np.ndarray:
    vectors = unit_vectors(len(changes), seed)
    assert not index.upsert([c.product_id for c in changes], vectors, changes)
    return vectors


def exported(index: VectorIndex) -> dict[str, Any]:
    return {entry.id: entry for entry in index.export()}


def test_capabilities_are_declared(index: VectorIndex):
    capabilities = index.capabilities
    assert isinstance(capabilities, IndexCapabilities)
    assert capabilities.metadata.value_types <= set(FieldType)
    if capabilities.metadata_update_batch:
        assert capabilities.metadata_update


def test_upserted_products_come_back_with_their_metadata(index: VectorIndex):
    changes = [upsert(f"p{i}") for i in range(5)]
    write(index, changes)
    assert index.ids() == {c.product_id for c in changes}
    assert index.count() == 5
    entries = exported(index)
    for change in changes:
        assert entries[change.product_id].metadata == change.metadata
        assert entries[change.product_id].text_hash == change.text_hash


def test_an_upsert_replaces_the_product(index: VectorIndex):
    write(index, [upsert("p1")])
    write(index, [upsert("p1", price=12.0, tags=["c"])], seed=2)
    assert index.count() == 1
    assert exported(index)["p1"].metadata == metadata("p1", price=12.0, tags=["c"])


def test_every_declared_value_type_round_trips(index: VectorIndex):
    samples = {
        FieldType.STRING: ("title", "Ünïcode ✓"),
        FieldType.NUMBER: ("price", 0.125),
        FieldType.INTEGER: ("stock", -7),
        FieldType.BOOLEAN: ("active", False),
        FieldType.STRING_LIST: ("tags", ["x", "y y"]),
    }
    declared = index.capabilities.metadata.value_types
    overrides = {name: value for kind, (name, value) in samples.items() if kind in declared}
    assert overrides
    write(index, [upsert("typed", **overrides)])
    assert exported(index)["typed"].metadata == metadata("typed", **overrides)


def test_deleted_products_are_gone_and_absent_ones_are_no_error(index: VectorIndex):
    write(index, [upsert(f"p{i}") for i in range(4)])
    assert not index.delete(["p1", "p3", "never-there"])
    assert index.ids() == {"p0", "p2"}
    assert index.count() == 2


def test_a_metadata_only_update_keeps_the_vector(index: VectorIndex):
    vectors = write(index, [upsert("p1"), upsert("p2")])
    assert not index.update_metadata([metadata_update("p1", price=1.0, tags=["z"])])
    assert exported(index)["p1"].metadata == metadata("p1", price=1.0, tags=["z"])
    best = index.query(vectors[0], 1)[0]
    assert best.id == "p1" and best.score == pytest.approx(1.0, abs=1e-4)
    assert best.metadata == metadata("p1", price=1.0, tags=["z"])


def test_a_metadata_update_may_remove_a_field(index: VectorIndex):
    # Where the target cannot unset a field in place, the adapter re-writes the product from its stored vector.
    vectors = write(index, [upsert("p1")])
    assert not index.update_metadata([metadata_update("p1", tags=None)])
    assert exported(index)["p1"].metadata == metadata("p1", tags=None)
    assert index.query(vectors[0], 1)[0].score == pytest.approx(1.0, abs=1e-4)


def test_a_metadata_update_of_a_product_not_in_the_index_fails_the_batch(index: VectorIndex):
    write(index, [upsert("p1")])
    with pytest.raises(Exception, match="not in the index"):
        index.update_metadata([metadata_update("p1", price=2.0), metadata_update("ghost", price=2.0)])


def test_query_ranks_by_similarity_and_filters_on_metadata(index: VectorIndex):
    changes = [upsert(f"p{i}", title="even" if i % 2 == 0 else "odd") for i in range(6)]
    vectors = write(index, changes)
    assert [entry.id for entry in index.query(vectors[3], 1)] == ["p3"]
    filtered = index.query(vectors[3], 6, {"title": "even"})
    assert {entry.id for entry in filtered} == {"p0", "p2", "p4"}


def test_a_batch_at_each_declared_maximum_is_written(index: VectorIndex):
    capabilities = index.capabilities
    upserts = capabilities.max_upsert_batch or UNLIMITED_BATCH
    # One more than the maximum too: the adapter packs its requests itself.
    changes = [upsert(f"p{i}") for i in range(upserts + 1)]
    write(index, changes)
    assert index.count() == upserts + 1
    updates = [metadata_update(f"p{i}", price=2.5) for i in range(capabilities.max_metadata_update_batch or 100)]
    assert not index.update_metadata(updates)
    assert exported(index)["p0"].metadata["price"] == 2.5
    deletes = capabilities.max_delete_batch or UNLIMITED_BATCH
    assert not index.delete([c.product_id for c in changes[:deletes]])
    assert index.ids() == {c.product_id for c in changes[deletes:]}


def alphabet_ids(index: VectorIndex) -> list[str]:
    """Ids that use the whole declared alphabet, at and near the declared length limit."""
    rules = index.capabilities.vector_ids
    characters = "".join(chr(code) for code in range(0x20, 0x7F)) if rules.ascii_only else "aé中 🙂'\"\\%_*?\t,;()[]{}~"
    longest = rules.max_bytes or 2_000
    filler = "x" if rules.ascii_only else "é"
    return [
        characters.replace("~", "") + "~",  # a `~` inside an id is an ordinary character
        " leading and trailing spaces ",
        "x" * longest if rules.ascii_only else filler * (longest // 2),
        "1",
    ]


def other_ids(index: VectorIndex) -> list[str]:
    """Ids outside the declared rules (or, where there are none, unusual ones): they round-trip too."""
    rules = index.capabilities.vector_ids
    over = (rules.max_bytes or 2_000) + 1
    return ["~begins-with-tilde", "caf\u00e9-1", "р1", "中文-🙂", "x" * over, "tab\there", "quote'and\"double"]


@pytest.mark.parametrize("ids", [alphabet_ids, other_ids], ids=["in-the-alphabet", "outside-it"])
def test_product_ids_round_trip(index: VectorIndex, ids: Any):
    product_ids = ids(index)
    changes = [upsert(pid) for pid in product_ids]
    vectors = write(index, changes)
    assert index.ids() == set(product_ids)
    assert set(exported(index)) == set(product_ids)
    for pid, vector in zip(product_ids, vectors, strict=True):
        assert index.query(vector, 1)[0].id == pid
    assert not index.update_metadata([metadata_update(pid, price=3.0) for pid in product_ids])
    assert {entry.metadata["price"] for entry in index.export()} == {3.0}
    assert not index.delete(product_ids)
    assert index.count() == 0


def test_metadata_within_the_declared_limit_is_written_and_over_it_refused(index: VectorIndex):
    limit = index.capabilities.metadata.max_bytes
    if limit is None:
        big = "x" * 200_000  # no declared limit: a large value is taken
        write(index, [upsert("big", title=big)])
        assert exported(index)["big"].metadata["title"] == big
        return
    # Room for catalog-sync's own keys, as the config's default budget leaves (models/config.py).
    fits = "x" * (limit - 256 - len(orjson.dumps(metadata("fits", title=""))))
    too_big = "x" * (limit + 1)
    changes = [upsert("fits", title=fits), upsert("too-big", title=too_big), upsert("small")]
    refused = index.upsert([c.product_id for c in changes], unit_vectors(3), changes)
    assert set(refused or {}) == {"too-big"} and all(refused.values())
    assert index.ids() == {"fits", "small"}
    assert exported(index)["fits"].metadata["title"] == fits
