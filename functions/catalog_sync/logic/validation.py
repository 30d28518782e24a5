"""Validation of catalog records against a catalog's configuration (pydantic), and text rendering."""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from catalog_sync.logic import canonical as hashing
from catalog_sync.logic.vector_ids import ORIGINAL_ID_KEY, PORTABLE_RULES, passes_through
from catalog_sync.models.config import CatalogConfig, FieldType

# The longest product id: what every state store keeps as a key. Vector ids are mapped from it within each
# index's own limits (logic/vector_ids.py).
MAX_ID_BYTES = 512
# Characters that show nothing: an id made only of them (after trimming the whitespace) is empty.
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cf"})


class InvalidRecord(ValueError):
    """A record that must be quarantined; the message is the reason shown to the user."""


def normalize_id(raw: Any) -> str:
    """A product id as stored: a string without surrounding whitespace, NFC; integers are accepted.

    Case is kept: 'A1' and 'a1' are different products.
    """
    if isinstance(raw, str):
        product_id = raw.strip()
        if not product_id.isascii():
            product_id = unicodedata.normalize("NFC", product_id)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        product_id = str(raw)
    elif raw is None:
        raise InvalidRecord("missing id")
    else:
        raise InvalidRecord(f"id must be a string or an integer, got {type(raw).__name__}")
    if not product_id or (
        not product_id.isascii() and all(unicodedata.category(ch) in _INVISIBLE_CATEGORIES for ch in product_id)
    ):
        raise InvalidRecord("empty id")
    if len(product_id.encode()) > MAX_ID_BYTES:
        raise InvalidRecord(f"id is longer than {MAX_ID_BYTES} bytes")
    # isprintable() is a fast C check; only its rare False needs the precise look.
    if not product_id.isprintable() and any(unicodedata.category(ch) == "Cc" for ch in product_id):
        raise InvalidRecord("id contains control characters")
    return product_id


def _blank_to_none(value: Any) -> Any:
    # CSV has no null: an empty cell means the field is absent.
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _render_scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and Infinity are not allowed")
        return str(int(value)) if value.is_integer() else repr(value)
    raise ValueError(f"a {type(value).__name__} cannot be part of the embedding text")


def render_text_value(value: Any) -> str:
    """Text of one field as it goes into the embedding input.

    A list of plain values is joined with ", "; a list holding objects or lists (reviews: [{author, body}]) puts
    each item, rendered by these same rules, on its own line, so that one item's commas never run into the next.
    """
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        if any(isinstance(item, dict | list | tuple) for item in value):
            return "\n".join(text for item in value if (text := render_text_value(item).strip()))
        return ", ".join(_render_scalar(item) for item in value if item is not None)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {render_text_value(item)}" for key, item in value.items())
    return _render_scalar(value)


def _text_value(value: Any) -> str:
    return render_text_value(value).strip()


def _split_list(separator: str) -> Any:
    def split(value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(separator) if part.strip()]
        return value

    return split


def _nfc(value: str) -> str:
    # Stored metadata is NFC, as its hash is: one spelling of "Café" in the index, so filters match.
    return value if value.isascii() else unicodedata.normalize("NFC", value)


def _nfc_list(values: list[str]) -> list[str]:
    return [_nfc(value) for value in values]


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _not_a_boolean(value: Any) -> Any:
    # pydantic's lax mode reads true as 1: a "stock": true is a wrong type, not one item in stock.
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


def _metadata_annotation(field_type: FieldType, list_separator: str) -> Any:
    finite_number = Annotated[float, BeforeValidator(_not_a_boolean), Field(allow_inf_nan=False)]
    base: dict[FieldType, Any] = {
        FieldType.STRING: Annotated[str, Field(max_length=1_000_000), AfterValidator(_nfc)],
        FieldType.NUMBER: finite_number,
        # Indexes store 64-bit integers.
        FieldType.INTEGER: Annotated[
            int, BeforeValidator(_not_a_boolean), Field(strict=False, ge=INT64_MIN, le=INT64_MAX)
        ],
        FieldType.BOOLEAN: bool,
        FieldType.STRING_LIST: Annotated[
            list[str], BeforeValidator(_split_list(list_separator)), AfterValidator(_nfc_list)
        ],
    }
    return Annotated[base[field_type] | None, BeforeValidator(_blank_to_none)]


