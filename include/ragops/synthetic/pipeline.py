"""rag_synthetic_data in one process (the CLI, tests, benchmarks): the DAG's steps in sequence, one recorded run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ragops.records import Record
from ragops.runs import RunRef, recorded_run
from ragops.services import Services
from ragops.synthetic import publish, review, steps
from ragops.synthetic.params import SyntheticParams, generator_fallbacks
from ragops.synthetic.records import DatasetVersion, ReviewImport
from ragops.synthetic.summary import summarize

if TYPE_CHECKING:
    from ragops.embedding import Embedder

__all__ = ["SyntheticParams", "run_pipeline", "run_steps"]


def run_steps(svc: Services, params: SyntheticParams, run: RunRef, *,
              embedder: Embedder | None = None) -> dict[str, Record]:
    """Every step the DAG runs for these params, in order; their records by task id."""
    results: dict[str, Record] = {}
    dataset: DatasetVersion | None = None
    reviewed: ReviewImport | None = None
    if params.imports_review:
        reviewed = results["import_review"] = review.import_review(svc, params, run)
    else:
        synth = results["prepare"] = steps.prepare(svc, params, run)
        if embedder is None and (params.round_trip or params.hard_negatives):
            from ragops.embedding import Embedder

            embedder = Embedder(svc.model_path(synth.model))   # loads its weights on first use, once for both steps
        sampled = results["sample"] = steps.sample(svc, params, synth)
        generated = results["generate"] = steps.generate(svc, params, synth, sampled)
        filtered = results["filter_queries"] = steps.filter_queries(svc, params, synth, generated, sampled,
                                                                    embedder=embedder)
        negatives = results["mine_negatives"] = steps.mine_negatives(svc, params, synth, filtered, sampled,
                                                                     embedder=embedder)
        split = results["split"] = steps.split(svc, params, synth, negatives)
        dq = results["validate"] = publish.validate(svc, params, synth, split)
        dataset = results["register"] = publish.register(svc, params, synth, split, dq, generated, filtered,
                                                          negatives)
        results["export_review"] = publish.export_review(svc, params, dataset)
    results["publish"] = publish.publish_dataset(dataset, reviewed)
    return results


def run_pipeline(svc: Services, params: SyntheticParams, run_id: str, *, dag_id: str = "ragops_cli",
                 embedder: Embedder | None = None) -> dict[str, Any]:
    """Runs every step as the DAG does and returns the run's lineage summary."""
    with recorded_run(svc, dag_id, run_id, params.as_dict(), generator_fallbacks(svc, params)) as run:
        run.summary = summarize(svc, run.ref, run_steps(svc, params, run.ref, embedder=embedder))
    return {"run_key": run.ref.run_key, **run.summary}
