"""The consumer: apply a batch of changes to the vector index, then commit the state.

Embeddings come from the cache first; only misses reach the embedder, in one call per batch. A change is
applied only if it is still the desired version of its product, and its state is committed only after the
index write succeeded, so a crash anywhere leaves the product pending and the next pass re-sends it.

A product the index refuses for its content (an id, a value, a size: the same answer however often it is sent)
does not hold back the rest of its batch: it is left pending, its rejection recorded with the index's reason
(shown by `status`, counted in the run as `rejected`), and the others are committed. Any other error fails the
whole batch, which is retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from catalog_sync.logic.canonical import embedding_key
from catalog_sync.models.changes import Change, ChangeKind, IndexAction
from catalog_sync.models.index import IndexRejection
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
    # Products the index refused (they stay pending), with its reasons.
    rejected: list[IndexRejection] = field(default_factory=list)

    def add(self, other: ApplyStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {
            name: len(value) if isinstance(value, list) else value
            for name in self.__dataclass_fields__
            for value in [getattr(self, name)]
        }


def rejection_summary(rejections: Sequence[IndexRejection], shown: int = 3) -> str:
    """One line for a run's message: how many products the index refused, and the first few reasons."""
    examples = "; ".join(f"{r.product_id!r}: {r.reason}" for r in rejections[:shown])
    more = f"; and {len(rejections) - shown:,} more" if len(rejections) > shown else ""
    return f"the index refused {len(rejections):,} products, which stay pending (see `status`): {examples}{more}"


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
        refused: dict[str, str] = {}
        if upserts:
            vectors = self.embeddings_for(upserts, stats)
            refused.update(self.index.upsert([c.product_id for c in upserts], vectors, upserts) or {})
            stats.upserted = sum(c.product_id not in refused for c in upserts)
        if updates:
            refused.update(self.index.update_metadata(updates) or {})
            stats.metadata_updated = sum(c.product_id not in refused for c in updates)
        if deletes:
            refused.update(self.index.delete([c.product_id for c in deletes]) or {})
            stats.deleted = sum(c.product_id not in refused for c in deletes)
        if refused:
            self._reject([c for c in live if c.product_id in refused], refused, stats)
        written = [c for c in live if c.product_id not in refused]
        # A newer change of a product may have been recorded, and even applied, while this one was being
        # written: then this (older) write may have overwritten the newer one in the index. Such products are
        # marked pending, so that a re-sync puts the desired version back; the caller asks for it (repairs).
        now = self.state.desired_versions([c.product_id for c in written])
        overtaken = [c.product_id for c in written if c.product_id in now and now[c.product_id] != c.version]
        # A product whose deletion was applied and committed meanwhile has no state left: this write put it back.
        vanished = [c for c in written if c.product_id not in now and c.action is not IndexAction.DELETE]
        if vanished:
            overtaken += self._delete_again(vanished, stats)
        if overtaken:
            self.state.mark_pending(overtaken)
            stats.repairs = overtaken
        settled = {c.product_id for c in vanished}.union(overtaken)
        stats.committed = self.state.commit([c for c in written if c.product_id not in settled])
        return stats

    def _reject(self, changes: Sequence[Change], reasons: dict[str, str], stats: ApplyStats) -> None:
        """Record what the index refused; the products stay pending (uncommitted)."""
        at = datetime.now(UTC)
        rejections = [
            IndexRejection(
                product_id=c.product_id, version=c.version, action=c.action.value, reason=reasons[c.product_id], at=at
            )
            for c in changes
        ]
        self.state.record_rejections(rejections)
        stats.rejected += rejections

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
        refused = dict(self.index.delete([c.product_id for c in deletions]) or {})
        if refused:
            self._reject([c for c in deletions if c.product_id in refused], refused, stats)
        stats.deleted += sum(c.product_id not in refused for c in deletions)
        self.state.commit([c for c in deletions if c.product_id not in refused])
        readded = self.state.desired_versions([c.product_id for c in deletions])
        return list(readded)
