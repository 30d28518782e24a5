"""The diff: compare a streamed catalog with the stored state and say exactly what changed.

Kinds are decided against the *desired* state (what the catalog said last time); the index action is
decided against the *committed* state (what the index is known to hold). The two differ only for a product
whose last change was never committed, and such a product is always re-sent, so the index converges.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from catalog_sync.logic import canonical as hashing
from catalog_sync.logic.readers import READER_ERROR_KEY
from catalog_sync.logic.validation import InvalidRecord, RecordValidator, normalize_id
from catalog_sync.models.changes import Change, ChangeKind, DiffCounts, IndexAction, QuarantinedRecord
from catalog_sync.models.config import CatalogConfig

# A fingerprint that never matches a record's: the product must take the full path.
NO_FINGERPRINT = -1


@dataclass(frozen=True, slots=True)
class StoredProduct:
    """A product's stored state: desired (last seen in a catalog) and committed (known to be in the index)."""

    product_id: str
    desired_version: int
    deleted: bool = False
    fingerprint: int | None = None
    text_hash: str | None = None
    metadata_hash: str | None = None
    field_hashes: Mapping[str, str] = field(default_factory=dict)
    committed_version: int | None = None
    committed_text_hash: str | None = None
    committed_metadata_hash: str | None = None

    @property
    def pending(self) -> bool:
        return self.committed_version != self.desired_version

    @property
    def indexed(self) -> bool:
        return self.committed_version is not None


class StateSnapshot(Protocol):
    """What the diff needs from the state store."""

    # Live products (desired present) -> raw-record fingerprint, NO_FINGERPRINT when pending or unknown.
    fingerprints: Mapping[str, int]
    # Products whose desired state is "deleted" but whose delete was not committed yet.
    pending_deletes: Collection[str]
    indexed_count: int
    embedding_model: str | None
    text_template: str | None

    def get(self, product_id: str) -> StoredProduct | None: ...


@dataclass
class DiffResult:
    changes: list[Change] = field(default_factory=list)
    # Products whose content is unchanged but whose raw record was spelled differently.
    fingerprint_updates: list[tuple[str, int]] = field(default_factory=list)
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    counts: DiffCounts = field(default_factory=DiffCounts)
    reasons: list[str] = field(default_factory=list)
    resent: int = 0

    @property
    def deletions(self) -> int:
        return self.counts.deleted


def fingerprint_seed(config: CatalogConfig, model_id: str) -> int:
    return hashing.config_seed(config.model_dump_json(), model_id)


