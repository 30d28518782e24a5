"""Webhook request signing: HMAC-SHA256 over `<timestamp>.` + the raw body, within a time window."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from catalog_sync.logic.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    SignatureFailure,
    sign,
    signature_headers,
    verify,
)

KEY = b"whsec-unit-test-key"
BODY = b'{"mode":"full","ids":["a","b"]}'
NOW = 1_790_000_000


def refused(
    timestamp: str | None,
    signature: str | None,
    *,
    key: bytes = KEY,
    body: bytes = BODY,
    now: float = NOW,
) -> SignatureFailure:
    with pytest.raises(SignatureError) as caught:
        verify(key, body, timestamp, signature, now=now)
    return caught.value.reason


def test_the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_raw_body():
    expected = hmac.new(KEY, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(KEY, BODY, NOW) == f"v1={expected}"
    assert signature_headers(KEY, BODY, NOW) == {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: f"v1={expected}"}


def test_a_signed_request_is_accepted():
    assert verify(KEY, BODY, str(NOW), sign(KEY, BODY, NOW), now=NOW) == (NOW, sign(KEY, BODY, NOW)[3:])
    verify(KEY, b"", str(NOW), sign(KEY, b"", NOW), now=NOW + 0.5)  # an empty body is signed too


def test_an_unsigned_request_is_refused():
    assert refused(None, None) is SignatureFailure.MISSING
    assert refused(str(NOW), None) is SignatureFailure.MISSING
    assert refused(None, sign(KEY, BODY, NOW)) is SignatureFailure.MISSING
    assert refused("", "") is SignatureFailure.MISSING


def test_an_expired_signature_is_refused():
    old = NOW - 301
    assert refused(str(old), sign(KEY, BODY, old)) is SignatureFailure.EXPIRED
    verify(KEY, BODY, str(NOW - 300), sign(KEY, BODY, NOW - 300), now=NOW)  # the window's edge is inside


def test_a_signature_from_the_future_is_refused():
    ahead = NOW + 301
    assert refused(str(ahead), sign(KEY, BODY, ahead)) is SignatureFailure.FUTURE
    verify(KEY, BODY, str(NOW + 300), sign(KEY, BODY, NOW + 300), now=NOW)  # some clock skew is fine


def test_the_tolerance_is_configurable():
    signature = sign(KEY, BODY, NOW - 30)
    verify(KEY, BODY, str(NOW - 30), signature, now=NOW, tolerance_seconds=60)
    with pytest.raises(SignatureError) as caught:
        verify(KEY, BODY, str(NOW - 30), signature, now=NOW, tolerance_seconds=10)
    assert caught.value.reason is SignatureFailure.EXPIRED


def test_a_tampered_body_is_refused():
    signature = sign(KEY, BODY, NOW)
    assert refused(str(NOW), signature, body=BODY.replace(b"full", b"incremental")) is SignatureFailure.MISMATCH
    assert refused(str(NOW), signature, body=BODY + b" ") is SignatureFailure.MISMATCH


def test_a_tampered_timestamp_is_refused():
    # A fresh timestamp on an old signature: the timestamp is part of what is signed.
    assert refused(str(NOW), sign(KEY, BODY, NOW - 10)) is SignatureFailure.MISMATCH


def test_a_signature_with_another_key_is_refused():
    assert refused(str(NOW), sign(b"some-other-key", BODY, NOW)) is SignatureFailure.MISMATCH


def test_a_replayed_signature_is_refused_once_outside_the_window():
    timestamp, signature = str(NOW), sign(KEY, BODY, NOW)
    verify(KEY, BODY, timestamp, signature, now=NOW + 60)  # within the window: accepted (no nonce store)
    assert refused(timestamp, signature, now=NOW + 301) is SignatureFailure.EXPIRED
    assert refused(timestamp, signature, now=NOW + 86_400) is SignatureFailure.EXPIRED


@pytest.mark.parametrize(
    "timestamp",
    ["soon", "1790000000.5", "-1790000000", "+1790000000", "1_790_000_000", "١٧٩٠٠٠٠٠٠٠", "1e9", "9" * 13],
)
def test_a_timestamp_that_is_not_plain_integer_seconds_is_refused(timestamp: str):
    assert refused(timestamp, sign(KEY, BODY, NOW)) is SignatureFailure.BAD_TIMESTAMP


@pytest.mark.parametrize(
    "signature",
    [
        "deadbeef",  # no scheme
        "v1=",  # no digest
        "v1=" + "0" * 63,  # too short
        "v1=" + "g" * 64,  # not hex
        "v1=" + "0" * 64 + "00",  # too long
        "sha256=" + "0" * 64,  # another scheme only
        "v1 = " + "0" * 64,
        "v1=" + "0" * 64 + ",",  # an empty element
        ",".join(["v1=" + "0" * 64] * 9),  # too many
    ],
)
def test_a_malformed_signature_header_is_refused(signature: str):
    assert refused(str(NOW), signature) is SignatureFailure.MALFORMED


def test_several_signatures_are_accepted_while_a_key_rotates():
    old, new = b"old-key", b"new-key"
    both = f"{sign(new, BODY, NOW)}, {sign(old, BODY, NOW)}"
    # The digest that matched is the one answered: the receiver records it, to refuse a replay.
    assert verify(old, BODY, str(NOW), both, now=NOW).digest == sign(old, BODY, NOW)[3:]
    assert verify(new, BODY, str(NOW), both, now=NOW).digest == sign(new, BODY, NOW)[3:]
    assert refused(str(NOW), both) is SignatureFailure.MISMATCH  # neither is KEY's
    # Another scheme beside v1 is ignored; an upper-case digest is the same digest.
    verify(KEY, BODY, str(NOW), f"v2=whatever,{sign(KEY, BODY, NOW).upper().replace('V1=', 'v1=')}", now=NOW)


def test_the_error_says_which_way_the_signature_failed_and_nothing_about_the_key():
    with pytest.raises(SignatureError) as caught:
        verify(KEY, BODY, str(NOW), sign(b"wrong", BODY, NOW), now=NOW)
    assert caught.value.reason is SignatureFailure.MISMATCH
    assert str(caught.value) == caught.value.description == "the signature does not match the request"
    assert KEY.decode() not in str(caught.value)


def test_an_empty_key_is_a_configuration_error_not_a_valid_key():
    with pytest.raises(ValueError, match="empty"):
        sign(b"", BODY, NOW)
    with pytest.raises(ValueError, match="empty"):
        verify(b"", BODY, str(NOW), "v1=" + "0" * 64, now=NOW)
