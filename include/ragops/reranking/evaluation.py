"""rag_train_reranker's evaluate step: the first stage alone, the live reranker and the candidate.

All three rerank the same first-stage candidates of the pinned collection version, through the
query path (``QueryPath.search_many`` then the rerank stage's ``apply_reranker``): what is
measured is what is served. The sets, each scored on its own:

- ``held-out`` (primary): every query of the dataset's test split (split by document, never
  trained on), judged at document level (a document scores its best chunk's rank);
- guard sets: the test split's rows by label source (``synthetic-test`` and ``review`` at chunk
  level, ``imported-test`` at document level), the golden queries, and a registered BEIR qrels
  split (the collection must hold that corpus).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragops.hashing import hash_object, short
from ragops.models import ModelRef
from ragops.reranking.params import RerankerParams
from ragops.reranking.records import RerankerEvaluation, RerankerInputs
from ragops.retrieval.rerank import IdentityReranker, Reranker, apply_reranker
from ragops.services import Services
from ragops.vocabulary import ArtifactKind, LabelSource, Stage

if TYPE_CHECKING:
    from ragops.retrieval.path import QueryPath
    from ragops.retrieval_eval import LabelledQueries

log = logging.getLogger(__name__)

PRIMARY_SET = "held-out"
METRIC = "ndcg@10"
LABELS = ("first_stage", "live", "candidate")


@dataclass(frozen=True)
class EvalSet:
    name: str
    labelled: LabelledQueries
    guard: bool


def _qid(query: str) -> str:
    return "q" + hash_object(["query", query])[:16]


def split_sets(rows: Sequence[Mapping[str, Any]]) -> list[EvalSet]:
    """The held-out set (all test rows, document level) and one guard set per label source."""
    from ragops.retrieval_eval import LabelledQueries

    def labelled(selected: Sequence[Mapping[str, Any]], level: str) -> LabelledQueries:
        key = "doc_id" if level == "doc" else "chunk_id"
        queries = {_qid(r["query"]): r["query"] for r in selected}
        qrels: dict[str, dict[str, int]] = {}
        for r in selected:
            qrels.setdefault(_qid(r["query"]), {})[str(r[key])] = 1
        return LabelledQueries(queries, qrels, level)

    rows = [r for r in rows if r.get("query") and r.get("chunk_id")]
    if not rows:
        return []
    sets = [EvalSet(PRIMARY_SET, labelled(rows, "doc"), False)]
    for source, name, level in ((LabelSource.SYNTHETIC, "synthetic-test", "chunk"),
                                (LabelSource.REVIEWED, "review", "chunk"),
                                (LabelSource.IMPORTED, "imported-test", "doc")):
        chosen = [r for r in rows if (r.get("label_source") or LabelSource.SYNTHETIC) == source]
        if chosen and not (level == "doc" and len(chosen) == len(rows)):   # not the held-out set again
            sets.append(EvalSet(name, labelled(chosen, level), True))
    return sets


def guard_sets(params: RerankerParams) -> list[EvalSet]:
    from ragops.retrieval_eval import LabelledQueries, beir_labelled, load_golden_queries

    out = []
    if params.golden_queries:
        out.append(EvalSet("golden", load_golden_queries(params.golden_queries), True))
    if params.beir_folder:
        beir = beir_labelled(params.beir_folder, params.beir_split)
        qids = sorted(beir.qrels)[: params.beir_max_queries or None]
        out.append(EvalSet(f"beir-{params.beir_split}",
                           LabelledQueries({q: beir.queries[q] for q in qids}, {q: beir.qrels[q] for q in qids}, "doc"),
                           True))
    return out


def score_rerankers(path: QueryPath, sets: Sequence[EvalSet], rerankers: Mapping[str, Reranker], *, mode: str,
                    top_n: int) -> dict[str, dict[str, dict[str, float]]]:
    """``{set: {label: metrics}}``: each set's first stage searched once, each reranker applied to
    the same candidates; a judged id scores by its best rank (max-pooled for documents)."""
    from ragops.retrieval_eval import metrics_from_run

    out: dict[str, dict[str, dict[str, float]]] = {}
    for eval_set in sets:
        labelled = eval_set.labelled
        qids = sorted(labelled.queries)
        results = path.search_many([labelled.queries[q] for q in qids], k=top_n, mode=mode, rerank=False,
                                   similarity=False, cite=False)
        key = "doc_id" if labelled.level == "doc" else "chunk_id"
        per_label: dict[str, dict[str, float]] = {}
        for label, reranker in rerankers.items():
            run: dict[str, dict[str, float]] = {}
            for qid, result in zip(qids, results, strict=True):
                ranked = apply_reranker(reranker, labelled.queries[qid], result.hits)
                scores: dict[str, float] = {}
                for hit in ranked:
                    ident = str(hit.properties.get(key) or hit.chunk_id)
                    scores[ident] = max(scores.get(ident, 0.0), float(top_n + 1 - hit.rank))
                run[qid] = scores
            per_label[label] = metrics_from_run(labelled.qrels, run)
        out[eval_set.name] = per_label
        log.info("%s (%d queries): %s", eval_set.name, len(qids),
                 {label: m[METRIC] for label, m in per_label.items()})
    return out


def evaluate_candidate(svc: Services, params: RerankerParams, inputs: RerankerInputs,
                       candidate: ModelRef) -> RerankerEvaluation:
    """Scores the first stage alone, the live (production) reranker and the candidate on every set."""
    from ragops.labels import label_sources_of
    from ragops.reranking.mining import live_path
    from ragops.reranking.registry import load_version, reranker_id
    from ragops.synthetic.dataset import dataset_rows

    splits = label_sources_of(svc, inputs.dataset.artifact_id,
                              dataset_rows(svc.artifacts, svc.artifacts.rel_of(inputs.dataset.uri)))
    sets = split_sets(splits["test"]) + guard_sets(params)
    if not sets or sets[0].name != PRIMARY_SET:
        raise ValueError(f"dataset v{inputs.dataset.version} has no test queries: nothing held out to evaluate on")
    live_art = svc.registry.in_stage(ArtifactKind.MODEL, inputs.model_name, Stage.PRODUCTION)
    cand_art = svc.registry.get_artifact(candidate.artifact_id) if candidate.artifact_id else None
    if cand_art is None:
        raise ValueError(f"candidate {candidate.model_id} is not registered")
    rerankers: dict[str, Reranker] = {"first_stage": IdentityReranker(),
                                      "live": load_version(svc, live_art) if live_art else IdentityReranker(),
                                      "candidate": load_version(svc, cand_art)}
    model_ids = {"first_stage": "identity", "live": reranker_id(live_art) if live_art else "identity",
                 "candidate": candidate.model_id}
    artifact_ids = {"first_stage": None, "live": live_art.id if live_art else None, "candidate": cand_art.id}
    hyper = inputs.hyperparameters
    path = live_path(svc, inputs.collection)
    metrics = score_rerankers(path, sets, rerankers, mode=hyper.mode.value, top_n=hyper.top_n)
    report = {"collection": inputs.collection, "alias": inputs.alias, "mode": hyper.mode.value, "top_n": hyper.top_n,
              "primary_set": PRIMARY_SET, "metric": METRIC,
              "sets": {s.name: {"queries": len(s.labelled.queries), "level": s.labelled.level, "guard": s.guard}
                       for s in sets},
              "model_ids": model_ids, "artifact_ids": artifact_ids, "live_is_first_stage": live_art is None,
              "metrics": metrics}
    rel = f"evaluations/{inputs.model_name}/{short(candidate.content_hash, 16)}-{short(inputs.dataset.content_hash, 8)}"
    uri = svc.artifacts.write_json(f"{rel}/report.json", report)
    headline = {label: metrics[PRIMARY_SET][label][METRIC] for label in LABELS}
    log.info("%s on %s (%s): %s", METRIC, PRIMARY_SET, inputs.collection, headline)
    return RerankerEvaluation(uri, inputs.collection, PRIMARY_SET, tuple(s.name for s in sets), model_ids,
                              artifact_ids, headline)
