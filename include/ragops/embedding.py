"""Embedding models: load once per task, encode in batches, report the model's limits.

Models are referenced by a local path (the base model's package path, or a downloaded model
artifact). Nothing is fetched from a model hub.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class Embedder:
    """A sentence-transformers model with L2-normalised float32 output (cosine = dot product)."""

    def __init__(self, model_path: str | os.PathLike[str], *, batch_size: int = 64, device: str | None = None):
        path = Path(model_path)
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise FileNotFoundError(f"embedding model path {str(path)!r} holds no sentence-transformers model")
        self.model_path = str(path)
        self.batch_size = batch_size
        self.device = device or ("cuda" if _cuda_available() else "cpu")

    @cached_property
    def model(self) -> Any:
        from sentence_transformers import SentenceTransformer

        log.info("loading embedding model %s on %s", self.model_path, self.device)
        return SentenceTransformer(self.model_path, device=self.device, local_files_only=True)

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None, dim: int | None = None) -> np.ndarray:
        """Encodes texts; ``dim`` truncates Matryoshka-style (then re-normalises)."""
        if len(texts) == 0:
            return np.zeros((0, dim or self.dimension), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=batch_size or self.batch_size,
                                    convert_to_numpy=True, normalize_embeddings=True,
                                    show_progress_bar=False)
        vectors = np.asarray(vectors, dtype=np.float32)
        if dim is not None and dim < vectors.shape[1]:
            vectors = vectors[:, :dim]
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
        return vectors


def load_tokenizer(model_path: str | os.PathLike[str]) -> Any:
    """Just the tokenizer (no weights): for token-aware chunking without loading the model."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)


def model_max_seq_length(model_path: str | os.PathLike[str], default: int = 256) -> int:
    """The sequence limit sentence-transformers applies (sentence_bert_config.json), not the
    architecture's position limit: a chunk above it would be truncated silently."""
    import json

    cfg = Path(model_path) / "sentence_bert_config.json"
    if cfg.exists():
        return int(json.loads(cfg.read_text()).get("max_seq_length", default))
    return default


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        return False
