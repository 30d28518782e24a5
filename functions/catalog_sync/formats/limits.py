"""How much one catalog file may make a reader hold."""

from __future__ import annotations

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
