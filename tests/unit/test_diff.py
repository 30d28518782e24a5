from __future__ import annotations

from dataclasses import dataclass, field, replace

from catalog_sync.formats.catalog import CatalogStream
from catalog_sync.logic.diff import CatalogDiff, DiffResult
from catalog_sync.logic.snapshot import StoredProduct
from catalog_sync.models.changes import ChangeKind, IndexAction
from tests.conftest import make_config, product

MODEL = "test-model"


@dataclass
class MemorySnapshot:
    """The state store's snapshot, in memory: desired and committed state per product."""

    products: dict[str, StoredProduct] = field(default_factory=dict)
    embedding_model: str | None = None
    text_template: str | None = None

    @property
    def fingerprints(self) -> dict[bytes, str]:
        return {
            p.fingerprint: pid
            for pid, p in self.products.items()
            if not p.deleted and not p.pending and p.fingerprint is not None
        }

    @property
    def live_ids(self) -> set[str]:
        return {pid for pid, p in self.products.items() if not p.deleted}

    @property
    def pending_deletes(self) -> set[str]:
        return {pid for pid, p in self.products.items() if p.deleted}

    def get_many(self, product_ids: list[str]) -> dict[str, StoredProduct]:
        return {pid: self.products[pid] for pid in product_ids if pid in self.products}

    def record(self, result: DiffResult, version: int, *, commit: bool = True) -> None:
        for change in result.changes:
            old = self.products.get(change.product_id)
            if change.action is IndexAction.DELETE:
                base = old or StoredProduct(change.product_id, version, committed_version=0)
                self.products[change.product_id] = replace(base, desired_version=version, deleted=True)
            else:
                self.products[change.product_id] = StoredProduct(
                    product_id=change.product_id,
                    desired_version=version,
                    fingerprint=change.fingerprint,
                    text_hash=change.text_hash,
                    metadata_hash=change.metadata_hash,
                    field_hashes=change.field_hashes or {},
                    committed_version=old.committed_version if old else None,
                    committed_text_hash=old.committed_text_hash if old else None,
                    committed_metadata_hash=old.committed_metadata_hash if old else None,
                )
        for update in result.fingerprint_updates:
            stored = self.products[update.product_id]
            if stored.desired_version == update.desired_version:
                self.products[update.product_id] = replace(stored, fingerprint=update.fingerprint)
        if commit:
            self.commit_all()

    def commit_all(self) -> None:
        for pid, p in list(self.products.items()):
            if p.deleted:
                del self.products[pid]
            else:
                self.products[pid] = replace(
                    p,
                    committed_version=p.desired_version,
                    committed_text_hash=p.text_hash,
                    committed_metadata_hash=p.metadata_hash,
                )


def run(differ: CatalogDiff, snapshot: MemorySnapshot, records: list[dict], version: int, **kwargs) -> DiffResult:
    return differ.run(CatalogStream.from_records(records), snapshot, version=version, **kwargs)


def by_kind(result: DiffResult) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {}
    for change in result.changes:
        kinds.setdefault(change.kind.value, []).append(change.product_id)
    return kinds


def setup(records: list[dict]) -> tuple[CatalogDiff, MemorySnapshot]:
    differ = CatalogDiff(make_config(), model_id=MODEL)
    snapshot = MemorySnapshot()
    snapshot.record(run(differ, snapshot, records, 1), 1)
    return differ, snapshot


def test_first_run_adds_everything():
    differ = CatalogDiff(make_config(), model_id=MODEL)
    result = run(differ, MemorySnapshot(), [product("A"), product("B")], 1)
    assert by_kind(result) == {"added": ["A", "B"]}
    assert all(c.action is IndexAction.UPSERT and not c.priority and c.version == 1 for c in result.changes)


def test_each_change_kind_with_fields_changed():
    differ, snapshot = setup([product("A"), product("B"), product("C"), product("D")])
    v2 = [
        product("A", description="New words."),  # text
        product("B", price=11.0),  # metadata, priority
        product("C", tags=["b"]),  # metadata, not priority
        product("E"),  # added
    ]  # D deleted
    result = run(differ, snapshot, v2, 2)
    changes = {c.product_id: c for c in result.changes}
    assert changes["A"].kind is ChangeKind.TEXT_CHANGED and changes["A"].action is IndexAction.UPSERT
    assert changes["A"].fields_changed == ("description",)
    assert changes["B"].kind is ChangeKind.METADATA_ONLY and changes["B"].action is IndexAction.UPDATE_METADATA
    assert changes["B"].fields_changed == ("price",) and changes["B"].priority
    assert changes["C"].fields_changed == ("tags",) and not changes["C"].priority
    assert changes["D"].kind is ChangeKind.DELETED and changes["D"].priority
    assert changes["E"].kind is ChangeKind.ADDED
    counts = result.counts
    assert (counts.added, counts.text_changed, counts.metadata_only, counts.deleted, counts.unchanged) == (
        1,
        1,
        2,
        1,
        0,
    )


