"""Fusion chosen on the collection's own labelled queries, and recorded with the collection version.

``tune_fusion`` measures every candidate fusion (RRF at several k and weights, weighted score
fusion at several weights) through the query path itself, on the collection's validation queries
(golden queries, review labels, a held-out slice of a synthetic test set, BEIR qrels), picks the
best by nDCG@10, and records it in the collection artifact's params as ``retrieval.fusion``, with
what it was tuned on and every candidate's score. The default (RRF, k=60, alpha=0.5) is kept
unless a candidate beats it by more than ``min_gain``. Readers (``Retriever``) pick the recorded
fusion up without a restart.

The dense and keyword lists of each query are searched once and replayed for every candidate (a
memo in front of the store), so tuning costs about one evaluation, not one per candidate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ragops.errors import InvalidInput
from ragops.retrieval.fusion import DEFAULT_FUSION, RRF, WEIGHTED, FusionConfig
from ragops.retrieval.path import QueryPath
from ragops.vocabulary import SearchMode

if TYPE_CHECKING:
    from ragops.retrieval_eval import LabelledQueries
    from ragops.services import Services
    from ragops.stores import VectorStore

log = logging.getLogger(__name__)

METRIC = "ndcg@10"


def fusion_candidates() -> list[FusionConfig]:
    """The default first, then RRF over k and weight, then weighted fusion over its weight."""
    out = [DEFAULT_FUSION]
    out += [FusionConfig(RRF, alpha, k) for k in (10, 30, 60) for alpha in (0.3, 0.5, 0.7)]
    out += [FusionConfig(WEIGHTED, round(a / 10, 1), DEFAULT_FUSION.rrf_k) for a in range(1, 10)]
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class FusionTuning:
    """What tuning measured: the chosen fusion, the default's score, and every candidate's."""

    chosen: FusionConfig
    score: float
    default_score: float
    metric: str
    queries: int
    labels: str
    scores: list[dict[str, Any]] = field(default_factory=list)   # {"fusion": {...}, "label", metric}

    def as_params(self) -> dict[str, Any]:
        """The collection artifact's ``retrieval`` params."""
        return {"fusion": self.chosen.as_dict(),
                "tuned": {"metric": self.metric, "score": self.score, "default_score": self.default_score,
                          "queries": self.queries, "labels": self.labels,
                          "candidates": [{"fusion": s["label"], self.metric: s[self.metric]} for s in self.scores]}}


class _MemoStore:
    """A store whose searches are answered once per (collection, query or vector, k) and replayed."""

    def __init__(self, store: VectorStore):
        self._store = store
        self._memo: dict[tuple[Any, ...], Any] = {}

    def vector_search(self, name: str, vector: Any, k: int = 10) -> Any:
        key = ("v", name, np.asarray(vector, dtype=np.float32).tobytes(), k)
        if key not in self._memo:
            self._memo[key] = self._store.vector_search(name, vector, k=k)
        return self._memo[key]

    def keyword_search(self, name: str, query: str, k: int = 10) -> Any:
        key = ("k", name, query, k)
        if key not in self._memo:
            self._memo[key] = self._store.keyword_search(name, query, k=k)
        return self._memo[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def measure_fusions(path: QueryPath, labelled: LabelledQueries,
                    candidates: Sequence[FusionConfig] | None = None) -> list[dict[str, Any]]:
    """Each candidate's metrics on ``labelled`` through ``path``'s hybrid first stage."""
    from ragops.retrieval_eval import metrics_from_run, retrieve_run

    memo = QueryPath(_MemoStore(path.store), path.collection, encode=_memo_encode(path), fusion=path.fusion,
                     version=path.version)   # type: ignore[arg-type]
    out = []
    for config in candidates or fusion_candidates():
        run = retrieve_run(None, path.collection, labelled, SearchMode.HYBRID, None, path=memo, fusion=config)
        out.append({"fusion": config, "label": config.label, **metrics_from_run(labelled.qrels, run)})
    return out


def _memo_encode(path: QueryPath) -> Any:
    cache: dict[tuple[str, ...], np.ndarray] = {}

    def encode(texts: list[str]) -> np.ndarray:
        key = tuple(texts)
        if key not in cache:
            cache[key] = path._encode(list(texts))
        return cache[key]

    return encode


def tune_fusion(svc: Services, alias: str, labelled: LabelledQueries, *,
                candidates: Sequence[FusionConfig] | None = None, min_gain: float = 0.0, record: bool = True,
                labels: str = "golden") -> FusionConfig:
    """Chooses the fusion of the collection ``alias`` points at (or the collection so named) on
    ``labelled``, records it with that collection version (unless ``record`` is False), and returns it.
    ``labels`` says what the queries were (golden, review, synthetic-test, beir:<split>)."""
    return tune_fusion_report(svc, alias, labelled, candidates=candidates, min_gain=min_gain, record=record,
                              labels=labels).chosen


def tune_fusion_report(svc: Services, alias: str, labelled: LabelledQueries, *,
                       candidates: Sequence[FusionConfig] | None = None, min_gain: float = 0.0,
                       record: bool = True, labels: str = "golden") -> FusionTuning:
    """``tune_fusion`` with everything it measured."""
    from ragops.retrieval.retriever import Retriever

    path = Retriever(svc, alias, cite=False).current()
    if path.encode is None:
        raise InvalidInput(f"collection {path.collection!r}: fusion tuning needs the collection's query encoder "
                           f"({path.encoder_problem})")
    candidates = list(candidates or fusion_candidates())
    if DEFAULT_FUSION not in candidates:
        candidates.insert(0, DEFAULT_FUSION)
    scores = measure_fusions(path, labelled, candidates)
    default = next(s for s in scores if s["fusion"] == DEFAULT_FUSION)
    best = max(scores, key=lambda s: s[METRIC])   # the first of equals: the default, then list order
    if best[METRIC] <= default[METRIC] + min_gain:
        best = default
    tuning = FusionTuning(best["fusion"], best[METRIC], default[METRIC], METRIC, default["queries"], labels, scores)
    log.info("fusion of %s (%s): %s, %s %.4f (default %s %.4f) on %d %s queries", alias, path.collection,
             tuning.chosen.label, METRIC, tuning.score, DEFAULT_FUSION.label, tuning.default_score,
             tuning.queries, labels)
    if record:
        if path.version.artifact_id is None:
            raise InvalidInput(f"collection {path.collection!r} has no lineage artifact to record its fusion in")
        svc.registry.update_artifact(path.version.artifact_id, params={"retrieval": tuning.as_params()},
                                     metrics={"retrieval": {METRIC: tuning.score, "fusion": tuning.chosen.label}})
    return tuning
