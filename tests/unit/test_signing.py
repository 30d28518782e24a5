"""Webhook request signing, scheme v2: HMAC-SHA256 over the method, path, query, timestamp, nonce and the body's
SHA-256, within a time window. The expected digests are computed here from the documented canonical form."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import pytest

from catalog_sync.logic.signing import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    SignatureFailure,
    Verified,
    new_nonce,
    sign,
    signature_headers,
    verify,
)

KEY = b"whsec-unit-test-key"
BODY = b'{"mode":"full","ids":["a","b"]}'
NOW = 1_790_000_000
NONCE = "n0nce-for-the-unit-tests_0001"
PATH = "/catalogs/shop/sync"
QUERY = ""


def documented(key: bytes, method: str, path: str, query: str, body: bytes, timestamp: int, nonce: str = NONCE) -> str:
    """The README's form, written out: seven lines joined by \\n, HMAC-SHA256 in hex."""
    body_hash = hashlib.sha256(body).hexdigest()
    canonical = f"catalog-sync-v2\n{method}\n{path}\n{query}\n{timestamp}\n{nonce}\n{body_hash}"
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def check(
    signature: str | None,
    *,
    timestamp: str | None = str(NOW),
    nonce: str | None = NONCE,
    key: bytes = KEY,
    method: str = "POST",
    path: str = PATH,
    query: str = QUERY,
    body: bytes = BODY,
    now: float = NOW,
    **options: Any,
) -> Verified:
    return verify(
        key,
        method=method,
        path=path,
        query=query,
        body=body,
        timestamp_header=timestamp,
        nonce_header=nonce,
        signature_header=signature,
        now=now,
        **options,
    )


def refused(signature: str | None, **request: Any) -> SignatureFailure:
    with pytest.raises(SignatureError) as caught:
        check(signature, **request)
    return caught.value.reason


def signed(
    *,
    key: bytes = KEY,
    method: str = "POST",
    path: str = PATH,
    query: str = QUERY,
    body: bytes = BODY,
    timestamp: int = NOW,
    nonce: str = NONCE,
) -> str:
    return sign(key, method, path, query, body, timestamp, nonce)


# ---------------------------------------------------------------- the form


def test_the_signature_is_hmac_sha256_of_the_documented_canonical_request():
    assert signed() == f"v2={documented(KEY, 'POST', PATH, QUERY, BODY, NOW)}"
    # An empty body is the SHA-256 of no bytes; a query is signed exactly as sent.
    expected = documented(KEY, "GET", "/catalogs/shop/runs", "limit=5&x=%20a", b"", NOW)
    assert sign(KEY, "GET", "/catalogs/shop/runs", "limit=5&x=%20a", b"", NOW, NONCE) == f"v2={expected}"


def test_the_method_is_signed_upper_case_and_the_path_percent_decoded():
    # API Gateway's HTTP API hands the function the path decoded (rawPath): a sender signs it so.
    assert signed(method="post") == signed(method="POST")
    assert signed(path="/catalogs/sh%6Fp/sync") == signed(path="/catalogs/shop/sync")
    decoded = documented(KEY, "POST", "/catalogs/café/sync", "", BODY, NOW)
    assert signed(path="/catalogs/caf%C3%A9/sync") == f"v2={decoded}"
    check(signed(path="/catalogs/caf%C3%A9/sync"), path="/catalogs/café/sync")


def test_the_helper_makes_all_three_headers_with_a_new_nonce_each_time():
    headers = signature_headers(KEY, "GET", "/health", "", b"", NOW)
    assert set(headers) == {TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER}
    assert headers[TIMESTAMP_HEADER] == str(NOW)
    nonce = headers[NONCE_HEADER]
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,128}", nonce)
    assert headers[SIGNATURE_HEADER] == f"v2={documented(KEY, 'GET', '/health', '', b'', NOW, nonce)}"
    again = signature_headers(KEY, "GET", "/health", "", b"", NOW)
    assert again[NONCE_HEADER] != nonce and again[SIGNATURE_HEADER] != headers[SIGNATURE_HEADER]
    given = signature_headers(KEY, "GET", "/health", "", b"", NOW, nonce=NONCE)
    assert given[NONCE_HEADER] == NONCE
    assert len({new_nonce() for _ in range(1_000)}) == 1_000


