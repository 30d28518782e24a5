"""A deterministic hashing embedder, FOR TESTS AND BENCHMARKS ONLY: it has no semantic understanding.

Each word is hashed (CRC-32) into one of `dimension` buckets with a sign, and the vector is L2-normalised.
Texts sharing words land near each other, which is enough to test the pipeline end to end without a model.
It counts its calls so that tests can assert exactly what was embedded.
"""

from __future__ import annotations

import string
import zlib
from collections.abc import Sequence

import numpy as np

from catalog_sync.ports import Vectors

# Punctuation becomes a space, so "shoe," and "shoe" are the same word.
_TO_SPACES = str.maketrans(dict.fromkeys(string.punctuation, " "))


class HashingEmbedder:
    label = "hashing (deterministic test embedder, not semantic)"

    def __init__(self, dimension: int = 384) -> None:
        self.dimension = dimension
        self.model_id = f"catalog-sync/hashing-v2-{dimension}"
        self.calls = 0
        self.texts_embedded = 0

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        self.texts_embedded += len(texts)
        dimension = self.dimension
        codes: list[int] = []
        rows: list[int] = []
        for row, text in enumerate(texts):
            hashed = list(map(zlib.crc32, map(str.encode, text.lower().translate(_TO_SPACES).split())))
            codes.extend(hashed)
            rows.extend([row] * len(hashed))
        code_array = np.asarray(codes, dtype=np.uint64)
        signs = np.where(code_array & 0x80000000, 1.0, -1.0)
        buckets = np.asarray(rows, dtype=np.int64) * dimension + (code_array % dimension).astype(np.int64)
        flat = np.bincount(buckets, weights=signs, minlength=len(texts) * dimension)
        out = flat.reshape(len(texts), dimension).astype(np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out
