"""The vector index on Pinecone, through the official `pinecone` SDK.

One namespace per catalog; the vector id is the product id. Writes are packed to the service's limits
(1,000 vectors and 2 MB per upsert, 1,000 ids per delete). Metadata-only changes use `update(set_metadata)`,
which needs no embedding; a change that removes a metadata field cannot be expressed that way (Pinecone
merges metadata and has no null), so that product is re-written whole from its stored vector.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson

from catalog_sync.logic.packing import bounded_batches
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


class PineconeIndexError(RuntimeError):
    """Pinecone refused or could not complete a write."""


def pack_upserts(records: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Split upsert records into requests of at most 1,000 vectors and 2 MB of JSON."""
    try:
        yield from bounded_batches(
            records,
            size_of=lambda record: len(orjson.dumps(record)) + 1,
            max_items=MAX_UPSERT_VECTORS,
            max_bytes=REQUEST_BYTES_BUDGET,
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
    ) -> None:
        self.namespace = namespace
        self.metadata_fields = list(metadata_fields)
        self.store_text = store_text
        self.update_concurrency = update_concurrency
        self.requests: dict[str, int] = {"upsert": 0, "update": 0, "delete": 0, "fetch": 0, "query": 0, "list": 0}
        if index is None:
            from pinecone import Pinecone

            key = api_key or os.environ.get("PINECONE_API_KEY")
            if not key:
                raise PineconeIndexError("the Pinecone index needs an API key (PINECONE_API_KEY)")
            index = Pinecone(api_key=key).Index(host=host)
        self._index = index

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
        for batch in pack_upserts(records):
            # One plain call per packed request: it raises on failure (the SDK's batching helper does not).
            self._index.upsert(vectors=batch, namespace=self.namespace)
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

        def update(change: Change) -> bool:
            response = self._index.update(
                id=change.product_id, set_metadata=self._metadata(change), namespace=self.namespace
            )
            matched = getattr(response, "matched_records", None)
            return matched != 0  # 0: no such vector (an update never creates one)

        if in_place:
            with ThreadPoolExecutor(max_workers=self.update_concurrency) as pool:
                found = list(pool.map(update, in_place))  # list() re-raises the first failure
            self.requests["update"] += len(in_place)
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
            self._index.delete(ids=list(ids[start : start + MAX_DELETE_IDS]), namespace=self.namespace)
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
