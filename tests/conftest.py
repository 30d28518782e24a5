from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from catalog_sync.models.config import CatalogConfig

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "functions"))  # the Lambda handlers live beside the package
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.doubles import moto_transactions  # noqa: E402

moto_transactions.install()  # moto's transactions, with a rollback that does not copy whole tables


def make_config(**overrides: Any) -> CatalogConfig:
    data: dict[str, Any] = {
        "name": "shop",
        "id_field": "sku",
        "text": {"fields": ["title", "description"]},
        "metadata": {
            "title": "string",
            "price": "number",
            "availability": "string",
            "stock": "integer",
            "tags": "string_list",
        },
    }
    data.update(overrides)
    return CatalogConfig(**data)


@pytest.fixture
def config() -> CatalogConfig:
    return make_config()


def product(sku: str, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "sku": sku,
        "title": f"Product {sku}",
        "description": f"A fine product called {sku}.",
        "price": 10.0,
        "availability": "in_stock",
        "stock": 5,
        "tags": ["a"],
    }
    record.update(fields)
    return record


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    data = b"".join(orjson.dumps(record) + b"\n" for record in records)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def write_json(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    data = orjson.dumps(list(records))
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path
