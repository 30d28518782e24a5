"""Catalog config files (TOML) for tests that hand one to the CLI or the pipeline: the shop catalog of
tests/conftest.py's `product` records, with what each test changes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

# The metadata of tests/conftest.py's `product` records.
SHOP_METADATA = {
    "title": "string",
    "price": "number",
    "availability": "string",
    "stock": "integer",
    "tags": "string_list",
}


def catalog_toml(
    name: str = "shop",
    *,
    id_field: str = "sku",
    text_fields: Sequence[str] = ("title", "description"),
    metadata: Mapping[str, str] = SHOP_METADATA,
    **settings: Any,
) -> str:
    """A catalog's config file. `settings`: other top-level keys; a mapping is a table (`embedder={...}`).
    Values are written as JSON, which TOML reads the same for strings, numbers, booleans and lists."""
    tables = {key: value for key, value in settings.items() if isinstance(value, Mapping)}
    lines = [f"name = {json.dumps(name)}", f"id_field = {json.dumps(id_field)}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items() if key not in tables]
    tables = {"text": {"fields": list(text_fields)}, "metadata": metadata, **tables}
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"
