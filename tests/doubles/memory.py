"""In-memory fakes of the ports (catalog_sync.ports) but the state store (memory_state.py), and a PipelineParts over
them: the services run on these in tests/unit/services with no files, no moto and no network.

Each keeps what was done to it in plain attributes (what the index holds, the messages queued, the texts embedded,
the functions invoked), so that tests assert outcomes rather than calls.
"""

from __future__ import annotations

import hashlib
import io
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from catalog_sync.logic.drops import DropClaim, newest_listed
from catalog_sync.logic.packing import OversizedChange, PackedMessage, pack_messages
from catalog_sync.models.changes import Change, QuarantinedRecord
from catalog_sync.models.config import CatalogConfig
from catalog_sync.models.index import IndexCapabilities, IndexEntry
from catalog_sync.ports import Refused, Vectors
from tests.doubles.memory_state import MemoryCatalogState, MemoryStateStore

BUCKET = "catalog-bucket"
CATALOGS_PREFIX = "catalogs/"
PUSHES_PREFIX = "pushes/"
MAX_MESSAGE_BYTES = 256 * 1024


class RecordingEmbedder:
    """Deterministic: a text's vector comes from its SHA-256, so equal texts get equal vectors. Keeps every text
    it was asked to embed, in order."""

    label = "recording (deterministic test embedder)"

    def __init__(self, dimension: int = 8, model_id: str = "test/recording-8") -> None:
        self.dimension = dimension
        self.model_id = model_id
        self.texts: list[str] = []
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        self.texts.extend(texts)
        return np.stack([vector_of(text, self.dimension) for text in texts]) if texts else self._none()

    def _none(self) -> Vectors:
        return np.zeros((0, self.dimension), dtype=np.float32)


def vector_of(text: str, dimension: int = 8) -> Vectors:
    digest = hashlib.sha256(text.encode()).digest()
    raw = np.frombuffer(digest[:dimension], dtype=np.uint8).astype(np.float32) - 127.5
    norm = float(np.linalg.norm(raw))
    return raw / norm if norm else raw


class MemoryEmbeddingCache:
    def __init__(self) -> None:
        self.vectors: dict[str, Vectors] = {}

    def get_many(self, keys: Sequence[str]) -> dict[str, Vectors]:
        return {key: self.vectors[key] for key in keys if key in self.vectors}

    def put_many(self, items: Mapping[str, Vectors], *, model_id: str) -> None:
        self.vectors.update(items)


@dataclass
class Stored:
    """A product as the index holds it."""

    vector: Vectors
    text: str
    text_hash: str
    metadata: dict[str, Any]


class MemoryVectorIndex:
    """`refuse`: product id -> the reason the index refuses any write of it (for its content); `fail_writes`: how
    many writes raise before the next succeeds (throttling: retried, not refused); `during_write`: what runs while
    a write is in flight (another invocation overtaking it), once."""

    def __init__(self, refuse: Mapping[str, str] | None = None) -> None:
        self.capabilities = IndexCapabilities()
        self.entries: dict[str, Stored] = {}
        self.refuse = dict(refuse or {})
        self.fail_writes = 0
        self.writes = 0
        self.during_write: Callable[[], None] | None = None

    def _write(self, ids: Iterable[str]) -> dict[str, str]:
        if self.fail_writes > 0:
            self.fail_writes -= 1
            raise ConnectionError("the index did not answer")
        if self.during_write is not None:
            overtake, self.during_write = self.during_write, None
            overtake()
        self.writes += 1
        return {pid: self.refuse[pid] for pid in ids if pid in self.refuse}

    def upsert(self, ids: Sequence[str], vectors: Vectors, changes: Sequence[Change]) -> Refused | None:
        refused = self._write(ids)
        for pid, vector, change in zip(ids, vectors, changes, strict=True):
            if pid not in refused:
                self.entries[pid] = Stored(
                    np.array(vector), change.text or "", change.text_hash or "", {**(change.metadata or {})}
                )
        return refused

    def update_metadata(self, changes: Sequence[Change]) -> Refused | None:
        missing = [c.product_id for c in changes if c.product_id not in self.entries]
        if missing:  # as the real targets do: the whole batch fails
            raise LookupError(f"metadata update for {len(missing)} products not in the index, e.g. {missing[0]!r}")
        refused = self._write(c.product_id for c in changes)
        for change in changes:
            if change.product_id not in refused and change.product_id in self.entries:
                self.entries[change.product_id].metadata = {**(change.metadata or {})}
        return refused

    def delete(self, ids: Sequence[str]) -> Refused | None:
        refused = self._write(ids)
        for pid in ids:
            if pid not in refused:
                self.entries.pop(pid, None)
        return refused

    def ids(self) -> set[str]:
        return set(self.entries)

    def count(self) -> int:
        return len(self.entries)

    def query(self, vector: Vectors, k: int, filters: Mapping[str, Any] | None = None) -> list[IndexEntry]:
        matching = [
            (float(np.dot(stored.vector, vector)), pid, stored)
            for pid, stored in self.entries.items()
            if all(stored.metadata.get(name) == value for name, value in (filters or {}).items())
        ]
        matching.sort(key=lambda scored: (-scored[0], scored[1]))
        return [self._entry(pid, stored, score) for score, pid, stored in matching[:k]]

    def export(self) -> Iterator[IndexEntry]:
        return (self._entry(pid, stored) for pid, stored in sorted(self.entries.items()))

    def maintain(self, *, force: bool = False) -> bool:
        return False

    @staticmethod
    def _entry(pid: str, stored: Stored, score: float | None = None) -> IndexEntry:
        return IndexEntry(id=pid, text=stored.text, text_hash=stored.text_hash, metadata=stored.metadata, score=score)


