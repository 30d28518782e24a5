"""The vector index on Pinecone, through the official `pinecone` SDK.

One namespace per catalog; the vector id is the product id. Writes are packed to the service's limits
(1,000 vectors and 2 MB per upsert, 1,000 ids per delete). Metadata-only changes use `update(set_metadata)`,
which needs no embedding; a change that removes a metadata field cannot be expressed that way (Pinecone
merges metadata and has no null), so that product is re-written whole from its stored vector.

Writes are paced and retried. With a `Pacer`, every write request attempt (upsert, update, delete), the
SDK's own retries included, waits for room within the process's share of the namespace's write limits: the
pacer is put under the SDK's retry loop, in its HTTP transport. Then a write the SDK gave up on (429, 5xx,
timeouts: its per-process retry budget empties under sustained throttling and cannot be switched off) is
retried here with backoff, up to `RetryPolicy.attempts` times.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import numpy as np
import orjson

from catalog_sync.logic.pacing import Pacer, Rate
from catalog_sync.logic.packing import bounded_batches
from catalog_sync.logic.retrying import RetryPolicy, call_with_retries
from catalog_sync.models.changes import Change
from catalog_sync.models.index import IndexEntry
from catalog_sync.ports import Vectors

MAX_UPSERT_VECTORS = 1_000
# "2 MB" read as the smaller reading, 2,000,000 bytes, so that either reading of the limit holds.
MAX_REQUEST_BYTES = 2_000_000
MAX_METADATA_BYTES = 40 * 1024
# Room for the request envelope ({"vectors": [...], "namespace": ...}) under the 2 MB limit.
REQUEST_BYTES_BUDGET = MAX_REQUEST_BYTES - 4 * 1024
MAX_DELETE_IDS = 1_000
FETCH_BATCH = 100
# Reserved metadata keys (catalog metadata field names cannot start with "_").
TEXT_HASH_KEY = "_text_hash"
TEXT_KEY = "_text"
# The pacer's rates: write requests (upsert, update, delete together: the stricter reading of the per-namespace
# limits, which the documentation gives per operation), and upserted bytes.
WRITES = "writes"
UPSERT_BYTES = "upsert_bytes"
WRITE_PATHS = ("/vectors/upsert", "/vectors/update", "/vectors/delete")
# Statuses worth another attempt (the SDK's own retryable set, and any other 5xx).
RETRYABLE_STATUSES = frozenset({408, 429})
# 12 attempts lose a write only when all are refused: at 20% throttling, 4 in a billion (a message makes up to
# ~3,000 writes). The delays add up to at most 32 s (0.25 s doubling to 4 s).
DEFAULT_RETRY = RetryPolicy(attempts=12, base_delay=0.25, max_delay=4.0)

T = TypeVar("T")


class PineconeIndexError(RuntimeError):
    """Pinecone refused or could not complete a write."""


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


class _PacedTransport:
    """The SDK's inner HTTP transport, waiting for room in the pacer before each write request it sends."""

    def __init__(self, inner: Any, pacer: Pacer) -> None:
        self.inner = inner
        self.pacer = pacer

    def handle_request(self, request: Any) -> Any:
        costs = write_costs(request.url.path, int(request.headers.get("content-length") or 0))
        if costs is not None:
            self.pacer.acquire(costs)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def pace_sdk_transport(index: Any, pacer: Pacer) -> bool:
    """Put the pacer under the REST SDK's retry loop (pinecone's `_RetryTransport`), so that its retries are
    paced too; False when `index` has no such transport (another SDK version, gRPC, a test double)."""
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
    transport._transport = _PacedTransport(inner, pacer)  # type: ignore[assignment]
    return True


def pack_upserts(
    records: Sequence[dict[str, Any]], max_bytes: int = REQUEST_BYTES_BUDGET
) -> Iterator[list[dict[str, Any]]]:
    """Split upsert records into requests of at most 1,000 vectors and 2 MB of JSON (or `max_bytes`)."""
    try:
        yield from bounded_batches(
            records,
            size_of=lambda record: len(orjson.dumps(record)) + 1,
            max_items=MAX_UPSERT_VECTORS,
            max_bytes=max_bytes,
        )
    except ValueError as exc:
        raise PineconeIndexError(f"a vector does not fit one upsert request: {exc}") from exc


