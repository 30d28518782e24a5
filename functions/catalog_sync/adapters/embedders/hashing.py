"""A deterministic hashing embedder, FOR TESTS AND BENCHMARKS ONLY: it has no semantic understanding.

Each word and word bigram is hashed (CRC-32) into one of `dimension` buckets with a sign; the vector is
L2-normalised. Texts sharing words land near each other, which is enough to test the pipeline end to end
without a model. It counts its calls so tests can assert exactly what was embedded.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from catalog_sync.ports import Vectors

_WORD = re.compile(r"\w+")


class HashingEmbedder:
    label = "hashing (deterministic test embedder, not semantic)"

    def __init__(self, dimension: int = 384) -> None:
        self.dimension = dimension
        self.model_id = f"catalog-sync/hashing-v1-{dimension}"
        self.calls = 0
        self.texts_embedded = 0

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        crc32 = zlib.crc32
        dimension = self.dimension
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            tokens = [word.encode() for word in words]
            tokens += [f"{a} {b}".encode() for a, b in pairwise(words)]
            vector = out[row]
            for token in tokens:
                code = crc32(token)
                vector[code % dimension] += 1.0 if code & 0x80000000 else -1.0
            norm = float(np.linalg.norm(vector))
            if norm:
                vector /= norm
        return out