@pytest.mark.parametrize(
    ("method", "path", "query", "nonce"),
    [
        ("GET\n", "/health", "", NONCE),  # a line break would make the form ambiguous
        ("GET", "/health\n", "", NONCE),
        ("GET", "/health%0A", "", NONCE),  # decoded, it is a line break too
        ("GET", "/health", "a=1\nb=2", NONCE),
        ("GET", "health", "", NONCE),  # a path starts with /
        ("", "/health", "", NONCE),
        ("GET", "/health", "", "short"),
        ("GET", "/health", "", "x" * 129),
        ("GET", "/health", "", "n" * 15 + "!"),
    ],
)
def test_the_helper_refuses_what_it_cannot_sign_unambiguously(method: str, path: str, query: str, nonce: str):
    with pytest.raises(ValueError):  # noqa: PT011  # a sender's bug, whichever part
        sign(KEY, method, path, query, b"", NOW, nonce)


# ---------------------------------------------------------------- accepted


def test_a_signed_request_is_accepted():
    assert check(signed()) == (NOW, NONCE)
    empty = sign(KEY, "GET", "/health", "", b"", NOW, NONCE)
    check(empty, method="GET", path="/health", body=b"", now=NOW + 0.5)  # an empty body is signed too


def test_several_signatures_are_accepted_while_a_key_rotates():
    old, new = b"old-key", b"new-key"
    both = f"{signed(key=new)}, {signed(key=old)}"
    assert check(both, key=old) == check(both, key=new) == (NOW, NONCE)
    assert refused(both) is SignatureFailure.MISMATCH  # neither is KEY's
    # Another scheme beside v2 is ignored (v1 too, when a v2 value is there); an upper-case digest is the same.
    check(f"v3=whatever,v1={'0' * 64},{signed().upper().replace('V2=', 'v2=')}")


# ---------------------------------------------------------------- refused: another request


@pytest.mark.parametrize(
    "other",
    [
        {"method": "PUT"},
        {"method": "GET"},
        {"path": "/catalogs/outlet/sync"},  # another catalog
        {"path": "/catalogs/shop/changes"},  # another route
        {"path": "/catalogs/shop/sync/"},
        {"query": "mode=full"},
        {"body": BODY.replace(b"full", b"incremental")},
        {"body": BODY + b" "},
        {"nonce": "another-nonce-of-the-tests"},
        {"timestamp": str(NOW - 10)},  # a fresh timestamp on an old signature is another request
    ],
)
def test_the_signature_of_one_request_does_not_hold_for_another(other: dict[str, Any]):
    assert refused(signed(), **other) is SignatureFailure.MISMATCH


def test_the_query_is_signed_exactly_as_sent():
    signature = sign(KEY, "GET", "/catalogs/shop/runs", "limit=5&a=1", b"", NOW, NONCE)
    request = {"method": "GET", "path": "/catalogs/shop/runs", "body": b""}
    check(signature, query="limit=5&a=1", **request)
    for query in ("a=1&limit=5", "limit=5", "limit=5&a=1&", "limit=%35&a=1", ""):  # reordered, cut, re-encoded
        assert refused(signature, query=query, **request) is SignatureFailure.MISMATCH


def test_a_signature_with_another_key_is_refused():
    assert refused(signed(key=b"some-other-key")) is SignatureFailure.MISMATCH


def test_a_request_that_no_sender_could_sign_is_a_mismatch_not_an_error():
    assert refused(signed(), query="a\nb") is SignatureFailure.MISMATCH
    assert refused(signed(), method="G E T") is SignatureFailure.MISMATCH


# ---------------------------------------------------------------- refused: the headers


def test_a_request_without_the_three_headers_is_refused():
    assert refused(None) is SignatureFailure.MISSING
    assert refused("") is SignatureFailure.MISSING
    assert refused(signed(), timestamp=None) is SignatureFailure.MISSING
    assert refused(signed(), nonce=None) is SignatureFailure.MISSING
    assert refused(signed(), nonce="") is SignatureFailure.MISSING


