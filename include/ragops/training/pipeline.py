"""rag_finetune_embeddings in one process (the CLI's ``loop``): the DAG's steps in sequence, one recorded run.

The trainer runs in a local process here (a GPU pod needs a DAG run); everything else is exactly
what the DAG's tasks call.
"""

from __future__ import annotations

from typing import Any

from ragops.runs import recorded_run
from ragops.services import Services
from ragops.training import promotion, steps
from ragops.training.compute import TrainingConfig, compute_fallbacks
from ragops.training.evaluation import evaluate_candidate
from ragops.training.params import FinetuneParams
from ragops.training.summary import summarize


def finetune_in_process(svc: Services, params: FinetuneParams, run_id: str, *, dag_id: str = "ragops_cli_finetune",
                        config: TrainingConfig | None = None) -> dict[str, Any]:
    """Trains, evaluates, gates and (if approved) promotes; returns the run's lineage summary."""
    config = config or TrainingConfig()
    with recorded_run(svc, dag_id, run_id, params.as_dict(), compute_fallbacks(config)) as run:
        results: dict[str, Any] = {}
        inputs = results["resolve_inputs"] = steps.resolve_inputs(svc, params, run.ref, config)
        trained = results["train"] = steps.train(svc, inputs)
        candidate = results["register_candidate"] = steps.register_trained(svc, inputs, trained)
        evaluation = results["evaluate"] = evaluate_candidate(svc, params, inputs, candidate)
        decision = results["gate"] = promotion.gate_candidate(svc, params, inputs, candidate, evaluation)
        results["promote"] = promotion.promote_candidate(svc, inputs, decision)
        run.summary = summarize(svc, run.ref, results)
    return {"run_key": run.ref.run_key, **run.summary}
