"""OpenAI embeddings through the official SDK, packed into as few requests as the API's limits allow."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from catalog_sync.adapters.embedders.minilm import EmbedderUnavailable
from catalog_sync.ports import Vectors

# Documented limits of the embeddings endpoint.
MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000
# Without a tokenizer on hand, count tokens pessimistically: one token per three UTF-8 bytes, plus one.
# English text averages about four characters per token, so this stays under the limit.
BYTES_PER_TOKEN_ESTIMATE = 3


def estimate_tokens(text: str) -> int:
    return len(text.encode()) // BYTES_PER_TOKEN_ESTIMATE + 1


def pack_requests(
    texts: Sequence[str],
    *,
    max_inputs: int = MAX_INPUTS_PER_REQUEST,
    max_tokens: int = MAX_TOKENS_PER_REQUEST,
) -> Iterator[tuple[int, int]]:
    """Split texts into consecutive (start, end) slices within the per-request input and token limits."""
    start = 0
    tokens = 0
    for position, text in enumerate(texts):
        cost = estimate_tokens(text)
        if position > start and (position - start >= max_inputs or tokens + cost > max_tokens):
            yield start, position
            start, tokens = position, 0
        tokens += cost
    if start < len(texts):
        yield start, len(texts)


class OpenAIEmbedder:
    label = "OpenAI embeddings"

    def __init__(
        self,
        *,
        model: str = "text-embedding-3-small",
        dimensions: int | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 6,
        client: Any = None,
    ) -> None:
        self.model = model
        self.requested_dimensions = dimensions
        self.dimension = dimensions or {"text-embedding-3-large": 3072}.get(model, 1536)
        self.model_id = f"openai/{model}@{self.dimension}"
        self.requests = 0
        self.texts_embedded = 0
        self._api_key = api_key
        self._base_url = base_url
        self._max_retries = max_retries
        self._client = client

    def _get_client(self) -> Any:
        # Built on first use, so that commands which only need the model's name need no key.
        if self._client is None:
            try:
                from openai import OpenAI
            except ImportError as exc:
                raise EmbedderUnavailable("the OpenAI embedder needs: pip install 'catalog-sync[openai]'") from exc
            key = self._api_key or os.environ.get("OPENAI_API_KEY")
            if not key:
                raise EmbedderUnavailable("the OpenAI embedder needs an API key (OPENAI_API_KEY)")
            # The SDK retries 429 and 5xx with exponential backoff and honours Retry-After.
            self._client = OpenAI(api_key=key, base_url=self._base_url, max_retries=self._max_retries)
        return self._client

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start, end in pack_requests(texts):
            kwargs: dict[str, Any] = {"model": self.model, "input": list(texts[start:end])}
            if self.requested_dimensions:
                kwargs["dimensions"] = self.requested_dimensions
            response = self._get_client().embeddings.create(**kwargs)
            self.requests += 1
            if len(response.data) != end - start:
                raise RuntimeError(f"OpenAI returned {len(response.data)} embeddings for {end - start} inputs")
            for item in response.data:
                vector = item.embedding
                if isinstance(vector, str):
                    vector = np.frombuffer(base64.b64decode(vector), dtype="<f4")
                if len(vector) != self.dimension:
                    raise RuntimeError(f"OpenAI returned {len(vector)} dimensions, expected {self.dimension}")
                out[start + item.index] = vector
        self.texts_embedded += len(texts)
        return out
