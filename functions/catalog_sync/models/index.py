"""Records as the vector index holds them, and what an index declares about itself."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class IndexEntry(BaseModel):
    """An index row without its vector: what `export` writes and `query` returns. `id` is the product id (the
    original, whatever vector id the index keeps it under)."""

    id: str
    text: str
    text_hash: str
    metadata: dict[str, Any]
    score: float | None = None


# The shortest id limit a target may declare: an encoded id needs its prefix, separator and digest
# (logic/vector_ids.py).
MIN_ENCODABLE_ID_BYTES = 40


class VectorIdRules(BaseModel):
    """Which vector ids a target accepts: its id alphabet and length. A target without either restriction keeps
    every product id as it is; otherwise ids outside the rules are encoded (logic/vector_ids.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Printable ASCII only (Pinecone: the SDK refuses anything else before sending).
    ascii_only: bool = False
    # Longest id, in UTF-8 bytes; None: no limit.
    max_bytes: int | None = Field(default=None, ge=MIN_ENCODABLE_ID_BYTES)

    @property
    def restricted(self) -> bool:
        return self.ascii_only or self.max_bytes is not None


class IndexCapabilities(BaseModel):
    """What a vector index declares about itself (its ids for now; batch sizes and metadata limits may follow)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vector_ids: VectorIdRules = Field(default_factory=VectorIdRules)


class IndexRejection(BaseModel):
    """A product's change the index refused for its content (an id, a metadata value, a size): the product stays
    pending with this reason, and the rest of its batch is written."""

    model_config = ConfigDict(frozen=True)

    product_id: str
    version: int
    action: str
    # Kept short: a service's error message may quote a whole request.
    reason: Annotated[str, AfterValidator(lambda text: text if len(text) <= 500 else text[:497] + "...")]
    at: datetime | None = None