@dataclass(frozen=True, slots=True)
class ValidProduct:
    product_id: str
    text: str
    metadata: dict[str, Any]
    # Validated value per tracked field (text fields rendered, metadata fields typed).
    values: dict[str, Any]


def _format_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"]) or "record"
        got = err.get("input")
        shown = repr(got) if not isinstance(got, str) or len(got) < 60 else repr(got[:57] + "...")
        parts.append(f"{field}: {err['msg']} (got {shown})")
    return "; ".join(parts)


class RecordValidator:
    """Validates raw records and turns them into products, per one catalog configuration."""

    def __init__(self, config: CatalogConfig) -> None:
        self.config = config
        self._text_fields = list(config.text.fields)
        self._metadata_fields = dict(config.metadata)
        # Catalog field names become aliases of neutral attribute names, so that any name works, even one
        # that starts with "_" or is an attribute of pydantic's BaseModel ("schema", "copy", ...).
        fields: dict[str, Any] = {}
        for position, name in enumerate(config.tracked_fields):
            if name in self._metadata_fields:
                annotation = _metadata_annotation(self._metadata_fields[name], config.csv.list_separator)
                default = None
            else:
                annotation = Annotated[str, BeforeValidator(_text_value)]
                default = ""
            fields[f"field_{position}"] = (annotation, Field(default=default, alias=name))
        self.model: type[BaseModel] = create_model(
            f"{config.name.replace('-', '_').replace('.', '_')}_Record",
            __config__=ConfigDict(extra="ignore", str_strip_whitespace=False, populate_by_name=False),
            **fields,
        )
        self._template = config.text.template
        self._separator = config.text.separator
        self._max_chars = config.text.max_chars
        self._max_metadata_bytes = config.max_metadata_bytes
        self._required = list(config.required_fields)

    def validate(self, product_id: str, record: dict[str, Any]) -> ValidProduct:
        """Validate one record whose id was already normalized; raises InvalidRecord with the reason."""
        for name in self._required:
            if _blank_to_none(record.get(name)) is None:
                raise InvalidRecord(f"required field {name!r} is missing or empty")
        try:
            parsed = self.model.model_validate(record)
        except ValidationError as exc:
            raise InvalidRecord(_format_error(exc)) from None
        values = parsed.model_dump(by_alias=True)
        text = self.render_text(values)
        # The template's own words do not count: some field must have text.
        if not text.strip() or not any(render_text_value(values.get(name)).strip() for name in self._text_fields):
            raise InvalidRecord(f"empty embedding text (fields {', '.join(self._text_fields)} are all empty)")
        if len(text) > self._max_chars:
            raise InvalidRecord(f"embedding text is {len(text):,} characters, over the limit of {self._max_chars:,}")
        metadata = {name: values[name] for name in self._metadata_fields if values[name] is not None}
        try:
            size = len(orjson.dumps(metadata))
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise InvalidRecord(f"metadata cannot be encoded as JSON: {exc}") from None
        with_id = ""
        if not passes_through(product_id, PORTABLE_RULES):
            # An index that encodes this id keeps the id itself in the metadata too: it must fit.
            size = len(orjson.dumps({**metadata, ORIGINAL_ID_KEY: product_id}))
            with_id = " with the product id the index keeps beside its encoded vector id"
        if size > self._max_metadata_bytes:
            raise InvalidRecord(f"metadata{with_id} is {size:,} bytes, over the limit of {self._max_metadata_bytes:,}")
        return ValidProduct(product_id=product_id, text=hashing.normalize_text(text), metadata=metadata, values=values)

    def render_text(self, values: dict[str, Any]) -> str:
        rendered = {}
        for name in self._text_fields:
            value = values.get(name)
            # Text-only fields were rendered to stripped strings by validation already.
            rendered[name] = (
                value if type(value) is str and name not in self._metadata_fields else render_text_value(value).strip()
            )
        if self._template is not None:
            return self._template.format_map(rendered).strip()
        return self._separator.join(value for value in rendered.values() if value)
