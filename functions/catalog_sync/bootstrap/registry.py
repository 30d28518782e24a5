"""The registry of kinds: which adapter a kind name (a catalog's `embedder.kind`, a composition root's index kind)
stands for, in each composition root, and the factory that builds it.

A factory imports its adapter when it is called, so that a root loads only the adapters it uses (the functions
never import LanceDB or MiniLM). A kind a root does not register is refused with a ConfigError naming the kinds
it has. Adding a target, a source or an embedder: its adapter module, then one line here per root it runs in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generic, TypeVar

from catalog_sync.bootstrap.settings import PipelineSettings, required
from catalog_sync.models.config import CatalogConfig, ConfigError, EmbedderKind, EmbedderSettings, IndexKind
from catalog_sync.ports import Embedder, VectorIndex

ContextT = TypeVar("ContextT")
PartT = TypeVar("PartT")


class Registry(Generic[ContextT, PartT]):
    """Factories of one part (an embedder, a vector index) in one composition root, by kind name."""

    def __init__(self, part: str, root: str, factories: Mapping[str, Callable[[ContextT], PartT]]) -> None:
        self.part = part
        self.root = root
        self._factories = dict(factories)

    @property
    def kinds(self) -> list[str]:
        return sorted(self._factories)

    def build(self, kind: str, context: ContextT, *, catalog: str | None = None) -> PartT:
        factory = self._factories.get(kind)
        if factory is None:
            owner = f"catalog {catalog!r}: " if catalog else ""
            raise ConfigError(
                f"{owner}the {kind} {self.part} does not run in {self.root} (it runs: {', '.join(self.kinds)})"
            )
        return factory(context)


# ---------------------------------------------------------------- the embedded default (the CLI)


@dataclass(frozen=True)
class LocalIndexContext:
    """What the local composition root gives an index factory."""

    config: CatalogConfig
    directory: Path  # the catalog's state directory
    dimension: int | None  # None: the index as stored, for a reader that embeds nothing
    # A reader must not rebuild an index whose schema no longer fits; a writer may, and is told.
    writable: bool
    on_rebuilt: Callable[[], None]


def _hashing(settings: EmbedderSettings) -> Embedder:
    from catalog_sync.adapters.embedders.hashing import HashingEmbedder

    return HashingEmbedder(settings.hashing_dimensions)


def _static_minilm(settings: EmbedderSettings) -> Embedder:
    from catalog_sync.adapters.embedders.static_minilm import StaticMiniLMEmbedder

    return StaticMiniLMEmbedder()


def _minilm(settings: EmbedderSettings) -> Embedder:
    from catalog_sync.adapters.embedders.minilm import MiniLMEmbedder

    return MiniLMEmbedder(batch_size=min(settings.batch_size, 128))


def _openai(settings: EmbedderSettings) -> Embedder:
    from catalog_sync.adapters.embedders.openai import OpenAIEmbedder

    # The API key comes from OPENAI_API_KEY.
    return OpenAIEmbedder(
        model=settings.openai_model, dimensions=settings.openai_dimensions, base_url=settings.openai_base_url
    )


def _lancedb(context: LocalIndexContext) -> VectorIndex:
    from catalog_sync.adapters.local.lance_index import LanceVectorIndex

    index = LanceVectorIndex(
        context.directory / "index.lance", context.config, context.dimension, rebuild_on_mismatch=context.writable
    )
    if index.rebuilt:
        context.on_rebuilt()
    return index


LOCAL_EMBEDDERS: Registry[EmbedderSettings, Embedder] = Registry(
    "embedder",
    "the local CLI",
    {
        EmbedderKind.HASHING: _hashing,
        EmbedderKind.MINILM_STATIC: _static_minilm,
        EmbedderKind.MINILM: _minilm,
        EmbedderKind.OPENAI: _openai,
    },
)
LOCAL_INDEXES: Registry[LocalIndexContext, VectorIndex] = Registry(
    "index", "the local CLI", {IndexKind.LANCEDB: _lancedb}
)


def build_embedder(settings: EmbedderSettings) -> Embedder:
    """The embedder a catalog's settings (or the --embedder flag) ask for, in the local CLI."""
    return LOCAL_EMBEDDERS.build(settings.kind, settings)


