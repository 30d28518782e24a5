"""The Embedder port's contract, run on every adapter: the hashing test embedder, the local MiniLM models (the
transformer and its static distillate, from installed packages, no network), and OpenAI through its SDK against
the local double of the embeddings endpoint. A new embedder joins with one fixture param.

An embedder gives one float32 row of `dimension` values per text, in order, the same for the same text whatever
else is in the call; an empty call gives an empty array of that width; `model_id` and `label` name it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from catalog_sync.adapters.embedders.minilm import MiniLMEmbedder
from catalog_sync.adapters.embedders.openai import OpenAIEmbedder
from catalog_sync.adapters.embedders.static_minilm import StaticMiniLMEmbedder
from catalog_sync.ports import Embedder
from tests.doubles.memory import RecordingEmbedder
from tests.doubles.openai_server import OpenAIDouble

TEXTS = ["wireless noise-cancelling headphones", "espresso machine with a steam wand", "Ünïcode ✓ 中文", ""]


@pytest.fixture(scope="module", params=["hashing", "minilm", "minilm-static", "openai", "memory"])
def embedder(request: pytest.FixtureRequest) -> Iterator[Embedder]:
    if request.param == "memory":  # the services' fake (tests/doubles/memory.py), held to the same contract
        yield RecordingEmbedder()
    elif request.param == "hashing":
        yield HashingEmbedder(64)
    elif request.param == "minilm":
        yield MiniLMEmbedder()
    elif request.param == "minilm-static":
        yield StaticMiniLMEmbedder()
    else:
        with OpenAIDouble() as double:
            yield OpenAIEmbedder(
                model="text-embedding-3-small", dimensions=8, api_key="sk-test", base_url=double.base_url
            )


def test_it_names_itself(embedder: Embedder):
    assert embedder.model_id and isinstance(embedder.model_id, str)
    assert embedder.label and isinstance(embedder.label, str)
    assert embedder.dimension > 0


def test_one_float32_row_per_text(embedder: Embedder):
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), embedder.dimension)
    assert vectors.dtype == np.float32
    assert np.isfinite(vectors).all()


def test_an_empty_call_gives_an_empty_array_of_the_width(embedder: Embedder):
    vectors = embedder.embed([])
    assert vectors.shape == (0, embedder.dimension) and vectors.dtype == np.float32


def test_a_text_gets_the_same_vector_in_any_call(embedder: Embedder):
    alone = embedder.embed([TEXTS[1]])[0]
    together = embedder.embed(TEXTS)
    reversed_ = embedder.embed(TEXTS[::-1])
    np.testing.assert_allclose(together[1], alone, atol=1e-5)
    np.testing.assert_allclose(reversed_[::-1], together, atol=1e-5)
    assert not np.allclose(together[0], together[1])


def test_a_text_with_words_gets_a_unit_length_vector(embedder: Embedder):
    # The indexes score by cosine or dot product: every text with words must come back normalised.
    with_words = [text for text in TEXTS if text]
    norms = np.linalg.norm(embedder.embed(with_words), axis=1)
    np.testing.assert_allclose(norms, np.ones(len(with_words)), atol=1e-3)
