"""One pass of the diff over a catalog (logic/diff.py's CatalogDiff drives it): JSON Lines on the fast path, parsed
records, or rows grouped into products; valid products are compared with their stored state in batches."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import xxhash

from catalog_sync.formats.catalog import CatalogStream
from catalog_sync.formats.detection import CatalogFormat
from catalog_sync.formats.records import READER_ERROR_KEY, CatalogFormatError
from catalog_sync.logic import canonical as hashing
from catalog_sync.logic.field_check import FieldCheck
from catalog_sync.logic.mapping import MAX_GROUP_ROWS, LooseRow, RowGroup
from catalog_sync.logic.row_join import RowJoin
from catalog_sync.logic.snapshot import StateSnapshot
from catalog_sync.logic.spool import Spool
from catalog_sync.logic.validation import InvalidRecord, ValidProduct, normalize_id
from catalog_sync.models.changes import ChangeKind

if TYPE_CHECKING:
    from catalog_sync.logic.diff import CatalogDiff, DiffResult


class Outcome(NamedTuple):
    """What the diff decided for a product and counted: what withdrawing the product must take back."""

    kind: ChangeKind
    priority: bool
    resent: bool


# A product that took the fast path was counted valid and unchanged, like any other unchanged product.
UNCHANGED = Outcome(ChangeKind.UNCHANGED, False, False)
# The few distinct outcomes, shared: while grouping, the walk keeps one per product.
INTERNED: dict[Outcome, Outcome] = {UNCHANGED: UNCHANGED}


@dataclass(slots=True)
class Candidate:
    """A valid product that did not take the fast path, waiting for its stored state to be looked up."""

    product: ValidProduct
    text_hash: str
    metadata_hash: str
    field_hashes: dict[str, str]
    fingerprint: bytes | None


class Walk:
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
        self._batch: list[Candidate] = []
        self.field_check = FieldCheck(differ.config)
        # While grouping: each product's outcome, so that a group found not contiguous can be taken back whole,
        # and the products taken back (their changes and fingerprint updates are dropped at the end).
        self._grouping = differ.mapping.group_by is not None
        self._outcomes: dict[str, Outcome] = {}
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
        self._batch.append(Candidate(product, text_hash, metadata_hash, field_hashes, fingerprint))
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
                self._outcomes[product_id] = INTERNED.setdefault(outcome, outcome)
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
                # A row without its group key but with an id (group_by on another field): that product keeps its
                # last good version, as for any invalid record; it is not deleted.
                product_id = self._own_id(item.record)
                if product_id is not None:
                    self.seen.setdefault(product_id, item.position)
                self.differ._quarantine(
                    self.result, item.reason, stream.location(item.position), product_id, item.record
                )
            else:
                self.group(item, stream.location)

    def _own_id(self, record: Mapping[str, Any]) -> str | None:
        """The id a row names itself, when rows are grouped on another field than the id."""
        if self._group_ids is None:
            return None
        try:
            return normalize_id(record.get(self.differ.config.id_field))
        except InvalidRecord:
            return None

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
            header_checked = stream.kind.format not in (CatalogFormat.CSV, CatalogFormat.TSV)
            for position, record in stream.records():
                if not header_checked and READER_ERROR_KEY not in record:
                    # A CSV or TSV row has every column of the header: without this one, no row has a key (and every
                    # product would seem gone from the file).
                    if not any(column in record for column in self.differ.mapping.group_columns):
                        raise CatalogFormatError(
                            stream.name,
                            "line 1",
                            f"the {stream.kind.format.value.upper()} header has no"
                            f" {' or '.join(map(repr, self.differ.mapping.group_columns))}"
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
        if self.wanted is not None and product_id not in self.wanted:
            return
        seen_at = self.seen.get(product_id)
        if seen_at is not None:
            differ._quarantine(result, f"duplicate id (first seen at {location(seen_at)})", where, product_id, raw)
            return
        if self._group_ids is not None:
            # Only a group that became its product names it: taking a later part back must not withdraw another
            # group's product of the same id.
            self._group_ids.setdefault(group.key, product_id)
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
            self._outcomes[product_id] = UNCHANGED
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
