"""The convergence oracle's own rules (tests/harness/reference_model.py), on examples worked out by hand from the
README."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.harness.reference_model import Entry, Guard, ModelConfig, expect, read_drop

METADATA = (("title", "string"), ("price", "number"), ("stock", "integer"), ("tags", "string_list"))
JOINED = ModelConfig(text_fields=("title", "description"), metadata=METADATA, max_chars=40)
TEMPLATE = replace(JOINED, text_fields=("title", "tags"), template="{title}\nTags: {tags}", required=("title",))


def lamp(sku: object, **fields: object) -> dict[str, object]:
    return {"sku": sku, "title": "Lamp", "description": "warm light", "price": 10.0, **fields}


def only(config: ModelConfig, *versions: list[dict[str, object]]) -> dict[str, Entry]:
    expectation = expect(config, list(versions))
    assert expectation.exact
    return expectation.present()


def test_ids_are_trimmed_nfc_and_case_kept_and_integers_are_their_digits() -> None:
    drop = read_drop(
        JOINED,
        [lamp(" p1"), lamp("p1", title="Other"), lamp("P1"), lamp(7), lamp("7 "), lamp("cafe\u0301"), lamp("café")],
        1,
    )
    assert set(drop.products) == {"p1", "P1", "7", "café"}
    first = drop.products["p1"]
    assert isinstance(first, Entry) and first.text == "Lamp\nwarm light"  # the first record decides


@pytest.mark.parametrize("raw", [None, "", "   ", "\t", "x" * 513, "a\x00b", 1.5, True, ["p1"]])
def test_unusable_ids_name_no_product(raw: object) -> None:
    assert read_drop(JOINED, [lamp(raw)], 1).products == {}
    assert read_drop(JOINED, [lamp("x" * 512)], 1).products.keys() == {"x" * 512}


def test_a_duplicate_after_an_invalid_first_record_does_not_count() -> None:
    assert read_drop(JOINED, [lamp("p1", price="ask"), lamp("p1")], 1).products == {"p1": "invalid"}


def test_text_rendering() -> None:
    index = only(
        TEMPLATE,
        [
            lamp("a", title="  Desk lamp ", tags=["desk", "light"]),
            lamp("b", tags=None),
            lamp("c", title="Cafe\u0301"),
        ],
    )
    assert index["a"].text == "Desk lamp\nTags: desk, light"
    assert index["b"].text == "Lamp\nTags:"  # the template filled in, the whole trimmed
    assert index["c"].text == "Café\nTags:"  # NFC
    joined = only(JOINED, [lamp("a", description=12.0), lamp("b", description=""), lamp("c", description=2.5)])
    assert [joined[pid].text for pid in "abc"] == ["Lamp\n12", "Lamp", "Lamp\n2.5"]


def test_metadata_types() -> None:
    index = only(
        JOINED,
        [
            lamp("a", price="12.5", stock=3.0, tags=["cafe\u0301"]),
            lamp("b", price=10, stock="4", title="  Lamp  "),
            lamp("c", price=None, stock=None, tags=[]),
        ],
    )
    assert index["a"].metadata_dict() == {"title": "Lamp", "price": 12.5, "stock": 3, "tags": ["café"]}
    assert index["b"].metadata_dict() == {"title": "  Lamp  ", "price": 10.0, "stock": 4}
    assert index["c"].metadata_dict() == {"title": "Lamp", "tags": []}
    for bad in ({"price": "ask us"}, {"price": True}, {"stock": 2.5}, {"stock": True}, {"tags": ["a", 3]}):
        assert read_drop(JOINED, [lamp("p", **bad)], 1).products == {"p": "invalid"}, bad


def test_limits_and_required_fields() -> None:
    exactly = "e" * (40 - len("Lamp\n"))
    assert only(JOINED, [lamp("a", description=exactly)])["a"].text == "Lamp\n" + exactly
    assert read_drop(JOINED, [lamp("a", description=exactly + "e")], 1).products == {"a": "invalid"}
    small = replace(JOINED, max_metadata_bytes=60)
    assert read_drop(small, [lamp("a", tags=["t" * 40])], 1).products == {"a": "invalid"}
    assert read_drop(TEMPLATE, [lamp("a", title=" ")], 1).products == {"a": "invalid"}
    assert read_drop(JOINED, [lamp("a", title="", description=None)], 1).products == {"a": "invalid"}


def test_an_invalid_record_keeps_the_last_good_version_and_an_absent_one_is_deleted() -> None:
    v1 = [lamp("a"), lamp("b"), lamp("c")]
    v2 = [lamp("a", price="ask us"), lamp("b", price=12.5)]
    v3 = [lamp("a", price="ask us"), lamp("c")]
    index = only(JOINED, v1, v2, v3)
    assert set(index) == {"a", "c"}
    assert index["a"].drop == 1 and index["a"].metadata_dict()["price"] == 10.0
    # A product never valid stays out of the index.
    assert only(JOINED, [lamp("a", price="ask us")]) == {}


def test_the_guard() -> None:
    v1 = [lamp(pid) for pid in "abcd"]
    v2 = [lamp(pid) for pid in "ab"]  # 2 of 4 deleted
    strict = replace(JOINED, max_delete_share=0.25, allow_empty_catalog=False)
    held = expect(strict, [v1, v2])
    assert held.guard == [Guard.APPLIED, Guard.HELD] and set(held.present()) == set("abcd")
    half = replace(JOINED, max_delete_share=0.5, allow_empty_catalog=False)
    assert expect(half, [v1, v2]).guard == [Guard.APPLIED, Guard.APPLIED]  # 50% is not over 50%
    # After v2, c and d may still be on their way out: deleting b is 1 of 2, or with them 3 of 4 (both over 25%,
    # the guard holds), and at 50% 1 of 2 (not over) or 3 of 4 (over): either.
    v3 = [lamp("a")]
    assert expect(half, [v1, v2, v3]).guard[2] is Guard.EITHER
    either = expect(half, [v1, v2, v3])
    assert {option.drop if option else None for option in either.allows("b")} == {2, None}
    # An empty catalog is held unless allowed; allowed, it deletes everything.
    assert expect(strict, [v1, []]).guard[1] is Guard.HELD
    assert expect(JOINED, [v1, []]).present() == {}


def test_an_overtakable_drop_may_have_applied_or_not() -> None:
    v1 = [lamp("a"), lamp("b")]
    v2 = [lamp("a", price=12.5)]
    v3 = [lamp("a", price="ask us"), lamp("b", price="ask us")]
    exact = expect(JOINED, [v1, v2, v3])
    assert exact.present().keys() == {"a"} and exact.present()["a"].drop == 2
    loose = expect(JOINED, [v1, v2, v3], overtakable={2})
    assert {option.drop if option else None for option in loose.allows("a")} == {1, 2}
    assert {option.drop if option else None for option in loose.allows("b")} == {1, None}
    # The last drop is never overtaken.
    assert expect(JOINED, [v1, v2], overtakable={2}).exact
