"""The vector index on Pinecone, through the official `pinecone` SDK.

One namespace per catalog. The vector id is the product id where Pinecone accepts it (printable ASCII, at most
512 bytes, not beginning with `~`); any other id is encoded, and the product id kept in the metadata under
`_product_id` (logic/vector_ids.py): reads (ids, query, export) give back product ids. Writes are packed to the
service's limits (1,000 vectors and 2 MB per upsert, 1,000 ids per delete). Metadata-only changes use
`update(set_metadata)`, which needs no embedding; a change that removes a metadata field cannot be expressed
that way (Pinecone merges metadata and has no null), so that product is re-written whole from its stored vector.

Writes are paced and retried (resilience/). With a `Pacer`, every write request attempt (upsert, update,
delete), the SDK's own retries included, waits for room within the process's share of the namespace's write
limits: the pacer is put under the SDK's retry loop, in its HTTP transport (resilience/pinecone_sdk.py). Then
a write the SDK gave up on (429, 5xx, timeouts: its per-process retry budget empties under sustained throttling
and cannot be switched off) is retried here with backoff, up to `RetryPolicy.attempts` times.

A product Pinecone refuses for its content (a 400 for a request: Pinecone does not say which vector; the SDK's
own refusals before sending; metadata over 40 KB) does not fail the others: a refused request is split in
halves until the refused vectors are found (logic/isolation.py), and each write returns the refused products
with the reason. The caller leaves them pending.
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

from catalog_sync.adapters.pinecone.limits import (
    MAX_DELETE_IDS,
    MAX_METADATA_BYTES,
    MAX_REQUEST_BYTES,
    MAX_UPSERT_VECTORS,
    PINECONE_CAPABILITIES,
    REQUEST_BYTES_BUDGET,
    UPSERT_BYTES,
    refusal,
    retryable,
    write_costs,
)
from catalog_sync.logic.isolation import send_isolating
from catalog_sync.logic.packing import bounded_batches
from catalog_sync.logic.vector_ids import ORIGINAL_ID_KEY, is_encoded, legacy_vector_id, passes_through, vector_id
from catalog_sync.models.changes import Change
from catalog_sync.models.index import IndexEntry
from catalog_sync.ports import Vectors
from catalog_sync.resilience.pacing import Pacer
from catalog_sync.resilience.pinecone_sdk import pace_sdk_transport
from catalog_sync.resilience.policy import PINECONE_WRITE_RETRY
from catalog_sync.resilience.retry import RetryPolicy, call_with_retries

FETCH_BATCH = 100
# Reserved metadata keys (catalog metadata field names cannot start with "_").
TEXT_HASH_KEY = "_text_hash"
TEXT_KEY = "_text"
PINECONE_ID_RULES = PINECONE_CAPABILITIES.vector_ids

T = TypeVar("T")
_NOT_FOUND = "(not in the index)"


class PineconeIndexError(RuntimeError):
    """Pinecone refused or could not complete a write."""


class RefusedItem(PineconeIndexError):
    """One product's write that Pinecone would refuse, found before sending."""


def _short_floats(vectors: Vectors) -> list[list[float]]:
    # float32 values as the shortest decimals that round-trip: about half the JSON of float64 reprs, so twice
    # as many vectors fit in a 2 MB request.
    floats: list[list[float]] = orjson.loads(
        orjson.dumps(np.ascontiguousarray(vectors, dtype=np.float32), option=orjson.OPT_SERIALIZE_NUMPY)
    )
    return floats


