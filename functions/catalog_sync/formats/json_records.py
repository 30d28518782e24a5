"""JSON Lines lines and JSON array items: parsed, bounded in size and nesting, their errors told in plain words."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

import ijson
import orjson

from catalog_sync.formats.detection import UTF8_BOM, skip_bom
from catalog_sync.formats.limits import DEFAULT_MAX_RECORD_BYTES, PositionTracker, RecordTooLarge
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


# At most this many array paths are named when a document's records are not where the config says.
_ARRAYS_NAMED = 10


def iter_json_array(
    stream: IO[bytes],
    name: str,
    *,
    records: str | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[RawRecord]:
    """The objects of a JSON array: the document itself, or with `records` the array at that dotted path of keys
    inside a JSON object (an API response: {"products": [...], "total": 194})."""
    bom = len(UTF8_BOM) if skip_bom(stream) else 0
    tracker = PositionTracker(stream, max_record_bytes, chunk=_JSON_CHUNK)
    index = 0
    try:
        # Small chunks keep the reported place of an error within a few kilobytes.
        if records is None:
            items = ijson.items(tracker, "item", use_float=True, buf_size=_JSON_CHUNK)
        else:
            events = ijson.parse(tracker, use_float=True, buf_size=_JSON_CHUNK)
            # Records may nest MAX_NESTING deep below the array: one a little deeper is refused as that record (once
            # built); the document, far deeper, at once.
            limited = _depth_limited(events, 2 * MAX_NESTING + records.count(".") + 2, name, tracker)
            items = ijson.items(_up_to_the_array(limited, records, name, tracker), f"{records}.item")
        for index, item in enumerate(items, start=1):
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
    except RecordTooLarge:
        raise CatalogFormatError(
            name,
            f"record {index + 1:,}, from byte {tracker.record_start + bom:,}",
            f"the record is larger than {max_record_bytes:,} bytes, the limit for one record",
        ) from None


_Event = tuple[str, str, Any]
_VALUE_KINDS = {
    "start_map": "an object",
    "null": "null",
    "boolean": "a boolean",
    "string": "a string",
    "number": "a number",
    "integer": "a number",
    "double": "a number",
}


def _depth_limited(events: Iterator[_Event], limit: int, name: str, tracker: PositionTracker) -> Iterator[_Event]:
    """The parser's events, refused once the document nests deeper than `limit`: each event of a deeply nested
    document costs the parser its whole path, so a hostile one would otherwise take quadratic time."""
    depth = 0
    for event in events:
        kind = event[1]
        if kind in {"start_map", "start_array"}:
            depth += 1
            if depth > limit:
                raise CatalogFormatError(
                    name,
                    f"from byte {tracker.record_start:,}",
                    f"the document is nested more than {limit} levels deep",
                )
        elif kind in {"end_map", "end_array"}:
            depth -= 1
        yield event


def _up_to_the_array(events: Iterator[_Event], path: str, name: str, tracker: PositionTracker) -> Iterator[_Event]:
    """The parser's events, checked until the array at `path` begins: a document without it, or with something
    else there, is refused naming the arrays it does hold. Nothing is built on the way, so memory stays flat."""
    arrays = _ArraysSeen()
    for event in events:
        prefix, kind, _ = event
        if prefix == path:
            if kind != "start_array":
                value = _VALUE_KINDS.get(kind, kind)
                raise CatalogFormatError(name, None, f'[source] records = "{path}" names {value}, not an array')
            yield event
            yield from events
            return
        arrays.see(prefix, kind)
        tracker.record_start = tracker.position  # nothing is held while looking: no record to bound yet
        yield event
    raise CatalogFormatError(name, None, f'[source] records = "{path}": the document has no such key{arrays.hint()}')


class _ArraysSeen:
    """The paths of the arrays a JSON document holds outside any array: what [source] records could name."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.more = False
        self._depth = 0  # arrays open around the current event

    def see(self, prefix: str, kind: str) -> None:
        if kind == "start_array":
            if self._depth == 0 and prefix:
                if len(self.paths) < _ARRAYS_NAMED:
                    self.paths.append(prefix)
                else:
                    self.more = True
            self._depth += 1
        elif kind == "end_array":
            self._depth -= 1

    def named(self) -> str:
        return ", ".join(self.paths) + (", ..." if self.more else "")

    def hint(self) -> str:
        return f" (arrays found: {self.named()})" if self.paths else " (it holds no array)"


def refuse_json_object(
    stream: IO[bytes], name: str, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> CatalogFormatError:
    """Why a .json catalog whose top level is an object, read with no [source] records, is refused: the arrays it
    holds (one of which is likely the records), or that it is JSON Lines. Streams the document, building nothing
    (one value larger than a record may be is refused as such)."""
    skip_bom(stream)
    tracker = PositionTracker(stream, max_record_bytes, chunk=_JSON_CHUNK)
    arrays = _ArraysSeen()
    closed = False
    try:
        events = ijson.parse(tracker, buf_size=_JSON_CHUNK)
        for prefix, kind, _ in _depth_limited(events, MAX_NESTING, name, tracker):
            if prefix == "" and kind == "end_map":
                closed = True
            arrays.see(prefix, kind)
            tracker.record_start = tracker.position
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        if closed:  # a second value after the first object: one object per line
            return CatalogFormatError(
                name,
                "byte 0",
                "a .json catalog must be a JSON array of objects (it looks like JSON Lines: name it .jsonl)",
            )
        where = f"between bytes {tracker.chunk_start:,} and {tracker.position:,}"
        return CatalogFormatError(name, where, f"invalid JSON: {_describe_json_error(exc)}")
    except CatalogFormatError as exc:  # nested too deep to look into
        return exc
    except RecordTooLarge:
        return CatalogFormatError(
            name,
            f"from byte {tracker.record_start:,}",
            f"a value is larger than {max_record_bytes:,} bytes, the limit for one record",
        )
    if not arrays.paths:
        return CatalogFormatError(
            name,
            "byte 0",
            "the file holds one object with no array in it (it looks like JSON Lines: name it .jsonl); a .json "
            "catalog is a JSON array of objects, or an object holding the array ([source] records names it)",
        )
    if len(arrays.paths) == 1:
        fix = f'set [source] records = "{arrays.paths[0]}"'
    else:
        fix = "set [source] records to the path of the records' array"
    return CatalogFormatError(name, "byte 0", f"the file holds an object, not an array; {fix}{arrays.hint()}")
