"""Records as the vector index holds them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class IndexRecord(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    vector: list[float]
    text: str
    text_hash: str
    metadata: dict[str, Any]


class IndexEntry(BaseModel):
    """An index row without its vector: what `export` writes and `query` returns."""

    id: str
    text: str
    text_hash: str
    metadata: dict[str, Any]
    score: float | None = None
