"""The diff: compare a streamed catalog with the stored state and say exactly what changed.

Kinds are decided against the *desired* state (what the catalog said last time); the index action is
decided against the *committed* state (what the index is known to hold). The two differ only for a product
whose last change was never committed, and such a product is always re-sent, so the index converges.

What is compared is the mapped product (logic/mapping): a record with its derived fields, or, with
[source] group_by, the product a group of consecutive rows makes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
import xxhash

from catalog_sync.formats.catalog import CatalogStream
from catalog_sync.formats.detection import CatalogFormat
from catalog_sync.formats.records import READER_ERROR_KEY, CatalogFormatError
from catalog_sync.logic import canonical as hashing
from catalog_sync.logic.field_check import FieldCheck, FieldCheckReport
from catalog_sync.logic.gc import paused_gc
from catalog_sync.logic.mapping import MAX_GROUP_ROWS, CatalogMapping, LooseRow, RowGroup
from catalog_sync.logic.row_join import RowJoin
from catalog_sync.logic.snapshot import FingerprintUpdate, StateSnapshot, StoredProduct
from catalog_sync.logic.spool import Spool
from catalog_sync.logic.validation import InvalidRecord, RecordValidator, ValidProduct, normalize_id
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
        walk = _Walk(self, result, snapshot, full=full, wanted=set(only_ids) if only_ids is not None else None)
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
        candidate: _Candidate,
        stored: StoredProduct | None,
        full: bool,
    ) -> _Outcome:
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
            return _Outcome(kind, False, resent)
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
        return _Outcome(kind, priority, resent)

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


class _Outcome(NamedTuple):
    """What the diff decided for a product and counted: what withdrawing the product must take back."""

    kind: ChangeKind
    priority: bool
    resent: bool


# A product that took the fast path was counted valid and unchanged, like any other unchanged product.
_UNCHANGED = _Outcome(ChangeKind.UNCHANGED, False, False)
# The few distinct outcomes, shared: while grouping, the walk keeps one per product.
_INTERNED: dict[_Outcome, _Outcome] = {_UNCHANGED: _UNCHANGED}


@dataclass(slots=True)
class _Candidate:
    """A valid product that did not take the fast path, waiting for its stored state to be looked up."""

    product: ValidProduct
    text_hash: str
    metadata_hash: str
    field_hashes: dict[str, str]
    fingerprint: bytes | None


class _Walk:
    """One pass over a catalog: the fast path inline, the rest validated at once and compared in batches
    (one state lookup per batch instead of one per product)."""

    LOOKUP_BATCH = 256

    def __init__(
        self,
        differ: CatalogDiff,
        result: DiffResult,
        snapshot: StateSnapshot,
        *,
        full: bool,
        wanted: set[str] | None,
    ) -> None:
        self.differ = differ
        self.result = result
        self.snapshot = snapshot
        self.full = full
        self.wanted = wanted
        self.seen: dict[str, int] = {}
        self.records_read = 0
        self.fast_unchanged = 0
        self._batch: list[_Candidate] = []
        self.field_check = FieldCheck(differ.config)
        # While grouping: each product's outcome, so that a group found not contiguous can be taken back whole,
        # and the products taken back (their changes and fingerprint updates are dropped at the end).
        self._grouping = differ.mapping.group_by is not None
        self._outcomes: dict[str, _Outcome] = {}
        self._withdrawn: set[str] = set()
        # While grouping on another field than the id: the product id each group key gave.
        self._group_ids: dict[str, str] | None = (
            {} if self._grouping and differ.mapping.group_by != differ.config.id_field else None
        )

    def lines(self, stream: CatalogStream, on_record: Callable[[int], None] | None) -> None:
        """JSON Lines: a line seen byte for byte before costs one hash; it is not even parsed."""
        assert stream.lines is not None
        known = self.snapshot.fingerprints
        seen = self.seen
        wanted = self.wanted
        seed = self.differ.seed
        digest = xxhash.xxh3_128_digest
        parse = stream.parse
        use_fast_path = not self.full
        read = unchanged = 0
        for position, raw in enumerate(stream.lines, start=1):
            fingerprint = digest(raw, seed=seed)
            if use_fast_path:
                product_id = known.get(fingerprint)
                if product_id is not None and product_id not in seen:
                    read += 1
                    if wanted is None or product_id in wanted:
                        seen[product_id] = position
                        unchanged += 1
                    if on_record is not None and read % 10_000 == 0:
                        on_record(read)
                    continue
            record = parse(position, raw)
            if record is None:  # a blank line
                continue
            read += 1
            self.process(position, record, fingerprint, stream.location)
        self.records_read += read
        self.fast_unchanged += unchanged

    def records(self, stream: CatalogStream, on_record: Callable[[int], None] | None) -> None:
        fingerprint_of = hashing.record_fingerprint
        seed = self.differ.seed
        for position, record in stream.records():
            self.records_read += 1
            if on_record is not None and self.records_read % 10_000 == 0:
                on_record(self.records_read)
            self.process(position, record, fingerprint_of(record, seed), stream.location)

    def process(
        self, position: int, record: dict[str, Any], fingerprint: bytes | None, location: Callable[[int], str]
    ) -> None:
        differ, result = self.differ, self.result
        # The record as the reader gave it: the check compares the config's names with the catalog's own.
        self.field_check.observe(record)
        try:
            product_id = normalize_id(record.get(differ.config.id_field))
        except InvalidRecord as exc:
            differ._quarantine(result, str(exc), location(position), None, record)
            return
        if self.wanted is not None and product_id not in self.wanted:
            return
        first = self.seen.get(product_id)
        if first is not None:
            where = location(position)
            differ._quarantine(result, f"duplicate id (first seen at {location(first)})", where, product_id, record)
            return
        self.seen[product_id] = position
        if not self.full and fingerprint is not None and self.snapshot.fingerprints.get(fingerprint) == product_id:
            self.fast_unchanged += 1
            return
        reader_error = record.get(READER_ERROR_KEY)
        if reader_error is not None:
            differ._quarantine(result, str(reader_error), location(position), product_id, record)
            return
        try:
            product = differ.validator.validate(product_id, differ.mapping.record_product(record))
        except InvalidRecord as exc:
            # The product keeps its last good version: its id was seen, so it is not deleted either.
            differ._quarantine(result, str(exc), location(position), product_id, record)
            return
        self._candidate(product, fingerprint)

    def _candidate(self, product: ValidProduct, fingerprint: bytes | None) -> None:
        differ = self.differ
        self.result.counts.valid += 1
        field_hashes, metadata_hash = hashing.content_hashes(product.values, differ._metadata_fields)
        text_hash = hashing.text_hash(product.text, model_id=differ.model_id, template_id=differ.template_id)
        self._batch.append(_Candidate(product, text_hash, metadata_hash, field_hashes, fingerprint))
        if len(self._batch) >= self.LOOKUP_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._batch:
            return
        stored = self.snapshot.get_many([candidate.product.product_id for candidate in self._batch])
        for candidate in self._batch:
            product_id = candidate.product.product_id
            outcome = self.differ._decide(self.result, candidate, stored.get(product_id), self.full)
            if self._grouping:
                self._outcomes[product_id] = _INTERNED.setdefault(outcome, outcome)
        self._batch.clear()

    # Grouped catalogs ([source] group_by): consecutive rows sharing the key are one product.

    def groups(self, stream: CatalogStream, on_record: Callable[[int], None] | None) -> None:
        """Every row is parsed (the key is in it); an unchanged group costs one hash of its rows and no validation."""
        mapping = self.differ.mapping
        if not self.differ.config.source.sorted:
            # The rows of one key may be anywhere: joined first, then grouped as a sorted file would be.
            with RowJoin(mapping.group_key, parse=stream.parse if stream.lines is not None else None) as join:
                join.extend(self._rows(stream, on_record))
                self._grouped(mapping.group_rows(join.rows()), stream)
            return
        self._grouped(mapping.group_rows(self._rows(stream, on_record)), stream)

    def _grouped(self, items: Iterator[RowGroup | LooseRow], stream: CatalogStream) -> None:
        for item in items:
            if isinstance(item, LooseRow):
                self.differ._quarantine(self.result, item.reason, stream.location(item.position), None, item.record)
            else:
                self.group(item, stream.location)

    def _rows(
        self, stream: CatalogStream, on_record: Callable[[int], None] | None
    ) -> Iterator[tuple[int, dict[str, Any], bytes | None]]:
        if stream.lines is not None:
            parse = stream.parse
            for position, raw in enumerate(stream.lines, start=1):
                record = parse(position, raw)
                if record is None:  # a blank line
                    continue
                self.records_read += 1
                if on_record is not None and self.records_read % 10_000 == 0:
                    on_record(self.records_read)
                self.field_check.observe(record)  # the row as read, before grouping
                yield position, record, raw
        else:
            header_checked = stream.kind.format is not CatalogFormat.CSV
            for position, record in stream.records():
                if not header_checked and READER_ERROR_KEY not in record:
                    # A CSV row has every column of the header: without this one, no row has a key.
                    if not any(column in record for column in self.differ.mapping.group_columns):
                        raise CatalogFormatError(
                            stream.name,
                            "line 1",
                            f"the CSV header has no {' or '.join(map(repr, self.differ.mapping.group_columns))}"
                            f" column, the [source] group_by field (columns: {list(record)[:20]})",
                        )
                    header_checked = True
                self.records_read += 1
                if on_record is not None and self.records_read % 10_000 == 0:
                    on_record(self.records_read)
                self.field_check.observe(record)
                yield position, record, None

    def group(self, group: RowGroup, location: Callable[[int], str]) -> None:
        differ, result = self.differ, self.result
        group_by = differ.mapping.group_by
        first = group.positions[0]
        where = location(first) if group.size == 1 else f"{location(first)} ({group.size:,} rows)"
        if group.size > 1 and not differ.config.source.sorted:
            # Joined from apart ([source] sorted = false): say where each row was.
            spread = sorted(group.positions)
            if spread[-1] - spread[0] >= len(spread):
                more = ", ..." if len(spread) > 5 else ""
                where = f"{where}: {', '.join(location(position) for position in spread[:5])}{more}"
        rows = group.rows
        raw: dict[str, Any] = {"rows": rows}
        if group.earlier is not None:
            self._not_contiguous(group, where, location)
            return
        problem = differ.mapping.product_row_first(group)
        if problem is not None:
            self._no_product(group, problem, where)
            return
        try:
            product_id = normalize_id(differ.mapping.first_value(rows, differ.config.id_field))
        except InvalidRecord as exc:
            differ._quarantine(result, str(exc), where, None, raw)
            return
        if self._group_ids is not None:
            self._group_ids.setdefault(group.key, product_id)
        if self.wanted is not None and product_id not in self.wanted:
            return
        seen_at = self.seen.get(product_id)
        if seen_at is not None:
            differ._quarantine(result, f"duplicate id (first seen at {location(seen_at)})", where, product_id, raw)
            return
        self.seen[product_id] = first
        if group.dropped:
            differ._quarantine(
                result,
                f"{group_by} {group.key!r} has {group.size:,} rows, more than the {MAX_GROUP_ROWS:,} one product may"
                " have (only the first are kept here)",
                where,
                product_id,
                raw,
            )
            return
        fingerprint = self._group_fingerprint(group)
        if not self.full and fingerprint is not None and self.snapshot.fingerprints.get(fingerprint) == product_id:
            self.fast_unchanged += 1
            self._outcomes[product_id] = _UNCHANGED
            return
        for position, row in zip(group.positions, rows, strict=True):
            reader_error = row.get(READER_ERROR_KEY)
            if reader_error is not None:
                differ._quarantine(result, f"{location(position)}: {reader_error}", where, product_id, raw)
                return
        try:
            product = differ.validator.validate(product_id, differ.mapping.group_product(rows))
        except InvalidRecord as exc:
            differ._quarantine(result, str(exc), where, product_id, raw)
            return
        self._candidate(product, fingerprint)

    def _not_contiguous(self, group: RowGroup, where: str, location: Callable[[int], str]) -> None:
        """A key seen again after another group: the product was read in parts, so neither part is it.

        The earlier part's outcome is taken back and the product is quarantined: it keeps its last good version
        (nor is it deleted), as for any invalid record, until the file is sorted by the key.
        """
        differ = self.differ
        group_by = differ.mapping.group_by
        earlier_id = group.key if self._group_ids is None else self._group_ids.get(group.key)
        if self.wanted is not None and earlier_id not in self.wanted:
            return
        differ._quarantine(
            self.result,
            f"rows of {group_by} {group.key!r} are not contiguous (first seen at {location(group.earlier or 0)},"
            f" again at {location(group.positions[0])}): sort the file by {group_by}",
            where,
            earlier_id,
            {"rows": group.rows},
        )
        if earlier_id is not None:
            self.seen.setdefault(earlier_id, group.positions[0])
            self.withdraw(earlier_id)
        if self._group_ids is not None:
            # Grouped on another field: this part's own id, if it names another product, is not deleted either.
            with contextlib.suppress(InvalidRecord):
                self.seen.setdefault(
                    normalize_id(differ.mapping.first_value(group.rows, differ.config.id_field)), group.positions[0]
                )

    def _no_product(self, group: RowGroup, reason: str, where: str) -> None:
        """A group that is no one product ([source] variations): variations without their parent, or two products
        under one key. It is quarantined; the products named by its own rows keep their last good version."""
        differ = self.differ
        ids: list[str] = []
        for row in group.rows:
            if not differ.mapping.is_variation(row):
                with contextlib.suppress(InvalidRecord):
                    ids.append(normalize_id(row.get(differ.config.id_field)))
        if ids and self.wanted is not None and not any(product_id in self.wanted for product_id in ids):
            return
        differ._quarantine(self.result, reason, where, ids[0] if ids else None, {"rows": group.rows})
        for product_id in ids:
            self.seen.setdefault(product_id, group.positions[0])

    def withdraw(self, product_id: str) -> None:
        """Take back what was decided and counted for a product: it turned out invalid."""
        self.flush()
        outcome = self._outcomes.pop(product_id, None)
        if outcome is None:  # quarantined already (or never valid): nothing to take back
            return
        counts = self.result.counts
        counts.valid -= 1
        if outcome.kind is ChangeKind.UNCHANGED:
            counts.unchanged -= 1
        else:
            setattr(counts, outcome.kind.value, getattr(counts, outcome.kind.value) - 1)
        if outcome.priority:
            counts.priority -= 1
        if outcome.resent:
            self.result.resent -= 1
        self._withdrawn.add(product_id)

    def drop_withdrawn(self) -> None:
        """Remove the changes and fingerprint updates of the products taken back."""
        if not self._withdrawn:
            return
        withdrawn = self._withdrawn
        changes = self.result.changes
        if isinstance(changes, Spool):
            changes.retain(lambda change: change.product_id not in withdrawn)
        else:
            changes[:] = [change for change in changes if change.product_id not in withdrawn]
        updates = self.result.fingerprint_updates
        updates[:] = [update for update in updates if update.product_id not in withdrawn]

    def _group_fingerprint(self, group: RowGroup) -> bytes | None:
        hasher = xxhash.xxh3_128(seed=self.differ.seed)
        if group.lines is not None:
            for line in group.lines:
                hasher.update(line)
            return hasher.digest()
        for row in group.rows:
            try:
                hasher.update(orjson.dumps(row))
            except (TypeError, orjson.JSONEncodeError):
                return None
            hasher.update(b"\n")
        return hasher.digest()
