"""rag_train_reranker in one process (benchmarks, the CLI): the DAG's steps in sequence, one recorded run."""

from __future__ import annotations

from typing import Any

from ragops.reranking import promotion, steps
from ragops.reranking.evaluation import evaluate_candidate
from ragops.reranking.params import RerankerParams
from ragops.reranking.summary import summarize
from ragops.runs import recorded_run
from ragops.services import Services


def train_reranker_in_process(svc: Services, params: RerankerParams, run_id: str, *,
                              dag_id: str = "ragops_cli_train_reranker") -> dict[str, Any]:
    """Mines, trains, evaluates, gates and (if approved) promotes; returns the run's lineage summary."""
    with recorded_run(svc, dag_id, run_id, params.as_dict()) as run:
        results: dict[str, Any] = {}
        inputs = results["resolve_inputs"] = steps.resolve_inputs(svc, params, run.ref)
        mined = results["mine"] = steps.mine_training_data(svc, inputs)
        trained = results["train"] = steps.train(svc, inputs, mined)
        candidate = results["register_candidate"] = steps.register_trained(svc, inputs, mined, trained)
        evaluation = results["evaluate"] = evaluate_candidate(svc, params, inputs, candidate)
        decision = results["gate"] = promotion.gate_candidate(svc, params, inputs, candidate, evaluation)
        results["promote"] = promotion.promote_candidate(svc, inputs, decision)
        run.summary = summarize(svc, run.ref, results)
    return {"run_key": run.ref.run_key, **run.summary}