class MemoryChangeQueue:
    """The in-process queue (ports.ChangeQueue): priority batches come out first."""

    def __init__(self) -> None:
        self.lanes: dict[bool, deque[Sequence[Change]]] = {True: deque(), False: deque()}
        self.sent: list[tuple[bool, list[Change]]] = []

    def send(self, batches: Iterable[Sequence[Change]], *, priority: bool) -> int:
        count = 0
        for batch in batches:
            if batch:
                self.lanes[priority].append(batch)
                self.sent.append((priority, list(batch)))
                count += 1
        return count

    def receive(self) -> Sequence[Change] | None:
        for priority in (True, False):
            if self.lanes[priority]:
                return self.lanes[priority].popleft()
        return None

    def __len__(self) -> int:
        return sum(map(len, self.lanes.values()))


class MemoryRunSender:
    """A run's sender (ports.RunChangeSender): packs changes into the pipeline's messages, numbered across
    invocations, onto `messages` (shared by the pipeline: the queue the consumers read)."""

    def __init__(self, messages: list[PackedMessage], claims: MemoryClaimStore, *, run_id: str, catalog: str) -> None:
        self.messages = messages
        self.claims = claims
        self.run_id = run_id
        self.catalog = catalog
        self.next_sequence = {"p": 1, "n": 1}

    def send(self, batches: Iterable[Sequence[Change]], *, priority: bool) -> int:
        lane = "p" if priority else "n"
        packed = list(
            pack_messages(
                (change for batch in batches for change in batch),
                run_id=self.run_id,
                lane=lane,
                max_bytes=MAX_MESSAGE_BYTES,
                claim=lambda oversized: self.claims.put(self.run_id, oversized),
                first_sequence=self.next_sequence[lane],
                catalog=self.catalog,
            )
        )
        self.messages.extend(packed)
        self.next_sequence[lane] += len(packed)
        return len(packed)


class MemoryClaimStore:
    """Changes too large for a message, kept aside (ports.ClaimReader)."""

    def __init__(self) -> None:
        self.kept: dict[str, bytes] = {}

    def put(self, run_id: str, oversized: OversizedChange) -> dict[str, Any]:
        key = f"{run_id}/{len(self.kept)}"
        self.kept[key] = oversized.payload
        return {"key": key}

    def get(self, reference: dict[str, Any]) -> bytes:
        return self.kept[reference["key"]]


class MemoryRunArtifacts:
    def __init__(self) -> None:
        self.quarantined: dict[str, list[QuarantinedRecord]] = {}
        self.change_log: dict[str, list[Change]] = {}

    def write_quarantine(self, run_id: str, records: Iterable[QuarantinedRecord]) -> str:
        self.quarantined[run_id] = list(records)
        return f"memory://quarantine/{run_id}"

    def append_change_log(self, run_id: str, changes: Sequence[Change]) -> None:
        self.change_log.setdefault(run_id, []).extend(changes)


class MemoryChangeArchive:
    def __init__(self) -> None:
        self.changes: dict[str, list[Change]] = {}
        self.checkpoints: dict[str, bytes] = {}

    def put(self, run_id: str, changes: Iterable[Change]) -> str:
        key = f"runs/{run_id}/changes"
        self.changes[key] = list(changes)
        return key

    def read(self, key: str) -> Iterator[Change]:
        return iter(list(self.changes[key]))

    def save_checkpoint(self, run_id: str, checkpoint: bytes) -> None:
        self.checkpoints[run_id] = checkpoint

    def has_checkpoint(self, run_id: str) -> bool:
        return run_id in self.checkpoints

    def load_checkpoint(self, run_id: str) -> bytes:
        return self.checkpoints[run_id]