def test_a_v1_signature_is_refused_as_retired():
    v1 = "v1=" + hmac.new(KEY, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()  # the old scheme, correct
    assert refused(v1, nonce=None) is SignatureFailure.RETIRED_SCHEME  # a v1 sender sends no nonce
    assert refused(f"{v1},{v1}") is SignatureFailure.RETIRED_SCHEME
    with pytest.raises(SignatureError, match="v1 signatures are no longer accepted"):
        check(v1)


@pytest.mark.parametrize(
    "timestamp",
    ["soon", "1790000000.5", "-1790000000", "+1790000000", "1_790_000_000", "١٧٩٠٠٠٠٠٠٠", "1e9", "9" * 13, "1,2"],
)
def test_a_timestamp_that_is_not_plain_integer_seconds_is_refused(timestamp: str):
    assert refused(signed(), timestamp=timestamp) is SignatureFailure.BAD_TIMESTAMP


@pytest.mark.parametrize(
    "nonce",
    ["x" * 15, "x" * 129, "with space here!", "nonce.with.dots.1", "ñonce-with-accent", f"{NONCE},{NONCE}"],
)
def test_a_nonce_out_of_its_format_is_refused(nonce: str):
    assert refused(signed(), nonce=nonce) is SignatureFailure.BAD_NONCE


def test_the_nonce_limits_are_inside():
    for nonce in ("a" * 16, "Z-_9" * 32):
        check(signed(nonce=nonce), nonce=nonce)


@pytest.mark.parametrize(
    "signature",
    [
        "deadbeef",  # no scheme
        "v2=",  # no digest
        "v2=" + "0" * 63,  # too short
        "v2=" + "g" * 64,  # not hex
        "v2=" + "0" * 64 + "00",  # too long
        "sha256=" + "0" * 64,  # another scheme only
        "v2 = " + "0" * 64,
        "v2=" + "0" * 64 + ",",  # an empty element
        ",".join(["v2=" + "0" * 64] * 9),  # too many
    ],
)
def test_a_malformed_signature_header_is_refused(signature: str):
    assert refused(signature) is SignatureFailure.MALFORMED


# ---------------------------------------------------------------- refused: the clock


def test_an_expired_signature_is_refused():
    old = NOW - 301
    assert refused(signed(timestamp=old), timestamp=str(old)) is SignatureFailure.EXPIRED
    check(signed(timestamp=NOW - 300), timestamp=str(NOW - 300))  # the window's edge is inside


def test_a_signature_from_the_future_is_refused():
    ahead = NOW + 301
    assert refused(signed(timestamp=ahead), timestamp=str(ahead)) is SignatureFailure.FUTURE
    check(signed(timestamp=NOW + 300), timestamp=str(NOW + 300))  # some clock skew is fine


def test_the_tolerance_is_configurable():
    signature, timestamp = signed(timestamp=NOW - 30), str(NOW - 30)
    check(signature, timestamp=timestamp, tolerance_seconds=60)
    assert refused(signature, timestamp=timestamp, tolerance_seconds=10) is SignatureFailure.EXPIRED


def test_a_replay_verifies_within_the_window_for_the_receiver_to_refuse_by_its_nonce():
    signature = signed()
    assert check(signature, now=NOW + 60).nonce == NONCE  # no nonce store here: the receiver keeps one
    assert refused(signature, now=NOW + 301) is SignatureFailure.EXPIRED
    assert refused(signature, now=NOW + 86_400) is SignatureFailure.EXPIRED


# ---------------------------------------------------------------- what it says


def test_the_error_says_which_way_the_signature_failed_and_nothing_about_the_key():
    with pytest.raises(SignatureError) as caught:
        check(signed(key=b"wrong"))
    assert caught.value.reason is SignatureFailure.MISMATCH
    assert str(caught.value) == caught.value.description == "the signature does not match the request"
    assert KEY.decode() not in str(caught.value)


def test_an_empty_key_is_a_configuration_error_not_a_valid_key():
    with pytest.raises(ValueError, match="empty"):
        signed(key=b"")
    with pytest.raises(ValueError, match="empty"):
        check("v2=" + "0" * 64, key=b"")
