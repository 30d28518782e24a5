"""What the embedded default's model embedders share: the model is loaded on first use, from files the project
ships (never from a model hub), and each call's texts are counted."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from catalog_sync.ports import Vectors


class EmbedderUnavailable(RuntimeError):
    """The embedding model or its libraries are not installed."""


class LocalModelEmbedder:
    dimension: int

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self._model: Any = None
        self.texts_embedded = 0

    def _open_model(self) -> Any:
        """The loaded model; EmbedderUnavailable when it or its libraries are missing."""
        raise NotImplementedError

    def _encode(self, model: Any, texts: list[str]) -> Vectors:
        """Unit-length float32 vectors, one row per text."""
        raise NotImplementedError

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in a package: never reach for a hub
            self._model = self._open_model()
        return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._encode(self._load(), list(texts))
        self.texts_embedded += len(texts)
        return vectors
