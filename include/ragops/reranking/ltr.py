"""The learning-to-rank reranker: LightGBM's LambdaRank over first-stage features.

It reorders the first stage's top N by a gradient-boosted model of ``features.FEATURES`` (scores
per list, ranks, title and heading overlap, chunk position, length): milliseconds per query
(features in Python, then one predict), no GPU. A model folder holds ``model.txt`` (the booster) and ``reranker.json`` (kind, feature names).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ragops.reranking.features import FEATURES, feature_matrix
from ragops.vocabulary import RerankerKind

MODEL_FILE = "model.txt"
META_FILE = "reranker.json"


@dataclass(frozen=True)
class LTRConfig:
    """LambdaRank hyperparameters (``rag_train_reranker``'s params own the defaults)."""

    trees: int = 200
    leaves: int = 15
    learning_rate: float = 0.05
    min_data_in_leaf: int = 20
    seed: int = 42

    def lgb_params(self) -> dict[str, Any]:
        return {"objective": "lambdarank", "metric": "ndcg", "eval_at": [10], "num_leaves": self.leaves,
                "learning_rate": self.learning_rate, "min_data_in_leaf": self.min_data_in_leaf,
                "seed": self.seed, "deterministic": True, "force_row_wise": True, "num_threads": 2,
                "verbosity": -1, "feature_pre_filter": False}


def train_ltr(features: np.ndarray, labels: Sequence[int], groups: Sequence[int], config: LTRConfig = LTRConfig()
              ) -> Any:
    """A LambdaRank booster. ``groups``: the number of consecutive rows of each query."""
    import lightgbm as lgb

    if sum(groups) != len(labels) or len(labels) != len(features):
        raise ValueError(f"groups sum to {sum(groups)}, labels {len(labels)}, features {len(features)}: they must agree")
    data = lgb.Dataset(np.asarray(features, dtype=np.float32), label=np.asarray(labels, dtype=np.float32),
                       group=list(groups), feature_name=list(FEATURES), free_raw_data=False)
    return lgb.train(config.lgb_params(), data, num_boost_round=config.trees)


class LTRReranker:
    """A ``Reranker``: scores each candidate with the booster, best first (ties keep the first stage's order)."""

    def __init__(self, booster: Any, name: str = "ltr"):
        self.booster = booster
        self.name = name

    def scores(self, query: str, hits: Sequence[Any]) -> np.ndarray:
        if not hits:
            return np.zeros(0)
        return np.asarray(self.booster.predict(feature_matrix(query, hits)), dtype=np.float64)

    def rerank(self, query: str, hits: Sequence[Any]) -> list[Any]:
        scores = self.scores(query, hits)
        order = np.argsort(-scores, kind="stable")
        return [replace(hits[i], score=float(scores[i]), scores={**hits[i].scores, "rerank": float(scores[i])})
                for i in order]

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / MODEL_FILE))
        (folder / META_FILE).write_text(json.dumps({"kind": RerankerKind.LTR.value, "features": list(FEATURES)},
                                                   indent=2, sort_keys=True))
        return folder

    @classmethod
    def load(cls, folder: str | Path, name: str = "ltr") -> LTRReranker:
        import lightgbm as lgb

        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text())
        if list(meta.get("features") or []) != list(FEATURES):
            raise ValueError(f"LTR model {folder} was trained on features {meta.get('features')}, this code computes "
                             f"{list(FEATURES)}: retrain it")
        return cls(lgb.Booster(model_file=str(folder / MODEL_FILE)), name)
