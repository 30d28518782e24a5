"""Records as the vector index holds them, and what an index declares about itself."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from catalog_sync.models.config import EmbedderKind, EmbedderSettings, FieldType


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

    @property
    def alphabet(self) -> str | None:
        """The characters of an id kept as it is, as a regex character class (None: any character)."""
        return r"[ -~]" if self.ascii_only else None


class MetadataLimits(BaseModel):
    """What a target accepts as one record's metadata."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The metadata of one record as JSON, catalog-sync's own keys included; None: no limit.
    max_bytes: int | None = Field(default=None, gt=0)
    value_types: frozenset[FieldType] = frozenset(FieldType)


class IndexCapabilities(BaseModel):
    """What a vector index declares about itself: its ids, batch sizes and metadata limits. The adapter packs its
    requests to these limits itself; callers may hand it batches of any size. None: no limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vector_ids: VectorIdRules = Field(default_factory=VectorIdRules)
    max_upsert_batch: int | None = Field(default=None, gt=0)
    max_upsert_bytes: int | None = Field(default=None, gt=0)
    max_delete_batch: int | None = Field(default=None, gt=0)
    # Whether metadata can be changed without sending the vector again, and how many records one request may
    # change that way.
    metadata_update: bool = True
    # Whether such an update can remove a field (else a product that loses a field is re-written whole).
    metadata_update_unsets: bool = True
    metadata_update_batch: bool = False
    max_metadata_update_batch: int | None = Field(default=None, gt=0)
    metadata: MetadataLimits = Field(default_factory=MetadataLimits)


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


# The settings of each embedder kind that change the vectors it makes (not where it runs or how it batches).
VECTOR_SETTINGS: dict[EmbedderKind, tuple[str, ...]] = {
    EmbedderKind.HASHING: ("hashing_dimensions",),
    EmbedderKind.OPENAI: ("openai_model", "openai_dimensions"),
    EmbedderKind.MINILM: (),
    EmbedderKind.MINILM_STATIC: (),
}


class IndexEmbedder(BaseModel):
    """The embedder an index was built with, as the state records it: its kind, that kind's settings that change
    its vectors, and their dimension. Enough to build the same embedder again, whatever the config says now."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: EmbedderKind
    settings: dict[str, str | int | None] = Field(default_factory=dict)
    dimension: int = Field(gt=0)

    @classmethod
    def of(cls, settings: EmbedderSettings, *, dimension: int) -> IndexEmbedder:
        defining = {name: getattr(settings, name) for name in VECTOR_SETTINGS[settings.kind]}
        return cls(kind=settings.kind, settings=defining, dimension=dimension)

    def applied_to(self, base: EmbedderSettings) -> EmbedderSettings:
        """`base` (a config's embedder: where it runs, how it batches) with this kind and these settings."""
        return EmbedderSettings.model_validate({**base.model_dump(), **self.settings, "kind": self.kind})

    def describe(self) -> str:
        """For people: `hashing (384 dimensions)`, `openai (text-embedding-3-small, 1536 dimensions)`."""
        named = [str(value) for name, value in self.settings.items() if value is not None and "dimensions" not in name]
        return f"{self.kind.value} ({', '.join([*named, f'{self.dimension} dimensions'])})"


class IndexSettings(BaseModel):
    """What the whole index was last built with, recorded after a complete, clean run: the embedder's model id,
    the text template's fingerprint, and the embedder itself (None in a state recorded with the model id only)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    embedding_model: str
    text_template: str
    embedder: IndexEmbedder | None = None
    # False once a run began writing another embedder's vectors and none has completed since: the index holds
    # vectors of two embedders, so no one embedder can query it.
    settled: bool = True
