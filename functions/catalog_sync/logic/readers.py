"""Streaming catalog readers: JSON array, JSON Lines and CSV, each optionally gzip-compressed.

Memory does not grow with the catalog: records are yielded one at a time, and no single record may be larger than
a limit (a JSON Lines line, a JSON array item, a CSV field), nor the whole file decompress to more than another one
(ReaderLimits). Malformed input raises CatalogFormatError naming the file and the line or byte offset; nothing
partial is ever applied because the caller only acts once the whole file has been read.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import functools
import gzip
import io
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, Any

import ijson
import orjson
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = codecs.BOM_UTF8
# A decompressed catalog larger than this is refused (protects against gzip bombs).
DEFAULT_MAX_DECOMPRESSED_BYTES = 16 * 1024**3
# One record larger than this is refused: a line without a newline or an endless string must not exhaust memory.
DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024
# orjson writes at most 254 levels: a record must fit, with room for the envelope it is written in (a quarantine
# line, a queue message). Deeper records are refused by the readers, which keeps recursion out of what follows.
MAX_NESTING = 252
_JSON_CHUNK = 8 * 1024
# A record the reader could parse but not fully trust carries its problem under this key.
READER_ERROR_KEY = "__reader_error__"


class ReaderLimits(BaseSettings):
    """What one catalog file may make a reader hold; CATALOG_SYNC_* environment variables (the functions' settings,
    the CLI's environment) override the defaults."""

    model_config = SettingsConfigDict(env_prefix="CATALOG_SYNC_", extra="ignore")

    max_decompressed_bytes: int = Field(default=DEFAULT_MAX_DECOMPRESSED_BYTES, gt=0)
    max_record_bytes: int = Field(default=DEFAULT_MAX_RECORD_BYTES, gt=0)


class CatalogFormat(StrEnum):
    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"


_EXTENSIONS = {
    ".json": CatalogFormat.JSON,
    ".jsonl": CatalogFormat.JSONL,
    ".ndjson": CatalogFormat.JSONL,
    ".csv": CatalogFormat.CSV,
}


class CatalogFormatError(ValueError):
    """The catalog file cannot be read; the message names the file and where it went wrong."""

    def __init__(self, source: str, where: str | None, problem: str) -> None:
        self.source = source
        self.where = where
        self.problem = problem
        location = f"{source}, {where}" if where else source
        super().__init__(f"{location}: {problem}")


@dataclass(frozen=True, slots=True)
class CatalogKind:
    format: CatalogFormat
    gzipped: bool


def kind_from_name(name: str) -> CatalogKind:
    """Format from the file name's extension (.json, .jsonl/.ndjson, .csv, each optionally .gz)."""
    lowered = name.lower()
    gzipped = lowered.endswith(".gz")
    if gzipped:
        lowered = lowered[: -len(".gz")]
    for extension, fmt in _EXTENSIONS.items():
        if lowered.endswith(extension):
            return CatalogKind(fmt, gzipped)
    raise CatalogFormatError(
        name,
        None,
        "unknown catalog format: the name must end in .json, .jsonl, .ndjson or .csv (optionally .gz)",
    )


class _LimitedReader(io.RawIOBase):
    """Counts bytes read through it and refuses to go past a limit (decompression bombs)."""

    def __init__(self, inner: IO[bytes], limit: int, source: str) -> None:
        self._inner = inner
        self._limit = limit
        self._source = source
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._inner.read(len(buffer))
        except (OSError, EOFError, zlib.error) as exc:
            raise CatalogFormatError(
                self._source,
                f"after {self.position:,} decompressed bytes" if self.position else None,
                f"the gzip data is truncated or corrupt ({exc})",
            ) from exc
        count = len(data)
        self.position += count
        if self.position > self._limit:
            raise CatalogFormatError(
                self._source,
                None,
                f"decompresses to more than {self._limit:,} bytes; refusing it (raise the limit if it is genuine)",
            )
        buffer[:count] = data
        return count


def open_catalog_stream(
    raw: IO[bytes], name: str, *, max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES
) -> tuple[IO[bytes], CatalogKind]:
    """Wrap a binary stream: decompress if the name says .gz (checking the magic bytes)."""
    kind = kind_from_name(name)
    buffered: Any = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    head = buffered.peek(2)[:2]
    if kind.gzipped:
        if head != GZIP_MAGIC:
            raise CatalogFormatError(name, "byte 0", "named .gz but is not gzip data")
        inner: Any = gzip.GzipFile(fileobj=buffered, mode="rb")
        limited = _LimitedReader(inner, max_decompressed_bytes, name)
        return io.BufferedReader(limited, buffer_size=1024 * 1024), kind
    if head == GZIP_MAGIC:
        raise CatalogFormatError(name, "byte 0", "is gzip data but is not named .gz")
    return buffered, kind


def _first_significant_byte(stream: IO[bytes]) -> bytes:
    peek = getattr(stream, "peek", None)
    head = peek(4096) if peek else b""
    if head.startswith(UTF8_BOM):
        head = head[len(UTF8_BOM) :]
    stripped = head.lstrip()
    return stripped[:1]


def _confirm_content(stream: IO[bytes], kind: CatalogKind, name: str) -> None:
    first = _first_significant_byte(stream)
    if not first:
        raise CatalogFormatError(name, None, "the file is empty")
    if kind.format is CatalogFormat.JSON and first and first != b"[":
        hint = " (it looks like JSON Lines: name it .jsonl)" if first == b"{" else ""
        raise CatalogFormatError(name, "byte 0", f"a .json catalog must be a JSON array of objects{hint}")
    if kind.format is CatalogFormat.JSONL and first and first != b"{":
        hint = " (it looks like a JSON array: name it .json)" if first == b"[" else ""
        raise CatalogFormatError(name, "line 1", f"a JSON Lines catalog must hold one object per line{hint}")
    if kind.format is CatalogFormat.CSV and first in (b"[", b"{"):
        raise CatalogFormatError(name, "byte 0", "named .csv but holds JSON")


def _skip_bom(stream: IO[bytes]) -> bool:
    peek = getattr(stream, "peek", None)
    if peek and peek(3)[:3] == UTF8_BOM:
        stream.read(3)
        return True
    return False


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


# A record as read, with its position: a line number (CSV) or a record index (JSON array).
RawRecord = tuple[int, dict[str, Any]]


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
    bom = len(UTF8_BOM) if _skip_bom(stream) else 0
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


def iter_csv(
    stream: IO[bytes],
    name: str,
    *,
    delimiter: str = ",",
    required_column: str | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[RawRecord]:
    csv.field_size_limit(max_record_bytes)
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return
        header = [column.strip() for column in header]
        if required_column is not None and required_column not in header:
            hint = ""
            for other in (";", "\t", "|", ","):
                if other != delimiter and len(header) == 1 and other in header[0]:
                    hint = f"; the header looks {other!r}-delimited: set csv.delimiter"
            raise CatalogFormatError(
                name,
                "line 1",
                f"the CSV header has no {required_column!r} column (columns: {header[:20]}){hint}",
            )
        if len(set(header)) != len(header):
            raise CatalogFormatError(name, "line 1", "the CSV header repeats a column name")
        width = len(header)
        # A quoted field may span lines: a record is located by the line it begins on.
        begins = reader.line_num + 1
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                begins = reader.line_num + 1
                continue
            record: dict[str, Any] = dict(zip(header, row, strict=False))
            if len(row) != width:
                # Kept as a record so that validation quarantines it with its id.
                record[READER_ERROR_KEY] = f"row has {len(row)} fields, the header has {width}"
            yield begins, record
            begins = reader.line_num + 1
    except csv.Error as exc:
        # An unclosed quote reads on into the next lines: where the record began is where to look.
        began = (
            f" (in the record that begins at line {begins:,}: is a quote left open?)"
            if begins < reader.line_num or "end of data" in str(exc)
            else ""
        )
        raise CatalogFormatError(name, f"line {reader.line_num:,}", f"malformed CSV: {exc}{began}") from None
    except UnicodeDecodeError as exc:
        # The decoder reads ahead, so the line is approximate; the byte says what is wrong.
        raise CatalogFormatError(
            name,
            f"near line {reader.line_num + 1:,}",
            f"not UTF-8 (byte 0x{exc.object[exc.start]:02x}); save the file as UTF-8",
        ) from None
    finally:
        # Hand the byte stream back to its owner (who closes it); it may be closed already.
        with contextlib.suppress(ValueError):
            text.detach()


@dataclass
class CatalogStream:
    """An opened catalog, read lazily.

    JSON Lines gives its raw `lines` and leaves parsing to the consumer, which can skip a line it has seen
    byte for byte before; the other formats give parsed `parsed_records`.
    """

    name: str
    kind: CatalogKind
    lines: Iterator[bytes] | None = None
    parsed_records: Iterator[RawRecord] | None = None
    # Lines are read at most this long plus one byte: a longer one is refused when parsed.
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES

    def parse(self, line_number: int, raw: bytes) -> dict[str, Any] | None:
        if len(raw) > self.max_record_bytes:
            raise CatalogFormatError(
                self.name,
                f"line {line_number:,}",
                f"the line is longer than {self.max_record_bytes:,} bytes, the limit for one record",
            )
        return parse_json_line(self.name, line_number, raw)

    def location(self, position: int) -> str:
        return f"record {position}" if self.kind.format is CatalogFormat.JSON else f"line {position}"

    def records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Every record, parsed, with its position."""
        if self.lines is not None:
            for line_number, line in enumerate(self.lines, start=1):
                record = self.parse(line_number, line)
                if record is not None:
                    yield line_number, record
        elif self.parsed_records is not None:
            yield from self.parsed_records

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]], name: str = "records") -> CatalogStream:
        """A stream over records already in memory (tests, pushed changes)."""
        return cls(
            name=name,
            kind=CatalogKind(CatalogFormat.JSON, gzipped=False),
            parsed_records=enumerate(records, start=1),
        )


def open_catalog(
    raw: IO[bytes],
    name: str,
    *,
    csv_delimiter: str = ",",
    id_field: str | None = None,
    max_decompressed_bytes: int | None = None,
    max_record_bytes: int | None = None,
) -> CatalogStream:
    """Open a catalog stream: check its format against its name and start reading it lazily.

    A limit left unset is ReaderLimits' (the environment's, else the default).
    """
    if max_decompressed_bytes is None or max_record_bytes is None:
        limits = ReaderLimits()
        if max_decompressed_bytes is None:
            max_decompressed_bytes = limits.max_decompressed_bytes
        if max_record_bytes is None:
            max_record_bytes = limits.max_record_bytes
    stream, kind = open_catalog_stream(raw, name, max_decompressed_bytes=max_decompressed_bytes)
    _confirm_content(stream, kind, name)
    if kind.format is CatalogFormat.JSONL:
        _skip_bom(stream)
        # readline with a limit: a line without an end is not read whole (CatalogStream.parse refuses it).
        lines = iter(functools.partial(stream.readline, max_record_bytes + 1), b"")
        return CatalogStream(name=name, kind=kind, lines=lines, max_record_bytes=max_record_bytes)
    if kind.format is CatalogFormat.JSON:
        records = iter_json_array(stream, name, max_record_bytes=max_record_bytes)
        return CatalogStream(name=name, kind=kind, parsed_records=records, max_record_bytes=max_record_bytes)
    return CatalogStream(
        name=name,
        kind=kind,
        parsed_records=iter_csv(
            stream, name, delimiter=csv_delimiter, required_column=id_field, max_record_bytes=max_record_bytes
        ),
        max_record_bytes=max_record_bytes,
    )


def iter_records(raw: IO[bytes], name: str, **options: Any) -> tuple[CatalogKind, Iterator[tuple[int, dict[str, Any]]]]:
    """Open a catalog and return its kind and every record, parsed, with its position."""
    stream = open_catalog(raw, name, **options)
    return stream.kind, stream.records()
