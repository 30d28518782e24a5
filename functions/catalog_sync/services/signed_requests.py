"""A signed request is accepted once: its signature is checked (catalog_sync.logic.signing), then its nonce is
recorded until its timestamp has left the window, and the same nonce again is refused as a replay."""

from __future__ import annotations

from typing import Protocol

from catalog_sync.logic.signing import verify

# A seen nonce is kept this long after its request's timestamp leaves the window: the function's instances' clocks
# and the store's (DynamoDB deletes an item by TTL only after its expires_at, often much later) may differ a little.
SEEN_NONCE_MARGIN_SECONDS = 60


class NonceLedger(Protocol):
    def record(self, nonce: str, *, expires_at: int) -> None:
        """Raises catalog_sync.logic.signing.Replayed when `nonce` was recorded before."""


def accept_once(
    ledger: NonceLedger,
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
    tolerance_seconds: int,
) -> None:
    """Raises SignatureError (nothing recorded) or Replayed."""
    verified = verify(
        key,
        method=method,
        path=path,
        query=query,
        body=body,
        timestamp_header=timestamp_header,
        nonce_header=nonce_header,
        signature_header=signature_header,
        now=now,
        tolerance_seconds=tolerance_seconds,
    )
    # Kept until the timestamp has left the window: after that the request is refused as expired anyway.
    ledger.record(verified.nonce, expires_at=verified.timestamp + tolerance_seconds + SEEN_NONCE_MARGIN_SECONDS)
