"""The cross-encoder reranker: a sentence-transformers ``CrossEncoder`` scoring (query, passage) pairs.

The passage is the chunk's embedding text (its heading path, then its text): what the trainer
saw (``ragops.reranking.mining``) is what it scores at serving time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ragops.vocabulary import RerankerKind

META_FILE = "reranker.json"
BATCH_SIZE = 32


def passage_of(hit: Any) -> str:
    props = hit.properties or {}
    text = str(props.get("text") or getattr(hit, "text", "") or "")
    heading = str(props.get("heading_path") or "")
    return f"{heading}\n{text}" if heading else text


class CrossEncoderReranker:
    """A ``Reranker`` over a cross-encoder model folder (loaded once; scoring is serialised)."""

    def __init__(self, model_path: str | Path, name: str = "cross-encoder", *, device: str | None = None,
                 max_length: int = 256):
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(str(model_path), device=device, local_files_only=True, max_length=max_length)
        self.name = name
        self._lock = threading.Lock()

    def scores(self, query: str, hits: Sequence[Any]) -> np.ndarray:
        if not hits:
            return np.zeros(0)
        with self._lock:
            out = self.model.predict([(query, passage_of(h)) for h in hits], batch_size=BATCH_SIZE,
                                     show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(out, dtype=np.float64).reshape(len(hits))

    def rerank(self, query: str, hits: Sequence[Any]) -> list[Any]:
        scores = self.scores(query, hits)
        order = np.argsort(-scores, kind="stable")
        return [replace(hits[i], score=float(scores[i]), scores={**hits[i].scores, "rerank": float(scores[i])})
                for i in order]


def is_cross_encoder(folder: str | Path) -> bool:
    meta = Path(folder) / META_FILE
    return meta.exists() and json.loads(meta.read_text()).get("kind") == RerankerKind.CROSS_ENCODER.value
