"""Request signing for the webhook (scheme v2): HMAC-SHA256 over the whole request, in the manner of AWS SigV4.

A signed request carries three headers:

    X-Catalog-Sync-Timestamp: <unix seconds>
    X-Catalog-Sync-Nonce: <16 to 128 characters of A-Z a-z 0-9 _ ->, new for every request
    X-Catalog-Sync-Signature: v2=<hex hmac_sha256(key, canonical request)>

The canonical request is these seven lines, joined by "\\n" (no newline at the end), encoded as UTF-8:

    catalog-sync-v2
    <METHOD>               the method, upper case
    <path>                 the path, percent-decoded: what API Gateway's HTTP API hands the function (rawPath)
    <query>                the query string exactly as sent, without the "?" ("" when there is none)
    <timestamp>            the X-Catalog-Sync-Timestamp value
    <nonce>                the X-Catalog-Sync-Nonce value
    <hex sha256(body)>     of the raw body as sent (of b"" when there is none), lower case

So a signature holds for one method, path, query and body only. It also holds for a time only: a request is
accepted within `tolerance_seconds` of the receiver's clock (either way). Within that window `verify` alone still
accepts a replay: it answers the nonce, for the receiver to accept once (the webhook records it in its state table
until the timestamp leaves the window: handlers/webhook.py). Two requests alike in everything but their nonce are
two requests.

While a key is being rotated the sender may send several signatures, comma-separated
(`v2=<with the new key>,v2=<with the old key>`): one that matches is enough. A header with `v1=` values only (the
retired scheme, which signed the timestamp and the body alone) is refused as such; other schemes are ignored, so
that a later scheme can be sent alongside.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from enum import StrEnum
from typing import NamedTuple
from urllib.parse import unquote

TIMESTAMP_HEADER = "X-Catalog-Sync-Timestamp"
NONCE_HEADER = "X-Catalog-Sync-Nonce"
SIGNATURE_HEADER = "X-Catalog-Sync-Signature"
SCHEME = "v2"
RETIRED_SCHEMES = frozenset({"v1"})
CANONICAL_PREFIX = "catalog-sync-v2"
DEFAULT_TOLERANCE_SECONDS = 300
MAX_SIGNATURES = 8  # in one header: enough for a rotation, few enough to bound the work per request
NONCE_MIN_LENGTH = 16
NONCE_MAX_LENGTH = 128

_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only: int() would also take "+1", " 1 ", "1_0", "١"
_NONCE = re.compile(rf"[A-Za-z0-9_-]{{{NONCE_MIN_LENGTH},{NONCE_MAX_LENGTH}}}")
_METHOD = re.compile(r"[A-Za-z]{1,16}")
_ELEMENT = re.compile(r"([a-z][a-z0-9]*)=(\S+)")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


class SignatureFailure(StrEnum):
    """Why a request's signature was refused: a category, safe to tell the caller."""

    MISSING = "missing"
    RETIRED_SCHEME = "retired_scheme"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_NONCE = "bad_nonce"
    EXPIRED = "expired"
    FUTURE = "future"
    MALFORMED = "malformed"
    MISMATCH = "mismatch"


_DESCRIPTIONS = {
    SignatureFailure.MISSING: f"the {TIMESTAMP_HEADER}, {NONCE_HEADER} and {SIGNATURE_HEADER} headers are required",
    SignatureFailure.RETIRED_SCHEME: (
        f"v1 signatures are no longer accepted: sign the method, path, query, timestamp, nonce and body ({SCHEME}=)"
    ),
    SignatureFailure.BAD_TIMESTAMP: f"{TIMESTAMP_HEADER} must be an integer number of seconds since the epoch",
    SignatureFailure.BAD_NONCE: (
        f"{NONCE_HEADER} must be {NONCE_MIN_LENGTH} to {NONCE_MAX_LENGTH} characters of A-Z, a-z, 0-9, _ and -"
    ),
    SignatureFailure.EXPIRED: "the signature has expired",
    SignatureFailure.FUTURE: "the signature's timestamp is in the future",
    SignatureFailure.MALFORMED: f"{SIGNATURE_HEADER} must be {SCHEME}=<64 hex digits>, comma-separated if several",
    SignatureFailure.MISMATCH: "the signature does not match the request",
}


class Verified(NamedTuple):
    """A request whose signature matched: its timestamp (unix seconds) and its nonce, to accept once."""

    timestamp: int
    nonce: str


class SignatureError(Exception):
    """The request is not signed, or not validly: `reason` says which way (and nothing about the key)."""

    def __init__(self, reason: SignatureFailure) -> None:
        super().__init__(_DESCRIPTIONS[reason])
        self.reason = reason

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self.reason]


class Replayed(Exception):
    """The request's nonce was seen before: the request was already received (a signed request is accepted once)."""


def new_nonce() -> str:
    """A fresh nonce: 32 URL-safe characters from 24 random bytes."""
    return secrets.token_urlsafe(24)


