"""The OpenAI adapter on the real `openai` SDK, against a local double of the embeddings endpoint."""

from __future__ import annotations

import numpy as np
import openai
import pytest

from catalog_sync.adapters.embedders.openai import (
    REQUESTS,
    TOKENS,
    OpenAIEmbedder,
    openai_rates,
    pacing_tokens,
    pack_requests,
)
from catalog_sync.resilience.pacing import Pacer
from tests.doubles.clock import FakeClock
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


def test_pacing_tokens_count_four_bytes_a_token_rounded_up_per_input():
    assert pacing_tokens(["abcd", "abcde", ""]) == 1 + 2 + 0
    assert pacing_tokens(["é" * 4]) == 2  # 8 bytes: never fewer tokens than characters / 4


def test_every_attempt_is_paced_the_sdks_retries_included(double: OpenAIDouble):
    clock = FakeClock()
    pacer = Pacer(openai_rates(2, 100_000), clock=clock, sleep=clock.sleep)
    paced = embedder(double, pacer=pacer)
    texts = ["red shoe", "blue hat with a feather"]
    double.failures.extend([429])
    paced.embed(texts)
    # Two attempts reached the double, and both went through the pacer with the request's tokens.
    assert len(double.requests) == 2
    assert pacer.taken == {REQUESTS: 2, TOKENS: 2 * pacing_tokens(texts)}
    assert clock.now == 0.0
    # Two requests a minute: the third waits for the first to age out.
    paced.embed(["green sock"])
    assert clock.now == pytest.approx(60.0)
    assert len(double.requests) == 3


def test_requests_are_packed_to_an_eighth_of_the_token_share(double: OpenAIDouble):
    clock = FakeClock()
    pacer = Pacer(openai_rates(None, 8_000), clock=clock, sleep=clock.sleep)
    paced = embedder(double, pacer=pacer)
    assert paced.max_request_tokens == 1_000
    texts = [f"product {i:03d} " + "x" * 88 for i in range(100)]  # 100 bytes: 34 tokens packed, 25 paced
    paced.embed(texts)
    sizes = [len(r["body"]["input"]) for r in double.requests]
    assert sum(sizes) == 100 and max(sizes) == 29  # 29 x 34 <= 1,000
    # 2,500 paced tokens against 8,000 a minute: no wait.
    assert pacer.taken[TOKENS] == 2_500 and clock.now == 0.0
    # 10,000 more: 5,500 fit what is left of the minute, the rest waits for the first requests to age out.
    paced.embed(texts * 4)
    assert clock.now == pytest.approx(60.0)
    assert pacer.taken[TOKENS] == 12_500


def test_an_injected_client_is_paced_call_by_call():
    class Embeddings:
        def create(self, **kwargs: object) -> object:
            inputs = kwargs["input"]
            assert isinstance(inputs, list)
            data = [type("D", (), {"embedding": [0.0] * 8, "index": i})() for i in range(len(inputs))]
            return type("R", (), {"data": data})()

    clock = FakeClock()
    pacer = Pacer(openai_rates(1, None), clock=clock, sleep=clock.sleep)
    client = type("C", (), {"embeddings": Embeddings()})()
    paced = OpenAIEmbedder(model="text-embedding-3-small", dimensions=8, client=client, pacer=pacer)
    paced.embed(["a"])
    paced.embed(["b"])
    assert pacer.taken[REQUESTS] == 2 and clock.now == pytest.approx(60.0)