class BytesSource:
    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self.data = data

    def open(self) -> IO[bytes]:
        return io.BytesIO(self.data)


@dataclass
class Drop:
    data: bytes
    modified: float
    version_id: str


class MemoryDropStore:
    """A bucket of catalog drops and pushes (ports.DropStore): `put` writes a new version of a key."""

    def __init__(self, bucket: str = BUCKET) -> None:
        self.bucket = bucket
        self.objects: dict[str, list[Drop]] = {}

    def put(self, key: str, data: bytes, *, modified: float) -> Drop:
        versions = self.objects.setdefault(key, [])
        versions.append(Drop(data, modified, f"v{len(versions) + 1}"))
        return versions[-1]

    def _drop(self, key: str, version_id: str | None) -> Drop | None:
        versions = self.objects.get(key, [])
        found = [d for d in versions if version_id in (None, d.version_id)]
        return found[-1] if found else None

    def source(self, key: str, *, bucket: str | None = None, version_id: str | None = None) -> BytesSource:
        drop = self._drop(key, version_id)
        if drop is None:
            raise FileNotFoundError(f"no such object: {key}")
        return BytesSource(f"s3://{bucket or self.bucket}/{key}", drop.data)

    def look_up(self, key: str, *, bucket: str | None = None, version_id: str | None = None) -> DropClaim | None:
        drop = self._drop(key, version_id)
        return None if drop is None else DropClaim(key=key, modified=drop.modified, version_id=drop.version_id)

    def newest(self, catalog: str) -> str:
        prefix = f"{CATALOGS_PREFIX}{catalog}/"
        listed = [(key, versions[-1].modified) for key, versions in self.objects.items() if key.startswith(prefix)]
        newest = newest_listed(listed)
        if newest is None:
            raise LookupError(f"no catalog object under {prefix}")
        return newest


@dataclass
class MemoryPipeline:
    """The deployed pipeline's parts (ports.PipelineParts), all in memory: one state and index per catalog."""

    configs: dict[str, CatalogConfig]
    embedder_: RecordingEmbedder = field(default_factory=RecordingEmbedder)
    cache_: MemoryEmbeddingCache = field(default_factory=MemoryEmbeddingCache)
    drops_: MemoryDropStore = field(default_factory=MemoryDropStore)
    archive_: MemoryChangeArchive = field(default_factory=MemoryChangeArchive)
    claims_: MemoryClaimStore = field(default_factory=MemoryClaimStore)
    artifacts_: MemoryRunArtifacts = field(default_factory=MemoryRunArtifacts)
    stored: dict[str, MemoryCatalogState] = field(default_factory=dict)
    indexes: dict[str, MemoryVectorIndex] = field(default_factory=dict)
    messages: list[PackedMessage] = field(default_factory=list)  # the queue the consumers read
    invoked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def config(self, catalog: str) -> CatalogConfig:
        return self.configs[catalog]

    def state(self, config: CatalogConfig) -> MemoryStateStore:
        return MemoryStateStore(config.name, self.stored.setdefault(config.name, MemoryCatalogState()))

    def index(self, config: CatalogConfig) -> MemoryVectorIndex:
        return self.indexes.setdefault(config.name, MemoryVectorIndex())

    def embedder(self, config: CatalogConfig) -> RecordingEmbedder:
        return self.embedder_

    def cache(self) -> MemoryEmbeddingCache:
        return self.cache_

    def sender(self, config: CatalogConfig, run_id: str) -> MemoryRunSender:
        return MemoryRunSender(self.messages, self.claims_, run_id=run_id, catalog=config.name)

    def artifacts(self, config: CatalogConfig) -> MemoryRunArtifacts:
        return self.artifacts_

    def drops(self) -> MemoryDropStore:
        return self.drops_

    def archive(self) -> MemoryChangeArchive:
        return self.archive_

    def claims(self) -> MemoryClaimStore:
        return self.claims_

    def invoke_self(self, function_arn: str, payload: dict[str, Any]) -> None:
        self.invoked.append((function_arn, payload))

    def take_messages(self) -> list[PackedMessage]:
        """The messages queued so far, taken off the queue (as consumers receive them)."""
        taken, self.messages[:] = list(self.messages), []
        return taken
