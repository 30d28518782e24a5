"""Derived fields ([fields]): how one field's value is read from a record or a group's rows (a dotted path, a
template, alternatives), combined (an aggregate), cleaned (transforms) and joined. Pure, like the mapping that uses
them (logic/mapping.py)."""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from catalog_sync.logic.canonical import canonical_bytes
from catalog_sync.logic.validation import InvalidRecord, render_text_value
from catalog_sync.models.mapping import Aggregate, DerivedField, FromTemplate, Transform

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


@dataclass(frozen=True, slots=True)
class Without:
    """A reader whose listed words read as absent: WooCommerce writes "parent" in a variation's Stock when its
    product keeps the stock, a word no number aggregate can take."""

    reader: FieldPath | FirstOf | Without
    absent: frozenset[str]

    def read(self, record: Mapping[str, Any]) -> Any:
        value = self.reader.read(record)
        if isinstance(value, str):
            return None if value.strip() in self.absent else value
        if isinstance(value, list):
            return [item for item in value if not (isinstance(item, str) and item.strip() in self.absent)]
        return value


Reader = FieldPath | FirstOf | Without


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
    import lxml.etree
    import lxml.html

    # As html_text.parse_html, with huge_tree: libxml2's defaults silently drop a text node over 10 MB and whatever is
    # nested deeper than 255 elements. A record's size is bounded by the reader's limits already.
    parser = lxml.html.HTMLParser(recover=True, encoding="utf-8", huge_tree=True)
    body = value.strip().replace("\x00", "").encode("utf-8") or b"<html/>"
    root = lxml.etree.fromstring(body, parser=parser)
    if root is None:
        return ""
    return html_text.extract_text(root)


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


class Derivation:
    """One derived field: path, aggregate, transforms (on strings, or each string of a list), join."""

    __slots__ = ("_aggregate", "_join", "_path", "_transforms", "_unit", "name")

    def __init__(self, name: str, spec: DerivedField) -> None:
        self.name = name
        path = reader_of(spec.source)
        self._path: Reader = Without(path, frozenset(spec.absent)) if spec.absent else path
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
