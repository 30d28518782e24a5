"""The diff: compare a streamed catalog with the stored state and say exactly what changed.

Kinds are decided against the *desired* state (what the catalog said last time); the index action is
decided against the *committed* state (what the index is known to hold). The two differ only for a product
whose last change was never committed, and such a product is always re-sent, so the index converges.

What is compared is the mapped product (logic/mapping): a record with its derived fields, or, with
[source] group_by, the product a group of consecutive rows makes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from catalog_sync.formats.catalog import CatalogStream
from catalog_sync.logic import canonical as hashing
from catalog_sync.logic.diff_walk import Candidate, Outcome, Walk
from catalog_sync.logic.field_check import FieldCheckReport
from catalog_sync.logic.gc import paused_gc
from catalog_sync.logic.mapping import CatalogMapping
from catalog_sync.logic.snapshot import FingerprintUpdate, StateSnapshot, StoredProduct
from catalog_sync.logic.spool import Spool
from catalog_sync.logic.validation import RecordValidator
from catalog_sync.models.changes import Change, ChangeKind, DiffCounts, IndexAction, QuarantinedRecord
from catalog_sync.models.config import CatalogConfig


@dataclass
class DiffResult:
    # Lists by default; the sync service passes spools so that a huge diff stays on disk.
    changes: list[Change] | Spool[Change] = field(default_factory=list)
    # Products whose content is unchanged but whose raw record was spelled differently.
    fingerprint_updates: list[FingerprintUpdate] = field(default_factory=list)
    quarantined: list[QuarantinedRecord] | Spool[QuarantinedRecord] = field(default_factory=list)
    counts: DiffCounts = field(default_factory=DiffCounts)
    reasons: list[str] = field(default_factory=list)
    resent: int = 0
    # The config's field names no record had (logic/field_check.py).
    field_check: FieldCheckReport | None = None


# The settings that decide how a raw record is validated and hashed. A change to any of them must send every
# record down the full path once; a change elsewhere (the guard, the namespace, batch sizes) must not.
_FINGERPRINTED_SETTINGS = {
    "id_field",
    "source",
    "fields",
    "text",
    "metadata",
    "required_fields",
    "csv",
    "max_metadata_bytes",
}


def fingerprint_seed(config: CatalogConfig, model_id: str) -> int:
    return hashing.config_seed(config.model_dump_json(include=_FINGERPRINTED_SETTINGS), model_id)


class CatalogDiff:
    """Diffs one catalog against a state snapshot. Pure: no I/O beyond reading the records it is given."""

    def __init__(self, config: CatalogConfig, *, model_id: str) -> None:
        self.config = config
        self.model_id = model_id
        self.template_id = config.text.fingerprint()
        self.validator = RecordValidator(config)
        self.mapping = CatalogMapping(config)
        self.seed = fingerprint_seed(config, model_id)
        self._tracked = config.tracked_fields
        self._text_fields = frozenset(config.text.fields)
        self._priority_fields = frozenset(config.priority_fields)
        self._metadata_fields = list(config.metadata)
        self._version = 0

    def run(
        self,
        stream: CatalogStream,
        snapshot: StateSnapshot,
        *,
        full: bool = False,
        only_ids: Collection[str] | None = None,
        index_ids: Iterable[str] | None = None,
        on_record: Callable[[int], None] | None = None,
        version: int = 0,
        result: DiffResult | None = None,
    ) -> DiffResult:
        """Diff a catalog stream against `snapshot`; `version` stamps the changes (the run's sequence number).

        `result` may bring its own (empty) containers, such as spools, for the changes and quarantined records.
        """
        self._version = version
        result = result if result is not None else DiffResult()
        self._note_config_changes(snapshot, result)
        walk = Walk(self, result, snapshot, full=full, wanted=set(only_ids) if only_ids is not None else None)
        with paused_gc():
            if self.mapping.group_by is not None:
                walk.groups(stream, on_record)
            elif stream.lines is not None:
                walk.lines(stream, on_record)
            else:
                walk.records(stream, on_record)
            walk.flush()
            result.field_check = walk.field_check.report(records_read=walk.records_read)
            walk.drop_withdrawn()
            result.counts.records += walk.records_read
            result.counts.valid += walk.fast_unchanged
            result.counts.unchanged += walk.fast_unchanged
            self._deletions(result, snapshot, walk.seen, walk.wanted, index_ids if full else None)
        if on_record is not None:
            on_record(walk.records_read)
        return result

    def _note_config_changes(self, snapshot: StateSnapshot, result: DiffResult) -> None:
        if not snapshot.live_ids and not snapshot.pending_deletes:
            return
        if snapshot.embedding_model and snapshot.embedding_model != self.model_id:
            result.reasons.append(
                f"embedding model changed ({snapshot.embedding_model} -> {self.model_id}): every product is re-embedded"
            )
        if snapshot.text_template and snapshot.text_template != self.template_id:
            result.reasons.append("text template changed: every product's text is rebuilt and re-embedded")

    @staticmethod
    def _quarantine(
        result: DiffResult, reason: str, where: str, product_id: str | None, record: dict[str, Any]
    ) -> None:
        result.counts.invalid += 1
        result.quarantined.append(
            QuarantinedRecord(reason=reason, location=where, product_id=product_id, record=record)
        )

    def _decide(
        self,
        result: DiffResult,
        candidate: Candidate,
        stored: StoredProduct | None,
        full: bool,
    ) -> Outcome:
        """Compare one validated product with its stored state and record the change, if any."""
        counts = result.counts
        product = candidate.product
        reason: str | None = None
        fields_changed: tuple[str, ...] = ()
        resent = False
        if stored is None or stored.deleted:
            kind = ChangeKind.ADDED
            action: IndexAction | None = IndexAction.UPSERT
        else:
            text_differs = stored.text_hash != candidate.text_hash
            metadata_differs = stored.metadata_hash != candidate.metadata_hash
            fields_changed = tuple(
                name for name in self._tracked if stored.field_hashes.get(name) != candidate.field_hashes[name]
            )
            if text_differs:
                kind = ChangeKind.TEXT_CHANGED
                if not self._text_fields.intersection(fields_changed):
                    reason = "embedding model or text template changed"
            elif metadata_differs:
                kind = ChangeKind.METADATA_ONLY
            else:
                kind = ChangeKind.UNCHANGED
            if stored.pending:
                # The last change was never committed: re-send in full (the embedding cache keeps it cheap).
                action = IndexAction.UPSERT
                reason = reason or "previous change not yet committed"
                result.resent += 1
                resent = True
            elif full:
                # A full re-sync rewrites every product whole; embeddings come from the cache.
                action = IndexAction.UPSERT
                reason = reason or ("full re-sync" if kind is ChangeKind.UNCHANGED else None)
            elif kind is ChangeKind.TEXT_CHANGED:
                action = IndexAction.UPSERT
            elif kind is ChangeKind.METADATA_ONLY:
                action = IndexAction.UPDATE_METADATA
            else:
                action = None

        if kind is ChangeKind.UNCHANGED:
            counts.unchanged += 1
        else:
            setattr(counts, kind.value, getattr(counts, kind.value) + 1)
        if action is None:
            # Same content, spelled differently (key order, 1.0 vs 1, an untracked field): remember the new
            # spelling so that the next run takes the fast path.
            if candidate.fingerprint is not None:
                assert stored is not None  # unchanged implies a stored product
                result.fingerprint_updates.append(
                    FingerprintUpdate(product.product_id, candidate.fingerprint, stored.desired_version)
                )
            return Outcome(kind, False, resent)
        priority = kind is not ChangeKind.ADDED and bool(self._priority_fields.intersection(fields_changed))
        if priority:
            counts.priority += 1
        # Every value here was validated already: construct without validating again.
        result.changes.append(
            Change.model_construct(
                product_id=product.product_id,
                kind=kind,
                action=action,
                priority=priority,
                fields_changed=fields_changed,
                reason=reason,
                text=product.text,
                metadata=product.metadata,
                text_hash=candidate.text_hash,
                metadata_hash=candidate.metadata_hash,
                field_hashes=candidate.field_hashes,
                fingerprint=candidate.fingerprint,
                version=self._version,
            )
        )
        return Outcome(kind, priority, resent)

    def _deletions(
        self,
        result: DiffResult,
        snapshot: StateSnapshot,
        seen: Mapping[str, int],
        wanted: set[str] | None,
        index_ids: Iterable[str] | None,
    ) -> None:
        def delete(product_id: str, reason: str | None) -> None:
            result.counts.deleted += 1
            result.counts.priority += 1
            result.changes.append(
                Change.model_construct(
                    product_id=product_id,
                    kind=ChangeKind.DELETED,
                    action=IndexAction.DELETE,
                    priority=True,
                    reason=reason,
                    version=self._version,
                    fields_changed=(),
                )
            )

        live = snapshot.live_ids
        # A set difference runs in C: it matters with a million products.
        gone: set[str] | frozenset[str]
        if wanted is not None:
            gone = {p for p in wanted if p in live and p not in seen}
        else:
            gone = (live if isinstance(live, set | frozenset) else set(live)).difference(seen)
        for product_id in sorted(gone):
            delete(product_id, None)
        for product_id in snapshot.pending_deletes:
            if product_id not in seen and (wanted is None or product_id in wanted):
                delete(product_id, "previous delete not yet committed")
        if index_ids is not None:
            for product_id in index_ids:
                if wanted is not None and product_id not in wanted:
                    continue
                if product_id not in seen and product_id not in live and product_id not in snapshot.pending_deletes:
                    delete(product_id, "orphan: in the index but in neither the catalog nor the state")
