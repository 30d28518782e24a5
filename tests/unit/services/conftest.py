"""The services over in-memory fakes of their ports (tests/doubles/memory.py, memory_state.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from catalog_sync.models.changes import Change, ChangeKind, IndexAction
from catalog_sync.models.config import CatalogConfig
from catalog_sync.services.sync import SyncService
from tests.conftest import make_config, product
from tests.doubles.memory import (
    BytesSource,
    MemoryChangeQueue,
    MemoryEmbeddingCache,
    MemoryRunArtifacts,
    MemoryVectorIndex,
    RecordingEmbedder,
)
from tests.doubles.memory_state import MemoryStateStore


def jsonl(records: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(record) + b"\n" for record in records)


def catalog(records: Iterable[dict[str, Any]], name: str = "memory://shop.jsonl") -> BytesSource:
    return BytesSource(name, jsonl(records))


def products(*skus: str) -> list[dict[str, Any]]:
    return [product(sku) for sku in skus]


def text_of(record: dict[str, Any]) -> str:
    """The embedding text of a record under `make_config`: its text fields, joined by the default separator."""
    return f"{record['title']}\n{record['description']}"


def upsert(pid: str, version: int, text: str, **metadata: Any) -> Change:
    return Change(
        product_id=pid,
        kind=ChangeKind.ADDED,
        action=IndexAction.UPSERT,
        version=version,
        text=text,
        text_hash=f"h-{text}",
        metadata_hash=f"m-{metadata}",
        metadata=metadata,
    )


def metadata_only(pid: str, version: int, **metadata: Any) -> Change:
    return Change(
        product_id=pid,
        kind=ChangeKind.METADATA_ONLY,
        action=IndexAction.UPDATE_METADATA,
        version=version,
        metadata=metadata,
        metadata_hash=f"m-{metadata}",
    )


def delete(pid: str, version: int) -> Change:
    return Change(product_id=pid, kind=ChangeKind.DELETED, action=IndexAction.DELETE, version=version, priority=True)


@dataclass
class Local:
    """A sync service that applies its own changes, and the fakes it runs on."""

    config: CatalogConfig = field(default_factory=make_config)
    state: MemoryStateStore = field(default_factory=MemoryStateStore)
    index: MemoryVectorIndex = field(default_factory=MemoryVectorIndex)
    embedder: RecordingEmbedder = field(default_factory=RecordingEmbedder)
    queue: MemoryChangeQueue = field(default_factory=MemoryChangeQueue)
    artifacts: MemoryRunArtifacts = field(default_factory=MemoryRunArtifacts)
    cache: MemoryEmbeddingCache = field(default_factory=MemoryEmbeddingCache)

    def service(self, **options: Any) -> SyncService:
        return SyncService(
            config=self.config,
            state=self.state,
            index=self.index,
            embedder=self.embedder,
            queue=self.queue,
            artifacts=self.artifacts,
            cache=self.cache,
            **options,
        )


@pytest.fixture
def local() -> Local:
    return Local()