class CatalogDiff:
    """Diffs one catalog against a state snapshot. Pure: no I/O beyond reading the records it is given."""

    def __init__(self, config: CatalogConfig, *, model_id: str) -> None:
        self.config = config
        self.model_id = model_id
        self.template_id = config.text.fingerprint()
        self.validator = RecordValidator(config)
        self.seed = fingerprint_seed(config, model_id)
        self._tracked = config.tracked_fields
        self._text_fields = frozenset(config.text.fields)
        self._priority_fields = frozenset(config.priority_fields)
        self._version = 0

    def run(
        self,
        records: Iterable[tuple[int, dict[str, Any]]],
        snapshot: StateSnapshot,
        *,
        location: Callable[[int], str] = lambda position: f"record {position}",
        full: bool = False,
        only_ids: Collection[str] | None = None,
        index_ids: Iterable[str] | None = None,
        on_record: Callable[[int], None] | None = None,
        version: int = 0,
    ) -> DiffResult:
        """Diff `records` against `snapshot`; `version` stamps the changes (the run's sequence number)."""
        self._version = version
        result = DiffResult()
        counts = result.counts
        self._note_config_changes(snapshot, result)
        fingerprints = snapshot.fingerprints
        id_field = self.config.id_field
        seed = self.seed
        seen: dict[str, int] = {}
        wanted = set(only_ids) if only_ids is not None else None
        fingerprint_of = hashing.record_fingerprint

        for position, record in records:
            counts.records += 1
            if on_record is not None and counts.records % 10_000 == 0:
                on_record(counts.records)
            raw_id = record.get(id_field)
            try:
                product_id = normalize_id(raw_id)
            except InvalidRecord as exc:
                self._quarantine(result, str(exc), location(position), None, record)
                continue
            if wanted is not None and product_id not in wanted:
                continue
            first = seen.get(product_id)
            if first is not None:
                self._quarantine(
                    result, f"duplicate id (first seen at {location(first)})", location(position), product_id, record
                )
                continue
            seen[product_id] = position
            fingerprint = fingerprint_of(record, seed)
            if not full and fingerprint is not None and fingerprints.get(product_id) == fingerprint:
                counts.valid += 1
                counts.unchanged += 1
                continue
            self._full_path(result, snapshot, product_id, record, fingerprint, location(position), full)

        self._deletions(result, snapshot, seen, wanted, index_ids if full else None)
        if on_record is not None:
            on_record(counts.records)
        return result

    def _note_config_changes(self, snapshot: StateSnapshot, result: DiffResult) -> None:
        if not snapshot.fingerprints and not snapshot.pending_deletes:
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

    def _full_path(
        self,
        result: DiffResult,
        snapshot: StateSnapshot,
        product_id: str,
        record: dict[str, Any],
        fingerprint: int | None,
        where: str,
        full: bool,
    ) -> None:
        counts = result.counts
        reader_error = record.get(READER_ERROR_KEY)
        if reader_error is not None:
            self._quarantine(result, str(reader_error), where, product_id, record)
            return
        try:
            product = self.validator.validate(product_id, record)
        except InvalidRecord as exc:
            # The product keeps its last good version: its id was seen, so it is not deleted either.
            self._quarantine(result, str(exc), where, product_id, record)
            return
        counts.valid += 1
        text_hash = hashing.text_hash(product.text, model_id=self.model_id, template_id=self.template_id)
        metadata_hash = hashing.metadata_hash(product.metadata)
        field_hashes = {name: hashing.field_hash(product.values.get(name)) for name in self._tracked}
        stored = snapshot.get(product_id)

        reason: str | None = None
        fields_changed: tuple[str, ...] = ()
        if stored is None or stored.deleted:
            kind = ChangeKind.ADDED
            action: IndexAction | None = IndexAction.UPSERT
        else:
            text_differs = stored.text_hash != text_hash
            metadata_differs = stored.metadata_hash != metadata_hash
            fields_changed = tuple(
                name for name in self._tracked if stored.field_hashes.get(name) != field_hashes[name]
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
            if fingerprint is not None:
                result.fingerprint_updates.append((product_id, fingerprint))
            return
        priority = kind is not ChangeKind.ADDED and bool(self._priority_fields.intersection(fields_changed))
        if priority:
            counts.priority += 1
        result.changes.append(
            Change(
                product_id=product_id,
                kind=kind,
                action=action,
                priority=priority,
                fields_changed=fields_changed,
                reason=reason,
                text=product.text,
                metadata=product.metadata,
                text_hash=text_hash,
                metadata_hash=metadata_hash,
                field_hashes=field_hashes,
                fingerprint=fingerprint,
                version=self._version,
            )
        )

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
                Change(
                    product_id=product_id,
                    kind=ChangeKind.DELETED,
                    action=IndexAction.DELETE,
                    priority=True,
                    reason=reason,
                    version=self._version,
                )
            )

        candidates: Iterable[str] = snapshot.fingerprints if wanted is None else wanted
        for product_id in candidates:
            if product_id not in seen and product_id in snapshot.fingerprints:
                delete(product_id, None)
        for product_id in snapshot.pending_deletes:
            if product_id not in seen and (wanted is None or product_id in wanted):
                delete(product_id, "previous delete not yet committed")
        if index_ids is not None:
            for product_id in index_ids:
                if (
                    product_id not in seen
                    and product_id not in snapshot.fingerprints
                    and product_id not in snapshot.pending_deletes
                ):
                    delete(product_id, "orphan: in the index but in neither the catalog nor the state")
