"""The catalog mapping (logic/mapping.py): derived fields, groups of rows, and the names the config accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalog_sync.logic.mapping import MAX_GROUP_ROWS, CatalogMapping, FieldPath, LooseRow, RowGroup
from catalog_sync.logic.validation import InvalidRecord, RecordValidator, render_text_value
from catalog_sync.models.config import ConfigError, load_config
from tests.conftest import make_config


def mapping(fields: dict[str, Any], *, group_by: str | None = None, **overrides: Any) -> CatalogMapping:
    return CatalogMapping(
        make_config(fields=fields, source={"group_by": group_by} if group_by else {}, metadata={}, **overrides)
    )


def derive(spec: dict[str, Any], rows: list[dict[str, Any]], *, group_by: str | None = "handle") -> Any:
    """The value of one derived field `x` over rows (one group), or over one record without group_by."""
    mapped = mapping({"x": spec}, group_by=group_by)
    product = mapped.group_product(rows) if group_by else mapped.record_product(rows[0])
    return product["x"]


# Paths


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("meta.barcode", "4006381333931"),
        ("images.0.src", "a.jpg"),
        ("images.1.src", "b.jpg"),
        ("images.2.src", None),  # past the end
        ("images.x.src", None),  # a list takes an index, not a key
        ("meta.barcode.digits", None),  # a string has no parts
        ("missing.path", None),
        ("Variant Price", "60.00"),
        ("meta.0", None),
    ],
)
def test_a_path_reads_keys_and_list_indices(path: str, expected: Any):
    record = {
        "meta": {"barcode": "4006381333931"},
        "images": [{"src": "a.jpg"}, {"src": "b.jpg"}],
        "Variant Price": "60.00",
    }
    assert FieldPath.parse(path).read(record) == expected


def test_an_exact_key_wins_over_splitting_the_path():
    record = {"meta.barcode": "from the column", "meta": {"barcode": "from the object"}}
    assert FieldPath.parse("meta.barcode").read(record) == "from the column"
    assert FieldPath.parse("meta.barcode").read({"meta": {"barcode": "from the object"}}) == "from the object"


def test_an_object_key_that_is_digits_is_read_as_a_key():
    assert FieldPath.parse("sizes.42").read({"sizes": {"42": "EU 42"}}) == "EU 42"


# Aggregates over a group's rows

ROWS = [
    {"handle": "tee", "title": "Tee", "price": "60.00", "qty": "12", "size": "S", "on": "TRUE"},
    {"handle": "tee", "title": "", "price": "65.5", "qty": "0", "size": "M", "on": ""},
    {"handle": "tee", "title": None, "price": "", "qty": "7", "size": "S", "on": "false"},
    {"handle": "tee", "image": "b.jpg"},  # an image-only row: no variant columns
]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"from": "title"}, "Tee"),
        ({"from": "size", "aggregate": "first"}, "S"),
        ({"from": "size", "aggregate": "last"}, "S"),
        ({"from": "price", "aggregate": "last"}, "65.5"),
        ({"from": "size", "aggregate": "list"}, ["S", "M", "S"]),
        ({"from": "size", "aggregate": "unique"}, ["M", "S"]),
        ({"from": "price", "aggregate": "min"}, 60),
        ({"from": "price", "aggregate": "max"}, 65.5),
        ({"from": "qty", "aggregate": "sum"}, 19),
        ({"from": "price", "aggregate": "count"}, 2),
        ({"from": "image", "aggregate": "count"}, 1),
        ({"from": "on", "aggregate": "any"}, True),
        ({"from": "on", "aggregate": "all"}, False),
        ({"from": "nothing", "aggregate": "count"}, 0),
        ({"from": "nothing", "aggregate": "min"}, None),
        ({"from": "nothing", "aggregate": "list"}, None),
        ({"from": "nothing", "aggregate": "any"}, None),
    ],
)
def test_aggregates_over_the_rows_of_a_group(spec: dict[str, Any], expected: Any):
    value = derive(spec, ROWS)
    assert value == expected
    assert type(value) is type(expected)


def test_numeric_aggregates_compare_numbers_not_strings():
    rows = [{"handle": "h", "price": price} for price in ("9.50", "60.00", "100", 12, 7.25)]
    assert derive({"from": "price", "aggregate": "min"}, rows) == 7.25
    assert derive({"from": "price", "aggregate": "max"}, rows) == 100  # "100" < "60.00" as strings
    # Exact decimal sums: 0.1 + 0.2 is 0.3, as a shop's prices add up.
    assert derive({"from": "p", "aggregate": "sum"}, [{"p": "0.10"}, {"p": "0.20"}]) == 0.3


@pytest.mark.parametrize("bad", ["$60", "sixty", "NaN", "Infinity", True, {"amount": 60}])
def test_a_value_a_numeric_aggregate_cannot_read_names_the_field(bad: Any):
    rows = [{"handle": "h", "price": "60.00"}, {"handle": "h", "price": bad}]
    with pytest.raises(InvalidRecord, match=r"fields\.x: aggregate 'max' needs numbers, got "):
        derive({"from": "price", "aggregate": "max"}, rows)


def test_a_value_a_boolean_aggregate_cannot_read_names_the_field():
    with pytest.raises(InvalidRecord, match=r"fields\.x: aggregate 'all' needs true or false values, got 'maybe'"):
        derive({"from": "on", "aggregate": "all"}, [{"on": "yes"}, {"on": "maybe"}])


def test_unique_min_max_sum_count_do_not_depend_on_the_rows_order():
    rows = [{"handle": "h", "size": s, "price": p} for s, p in (("M", "60"), ("S", "65"), ("L", "60"), ("S", "62"))]
    for aggregate, source in (("unique", "size"), ("min", "price"), ("max", "price"), ("sum", "price")):
        spec = {"from": source, "aggregate": aggregate}
        assert derive(spec, rows) == derive(spec, rows[::-1]), aggregate
    # list keeps the rows' order: reordering the rows changes it.
    assert derive({"from": "size", "aggregate": "list"}, rows) == ["M", "S", "L", "S"]
    assert derive({"from": "size", "aggregate": "list"}, rows[::-1]) == ["S", "L", "S", "M"]


def test_unique_sorts_numbers_numerically_and_treats_one_spelling_as_one_value():
    rows = [{"n": value} for value in (10, 9, 10.0, "b", " a ", "a")]
    assert derive({"from": "n", "aggregate": "unique"}, rows) == [9, 10, "a", "b"]


def test_a_list_value_counts_as_its_items():
    rows = [{"handle": "h", "sizes": ["S", "M"]}, {"handle": "h", "sizes": ["M", "", None, "L"]}]
    assert derive({"from": "sizes", "aggregate": "list"}, rows) == ["S", "M", "M", "L"]
    assert derive({"from": "sizes", "aggregate": "count"}, rows) == 4
    # Without an aggregate, the first non-empty value as it is.
    assert derive({"from": "sizes"}, rows) == ["S", "M"]


def test_without_group_by_an_aggregate_reads_the_one_record():
    record = {"sku": "A", "prices": ["12.5", "9"], "title": "Lamp", "reviews": [{"stars": 4}, {"stars": 5}]}
    assert derive({"from": "prices", "aggregate": "min"}, [record], group_by=None) == 9
    assert derive({"from": "title", "aggregate": "list"}, [record], group_by=None) == ["Lamp"]
    assert derive({"from": "reviews", "aggregate": "count"}, [record], group_by=None) == 2
    assert derive({"from": "title", "aggregate": "count"}, [record], group_by=None) == 1


# Transforms and join


def test_html_to_text_reads_the_html_as_a_browser_shows_it():
    html = "<p>A soft tee in <strong>organic cotton</strong> &amp; more.</p>\n<ul><li>Relaxed fit</li>"
    html += '<li>"True" to size</li></ul>'
    text = derive({"from": "body", "transform": "html_to_text"}, [{"body": html}])
    assert text == 'A soft tee in organic cotton & more.\n\nRelaxed fit\n"True" to size'
    assert derive({"from": "body", "transform": "html_to_text"}, [{"body": "<script>x()</script>Plain"}]) == "Plain"


def test_html_to_text_loses_nothing_of_a_long_or_deeply_nested_description():
    # libxml2's defaults silently drop a text node over 10 MB and what is nested deeper than 255 elements.
    deep = "<div>" * 300 + "deep inside" + "</div>" * 300
    assert derive({"from": "body", "transform": "html_to_text"}, [{"body": deep}]) == "deep inside"
    long = "<p>" + "word " * 2_200_000 + "end</p>"  # 11 MB of text in one node
    text = derive({"from": "body", "transform": "html_to_text"}, [{"body": long}])
    assert text.endswith("word end") and text.count("word") == 2_200_000


def test_transforms_apply_in_order_and_to_each_string_of_a_list():
    rows = [{"body": "<p>One</p>\n<p>two</p>"}, {"body": "<b>Three</b>   four"}]
    both = {"from": "body", "aggregate": "list", "transform": ["html_to_text", "collapse_whitespace"]}
    assert derive(both, rows) == ["One two", "Three four"]
    assert derive({"from": "t", "transform": "collapse_whitespace"}, [{"t": "  a \n\t b  "}]) == "a b"
    assert derive({"from": "n", "aggregate": "sum", "transform": "collapse_whitespace"}, [{"n": "2"}]) == 2


@pytest.mark.parametrize(
    ("text", "number", "unit"),
    [
        ("15.00 USD", 15.0, "USD"),
        ("  9.5 EUR ", 9.5, "EUR"),
        ("1,299.00 USD", 1299.0, "USD"),  # commas between thousands
        ("1,000,000 JPY", 1_000_000.0, "JPY"),
        ("42", 42.0, None),
        ("26 cm", 26.0, "cm"),
        ("15.00USD", 15.0, "USD"),
        ("-3.5 USD", -3.5, "USD"),
    ],
)
def test_number_reads_the_number_a_text_starts_with_and_unit_what_follows(text: str, number: float, unit: Any):
    assert derive({"from": "price", "transform": "number"}, [{"price": text}], group_by=None) == number
    assert derive({"from": "price", "transform": "unit"}, [{"price": text}], group_by=None) == unit


@pytest.mark.parametrize(
    "text",
    ["USD 15.00", "call for price", "15,00 EUR", "1.299,00 EUR", "1,2345 USD", ".5 USD", "9" * 400 + " USD"],
)
def test_a_text_number_cannot_read_is_a_reason_naming_the_field(text: str):
    # The derived field here is `x`: the reason names it, then says what the value should look like.
    for transform in ("number", "unit"):
        with pytest.raises(
            InvalidRecord, match=rf"^fields\.x: the transform '{transform}' needs a text that starts with"
        ):
            derive({"from": "p", "transform": transform}, [{"p": text}], group_by=None)


def test_number_leaves_a_number_as_it_is_unit_finds_none_in_it_and_an_absent_value_stays_absent():
    assert derive({"from": "p", "transform": "number"}, [{"p": 12.5}], group_by=None) == 12.5
    assert derive({"from": "p", "transform": "unit"}, [{"p": 12.5}], group_by=None) is None
    assert derive({"from": "p", "transform": "number"}, [{"p": ""}], group_by=None) is None
    assert (
        derive({"from": "p", "transform": ["collapse_whitespace", "number"]}, [{"p": " 3 \n USD"}], group_by=None)
        == 3.0
    )


def test_number_must_be_the_last_transform(tmp_path: Path):
    with pytest.raises(
        ConfigError, match=r"fields\.p\.transform: .*'number' makes a number, not text: it must come last"
    ):
        load_config(config_file(tmp_path, '[fields]\np = { from = "price", transform = ["number", "html_to_text"] }\n'))


def test_join_makes_one_string_of_a_list():
    rows = [{"size": "S"}, {"size": "M"}, {"size": "S"}]
    assert derive({"from": "size", "aggregate": "unique", "join": " / "}, rows) == "M / S"
    assert derive({"from": "size", "aggregate": "unique", "join": " / "}, [{"size": ""}]) is None
    reviews = [{"author": "Ana", "body": "Great, fits well"}, {"author": "Bo", "body": "Too small"}]
    joined = derive({"from": "reviews", "join": "\n"}, [{"reviews": reviews}], group_by=None)
    assert joined == "author: Ana; body: Great, fits well\nauthor: Bo; body: Too small"


def test_a_list_of_objects_renders_one_object_per_line():
    reviews = [{"author": "Ana", "body": "Great, fits well"}, {"author": "Bo", "stars": 4.0}, {}]
    assert render_text_value(reviews) == "author: Ana; body: Great, fits well\nauthor: Bo; stars: 4"
    assert render_text_value(["a", "b", 3]) == "a, b, 3"  # a list of plain values is as before
    assert render_text_value([["S", "M"], ["L"]]) == "S, M\nL"


def test_a_list_of_objects_in_the_text_is_no_longer_refused():
    config = make_config(text={"fields": ["title", "reviews"]}, metadata={})
    record = {"sku": "A", "title": "Tee", "reviews": [{"author": "Ana", "body": "Soft"}, {"author": "Bo"}]}
    assert RecordValidator(config).validate("A", record).text == "Tee\nauthor: Ana; body: Soft\nauthor: Bo"


# Products


def test_a_record_product_adds_derived_fields_and_a_derived_name_wins():
    mapped = mapping({"barcode": {"from": "meta.barcode"}, "title": {"from": "name"}})
    record = {"sku": "A", "title": "raw title", "name": "Derived", "meta": {"barcode": "123"}}
    assert mapped.record_product(record) == {**record, "barcode": "123", "title": "Derived"}
    assert record["title"] == "raw title"  # the raw record, kept for the quarantine, is not changed


def test_a_group_product_takes_each_field_from_the_first_row_that_has_it():
    mapped = mapping({"qty": {"from": "stock", "aggregate": "sum"}}, group_by="handle", id_field="handle")
    rows = [
        {"handle": "tee", "title": "", "description": "Soft", "stock": "1"},
        {"handle": "tee", "title": "Tee", "description": "ignored", "stock": "2"},
    ]
    assert mapped.group_product(rows) == {"handle": "tee", "title": "Tee", "description": "Soft", "qty": 3}


def test_the_id_of_a_group_on_another_field_is_its_first_non_empty_value():
    mapped = mapping({}, group_by="handle", id_field="product_id")
    rows = [{"handle": "tee", "product_id": ""}, {"handle": "tee", "product_id": "P-1"}]
    assert mapped.group_product(rows)["product_id"] == "P-1"


# Groups


def rows_of(*records: dict[str, Any]) -> list[tuple[int, dict[str, Any], None]]:
    return [(position, record, None) for position, record in enumerate(records, start=2)]


def test_consecutive_rows_with_one_key_are_one_group():
    mapped = mapping({}, group_by="Handle")
    items = list(
        mapped.group_rows(rows_of({"Handle": "a"}, {"Handle": " a "}, {"Handle": "b"}, {"Handle": 7}, {"Handle": "7"}))
    )
    assert [(item.key, item.positions, item.earlier) for item in items if isinstance(item, RowGroup)] == [
        ("a", [2, 3], None),
        ("b", [4], None),
        ("7", [5, 6], None),
    ]


def test_a_key_seen_again_after_another_group_is_reported_with_where_it_began():
    mapped = mapping({}, group_by="Handle")
    items = list(mapped.group_rows(rows_of({"Handle": "a"}, {"Handle": "b"}, {"Handle": "a"}, {"Handle": "a"})))
    assert [(item.key, item.positions, item.earlier) for item in items if isinstance(item, RowGroup)] == [
        ("a", [2], None),
        ("b", [3], None),
        ("a", [4, 5], 2),
    ]


def test_a_row_without_a_key_is_loose_and_does_not_split_its_group():
    mapped = mapping({}, group_by="Handle")
    items = list(mapped.group_rows(rows_of({"Handle": "a"}, {"Handle": "  "}, {"Handle": "a"}, {"Handle": [1]})))
    # A loose row is reported as it is read, before the group it sits in ends.
    assert [(type(item).__name__, getattr(item, "positions", getattr(item, "position", None))) for item in items] == [
        ("LooseRow", 3),
        ("LooseRow", 5),
        ("RowGroup", [2, 4]),
    ]
    loose = [item for item in items if isinstance(item, LooseRow)]
    assert "'Handle' is missing or empty: the row belongs to no product" in loose[0].reason
    assert "'Handle' must be a string or an integer, got list" in loose[1].reason


def test_a_group_holds_at_most_max_group_rows_and_counts_the_rest():
    mapped = mapping({}, group_by="Handle")
    (group,) = mapped.group_rows((n, {"Handle": "a"}, None) for n in range(MAX_GROUP_ROWS + 5))
    assert isinstance(group, RowGroup)
    assert len(group.rows) == MAX_GROUP_ROWS and group.dropped == 5 and group.size == MAX_GROUP_ROWS + 5


# The names the config accepts


def config_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text('name = "shop"\nid_field = "sku"\n[text]\nfields = ["title"]\n' + body)
    return path


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("meta.barcode", '[fields] barcode = { from = "meta.barcode" }'),
        ("Variant Price", '[fields] variant_price = { from = "Variant Price" }'),
        ("image-url", '[fields] image_url = { from = "image-url" }'),
        ("_private", '[fields] private = { from = "_private" }'),
        ("2nd", '[fields] field_2nd = { from = "2nd" }'),
    ],
)
def test_a_metadata_name_no_index_can_store_is_refused_with_what_to_write(tmp_path: Path, name: str, hint: str):
    path = config_file(tmp_path, f'[metadata]\n"{name}" = "string"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"metadata field name {name!r} is not a plain name" in str(caught.value)
    assert hint in str(caught.value)


def test_plain_metadata_and_derived_names_load(tmp_path: Path):
    body = '[fields]\nbarcode = { from = "meta.barcode" }\n[metadata]\nbarcode = "string"\nprice_2 = "number"\n'
    config = load_config(config_file(tmp_path, body))
    assert config.fields["barcode"].source == "meta.barcode"
    assert list(config.metadata) == ["barcode", "price_2"]


def test_a_derived_name_must_be_plain_and_not_the_id(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"derived field name 'Variant Price' is not a plain name"):
        load_config(config_file(tmp_path, '[fields]\n"Variant Price" = { from = "Variant Price" }\n'))
    with pytest.raises(ConfigError, match=r"fields\.sku: a derived field cannot be the id_field"):
        load_config(config_file(tmp_path, '[fields]\nsku = { from = "meta.sku" }\n'))


def test_an_unknown_aggregate_or_transform_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"fields\.p\.aggregate"):
        load_config(config_file(tmp_path, '[fields]\np = { from = "price", aggregate = "median" }\n'))
    with pytest.raises(ConfigError, match=r"fields\.p\.transform"):
        load_config(config_file(tmp_path, '[fields]\np = { from = "price", transform = "strip_tags" }\n'))


def test_a_value_join_cannot_render_is_a_reason_not_a_traceback():
    with pytest.raises(InvalidRecord, match=r"fields\.x: NaN and Infinity are not allowed"):
        derive({"from": "n", "aggregate": "list", "join": ", "}, [{"n": 1.5}, {"n": float("nan")}])
