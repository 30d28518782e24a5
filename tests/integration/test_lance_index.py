from pathlib import Path

import numpy as np
import pytest

from catalog_sync.adapters.local.lance_index import LanceVectorIndex, LocalIndexError, NoLocalIndex
from catalog_sync.models.changes import Change, ChangeKind, IndexAction
from tests.conftest import make_config

DIM = 4


def change(pid: str, *, text: str = "t", **metadata: object) -> Change:
    return Change(
        product_id=pid,
        kind=ChangeKind.ADDED,
        action=IndexAction.UPSERT,
        text=text,
        text_hash=f"h-{text}",
        metadata={"title": f"T {pid}", "price": 1.0, **metadata},
    )


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def index(tmp_path: Path) -> LanceVectorIndex:
    return LanceVectorIndex(tmp_path / "index.lance", make_config(), DIM)


def test_upsert_query_and_filters(index: LanceVectorIndex):
    vectors = np.stack([unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(1, 1, 0, 0)])
    index.upsert(
        ["a", "b", "c"],
        vectors,
        [change("a", availability="in_stock", tags=["x"]), change("b", availability="sold_out"), change("c", stock=3)],
    )
    assert index.count() == 3 and index.ids() == {"a", "b", "c"}
    top = index.query(unit(1, 0, 0, 0), 2)
    assert [m.id for m in top] == ["a", "c"]
    assert top[0].score == pytest.approx(1.0, abs=1e-5)
    assert [m.id for m in index.query(unit(1, 0, 0, 0), 3, {"availability": "sold_out"})] == ["b"]
    assert [m.id for m in index.query(unit(1, 0, 0, 0), 3, {"tags": "x"})] == ["a"]
    assert [m.id for m in index.query(unit(1, 0, 0, 0), 3, {"stock": 3})] == ["c"]
    with pytest.raises(LocalIndexError, match="not a metadata field"):
        index.query(unit(1, 0, 0, 0), 3, {"colour": "red"})


def test_metadata_update_keeps_the_vector(index: LanceVectorIndex):
    index.upsert(["a"], np.stack([unit(1, 2, 3, 4)]), [change("a")])
    index.update_metadata([change("a", price=9.5)])
    entry = next(index.export())
    assert entry.metadata["price"] == 9.5 and entry.text_hash == "h-t"
    np.testing.assert_allclose(index.vectors(["a"])["a"], unit(1, 2, 3, 4), rtol=1e-6)


def test_upsert_replaces_and_delete_removes(index: LanceVectorIndex):
    index.upsert(["a", "b"], np.stack([unit(1, 0, 0, 0), unit(0, 1, 0, 0)]), [change("a"), change("b")])
    index.upsert(["a"], np.stack([unit(0, 0, 1, 0)]), [change("a", text="new")])
    assert index.count() == 2
    assert {e.id: e.text for e in index.export()} == {"a": "new", "b": "t"}
    index.delete(["a", "it's-missing"])
    assert index.ids() == {"b"}


def test_persists_and_rebuilds_when_the_schema_changes(tmp_path: Path):
    path = tmp_path / "index.lance"
    first = LanceVectorIndex(path, make_config(), DIM)
    first.upsert(["a"], np.stack([unit(1, 0, 0, 0)]), [change("a")])
    again = LanceVectorIndex(path, make_config(), DIM)
    assert not again.rebuilt and again.count() == 1
    wider = LanceVectorIndex(path, make_config(), DIM * 2)
    assert wider.rebuilt and wider.count() == 0


def test_a_reader_never_rebuilds(tmp_path: Path):
    path = tmp_path / "index.lance"
    LanceVectorIndex(path, make_config(), DIM).upsert(["a"], np.stack([unit(1, 0, 0, 0)]), [change("a")])
    with pytest.raises(LocalIndexError, match="vector dimension 4, asked for 8"):
        LanceVectorIndex(path, make_config(), DIM * 2, rebuild_on_mismatch=False)
    assert LanceVectorIndex(path, make_config(), DIM).count() == 1


