"""Ports: what the services need from the outside world. Adapters implement them (local, AWS, SaaS)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from catalog_sync.logic.drops import DropClaim
from catalog_sync.logic.snapshot import FingerprintUpdate, StateSnapshot
from catalog_sync.models.changes import Change, QuarantinedRecord, RunRecord, StateCounts
from catalog_sync.models.config import CatalogConfig
from catalog_sync.models.index import IndexCapabilities, IndexEntry, IndexRejection, IndexSettings

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    """Turns texts into vectors. `model_id` names the model (and its dimension, where that varies) so that hashes
    and the cache can key on it; `label` is what people are shown."""

    model_id: str
    dimension: int
    label: str

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One float32 row of `dimension` values per text, in order (an empty array of that width for none)."""


class EmbeddingCache(Protocol):
    """Vectors by embedding key (logic/canonical.py: text and model): a key missing from `get_many` is a miss."""

    def get_many(self, keys: Sequence[str]) -> dict[str, Vectors]: ...

    def put_many(self, items: Mapping[str, Vectors], *, model_id: str) -> None: ...


# Products a write refused for their content, each with the index's reason (product id -> reason).
Refused = Mapping[str, str]


class VectorIndex(Protocol):
    """Takes and gives product ids; maps them to its own vector ids (`capabilities.vector_ids`) inside.

    Each write returns the products it refused for their content (an id, a value, a size: what another attempt
    would not change), with the reason; everything else was written. A write raises for anything that may pass
    (throttling, a server error, a lost connection): then the whole batch is retried.

    `capabilities` declares the target's limits (batch sizes, metadata, ids); the adapter packs its requests to
    them, so a write may be handed any number of products."""

    capabilities: IndexCapabilities

    def upsert(self, ids: Sequence[str], vectors: Vectors, changes: Sequence[Change]) -> Refused | None: ...

    def update_metadata(self, changes: Sequence[Change]) -> Refused | None: ...

    def delete(self, ids: Sequence[str]) -> Refused | None: ...

    def ids(self) -> set[str]: ...

    def count(self) -> int: ...

    def query(self, vector: Vectors, k: int, filters: Mapping[str, Any] | None = None) -> list[IndexEntry]: ...

    def export(self) -> Iterator[IndexEntry]: ...

    def maintain(self, *, force: bool = False) -> bool:
        """Housekeeping after many writes (compaction, indexes); a no-op where the service does its own."""


@runtime_checkable
class ChangeSender(Protocol):
    """Carries batches of changes from the diff towards the consumers, on a priority or a normal lane."""

    def send(self, batches: Iterable[Sequence[Change]], *, priority: bool) -> int: ...


@runtime_checkable
class ChangeQueue(ChangeSender, Protocol):
    """A queue the same process also consumes (the embedded default): priority batches come out first."""

    def receive(self) -> Sequence[Change] | None: ...

    def __len__(self) -> int: ...


class StateStore(Protocol):
    """Per-product desired and committed state, runs and metadata of one catalog."""

    def snapshot(self) -> StateSnapshot: ...

    def begin_run(self, *, mode: str, source: str) -> RunRecord: ...

    def finish_run(self, run: RunRecord) -> bool:
        """Save the run; True when this call completed it (a dispatched run whose changes were all handled)."""

    def record_desired(self, changes: Sequence[Change], fingerprint_updates: Sequence[FingerprintUpdate]) -> None: ...

    def record_index_settings(self, settings: IndexSettings) -> None:
        """The embedder and template the whole index was last built with (after a complete, clean run)."""

    def index_settings(self) -> IndexSettings | None:
        """What `record_index_settings` last recorded, as it was recorded; None before it ever was. One small read
        (not a snapshot): what the read-only commands need to know which embedder the index holds."""

    def desired_versions(self, ids: Sequence[str]) -> dict[str, int]: ...

    def commit(self, changes: Sequence[Change]) -> int: ...

    def uncommit_all(self) -> int: ...

    def mark_pending(self, ids: Sequence[str]) -> None:
        """Forget what the index holds for these products, so that the next sync re-sends them."""

    def record_rejections(self, rejections: Sequence[IndexRejection]) -> None:
        """Products the index refused at these versions, with its reasons (they stay pending, uncommitted)."""

    def rejections(self, limit: int = 1_000) -> list[IndexRejection]:
        """The pending products whose current change the index refused, newest first (a product committed since,
        or changed again, is not listed)."""

    def pending_count(self) -> int: ...

    def product_count(self) -> int: ...

    def indexed_count(self) -> int: ...

    def counts(self) -> StateCounts:
        """Products, indexed, pending, deleting and synced, in one pass (the counts above, and what health needs)."""

    def runs(self, limit: int = 30) -> list[RunRecord]: ...

    def find_run(self, run_id: str) -> RunRecord | None:
        """One run of this catalog as `runs` reports it, or None."""

    def get_run(self, run_id: str) -> RunRecord:
        """One run of this catalog as `begin_run` and `finish_run` last saved it (without what consumers added:
        their counters, a dispatched run's completion). KeyError if there is none."""

    def record_progress(
        self, run_id: str, handled: int, applied: Mapping[str, int] | None = None, *, message_id: str | None = None
    ) -> bool:
        """Consumers count the changes of a dispatched run they handled, and add up what they did (`applied`:
        embedded, cache_hits, upserted, ...; reported by `runs` as `applied_<name>`). With a `message_id`, a
        message is counted once however often it is delivered. True when this call completed the run."""


