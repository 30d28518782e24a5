"""The diff over mapped catalogs: grouped rows ([source] group_by) and derived fields ([fields]) are diffed as the
products they make, on every reader (CSV, JSON Lines, JSON array)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog_sync.formats.catalog import open_catalog
from catalog_sync.formats.records import CatalogFormatError
from catalog_sync.logic.diff import CatalogDiff, DiffResult
from catalog_sync.logic.spool import Spool
from catalog_sync.logic.validation import InvalidRecord
from catalog_sync.models.changes import Change, ChangeKind, IndexAction, QuarantinedRecord
from catalog_sync.models.config import CatalogConfig, extend_preset, load_config, load_preset
from tests.conftest import make_config, product
from tests.unit.test_diff import MODEL, MemorySnapshot

SHOPIFY = Path(__file__).resolve().parents[1] / "data" / "shopify"


def shopify_config() -> CatalogConfig:
    return load_config(SHOPIFY / "catalog.toml")


def shopify_rows() -> list[dict[str, str]]:
    with (SHOPIFY / "products.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def encode(rows: list[dict[str, Any]], kind: str) -> bytes:
    """The rows as a catalog file of one format."""
    if kind == "jsonl":
        return b"".join(orjson.dumps(row) + b"\n" for row in rows)
    if kind == "json":
        return orjson.dumps(rows)
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


class Catalog:
    """One catalog's diff runs against an in-memory state, each committed like a sync that succeeded."""

    def __init__(self, config: CatalogConfig, kind: str = "csv") -> None:
        self.differ = CatalogDiff(config, model_id=MODEL)
        self.snapshot = MemorySnapshot()
        self.kind = kind
        self.version = 0

    def diff(self, data: bytes | list[dict[str, Any]], *, commit: bool = True, **options: Any) -> DiffResult:
        body = data if isinstance(data, bytes) else encode(data, self.kind)
        self.version += 1
        stream = open_catalog(io.BytesIO(body), f"catalog.{self.kind}", id_field=self.differ.config.id_field)
        result = self.differ.run(stream, self.snapshot, version=self.version, **options)
        if commit:
            self.snapshot.record(result, self.version)
        return result


def changes(result: DiffResult) -> dict[str, Change]:
    return {change.product_id: change for change in result.changes}


KINDS = ["csv", "jsonl", "json"]


