from catalog_sync.logic import canonical as h


def test_key_order_does_not_change_the_hash():
    assert h.canonical_bytes({"a": 1, "b": {"y": 2, "x": 3}}) == h.canonical_bytes({"b": {"x": 3, "y": 2}, "a": 1})


def test_unicode_forms_hash_the_same():
    composed = "Caf\u00e9"
    decomposed = "Cafe\u0301"
    assert composed != decomposed
    assert h.field_hash(composed) == h.field_hash(decomposed)
    assert h.text_hash(composed, model_id="m", template_id="t") == h.text_hash(
        decomposed, model_id="m", template_id="t"
    )


def test_one_spelling_per_number():
    assert h.field_hash(1.0) == h.field_hash(1)
    assert h.metadata_hash({"price": 10.0}) == h.metadata_hash({"price": 10})
    assert h.field_hash(1.5) != h.field_hash(1)
    assert h.field_hash(True) != h.field_hash(1)


def test_text_hash_covers_model_and_template():
    base = h.text_hash("shoe", model_id="m1", template_id="t1")
    assert base != h.text_hash("shoe", model_id="m2", template_id="t1")
    assert base != h.text_hash("shoe", model_id="m1", template_id="t2")
    assert base == h.text_hash("shoe", model_id="m1", template_id="t1")


def test_embedding_key_ignores_template_but_not_model():
    assert h.embedding_key("shoe", model_id="m1") == h.embedding_key("shoe", model_id="m1")
    assert h.embedding_key("shoe", model_id="m1") != h.embedding_key("shoe", model_id="m2")


def test_fingerprint_depends_on_seed_and_is_128_bits():
    record = {"sku": "1", "price": 3}
    first = h.record_fingerprint(record, seed=1)
    assert first is not None and len(first) == 16
    assert first != h.record_fingerprint(record, seed=2)
    assert h.line_fingerprint(b'{"sku":"1"}', 1) != h.line_fingerprint(b'{"sku":"2"}', 1)


def test_subclasses_of_json_types_hash_as_their_base():
    from enum import StrEnum

    class Colour(StrEnum):
        RED = "red"

    assert h.field_hash(Colour.RED) == h.field_hash("red")
    assert h.field_hash((1, "a")) == h.field_hash([1, "a"])


def test_values_without_a_json_form_are_refused():
    import pytest

    with pytest.raises(TypeError, match="no canonical JSON form"):
        h.canonical_bytes({"when": object()})
