"""Records as the vector index holds them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class IndexEntry(BaseModel):
    """An index row without its vector: what `export` writes and `query` returns."""

    id: str
    text: str
    text_hash: str
    metadata: dict[str, Any]
    score: float | None = None