def test_the_shopify_fixture_is_three_products_of_ten_rows():
    result = Catalog(shopify_config()).diff((SHOPIFY / "products.csv").read_bytes())
    assert result.quarantined == []
    assert (result.counts.records, result.counts.valid, result.counts.added) == (10, 3, 3)
    tee = changes(result)["classic-tee"]
    assert tee.metadata == {
        "title": "Classic Organic Tee",
        "vendor": "Fernway",
        "tags": ["cotton", "summer", "basics"],
        "price_min": 60.0,
        "price_max": 60.0,
        "prices": ["60.00"],
        "inventory": 19,
        "skus": ["TEE-L-SAND", "TEE-M-SAGE", "TEE-S-SAGE"],
        "variants": 3,
        "published": True,
        "image": "https://cdn.shopify.example/files/tee-front.jpg",
        "images": ["https://cdn.shopify.example/files/tee-front.jpg", "https://cdn.shopify.example/files/tee-back.jpg"],
    }
    assert tee.text == (
        "Classic Organic Tee\nBy Fernway (T-Shirts)\nOptions: L, M, S\n"
        'A soft, breathable tee in organic cotton.\n\nRelaxed fit\nPre-shrunk, "true to size"'
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_variant_price_edit_is_a_metadata_only_change_naming_the_derived_fields(kind: str):
    catalog = Catalog(shopify_config(), kind)
    rows = shopify_rows()
    assert catalog.diff(rows).counts.added == 3
    edited = [dict(row) for row in rows]
    second_row = edited[1]
    assert second_row["Handle"] == "classic-tee" and second_row["Variant Price"] == "60.00"
    second_row["Variant Price"] = "65.00"
    result = catalog.diff(edited)
    assert result.quarantined == []
    assert list(changes(result)) == ["classic-tee"]
    change = changes(result)["classic-tee"]
    assert change.kind is ChangeKind.METADATA_ONLY and change.action is IndexAction.UPDATE_METADATA
    assert change.fields_changed == ("price_max", "prices")
    assert change.priority  # price_max is a priority field
    assert change.metadata is not None
    assert (change.metadata["price_min"], change.metadata["price_max"]) == (60.0, 65.0)
    assert result.counts.unchanged == 2


@pytest.mark.parametrize("kind", KINDS)
def test_a_variant_added_or_removed_changes_its_product(kind: str):
    catalog = Catalog(shopify_config(), kind)
    rows = shopify_rows()
    catalog.diff(rows)
    beanie_rows = [i for i, row in enumerate(rows) if row["Handle"] == "wool-beanie"]
    added = dict.fromkeys(rows[0], "")
    added.update({"Handle": "wool-beanie", "Option1 Value": "Moss", "Variant SKU": "BEANIE-MS"})
    added.update({"Variant Price": "32.00", "Variant Inventory Qty": "4"})
    with_moss = [*rows[: beanie_rows[2] + 1], added, *rows[beanie_rows[2] + 1 :]]
    change = changes(catalog.diff(with_moss))["wool-beanie"]
    # A new option value is in the text: re-embedded.
    assert change.kind is ChangeKind.TEXT_CHANGED
    assert change.fields_changed == ("options", "inventory", "skus", "variants")
    without_rust = [row for row in with_moss if row["Variant SKU"] not in ("BEANIE-RU", "BEANIE-MS")]
    change = changes(catalog.diff(without_rust))["wool-beanie"]
    assert change.kind is ChangeKind.TEXT_CHANGED
    assert change.fields_changed == ("options", "price_max", "prices", "inventory", "skus", "variants")
    assert change.metadata is not None and change.metadata["price_max"] == 32.0


@pytest.mark.parametrize("kind", KINDS)
def test_variants_reordered_are_not_a_change(kind: str):
    catalog = Catalog(shopify_config(), kind)
    rows = shopify_rows()
    catalog.diff(rows)
    tee = [i for i, row in enumerate(rows) if row["Handle"] == "classic-tee"]
    assert tee == [0, 1, 2, 3]
    # The product's columns stay on its first row; its variant rows and its image row swap places.
    first = rows[0]
    moved = [*rows[3:4], *rows[2:3], *rows[1:2]]
    reordered = [first, *moved, *rows[4:]]
    result = catalog.diff(reordered)
    assert result.changes == [] and result.quarantined == []
    assert result.counts.unchanged == 3
    # Same content, other rows' order: the new spelling is remembered for the fast path.
    assert [update.product_id for update in result.fingerprint_updates] == ["classic-tee"]


def test_list_keeps_the_rows_order_so_reordering_images_is_a_change():
    catalog = Catalog(shopify_config())
    rows = shopify_rows()
    catalog.diff(rows)
    beanie = [i for i, row in enumerate(rows) if row["Handle"] == "wool-beanie"]
    images = beanie[3:]
    assert [rows[i]["Image Src"][-12:] for i in images] == ["beanie-2.jpg", "beanie-3.jpg"]
    swapped = list(rows)
    swapped[images[0]], swapped[images[1]] = rows[images[1]], rows[images[0]]
    change = changes(catalog.diff(swapped))["wool-beanie"]
    assert change.kind is ChangeKind.METADATA_ONLY and change.fields_changed == ("images",)


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_an_unchanged_group_is_not_validated_again(kind: str):
    catalog = Catalog(shopify_config(), kind)
    rows = shopify_rows()
    catalog.diff(rows)

    def refuse(product_id: str, record: dict[str, Any]) -> Any:
        raise AssertionError(f"{product_id} was validated again")

    catalog.differ.validator.validate = refuse  # type: ignore[method-assign]
    result = catalog.diff(rows)
    assert result.changes == [] and result.fingerprint_updates == [] and result.counts.unchanged == 3


def test_rows_of_a_product_that_are_not_contiguous_quarantine_it_and_it_keeps_its_last_version():
    catalog = Catalog(shopify_config())
    rows = shopify_rows()
    catalog.diff(rows)
    tee = [row for row in rows if row["Handle"] == "classic-tee"]
    others = [row for row in rows if row["Handle"] != "classic-tee"]
    # The tee's first rows, the other products, then the tee's last row, whose price changed: an unsorted file.
    last = dict(tee[2], **{"Variant Price": "70.00"})
    split = [*tee[:2], *others, last, tee[3]]
    result = catalog.diff(split)
    assert result.changes == []  # neither part updates the tee, and it is not deleted
    (quarantined,) = result.quarantined
    assert quarantined.product_id == "classic-tee"
    assert quarantined.reason == (
        "rows of Handle 'classic-tee' are not contiguous (first seen at line 2, again at line 15): "
        "sort the file by Handle"
    )
    assert quarantined.location == "line 15 (2 rows)"  # the tee's first row spans lines 2 to 6
    assert [row["Variant SKU"] for row in quarantined.record["rows"]] == ["TEE-L-SAND", ""]
    counts = result.counts
    assert (counts.records, counts.valid, counts.invalid, counts.unchanged, counts.changed) == (10, 2, 1, 2, 0)
    assert "classic-tee" in catalog.snapshot.live_ids


def test_a_change_of_the_first_part_of_an_unsorted_product_is_taken_back():
    catalog = Catalog(shopify_config())
    rows = shopify_rows()
    catalog.diff(rows)
    tee = [dict(row) for row in rows if row["Handle"] == "classic-tee"]
    tee[0]["Variant Price"] = "55.00"  # the first part alone would be a price change
    others = [row for row in rows if row["Handle"] != "classic-tee"]
    others[0] = dict(others[0], Title="Canvas Market Tote XL")  # a real change elsewhere stays
    spooled = DiffResult(changes=Spool(Change, memory_limit=0), quarantined=Spool(QuarantinedRecord, memory_limit=0))
    result = catalog.diff([*tee[:3], *others, tee[3]], result=spooled)
    assert [(change.product_id, change.kind) for change in result.changes] == [("canvas-tote", ChangeKind.TEXT_CHANGED)]
    counts = result.counts
    assert (counts.valid, counts.invalid, counts.metadata_only, counts.text_changed, counts.priority) == (2, 1, 0, 1, 0)
    assert [q.product_id for q in result.quarantined] == ["classic-tee"]


def test_an_unsorted_product_in_a_first_sync_is_not_added():
    catalog = Catalog(shopify_config())
    rows = shopify_rows()
    result = catalog.diff([*rows[:2], *rows[4:], *rows[2:4]])
    assert sorted(changes(result)) == ["canvas-tote", "wool-beanie"]
    assert result.counts.added == 2 and result.counts.invalid == 1 and result.counts.valid == 2


def test_a_third_part_is_quarantined_too_and_counted_once_as_valid_taken_back():
    catalog = Catalog(make_config(source={"group_by": "sku"}, fields={"n": {"from": "x", "aggregate": "count"}}))
    records = [product("A"), product("B"), product("A"), product("C"), product("A")]
    result = catalog.diff(records, commit=False)
    assert sorted(changes(result)) == ["B", "C"]
    assert [q.product_id for q in result.quarantined] == ["A", "A"]
    assert (result.counts.valid, result.counts.invalid, result.counts.added) == (2, 2, 2)


def test_a_bad_value_in_one_variant_quarantines_the_product_with_the_reason():
    catalog = Catalog(shopify_config())
    rows = shopify_rows()
    catalog.diff(rows)
    bad = [dict(row) for row in rows]
    bad[2]["Variant Price"] = "sixty"
    result = catalog.diff(bad)
    assert result.changes == []
    (quarantined,) = result.quarantined
    assert quarantined.product_id == "classic-tee" and quarantined.location == "line 2 (4 rows)"
    assert quarantined.reason == "fields.price_min: aggregate 'min' needs numbers, got 'sixty'"


def test_a_row_without_a_handle_is_quarantined_alone():
    catalog = Catalog(shopify_config())
    rows = [dict(row) for row in shopify_rows()]
    rows[2]["Handle"] = ""
    result = catalog.diff(rows)
    assert sorted(changes(result)) == ["canvas-tote", "classic-tee", "wool-beanie"]
    (quarantined,) = result.quarantined
    assert quarantined.product_id is None and quarantined.location == "line 8"
    assert "the group_by field 'Handle' is missing or empty" in quarantined.reason
    assert changes(result)["classic-tee"].metadata["variants"] == 2  # type: ignore[index]


def test_a_short_csv_row_quarantines_its_whole_product():
    body = (SHOPIFY / "products.csv").read_bytes().split(b"\r\n")
    assert body[2].startswith(b"classic-tee,,,,,,,,,M,")  # the first row's HTML holds its own newlines
    body[2] = b"classic-tee,,,,,,,,,M"
    result = Catalog(shopify_config()).diff(b"\r\n".join(body))
    assert sorted(changes(result)) == ["canvas-tote", "wool-beanie"]
    (quarantined,) = result.quarantined
    assert quarantined.product_id == "classic-tee"
    assert quarantined.reason == "line 7: row has 10 fields, the header has 31"


def test_grouping_on_another_field_than_the_id():
    config = make_config(source={"group_by": "parent"}, fields={"sizes": {"from": "size", "aggregate": "unique"}})
    config.metadata.clear()
    records = [
        {"parent": "p1", "sku": "", "size": "S"},
        {"parent": "p1", "sku": "TEE", "size": "M", "title": "Tee"},
        {"parent": "p2", "sku": "TEE", "size": "L", "title": "Other"},
        {"parent": "p3", "sku": "HAT", "title": "Hat"},
    ]
    result = Catalog(config, "jsonl").diff(records)
    assert sorted(changes(result)) == ["HAT", "TEE"]
    assert result.quarantined[0].reason == "duplicate id (first seen at line 1)"
    assert result.quarantined[0].location == "line 3"


def test_only_ids_limits_a_grouped_diff():
    catalog = Catalog(shopify_config())
    rows = shopify_rows()
    catalog.diff(rows)
    edited = [dict(row, **{"Variant Price": "1.00"}) if row["Variant Price"] else row for row in rows]
    result = catalog.diff(edited, only_ids=["wool-beanie"])
    assert list(changes(result)) == ["wool-beanie"]


@pytest.mark.parametrize("kind", ["jsonl", "json"])
def test_derived_fields_without_grouping(kind: str):
    config = make_config(
        fields={
            "barcode": {"from": "meta.barcode"},
            "cover": {"from": "images.0.src"},
            "summary": {"from": "body", "transform": "html_to_text"},
            "reviews": {"from": "reviews"},
        },
        text={"fields": ["title", "summary", "reviews"]},
        metadata={"barcode": "string", "cover": "string", "price": "number"},
    )
    record = {
        "sku": "A",
        "title": "Lamp",
        "body": "<p>Warm <b>light</b></p>",
        "meta": {"barcode": "123"},
        "images": [{"src": "a.jpg"}],
        "reviews": [{"author": "Ana", "body": "Bright, warm"}],
        "price": 10,
    }
    catalog = Catalog(config, kind)
    first = changes(catalog.diff([record]))["A"]
    assert first.text == "Lamp\nWarm light\nauthor: Ana; body: Bright, warm"
    assert first.metadata == {"barcode": "123", "cover": "a.jpg", "price": 10.0}
    edited = dict(record, meta={"barcode": "456"}, images=[{"src": "b.jpg"}, {"src": "a.jpg"}])
    change = changes(catalog.diff([edited]))["A"]
    assert change.kind is ChangeKind.METADATA_ONLY and change.fields_changed == ("barcode", "cover")
    reworded = dict(edited, body="<p>Warm <b>light</b>, dimmable</p>")
    change = changes(catalog.diff([reworded]))["A"]
    assert change.kind is ChangeKind.TEXT_CHANGED and change.fields_changed == ("summary",)


def test_json_lines_with_derived_fields_keep_the_per_line_fast_path():
    config = make_config(fields={"barcode": {"from": "meta.barcode"}}, metadata={"barcode": "string"})
    catalog = Catalog(config, "jsonl")
    records = [dict(product(str(n)), meta={"barcode": f"B{n}"}) for n in range(20)]
    catalog.diff(records)
    body = encode(records, "jsonl")
    stream = open_catalog(io.BytesIO(body), "c.jsonl")
    parsed: list[int] = []
    original = stream.parse

    def counting_parse(position: int, raw: bytes) -> Any:
        parsed.append(position)
        return original(position, raw)

    stream.parse = counting_parse  # type: ignore[method-assign]
    result = catalog.differ.run(stream, catalog.snapshot, version=9)
    assert parsed == [] and result.counts.unchanged == 20


def test_a_derived_field_wins_over_a_raw_field_of_its_name():
    config = make_config(fields={"title": {"from": "name"}})
    result = Catalog(config, "jsonl").diff([dict(product("A"), name="From name")])
    assert changes(result)["A"].metadata["title"] == "From name"  # type: ignore[index]


def test_a_group_with_too_many_rows_is_quarantined(monkeypatch: pytest.MonkeyPatch):
    from catalog_sync.logic import mapping

    monkeypatch.setattr(mapping, "MAX_GROUP_ROWS", 3)
    monkeypatch.setattr("catalog_sync.logic.diff_walk.MAX_GROUP_ROWS", 3)
    result = Catalog(shopify_config()).diff(shopify_rows())
    assert sorted(changes(result)) == ["canvas-tote"]
    reasons = {q.product_id: q.reason for q in result.quarantined}
    assert reasons["classic-tee"] == (
        "Handle 'classic-tee' has 4 rows, more than the 3 one product may have (only the first are kept here)"
    )


# The property: for any sequence of rows, the grouped diff is what grouping by hand says it is.

KEYS = st.sampled_from(["a", "b", "c", "d", "e"])


def runs_of(keys: list[str]) -> dict[str, list[int]]:
    """Each key's runs of consecutive rows, by length, written out without the mapping."""
    runs: dict[str, list[int]] = {}
    previous = None
    for key in keys:
        if key == previous:
            runs[key][-1] += 1
        else:
            runs.setdefault(key, []).append(1)
        previous = key
    return runs


@settings(max_examples=150, deadline=None)
@given(
    before=st.dictionaries(KEYS, st.integers(1, 3), max_size=5),
    keys=st.lists(KEYS, max_size=14),
    memory_limit=st.integers(0, 3),
    kind=st.sampled_from(["jsonl", "json"]),
)
def test_a_grouped_diff_matches_grouping_by_hand(before: dict[str, int], keys: list[str], memory_limit: int, kind: str):
    config = make_config(
        id_field="k",
        source={"group_by": "k"},
        fields={"rows": {"from": "k", "aggregate": "count"}},
        text={"fields": ["k"]},
        metadata={"rows": "integer"},
        guard={"max_delete_share": 1.0},
    )
    catalog = Catalog(config, "json")
    catalog.diff([{"k": key} for key, count in sorted(before.items()) for _ in range(count)])
    catalog.kind = kind if keys else "json"  # an empty JSON Lines file is refused as a broken drop
    spooled = DiffResult(
        changes=Spool(Change, memory_limit=memory_limit), quarantined=Spool(QuarantinedRecord, memory_limit=1)
    )
    result = catalog.diff([{"k": key} for key in keys], result=spooled, commit=False)

    runs = runs_of(keys)
    whole = {key: lengths[0] for key, lengths in runs.items() if len(lengths) == 1}
    split = {key for key, lengths in runs.items() if len(lengths) > 1}
    expected = {key: "added" for key in whole if key not in before}
    expected |= {key: "metadata_only" for key, rows in whole.items() if key in before and before[key] != rows}
    expected |= {key: "deleted" for key in before if key not in runs}
    assert {change.product_id: change.kind.value for change in result.changes} == expected
    for change in result.changes:
        if change.kind is not ChangeKind.DELETED:
            assert change.metadata == {"rows": whole[change.product_id]}
    assert sorted(q.product_id for q in result.quarantined) == sorted(key for key in split for _ in runs[key][1:])
    counts = result.counts
    assert counts.records == len(keys)
    assert counts.valid == len(whole) and counts.invalid == sum(len(runs[key]) - 1 for key in split)
    assert counts.unchanged == sum(1 for key, rows in whole.items() if before.get(key) == rows)
    assert (counts.added, counts.metadata_only, counts.deleted) == tuple(
        sum(1 for kind in expected.values() if kind == wanted) for wanted in ("added", "metadata_only", "deleted")
    )
    assert counts.priority == counts.deleted  # rows is not a priority field; a deletion always is
    assert {update.product_id for update in result.fingerprint_updates} <= set(whole)


@pytest.mark.parametrize("kind", ["csv", "tsv"])
def test_a_csv_or_tsv_without_the_group_by_column_is_refused_whole(kind: str):
    # Not one product without a key: with the ids read from another column, every product would seem gone.
    config = make_config(source={"group_by": "Handle"}, metadata={})
    separator = "," if kind == "csv" else "\t"
    body = "\r\n".join(separator.join(row) for row in [["sku", "title"], ["A", "Tee"], ["B", "Hat"]]).encode()
    catalog = Catalog(config, kind)
    with pytest.raises(
        CatalogFormatError, match=rf"catalog\.{kind}, line 1: the {kind.upper()} header has no 'Handle' column"
    ):
        catalog.diff(body)
    assert catalog.snapshot.live_ids == set()


def test_a_row_with_its_id_but_no_group_key_keeps_its_product():
    config = make_config(source={"group_by": "parent"}, metadata={})
    catalog = Catalog(config, "jsonl")
    catalog.diff([{"parent": "p1", "sku": "TEE", "title": "Tee"}, {"parent": "p2", "sku": "HAT", "title": "Hat"}])
    result = catalog.diff(
        [{"parent": "", "sku": "TEE", "title": "Tee"}, {"parent": "p2", "sku": "HAT", "title": "Hat"}]
    )
    # The row is quarantined under its id, and its product is not deleted: it keeps its last good version.
    assert [(q.product_id, q.location) for q in result.quarantined] == [("TEE", "line 1")]
    assert result.counts.deleted == 0 and changes(result) == {}


def test_taking_back_a_part_never_withdraws_another_groups_product_of_the_same_id():
    config = make_config(source={"group_by": "parent"}, metadata={})
    records = [
        {"parent": "p1", "sku": "TEE", "title": "Tee"},  # the product TEE
        {"parent": "p2", "sku": "TEE", "title": "Other"},  # a duplicate id: quarantined
        {"parent": "p3", "sku": "HAT", "title": "Hat"},
        {"parent": "p2", "sku": "TEE", "title": "Other"},  # p2 again, apart: p2 is taken back, not p1's TEE
    ]
    result = Catalog(config, "jsonl").diff(records)
    assert sorted(changes(result)) == ["HAT", "TEE"]
    assert changes(result)["TEE"].text == "Tee"
    assert [q.location for q in result.quarantined] == ["line 2", "line 4"]


# Unsorted groups ([source] sorted = false): a key's rows are joined wherever they are in the file.


def unsorted_shopify_config() -> CatalogConfig:
    return shopify_config().model_copy(update={"source": shopify_config().source.model_copy(update={"sorted": False})})


def scattered(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The rows with the tee's last variant moved to the end of the file, after the other products."""
    last_tee = max(i for i, row in enumerate(rows) if row["Handle"] == "classic-tee" and row["Variant SKU"])
    return [*rows[:last_tee], *rows[last_tee + 1 :], rows[last_tee]]


@pytest.mark.parametrize("kind", KINDS)
def test_unsorted_rows_of_a_product_are_joined_into_the_product_the_sorted_file_makes(kind: str):
    rows = shopify_rows()
    assert scattered(rows)[-1]["Handle"] == "classic-tee" and scattered(rows)[-2]["Handle"] != "classic-tee"
    sorted_result = Catalog(shopify_config(), kind).diff(rows)
    result = Catalog(unsorted_shopify_config(), kind).diff(scattered(rows))
    assert result.quarantined == []
    assert (result.counts.records, result.counts.valid, result.counts.added) == (10, 3, 3)
    by_id = changes(result)
    for product_id, change in changes(sorted_result).items():
        assert (by_id[product_id].text, by_id[product_id].metadata) == (change.text, change.metadata)


@pytest.mark.parametrize("kind", KINDS)
def test_unsorted_exact_change_sets_for_a_variant_edited_added_removed_or_moved(kind: str):
    catalog = Catalog(unsorted_shopify_config(), kind)
    rows = scattered(shopify_rows())
    assert catalog.diff(rows).counts.added == 3

    # Edited: the far variant's price.
    edited = [dict(row) for row in rows]
    edited[-1]["Variant Price"] = "65.00"
    result = catalog.diff(edited)
    assert result.quarantined == []
    assert {pid: (c.kind, c.fields_changed) for pid, c in changes(result).items()} == {
        "classic-tee": (ChangeKind.METADATA_ONLY, ("price_max", "prices"))
    }
    assert result.counts.unchanged == 2

    # Moved: the same variant back to its place among the tee's rows is no change.
    first_other = next(i for i, row in enumerate(edited) if row["Handle"] != "classic-tee")
    moved = [*edited[:first_other], edited[-1], *edited[first_other:-1]]
    result = catalog.diff(moved)
    assert list(result.changes) == [] and result.quarantined == []
    assert result.counts.unchanged == 3

    # Added: a new tee variant at the very end, after everything else.
    added = dict.fromkeys(rows[0], "")
    added.update({"Handle": "classic-tee", "Option1 Value": "XL", "Variant SKU": "TEE-XL"})
    added.update({"Variant Price": "70.00", "Variant Inventory Qty": "5"})
    result = catalog.diff([*moved, added])
    assert {pid: c.kind for pid, c in changes(result).items()} == {"classic-tee": ChangeKind.TEXT_CHANGED}
    tee = changes(result)["classic-tee"]
    assert tee.metadata is not None and tee.metadata["price_max"] == 70.0
    assert "XL" in tee.text

    # Removed again: the product is what it was before the addition.
    result = catalog.diff(moved)
    assert {pid: c.kind for pid, c in changes(result).items()} == {"classic-tee": ChangeKind.TEXT_CHANGED}
    tee = changes(result)["classic-tee"]
    assert tee.metadata is not None and tee.metadata["price_max"] == 65.0 and "XL" not in tee.text


def test_the_sorted_default_still_quarantines_the_scattered_file():
    result = Catalog(shopify_config()).diff(scattered(shopify_rows()))
    assert [q.product_id for q in result.quarantined] == ["classic-tee"]
    assert "are not contiguous" in result.quarantined[0].reason


def test_row_join_spills_sorted_runs_and_merges_them_in_order_of_first_appearance():
    from catalog_sync.logic.row_join import RowJoin

    keys = ["b", "a", "b", "c", "a", "", "b", "c"]

    def key_of(record: dict[str, Any]) -> str:
        if not record["k"]:
            raise InvalidRecord("no key")
        return str(record["k"])

    for run_bytes in (1, 10**9):
        with RowJoin(key_of, run_bytes=run_bytes) as join:
            join.extend((position, {"k": key}, None) for position, key in enumerate(keys, start=1))
            order = [(position, record["k"]) for position, record, _ in join.rows()]
            spilled = join.spilled_runs
            files = list(join._files)
        assert order == [(1, "b"), (3, "b"), (7, "b"), (2, "a"), (5, "a"), (4, "c"), (8, "c"), (6, "")]
        assert (spilled > 0) is (run_bytes == 1)
        assert all(handle.closed for handle in files)


@settings(max_examples=150, deadline=None)
@given(
    before=st.dictionaries(KEYS, st.integers(1, 3), max_size=5),
    keys=st.lists(KEYS, max_size=14),
    run_bytes=st.sampled_from([1, 40, 10**9]),
    kind=st.sampled_from(["jsonl", "json", "csv"]),
)
def test_an_unsorted_grouped_diff_matches_counting_each_keys_rows_by_hand(
    before: dict[str, int], keys: list[str], run_bytes: int, kind: str
):
    from catalog_sync.logic import row_join

    config = make_config(
        id_field="k",
        source={"group_by": "k", "sorted": False},
        fields={"rows": {"from": "n", "aggregate": "count"}, "ns": {"from": "n", "aggregate": "unique"}},
        text={"fields": ["k"]},
        metadata={"rows": "integer", "ns": "string_list"},
        guard={"max_delete_share": 1.0},
    )
    catalog = Catalog(config, "json")
    catalog.diff([{"k": key, "n": f"v{i}"} for key, count in sorted(before.items()) for i in range(count)])
    catalog.kind = kind if keys else "json"
    saved = row_join.DEFAULT_RUN_BYTES
    row_join.DEFAULT_RUN_BYTES = run_bytes
    try:
        # Each key's i-th row carries "v<i>": a key's rows are the same wherever they sit in the file.
        seen: dict[str, int] = {}
        rows = []
        for key in keys:
            rows.append({"k": key, "n": f"v{seen.get(key, 0)}"})
            seen[key] = seen.get(key, 0) + 1
        result = catalog.diff(rows, commit=False)
    finally:
        row_join.DEFAULT_RUN_BYTES = saved

    counted = {key: keys.count(key) for key in dict.fromkeys(keys)}
    expected = {key: "added" for key in counted if key not in before}
    expected |= {key: "metadata_only" for key, rows in counted.items() if key in before and before[key] != rows}
    expected |= {key: "deleted" for key in before if key not in counted}
    assert result.quarantined == []
    assert {change.product_id: change.kind.value for change in result.changes} == expected
    for change in result.changes:
        if change.kind is not ChangeKind.DELETED:
            n = counted[change.product_id]
            assert change.metadata == {"rows": n, "ns": sorted(f"v{i}" for i in range(n))}
    counts = result.counts
    assert (counts.records, counts.valid, counts.invalid) == (len(keys), len(counted), 0)
    assert counts.unchanged == sum(1 for key, rows in counted.items() if before.get(key) == rows)


# WooCommerce (the woocommerce-csv preset): variations joined to their parent by Parent (SKU or id:<ID>).

WOOCOMMERCE = Path(__file__).resolve().parents[1] / "data" / "woocommerce"


def woo_config() -> CatalogConfig:
    return CatalogConfig(**extend_preset(load_preset("woocommerce-csv"), {"name": "store"}))


def woo_rows() -> list[dict[str, str]]:
    with (WOOCOMMERCE / "products.csv").open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def test_woocommerce_variations_are_joined_to_their_parent_by_sku_or_id():
    result = Catalog(woo_config()).diff((WOOCOMMERCE / "products.csv").read_bytes())
    assert result.quarantined == []
    # Eleven rows: six products (simple, variable by SKU, simple, variable without SKU, external, grouped).
    assert (result.counts.records, result.counts.valid) == (11, 6)
    by_id = changes(result)
    assert sorted(by_id) == ["10", "11", "14", "15", "18", "19"]
    hoodie = by_id["11"].metadata
    assert hoodie is not None
    # Its variations 12 and 13 follow it; 20 comes after three other products.
    assert (hoodie["name"], hoodie["price_min"], hoodie["price_max"], hoodie["stock"]) == ("Hoodie", 42, 48, 12)
    assert hoodie["variations"] == 3 and hoodie["sale_price_min"] == 40
    assert hoodie["skus"] == ["woo-hoodie", "woo-hoodie-blue-logo", "woo-hoodie-green", "woo-hoodie-red"]
    assert hoodie["categories"] == ["Clothing > Hoodies", "Clothing"] and len(hoodie["images"]) == 3
    assert by_id["11"].text.startswith("Hoodie\nA heavyweight hoodie, & a kangaroo pocket.\nBrushed fleece")
    polo = by_id["15"].metadata
    assert polo is not None and (polo["price_min"], polo["price_max"], polo["variations"]) == (20, 22, 2)


def test_woocommerce_a_variation_whose_parent_is_not_in_the_file_is_quarantined_not_a_product():
    catalog = Catalog(woo_config())
    rows = woo_rows()
    catalog.diff(rows)
    without_polo = [row for row in rows if row["ID"] != "15"]
    result = catalog.diff(without_polo)
    [quarantined] = result.quarantined
    assert quarantined.product_id is None
    assert quarantined.reason == (
        "the 2 row(s) of product_key 'id:15' are all variations (Type 'variation'): their parent 'id:15' is not in"
        " the file"
    )
    assert [(c.product_id, c.kind) for c in result.changes] == [("15", ChangeKind.DELETED)]


def test_woocommerce_two_products_under_one_sku_are_quarantined_and_keep_their_versions():
    catalog = Catalog(woo_config())
    rows = woo_rows()
    catalog.diff(rows)
    clash = [dict(row) for row in rows]
    cap = next(row for row in clash if row["ID"] == "14")
    cap["SKU"] = "woo-beanie"
    result = catalog.diff(clash)
    [quarantined] = result.quarantined
    assert quarantined.reason.startswith("2 rows of product_key 'woo-beanie' are products, not variations")
    # The two rows are apart: the location names both.
    assert quarantined.location == "line 2 (2 rows): line 2, line 11"
    # Neither the beanie nor the cap is deleted or changed: both keep their last good version.
    assert quarantined.product_id == "10" and list(result.changes) == []
    assert result.counts.unchanged == 4


def test_woocommerce_a_variation_edited_added_moved_and_removed():
    catalog = Catalog(woo_config())
    rows = woo_rows()
    catalog.diff(rows)
    edited = [dict(row) for row in rows]
    red = next(row for row in edited if row["ID"] == "20")
    red["Regular price"] = "50"
    result = catalog.diff(edited)
    assert {pid: (c.kind, c.fields_changed) for pid, c in changes(result).items()} == {
        "11": (ChangeKind.METADATA_ONLY, ("price_max",))
    }
    # Moved next to its siblings: no change.
    moved = [row for row in edited if row["ID"] != "20"]
    moved.insert(4, red)
    result = catalog.diff(moved)
    assert list(result.changes) == [] and result.counts.unchanged == 6
    # A new variation of the polo at the end of the file.
    large = dict(next(row for row in rows if row["ID"] == "17"))
    large.update({"ID": "21", "Name": "Polo - L", "Regular price": "24", "Stock": "2", "Attribute 1 value(s)": "L"})
    result = catalog.diff([*moved, large])
    assert {pid: (c.kind, c.fields_changed) for pid, c in changes(result).items()} == {
        "15": (ChangeKind.METADATA_ONLY, ("price_max", "stock", "variations"))
    }
    # Removed again.
    result = catalog.diff(moved)
    assert {pid: (c.kind, c.fields_changed) for pid, c in changes(result).items()} == {
        "15": (ChangeKind.METADATA_ONLY, ("price_max", "stock", "variations"))
    }
    assert changes(result)["15"].metadata["price_max"] == 22  # type: ignore[index]


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(KEYS, st.booleans()), max_size=16),
    kind=st.sampled_from(["jsonl", "json", "csv"]),
)
def test_variations_anywhere_match_joining_them_to_their_parent_by_hand(rows: list[tuple[str, bool]], kind: str):
    """Each row is (its product's key, whether it is a variation): a parent row has the key as its SKU, a
    variation names it as Parent. Whatever the order, a key with one parent is one product of the parent's ID with
    its variations counted; a key with none or with two parents is one quarantined group."""
    config = make_config(
        id_field="ID",
        source={"group_by": "key", "sorted": False, "variations": {"field": "Type", "value": "variation"}},
        fields={
            "key": {"from": ["Parent", "SKU", {"template": "id:{ID}"}]},
            "variations": {"from": "Parent", "aggregate": "count"},
            "name": {"from": "Name"},
        },
        text={"fields": ["name"]},
        metadata={"variations": "integer", "name": "string"},
    )
    records = [
        {
            "ID": str(100 + index),
            "Type": "variation" if variation else "variable",
            "SKU": "" if variation else key,
            "Parent": key if variation else "",
            "Name": f"{key} variation" if variation else f"{key} product",
        }
        for index, (key, variation) in enumerate(rows)
    ]
    catalog = Catalog(config, kind if records else "json")
    result = catalog.diff(records, commit=False)

    parents: dict[str, list[str]] = {}
    variation_counts: dict[str, int] = {}
    for record in records:
        if record["Type"] == "variation":
            variation_counts[record["Parent"]] = variation_counts.get(record["Parent"], 0) + 1
        else:
            parents.setdefault(record["SKU"], []).append(record["ID"])
    keys = set(parents) | set(variation_counts)
    whole = {key: ids[0] for key, ids in parents.items() if len(ids) == 1}
    assert {c.product_id: c.metadata for c in result.changes} == {
        product_id: {"variations": variation_counts.get(key, 0), "name": f"{key} product"}
        for key, product_id in whole.items()
    }
    assert len(result.quarantined) == len(keys) - len(whole)
    orphans = [q for q in result.quarantined if q.product_id is None]
    assert len(orphans) == sum(1 for key in keys if key not in parents)
    assert all("is not in the file" in q.reason for q in orphans)
    assert (result.counts.records, result.counts.valid) == (len(records), len(whole))


def test_woocommerce_variations_of_a_product_that_keeps_the_stock_are_no_count_of_their_own():
    # WooCommerce writes "parent" in the Stock of a variation whose product manages the stock.
    rows = woo_rows()
    hoodie = {"11", "12", "13", "20"}
    kept = [dict(row, Stock="30" if row["ID"] == "11" else "parent") if row["ID"] in hoodie else row for row in rows]
    result = Catalog(woo_config()).diff(kept)
    assert result.quarantined == []
    metadata = changes(result)["11"].metadata
    assert metadata is not None and metadata["stock"] == 30
