"""The vector-id mapping, against encodings written out by hand from the rules in the README ("Vector ids").

The digests were computed outside Python (`printf '%s' ID | sha256sum | cut -c1-32`), the slugs by hand, so that
this oracle shares no code with logic/vector_ids.py.
"""

from __future__ import annotations

import pytest

from catalog_sync.logic.vector_ids import ANY_ID, PORTABLE_RULES, legacy_vector_id, passes_through, vector_id
from catalog_sync.models.index import VectorIdRules

PINECONE = VectorIdRules(ascii_only=True, max_bytes=512)

ENCODED = {
    # NFKD splits the accent off, and non-ASCII goes: "cafe-1".
    "café-1": "~cafe-1~a71eef5490ff53947e6817fd7188ef93",
    # ASCII punctuation other than . _ - becomes "-".
    "café 1": "~cafe-1~0a61b4044a8a207c9f1e874d25aef49a",
    "商品-42": "~-42~a5121a3a679bc6554fdb9ba38325a45e",
    "🎉": "~~6146299cd54818a0e659eb6ac88e80f6",
    # Cyrillic er, which looks like a Latin p.
    "р1": "~1~27e4bbc8d1a8e39dc5bfe91456918d74",
    # Full-width letters decompose to ASCII (NFKD); ß does not, and goes.
    "ＡＢＣ/ß": "~ABC-~a95a53eb440c4e400ff0642b73badb8a",
    # ASCII, but it begins with the prefix that only encoded ids may have.
    "~abc": "~-abc~ae4be1ed9894ba5f9418209b6bb44200",
    # 512 bytes (256 two-byte characters): the slug is cut to 64 characters.
    "é" * 256: "~" + "e" * 64 + "~57ed0ef12199207a92e3484cdf02cc0d",
    # 512 bytes of ASCII beginning with "~".
    "~" + "a" * 511: "~-" + "a" * 63 + "~23e6e5f4bcc707a2a1c0d002381a6b06",
}


@pytest.mark.parametrize(("product_id", "expected"), ENCODED.items())
def test_ids_pinecone_cannot_take_are_encoded_as_documented(product_id: str, expected: str) -> None:
    assert not passes_through(product_id, PINECONE)
    assert vector_id(product_id, PINECONE) == expected
    assert expected.isascii() and expected.isprintable() and len(expected) <= 512


@pytest.mark.parametrize("product_id", ["p1", "P1", "SKU-0001", "a b/c:d", "x" * 512, "'quoted\"", "1~2"])
def test_printable_ascii_ids_within_the_limit_pass_unchanged(product_id: str) -> None:
    assert passes_through(product_id, PINECONE)
    assert vector_id(product_id, PINECONE) == product_id


def test_look_alikes_stay_apart_and_no_encoded_id_is_a_pass_through_id() -> None:
    ids = ["p1", "P1", "р1", "café-1", "café 1", "cafe-1", "~cafe-1~a71eef5490ff53947e6817fd7188ef93"]
    mapped = [vector_id(i, PINECONE) for i in ids]
    assert len(set(mapped)) == len(ids)
    # An id spelt like an encoded one is itself encoded, so it cannot take another product's vector.
    assert mapped[-1] != ENCODED["café-1"] and mapped[-1].startswith("~")
    assert mapped[:2] == ["p1", "P1"] and mapped[2] == ENCODED["р1"]


def test_an_id_over_the_limit_and_a_short_limit() -> None:
    assert vector_id("a" * 513, PINECONE).startswith("~" + "a" * 64 + "~")
    short = VectorIdRules(ascii_only=True, max_bytes=40)
    # 40 bytes: the prefix, the separator and the digest take 34; 6 are left for the slug.
    assert vector_id("café-1", short) == "~cafe-1~a71eef5490ff53947e6817fd7188ef93"
    assert vector_id("a" * 41, short) == "~aaaaaa~c0f8bd4dbc2b0c03107c1c37913f2a75"
    assert vector_id("a" * 40, short) == "a" * 40
    with pytest.raises(ValueError, match="greater than or equal to 40"):
        VectorIdRules(max_bytes=20)  # too short for an encoded id


@pytest.mark.parametrize("product_id", ["café-1", "~abc", "🎉", "p1", "é" * 256])
def test_a_target_without_limits_keeps_every_id(product_id: str) -> None:
    assert passes_through(product_id, ANY_ID) and vector_id(product_id, ANY_ID) == product_id


def test_the_portable_rules_are_pinecones() -> None:
    assert PORTABLE_RULES == PINECONE


def test_the_vector_id_an_earlier_version_wrote() -> None:
    # Earlier versions kept every id Pinecone accepted as it was: only "~" ids moved.
    assert legacy_vector_id("~abc", PINECONE) == "~abc"
    assert legacy_vector_id("abc", PINECONE) is None
    assert legacy_vector_id("~café", PINECONE) is None  # the SDK never let it through
    assert legacy_vector_id("~abc", ANY_ID) is None