def settings_producing(model_id: str, base: EmbedderSettings) -> EmbedderSettings | None:
    """The settings of the local embedder whose model id is `model_id`: `base` (a config's) with the first kind
    whose embedder, built from them, has that id; None when none has. For a state that recorded only the model id
    of its index. Building loads no model (every local embedder loads its model on first use)."""
    for kind in LOCAL_EMBEDDERS.kinds:
        candidate = base.model_copy(update={"kind": EmbedderKind(kind)})
        if build_embedder(candidate).model_id == model_id:
            return candidate
    return None


# ---------------------------------------------------------------- the deployed pipeline (the functions)


@dataclass(frozen=True)
class PipelineContext:
    """What the AWS composition root gives a factory: the catalog, the deployment's settings, its secrets."""

    config: CatalogConfig
    settings: PipelineSettings
    secret: Callable[[str], str]  # a secret's value by name (cached)


def _pipeline_openai(context: PipelineContext) -> Embedder:
    from catalog_sync.adapters.embedders.openai import OpenAIEmbedder, openai_rates
    from catalog_sync.resilience.pacing import shared_pacer

    embedder, settings = context.config.embedder, context.settings
    if not settings.openai_secret:
        raise ConfigError(f"catalog {context.config.name!r} embeds with OpenAI but no OpenAI secret is configured")
    # The limits are per model: one pacer per model in the process, whichever catalogs embed with it.
    pacer = shared_pacer(
        ("openai", embedder.openai_base_url, embedder.openai_model),
        openai_rates(settings.pace_openai_requests_per_minute, settings.pace_openai_tokens_per_minute),
        start_full=True,
    )
    return OpenAIEmbedder(
        model=embedder.openai_model,
        dimensions=embedder.openai_dimensions,
        base_url=embedder.openai_base_url,
        api_key=context.secret(settings.openai_secret),
        pacer=pacer,
    )


def _pipeline_hashing(context: PipelineContext) -> Embedder:
    return _hashing(context.config.embedder)  # tests only: not semantic


def _pinecone(context: PipelineContext) -> VectorIndex:
    from catalog_sync.adapters.pinecone.index import PineconeVectorIndex
    from catalog_sync.adapters.pinecone.limits import pinecone_rates
    from catalog_sync.resilience.pacing import shared_pacer
    from catalog_sync.resilience.policy import PINECONE_WRITE_RETRY

    config, settings = context.config, context.settings
    host = required(settings.pinecone_host, "pinecone_host")
    # The limits are per namespace: one pacer per namespace in the process, shared by every index instance and
    # every update thread. A new process starts with its windows full (see Pacer).
    pacer = shared_pacer(
        ("pinecone", host, config.index_namespace),
        pinecone_rates(settings.pace_pinecone_writes_per_second, settings.pace_pinecone_upsert_bytes_per_second),
        start_full=True,
    )
    return PineconeVectorIndex(
        host=host,
        namespace=config.index_namespace,
        metadata_fields=list(config.metadata),
        api_key=context.secret(required(settings.pinecone_secret, "pinecone_secret")),
        pacer=pacer,
        retry=replace(PINECONE_WRITE_RETRY, attempts=settings.pinecone_write_attempts),
    )


PIPELINE_EMBEDDERS: Registry[PipelineContext, Embedder] = Registry(
    "embedder",
    "the AWS pipeline",
    {EmbedderKind.OPENAI: _pipeline_openai, EmbedderKind.HASHING: _pipeline_hashing},
)
PIPELINE_INDEXES: Registry[PipelineContext, VectorIndex] = Registry(
    "index", "the AWS pipeline", {IndexKind.PINECONE: _pinecone}
)
