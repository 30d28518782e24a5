"""Which product ids the validator accepts, and how it spells them: every one it accepts must work at every index
(the mapping to vector ids is tested in test_vector_ids.py)."""

from __future__ import annotations

import orjson
import pytest

from catalog_sync.logic.validation import InvalidRecord, RecordValidator, normalize_id
from tests.conftest import make_config, product


@pytest.mark.parametrize(
    "raw",
    [
        " \t ",
        "\u00a0",  # no-break space
        "\u3000",  # ideographic space
        "\u2003\u2009",  # em space, thin space
        "\u200b",  # zero-width space: whitespace to a reader, not to str.strip()
        " \ufeff ",  # a byte-order mark
        "\u2060\u200d",  # word joiner, zero-width joiner
    ],
)
def test_an_id_of_nothing_visible_is_empty(raw: str) -> None:
    with pytest.raises(InvalidRecord, match="empty id"):
        normalize_id(raw)


def test_look_alike_ids() -> None:
    # The same characters, composed or decomposed: one product (ids are stored NFC).
    assert normalize_id("cafe\u0301-1") == normalize_id("caf\u00e9-1") == "caf\u00e9-1"
    # Case and script are kept: these are different products.
    assert len({normalize_id("p1"), normalize_id("P1"), normalize_id("\u04401")}) == 3
    # An invisible character inside an id is part of it.
    assert normalize_id("a\u200bb") == "a\u200bb"


def test_ids_up_to_512_bytes_are_accepted_whatever_their_script() -> None:
    for product_id in ("x" * 512, "\u00e9" * 256, "\u5546" * 170 + "xy", "\U0001f389" * 128):
        assert len(product_id.encode()) == 512
        assert normalize_id(product_id) == product_id
    for product_id in ("x" * 513, "\u00e9" * 256 + "x", "\U0001f389" * 129):
        with pytest.raises(InvalidRecord, match="longer than 512 bytes"):
            normalize_id(product_id)


def test_the_metadata_budget_counts_the_id_an_index_keeps_beside_an_encoded_vector_id() -> None:
    ascii_id, other_id = "p" * 200, "\u00e9" * 100  # 200 bytes each
    record = product("x", title="t" * 100, tags=None, availability=None, stock=None)
    metadata = {"title": "t" * 100, "price": 10.0}
    plain = len(orjson.dumps(metadata))
    with_id = len(orjson.dumps({**metadata, "_product_id": other_id}))
    validator = RecordValidator(make_config(max_metadata_bytes=plain + 10))
    # An ASCII id is its own vector id: nothing more is stored.
    assert validator.validate(ascii_id, record).metadata == metadata
    with pytest.raises(InvalidRecord, match=f"with the product id .* is {with_id:,} bytes, over the limit"):
        validator.validate(other_id, record)
    assert RecordValidator(make_config(max_metadata_bytes=with_id)).validate(other_id, record).metadata == metadata
