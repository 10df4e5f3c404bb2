"""rag_index's lineage summary: built from the run's records, pushed to XCom and stored with the run."""

from __future__ import annotations

from typing import Any

from ragops.indexing.records import ChunkSet, Cleanup, CorpusSnapshot, GateReport, IndexRun, Plan, ShardResult, Swap
from ragops.records import result_of
from ragops.runs import RunRef
from ragops.services import Services
from ragops.vocabulary import AliasKind


def summarize(svc: Services, run: RunRef, results: dict[str, Any]) -> dict[str, Any]:
    """The compact record of a run: ids, versions, counts and timings; never data. ``results`` maps
    task ids to their records' XCom forms (the DAG) or to the records themselves (the CLI)."""
    index_run = result_of(results, "prepare", IndexRun)
    corpus = result_of(results, "load_documents", CorpusSnapshot)
    chunks = result_of(results, "chunk", ChunkSet)
    plan = result_of(results, "plan", Plan)
    gate = result_of(results, "gate", GateReport)
    swap = result_of(results, "swap_alias", Swap)
    cleanup = result_of(results, "cleanup", Cleanup)
    shards = [ShardResult.from_xcom(s) for s in _as_list(results.get("embed_shard"))]
    alias = index_run.alias if index_run else (swap.alias if swap else None)
    live = svc.registry.get_alias(AliasKind.COLLECTION, alias) if alias else None
    summary: dict[str, Any] = {
        "alias": alias,
        "model": index_run.model.model_id if index_run else None,
        "live": live.summary() if live else None,
        "corpus": corpus and _brief(corpus.to_xcom()),
        "chunks": chunks and _brief(chunks.to_xcom()),
        "plan": plan and {"action": plan.action, "collection": plan.collection, **plan.stats},
        "embedded": shards and {"shards": len(shards), "chunks": sum(s.embedded for s in shards),
                                "encode_seconds": round(sum(s.encode_seconds for s in shards), 3),
                                "write_seconds": round(sum(s.write_seconds for s in shards), 3)},
        "gate": gate and gate.checks,
        "swap": swap and swap.to_xcom(),
        "cleanup": cleanup and cleanup.to_xcom(),
        "noop": bool(plan and plan.action == "noop"),
    }
    return {k: v for k, v in summary.items() if v is not None and v != []}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, dict | ShardResult) else list(value)


def _brief(step: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in step.items() if k != "uri" and not isinstance(v, list | dict)}


def summarize_rollback(svc: Services, run: RunRef, results: dict[str, Any]) -> dict[str, Any]:
    """rag_collection_rollback's summary: where the alias pointed and points now."""
    swap = result_of(results, "rollback", Swap)
    if swap is None:
        return {}
    live = svc.registry.get_alias(AliasKind.COLLECTION, swap.alias)
    return {"swap": swap.to_xcom(), "live": live.summary() if live else None, "noop": not swap.moved}
