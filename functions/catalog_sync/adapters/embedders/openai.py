"""OpenAI embeddings through the official SDK, packed into as few requests as the API's limits allow.

With a `Pacer`, every request attempt the SDK sends (its retries included: they pass through its HTTP
client's request hook) first waits for room within the process's share of the requests and tokens per
minute. Tokens are counted from the request's own inputs as `pacing_tokens` estimates them, and requests are
packed small enough that several fit the token window.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import orjson

from catalog_sync.adapters.embedders.minilm import EmbedderUnavailable
from catalog_sync.ports import Vectors
from catalog_sync.resilience.pacing import Pacer, Rate
from catalog_sync.resilience.policy import OPENAI_MAX_RETRIES

# Documented limits of the embeddings endpoint.
MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000
# Without a tokenizer on hand, count tokens pessimistically: one token per three UTF-8 bytes, plus one.
# English text averages about four characters per token, so this stays under the limit.
BYTES_PER_TOKEN_ESTIMATE = 3
# For pacing: OpenAI's rule of thumb (about four characters a token in English), on UTF-8 bytes (never fewer
# than characters), rounded up per input. The TPM share can be lowered for text that tokenises more densely.
PACING_BYTES_PER_TOKEN = 4
# A request carries at most this fraction of the token window, so that several fit it: a request as large as
# the window would leave the rest of the window unused while it ages out.
REQUESTS_PER_TOKEN_WINDOW = 8
# The pacer's rates.
REQUESTS = "requests"
TOKENS = "tokens"


def estimate_tokens(text: str) -> int:
    return len(text.encode()) // BYTES_PER_TOKEN_ESTIMATE + 1


def pacing_tokens(texts: Sequence[str]) -> int:
    """The tokens a request of these inputs is counted as against the tokens-per-minute limit."""
    return sum(math.ceil(len(text.encode()) / PACING_BYTES_PER_TOKEN) for text in texts)


def openai_rates(requests_per_minute: float | None, tokens_per_minute: float | None) -> dict[str, Rate | None]:
    """The model's limits as a pacer's rates, per minute (None: not limited)."""
    return {
        REQUESTS: Rate(requests_per_minute, 60.0) if requests_per_minute else None,
        TOKENS: Rate(tokens_per_minute, 60.0) if tokens_per_minute else None,
    }


def request_costs(body: bytes) -> dict[str, float]:
    """What an embeddings request body costs against the rates: one request, and its inputs' tokens."""
    try:
        inputs = orjson.loads(body).get("input", [])
    except (orjson.JSONDecodeError, AttributeError):
        return {REQUESTS: 1.0}
    if isinstance(inputs, str):
        inputs = [inputs]
    tokens = 0
    for item in inputs:
        # Text, or inputs given as token ids (one list of ids, or a list of them).
        tokens += pacing_tokens([item]) if isinstance(item, str) else (len(item) if isinstance(item, list) else 1)
    return {REQUESTS: 1.0, TOKENS: float(tokens)}


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
        max_retries: int = OPENAI_MAX_RETRIES,
        client: Any = None,
        pacer: Pacer | None = None,
    ) -> None:
        """`pacer`: shared by everything that embeds with this model in the process (see `shared_pacer`); None:
        not paced. With a `client` given, its requests are paced before each call (its own retries are not)."""
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
        self.pacer = pacer
        self._paced_by_client = False
        self.max_request_tokens = MAX_TOKENS_PER_REQUEST
        capacity = pacer.capacity(TOKENS) if pacer is not None else None
        if capacity is not None:
            self.max_request_tokens = max(1, min(MAX_TOKENS_PER_REQUEST, int(capacity) // REQUESTS_PER_TOKEN_WINDOW))

    def _pace_request(self, request: Any) -> None:
        # The HTTP client's request hook: every attempt, retries included.
        if self.pacer is not None and request.method == "POST" and request.url.path.endswith("/embeddings"):
            self.pacer.acquire(request_costs(request.content))

    def request_slices(self, texts: Sequence[str]) -> Iterator[tuple[int, int]]:
        """The (start, end) slices of `texts` the embedder sends one request each."""
        return pack_requests(texts, max_tokens=self.max_request_tokens)

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
            # The SDK retries 429 and 5xx with exponential backoff and honours Retry-After (resilience/policy.py).
            http_client = None
            if self.pacer is not None:
                from openai import DefaultHttpxClient

                http_client = DefaultHttpxClient(event_hooks={"request": [self._pace_request]})
                self._paced_by_client = True
            self._client = OpenAI(
                api_key=key, base_url=self._base_url, max_retries=self._max_retries, http_client=http_client
            )
        return self._client

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start, end in self.request_slices(texts):
            kwargs: dict[str, Any] = {"model": self.model, "input": list(texts[start:end])}
            if self.requested_dimensions:
                kwargs["dimensions"] = self.requested_dimensions
            client = self._get_client()
            if self.pacer is not None and not self._paced_by_client:
                self.pacer.acquire({REQUESTS: 1.0, TOKENS: float(pacing_tokens(kwargs["input"]))})
            response = client.embeddings.create(**kwargs)
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
