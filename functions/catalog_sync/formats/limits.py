"""How much one catalog file may make a reader hold."""

from __future__ import annotations

from typing import IO

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# A decompressed catalog larger than this is refused (protects against gzip bombs).
DEFAULT_MAX_DECOMPRESSED_BYTES = 16 * 1024**3
# One record larger than this is refused: a line without a newline or an endless string must not exhaust memory.
DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024


class ReaderLimits(BaseSettings):
    """What one catalog file may make a reader hold; CATALOG_SYNC_* environment variables (the functions' settings,
    the CLI's environment) override the defaults."""

    model_config = SettingsConfigDict(env_prefix="CATALOG_SYNC_", extra="ignore")

    max_decompressed_bytes: int = Field(default=DEFAULT_MAX_DECOMPRESSED_BYTES, gt=0)
    max_record_bytes: int = Field(default=DEFAULT_MAX_RECORD_BYTES, gt=0)


class RecordTooLarge(Exception):
    """Raised from inside a parser's read: the bytes since the last complete record passed the limit."""


class PositionTracker:
    """Hands a streaming parser its chunks (at most `chunk` bytes each) and remembers where the last one started,
    to locate an error.

    It also bounds one record: a parser holds a record whole until it ends, so more than `limit` bytes read since
    the reader last set `record_start` is refused rather than held.
    """

    def __init__(self, inner: IO[bytes], limit: int, *, chunk: int) -> None:
        self._inner = inner
        self._limit = limit
        self._chunk = chunk
        self.position = 0
        self.chunk_start = 0
        self.record_start = 0

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(self._chunk if size < 0 else min(size, self._chunk))
        if data:
            self.chunk_start = self.position
            self.position += len(data)
            if self.position - self.record_start > self._limit + self._chunk:
                raise RecordTooLarge
        return data
