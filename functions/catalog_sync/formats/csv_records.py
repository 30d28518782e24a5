"""CSV records: a header, then one record per row (a quoted field may span lines), each located by its first line."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator
from typing import IO, Any

from catalog_sync.formats.limits import DEFAULT_MAX_RECORD_BYTES
from catalog_sync.formats.names import close_names, did_you_mean
from catalog_sync.formats.records import READER_ERROR_KEY, CatalogFormatError, RawRecord


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
            hint = did_you_mean(close_names(required_column, header))
            for other in (";", "\t", "|", ","):
                if other != delimiter and len(header) == 1 and other in header[0]:
                    hint = f"; the header looks {other!r}-delimited: set csv.delimiter"
                    if other == "\t":
                        hint = "; the header looks tab-separated: name the file .tsv (or set csv.delimiter)"
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