def test_a_reader_that_embeds_nothing_opens_the_index_as_stored(tmp_path: Path):
    path = tmp_path / "index.lance"
    with pytest.raises(NoLocalIndex):
        LanceVectorIndex(path, make_config(), None)
    assert not path.exists()  # nothing created
    LanceVectorIndex(path, make_config(), DIM * 2).upsert(
        ["a"], np.stack([np.concatenate([unit(1, 0, 0, 0), np.zeros(DIM, dtype=np.float32)])]), [change("a")]
    )
    stored = LanceVectorIndex(path, make_config(), None)
    assert stored.dimension == DIM * 2 and not stored.rebuilt
    assert [entry.id for entry in stored.export()] == ["a"]
    other_fields = make_config(metadata={"brand": "string"})
    with pytest.raises(LocalIndexError, match=r"other metadata fields \(.*\) than the config's \(brand\)"):
        LanceVectorIndex(path, other_fields, None)
    assert LanceVectorIndex(path, make_config(), None).count() == 1  # and never rebuilt it


def test_maintenance_indexes_ids_and_compacts_without_losing_rows(index: LanceVectorIndex):
    for start in range(0, 30, 3):  # ten small writes: ten fragments
        ids = [str(i) for i in range(start, start + 3)]
        index.upsert(ids, np.stack([unit(1, i, 0, 0) for i in range(3)]), [change(i) for i in ids])
    assert not index.maintain()  # too few writes to bother
    assert index.maintain(force=True)
    assert index.count() == 30 and index.ids() == {str(i) for i in range(30)}
    index.update_metadata([change("7", price=3.5)])
    index.delete(["8"])
    assert {e.id: e.metadata["price"] for e in index.export()}["7"] == 3.5
    assert index.count() == 29


LOOK_ALIKES = ["café-1", "商品-42", "🎉", "\u04401", "p1", "P1", "~abc", "é" * 256, "it's", "x" * 512]


def test_any_product_id_is_its_own_vector_id(index: LanceVectorIndex):
    vectors = np.stack([unit(1, i, 0, 0) for i in range(len(LOOK_ALIKES))])
    assert index.upsert(LOOK_ALIKES, vectors, [change(i) for i in LOOK_ALIKES]) == {}
    assert index.ids() == set(LOOK_ALIKES) and index.count() == len(LOOK_ALIKES)
    assert {e.id for e in index.export()} == set(LOOK_ALIKES)
    assert index.query(vectors[3], 1)[0].id == "\u04401"
    assert [m.id for m in index.query(vectors[0], 5, {"id": "café-1"})] == ["café-1"]
    assert index.update_metadata([change("🎉", price=3.0), change("it's", price=4.0)]) == {}
    assert {e.id: e.metadata["price"] for e in index.export()}["🎉"] == 3.0
    assert index.delete(["p1", "~abc", "it's"]) == {}
    assert index.ids() == set(LOOK_ALIKES) - {"p1", "~abc", "it's"}


def test_a_row_the_table_cannot_hold_is_refused_alone(index: LanceVectorIndex):
    ids = [f"p{i}" for i in range(9)]
    changes = [change(pid, stock=n) for n, pid in enumerate(ids)]
    changes[5] = change("p5", stock="many")  # not an integer: the stock column cannot hold it
    refused = index.upsert(ids, np.stack([unit(1, i, 0, 0) for i in range(9)]), changes)
    assert list(refused) == ["p5"] and "many" in refused["p5"]
    assert index.ids() == set(ids) - {"p5"}
    refused = index.update_metadata([change("p1", stock=2**70), change("p2", stock=7)])
    assert list(refused) == ["p1"]
    assert {e.id: e.metadata.get("stock") for e in index.export()}["p2"] == 7