class PineconeVectorIndex:
    capabilities = PINECONE_CAPABILITIES

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
        retry: RetryPolicy = PINECONE_WRITE_RETRY,
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
        self._paced_in_transport = pacer is not None and pace_sdk_transport(index, pacer, write_costs)
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

    def _vector_id(self, product_id: str) -> str:
        return vector_id(product_id, PINECONE_ID_RULES)

    def _metadata(self, change: Change) -> dict[str, Any]:
        metadata = dict(change.metadata or {})
        if change.text_hash:
            metadata[TEXT_HASH_KEY] = change.text_hash
        if not passes_through(change.product_id, PINECONE_ID_RULES):
            metadata[ORIGINAL_ID_KEY] = change.product_id
        size = len(orjson.dumps(metadata))
        if size > MAX_METADATA_BYTES:
            raise RefusedItem(f"its metadata is {size:,} bytes, over Pinecone's 40 KB per vector")
        if self.store_text and change.text:
            # The stored copy of the text is for display: cut it to what the 40 KB per vector leaves.
            room = MAX_METADATA_BYTES - size - len(orjson.dumps({TEXT_KEY: ""}))
            text = change.text
            if len(orjson.dumps(text)) > room:
                text = text.encode()[: max(room - 2, 0) // 2].decode(errors="ignore")  # JSON may double a byte
            metadata[TEXT_KEY] = text
        return metadata

    def _send_upsert(self, batch: Sequence[tuple[str, dict[str, Any]]]) -> None:
        # One plain call per request: it raises on failure (the SDK's batching helper does not).
        records = [record for _, record in batch]
        paced_here = self.pacer is not None and not self._paced_in_transport
        size = sum(len(orjson.dumps(record)) + 1 for record in records) if paced_here else 0
        self._write("/vectors/upsert", partial(self._index.upsert, vectors=records, namespace=self.namespace), size)
        self.requests["upsert"] += 1

    def _upsert_records(self, records: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, str]:
        """Upsert (product id, record) pairs; returns the refused products with the reasons."""
        refused: dict[str, str] = {}
        try:
            packed = list(
                bounded_batches(
                    records,
                    size_of=lambda pair: len(orjson.dumps(pair[1])) + 1,
                    max_items=MAX_UPSERT_VECTORS,
                    max_bytes=self.upsert_request_bytes,
                )
            )
        except ValueError as exc:
            raise PineconeIndexError(f"a vector does not fit one upsert request: {exc}") from exc
        for batch in packed:
            outcome = send_isolating(batch, self._send_upsert, refusal=refusal)
            refused.update({product_id: reason for (product_id, _), reason in outcome.refused})
        written = [product_id for product_id, _ in records if product_id not in refused]
        self._drop_legacy_vectors(written)
        return refused

    def _drop_legacy_vectors(self, product_ids: Sequence[str]) -> None:
        """Earlier versions kept an id beginning with `~` as its vector id: once the product is written under its
        encoded id, that vector goes."""
        legacy = [old for pid in product_ids if (old := legacy_vector_id(pid, PINECONE_ID_RULES)) is not None]
        for start in range(0, len(legacy), MAX_DELETE_IDS):
            chunk = legacy[start : start + MAX_DELETE_IDS]
            self._write("/vectors/delete", partial(self._index.delete, ids=chunk, namespace=self.namespace))
            self.requests["delete"] += 1

    def upsert(self, ids: Sequence[str], vectors: Vectors, changes: Sequence[Change]) -> dict[str, str]:
        """Write the vectors; returns the products Pinecone refused, with the reasons (the others are written)."""
        values = _short_floats(vectors)
        refused: dict[str, str] = {}
        records: list[tuple[str, dict[str, Any]]] = []
        for product_id, vector, change in zip(ids, values, changes, strict=True):
            try:
                metadata = self._metadata(change)
            except RefusedItem as exc:
                refused[product_id] = str(exc)
                continue
            records.append((product_id, {"id": self._vector_id(product_id), "values": vector, "metadata": metadata}))
        refused.update(self._upsert_records(records))
        return refused

    def update_metadata(self, changes: Sequence[Change]) -> dict[str, str]:
        """Update metadata in place; returns the products Pinecone refused, with the reasons. A vector that is not
        in the index fails the batch (it may not be visible yet; the next sync re-sends the product whole)."""

        # A field that changed and is now absent was removed: set_metadata cannot unset it.
        def removes_a_field(change: Change) -> bool:
            metadata = change.metadata or {}
            return any(name in self.metadata_fields and name not in metadata for name in change.fields_changed)

        in_place = [c for c in changes if not removes_a_field(c)]
        rewrite = [c for c in changes if removes_a_field(c)]

        errors: list[Exception] = []
        refused: dict[str, str] = {}

        def update(change: Change) -> str | None:
            """None: updated; _NOT_FOUND: no such vector; else why Pinecone refused it."""
            if errors:
                return None  # an update failed for good: the batch fails, the rest need not be sent
            try:
                metadata = self._metadata(change)
                response = self._write(
                    "/vectors/update",
                    partial(
                        self._index.update,
                        id=self._vector_id(change.product_id),
                        set_metadata=metadata,
                        namespace=self.namespace,
                    ),
                )
            except RefusedItem as exc:
                return str(exc)
            except Exception as exc:
                reason = refusal(exc)
                if reason is None:
                    errors.append(exc)
                return reason
            with self._counts:
                self.requests["update"] += 1
            matched = getattr(response, "matched_records", None)
            return _NOT_FOUND if matched == 0 else None  # 0: no such vector (an update never creates one)

        if in_place:
            # The threads share the pacer: together they keep to the process's share of the write limit.
            with ThreadPoolExecutor(max_workers=self.update_concurrency) as pool:
                outcomes = list(pool.map(update, in_place))
            if errors:
                raise errors[0]
            missing = [c.product_id for c, outcome in zip(in_place, outcomes, strict=True) if outcome is _NOT_FOUND]
            if missing:
                # The batch fails and stays pending; the next sync re-sends these products whole.
                raise PineconeIndexError(
                    f"metadata update for {len(missing)} vectors not in the index, e.g. {missing[0]!r}"
                )
            refused.update({c.product_id: outcome for c, outcome in zip(in_place, outcomes, strict=True) if outcome})
        if rewrite:
            stored = self._fetch([self._vector_id(c.product_id) for c in rewrite])
            missing = [c.product_id for c in rewrite if self._vector_id(c.product_id) not in stored]
            if missing:
                raise PineconeIndexError(
                    f"metadata update for {len(missing)} vectors not in the index, e.g. {missing[0]!r}"
                )
            records: list[tuple[str, dict[str, Any]]] = []
            for c in rewrite:
                vid = self._vector_id(c.product_id)
                try:
                    metadata = self._metadata(c)
                except RefusedItem as exc:
                    refused[c.product_id] = str(exc)
                    continue
                records.append((c.product_id, {"id": vid, "values": list(stored[vid].values), "metadata": metadata}))
            refused.update(self._upsert_records(records))
        return refused

    def _fetch(self, vector_ids: Sequence[str]) -> dict[str, Any]:
        """Stored vectors by vector id."""
        found: dict[str, Any] = {}
        for start in range(0, len(vector_ids), FETCH_BATCH):
            response = self._index.fetch(ids=list(vector_ids[start : start + FETCH_BATCH]), namespace=self.namespace)
            self.requests["fetch"] += 1
            found.update(response.vectors)
        return found

    def delete(self, ids: Sequence[str]) -> dict[str, str]:
        """Delete the products' vectors; returns those Pinecone refused, with the reasons."""
        targets = [(pid, self._vector_id(pid)) for pid in ids]
        targets += [(pid, old) for pid in ids if (old := legacy_vector_id(pid, PINECONE_ID_RULES)) is not None]
        refused: dict[str, str] = {}

        def send(part: Sequence[tuple[str, str]]) -> None:
            chunk = [vid for _, vid in part]
            self._write("/vectors/delete", partial(self._index.delete, ids=chunk, namespace=self.namespace))
            self.requests["delete"] += 1

        for start in range(0, len(targets), MAX_DELETE_IDS):
            outcome = send_isolating(targets[start : start + MAX_DELETE_IDS], send, refusal=refusal)
            refused.update({product_id: reason for (product_id, _), reason in outcome.refused})
        return refused

    def _vector_ids(self) -> list[str]:
        found: list[str] = []
        for page in self._index.list(namespace=self.namespace):
            self.requests["list"] += 1
            found.extend(item.id for item in page.vectors)
        return found

    def ids(self) -> set[str]:
        """The product ids of the vectors in the namespace (an encoded vector id is read back from the metadata)."""
        found: set[str] = set()
        encoded: list[str] = []
        for vid in self._vector_ids():
            if is_encoded(vid, PINECONE_ID_RULES):
                encoded.append(vid)
            else:
                found.add(vid)
        for vid, vector in self._fetch(encoded).items():
            found.add(self._entry(vid, vector.metadata).id)
        return found

    def count(self) -> int:
        stats = self._index.describe_index_stats()
        namespace = stats.namespaces.get(self.namespace)
        return int(namespace.vector_count) if namespace is not None else 0

    def _entry(self, vector_id: str, metadata: Mapping[str, Any] | None, score: float | None = None) -> IndexEntry:
        metadata = dict(metadata or {})
        text_hash = str(metadata.pop(TEXT_HASH_KEY, ""))
        text = str(metadata.pop(TEXT_KEY, ""))
        # A vector without the key is under its product id (or was written so by an earlier version).
        product_id = str(metadata.pop(ORIGINAL_ID_KEY, vector_id))
        return IndexEntry(id=product_id, text=text, text_hash=text_hash, metadata=metadata, score=score)

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
        vector_ids = sorted(self._vector_ids())
        for start in range(0, len(vector_ids), FETCH_BATCH):
            for vid, vector in self._fetch(vector_ids[start : start + FETCH_BATCH]).items():
                yield self._entry(vid, vector.metadata)

    def maintain(self, *, force: bool = False) -> bool:
        return False  # the service compacts and indexes by itself
