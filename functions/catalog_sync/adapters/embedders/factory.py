"""Build the embedder a catalog's settings (or the --embedder flag) ask for."""

from __future__ import annotations

from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from catalog_sync.adapters.embedders.minilm import MiniLMEmbedder
from catalog_sync.adapters.embedders.openai import OpenAIEmbedder
from catalog_sync.adapters.embedders.static_minilm import StaticMiniLMEmbedder
from catalog_sync.models.config import EmbedderKind, EmbedderSettings
from catalog_sync.ports import Embedder


def build_embedder(settings: EmbedderSettings) -> Embedder:
    if settings.kind is EmbedderKind.HASHING:
        return HashingEmbedder(settings.hashing_dimensions)
    if settings.kind is EmbedderKind.MINILM_STATIC:
        return StaticMiniLMEmbedder()
    if settings.kind is EmbedderKind.MINILM:
        return MiniLMEmbedder(batch_size=min(settings.batch_size, 128))
    return OpenAIEmbedder(
        model=settings.openai_model, dimensions=settings.openai_dimensions, base_url=settings.openai_base_url
    )
