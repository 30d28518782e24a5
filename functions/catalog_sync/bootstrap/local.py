"""The embedded default's composition root (the CLI's): one state directory per catalog under a root folder.
The embedder and the index are built by kind (bootstrap/registry.py).

<root>/embedding-cache.sqlite        shared by every catalog
<root>/<catalog>/state.sqlite        desired/committed state, runs
<root>/<catalog>/index.lance/        the local vector index
<root>/<catalog>/changes.jsonl       change log
<root>/<catalog>/quarantine/<run>.jsonl
<root>/<catalog>/writer.lock         held by the one writer of the catalog (`writer_workspace`)
<root>/<catalog>/writer.json         who holds it
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from catalog_sync.adapters.local.files import LocalRunArtifacts
from catalog_sync.adapters.local.memory_queue import InProcessChangeQueue
from catalog_sync.adapters.local.sqlite_state import SqliteEmbeddingCache, SqliteStateStore
from catalog_sync.adapters.local.writer_lock import Holder, WriterLock
from catalog_sync.bootstrap.registry import LOCAL_INDEXES, LocalIndexContext
from catalog_sync.models.changes import RunRecord
from catalog_sync.models.config import CatalogConfig, IndexKind
from catalog_sync.ports import Embedder, VectorIndex
from catalog_sync.services.sync import SyncService

DEFAULT_ROOT = Path(".catalog-sync")
INDEX_KIND = IndexKind.LANCEDB


class LocalCatalog:
    """A catalog's local state, embedding cache and index, for a reader that embeds nothing (status, runs,
    export): no embedder is built, and the index is opened as it is stored, whatever embedder built it.

    `dimension` None: the stored index's; a reader never creates or rebuilds it (NoLocalIndex when there is
    none). Only a writer (sync, watch) may rebuild an index whose schema no longer fits; readers refuse."""

    def __init__(
        self, root: Path, config: CatalogConfig, *, dimension: int | None = None, writable: bool = False
    ) -> None:
        self.root = root
        self.config = config
        self.directory = root / config.name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.state = SqliteStateStore(self.directory / "state.sqlite", config.name)
        self.cache = SqliteEmbeddingCache(root / "embedding-cache.sqlite")
        self.dimension = dimension
        self.writable = writable
        self.notes: list[str] = []
        self._index: VectorIndex | None = None

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            context = LocalIndexContext(
                config=self.config,
                directory=self.directory,
                dimension=self.dimension,
                writable=self.writable,
                on_rebuilt=self._index_rebuilt,
            )
            self._index = LOCAL_INDEXES.build(INDEX_KIND, context, catalog=self.config.name)
        return self._index

    def _index_rebuilt(self) -> None:
        self.state.uncommit_all()
        self.notes.append(
            "the local index was rebuilt (embedding dimension or metadata fields changed): every product "
            "is re-sent, embeddings come from the cache where they can"
        )

    def close(self) -> None:
        self.state.close()
        self.cache.close()


class LocalWorkspace(LocalCatalog):
    """A catalog's local state, cache and index with the embedder that fills (or queries) the index."""

    def __init__(self, root: Path, config: CatalogConfig, embedder: Embedder, *, writable: bool = True) -> None:
        super().__init__(root, config, dimension=embedder.dimension, writable=writable)
        self.embedder = embedder
        self.artifacts = LocalRunArtifacts(self.directory)
        self.lock: WriterLock | None = None
        # Runs found `running` by this writer and marked interrupted (their process was gone).
        self.interrupted: list[str] = []

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
            on_run_started=self._run_started,
        )

    def _run_started(self, run: RunRecord) -> None:
        if self.lock is not None:
            self.lock.record_run(run.run_id)


def interrupted_message(left_behind: Holder | None, now: datetime) -> str:
    who = f" ({left_behind.describe()})" if left_behind is not None else ""
    return (
        f"interrupted: its process{who} ended before the run finished (killed or crashed); found by the next "
        f"writer at {now:%Y-%m-%d %H:%M:%S} UTC. What it had not applied stayed pending: the next sync re-sends it"
    )


@contextmanager
def writer_workspace(
    root: Path,
    config: CatalogConfig,
    embedder: Embedder,
    *,
    wait: float = 0.0,
    on_wait: Callable[[Holder | None], None] | None = None,
) -> Iterator[LocalWorkspace]:
    """The catalog's workspace for its one writer: the writer lock is taken first (within `wait` seconds, else
    WriterBusy), then runs a dead writer left `running` are marked interrupted, and the lock is held until the
    workspace is closed."""
    lock = WriterLock(root / config.name)
    lock.acquire(wait=wait, on_wait=on_wait)
    try:
        workspace = LocalWorkspace(root, config, embedder, writable=True)
        try:
            workspace.lock = lock
            workspace.interrupted = workspace.state.interrupt_running_runs(
                interrupted_message(lock.left_behind, datetime.now(UTC))
            )
            yield workspace
        finally:
            workspace.close()
    finally:
        lock.release()
