"""Pushed changes: product upserts and deletes sent directly rather than in a catalog drop.

A push is checked here exactly as the diff will read it: each upsert is written as the JSON Lines line the diff
will read, read back with the catalog reader, and validated with the catalog's RecordValidator (ids normalized
the same way, the same reasons). A push with any invalid change is refused whole, with every problem located,
so that what is accepted is applied in full. Upserts are mapped as the diff maps them: with [fields], each record
gets its derived fields; with [source] group_by, consecutive upserts sharing the key are one product's rows. The
accepted push becomes an object (the upserts as JSON Lines, or an empty JSON array when it only deletes) that the
diff reads with `only_ids` = every id the push names: an id absent from the object is a deletion, and no other
product is looked at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from catalog_sync.formats.json_records import MAX_NESTING, nested_too_deep, parse_json_line
from catalog_sync.formats.records import READER_ERROR_KEY, CatalogFormatError
from catalog_sync.logic.mapping import CatalogMapping, LooseRow
from catalog_sync.logic.row_join import RowJoin
from catalog_sync.logic.validation import InvalidRecord, RecordValidator, normalize_id
from catalog_sync.models.config import CatalogConfig

MAX_PUSH_CHANGES = 1_000  # upserts and deletes together, per push
JSONL_SUFFIX = ".jsonl"
JSON_SUFFIX = ".json"  # a push that only deletes: "[]" (an empty JSON Lines file is refused as a broken drop)

Location = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ChangeProblem:
    """Why one pushed change is refused: where it is in the request, and the reason (as the quarantine says it)."""

    loc: Location
    reason: str


class PushRejected(ValueError):
    """Some pushed changes are invalid; nothing is applied."""

    def __init__(self, problems: Sequence[ChangeProblem]) -> None:
        super().__init__(f"{len(problems)} invalid change(s)")
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class PreparedPush:
    """A valid push: the object the diff reads, and the ids it names (normalized, as the diff sees them)."""

    body: bytes
    suffix: str
    upserted: tuple[str, ...]
    deleted: tuple[str, ...]

    @property
    def ids(self) -> list[str]:
        return [*self.upserted, *self.deleted]

    @property
    def content_type(self) -> str:
        return "application/x-ndjson" if self.suffix == JSONL_SUFFIX else "application/json"


def _non_finite(value: Any) -> bool:
    """Whether a parsed JSON value holds NaN or an infinity (Python's JSON parser accepts them; JSON has none)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_non_finite(item) for item in value)
    return False


_TOO_DEEP = f"nested more than {MAX_NESTING} levels deep"


def check_nesting(upserts: Sequence[Any]) -> None:
    """Refuse upserts nested too deeply to be read back (or even serialized) before anything else handles them."""
    problems = [
        ChangeProblem(("body", "upserts", position), _TOO_DEEP)
        for position, record in enumerate(upserts)
        if nested_too_deep(record)
    ]
    if problems:
        raise PushRejected(problems)


def _as_line(record: Any) -> bytes:
    """The JSON Lines line of a record; InvalidRecord if it cannot be one."""
    if not isinstance(record, dict):
        raise InvalidRecord(f"expected a JSON object, got {type(record).__name__}")
    if nested_too_deep(record):
        raise InvalidRecord(_TOO_DEEP)
    try:
        line = orjson.dumps(record)
    except orjson.JSONEncodeError as exc:  # an integer beyond 64 bits, nesting too deep
        raise InvalidRecord(f"cannot be written as a JSON Lines record: {exc}") from None
    if _non_finite(record):  # orjson would write null: the record read back would not be the one sent
        raise InvalidRecord("NaN and Infinity are not JSON numbers")
    return line


def _grouped_upserts(
    config: CatalogConfig,
    mapping: CatalogMapping,
    validator: RecordValidator,
    upserts: Sequence[Any],
    problems: list[ChangeProblem],
    lines: list[bytes],
    upserted: dict[str, int],
) -> None:
    """Upserts of a grouped catalog: consecutive upserts sharing the group_by value are one product's rows, checked
    as the diff will check them; a product's rows must be consecutive in the push too."""
    parsed: list[tuple[int, dict[str, Any], bytes]] = []
    for position, raw in enumerate(upserts):
        try:
            line = _as_line(raw)
            record = parse_json_line("pushed changes", position + 1, line)
            assert record is not None  # a serialized object is never a blank line
        except (InvalidRecord, CatalogFormatError) as exc:
            problems.append(ChangeProblem(("body", "upserts", position), str(exc)))
            continue
        parsed.append((position, record, line))
    if not config.source.sorted:
        # [source] sorted = false: a product's rows may be sent apart, as they may sit apart in the file.
        with RowJoin(mapping.group_key) as join:
            join.extend(parsed)
            parsed = [(position, record, line) for position, record, line in join.rows() if line is not None]
    for group in mapping.group_rows(parsed):
        if isinstance(group, LooseRow):
            problems.append(ChangeProblem(("body", "upserts", group.position), group.reason))
            continue
        first = group.positions[0]
        loc: Location = ("body", "upserts", first)
        try:
            if group.earlier is not None:
                raise InvalidRecord(
                    f"rows of {mapping.group_by} {group.key!r} are not consecutive (first at upserts[{group.earlier}]):"
                    f" send a product's rows together"
                )
            problem = mapping.product_row_first(group)
            if problem is not None:
                raise InvalidRecord(problem)
            product_id = normalize_id(mapping.first_value(group.rows, config.id_field))
            if product_id in upserted:
                raise InvalidRecord(f"duplicate id (first at upserts[{upserted[product_id]}])")
            upserted[product_id] = first
            for position, row in zip(group.positions, group.rows, strict=True):
                reader_error = row.get(READER_ERROR_KEY)
                if reader_error is not None:
                    raise InvalidRecord(f"upserts[{position}]: {reader_error}")
            validator.validate(product_id, mapping.group_product(group.rows))
        except InvalidRecord as exc:
            problems.append(ChangeProblem(loc, str(exc)))
            continue
        assert group.lines is not None
        lines.extend(group.lines)


def prepare_push(config: CatalogConfig, upserts: Sequence[Any], deletes: Sequence[Any]) -> PreparedPush:
    """Validate a push for a catalog; raises PushRejected listing every invalid change, else the object to write."""
    validator = RecordValidator(config)
    mapping = CatalogMapping(config)
    problems: list[ChangeProblem] = []
    lines: list[bytes] = []
    upserted: dict[str, int] = {}
    if mapping.group_by is not None:
        _grouped_upserts(config, mapping, validator, upserts, problems, lines, upserted)
    for position, raw in enumerate(upserts if mapping.group_by is None else ()):
        loc: Location = ("body", "upserts", position)
        try:
            line = _as_line(raw)
            record = parse_json_line("pushed changes", position + 1, line)  # what the diff will read
            assert record is not None  # a serialized object is never a blank line
            product_id = normalize_id(record.get(config.id_field))
            first = upserted.get(product_id)
            if first is not None:
                raise InvalidRecord(f"duplicate id (first at upserts[{first}])")
            upserted[product_id] = position
            reader_error = record.get(READER_ERROR_KEY)
            if reader_error is not None:
                raise InvalidRecord(str(reader_error))
            validator.validate(product_id, mapping.record_product(record))
        except (InvalidRecord, CatalogFormatError) as exc:
            problems.append(ChangeProblem(loc, str(exc)))
            continue
        lines.append(line)
    deleted: dict[str, int] = {}
    for position, raw in enumerate(deletes):
        loc = ("body", "deletes", position)
        try:
            product_id = normalize_id(raw)
        except InvalidRecord as exc:
            problems.append(ChangeProblem(loc, str(exc)))
            continue
        if product_id in deleted:
            problems.append(ChangeProblem(loc, f"duplicate id (first at deletes[{deleted[product_id]}])"))
        elif product_id in upserted:
            problems.append(ChangeProblem(loc, f"id is also upserted (upserts[{upserted[product_id]}])"))
        else:
            deleted[product_id] = position
    total = len(upserts) + len(deletes)
    if total == 0:
        problems.append(ChangeProblem(("body",), "a push must upsert or delete at least one product"))
    elif total > MAX_PUSH_CHANGES:
        problems.append(ChangeProblem(("body",), f"a push changes at most {MAX_PUSH_CHANGES} products, got {total}"))
    if problems:
        raise PushRejected(problems)
    if lines:
        body, suffix = b"".join(line + b"\n" for line in lines), JSONL_SUFFIX
    else:
        body, suffix = b"[]", JSON_SUFFIX
    return PreparedPush(body=body, suffix=suffix, upserted=tuple(upserted), deleted=tuple(deleted))
