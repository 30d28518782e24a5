"""The catalog mapping: how the records of a catalog file become the products the diff compares.

Two parts of the catalog config drive it (README: "Rows and derived fields"):

- `[source] group_by`: consecutive records sharing this field's value are one product (Shopify's product CSV has
  one row per variant or image under a Handle). `group_rows` forms the groups as the records stream past, holding
  one group's rows at a time, and reports a key seen again after another group (the file is not sorted by it).
  The key may be a derived field computed from each row (alternatives: "Parent", else "SKU", else "id:{ID}");
  with `[source] sorted = false` the diff first joins each key's rows (logic/row_join); with `[source]
  variations`, `product_row_first` puts the product's own row before its variations, or says why there is none.
- `[fields]`: derived fields, read from the record (or its group's rows) by a dotted path, combined by an
  aggregate, cleaned by transforms and joined, then used by name like any record field. A derived field wins over
  a raw field of the same name.

Pure: it reads the records it is handed. The product it builds is what validation reads; the raw records are what
the quarantine keeps.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog_sync.formats.records import READER_ERROR_KEY
from catalog_sync.logic.derived_fields import Derivation, FieldPath, is_empty
from catalog_sync.logic.validation import InvalidRecord
from catalog_sync.models.config import CatalogConfig

# The most rows one product's group may have: Shopify allows 2,048 variants and 250 images per product. A longer
# run of one key is quarantined rather than held in memory.
MAX_GROUP_ROWS = 10_000


@dataclass(slots=True)
class RowGroup:
    """The rows of one product, as read: consecutive records sharing the group_by value."""

    key: str
    positions: list[int] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    # The JSON Lines lines of the rows, for the group's fingerprint; None for parsed formats.
    lines: list[bytes] | None = None
    # Where this key's earlier rows began, when it was seen before another group: the file is not sorted by it.
    earlier: int | None = None
    # Rows past MAX_GROUP_ROWS, counted but not held.
    dropped: int = 0

    @property
    def size(self) -> int:
        return len(self.rows) + self.dropped


@dataclass(frozen=True, slots=True)
class LooseRow:
    """A row that belongs to no group (its group_by value is missing or not a value); it is quarantined alone."""

    position: int
    record: dict[str, Any]
    reason: str


class CatalogMapping:
    """Turns records (or their groups) into products per one catalog config."""

    def __init__(self, config: CatalogConfig) -> None:
        self.group_by = config.source.group_by
        self.id_field = config.id_field
        self._derivations = tuple(Derivation(name, spec) for name, spec in config.fields.items())
        # A group_by naming a derived field: the row's key is that field computed from the row alone.
        self._derived_key = next((derive for derive in self._derivations if derive.name == self.group_by), None)
        # The columns a row's key is read from: a CSV header without any of them gives no row a key.
        self.group_columns: tuple[str, ...] = ()
        if self.group_by is not None:
            spec = config.fields.get(self.group_by)
            paths = spec.paths if spec is not None else [self.group_by]
            parts = [part for path in paths for part in (path, path.split(".", 1)[0])] if spec is not None else paths
            self.group_columns = tuple(dict.fromkeys(parts))
        variations = config.source.variations
        self.variations = variations
        self._variation_path = FieldPath.parse(variations.field) if variations is not None else None
        # A group's product holds the fields validation reads: the first non-empty value of each over the rows.
        read = [config.id_field, *config.tracked_fields, *config.required_fields]
        self._merged = tuple(name for name in dict.fromkeys(read) if name not in config.fields)

    @property
    def active(self) -> bool:
        """Whether records are mapped at all: without group_by and [fields], a record is its product."""
        return self.group_by is not None or bool(self._derivations)

    def record_product(self, record: dict[str, Any]) -> dict[str, Any]:
        """The product of one record (no group_by): the record with its derived fields, which win over its own."""
        if not self._derivations:
            return record
        product = dict(record)
        rows = (record,)
        for derive in self._derivations:
            product[derive.name] = derive(rows)
        return product

    def group_product(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The product of a group's rows: each field validation reads (the id too) is its first non-empty value
        over the rows, then the derived fields are computed over all of them."""
        product = {name: self.first_value(rows, name) for name in self._merged}
        for derive in self._derivations:
            product[derive.name] = derive(rows)
        return product

    @staticmethod
    def first_value(rows: Sequence[Mapping[str, Any]], name: str) -> Any:
        """A field's first non-empty value over rows (None if none has one)."""
        for row in rows:
            value = row.get(name)
            if not is_empty(value):
                return value
        return None

    def group_key(self, record: Mapping[str, Any]) -> str:
        """The group_by value of a row, as a key: trimmed, NFC; an integer is its digits."""
        assert self.group_by is not None
        raw = self._derived_key((record,)) if self._derived_key is not None else record.get(self.group_by)
        if isinstance(raw, str):
            key = raw.strip()
            if key:
                return key if key.isascii() else unicodedata.normalize("NFC", key)
        elif isinstance(raw, int) and not isinstance(raw, bool):
            return str(raw)
        elif raw is not None:
            raise InvalidRecord(
                f"the group_by field {self.group_by!r} must be a string or an integer, got {type(raw).__name__}"
            )
        raise InvalidRecord(f"the group_by field {self.group_by!r} is missing or empty: the row belongs to no product")

    def is_variation(self, record: Mapping[str, Any]) -> bool:
        """Whether a row is one of its product's variations ([source] variations), not the product's own row."""
        if self._variation_path is None or self.variations is None:
            return False
        value = self._variation_path.read(record)
        return isinstance(value, str) and value.strip() == self.variations.value

    def product_row_first(self, group: RowGroup) -> str | None:
        """With [source] variations: put the product's own row first (its id and fields are read first), the
        variations after it in file order. Returns why the group is no product: no row of its own (the
        variations' parent is not in the file), or more than one."""
        if self.variations is None:
            return None
        heads = [index for index, row in enumerate(group.rows) if not self.is_variation(row)]
        if len(heads) == 1:
            head = heads[0]
            if head:
                order = [head, *(index for index in range(len(group.rows)) if index != head)]
                group.rows[:] = [group.rows[index] for index in order]
                group.positions[:] = [group.positions[index] for index in order]
                if group.lines is not None:
                    group.lines[:] = [group.lines[index] for index in order]
            return None
        field, value = self.variations.field, self.variations.value
        if not heads:
            return (
                f"the {len(group.rows):,} row(s) of {self.group_by} {group.key!r} are all variations ({field}"
                f" {value!r}): their parent {group.key!r} is not in the file"
            )
        return (
            f"{len(heads):,} rows of {self.group_by} {group.key!r} are products, not variations ({field} is not"
            f" {value!r}): a key names one product"
        )

    def group_rows(self, rows: Iterable[tuple[int, dict[str, Any], bytes | None]]) -> Iterator[RowGroup | LooseRow]:
        """Groups of consecutive rows sharing the group_by value, one at a time, and the rows that have none.

        A row without a group_by value is reported on its own and does not end the group around it. A key seen
        again after another group comes back as a group with `earlier` set: the file is not sorted by the key, and
        the caller decides (the diff quarantines the product, which keeps its last good version).
        """
        first_seen: dict[str, int] = {}
        group: RowGroup | None = None
        for position, record, line in rows:
            try:
                key = self.group_key(record)
            except InvalidRecord as exc:
                reader_error = record.get(READER_ERROR_KEY)
                yield LooseRow(position, record, str(reader_error) if reader_error is not None else str(exc))
                continue
            if group is None or key != group.key:
                if group is not None:
                    yield group
                earlier = first_seen.setdefault(key, position)
                group = RowGroup(
                    key, lines=[] if line is not None else None, earlier=earlier if earlier != position else None
                )
            if len(group.rows) >= MAX_GROUP_ROWS:
                group.dropped += 1
                continue
            group.positions.append(position)
            group.rows.append(record)
            if group.lines is not None and line is not None:
                group.lines.append(line)
        if group is not None:
            yield group
