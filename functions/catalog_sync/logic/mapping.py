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

import math
import re
import string
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from catalog_sync.formats.records import READER_ERROR_KEY
from catalog_sync.logic.canonical import canonical_bytes
from catalog_sync.logic.validation import InvalidRecord, render_text_value
from catalog_sync.models.config import Aggregate, CatalogConfig, DerivedField, FromTemplate, Transform

# The most rows one product's group may have: Shopify allows 2,048 variants and 250 images per product. A longer
# run of one key is quarantined rather than held in memory.
MAX_GROUP_ROWS = 10_000

_MISSING = object()
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


def is_empty(value: Any) -> bool:
    """Null, a blank string, an empty list or object: a value a row does not have (CSV has no null)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict):
        return not value
    return False


@dataclass(frozen=True, slots=True)
class FieldPath:
    """Where a derived field reads its value: a key of the record, or a dotted path into it.

    The record's exact key wins ("Variant Price", "meta.barcode" as a column name); otherwise the path is split at
    the dots, and each part is an object's key, or a list's index ("images.0.src"). A part that is not there makes
    the value absent.
    """

    text: str
    parts: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        return cls(text, tuple(text.split(".")) if "." in text else ())

    def read(self, record: Mapping[str, Any]) -> Any:
        value = record.get(self.text, _MISSING)
        if value is not _MISSING or not self.parts:
            return None if value is _MISSING else value
        current: Any = record
        for part in self.parts:
            if isinstance(current, dict):
                current = current.get(part)
            elif isinstance(current, list) and part.isascii() and part.isdigit():
                index = int(part)
                current = current[index] if index < len(current) else None
            else:
                return None
            if current is None:
                return None
        return current


@dataclass(frozen=True, slots=True)
class Template:
    """Text made of a record's values ("id:{ID}"); absent when a value it names is empty."""

    pieces: tuple[tuple[str, FieldPath | None], ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        return cls(
            tuple(
                (literal, FieldPath.parse(name) if name is not None else None)
                for literal, name, _, _ in string.Formatter().parse(text)
            )
        )

    def read(self, record: Mapping[str, Any]) -> Any:
        out: list[str] = []
        for literal, path in self.pieces:
            out.append(literal)
            if path is not None:
                value = path.read(record)
                if is_empty(value) or isinstance(value, list | dict):
                    return None
                out.append(render_text_value(value).strip())
        return "".join(out)


@dataclass(frozen=True, slots=True)
class FirstOf:
    """Alternatives: a record's value is the first non-empty one ("Parent", else "SKU", else "id:{ID}")."""

    alternatives: tuple[FieldPath | Template, ...]

    def read(self, record: Mapping[str, Any]) -> Any:
        for alternative in self.alternatives:
            value = alternative.read(record)
            if not is_empty(value):
                return value
        return None


Reader = FieldPath | FirstOf


def reader_of(source: str | list[str | FromTemplate]) -> Reader:
    """How a derived field's `from` is read: one path, or alternatives."""
    if isinstance(source, str):
        return FieldPath.parse(source)
    return FirstOf(
        tuple(FieldPath.parse(item) if isinstance(item, str) else Template.parse(item.template) for item in source)
    )


def _values(path: Reader, rows: Sequence[Mapping[str, Any]]) -> Iterator[Any]:
    """The non-empty values of a path over rows, in row order; a list value counts as its items."""
    for row in rows:
        value = path.read(row)
        if isinstance(value, list):
            for item in value:
                if not is_empty(item):
                    yield item
        elif not is_empty(value):
            yield value


def _decimal(value: Any, name: str, aggregate: Aggregate) -> Decimal:
    """A number or the digits of one ("60.00"): numeric aggregates compare numbers, never strings."""
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        return Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value)) if math.isfinite(value) else None
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            number = None
    else:
        number = None
    if number is None or not number.is_finite():
        shown = value if not isinstance(value, str) or len(value) < 60 else value[:57] + "..."
        raise InvalidRecord(f"fields.{name}: aggregate {aggregate.value!r} needs numbers, got {shown!r}")
    return number


def _plain_number(number: Decimal) -> int | float:
    return int(number) if number == number.to_integral_value() else float(number)


def _boolean(value: Any, name: str, aggregate: Aggregate) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise InvalidRecord(f"fields.{name}: aggregate {aggregate.value!r} needs true or false values, got {value!r}")


def _unique_key(value: Any) -> tuple[int, Any, Any]:
    # Numbers in numeric order, then strings, then anything else by its canonical JSON: an order that does not
    # depend on the rows' order.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value, "")
    if isinstance(value, str):
        return (1, 0, value)
    return (2, 0, canonical_bytes(value))


def _unique(values: Iterable[Any]) -> list[Any] | None:
    # A string is its own key (trimmed, NFC); any other value its canonical JSON (1 and 1.0 are one value).
    distinct: dict[str | bytes, Any] = {}
    for value in values:
        if isinstance(value, str):
            kept = value.strip()
            if not kept.isascii():
                kept = unicodedata.normalize("NFC", kept)
            distinct.setdefault(kept, kept)
        else:
            distinct.setdefault(canonical_bytes(value), value)
    return sorted(distinct.values(), key=_unique_key) or None


