"""JSON Lines lines and JSON array items: parsed, bounded in size and nesting, their errors told in plain words."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

import ijson
import orjson

from catalog_sync.formats.detection import UTF8_BOM, skip_bom
from catalog_sync.formats.limits import DEFAULT_MAX_RECORD_BYTES
from catalog_sync.formats.records import CatalogFormatError, RawRecord

# orjson writes at most 254 levels: a record must fit, with room for the envelope it is written in (a quarantine
# line, a queue message). Deeper records are refused by the readers, which keeps recursion out of what follows.
MAX_NESTING = 252
_JSON_CHUNK = 8 * 1024


def _describe_json_error(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 (byte 0x{exc.object[exc.start]:02x})"
    message = exc.args[0] if exc.args else str(exc)
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    message = " ".join(str(message).split())
    if "integer overflow" in message:
        message += " (a number beyond 64 bits: JSON Lines and CSV catalogs quarantine such a record instead)"
    return message + _hint(message)


# yajl's message quotes the text around the error; orjson's gives its position.
_NOT_JSON_NUMBER = re.compile(r"[:\[,]\s*[+-]?(nan|inf|infinity)\b", re.IGNORECASE)
_NOT_JSON_NUMBER_HERE = re.compile(r"[:\[,]?\s*[+-]?(nan|inf|infinity)\b", re.IGNORECASE)
_NOT_JSON_NUMBER_HINT = " (NaN and Infinity are not JSON numbers: write null or leave the field out)"


def _hint(message: str) -> str:
    """What a parser's terse message means, when its words or the text it quotes show it."""
    if _NOT_JSON_NUMBER.search(message):
        return _NOT_JSON_NUMBER_HINT
    if "depth limit" in message:
        return f" (a record may be nested at most {MAX_NESTING} levels deep)"
    return ""


def nested_too_deep(value: Any) -> bool:
    """Whether a parsed JSON value is nested more than MAX_NESTING levels deep."""
    try:
        orjson.dumps([[value]])  # the value, two levels down: fast, and it fails past MAX_NESTING
    except orjson.JSONEncodeError:
        return _depth_exceeds(value, MAX_NESTING)  # or for an integer beyond 64 bits: count to be sure
    return False


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _too_deep_error(name: str, where: str) -> CatalogFormatError:
    return CatalogFormatError(name, where, f"the record is nested more than {MAX_NESTING} levels deep")


def parse_json_line(name: str, line_number: int, line: bytes) -> dict[str, Any] | None:
    """Parse one JSON Lines line; None for a blank line."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if not line.strip():
            return None
        raise CatalogFormatError(name, f"line {line_number:,}", _describe_line_error(exc, line)) from None
    if type(record) is not dict:
        raise CatalogFormatError(name, f"line {line_number:,}", f"expected a JSON object, got {type(record).__name__}")
    if nested_too_deep(record):
        raise _too_deep_error(name, f"line {line_number:,}")
    return record


def _describe_line_error(exc: orjson.JSONDecodeError, line: bytes) -> str:
    if "UTF-8" in str(exc):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as bad:
            return f"not UTF-8 (byte 0x{line[bad.start]:02x}, at byte {bad.start + 1:,} of the line); save it as UTF-8"
    text = line.decode("utf-8", "replace")
    at_error = text[max(exc.pos - 1, 0) : exc.pos + 12]  # a character position; one back for a sign
    hint = _NOT_JSON_NUMBER_HINT if _NOT_JSON_NUMBER_HERE.match(at_error) else _hint(str(exc))
    return f"invalid JSON: {exc}{hint}"


class _RecordTooLarge(Exception):
    """Raised from inside the parser's read: the bytes since the last complete record passed the limit."""


class _PositionTracker:
    """Hands the JSON parser its chunks and remembers where the last one started, to locate an error.

    It also bounds one record: the parser holds a record whole until it ends, so more than `limit` bytes read
    since the last record was handed out is refused rather than held.
    """

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self._inner = inner
        self.position = 0
        self.chunk_start = 0
        self.record_start = 0
        self._limit = limit

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        if data:
            self.chunk_start = self.position
            self.position += len(data)
            if self.position - self.record_start > self._limit + _JSON_CHUNK:
                raise _RecordTooLarge
        return data


def iter_json_array(
    stream: IO[bytes], name: str, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> Iterator[RawRecord]:
    bom = len(UTF8_BOM) if skip_bom(stream) else 0
    tracker = _PositionTracker(stream, max_record_bytes)
    index = 0
    try:
        # Small chunks keep the reported place of an error within a few kilobytes.
        for index, item in enumerate(ijson.items(tracker, "item", use_float=True, buf_size=_JSON_CHUNK), start=1):
            if type(item) is not dict:
                raise CatalogFormatError(
                    name, f"record {index:,}", f"expected a JSON object, got {type(item).__name__}"
                )
            if nested_too_deep(item):
                raise _too_deep_error(name, f"record {index:,}")
            tracker.record_start = tracker.position
            yield index, item
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        where = f"record {index + 1:,}, between bytes {tracker.chunk_start + bom:,} and {tracker.position + bom:,}"
        raise CatalogFormatError(name, where, f"invalid JSON: {_describe_json_error(exc)}") from None
    except _RecordTooLarge:
        raise CatalogFormatError(
            name,
            f"record {index + 1:,}, from byte {tracker.record_start + bom:,}",
            f"the record is larger than {max_record_bytes:,} bytes, the limit for one record",
        ) from None
