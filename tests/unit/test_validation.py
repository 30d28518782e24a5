import pytest

from catalog_sync.logic.validation import InvalidRecord, RecordValidator, normalize_id
from tests.conftest import make_config, product


def test_ids_are_trimmed_and_integers_accepted():
    assert normalize_id("  A-1 ") == "A-1"
    assert normalize_id(42) == "42"
    assert normalize_id("a-1") != normalize_id("A-1")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "missing id"),
        ("", "empty id"),
        ("   ", "empty id"),
        (True, "string or an integer"),
        (1.5, "string or an integer"),
        ("x" * 600, "longer than 512"),
        ("a\nb", "control characters"),
    ],
)
def test_bad_ids(raw, reason):
    with pytest.raises(InvalidRecord, match=reason):
        normalize_id(raw)


def test_valid_record_builds_text_and_metadata():
    validator = RecordValidator(
        make_config(text={"fields": ["title", "description"], "template": "{title} | {description}"})
    )
    result = validator.validate("A", product("A", price="12.50", stock="3", tags="x|y", extra="ignored"))
    assert result.text == "Product A | A fine product called A."
    assert result.metadata == {
        "title": "Product A",
        "price": 12.5,
        "availability": "in_stock",
        "stock": 3,
        "tags": ["x", "y"],
    }


def test_blank_metadata_is_omitted_not_null():
    validator = RecordValidator(make_config())
    result = validator.validate("A", product("A", availability="", stock=None))
    assert "availability" not in result.metadata
    assert "stock" not in result.metadata


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"price": "cheap"}, "price"),
        ({"price": float("nan")}, "price"),
        ({"price": float("inf")}, "price"),
        ({"stock": 2.5}, "stock"),
        ({"stock": True}, "stock: .*a boolean is not a number"),
        ({"price": False}, "price: .*a boolean is not a number"),
        ({"title": 123}, "title"),
        ({"tags": [1, 2]}, "tags"),
        ({"title": "", "description": ""}, "empty embedding text"),
        ({"description": "x" * 30_000}, "over the limit"),
    ],
)
def test_invalid_records_name_the_reason(fields, reason):
    validator = RecordValidator(make_config())
    with pytest.raises(InvalidRecord, match=reason):
        validator.validate("A", product("A", **fields))


def test_metadata_over_pinecone_limit():
    validator = RecordValidator(make_config())
    with pytest.raises(InvalidRecord, match=r"metadata is .* bytes"):
        validator.validate("A", product("A", tags=["t" * 1000] * 50))


def test_required_fields():
    validator = RecordValidator(make_config(required_fields=["price"]))
    with pytest.raises(InvalidRecord, match="required field 'price'"):
        validator.validate("A", product("A", price=""))


def test_structured_text_fields_are_rendered():
    validator = RecordValidator(make_config(text={"fields": ["title", "attributes", "colours"]}, metadata={}))
    result = validator.validate(
        "A", {"title": "Shoe", "attributes": {"size": 42, "fit": "wide"}, "colours": ["red", "blue"]}
    )
    assert result.text == "Shoe\nsize: 42; fit: wide\nred, blue"


def test_integers_beyond_64_bits_are_invalid_not_a_crash():
    validator = RecordValidator(make_config())
    with pytest.raises(InvalidRecord, match="stock"):
        validator.validate("A", product("A", stock=2**64 - 1))
    with pytest.raises(InvalidRecord, match="stock"):
        validator.validate("A", product("A", stock="100000000000000000000"))


def test_template_words_alone_are_empty_text():
    validator = RecordValidator(
        make_config(text={"fields": ["title", "description"], "template": "Title: {title}\n{description}"})
    )
    with pytest.raises(InvalidRecord, match="empty embedding text"):
        validator.validate("A", product("A", title="", description=" "))


def test_metadata_strings_are_stored_nfc():
    validator = RecordValidator(make_config())
    result = validator.validate("A", product("A", title="Cafe\u0301", tags=["cre\u0300me"]))
    assert result.metadata["title"] == "Caf\u00e9"
    assert result.metadata["tags"] == ["cr\u00e8me"]


def test_any_field_name_works():
    config = make_config(text={"fields": ["_title", "schema", "model_config"]}, metadata={"copy": "string"})
    result = RecordValidator(config).validate("A", {"_title": "x", "schema": "y", "model_config": "z", "copy": "c"})
    assert result.text == "x\ny\nz"
    assert result.metadata == {"copy": "c"}
