"""What every reader yields and raises: a record with its position, the key for a record's doubt, the error for a
file it cannot read."""

from __future__ import annotations

from typing import Any

# A record the reader could parse but not fully trust carries its problem under this key.
READER_ERROR_KEY = "__reader_error__"

# A record as read, with its position: a line number (CSV) or a record index (JSON array).
RawRecord = tuple[int, dict[str, Any]]


class CatalogFormatError(ValueError):
    """The catalog file cannot be read; the message names the file and where it went wrong."""

    def __init__(self, source: str, where: str | None, problem: str) -> None:
        self.source = source
        self.where = where
        self.problem = problem
        location = f"{source}, {where}" if where else source
        super().__init__(f"{location}: {problem}")
