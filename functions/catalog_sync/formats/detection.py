"""What a catalog file is: its format from its name, its bytes opened (decompressed within a limit) and checked
against that format before any record is read."""

from __future__ import annotations

import codecs
import gzip
import io
import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, Any

from catalog_sync.formats.limits import DEFAULT_MAX_DECOMPRESSED_BYTES
from catalog_sync.formats.records import CatalogFormatError

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = codecs.BOM_UTF8


class CatalogFormat(StrEnum):
    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"
    # Tab-separated: Google Merchant Center's text feed (.txt or .tsv), read by the CSV reader.
    TSV = "tsv"
    XML = "xml"


_EXTENSIONS = {
    ".json": CatalogFormat.JSON,
    ".jsonl": CatalogFormat.JSONL,
    ".ndjson": CatalogFormat.JSONL,
    ".csv": CatalogFormat.CSV,
    ".tsv": CatalogFormat.TSV,
    ".txt": CatalogFormat.TSV,
    ".xml": CatalogFormat.XML,
}
# The names a folder of drops is searched for: every catalog extension but .txt, which notes and exports share
# (a Google text feed in a watched folder is named .tsv; a .txt catalog is read when named itself).
CATALOG_SUFFIXES = tuple(
    suffix for extension in _EXTENSIONS if extension != ".txt" for suffix in (extension, extension + ".gz")
)


@dataclass(frozen=True, slots=True)
class CatalogKind:
    format: CatalogFormat
    gzipped: bool


def kind_from_name(name: str) -> CatalogKind:
    """Format from the file name's extension (.json, .jsonl/.ndjson, .csv, .tsv/.txt, .xml, each optionally .gz)."""
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
        "unknown catalog format: the name must end in .json, .jsonl, .ndjson, .csv, .tsv, .txt or .xml "
        "(optionally .gz)",
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


def first_significant_byte(stream: IO[bytes]) -> bytes:
    peek = getattr(stream, "peek", None)
    head = peek(4096) if peek else b""
    if head.startswith(UTF8_BOM):
        head = head[len(UTF8_BOM) :]
    stripped = head.lstrip()
    return stripped[:1]


def confirm_content(stream: IO[bytes], kind: CatalogKind, name: str) -> None:
    first = first_significant_byte(stream)
    if not first:
        raise CatalogFormatError(name, None, "the file is empty")
    if kind.format is CatalogFormat.JSON and first not in (b"[", b"{"):
        hint = " (it looks like XML: name it .xml)" if first == b"<" else ""
        raise CatalogFormatError(
            name, "byte 0", f"a .json catalog must be a JSON array of objects, or an object holding one{hint}"
        )
    if kind.format is CatalogFormat.JSONL and first != b"{":
        hint = " (it looks like a JSON array: name it .json)" if first == b"[" else ""
        raise CatalogFormatError(name, "line 1", f"a JSON Lines catalog must hold one object per line{hint}")
    if kind.format in (CatalogFormat.CSV, CatalogFormat.TSV):
        named = ".csv" if kind.format is CatalogFormat.CSV else "tab-separated"
        if first in (b"[", b"{"):
            raise CatalogFormatError(name, "byte 0", f"named {named} but holds JSON")
        if first == b"<":
            raise CatalogFormatError(name, "byte 0", f"named {named} but holds XML or HTML")
    if kind.format is CatalogFormat.XML and first != b"<":
        hint = " (it looks like JSON)" if first in (b"[", b"{") else ""
        raise CatalogFormatError(name, "byte 0", f"named .xml but does not begin with an XML tag{hint}")


def skip_bom(stream: IO[bytes]) -> bool:
    peek = getattr(stream, "peek", None)
    if peek and peek(3)[:3] == UTF8_BOM:
        stream.read(3)
        return True
    return False
