"""rag_index's gate: a built collection goes live only if it is whole, searchable and no worse.

Checks: the object count equals the chunk set's, the vectors have the model's dimension, a
retrieval smoke check finds sampled chunks by their heading and first sentence, and (with golden
queries) nDCG@10 is within a tolerance of the live collection's. The report is an evaluation
artifact; a failure marks the collection ``failed_gate``, alerts, and raises ``GateFailed``.
"""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING, Any

from ragops.errors import GateFailed, NothingNew
from ragops.hashing import hash_object
from ragops.indexing.params import IndexParams
from ragops.indexing.records import ChunkSet, GateReport, IndexRun, Plan
from ragops.models import ModelRef
from ragops.services import Services
from ragops.vocabulary import ArtifactKind, Relation, Status

if TYPE_CHECKING:
    from ragops.embedding import Embedder
    from ragops.stores import SearchHit

_FIRST_SENTENCE = re.compile(r"(.{20,}?[.!?])(\s|$)", re.S)


def smoke_query(row: dict[str, Any]) -> str:
    """What a reader might search to find a chunk: its heading and first sentence (or opening words).

    The heading matters: manuals repeat sentences ("This command conforms to the SQL standard.")
    across pages, and only the heading says which page a reader wants."""
    text = " ".join(row["text"].split())
    match = _FIRST_SENTENCE.match(text)
    sentence = (match.group(1) if match else text)[:300]
    heading = (row.get("title") or "").strip()
    return f"{heading}: {sentence}" if heading and heading not in sentence else sentence


def smoke_hit(row: dict[str, Any], hits: list[SearchHit]) -> bool:
    """The chunk is found, or a chunk with the very same text is (exact duplicates are
    indistinguishable to any retriever, and the duplicate-ratio check bounds how many there are)."""
    return any(h.id == row["chunk_id"] or h.properties.get("text") == row["text"] for h in hits)


def gate_collection(svc: Services, params: IndexParams, run: IndexRun, plan: Plan, chunks: ChunkSet,
                    embedder: Embedder | None = None) -> GateReport:
    """Checks the target before it may go live; records the report; raises GateFailed on failure."""
    from ragops.embedding import Embedder

    if plan.action == "noop":
        raise NothingNew(f"{plan.collection} is already live: nothing to gate")
    store, target = svc.store, plan.collection
    embedder = embedder or Embedder(svc.model_path(run.model))
    checks: dict[str, dict[str, Any]] = {}
    count = store.count(target)
    checks["object_count"] = {"passed": count == chunks.chunks, "observed": count, "expected": chunks.chunks}
    rows = svc.artifacts.read_table(svc.artifacts.rel_of(chunks.uri)).to_pylist()
    sample = random.Random(chunks.content_hash).sample(rows, min(params.smoke_sample, len(rows)))  # same on retry
    fetched = store.fetch(target, [r["chunk_id"] for r in sample[:5]], include_vectors=True)
    dims = sorted({len(o.vector) for o in fetched if o.vector is not None})
    checks["vector_dimension"] = {"passed": dims == [embedder.dimension] and
                                  store.collection_metadata(target).get("dimension") == embedder.dimension,
                                  "observed": dims, "expected": embedder.dimension}
    vectors = embedder.encode([smoke_query(r) for r in sample])
    hits = sum(1 for r, v in zip(sample, vectors, strict=True)
               if smoke_hit(r, store.vector_search(target, v, k=params.smoke_k)))
    rate = hits / max(len(sample), 1)
    checks["retrieval_smoke"] = {"passed": rate >= params.smoke_min_hit_rate, "observed": round(rate, 3),
                                 "expected": f">= {params.smoke_min_hit_rate} in top {params.smoke_k}"}
    if params.golden_queries:
        checks["golden_ndcg"] = _golden_check(svc, params, run, target, plan.live_before, embedder)
    passed = all(c["passed"] for c in checks.values())
    report = {"collection": target, "passed": passed, "checks": checks}
    uri = svc.artifacts.write_json(f"reports/gate/{target}/{hash_object(report)}.json", report)
    observed = {k: v["observed"] for k, v in checks.items()}
    evaluation = svc.registry.record_artifact(
        ArtifactKind.EVALUATION, f"{params.alias}-gate", hash_object(report), uri, metrics=observed | {"passed": passed},
        status=Status.PASSED if passed else Status.FAILED, run_key=run.run_key,
        parents=[(plan.artifact_id, Relation.EVALUATES)])
    svc.registry.update_artifact(plan.artifact_id, status=Status.READY if passed else Status.FAILED_GATE,
                                 metrics={"gate": observed})
    if not passed:
        failed = {k: v for k, v in checks.items() if not v["passed"]}
        svc.notifier.alert(f"gate failed: {target}", f"collection {target} failed {sorted(failed)}; alias "
                           f"{params.alias} stays on {plan.live_before}", run_key=run.run_key,
                           context={"checks": failed})
        raise GateFailed(f"collection {target} failed the gate: {failed}")
    return GateReport(target, True, evaluation.id, uri, observed)


def _golden_check(svc: Services, params: IndexParams, run: IndexRun, target: str, live: str | None,
                  embedder: Embedder) -> dict[str, Any]:
    from ragops.embedding import Embedder
    from ragops.retrieval_eval import evaluate_collection, load_golden_queries

    labelled = load_golden_queries(params.golden_queries or "")
    mode, store = params.golden_mode, svc.store
    new = evaluate_collection(store, target, labelled, embedder.encode, modes=[mode])[mode]["ndcg@10"]
    if not live or live == target or not store.collection_exists(live):
        return {"passed": True, "observed": {"candidate": new, "live": None}, "expected": "no live collection"}
    live_meta = store.collection_metadata(live)
    live_encoder = embedder
    if live_meta.get("model_hash") != run.model.content_hash:
        model_art = (svc.registry.parent(int(live_meta["artifact_id"]), Relation.EMBEDDED_WITH)
                     if live_meta.get("artifact_id") else None)
        if model_art is None:
            return {"passed": True, "observed": {"candidate": new, "live": None},
                    "expected": "live model unknown: comparison skipped"}
        live_encoder = Embedder(svc.model_path(ModelRef.of(model_art)))
    old = evaluate_collection(store, live, labelled, live_encoder.encode, modes=[mode])[mode]["ndcg@10"]
    return {"passed": new >= old - params.ndcg_tolerance, "observed": {"candidate": new, "live": old},
            "expected": f"candidate >= live - {params.ndcg_tolerance} ({mode})"}
