"""The local models, loaded from installed packages with no network: the transformer and its static distillate."""

from __future__ import annotations

import numpy as np
import pytest

from catalog_sync.adapters.embedders.minilm import MiniLMEmbedder
from catalog_sync.adapters.embedders.static_minilm import MODEL_DIR, StaticMiniLMEmbedder
from catalog_sync.ports import Embedder


@pytest.fixture(scope="module", params=[MiniLMEmbedder, StaticMiniLMEmbedder], ids=["minilm", "minilm-static"])
def embedder(request: pytest.FixtureRequest) -> Embedder:
    return request.param()


def test_embeds_normalised_float32_vectors(embedder: Embedder):
    vectors = embedder.embed(["wireless noise-cancelling headphones", "espresso machine with a steam wand"])
    assert vectors.shape == (2, embedder.dimension) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    assert embedder.embed([]).shape == (0, embedder.dimension)


def test_semantic_neighbours(embedder: Embedder):
    products = [
        "Bluetooth over-ear headphones with active noise cancellation",
        "Drip coffee maker with a thermal carafe",
        "Trail running shoes with a grippy outsole",
    ]
    queries = ["quiet headphones for a long flight", "brew coffee for a crowd", "shoes for muddy trails"]
    scores = embedder.embed(queries) @ embedder.embed(products).T
    assert list(scores.argmax(axis=1)) == [0, 1, 2]


def test_the_static_model_ships_with_the_package():
    assert (MODEL_DIR / "model.safetensors").stat().st_size > 10_000_000
    assert (MODEL_DIR / "tokenizer.json").exists()
