"""An independent model of what the index must hold after a sequence of catalog drops.

The convergence suite's oracle. It is written from the README's rules alone and imports nothing from
`catalog_sync`: a rule the product and this model both got wrong the same way would otherwise pass.

The rules it follows (README: "Catalog configuration" and "How it decides what changed"):

- **Ids.** The `id_field` holds a string or an integer (an integer's id is its decimal digits). Surrounding
  whitespace is not part of an id and the id is compared in Unicode NFC; case is kept (`A1` and `a1` are two
  products). A record whose id is missing, not a string or an integer, empty once trimmed (or made only of
  invisible characters, such as a zero-width space), longer than
  `MAX_ID_BYTES` in UTF-8 or holding a control character is quarantined without an id: no product was seen.
- **Vector ids** (README: "Vector ids"). At Pinecone an id is its own vector id when it is printable ASCII and does
  not begin with `~`; any other becomes `~<slug>~<digest>`, with the product id kept in the metadata under
  `_product_id`, where it counts towards the metadata limit.
- **Duplicates.** The first record with an id is the product's record, valid or not; a later one is quarantined.
- **Metadata** (`[metadata]`, the types Pinecone accepts). `string`: a JSON string, stored NFC; `number`: a JSON
  number or a numeric string, stored as a float (never NaN or Infinity; `true` is not a number); `integer`: a
  whole number (`3.0` is 3) or the digits of one, within 64 bits; `boolean`: true or false; `string_list`: a list
  of strings, or a string split at the list separator. A null, a missing field or a blank string is an absent
  field, which is not stored; any other value is a wrong type (invalid).
- **Text** (`[text]`). Each field renders as text: a string as it is, a whole number without a decimal point, other
  numbers as written, true and false as "yes" and "no", a list's items joined with ", " (a list holding objects
  or lists: each item on its own line), an object's as "key: value" joined with "; ", null and absent as nothing;
  each rendered value is trimmed. A metadata field that is also a text field renders its stored value. Without a
  template the non-empty values are joined with `separator`; with one, the template is filled in and the whole
  trimmed. The text is compared in NFC.
- **Invalid** (quarantined; the product keeps the good version the index last received, or stays out of it): a
  required field missing or blank, a wrong type, no text in any text field, more than `max_chars` characters of
  text, more than `max_metadata_bytes` of metadata as compact JSON.
- **Deletions.** A product no record of a drop names (by a valid id) is deleted.
- **The guard.** A drop is held (it changes nothing) when it is empty and empty catalogs are not allowed, or when
  its deletions are more than `max_delete_share` of the products the state tracks (those in the index, on their
  way to it, or on their way out of it).

What depends on timing is not decided here: the model keeps, per product, every outcome the rules allow.

- A drop's deletions count the products the drop leaves out, and also products an earlier drop deleted whose
  deletion may not have reached the index yet; the tracked products are at least those certainly in the catalog
  and at most every product ever in it. When these bounds do not settle the guard's decision, both outcomes stay.
- A drop the test's own schedule let a newer drop overtake (its diff, a retry or a continuation of it was still
  to run when a newer drop's diff began) may have been superseded whole, or part way (a newer catalog's run
  picks up its changes not yet sent): each of its products may be at its version before the drop or after it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

MAX_ID_BYTES = 512  # the longest product id (README: "Vector ids")
INT64 = 2**63
LIST_SEPARATOR = "|"  # the config's csv.list_separator (its default)


class Invalid(ValueError):
    """A record the product must quarantine."""


@dataclass(frozen=True)
class ModelConfig:
    """The settings of the test's catalog config that decide what is indexed; `toml()` writes the config."""

    text_fields: tuple[str, ...]
    metadata: tuple[tuple[str, str], ...]  # name -> type, in order
    id_field: str = "sku"
    template: str | None = None
    separator: str = "\n"
    max_chars: int = 24_000
    max_metadata_bytes: int | None = None
    required: tuple[str, ...] = ()
    max_delete_share: float = 1.0
    allow_empty_catalog: bool = True

    def toml(self, *, openai_url: str, dimensions: int) -> str:
        lines = [
            'name = "shop"',
            f"id_field = {json.dumps(self.id_field)}",
            f"required_fields = {json.dumps(list(self.required))}",
        ]
        if self.max_metadata_bytes is not None:
            lines.append(f"max_metadata_bytes = {self.max_metadata_bytes}")
        lines += ["[text]", f"fields = {json.dumps(list(self.text_fields))}", f"max_chars = {self.max_chars}"]
        if self.template is not None:
            lines.append(f"template = {json.dumps(self.template)}")
        lines.append(f"separator = {json.dumps(self.separator)}")
        lines.append("[metadata]")
        lines += [f"{name} = {json.dumps(kind)}" for name, kind in self.metadata]
        lines += [
            "[guard]",
            f"max_delete_share = {self.max_delete_share}",
            f"allow_empty_catalog = {json.dumps(self.allow_empty_catalog)}",
            "[embedder]",
            'kind = "openai"',
            'openai_model = "text-embedding-3-small"',
            f"openai_dimensions = {dimensions}",
            f"openai_base_url = {json.dumps(openai_url)}",
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Entry:
    """What the index holds for one product: its text (the embedding input) and its metadata."""

    product_id: str
    text: str
    metadata: tuple[tuple[str, Any], ...]  # sorted; lists as tuples, so that an entry is hashable
    drop: int = field(default=0, compare=False)  # the drop it came from (1-based), for messages

    def metadata_dict(self) -> dict[str, Any]:
        return {name: list(value) if isinstance(value, tuple) else value for name, value in self.metadata}

    def __str__(self) -> str:
        return f"v{self.drop} {self.text!r} {self.metadata_dict()}"


# ---------------------------------------------------------------- one record


def product_id(raw: Any) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise Invalid(f"id must be a string or an integer, got {raw!r}")
    text = str(raw).strip()
    text = unicodedata.normalize("NFC", text)
    if all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in text):
        raise Invalid("empty id")  # nothing, or nothing visible (a zero-width space)
    if len(text.encode()) > MAX_ID_BYTES:
        raise Invalid("id too long")
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise Invalid("control character in id")
    return text


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# A number written in a string (as a CSV cell holds it): decimal digits, a point, an exponent.
_NUMERAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _numeral(value: str) -> float:
    if not _NUMERAL.fullmatch(value.strip()):
        raise Invalid(f"not a number: {value!r}")
    return float(value.strip())


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Invalid(f"not a number: {value!r}")
    number = _numeral(value) if isinstance(value, str) else float(value)
    if not math.isfinite(number):
        raise Invalid("NaN or Infinity")
    return number


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Invalid(f"not an integer: {value!r}")
    if isinstance(value, int):
        number = value
    else:
        whole = _numeral(value) if isinstance(value, str) else value
        if not whole.is_integer():
            raise Invalid(f"not a whole number: {value!r}")
        number = int(whole)
    if not -INT64 <= number < INT64:
        raise Invalid("integer out of 64 bits")
    return number


