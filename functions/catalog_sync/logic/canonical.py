"""Canonical form and hashes.

Two records that mean the same thing hash the same: keys are sorted, strings are NFC, and a number has
one spelling (1.0 and 1 are the same number). The text hash (embedding input) is kept apart from the
metadata hash so that a price change never re-embeds.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal
from typing import Any

import orjson
import xxhash

_SEP = b"\x1f"
_MAX_EXACT_FLOAT_INT = 2**53


def canonical(value: Any) -> Any:
    """Return the canonical form of a JSON-like value."""
    kind = type(value)
    if kind is str:
        return value if value.isascii() else unicodedata.normalize("NFC", value)
    if value is None or kind is bool or kind is int:
        return value
    if kind is float:
        if value.is_integer() and abs(value) < _MAX_EXACT_FLOAT_INT:
            return int(value)
        return value
    if kind is dict:
        # Plain ASCII strings and ints, most leaves of a product, are canonical already: skip the call.
        return {
            (key if type(key) is str and key.isascii() else canonical(str(key))): (
                item if (type(item) is str and item.isascii()) or type(item) is int else canonical(item)
            )
            for key, item in value.items()
        }
    if kind is list or kind is tuple:
        return [
            item if (type(item) is str and item.isascii()) or type(item) is int else canonical(item) for item in value
        ]
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError("NaN and Infinity have no canonical JSON form")
        return int(value) if value == value.to_integral_value() else canonical(float(value))
    # Subclasses of the JSON types (a str enum, say) canonicalise as their base type.
    bases: tuple[Any, ...] = (bool, int, float, str, dict, list, tuple)
    for base in bases:
        if isinstance(value, base):
            return canonical(base(value))
    raise TypeError(f"value of type {type(value).__name__} has no canonical JSON form")


def canonical_bytes(value: Any) -> bytes:
    """Canonical JSON bytes of a value (sorted keys, NFC, one spelling per number)."""
    return orjson.dumps(canonical(value), option=orjson.OPT_SORT_KEYS)


def field_hash(value: Any) -> str:
    """Short hash of one field's canonical value; used to name the fields that changed."""
    return xxhash.xxh3_64_hexdigest(canonical_bytes(value))


def metadata_hash(metadata: dict[str, Any]) -> str:
    return xxhash.xxh3_128_hexdigest(canonical_bytes(metadata))


def content_hashes(values: dict[str, Any], metadata_fields: list[str]) -> tuple[dict[str, str], str]:
    """Per-field hashes of `values` and the hash of its metadata part, canonicalising only once."""
    canon = canonical(values)
    dumps = orjson.dumps
    sort_keys = orjson.OPT_SORT_KEYS
    digest = xxhash.xxh3_64_hexdigest
    field_hashes = {name: digest(dumps(value, option=sort_keys)) for name, value in canon.items()}
    metadata = {name: canon[name] for name in metadata_fields if canon.get(name) is not None}
    return field_hashes, xxhash.xxh3_128_hexdigest(dumps(metadata, option=sort_keys))


def normalize_text(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def text_hash(text: str, *, model_id: str, template_id: str) -> str:
    """Hash of the embedding input; it covers the model and the template so changing either re-embeds."""
    hasher = xxhash.xxh3_128()
    hasher.update(model_id.encode())
    hasher.update(_SEP)
    hasher.update(template_id.encode())
    hasher.update(_SEP)
    hasher.update(normalize_text(text).encode())
    return hasher.hexdigest()


def embedding_key(text: str, *, model_id: str) -> str:
    """Embedding-cache key: the same text under the same model is embedded once, whatever the template."""
    return xxhash.xxh3_128_hexdigest(model_id.encode() + _SEP + normalize_text(text).encode())


def config_seed(*parts: str) -> int:
    """A 64-bit seed derived from the configuration, so that record fingerprints change with it."""
    return xxhash.xxh3_64_intdigest(_SEP.join(part.encode() for part in parts))


def record_fingerprint(record: dict[str, Any], seed: int) -> bytes | None:
    """Cheap 128-bit fingerprint of a parsed record as read (not canonical).

    Equal fingerprints mean a byte-identical record under the same configuration (the seed), so the record
    was validated and hashed before and can be skipped. A different fingerprint only sends the record down
    the canonical path, which decides whether anything really changed.
    """
    try:
        raw = orjson.dumps(record)
    except (TypeError, orjson.JSONEncodeError):
        return None
    return xxhash.xxh3_128_digest(raw, seed=seed)


def line_fingerprint(line: bytes, seed: int) -> bytes:
    """Fingerprint of a raw JSON Lines line: lets an unchanged line skip even parsing."""
    return xxhash.xxh3_128_digest(line, seed=seed)
