"""The OpenAI adapter on the real `openai` SDK, against a local double of the embeddings endpoint."""

from __future__ import annotations

import numpy as np
import openai
import pytest

from catalog_sync.adapters.embedders.openai import OpenAIEmbedder, pack_requests
from tests.doubles.openai_server import OpenAIDouble, fake_vector


@pytest.fixture
def double():
    with OpenAIDouble() as server:
        yield server


def embedder(double: OpenAIDouble, **kwargs: object) -> OpenAIEmbedder:
    return OpenAIEmbedder(
        model="text-embedding-3-small", dimensions=8, api_key="sk-test", base_url=double.base_url, **kwargs
    )


def test_request_shape_and_vectors(double: OpenAIDouble):
    vectors = embedder(double).embed(["red shoe", "blue hat"])
    assert len(double.requests) == 1
    request = double.requests[0]
    assert request["headers"]["authorization"] == "Bearer sk-test"
    assert request["body"]["model"] == "text-embedding-3-small"
    assert request["body"]["input"] == ["red shoe", "blue hat"]
    assert request["body"]["dimensions"] == 8
    np.testing.assert_allclose(vectors[1], fake_vector("blue hat", 8), rtol=1e-6)


def test_batches_stay_within_the_input_limit(double: OpenAIDouble):
    texts = [f"product {i}" for i in range(5000)]
    vectors = embedder(double).embed(texts)
    sizes = [len(r["body"]["input"]) for r in double.requests]
    assert sizes == [2048, 2048, 904]
    np.testing.assert_allclose(vectors[4999], fake_vector("product 4999", 8), rtol=1e-6)


def test_token_budget_splits_requests():
    texts = ["x" * 3000] * 10  # ~1,000 estimated tokens each
    assert list(pack_requests(texts, max_tokens=2500)) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert list(pack_requests(["a"] * 5, max_inputs=2)) == [(0, 2), (2, 4), (4, 5)]
    assert list(pack_requests([])) == []


def test_retries_429_and_500_then_succeeds(double: OpenAIDouble):
    double.failures.extend([429, 500])
    vectors = embedder(double).embed(["red shoe"])
    assert len(double.requests) == 3
    assert [r["headers"].get("x-stainless-retry-count") for r in double.requests] == ["0", "1", "2"]
    np.testing.assert_allclose(vectors[0], fake_vector("red shoe", 8), rtol=1e-6)


def test_persistent_rate_limit_raises(double: OpenAIDouble):
    double.failures.extend([429] * 10)
    with pytest.raises(openai.RateLimitError):
        embedder(double, max_retries=2).embed(["red shoe"])
    assert len(double.requests) == 3


def test_model_id_names_model_and_dimensions_without_a_key(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert OpenAIEmbedder(model="text-embedding-3-large").model_id == "openai/text-embedding-3-large@3072"
    assert (
        OpenAIEmbedder(model="text-embedding-3-small", dimensions=256).model_id == "openai/text-embedding-3-small@256"
    )
