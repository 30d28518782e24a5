"""Request signing for the webhook: HMAC-SHA256 over the timestamp and the raw body.

A signed request carries two headers:

    X-Catalog-Sync-Timestamp: <unix seconds>
    X-Catalog-Sync-Signature: v1=<hex hmac_sha256(key, b"<timestamp>." + raw body)>

The timestamp is part of what is signed, so an old request cannot be replayed with a fresh timestamp; a request
is accepted only within `tolerance_seconds` of the receiver's clock (either way). Within that window `verify` alone
still accepts a replay: it returns the digest that matched, for the receiver to accept once (the webhook records
it in its state table until the timestamp leaves the window: handlers/webhook.py).

While a key is being rotated the sender may send several signatures, comma-separated
(`v1=<with the new key>,v1=<with the old key>`): one that matches is enough. Schemes other than `v1` are
ignored, so that a later scheme can be sent alongside.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from enum import StrEnum
from typing import NamedTuple

TIMESTAMP_HEADER = "X-Catalog-Sync-Timestamp"
SIGNATURE_HEADER = "X-Catalog-Sync-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
MAX_SIGNATURES = 8  # in one header: enough for a rotation, few enough to bound the work per request

_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only: int() would also take "+1", " 1 ", "1_0", "١"
_ELEMENT = re.compile(r"([a-z][a-z0-9]*)=(\S+)")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


class SignatureFailure(StrEnum):
    """Why a request's signature was refused: a category, safe to tell the caller."""

    MISSING = "missing"
    BAD_TIMESTAMP = "bad_timestamp"
    EXPIRED = "expired"
    FUTURE = "future"
    MALFORMED = "malformed"
    MISMATCH = "mismatch"


_DESCRIPTIONS = {
    SignatureFailure.MISSING: f"the {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers are required",
    SignatureFailure.BAD_TIMESTAMP: f"{TIMESTAMP_HEADER} must be an integer number of seconds since the epoch",
    SignatureFailure.EXPIRED: "the signature has expired",
    SignatureFailure.FUTURE: "the signature's timestamp is in the future",
    SignatureFailure.MALFORMED: f"{SIGNATURE_HEADER} must be {SCHEME}=<64 hex digits>, comma-separated if several",
    SignatureFailure.MISMATCH: "the signature does not match the request",
}


class Verified(NamedTuple):
    """A request whose signature matched: its timestamp (unix seconds) and the matching digest (lower-case hex)."""

    timestamp: int
    digest: str


class SignatureError(Exception):
    """The request is not signed, or not validly: `reason` says which way (and nothing about the key)."""

    def __init__(self, reason: SignatureFailure) -> None:
        super().__init__(_DESCRIPTIONS[reason])
        self.reason = reason

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self.reason]


def _digest(key: bytes, body: bytes, timestamp: int) -> str:
    if not key:
        raise ValueError("the signing key is empty")  # an empty key would let anyone sign
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(key: bytes, body: bytes, timestamp: int) -> str:
    """The value of the signature header for `body` sent at `timestamp` (unix seconds)."""
    if timestamp < 0:
        raise ValueError(f"timestamp must be unix seconds, got {timestamp}")
    return f"{SCHEME}={_digest(key, body, timestamp)}"


def signature_headers(key: bytes, body: bytes, timestamp: int) -> dict[str, str]:
    """Both headers a sender adds to a request."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(key, body, timestamp)}


def _candidates(signature_header: str) -> list[str]:
    elements = [element.strip() for element in signature_header.split(",")]
    if not elements or len(elements) > MAX_SIGNATURES:
        raise SignatureError(SignatureFailure.MALFORMED)
    digests = []
    for element in elements:
        match = _ELEMENT.fullmatch(element)
        if match is None:
            raise SignatureError(SignatureFailure.MALFORMED)
        scheme, value = match.groups()
        if scheme != SCHEME:
            continue  # another scheme: not ours to check
        if _HEX_DIGEST.fullmatch(value) is None:
            raise SignatureError(SignatureFailure.MALFORMED)
        digests.append(value.lower())
    if not digests:
        raise SignatureError(SignatureFailure.MALFORMED)
    return digests


def verify(
    key: bytes,
    body: bytes,
    timestamp_header: str | None,
    signature_header: str | None,
    *,
    now: float,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> Verified:
    """Accept a request signed with `key` within `tolerance_seconds` of `now`; else raise SignatureError.

    `body` is the raw body as received (base64-decoded if the transport encoded it), not a re-serialisation. The
    answer (the timestamp, and the digest that matched) is what a receiver records to refuse a replay.
    """
    if not key:
        raise ValueError("the signing key is empty")  # a configuration error, not the caller's
    if not timestamp_header or not signature_header:
        raise SignatureError(SignatureFailure.MISSING)
    timestamp_text = timestamp_header.strip()
    if _TIMESTAMP.fullmatch(timestamp_text) is None:
        raise SignatureError(SignatureFailure.BAD_TIMESTAMP)
    timestamp = int(timestamp_text)
    candidates = _candidates(signature_header)  # malformed is reported before the clock, like a missing header
    if now - timestamp > tolerance_seconds:
        raise SignatureError(SignatureFailure.EXPIRED)
    if timestamp - now > tolerance_seconds:
        raise SignatureError(SignatureFailure.FUTURE)
    expected = _digest(key, body, timestamp)
    matched = False
    for candidate in candidates:  # every candidate is compared: the time taken says nothing about which matched
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError(SignatureFailure.MISMATCH)
    return Verified(timestamp, expected)  # `expected` equals the candidate that matched
