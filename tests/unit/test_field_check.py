"""The field check: the config's names that no record has, with the names the records do have."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from catalog_sync.formats.catalog import CatalogStream, open_catalog
from catalog_sync.formats.names import close_names, did_you_mean
from catalog_sync.formats.records import READER_ERROR_KEY, CatalogFormatError
from catalog_sync.logic.diff import CatalogDiff
from catalog_sync.logic.field_check import FieldCheck, FieldCheckReport, Severity
from catalog_sync.logic.snapshot import EmptySnapshot
from catalog_sync.models.config import CatalogConfig, load_config
from tests.conftest import make_config, product
from tests.unit.test_diff import MemorySnapshot

# A Shopify-style export: column names with spaces and capitals.
SHOPIFY_ROW = {"Handle": "tee", "Title": "Tee", "Body (HTML)": "<p>x</p>", "Variant SKU": "T-1", "Variant Price": "9"}


def check(config: CatalogConfig, records: list[dict[str, Any]], **report: Any) -> FieldCheckReport:
    checker = FieldCheck(config)
    for record in records:
        checker.observe(record)
    return checker.report(**report)


def messages(report: FieldCheckReport) -> list[tuple[str, str]]:
    return [(problem.severity.value, problem.message) for problem in report.problems]


def shopify(**overrides: Any) -> CatalogConfig:
    data: dict[str, Any] = {
        "name": "shop",
        "id_field": "Variant SKU",
        "text": {"fields": ["Title"]},
        # A column whose name has a space is read through a derived field.
        "fields": {"price": {"from": "Varient Price"}},
        "metadata": {"price": "number"},
    }
    data.update(overrides)
    return CatalogConfig(**data)


def test_a_misspelt_metadata_name_is_a_warning_naming_the_real_column():
    report = check(shopify(), [SHOPIFY_ROW] * 3)
    assert messages(report) == [
        ("warning", "fields.price source 'Varient Price' never appears in the catalog; did you mean 'Variant Price'?")
    ]
    [problem] = report.problems
    assert problem.field == "Varient Price" and problem.settings == ["fields.price"]
    assert problem.suggestions == ["Variant Price"]
    assert report.complete and report.records_checked == 3 and report.records_not_parsed == 0
    assert report.field_counts == {"Title": 3, "Variant SKU": 3, "Varient Price": 0}


def test_a_wrong_case_id_field_is_one_error_with_the_right_name():
    report = check(make_config(id_field="SKU"), [product(str(i)) for i in range(5_000)])
    assert messages(report) == [("error", "id_field 'SKU' is in no record; did you mean 'sku'?")]
    assert [problem.field for problem in report.errors] == ["SKU"] and report.warnings == []


def test_an_id_field_without_a_close_match_lists_the_names_the_records_have():
    report = check(make_config(id_field="code", metadata={}), [{"sku": "1", "title": "t", "description": "d"}])
    assert messages(report) == [
        ("error", "id_field 'code' is in no record (the records have 'description', 'sku', 'title')")
    ]


def test_names_equal_but_for_case_spaces_and_underscores_come_before_near_misses():
    names = ["Variant Price", "variant_prices", "Variant Compare At Price", "title"]
    assert close_names("variant_price", names) == ["Variant Price", "variant_prices", "Variant Compare At Price"]
    assert close_names("variant_price", names, limit=1) == ["Variant Price"]
    assert close_names("TITEL", names) == ["title"]
    assert close_names("zzz", names) == []
    assert did_you_mean(["a"]) == "; did you mean 'a'?"
    assert did_you_mean(["a", "b", "c"]) == "; did you mean 'a', 'b' or 'c'?"
    assert did_you_mean([]) == ""


def test_fields_present_in_some_records_are_fine_and_counted():
    records = [product("1"), product("2", brand="Acme"), {k: v for k, v in product("3").items() if k != "stock"}]
    report = check(make_config(metadata={"brand": "string", "stock": "integer"}), records)
    assert report.problems == []
    assert report.field_counts["brand"] == 1 and report.field_counts["stock"] == 2


def test_every_setting_that_names_a_field_is_checked():
    config = make_config(
        id_field="sku",
        text={"fields": ["title", "descripton"], "template": "{title}\n{descripton}"},
        metadata={"prise": "number"},
        required_fields=["titel"],
        priority_fields=["stok"],
        source={"group_by": "handle"},
    )
    report = check(config, [product("1", Handle="h")])
    assert messages(report) == [
        (
            "error",
            "required field 'titel' never appears in the catalog (every record is quarantined); did you mean 'title'?",
        ),
        (
            "error",
            "source.group_by field 'handle' never appears in the catalog (no rows are grouped into products); did "
            "you mean 'Handle'?",
        ),
        ("warning", "text field 'descripton' never appears in the catalog; did you mean 'description'?"),
        ("warning", "metadata field 'prise' never appears in the catalog; did you mean 'price'?"),
        ("warning", "priority field 'stok' never appears in the catalog; did you mean 'stock'?"),
    ]


def test_one_name_used_by_several_settings_is_one_problem():
    config = make_config(text={"fields": ["Brand"]}, metadata={"Brand": "string"}, priority_fields=["Brand"])
    report = check(config, [product("1", brand="Acme")])
    assert messages(report) == [
        (
            "warning",
            "text, metadata and priority field 'Brand' never appears in the catalog; did you mean 'brand'?",
        )
    ]
    assert report.problems[0].settings == ["text.fields", "metadata", "priority_fields"]


def test_the_default_priority_fields_are_not_checked_but_written_ones_are(tmp_path):
    records = [{"sku": "1", "title": "t", "description": "d"}]  # no price, availability or stock
    assert check(make_config(metadata={}), records).problems == []
    written = check(make_config(metadata={}, priority_fields=["price", "availability", "stock"]), records)
    assert [problem.field for problem in written.problems] == ["price", "availability", "stock"]
    # Written in the file, or set through the environment: both are the user's names.
    path = tmp_path / "shop.toml"
    path.write_text('name = "shop"\nid_field = "sku"\n[text]\nfields = ["title"]\n')
    assert check(load_config(path), records).problems == []
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CATALOG_SYNC_PRIORITY_FIELDS", '["prise"]')
        assert [problem.field for problem in check(load_config(path), records).problems] == ["prise"]


def test_a_derived_name_is_not_a_record_key_but_its_source_is():
    config = make_config(
        text={"fields": ["title", "body"]},
        metadata={"barcode": "string"},
        fields={
            "body": {"from": "Body (HTML)", "transform": "html_to_text"},
            "barcode": {"from": "meta.barcode"},
            "image": {"from": "images.0.src"},
            "weight": {"from": "Variant Grams"},
        },
    )
    records = [{"sku": "1", "title": "t", "Body HTML": "<p>x</p>", "meta": {"barcode": "1"}, "Images": []}]
    report = check(config, records)
    assert messages(report) == [
        ("warning", "fields.body source 'Body (HTML)' never appears in the catalog; did you mean 'Body HTML'?"),
        (
            "warning",
            "fields.image source 'images.0.src': 'images' never appears in the catalog; did you mean 'Images'?",
        ),
        ("warning", "fields.weight source 'Variant Grams' never appears in the catalog"),
    ]
    assert report.field_counts["meta"] == 1


def test_a_dotted_source_that_is_a_column_name_is_found():
    config = make_config(metadata={"barcode": "string"}, fields={"barcode": {"from": "meta.barcode"}})
    assert check(config, [product("1", **{"meta.barcode": "123"})]).problems == []


def test_a_derived_field_read_from_another_is_checked_through_it():
    config = make_config(fields={"body": {"from": "Body"}, "summary": {"from": "body"}})
    assert messages(check(config, [product("1", Body="b")])) == []
    assert messages(check(config, [product("1")])) == [
        ("warning", "fields.body source 'Body' never appears in the catalog")
    ]


def test_a_name_listed_twice_in_one_setting_is_one_use():
    report = check(make_config(required_fields=["titel", "titel"]), [product("1")])
    assert [(problem.settings, problem.message.split(" never")[0]) for problem in report.problems] == [
        (["required_fields"], "required field 'titel'")
    ]


def test_a_derived_required_field_read_from_nowhere_is_an_error():
    # (A derived field cannot be the id_field: the config refuses it.)
    config = make_config(required_fields=["barcode"], fields={"barcode": {"from": "Barcod"}})
    report = check(config, [product("1", Barcode="b")])
    assert messages(report) == [
        (
            "error",
            "fields.barcode source 'Barcod' never appears in the catalog (every record is quarantined); did you mean "
            "'Barcode'?",
        )
    ]


def test_a_name_read_directly_and_by_a_derived_field_is_one_problem():
    config = make_config(metadata={"Handel": "string"}, fields={"handle": {"from": "Handel"}})
    assert messages(check(config, [product("1", Handle="h")])) == [
        (
            "warning",
            "metadata field 'Handel' (read by fields.handle) never appears in the catalog; did you mean 'Handle'?",
        )
    ]


def test_the_reader_error_key_is_no_name_of_the_catalog():
    config = make_config(id_field="x", text={"fields": ["sku"]}, metadata={})
    report = check(config, [{"sku": "1", READER_ERROR_KEY: "row has 3 fields"}])
    assert messages(report) == [("error", "id_field 'x' is in no record (the records have 'sku')")]


def test_distinct_names_are_capped_and_the_cap_is_said():
    checker = FieldCheck(make_config(text={"fields": ["title"]}, metadata={"price": "number"}), max_names=100)
    for i in range(1_000):
        checker.observe({"sku": str(i), "title": "t", f"attribute_{i}": i})
    report = checker.report()
    assert report.names_capped and report.distinct_names <= 100 + 3
    # The config's own names are counted whatever the cap: price is in no record, sku and title in all.
    assert report.field_counts["sku"] == 1_000 and report.field_counts["price"] == 0
    assert [problem.field for problem in report.problems] == ["price"]
    uncapped = check(make_config(), [product("1")])
    assert not uncapped.names_capped and uncapped.distinct_names == 7


def test_counts_are_exact_however_many_shapes_the_records_have():
    # Records with one key list each are folded at the end; past 256 key lists, or with more than 256 keys, a
    # record is counted at once: both ways must add up to the same counts.
    config = make_config(text={"fields": ["title"]}, metadata={"price": "number", "stock": "integer"})
    records: list[dict[str, Any]] = []
    for i in range(2_000):
        record: dict[str, Any] = {"sku": str(i), "title": "t", f"extra_{i % 400}": 1}
        if i % 3:
            record["price"] = 1.0
        if i % 7 == 0:
            record.update({f"wide_{n}": n for n in range(300)})
        records.append(record)
    report = check(config, records)
    assert report.records_checked == 2_000
    for name in ("sku", "title", "price", "stock"):
        assert report.field_counts[name] == sum(name in record for record in records), name
    assert [problem.field for problem in report.problems] == ["stock"]
    assert report.distinct_names == 3 + 400 + 300


def test_nothing_seen_reports_nothing():
    report = check(make_config(id_field="SKU"), [])
    assert report.problems == [] and not report.complete and report.records_checked == 0


def test_a_partial_view_reports_nothing_and_says_how_much_it_saw():
    report = check(make_config(id_field="SKU"), [product("1")], records_read=10)
    assert report.problems == []
    assert (report.complete, report.records_checked, report.records_not_parsed) == (False, 1, 9)


def jsonl_stream(records: list[dict[str, Any]]) -> CatalogStream:
    data = b"".join(orjson.dumps(record) + b"\n" for record in records)
    return open_catalog(io.BytesIO(data), "c.jsonl")


def test_the_diff_carries_the_report_of_every_record_it_parsed():
    differ = CatalogDiff(make_config(metadata={"brand": "string"}), model_id="m")
    records = [product(str(i)) for i in range(4)]
    result = differ.run(jsonl_stream(records), EmptySnapshot())
    assert result.field_check is not None and result.field_check.complete
    assert result.field_check.records_checked == 4
    assert messages(result.field_check) == [("warning", "metadata field 'brand' never appears in the catalog")]
    # A record without an id is still seen: its names count.
    wrong_id = CatalogDiff(make_config(id_field="SKU"), model_id="m").run(jsonl_stream(records), EmptySnapshot())
    assert wrong_id.counts.invalid == 4
    assert wrong_id.field_check is not None
    assert messages(wrong_id.field_check) == [("error", "id_field 'SKU' is in no record; did you mean 'sku'?")]


def test_the_fast_path_leaves_lines_unparsed_and_the_report_says_so():
    differ = CatalogDiff(make_config(metadata={"brand": "string"}), model_id="m")
    records = [product(str(i)) for i in range(4)]
    snapshot = MemorySnapshot()
    snapshot.record(differ.run(jsonl_stream(records), snapshot, version=1), 1)
    # One line changed: the other three are skipped unparsed, so no absence can be concluded.
    again = differ.run(jsonl_stream([*records[:3], product("3", price=1.0)]), snapshot, version=2)
    assert again.field_check is not None
    assert (again.field_check.records_checked, again.field_check.records_not_parsed) == (1, 3)
    assert not again.field_check.complete and again.field_check.problems == []
    # Parsed formats are seen whole, fast path or not.
    parsed = differ.run(CatalogStream.from_records(records), snapshot, version=3)
    assert parsed.field_check is not None and parsed.field_check.complete
    assert parsed.field_check.records_checked == 4 and len(parsed.field_check.problems) == 1


def test_a_csv_header_without_the_id_column_suggests_the_column():
    data = b"SKU,Title\n1,Tee\n"
    with pytest.raises(CatalogFormatError) as refused:
        list(open_catalog(io.BytesIO(data), "c.csv", id_field="sku").records())
    assert str(refused.value) == (
        "c.csv, line 1: the CSV header has no 'sku' column (columns: ['SKU', 'Title']); did you mean 'SKU'?"
    )


def test_severity_values_are_stable():
    assert [severity.value for severity in Severity] == ["error", "warning"]


def test_a_presets_own_optional_fields_are_said_once_and_the_files_own_are_warned_of(tmp_path):
    from catalog_sync.models.config import load_config

    path = tmp_path / "c.toml"
    # The file re-reads one of the preset's fields from a misspelt column: that one is the user's, and warned of.
    path.write_text('name = "shop"\npreset = "shopify-csv"\n[fields]\nvendor = { from = "Vendr" }\n')
    config = load_config(path)
    row = {"Handle": "h", "Title": "T", "Body (HTML)": "<p>b</p>", "Variant Price": "1", "Vendor": "V"}
    report = check(config, [row])
    assert messages(report) == [
        ("warning", "fields.vendor source 'Vendr' never appears in the catalog; did you mean 'Vendor'?")
    ]
    # The preset's columns this export lacks: no warning each, one list.
    assert "Variant SKU" in report.preset_fields_absent and "Tags" in report.preset_fields_absent
    assert "Vendr" not in report.preset_fields_absent and report.preset == "shopify-csv"
