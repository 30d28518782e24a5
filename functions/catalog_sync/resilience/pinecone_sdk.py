"""The pacer under the Pinecone SDK's retry loop: the one place that reaches into the SDK's internals.

The SDK's REST data plane retries 408, 429 and 5xx itself and offers no public way to pace those retries, to
configure them or to switch them off (its `RetryConfig` reaches the control plane and gRPC only). Pacing only
the adapter's calls would let the SDK's retries through unpaced, so the pacer is put into the SDK's HTTP
transport, under its retry loop. `pace_sdk_transport` returns False when the SDK does not have the transport
it expects (another version, gRPC, a test double): the adapter then paces each call itself. The SDK's version
is locked, and a test fails if this stops finding the transport.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from catalog_sync.resilience.pacing import Pacer

# What a request to `path` of `size` bytes costs against the pacer's rates (None: not paced).
RequestCosts = Callable[[str, int], dict[str, float] | None]


class _PacedTransport:
    """The SDK's inner HTTP transport, waiting for room in the pacer before each request it sends."""

    def __init__(self, inner: Any, pacer: Pacer, costs: RequestCosts) -> None:
        self.inner = inner
        self.pacer = pacer
        self.costs = costs

    def handle_request(self, request: Any) -> Any:
        costs = self.costs(request.url.path, int(request.headers.get("content-length") or 0))
        if costs is not None:
            self.pacer.acquire(costs)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def pace_sdk_transport(index: Any, pacer: Pacer, costs: RequestCosts) -> bool:
    """Put the pacer under the REST SDK's retry loop (pinecone's `_RetryTransport`), so that its retries are
    paced too; False when `index` has no such transport."""
    try:
        from pinecone._internal.http_client import _RetryTransport
    except ImportError:
        return False
    transport = getattr(getattr(getattr(index, "_http", None), "_client", None), "_transport", None)
    inner = getattr(transport, "_transport", None)
    if not isinstance(transport, _RetryTransport) or not hasattr(inner, "handle_request"):
        return False
    if isinstance(inner, _PacedTransport):
        inner = inner.inner
    transport._transport = _PacedTransport(inner, pacer, costs)  # type: ignore[assignment]
    return True
