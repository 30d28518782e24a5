"""Catalog configs in the bucket: `<configs_prefix><catalog>.toml` (or `.yaml`, `.yml`), found and loaded.

Used by the pipeline (the diff and the consumer) and by the webhook (pushed changes are validated with the
catalog's config). A config is found by listing, not by probing: without s3:ListBucket, S3 answers a GET of a
missing key with 403, not 404, and a missing config could not be told from a denied one.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from catalog_sync.models.config import CatalogConfig, ConfigError, load_config

CONFIG_SUFFIXES = (".toml", ".yaml", ".yml")  # in the order they are looked for
CONFIG_CACHE_SECONDS = 300


class CatalogNotFound(ConfigError):
    """No config for the catalog in the bucket: the deployment does not know it."""


def find_catalog_config(s3: Any, *, bucket: str, configs_prefix: str, catalog: str) -> str | None:
    """The key of the catalog's config, or None.

    One listing per suffix, exact: a listing of `config/shop.` would also return `config/shop.eu.toml` and the
    other catalogs whose names start with `shop.`, and could page past `config/shop.toml`. The shortest key with a
    prefix sorts first, so the first key listed under `config/shop.toml` is that key if it exists.
    """
    for suffix in CONFIG_SUFFIXES:
        key = f"{configs_prefix}{catalog}{suffix}"
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        if any(obj["Key"] == key for obj in listed.get("Contents", [])):
            return key
    return None


def load_catalog_config(s3: Any, *, bucket: str, configs_prefix: str, catalog: str) -> CatalogConfig:
    """The catalog's config, read from the bucket and validated.

    Raises CatalogNotFound when there is none, ConfigError when it is invalid or names another catalog.
    """
    key = find_catalog_config(s3, bucket=bucket, configs_prefix=configs_prefix, catalog=catalog)
    if key is None:
        raise CatalogNotFound(f"no config for catalog {catalog!r} at {configs_prefix}{catalog}.toml")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"{catalog}{key[len(configs_prefix) + len(catalog) :]}"
        path.write_bytes(body)
        config = load_config(path)
    if config.name != catalog:
        raise ConfigError(f"config {key} names catalog {config.name!r}, not {catalog!r}")
    return config


class CatalogConfigs:
    """Catalog configs by name, each kept for `max_age` seconds (a warm function re-reads a changed config soon)."""

    def __init__(
        self,
        s3: Any,
        *,
        bucket: str,
        configs_prefix: str,
        max_age: float = CONFIG_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.configs_prefix = configs_prefix
        self.max_age = max_age
        self._clock = clock
        self._cached: dict[str, tuple[float, CatalogConfig]] = {}

    def get(self, catalog: str) -> CatalogConfig:
        cached = self._cached.get(catalog)
        if cached is not None and self._clock() - cached[0] < self.max_age:
            return cached[1]
        config = load_catalog_config(self.s3, bucket=self.bucket, configs_prefix=self.configs_prefix, catalog=catalog)
        self._cached[catalog] = (self._clock(), config)
        return config

    def exists(self, catalog: str) -> bool:
        """Whether the catalog has a config (a config loaded within `max_age` counts without a request)."""
        cached = self._cached.get(catalog)
        if cached is not None and self._clock() - cached[0] < self.max_age:
            return True
        key = find_catalog_config(self.s3, bucket=self.bucket, configs_prefix=self.configs_prefix, catalog=catalog)
        return key is not None