def _aggregator(name: str, aggregate: Aggregate | None) -> Callable[[Reader, Sequence[Mapping[str, Any]]], Any]:
    if aggregate is None:
        # The first non-empty value, as it is (a list stays a list).
        def first_value(path: Reader, rows: Sequence[Mapping[str, Any]]) -> Any:
            for row in rows:
                value = path.read(row)
                if not is_empty(value):
                    return value
            return None

        return first_value
    if aggregate is Aggregate.FIRST:
        return lambda path, rows: next(_values(path, rows), None)
    if aggregate is Aggregate.LAST:

        def last(path: Reader, rows: Sequence[Mapping[str, Any]]) -> Any:
            value = None
            for value in _values(path, rows):  # noqa: B007 - the loop keeps the last one
                pass
            return value

        return last
    if aggregate is Aggregate.LIST:
        return lambda path, rows: list(_values(path, rows)) or None
    if aggregate is Aggregate.UNIQUE:
        return lambda path, rows: _unique(_values(path, rows))
    if aggregate is Aggregate.COUNT:
        return lambda path, rows: sum(1 for _ in _values(path, rows))
    if aggregate in (Aggregate.MIN, Aggregate.MAX, Aggregate.SUM):
        picks: dict[Aggregate, Callable[[list[Decimal]], Decimal]] = {
            Aggregate.MIN: min,
            Aggregate.MAX: max,
            Aggregate.SUM: lambda numbers: sum(numbers, Decimal(0)),
        }
        pick = picks[aggregate]

        def numeric(path: Reader, rows: Sequence[Mapping[str, Any]]) -> Any:
            numbers = [_decimal(value, name, aggregate) for value in _values(path, rows)]
            return _plain_number(pick(numbers)) if numbers else None

        return numeric
    combine = any if aggregate is Aggregate.ANY else all

    def logical(path: Reader, rows: Sequence[Mapping[str, Any]]) -> Any:
        flags = [_boolean(value, name, aggregate) for value in _values(path, rows)]
        return combine(flags) if flags else None

    return logical


def _html_to_text(value: str) -> str:
    # Imported when a catalog uses it: lxml is not a cost every cold start pays.
    import html_text

    return html_text.extract_text(value)


def _collapse_whitespace(value: str) -> str:
    return " ".join(value.split())


# A number a text starts with: digits, commas only between groups of three (a thousands separator), a period
# before the decimals. What follows must not continue it: "15,00 EUR" (a decimal comma) and "1.299,00" are not read
# as 15 and 1.299, they are refused.
_LEADING_NUMBER = re.compile(r"\s*([+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)(?![\d]|[.,]\d)")


def _split_number(value: str, transform: Transform) -> tuple[float, str]:
    match = _LEADING_NUMBER.match(value)
    number = float(match.group(1).replace(",", "")) if match else math.nan
    if match is None or not math.isfinite(number):
        shown = value if len(value) < 60 else value[:57] + "..."
        raise ValueError(
            f'the transform {transform.value!r} needs a text that starts with a number, like "15.00 USD" (a period '
            f"before the decimals, commas only between thousands), got {shown!r}"
        )
    return number, value[match.end() :].strip()


def _number(value: str) -> float:
    return _split_number(value, Transform.NUMBER)[0]


def _unit(value: str) -> str | None:
    return _split_number(value, Transform.UNIT)[1] or None


# Each takes a string; all but `number` and `unit` give one (the config puts `number` last).
_TRANSFORMS: dict[Transform, Callable[[str], Any]] = {
    Transform.HTML_TO_TEXT: _html_to_text,
    Transform.COLLAPSE_WHITESPACE: _collapse_whitespace,
    Transform.NUMBER: _number,
    Transform.UNIT: _unit,
}


class _Derivation:
    """One derived field: path, aggregate, transforms (on strings, or each string of a list), join."""

    __slots__ = ("_aggregate", "_join", "_path", "_transforms", "_unit", "name")

    def __init__(self, name: str, spec: DerivedField) -> None:
        self.name = name
        self._path = reader_of(spec.source)
        self._aggregate = _aggregator(name, spec.aggregate)
        self._transforms = tuple(_TRANSFORMS[transform] for transform in spec.transform)
        # A value that is already a number (a JSON feed's 15.0) has no unit: its `unit` is absent, not the number.
        self._unit = Transform.UNIT in spec.transform
        self._join = spec.join

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> Any:
        value = self._aggregate(self._path, rows)
        try:
            if self._transforms and value is not None:
                value = self._transform(value)
            if self._join is not None and isinstance(value, list):
                value = self._join.join(text for item in value if (text := render_text_value(item).strip())) or None
        except ValueError as exc:  # a value that has no text (NaN from a lenient reader): the record's fault
            raise InvalidRecord(f"fields.{self.name}: {exc}") from None
        return value

    def _transform(self, value: Any) -> Any:
        if isinstance(value, str):
            for transform in self._transforms:
                if not isinstance(value, str):  # a number, or no unit: nothing left to transform
                    break
                value = transform(value)
            return value
        if isinstance(value, list):
            return [self._transform(item) if isinstance(item, str) else item for item in value]
        return None if self._unit else value


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
        self._derivations = tuple(_Derivation(name, spec) for name, spec in config.fields.items())
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
