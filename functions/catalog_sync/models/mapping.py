"""The catalog mapping's settings: `[source]` (where the records are, how rows form products) and `[fields]` (derived
fields). Part of the catalog config (models/config.py); logic/mapping.py and logic/derived_fields.py apply them."""

from __future__ import annotations

import string
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RowMatch(BaseModel):
    """Rows whose `field` is `value` (trimmed, exactly)."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(min_length=1)
    value: str = Field(min_length=1)


class SourceSettings(BaseModel):
    """Where a catalog's records are in the file, and how its rows form products."""

    model_config = ConfigDict(extra="forbid")

    # Where the records are, as a dotted path: of keys to the array inside a JSON object ("products",
    # "data.items"), for an API response that wraps its array; of element names to the record elements of XML
    # ("catalog.product"). Unset, a JSON file is the array itself and XML is an RSS 2.0 (rss.channel.item) or Atom
    # (feed.entry) feed. JSON Lines and delimited files have one record per line and ignore it.
    records: str | None = Field(default=None, min_length=1)
    # Consecutive records sharing this field's value are one product (Shopify's one row per variant under a
    # Handle); unset, every record is a product. It may name a derived field, computed from each row alone.
    group_by: str | None = Field(default=None, min_length=1)
    # False: the rows of one key may be anywhere in the file (WooCommerce orders its export by ID, so a variation
    # added later sits far from its parent); they are joined through temporary files, in bounded memory.
    sorted: bool = True
    # Rows matching this are variations of their group's product: each group has one other row, the product's own,
    # read first (its id, its fields); a group with none (a variation whose parent is not in the file) is
    # quarantined.
    variations: RowMatch | None = None

    @field_validator("records")
    @classmethod
    def _records_is_a_path(cls, value: str | None) -> str | None:
        if value is not None and any(not part or part != part.strip() for part in value.split(".")):
            raise ValueError(f'records {value!r} must be a dotted path of names, like "products" or "data.items"')
        return value


class Aggregate(StrEnum):
    """How a derived field combines the values of a group's rows."""

    FIRST = "first"
    LAST = "last"
    LIST = "list"
    UNIQUE = "unique"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    ANY = "any"
    ALL = "all"


class Transform(StrEnum):
    """A text transform a derived field applies to its value."""

    HTML_TO_TEXT = "html_to_text"
    COLLAPSE_WHITESPACE = "collapse_whitespace"
    # The number a text starts with ("15.00 USD" is 15.0), and the text after it ("USD"): Google Merchant's prices.
    NUMBER = "number"
    UNIT = "unit"


class FromTemplate(BaseModel):
    """An alternative of a derived field's `from`: text made of the row's values, "id:{ID}"; empty when a value
    it names is."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1)

    @field_validator("template")
    @classmethod
    def _plain_placeholders(cls, value: str) -> str:
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise ValueError(f"template {value!r} is not a valid template: {exc}") from exc
        names = [name for _, name, _, _ in parsed if name is not None]
        if not names:
            raise ValueError(f"template {value!r} names no field: write one as {{ID}}")
        for _, name, spec, conversion in parsed:
            if name is not None and (spec or conversion or not name or "[" in name):
                raise ValueError(
                    f"template {value!r}: placeholder {{{name}}} must be a field name or path, like {{ID}}"
                )
        return value

    def placeholders(self) -> list[str]:
        return [name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None]


class DerivedField(BaseModel):
    """A field computed from the record (or its group's rows), used like any record field."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # A dotted path into the record: "meta.barcode", "images.0.src"; a plain column name works too. A list is
    # alternatives, per row: the first non-empty one is the row's value (["Parent", "SKU", {template="id:{ID}"}]).
    source: str | list[str | FromTemplate] = Field(alias="from", min_length=1)
    # Over a group's rows (with [source] group_by); unset, the first row's non-empty value.
    aggregate: Aggregate | None = None
    transform: list[Transform] = Field(default_factory=list)
    # A list value is joined into one string with this separator.
    join: str | None = None
    # Words that stand for no value here (compared trimmed): WooCommerce's "parent" in a variation's Stock.
    absent: list[str] = Field(default_factory=list)

    @field_validator("transform", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("transform")
    @classmethod
    def _a_number_is_last(cls, value: list[Transform]) -> list[Transform]:
        # The other transforms read text: nothing can follow one that makes a number.
        if Transform.NUMBER in value[:-1]:
            raise ValueError("the transform 'number' makes a number, not text: it must come last")
        return value

    @field_validator("source")
    @classmethod
    def _no_empty_path(cls, value: str | list[str | FromTemplate]) -> str | list[str | FromTemplate]:
        if isinstance(value, list) and any(isinstance(item, str) and not item for item in value):
            raise ValueError("an alternative of from is an empty path")
        return value

    @property
    def paths(self) -> list[str]:
        """Every record path it reads: its path, or its alternatives' paths and their templates' placeholders."""
        if isinstance(self.source, str):
            return [self.source]
        paths: list[str] = []
        for item in self.source:
            paths += [item] if isinstance(item, str) else item.placeholders()
        return list(dict.fromkeys(paths))
