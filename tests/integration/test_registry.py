"""The registry of kinds: every kind a config may name is built by the roots it runs in, and any other is refused
with the kinds that root has."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from catalog_sync.adapters.local.lance_index import LanceVectorIndex
from catalog_sync.adapters.pinecone.index import PineconeVectorIndex
from catalog_sync.bootstrap.local import LocalWorkspace
from catalog_sync.bootstrap.registry import (
    LOCAL_EMBEDDERS,
    LOCAL_INDEXES,
    PIPELINE_EMBEDDERS,
    PIPELINE_INDEXES,
    PipelineContext,
    Registry,
    build_embedder,
    settings_producing,
)
from catalog_sync.bootstrap.settings import PipelineSettings
from catalog_sync.models.config import ConfigError, EmbedderKind, EmbedderSettings, IndexKind
from catalog_sync.models.index import IndexEmbedder
from tests.conftest import make_config


def settings(**overrides: object) -> PipelineSettings:
    values: dict[str, object] = {
        "table_name": "t",
        "bucket": "b",
        "queue_url": "q",
        "priority_queue_url": "p",
        "pinecone_host": "https://index.example",
        "pinecone_secret": "pinecone",
    }
    values.update(overrides)
    return PipelineSettings(**values)  # type: ignore[arg-type]


def test_the_cli_runs_every_embedder_kind_and_lancedb():
    assert set(LOCAL_EMBEDDERS.kinds) == set(EmbedderKind)
    assert LOCAL_INDEXES.kinds == [IndexKind.LANCEDB]
    embedder = build_embedder(EmbedderSettings(kind=EmbedderKind.HASHING, hashing_dimensions=32))
    assert isinstance(embedder, HashingEmbedder) and embedder.dimension == 32


def test_the_local_index_is_built_by_kind_and_a_rebuild_re_sends_everything(tmp_path: Path):
    workspace = LocalWorkspace(tmp_path, make_config(), HashingEmbedder(16))
    assert isinstance(workspace.index, LanceVectorIndex) and not workspace.notes
    workspace.close()
    rebuilt = LocalWorkspace(tmp_path, make_config(), HashingEmbedder(32))
    assert isinstance(rebuilt.index, LanceVectorIndex)
    assert rebuilt.notes and "rebuilt" in rebuilt.notes[0]
    rebuilt.close()


def test_the_pipeline_runs_openai_hashing_and_pinecone():
    assert set(PIPELINE_EMBEDDERS.kinds) == {EmbedderKind.OPENAI, EmbedderKind.HASHING}
    assert PIPELINE_INDEXES.kinds == [IndexKind.PINECONE]
    context = PipelineContext(config=make_config(), settings=settings(), secret=lambda name: f"{name}-key")
    index = PIPELINE_INDEXES.build(IndexKind.PINECONE, context)
    assert isinstance(index, PineconeVectorIndex) and index.namespace == "shop"


def test_a_kind_a_root_does_not_run_is_a_clear_error():
    config = make_config(embedder={"kind": "minilm"})
    context = PipelineContext(config=config, settings=settings(), secret=lambda name: name)
    with pytest.raises(ConfigError, match=r"catalog 'shop': the minilm embedder does not run in the AWS pipeline"):
        PIPELINE_EMBEDDERS.build(config.embedder.kind, context, catalog=config.name)
    with pytest.raises(ConfigError, match=r"the qdrant index does not run in the local CLI \(it runs: lancedb\)"):
        LOCAL_INDEXES.build("qdrant", None)  # type: ignore[arg-type]


def test_openai_in_the_pipeline_needs_its_secret():
    context = PipelineContext(
        config=make_config(embedder={"kind": "openai"}), settings=settings(), secret=lambda name: name
    )
    with pytest.raises(ConfigError, match="no OpenAI secret is configured"):
        PIPELINE_EMBEDDERS.build(EmbedderKind.OPENAI, context)


def test_a_registry_line_is_all_a_new_kind_needs():
    registry: Registry[int, str] = Registry("thing", "a test", {"twice": lambda n: str(2 * n)})
    assert registry.build("twice", 21) == "42"


@pytest.mark.parametrize(
    "made_with",
    [
        EmbedderSettings(kind=EmbedderKind.HASHING, hashing_dimensions=32),
        EmbedderSettings(kind=EmbedderKind.MINILM),
        EmbedderSettings(kind=EmbedderKind.MINILM_STATIC),
        EmbedderSettings(kind=EmbedderKind.OPENAI),
        EmbedderSettings(kind=EmbedderKind.OPENAI, openai_model="text-embedding-3-large", openai_dimensions=256),
    ],
    ids=lambda settings: f"{settings.kind.value}-{settings.openai_model}-{settings.openai_dimensions}",
)
def test_the_recorded_embedder_builds_the_embedder_that_made_the_index(made_with: EmbedderSettings):
    """Building an embedder loads no model, so every kind goes round: settings -> embedder -> what the state
    records -> the same embedder, whatever the config says now."""
    made = build_embedder(made_with)
    stored = IndexEmbedder.of(made_with, dimension=made.dimension).model_dump_json()
    recorded = IndexEmbedder.model_validate_json(stored)
    config_now = EmbedderSettings(
        kind=EmbedderKind.MINILM, hashing_dimensions=7, openai_model="text-embedding-ada-002", openai_dimensions=3
    )
    again = build_embedder(recorded.applied_to(config_now))
    assert (type(again), again.model_id, again.dimension) == (type(made), made.model_id, made.dimension)
    # A state that kept only the model id: the kind that makes it, with the config's settings.
    found = settings_producing(made.model_id, made_with.model_copy(update={"kind": EmbedderKind.MINILM}))
    assert found is not None and found.kind is made_with.kind
    assert build_embedder(found).model_id == made.model_id


def test_a_model_id_no_local_kind_makes_has_no_settings():
    assert settings_producing("catalog-sync/hashing-v1-384", EmbedderSettings()) is None
    # The dimensions are part of the model: the config's other hashing dimension does not make it.
    assert settings_producing("catalog-sync/hashing-v2-384", EmbedderSettings(hashing_dimensions=64)) is None


def test_a_recorded_embedder_is_described_by_what_makes_its_vectors():
    large = EmbedderSettings(kind=EmbedderKind.OPENAI, openai_model="text-embedding-3-large", openai_dimensions=256)
    assert IndexEmbedder.of(large, dimension=256).describe() == "openai (text-embedding-3-large, 256 dimensions)"
    assert IndexEmbedder.of(EmbedderSettings(), dimension=384).describe() == "minilm (384 dimensions)"
    # Only the kind's own settings are kept: another kind's are no part of its vectors.
    assert IndexEmbedder.of(large.model_copy(update={"kind": EmbedderKind.MINILM}), dimension=384).settings == {}
