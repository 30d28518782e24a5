"""Wiring of the embedded default: one state directory per catalog under a root folder.

<root>/embedding-cache.sqlite        shared by every catalog
<root>/<catalog>/state.sqlite        desired/committed state, runs
<root>/<catalog>/index.lance/        the local vector index
<root>/<catalog>/changes.jsonl       change log
<root>/<catalog>/quarantine/<run>.jsonl
"""

from __future__ import annotations

from pathlib import Path

from catalog_sync.adapters.local.files import LocalRunArtifacts
from catalog_sync.adapters.local.lance_index import LanceVectorIndex
from catalog_sync.adapters.local.memory_queue import InProcessChangeQueue
from catalog_sync.adapters.local.sqlite_state import SqliteEmbeddingCache, SqliteStateStore
from catalog_sync.models.config import CatalogConfig
from catalog_sync.ports import Embedder
from catalog_sync.services.sync import SyncService

DEFAULT_ROOT = Path(".catalog-sync")


class LocalWorkspace:
    def __init__(self, root: Path, config: CatalogConfig, embedder: Embedder, *, writable: bool = True) -> None:
        # Only a writer (sync, watch) may rebuild an index whose schema no longer fits; readers refuse.
        self.root = root
        self.config = config
        self.embedder = embedder
        self.directory = root / config.name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.state = SqliteStateStore(self.directory / "state.sqlite", config.name)
        self.cache = SqliteEmbeddingCache(root / "embedding-cache.sqlite")
        self.artifacts = LocalRunArtifacts(self.directory)
        self._index: LanceVectorIndex | None = None
        self.notes: list[str] = []
        self.writable = writable

    @property
    def index(self) -> LanceVectorIndex:
        if self._index is None:
            self._index = LanceVectorIndex(
                self.directory / "index.lance",
                self.config,
                self.embedder.dimension,
                rebuild_on_mismatch=self.writable,
            )
            if self._index.rebuilt:
                self.state.uncommit_all()
                self.notes.append(
                    "the local index was rebuilt (embedding dimension or metadata fields changed): every product "
                    "is re-sent, embeddings come from the cache where they can"
                )
        return self._index

    def service(self, *, batch_size: int = 2000) -> SyncService:
        index = self.index
        return SyncService(
            config=self.config,
            state=self.state,
            index=index,
            embedder=self.embedder,
            queue=InProcessChangeQueue(),
            artifacts=self.artifacts,
            cache=self.cache,
            batch_size=batch_size,
            notes=self.notes,
        )

    def close(self) -> None:
        self.state.close()
        self.cache.close()