def test_field_in_text_and_metadata_is_a_text_change():
    differ, snapshot = setup([product("A")])
    change = run(differ, snapshot, [product("A", title="Renamed")], 2).changes[0]
    assert change.kind is ChangeKind.TEXT_CHANGED
    assert change.fields_changed == ("title",)


def test_unchanged_takes_the_fast_path_and_same_content_spelled_differently_is_unchanged():
    differ, snapshot = setup([product("A", price=10.0), product("B")])
    same = run(differ, snapshot, [product("A", price=10.0), product("B")], 2)
    assert same.changes == [] and same.counts.unchanged == 2 and same.fingerprint_updates == []
    respelled = {
        "stock": 5,
        "price": 10,
        "sku": "A",
        "title": "Product A",
        "description": "A fine product called A.",
        "availability": "in_stock",
        "tags": ["a"],
        "untracked": "x",
    }
    result = run(differ, snapshot, [respelled, product("B")], 3)
    assert result.changes == []
    assert result.counts.unchanged == 2
    assert [(u.product_id, u.desired_version) for u in result.fingerprint_updates] == [("A", 1)]


def test_invalid_record_keeps_last_good_version():
    differ, snapshot = setup([product("A"), product("B")])
    result = run(differ, snapshot, [product("A", price="not a number"), product("B")], 2)
    assert result.changes == []  # A is neither changed nor deleted
    assert result.counts.invalid == 1
    quarantined = result.quarantined[0]
    assert quarantined.product_id == "A" and "price" in quarantined.reason and quarantined.location == "record 1"
    assert quarantined.record["price"] == "not a number"


def test_duplicate_ids_are_quarantined_first_one_wins():
    differ = CatalogDiff(make_config(), model_id=MODEL)
    result = run(differ, MemorySnapshot(), [product("A"), product(" A ", title="Second")], 1)
    assert by_kind(result) == {"added": ["A"]}
    assert result.changes[0].metadata["title"] == "Product A"
    assert "duplicate id (first seen at record 1)" in result.quarantined[0].reason


def test_missing_id_is_quarantined():
    differ = CatalogDiff(make_config(), model_id=MODEL)
    record = product("A")
    del record["sku"]
    result = run(differ, MemorySnapshot(), [record], 1)
    assert result.changes == [] and result.quarantined[0].reason == "missing id"


def test_model_change_re_embeds_everything_and_says_why():
    _, snapshot = setup([product("A"), product("B")])
    snapshot.embedding_model = MODEL
    other = CatalogDiff(make_config(), model_id="another-model")
    result = run(other, snapshot, [product("A"), product("B")], 2)
    assert by_kind(result) == {"text_changed": ["A", "B"]}
    assert all(c.reason == "embedding model or text template changed" for c in result.changes)
    assert any("embedding model changed" in reason for reason in result.reasons)


def test_template_change_re_embeds():
    _, snapshot = setup([product("A")])
    differ = CatalogDiff(
        make_config(text={"fields": ["title", "description"], "template": "{title}: {description}"}),
        model_id=MODEL,
    )
    assert by_kind(run(differ, snapshot, [product("A")], 2)) == {"text_changed": ["A"]}


def test_uncommitted_change_is_resent_as_upsert():
    differ, snapshot = setup([product("A")])
    # v2 changes the price but the consumer never commits it.
    snapshot.record(run(differ, snapshot, [product("A", price=20.0)], 2), 2, commit=False)
    result = run(differ, snapshot, [product("A", price=20.0)], 3)
    assert len(result.changes) == 1
    change = result.changes[0]
    assert change.action is IndexAction.UPSERT and change.kind is ChangeKind.UNCHANGED
    assert result.resent == 1