def metadata_value(kind: str, value: Any) -> Any:
    """The stored value of one metadata field (None: absent)."""
    if _absent(value):
        return None
    if kind == "string":
        if not isinstance(value, str):
            raise Invalid(f"not a string: {value!r}")
        return unicodedata.normalize("NFC", value)
    if kind == "number":
        return _number(value)
    if kind == "integer":
        return _integer(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise Invalid(f"not a boolean: {value!r}")
        return value
    if kind == "string_list":
        if isinstance(value, str):  # as a CSV cell holds a list
            value = [part.strip() for part in value.split(LIST_SEPARATOR) if part.strip()]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise Invalid(f"not a list of strings: {value!r}")
        return tuple(unicodedata.normalize("NFC", item) for item in value)
    raise AssertionError(f"unknown metadata type {kind}")


def render(value: Any) -> str:
    """A field's value as embedding text (untrimmed)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid("NaN or Infinity in text")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        if any(isinstance(item, dict | list | tuple) for item in value):
            return "\n".join(text for item in value if (text := render(item).strip()))
        return ", ".join(render(item) for item in value if item is not None)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {render(item)}" for key, item in value.items())
    raise Invalid(f"cannot render {value!r}")


def entry(config: ModelConfig, pid: str, record: Mapping[str, Any], drop: int) -> Entry:
    """The indexed form of a valid record; raises Invalid otherwise."""
    for name in config.required:
        if _absent(record.get(name)):
            raise Invalid(f"required field {name} missing")
    kinds = dict(config.metadata)
    stored = {name: metadata_value(kind, record.get(name)) for name, kind in config.metadata}
    values = {}
    for name in config.text_fields:
        values[name] = render(stored[name] if name in kinds else record.get(name)).strip()
    if not any(values.values()):
        raise Invalid("empty text")
    if config.template is None:
        text = config.separator.join(value for value in values.values() if value)
    else:
        text = config.template.format_map(values).strip()
    if len(text) > config.max_chars:
        raise Invalid("text over max_chars")
    text = unicodedata.normalize("NFC", text)
    metadata = {name: value for name, value in stored.items() if value is not None}
    # An encoded vector id keeps the product id beside it, in the metadata: it counts.
    kept = metadata if passes_through(pid) else {**metadata, ORIGINAL_ID_KEY: pid}
    size = len(json.dumps(_plain(kept), ensure_ascii=False, separators=(",", ":")).encode())
    if config.max_metadata_bytes is not None and size > config.max_metadata_bytes:
        raise Invalid("metadata over max_metadata_bytes")
    return Entry(pid, text, tuple(sorted(metadata.items())), drop)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return list(value)
    return value


INVALID = "invalid"


@dataclass(frozen=True)
class Drop:
    """One catalog version as the rules read it: per product seen, its entry or INVALID; and how many records."""

    products: dict[str, Entry | str]
    records: int


def read_drop(config: ModelConfig, records: Sequence[Mapping[str, Any]], drop: int) -> Drop:
    products: dict[str, Entry | str] = {}
    for record in records:
        try:
            pid = product_id(record.get(config.id_field))
        except Invalid:
            continue  # quarantined without an id: no product seen
        if pid in products:
            continue  # a duplicate: the first record decides
        try:
            products[pid] = entry(config, pid, record, drop)
        except Invalid:
            products[pid] = INVALID
    return Drop(products, len(records))


# ---------------------------------------------------------------- a sequence of drops


class Guard(Enum):
    APPLIED = "applied"
    HELD = "held"
    EITHER = "either"


Outcome = Entry | None  # None: not in the index
ABSENT: frozenset[Outcome] = frozenset({None})


@dataclass
class Expectation:
    """Per product, every outcome the rules allow after the last drop; per drop, the guard's decision."""

    allowed: dict[str, frozenset[Outcome]]
    guard: list[Guard]
    overtakable: frozenset[int]  # drops (1-based) that may have been overtaken

    def allows(self, pid: str) -> frozenset[Outcome]:
        return self.allowed.get(pid, ABSENT)

    @property
    def exact(self) -> bool:
        return all(len(options) == 1 for options in self.allowed.values())

    def present(self) -> dict[str, Entry]:
        """The index when every product has one outcome (`exact`)."""
        assert self.exact, self.allowed
        return {pid: option for pid, options in self.allowed.items() for option in options if option is not None}


def expect(
    config: ModelConfig, versions: Sequence[Sequence[Mapping[str, Any]]], *, overtakable: Collection[int] = ()
) -> Expectation:
    """What the index may hold after `versions` were dropped in order (see the module's docstring).

    `overtakable`: the drops (1-based) a newer drop may have overtaken, by the test's own schedule; the last drop
    is never one (nothing is newer).
    """
    last = len(versions)
    overtaken = frozenset(i for i in overtakable if i < last)
    state: dict[str, frozenset[Outcome]] = {}
    ever_indexed: set[str] = set()  # possibly tracked at some point
    ever_deleted: set[str] = set()  # possibly deleted by a drop that applied (its deletion may still be on its way)
    decisions: list[Guard] = []
    for number, records in enumerate(versions, start=1):
        drop = read_drop(config, records, number)
        decision = _guard(config, drop, state, ever_indexed, ever_deleted)
        decisions.append(decision)
        after: dict[str, frozenset[Outcome]] = {}
        for pid in set(state) | set(drop.products):
            before = state.get(pid, ABSENT)
            seen = drop.products.get(pid)
            options: frozenset[Outcome]
            if seen is None:
                options = ABSENT
                if decision is not Guard.HELD and any(option is not None for option in before):
                    ever_deleted.add(pid)
            elif seen == INVALID:
                options = before
            else:
                assert isinstance(seen, Entry)
                options = frozenset({seen})
            if decision is Guard.HELD:
                options = before
            elif decision is Guard.EITHER or number in overtaken:
                options = before | options
            after[pid] = options
            ever_indexed.update(pid for option in options if option is not None)
        state = {pid: options for pid, options in after.items() if options != ABSENT}
    return Expectation(state, decisions, overtaken)


def _guard(
    config: ModelConfig,
    drop: Drop,
    state: Mapping[str, frozenset[Outcome]],
    ever_indexed: Collection[str],
    ever_deleted: Collection[str],
) -> Guard:
    if drop.records == 0 and not config.allow_empty_catalog:
        return Guard.HELD
    share = config.max_delete_share

    def certainly_in(pid: str) -> bool:
        return None not in state.get(pid, ABSENT)

    def maybe_in(pid: str) -> bool:
        return any(option is not None for option in state.get(pid, ABSENT))

    gone = [pid for pid in {*state, *ever_deleted} if pid not in drop.products]
    least = sum(1 for pid in gone if certainly_in(pid))
    most = sum(1 for pid in gone if maybe_in(pid) or pid in ever_deleted)
    tracked_least = sum(1 for pid in state if certainly_in(pid))
    tracked_most = len(ever_indexed)
    # The share is deletions / tracked, and every deletion is of a tracked product.
    if least and least / max(tracked_most, least) > share:
        return Guard.HELD
    if not most or most / max(tracked_least, most) <= share:
        return Guard.APPLIED
    return Guard.EITHER


ORIGINAL_ID_KEY = "_product_id"  # where an encoded vector id's product id is kept (README: the vector id)


def passes_through(pid: str) -> bool:
    """A product id that is its own vector id at Pinecone: printable ASCII, at most 512 bytes, no leading `~`."""
    return pid.isascii() and pid.isprintable() and len(pid) <= 512 and not pid.startswith("~")


def vector_id(pid: str) -> str:
    """The id of a product's vector at Pinecone (README: the vector id): the product id, or `~<slug>~<digest>`.

    The digest is the first 32 hex digits of the SHA-256 of the id's UTF-8 bytes; the slug the id decomposed
    (NFKD) with what is not ASCII dropped and any character but letters, digits, `.`, `_` and `-` made a `-`,
    at most 64 characters.
    """
    if passes_through(pid):
        return pid
    decomposed = unicodedata.normalize("NFKD", pid).encode("ascii", "ignore").decode()
    readable = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in decomposed)[:64]
    return f"~{readable}~{hashlib.sha256(pid.encode()).hexdigest()[:32]}"
