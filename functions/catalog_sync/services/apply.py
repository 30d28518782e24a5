"""The consumer: apply a batch of changes to the vector index, then commit the state.

Embeddings come from the cache first; only misses reach the embedder, in one call per batch. A change is
applied only if it is still the desired version of its product, and its state is committed only after the
index write succeeded, so a crash anywhere leaves the product pending and the next pass re-sends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from catalog_sync.logic.canonical import embedding_key
from catalog_sync.models.changes import Change, ChangeKind, IndexAction
from catalog_sync.ports import Embedder, EmbeddingCache, StateStore, VectorIndex, Vectors


@dataclass
class ApplyStats:
    upserted: int = 0
    metadata_updated: int = 0
    deleted: int = 0
    embedded: int = 0
    cache_hits: int = 0
    stale_skipped: int = 0
    committed: int = 0
    failed: int = 0
    # Products whose write was overtaken by a newer change: marked pending, to be re-synced.
    repairs: list[str] = field(default_factory=list)

    def add(self, other: ApplyStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {
            name: len(value) if isinstance(value, list) else value
            for name in self.__dataclass_fields__
            for value in [getattr(self, name)]
        }


class ChangeApplier:
    def __init__(self, *, state: StateStore, index: VectorIndex, embedder: Embedder, cache: EmbeddingCache) -> None:
        self.state = state
        self.index = index
        self.embedder = embedder
        self.cache = cache

    def still_desired(self, batch: Sequence[Change]) -> tuple[list[Change], int]:
        versions = self.state.desired_versions([change.product_id for change in batch])
        # Several changes of one product in one batch (a duplicate delivery): keep the newest only.
        newest: dict[str, Change] = {}
        for change in batch:
            if versions.get(change.product_id) != change.version:
                continue
            current = newest.get(change.product_id)
            if current is None or change.version >= current.version:
                newest[change.product_id] = change
        live = list(newest.values())
        return live, len(batch) - len(live)

    def embeddings_for(self, changes: Sequence[Change], stats: ApplyStats) -> Vectors:
        model_id = self.embedder.model_id
        keys = [embedding_key(change.text or "", model_id=model_id) for change in changes]
        cached = self.cache.get_many(sorted(set(keys)))
        # Same text twice in one batch is embedded once.
        missing: dict[str, str] = {}
        for key, change in zip(keys, changes, strict=True):
            if key not in cached and key not in missing:
                missing[key] = change.text or ""
        stats.cache_hits += sum(1 for key in keys if key in cached)
        if missing:
            fresh = self.embedder.embed(list(missing.values()))
            produced = dict(zip(missing.keys(), fresh, strict=True))
            self.cache.put_many(produced, model_id=model_id)
            cached.update(produced)
            stats.embedded += len(missing)
        if not changes:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return np.stack([cached[key] for key in keys]).astype(np.float32, copy=False)

    def apply(self, batch: Sequence[Change]) -> ApplyStats:
        stats = ApplyStats()
        live, stats.stale_skipped = self.still_desired(batch)
        upserts = [c for c in live if c.action is IndexAction.UPSERT]
        updates = [c for c in live if c.action is IndexAction.UPDATE_METADATA]
        deletes = [c for c in live if c.action is IndexAction.DELETE]
        if upserts:
            vectors = self.embeddings_for(upserts, stats)
            self.index.upsert([c.product_id for c in upserts], vectors, upserts)
            stats.upserted = len(upserts)
        if updates:
            self.index.update_metadata(updates)
            stats.metadata_updated = len(updates)
        if deletes:
            self.index.delete([c.product_id for c in deletes])
            stats.deleted = len(deletes)
        # A newer change of a product may have been recorded, and even applied, while this one was being
        # written: then this (older) write may have overwritten the newer one in the index. Such products are
        # marked pending, so that a re-sync puts the desired version back; the caller asks for it (repairs).
        now = self.state.desired_versions([c.product_id for c in live])
        overtaken = [c.product_id for c in live if c.product_id in now and now[c.product_id] != c.version]
        # A product whose deletion was applied and committed meanwhile has no state left: this write put it back.
        vanished = [c for c in live if c.product_id not in now and c.action is not IndexAction.DELETE]
        if vanished:
            overtaken += self._delete_again(vanished, stats)
        if overtaken:
            self.state.mark_pending(overtaken)
            stats.repairs = overtaken
        settled = {c.product_id for c in vanished}.union(overtaken)
        stats.committed = self.state.commit([c for c in live if c.product_id not in settled])
        return stats

    def _delete_again(self, vanished: Sequence[Change], stats: ApplyStats) -> list[str]:
        """Undo writes that resurrected deleted products: a pending deletion is recorded at the write's version
        (only where no newer change exists), applied and committed. Returns the products re-added meanwhile,
        whose newer vector that deletion may have removed: they need a re-sync."""
        deletions = [
            Change(
                product_id=c.product_id,
                kind=ChangeKind.DELETED,
                action=IndexAction.DELETE,
                priority=True,
                reason="a late write put back a deleted product",
                version=c.version,
            )
            for c in vanished
        ]
        self.state.record_desired(deletions, [])
        self.index.delete([c.product_id for c in deletions])
        stats.deleted += len(deletions)
        self.state.commit(deletions)
        readded = self.state.desired_versions([c.product_id for c in deletions])
        return list(readded)