def _short_floats(vectors: Vectors) -> list[list[float]]:
    # float32 values as the shortest decimals that round-trip: about half the JSON of float64 reprs, so twice
    # as many vectors fit in a 2 MB request.
    floats: list[list[float]] = orjson.loads(
        orjson.dumps(np.ascontiguousarray(vectors, dtype=np.float32), option=orjson.OPT_SERIALIZE_NUMPY)
    )
    return floats


class PineconeVectorIndex:
    def __init__(
        self,
        *,
        host: str,
        namespace: str,
        metadata_fields: Sequence[str],
        api_key: str | None = None,
        store_text: bool = False,
        update_concurrency: int = 8,
        index: Any = None,
        pacer: Pacer | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """`pacer`: shared by every thread and instance that writes to the namespace in this process (see
        `shared_pacer`); None: not paced. `retry`: for writes the SDK gave up on."""
        self.namespace = namespace
        self.metadata_fields = list(metadata_fields)
        self.store_text = store_text
        self.update_concurrency = update_concurrency
        self.requests: dict[str, int] = {"upsert": 0, "update": 0, "delete": 0, "fetch": 0, "query": 0, "list": 0}
        self.retries = 0
        self._counts = threading.Lock()  # the update threads count too
        self.retry = retry
        self._sleep = sleep or time.sleep
        if index is None:
            from pinecone import Pinecone

            key = api_key or os.environ.get("PINECONE_API_KEY")
            if not key:
                raise PineconeIndexError("the Pinecone index needs an API key (PINECONE_API_KEY)")
            index = Pinecone(api_key=key).Index(host=host)
        self._index = index
        self.pacer = pacer
        # Paced in the SDK's transport (every attempt), or else here before each call (first attempts only).
        self._paced_in_transport = pacer is not None and pace_sdk_transport(index, pacer)
        self.upsert_request_bytes = REQUEST_BYTES_BUDGET
        capacity = pacer.capacity(UPSERT_BYTES) if pacer is not None else None
        if capacity is not None:
            # A request must fit the window, envelope included.
            self.upsert_request_bytes = min(
                REQUEST_BYTES_BUDGET, int(capacity) - (MAX_REQUEST_BYTES - REQUEST_BYTES_BUDGET)
            )
            if self.upsert_request_bytes < MAX_METADATA_BYTES * 2:
                raise PineconeIndexError(f"an upsert share of {capacity:,.0f} bytes a second is too small to write")

    def _write(self, path: str, call: Callable[[], T], size: int = 0) -> T:
        """A write request, paced and retried (see the module's docstring)."""

        def attempt() -> T:
            if self.pacer is not None and not self._paced_in_transport:
                costs = write_costs(path, size)
                if costs is not None:
                    self.pacer.acquire(costs)
            return call()

        def count(exc: BaseException, retry: int) -> None:
            with self._counts:
                self.retries += 1

        return call_with_retries(attempt, policy=self.retry, retryable=retryable, on_retry=count, sleep=self._sleep)

    def _metadata(self, change: Change) -> dict[str, Any]:
        metadata = dict(change.metadata or {})
        if change.text_hash:
            metadata[TEXT_HASH_KEY] = change.text_hash
        size = len(orjson.dumps(metadata))
        if size > MAX_METADATA_BYTES:
            raise PineconeIndexError(f"metadata of {change.product_id!r} is {size:,} bytes, over Pinecone's 40 KB")
        if self.store_text and change.text:
            # The stored copy of the text is for display: cut it to what the 40 KB per vector leaves.
            room = MAX_METADATA_BYTES - size - len(orjson.dumps({TEXT_KEY: ""}))
            text = change.text
            if len(orjson.dumps(text)) > room:
                text = text.encode()[: max(room - 2, 0) // 2].decode(errors="ignore")  # JSON may double a byte
            metadata[TEXT_KEY] = text
        return metadata

    def _upsert_records(self, records: Sequence[dict[str, Any]]) -> None:
        for batch in pack_upserts(records, self.upsert_request_bytes):
            # One plain call per packed request: it raises on failure (the SDK's batching helper does not).
            paced_here = self.pacer is not None and not self._paced_in_transport
            size = sum(len(orjson.dumps(record)) + 1 for record in batch) if paced_here else 0
            self._write("/vectors/upsert", partial(self._index.upsert, vectors=batch, namespace=self.namespace), size)
            self.requests["upsert"] += 1

    def upsert(self, ids: Sequence[str], vectors: Vectors, changes: Sequence[Change]) -> None:
        values = _short_floats(vectors)
        records = [
            {"id": product_id, "values": vector, "metadata": self._metadata(change)}
            for product_id, vector, change in zip(ids, values, changes, strict=True)
        ]
        self._upsert_records(records)

    def update_metadata(self, changes: Sequence[Change]) -> None:
        # A field that changed and is now absent was removed: set_metadata cannot unset it.
        def removes_a_field(change: Change) -> bool:
            metadata = change.metadata or {}
            return any(name in self.metadata_fields and name not in metadata for name in change.fields_changed)

        in_place = [c for c in changes if not removes_a_field(c)]
        rewrite = [c for c in changes if removes_a_field(c)]

        errors: list[Exception] = []

        def update(change: Change) -> bool:
            if errors:
                return True  # an update failed for good: the batch fails, the rest need not be sent
            metadata = self._metadata(change)
            try:
                response = self._write(
                    "/vectors/update",
                    partial(self._index.update, id=change.product_id, set_metadata=metadata, namespace=self.namespace),
                )
            except Exception as exc:
                errors.append(exc)
                return True
            with self._counts:
                self.requests["update"] += 1
            matched = getattr(response, "matched_records", None)
            return matched != 0  # 0: no such vector (an update never creates one)

        if in_place:
            # The threads share the pacer: together they keep to the process's share of the write limit.
            with ThreadPoolExecutor(max_workers=self.update_concurrency) as pool:
                found = list(pool.map(update, in_place))
            if errors:
                raise errors[0]
            missing = [c.product_id for c, ok in zip(in_place, found, strict=True) if not ok]
            if missing:
                # The batch fails and stays pending; the next sync re-sends these products whole.
                raise PineconeIndexError(
                    f"metadata update for {len(missing)} vectors not in the index, e.g. {missing[0]!r}"
                )
        if rewrite:
            stored = self._fetch([c.product_id for c in rewrite])
            missing = [c.product_id for c in rewrite if c.product_id not in stored]
            if missing:
                raise PineconeIndexError(
                    f"metadata update for {len(missing)} vectors not in the index, e.g. {missing[0]!r}"
                )
            self._upsert_records(
                [
                    {"id": c.product_id, "values": list(stored[c.product_id].values), "metadata": self._metadata(c)}
                    for c in rewrite
                ]
            )

    def _fetch(self, ids: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for start in range(0, len(ids), FETCH_BATCH):
            response = self._index.fetch(ids=list(ids[start : start + FETCH_BATCH]), namespace=self.namespace)
            self.requests["fetch"] += 1
            found.update(response.vectors)
        return found

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), MAX_DELETE_IDS):
            chunk = list(ids[start : start + MAX_DELETE_IDS])
            self._write("/vectors/delete", partial(self._index.delete, ids=chunk, namespace=self.namespace))
            self.requests["delete"] += 1

    def ids(self) -> set[str]:
        found: set[str] = set()
        for page in self._index.list(namespace=self.namespace):
            self.requests["list"] += 1
            found.update(item.id for item in page.vectors)
        return found

    def count(self) -> int:
        stats = self._index.describe_index_stats()
        namespace = stats.namespaces.get(self.namespace)
        return int(namespace.vector_count) if namespace is not None else 0

    def _entry(self, vector_id: str, metadata: Mapping[str, Any] | None, score: float | None = None) -> IndexEntry:
        metadata = dict(metadata or {})
        text_hash = str(metadata.pop(TEXT_HASH_KEY, ""))
        text = str(metadata.pop(TEXT_KEY, ""))
        return IndexEntry(id=vector_id, text=text, text_hash=text_hash, metadata=metadata, score=score)

    def query(self, vector: Vectors, k: int, filters: Mapping[str, Any] | None = None) -> list[IndexEntry]:
        pinecone_filter = {name: {"$eq": value} for name, value in (filters or {}).items()} or None
        response = self._index.query(
            vector=_short_floats(np.asarray(vector).reshape(1, -1))[0],
            top_k=k,
            include_metadata=True,
            filter=pinecone_filter,
            namespace=self.namespace,
        )
        self.requests["query"] += 1
        return [self._entry(match.id, match.metadata, match.score) for match in response.matches]

    def export(self) -> Iterator[IndexEntry]:
        ids = sorted(self.ids())
        for start in range(0, len(ids), FETCH_BATCH):
            for vector_id, vector in self._fetch(ids[start : start + FETCH_BATCH]).items():
                yield self._entry(vector_id, vector.metadata)

    def maintain(self, *, force: bool = False) -> bool:
        return False  # the service compacts and indexes by itself