def canonical_request(method: str, path: str, query: str, body: bytes, timestamp: int, nonce: str) -> bytes:
    """What is signed (the module's docstring gives the form). `path` is as the function receives it (decoded).

    Raises ValueError for a part that would make the form ambiguous (a line break, a bad method or nonce).
    """
    if _METHOD.fullmatch(method) is None:
        raise ValueError(f"not an HTTP method: {method!r}")
    if not path.startswith("/") or "\n" in path or "\n" in query:
        raise ValueError("the path must start with / and neither it nor the query may hold a line break")
    if timestamp < 0:
        raise ValueError(f"timestamp must be unix seconds, got {timestamp}")
    if _NONCE.fullmatch(nonce) is None:
        raise ValueError(_DESCRIPTIONS[SignatureFailure.BAD_NONCE])
    lines = [CANONICAL_PREFIX, method.upper(), path, query, str(timestamp), nonce, hashlib.sha256(body).hexdigest()]
    return "\n".join(lines).encode()


def _digest(key: bytes, canonical: bytes) -> str:
    if not key:
        raise ValueError("the signing key is empty")  # an empty key would let anyone sign
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


def sign(key: bytes, method: str, path: str, query: str, body: bytes, timestamp: int, nonce: str) -> str:
    """The value of the signature header for the request, as sent: `path` as it goes on the wire (percent-encoded
    or not: it is signed decoded, as API Gateway passes it on), `query` without its "?"."""
    return f"{SCHEME}={_digest(key, canonical_request(method, unquote(path), query, body, timestamp, nonce))}"


def signature_headers(
    key: bytes,
    method: str,
    path: str,
    query: str,
    body: bytes,
    timestamp: int,
    nonce: str | None = None,
) -> dict[str, str]:
    """The three headers a sender adds to a request (with a new nonce unless one is given: never reuse one)."""
    nonce = new_nonce() if nonce is None else nonce
    return {
        TIMESTAMP_HEADER: str(timestamp),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign(key, method, path, query, body, timestamp, nonce),
    }


def _candidates(signature_header: str) -> list[str]:
    elements = [element.strip() for element in signature_header.split(",")]
    if not elements or len(elements) > MAX_SIGNATURES:
        raise SignatureError(SignatureFailure.MALFORMED)
    digests = []
    retired = False
    for element in elements:
        match = _ELEMENT.fullmatch(element)
        if match is None:
            raise SignatureError(SignatureFailure.MALFORMED)
        scheme, value = match.groups()
        if scheme != SCHEME:
            retired |= scheme in RETIRED_SCHEMES
            continue  # another scheme: not ours to check
        if _HEX_DIGEST.fullmatch(value) is None:
            raise SignatureError(SignatureFailure.MALFORMED)
        digests.append(value.lower())
    if not digests:
        raise SignatureError(SignatureFailure.RETIRED_SCHEME if retired else SignatureFailure.MALFORMED)
    return digests


def verify(
    key: bytes,
    *,
    method: str,
    path: str,
    query: str,
    body: bytes,
    timestamp_header: str | None,
    nonce_header: str | None,
    signature_header: str | None,
    now: float,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> Verified:
    """Accept a request signed with `key` within `tolerance_seconds` of `now`; else raise SignatureError.

    `method`, `path` (rawPath: already decoded) and `query` (rawQueryString) are as the function received them;
    `body` is the raw body as received (base64-decoded if the transport encoded it), not a re-serialisation. The
    answer (the timestamp and the nonce) is what a receiver records to refuse a replay.
    """
    if not key:
        raise ValueError("the signing key is empty")  # a configuration error, not the caller's
    if not signature_header:
        raise SignatureError(SignatureFailure.MISSING)
    # The scheme is judged first: a v1 sender sends no nonce, and is told that v1 is retired.
    candidates = _candidates(signature_header)
    if not timestamp_header or not nonce_header:
        raise SignatureError(SignatureFailure.MISSING)
    timestamp_text = timestamp_header.strip()
    if _TIMESTAMP.fullmatch(timestamp_text) is None:
        raise SignatureError(SignatureFailure.BAD_TIMESTAMP)
    timestamp = int(timestamp_text)
    nonce = nonce_header.strip()
    if _NONCE.fullmatch(nonce) is None:
        raise SignatureError(SignatureFailure.BAD_NONCE)
    if now - timestamp > tolerance_seconds:
        raise SignatureError(SignatureFailure.EXPIRED)
    if timestamp - now > tolerance_seconds:
        raise SignatureError(SignatureFailure.FUTURE)
    try:
        expected = _digest(key, canonical_request(method, path, query, body, timestamp, nonce))
    except ValueError:
        raise SignatureError(SignatureFailure.MISMATCH) from None  # no sender could have signed it
    matched = False
    for candidate in candidates:  # every candidate is compared: the time taken says nothing about which matched
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError(SignatureFailure.MISMATCH)
    return Verified(timestamp, nonce)