def test_uncommitted_delete_is_resent_and_readding_cancels_it():
    differ, snapshot = setup([product("A"), product("B")])
    snapshot.record(run(differ, snapshot, [product("A")], 2), 2, commit=False)
    again = run(differ, snapshot, [product("A")], 3)
    assert [(c.product_id, c.action) for c in again.changes] == [("B", IndexAction.DELETE)]
    back = run(differ, snapshot, [product("A"), product("B")], 3)
    assert [(c.product_id, c.kind) for c in back.changes] == [("B", ChangeKind.ADDED)]


def test_only_ids_limits_the_diff():
    differ, snapshot = setup([product("A"), product("B"), product("C")])
    result = run(differ, snapshot, [product("A", price=1.0), product("B", price=2.0)], 2, only_ids=["A", "C"])
    assert sorted((c.product_id, c.kind.value) for c in result.changes) == [
        ("A", "metadata_only"),
        ("C", "deleted"),
    ]


def test_full_resync_rewrites_everything_and_removes_orphans():
    differ, snapshot = setup([product("A"), product("B")])
    result = run(differ, snapshot, [product("A"), product("B")], 2, full=True, index_ids={"A", "B", "ghost"})
    actions = sorted((c.product_id, c.action.value) for c in result.changes)
    assert actions == [("A", "upsert"), ("B", "upsert"), ("ghost", "delete")]
    assert result.counts.unchanged == 2


def test_full_resync_of_some_ids_only_removes_their_orphans():
    differ, snapshot = setup([product("A"), product("B")])
    result = run(
        differ, snapshot, [product("A"), product("B")], 2, full=True, only_ids=["A"], index_ids={"A", "B", "ghost"}
    )
    assert sorted((c.product_id, c.action.value) for c in result.changes) == [("A", "upsert")]


def test_deleted_then_added_again():
    differ, snapshot = setup([product("A"), product("B")])
    snapshot.record(run(differ, snapshot, [product("A")], 2), 2)
    assert "B" not in snapshot.products
    result = run(differ, snapshot, [product("A"), product("B")], 3)
    assert by_kind(result) == {"added": ["B"]}


def test_unchanged_json_lines_are_not_even_parsed(tmp_path):
    import io

    import orjson

    from catalog_sync.formats.catalog import open_catalog

    def jsonl(records: list[dict]) -> bytes:
        return b"".join(orjson.dumps(r) + b"\n" for r in records)

    v1 = [product(str(i)) for i in range(50)]
    differ = CatalogDiff(make_config(), model_id=MODEL)
    snapshot = MemorySnapshot()
    first = differ.run(open_catalog(io.BytesIO(jsonl(v1)), "c.jsonl"), snapshot, version=1)
    snapshot.record(first, 1)

    v2 = [*v1[:10], product("10", price=99.0), *v1[11:40], product("new")]  # 40..49 deleted
    v2.insert(5, v1[5])  # a byte-identical duplicate line
    stream = open_catalog(io.BytesIO(jsonl(v2)), "c.jsonl")
    parsed: list[int] = []
    original = stream.parse

    def counting_parse(position: int, raw: bytes):  # type: ignore[no-untyped-def]
        parsed.append(position)
        return original(position, raw)

    stream.parse = counting_parse  # type: ignore[method-assign]
    result = differ.run(stream, snapshot, version=2)
    # Only the changed line, the new one and the duplicate were parsed; 39 lines cost one hash each.
    assert len(parsed) == 3
    assert result.counts.unchanged == 39
    assert sorted((c.product_id, c.kind.value) for c in result.changes if c.kind.value != "deleted") == [
        ("10", "metadata_only"),
        ("new", "added"),
    ]
    assert result.counts.deleted == 10
    assert result.quarantined[0].reason.startswith("duplicate id") and result.quarantined[0].location == "line 7"


def test_fingerprints_follow_only_the_settings_that_shape_a_record():
    from catalog_sync.logic.diff import fingerprint_seed

    base = make_config()
    assert fingerprint_seed(base, MODEL) == fingerprint_seed(make_config(guard={"max_delete_share": 0.5}), MODEL)
    assert fingerprint_seed(base, MODEL) == fingerprint_seed(make_config(namespace="elsewhere"), MODEL)
    assert fingerprint_seed(base, MODEL) != fingerprint_seed(make_config(required_fields=["price"]), MODEL)
    assert fingerprint_seed(base, MODEL) != fingerprint_seed(base, "another-model")
