"""Pushed changes, checked as the diff will read them (catalog_sync.logic.push)."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from catalog_sync.formats.catalog import open_catalog
from catalog_sync.logic.diff import CatalogDiff
from catalog_sync.logic.push import JSON_SUFFIX, JSONL_SUFFIX, MAX_PUSH_CHANGES, PushRejected, prepare_push
from catalog_sync.logic.snapshot import EmptySnapshot
from catalog_sync.models.config import CatalogConfig
from tests.conftest import make_config, product


def problems(config: CatalogConfig, upserts: list[Any], deletes: list[Any]) -> dict[tuple[Any, ...], str]:
    with pytest.raises(PushRejected) as rejected:
        prepare_push(config, upserts, deletes)
    return {problem.loc: problem.reason for problem in rejected.value.problems}


def test_upserts_become_the_json_lines_the_diff_reads(config: CatalogConfig):
    upserts = [product("1"), product(" 2 ", title="Crème brûlée"), {**product("3"), "sku": 3}]
    pushed = prepare_push(config, upserts, ["4", " 5"])
    assert (pushed.suffix, pushed.content_type) == (JSONL_SUFFIX, "application/x-ndjson")
    assert pushed.upserted == ("1", "2", "3") and pushed.deleted == ("4", "5")
    assert pushed.ids == ["1", "2", "3", "4", "5"]
    # The object is a catalog the diff reads: the same products, the ids normalized its way.
    stream = open_catalog(io.BytesIO(pushed.body), f"push{pushed.suffix}", id_field=config.id_field)
    result = CatalogDiff(config, model_id="m").run(stream, EmptySnapshot(), only_ids=pushed.ids)
    assert sorted(change.product_id for change in result.changes) == ["1", "2", "3"]
    assert result.quarantined == []


def test_a_push_of_deletes_only_is_an_empty_json_array(config: CatalogConfig):
    pushed = prepare_push(config, [], ["1"])
    assert (pushed.body, pushed.suffix, pushed.content_type) == (b"[]", JSON_SUFFIX, "application/json")
    stream = open_catalog(io.BytesIO(pushed.body), f"push{pushed.suffix}", id_field=config.id_field)
    assert list(stream.records()) == []  # readable as a catalog of no records (an empty .jsonl is refused)


def test_every_problem_is_reported_with_its_place(config: CatalogConfig):
    config = make_config(required_fields=["title"])
    found = problems(
        config,
        [product("1"), {"title": "x"}, product("3", price="cheap"), product("1"), product("5", title=" ")],
        ["6", "6", "1", "", True],
    )
    assert found == {
        ("body", "upserts", 1): "missing id",
        ("body", "upserts", 2): found[("body", "upserts", 2)],
        ("body", "upserts", 3): "duplicate id (first at upserts[0])",
        ("body", "upserts", 4): "required field 'title' is missing or empty",
        ("body", "deletes", 1): "duplicate id (first at deletes[0])",
        ("body", "deletes", 2): "id is also upserted (upserts[0])",
        ("body", "deletes", 3): "empty id",
        ("body", "deletes", 4): "id must be a string or an integer, got bool",
    }
    assert found[("body", "upserts", 2)].startswith("price: Input should be a valid number")


def test_an_integer_id_to_delete_is_normalized_like_a_records(config: CatalogConfig):
    assert prepare_push(config, [], [7, "8"]).deleted == ("7", "8")  # as normalize_id takes a record's integer id


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"sku": "1", "title": "t", "x": float("nan")}, "NaN and Infinity are not JSON numbers"),
        ({"sku": "1", "title": "t", "x": [float("inf")]}, "NaN and Infinity are not JSON numbers"),
        ({"sku": "1", "title": "t", "x": 2**70}, "cannot be written as a JSON Lines record"),
        ([1, 2], "expected a JSON object, got list"),
        ({"sku": "1", "title": "t", "__reader_error__": "row has 3 fields"}, "row has 3 fields"),
        ({"sku": "x" * 600, "title": "t"}, "id is longer than 512 bytes"),
        ({"sku": "a\x00b", "title": "t"}, "id contains control characters"),
    ],
)
def test_what_json_lines_cannot_carry_faithfully_is_refused(config: CatalogConfig, record: Any, reason: str):
    assert reason in problems(config, [record], [])[("body", "upserts", 0)]


def test_a_push_changes_one_to_a_thousand_products(config: CatalogConfig):
    assert problems(config, [], []) == {("body",): "a push must upsert or delete at least one product"}
    too_many = [f"d{i}" for i in range(MAX_PUSH_CHANGES)]
    assert "at most" in problems(config, [product("x")], too_many)[("body",)]
    assert len(prepare_push(config, [], too_many).deleted) == MAX_PUSH_CHANGES


def test_the_lines_are_exactly_the_records_sent(config: CatalogConfig):
    records = [product("1", attributes={"b": 1, "a": [1.5, None, "é"]})]
    assert prepare_push(config, records, []).body == orjson.dumps(records[0]) + b"\n"


def test_a_push_maps_its_upserts_as_the_diff_does():
    config = make_config(
        fields={"barcode": {"from": "meta.barcode"}, "name": {"from": "product.name"}},
        text={"fields": ["name"]},
        metadata={"barcode": "string"},
        required_fields=["name"],
    )
    good = {"sku": "1", "product": {"name": "Lamp"}, "meta": {"barcode": "123"}}
    pushed = prepare_push(config, [good], [])
    stream = open_catalog(io.BytesIO(pushed.body), f"push{pushed.suffix}", id_field=config.id_field)
    (change,) = CatalogDiff(config, model_id="m").run(stream, EmptySnapshot(), only_ids=pushed.ids).changes
    assert (change.text, change.metadata) == ("Lamp", {"barcode": "123"})
    assert problems(config, [{"sku": "2", "meta": {"barcode": "1"}}], []) == {
        ("body", "upserts", 0): "required field 'name' is missing or empty"
    }


def test_a_push_to_a_grouped_catalog_sends_a_products_rows_together():
    config = make_config(
        id_field="handle",
        source={"group_by": "handle"},
        fields={"price_max": {"from": "price", "aggregate": "max"}},
        metadata={"price_max": "number"},
    )
    rows = [
        {"handle": "tee", "title": "Tee", "price": "60.00"},
        {"handle": "tee", "price": "65.00"},
        {"handle": "hat", "title": "Hat", "price": "20"},
    ]
    pushed = prepare_push(config, rows, ["mug"])
    assert pushed.upserted == ("tee", "hat") and pushed.deleted == ("mug",)
    stream = open_catalog(io.BytesIO(pushed.body), f"push{pushed.suffix}", id_field=config.id_field)
    result = CatalogDiff(config, model_id="m").run(stream, EmptySnapshot(), only_ids=pushed.ids)
    assert {c.product_id: c.metadata for c in result.changes if c.metadata} == {
        "tee": {"price_max": 65.0},
        "hat": {"price_max": 20.0},
    }
    found = problems(
        config,
        [*rows, {"handle": "tee", "price": "1"}, {"handle": "", "price": "2"}, {"handle": "cap", "price": "x"}],
        ["hat"],
    )
    assert found == {
        ("body", "upserts", 3): (
            "rows of handle 'tee' are not consecutive (first at upserts[0]): send a product's rows together"
        ),
        ("body", "upserts", 4): "the group_by field 'handle' is missing or empty: the row belongs to no product",
        ("body", "upserts", 5): "fields.price_max: aggregate 'max' needs numbers, got 'x'",
        ("body", "deletes", 0): "id is also upserted (upserts[2])",
    }


def test_a_push_to_an_unsorted_catalog_with_variations_joins_them_to_their_parent():
    config = make_config(
        id_field="ID",
        source={
            "group_by": "key",
            "sorted": False,
            "variations": {"field": "Type", "value": "variation"},
        },
        fields={
            "key": {"from": ["Parent", "SKU", {"template": "id:{ID}"}]},
            "price_max": {"from": "price", "aggregate": "max"},
        },
        metadata={"price_max": "number"},
    )
    rows = [
        {"ID": "12", "Type": "variation", "Parent": "hoodie", "price": "45"},
        {"ID": "14", "Type": "simple", "SKU": "cap", "title": "Cap", "price": "16"},
        {"ID": "11", "Type": "variable", "SKU": "hoodie", "title": "Hoodie"},
        {"ID": "20", "Type": "variation", "Parent": "hoodie", "price": "48"},
    ]
    pushed = prepare_push(config, rows, [])
    # The hoodie's id is its own row's, though a variation was sent first and another after the cap.
    assert sorted(pushed.upserted) == ["11", "14"]
    stream = open_catalog(io.BytesIO(pushed.body), f"push{pushed.suffix}", id_field=config.id_field)
    result = CatalogDiff(config, model_id="m").run(stream, EmptySnapshot(), only_ids=pushed.ids)
    assert {c.product_id: c.metadata for c in result.changes} == {"11": {"price_max": 48}, "14": {"price_max": 16}}
    found = problems(config, [{"ID": "16", "Type": "variation", "Parent": "id:15", "price": "20"}], [])
    assert found == {
        ("body", "upserts", 0): (
            "the 1 row(s) of key 'id:15' are all variations (Type 'variation'): their parent 'id:15' is not in the file"
        )
    }
