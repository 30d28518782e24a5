"""Opening a catalog: its format checked against its name, its records read lazily by the reader for that format."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from catalog_sync.formats.csv_records import iter_csv
from catalog_sync.formats.detection import (
    CatalogFormat,
    CatalogKind,
    confirm_content,
    first_significant_byte,
    open_catalog_stream,
    skip_bom,
)
from catalog_sync.formats.json_records import iter_json_array, parse_json_line, refuse_json_object
from catalog_sync.formats.limits import DEFAULT_MAX_RECORD_BYTES, ReaderLimits
from catalog_sync.formats.records import CatalogFormatError, RawRecord
from catalog_sync.formats.xml_records import iter_xml

_RECORD_NUMBERED = (CatalogFormat.JSON, CatalogFormat.XML)


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
        return f"record {position}" if self.kind.format in _RECORD_NUMBERED else f"line {position}"

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
    records: str | None = None,
    max_decompressed_bytes: int | None = None,
    max_record_bytes: int | None = None,
) -> CatalogStream:
    """Open a catalog stream: check its format against its name and start reading it lazily.

    `records` ([source] records) is where the records are: a dotted path of keys to the array inside a JSON
    object, or of element names to the record elements of XML; JSON Lines and delimited files ignore it. A limit
    left unset is ReaderLimits' (the environment's, else the default).
    """
    if max_decompressed_bytes is None or max_record_bytes is None:
        limits = ReaderLimits()
        if max_decompressed_bytes is None:
            max_decompressed_bytes = limits.max_decompressed_bytes
        if max_record_bytes is None:
            max_record_bytes = limits.max_record_bytes
    stream, kind = open_catalog_stream(raw, name, max_decompressed_bytes=max_decompressed_bytes)
    confirm_content(stream, kind, name)
    if kind.format is CatalogFormat.JSONL:
        skip_bom(stream)
        # readline with a limit: a line without an end is not read whole (CatalogStream.parse refuses it).
        lines = iter(functools.partial(stream.readline, max_record_bytes + 1), b"")
        return CatalogStream(name=name, kind=kind, lines=lines, max_record_bytes=max_record_bytes)
    if kind.format is CatalogFormat.JSON:
        first = first_significant_byte(stream)
        if records is None and first == b"{":
            raise refuse_json_object(stream, name, max_record_bytes=max_record_bytes)
        # A plain array is its records whatever the setting says (a push that only deletes is "[]").
        wrapped = records if first == b"{" else None
        parsed = iter_json_array(stream, name, records=wrapped, max_record_bytes=max_record_bytes)
    elif kind.format is CatalogFormat.XML:
        parsed = iter_xml(stream, name, records=records, max_record_bytes=max_record_bytes)
    else:
        # A tab-separated file (.tsv, .txt) is tab-separated whatever csv.delimiter says.
        delimiter = "\t" if kind.format is CatalogFormat.TSV else csv_delimiter
        parsed = iter_csv(
            stream, name, delimiter=delimiter, required_column=id_field, max_record_bytes=max_record_bytes
        )
    return CatalogStream(name=name, kind=kind, parsed_records=parsed, max_record_bytes=max_record_bytes)


def iter_records(raw: IO[bytes], name: str, **options: Any) -> tuple[CatalogKind, Iterator[tuple[int, dict[str, Any]]]]:
    """Open a catalog and return its kind and every record, parsed, with its position."""
    stream = open_catalog(raw, name, **options)
    return stream.kind, stream.records()
