"""The shipped static model: loads offline from the package and ranks like the transformer it came from."""

from __future__ import annotations

import numpy as np
import pytest

from catalog_sync.adapters.embedders.static_minilm import DIMENSION, MODEL_DIR, StaticMiniLMEmbedder


@pytest.fixture(scope="module")
def embedder() -> StaticMiniLMEmbedder:
    return StaticMiniLMEmbedder()


def test_model_files_ship_with_the_package():
    assert (MODEL_DIR / "model.safetensors").stat().st_size > 10_000_000
    assert (MODEL_DIR / "tokenizer.json").exists()


def test_embeds_normalised_float32_vectors(embedder: StaticMiniLMEmbedder):
    vectors = embedder.embed(["wireless noise-cancelling headphones", "espresso machine"])
    assert vectors.shape == (2, DIMENSION) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    assert embedder.embed([]).shape == (0, DIMENSION)


def test_semantic_neighbours(embedder: StaticMiniLMEmbedder):
    products = [
        "Bluetooth over-ear headphones with active noise cancellation",
        "Drip coffee maker with a thermal carafe",
        "Trail running shoes with a grippy outsole",
    ]
    queries = ["quiet headphones for a long flight", "brew coffee for a crowd", "shoes for muddy trails"]
    scores = embedder.embed(queries) @ embedder.embed(products).T
    assert list(scores.argmax(axis=1)) == [0, 1, 2]
