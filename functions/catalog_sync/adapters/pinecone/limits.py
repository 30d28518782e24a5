"""What Pinecone allows: its capabilities (batch sizes, ids, metadata), its write rates as a pacer's, and which of
its errors refuse a request for its content and which may pass."""

from __future__ import annotations

from catalog_sync.models.config import FieldType
from catalog_sync.models.index import IndexCapabilities, MetadataLimits, VectorIdRules
from catalog_sync.resilience.pacing import Rate

# Pinecone's documented limits. "2 MB" is read as the smaller reading, 2,000,000 bytes, so that either reading
# of the limit holds. Updates go one id per request (`update(id=..., set_metadata=...)`), which merges: it
# cannot remove a field. Ids: ASCII (the SDK refuses anything else, and NUL), 1 to 512 characters.
PINECONE_CAPABILITIES = IndexCapabilities(
    vector_ids=VectorIdRules(ascii_only=True, max_bytes=512),
    max_upsert_batch=1_000,
    max_upsert_bytes=2_000_000,
    max_delete_batch=1_000,
    metadata_update=True,
    metadata_update_unsets=False,
    metadata_update_batch=False,
    max_metadata_update_batch=1,
    metadata=MetadataLimits(max_bytes=40 * 1024, value_types=frozenset(FieldType)),
)


def _declared(limit: int | None) -> int:
    if limit is None:  # pragma: no cover - Pinecone declares every limit read here
        raise TypeError("a Pinecone limit is missing from its capabilities")
    return limit


MAX_UPSERT_VECTORS = _declared(PINECONE_CAPABILITIES.max_upsert_batch)
MAX_REQUEST_BYTES = _declared(PINECONE_CAPABILITIES.max_upsert_bytes)
MAX_METADATA_BYTES = _declared(PINECONE_CAPABILITIES.metadata.max_bytes)
# Room for the request envelope ({"vectors": [...], "namespace": ...}) under the 2 MB limit.
REQUEST_BYTES_BUDGET = MAX_REQUEST_BYTES - 4 * 1024
MAX_DELETE_IDS = _declared(PINECONE_CAPABILITIES.max_delete_batch)
# The pacer's rates: write requests (upsert, update, delete together: the stricter reading of the per-namespace
# limits, which the documentation gives per operation), and upserted bytes.
WRITES = "writes"
UPSERT_BYTES = "upsert_bytes"
WRITE_PATHS = ("/vectors/upsert", "/vectors/update", "/vectors/delete")
# Statuses worth another attempt (the SDK's own retryable set, and any other 5xx).
RETRYABLE_STATUSES = frozenset({408, 429})
# Statuses that refuse a request for what it carries: another attempt gets the same answer.
REFUSED_STATUSES = frozenset({400, 413, 422})


def pinecone_rates(writes_per_second: float | None, upsert_bytes_per_second: float | None) -> dict[str, Rate | None]:
    """A namespace's write limits as a pacer's rates, per second (None: not limited)."""
    return {
        WRITES: Rate(writes_per_second, 1.0) if writes_per_second else None,
        UPSERT_BYTES: Rate(upsert_bytes_per_second, 1.0) if upsert_bytes_per_second else None,
    }


def write_costs(path: str, size: int) -> dict[str, float] | None:
    """What a request to the data plane costs against the write rates (None: not a write)."""
    if path.endswith("/vectors/upsert"):
        return {WRITES: 1.0, UPSERT_BYTES: float(size)}
    if path.endswith(WRITE_PATHS):
        return {WRITES: 1.0}
    return None


def refusal(exc: Exception) -> str | None:
    """Why Pinecone refused a request for its content (an item's id, values or metadata), or None when the
    error is about something else (throttling, the service, the connection, the credentials)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return f"Pinecone refused it: {exc}" if status in REFUSED_STATUSES else None
    try:
        from pinecone.errors import PineconeTypeError, PineconeValueError
    except ImportError:  # pragma: no cover - the SDK is there whenever a real index is
        return None
    if isinstance(exc, PineconeValueError | PineconeTypeError):
        return f"the Pinecone SDK refused it: {exc}"
    return None


def retryable(exc: BaseException) -> bool:
    """Throttling, a server error, a timeout or a lost connection: another attempt may succeed."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status in RETRYABLE_STATUSES or status >= 500
    try:
        from pinecone.errors import PineconeConnectionError, PineconeTimeoutError
    except ImportError:  # pragma: no cover - the SDK is there whenever a real index is
        return False
    return isinstance(exc, PineconeConnectionError | PineconeTimeoutError)