class CatalogSource(Protocol):
    """Where a catalog is read from: a local file, an S3 object (at a version), ... A source yields records; it
    never decides what changed (the diff does, so every source has the same guarantees).

    `open` gives a full snapshot, in one of the catalog formats (formats/). Only a snapshot tells which
    products are gone: deletions come from it alone."""

    name: str

    def open(self) -> IO[bytes]: ...


# Where an incremental source left off: opaque to everyone but the source that made it.
Cursor = str


@runtime_checkable
class IncrementalCatalogSource(CatalogSource, Protocol):
    """A source that can also give just the records changed since a cursor (a database's updated-at, a change
    feed). Those records are added or changed products; a product missing from them is not deleted (only a
    snapshot says that). The file and S3 sources have the snapshot form only."""

    def changes_since(self, cursor: Cursor | None) -> tuple[Iterator[dict[str, Any]], Cursor]:
        """The records changed since `cursor` (None: all of them), and the cursor to ask with next time."""


class RunArtifacts(Protocol):
    """Where a run leaves what people read later: quarantined records and the change log."""

    def write_quarantine(self, run_id: str, records: Iterable[QuarantinedRecord]) -> str: ...

    def append_change_log(self, run_id: str, changes: Sequence[Change]) -> None: ...


@dataclass(frozen=True)
class CatalogDrop:
    """A catalog as a watcher finds it: where it is, and a signature that changes whenever its content may have."""

    location: str  # a path, an object's URL: what reports name it by
    name: str  # its short name, for messages
    signature: Hashable
    source: CatalogSource


class WatchedLocation(Protocol):
    """Where a watcher looks for the catalog to sync: a file, or a folder of drops whose newest one counts."""

    def newest(self) -> CatalogDrop | None:
        """The catalog now there, or None while there is none (or it vanished between looks)."""


# ---------------------------------------------------------------- the deployed pipeline's drops, runs and repairs


class DropClaims(Protocol):
    """A state store's record of the newest catalog drop a run has read (see catalog_sync.logic.drops)."""

    def claim_source(self, *, modified: float, key: str, version_id: str | None, sequencer: str | None = None) -> bool:
        """Claim `key` as the newest drop read; False when a run already read a newer one."""

    def withdraw_claim(self, claim: DropClaim) -> None:
        """The guard held `claim`'s run: the claim it replaced is the newest again."""

    def newest_claim(self) -> DropClaim | None: ...

    def newest_source(self) -> tuple[float, str, str | None] | None:
        """(modified, key, version id) of the newest drop a run has read, if any."""


class PipelineState(StateStore, DropClaims, Protocol):
    """The state store of a deployed pipeline, which also judges which catalog drop is the newest."""


class DropStore(Protocol):
    """Where catalog drops and pushed changes are stored (a bucket): read one, look one up, find the newest."""

    def source(self, key: str, *, bucket: str | None = None, version_id: str | None = None) -> CatalogSource: ...

    def look_up(self, key: str, *, bucket: str | None = None, version_id: str | None = None) -> DropClaim | None:
        """The drop as a claim (its LastModified, version id), or None when it cannot be read."""

    def newest(self, catalog: str) -> str:
        """The key of the catalog's newest drop (ConfigError when it has none)."""


class ChangeArchive(Protocol):
    """Keeps a run's changes for as long as its dispatch may need to resume, and the dispatch's checkpoint."""

    def put(self, run_id: str, changes: Iterable[Change]) -> str: ...

    def read(self, key: str) -> Iterator[Change]: ...

    def save_checkpoint(self, run_id: str, checkpoint: bytes) -> None: ...

    def has_checkpoint(self, run_id: str) -> bool: ...

    def load_checkpoint(self, run_id: str) -> bytes: ...


class RunChangeSender(ChangeSender, Protocol):
    """Sends one run's changes (its messages carry `run_id`), numbering them across invocations."""

    run_id: str
    next_sequence: dict[str, int]


class ClaimReader(Protocol):
    """Reads the changes a queue message carries as claim checks (those too large for the message)."""

    def get(self, reference: dict[str, Any]) -> bytes: ...


class PipelineParts(Protocol):
    """What the deployed pipeline's services are built from, catalog by catalog (the composition root provides
    it: catalog_sync.bootstrap.aws). Looked up when used, never kept: a warm function caches what it can."""

    def catalogs(self) -> list[str]:
        """The deployment's catalogs: those with state, and those with a config."""

    def config(self, catalog: str) -> CatalogConfig: ...

    def state(self, config: CatalogConfig) -> PipelineState: ...

    def index(self, config: CatalogConfig) -> VectorIndex: ...

    def embedder(self, config: CatalogConfig) -> Embedder: ...

    def cache(self) -> EmbeddingCache: ...

    def sender(self, config: CatalogConfig, run_id: str) -> RunChangeSender: ...

    def artifacts(self, config: CatalogConfig) -> RunArtifacts: ...

    def drops(self) -> DropStore: ...

    def archive(self) -> ChangeArchive: ...

    def claims(self) -> ClaimReader: ...

    def invoke_self(self, function_arn: str, payload: dict[str, Any]) -> None:
        """Start the diff function again, asynchronously: a continuation, or a re-sync of some products."""
