"""rag_index in one process (the CLI, benchmarks): the DAG's steps in sequence, one recorded run."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ragops.indexing import gate, steps, versions
from ragops.indexing.params import IndexParams
from ragops.indexing.summary import summarize
from ragops.runs import recorded_run
from ragops.services import Services

if TYPE_CHECKING:
    from ragops.embedding import Embedder


def run_pipeline(svc: Services, params: IndexParams, run_id: str, *, embedder: Embedder | None = None,
                 dag_id: str = "ragops_cli") -> dict[str, Any]:
    """Runs every step as the DAG does and returns the lineage summary, with timings per step."""
    timings: dict[str, float] = {}
    with recorded_run(svc, dag_id, run_id, params.as_dict()) as run:
        results: dict[str, Any] = {"prepare": steps.prepare(svc, params, run.ref)}
        index_run = results["prepare"]
        corpus = results["load_documents"] = steps.load_documents(svc, params, index_run)
        timings["load"] = corpus.seconds
        t0 = time.perf_counter()
        steps.validate_documents(svc, params, index_run, corpus)
        chunks = results["chunk"] = steps.chunk_corpus(svc, params, index_run, corpus)
        timings["chunk"] = chunks.seconds
        steps.validate_chunks(svc, params, index_run, chunks)
        timings["validate"] = round(time.perf_counter() - t0 - chunks.seconds, 3)
        plan = results["plan"] = steps.plan_collection(svc, params, index_run, chunks)
        timings["plan"] = plan.stats.get("plan_seconds", 0.0)
        if plan.action == "build":
            if embedder is None and plan.shards:
                from ragops.embedding import Embedder

                embedder = Embedder(svc.model_path(index_run.model), batch_size=params.batch_size)
            shards = results["embed_shard"] = [steps.embed_shard(svc, params, index_run, s, embedder)
                                               for s in plan.shards]
            timings["embed"] = round(sum(s.encode_seconds for s in shards), 3)
            timings["write"] = round(sum(s.write_seconds for s in shards), 3)
            t0 = time.perf_counter()
            results["gate"] = gate.gate_collection(svc, params, index_run, plan, chunks, embedder)
            results["swap_alias"] = versions.swap_alias(svc, params.alias, run.ref, plan)
            timings["gate_and_swap"] = round(time.perf_counter() - t0, 3)
        results["cleanup"] = versions.cleanup_versions(svc, params.alias, params.keep_versions)
        run.summary = summarize(svc, run.ref, results) | {"timings": timings}
    return {"run_key": run.ref.run_key, **run.summary}
