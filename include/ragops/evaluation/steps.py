"""rag_evaluate's steps: pin what is live, measure retrieval on every set, answer and judge a
sample, record one evaluation artifact and compare it with the rolling baseline."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ragops.errors import NothingNew
from ragops.evaluation.params import EvaluateParams
from ragops.evaluation.records import EvalTarget, EvaluationOutcome, GenerationResult, RetrievalResult
from ragops.hashing import hash_object, short
from ragops.runs import RunRef
from ragops.services import Services
from ragops.vocabulary import CONTINUOUS_EVAL_NAME, RERANKER_NAME, ArtifactKind, Relation, Stage, Status

if TYPE_CHECKING:
    from ragops.retrieval.path import QueryPath

log = logging.getLogger(__name__)


# -- 1. pin ------------------------------------------------------------------------------------
def resolve_target(svc: Services, params: EvaluateParams, run: RunRef) -> EvalTarget:
    """The collection version the alias points at now, its model, the production reranker, and the sets."""
    from ragops.evaluation.sets import known_sets
    from ragops.models import ModelRef
    from ragops.reranking.registry import reranker_id
    from ragops.retrieval import Retriever
    from ragops.retrieval.retriever import UnknownCollection, identity_reranker

    try:
        collection = Retriever(svc, params.alias, cite=False, reranker_for=identity_reranker).resolve()
    except UnknownCollection as exc:
        raise NothingNew(f"nothing to evaluate: {exc}") from exc
    meta = svc.store.collection_metadata(collection)
    art = svc.registry.get_artifact(int(meta["artifact_id"])) if meta.get("artifact_id") else None
    model_art = svc.registry.parent(art.id, Relation.EMBEDDED_WITH) if art else None
    reranker = svc.registry.in_stage(ArtifactKind.MODEL, RERANKER_NAME, Stage.PRODUCTION) if params.rerank else None
    sets, skipped = known_sets(svc, params.kinds(), art.run_key if art else None)
    if not sets:
        raise NothingNew(f"no evaluation set of the kinds {sorted(params.kinds())} is known"
                         + (f" (skipped: {skipped})" if skipped else ""))
    log.info("evaluating %s -> %s (model %s, reranker %s) on %s", params.alias, collection,
             ModelRef.of(model_art).model_id if model_art else meta.get("model_id"),
             reranker_id(reranker) if reranker else None, [s.name for s in sets])
    return EvalTarget(run, params.alias, collection, art.id if art else None, art.version if art else None,
                      ModelRef.of(model_art).model_id if model_art else meta.get("model_id"),
                      model_art.id if model_art else None, reranker_id(reranker) if reranker else None,
                      reranker.id if reranker else None, tuple(sets), skipped)


def query_path(svc: Services, target: EvalTarget) -> QueryPath:
    """The service's query path over the pinned version, with the pinned reranker."""
    from ragops.reranking.registry import load_version
    from ragops.retrieval import Retriever
    from ragops.retrieval.rerank import IdentityReranker

    art = svc.registry.get_artifact(target.reranker_artifact_id) if target.reranker_artifact_id else None
    return Retriever(svc, target.collection,
                     reranker_for=lambda s, _v: load_version(s, art) if art else IdentityReranker()).current()


def chunk_rows(svc: Services, collection_id: int | None) -> dict[str, dict[str, Any]]:
    """The collection's chunks (id, document, source, text) from its chunk set."""
    chunk_set = svc.registry.parent(collection_id, Relation.EMBEDDED_FROM) if collection_id else None
    if chunk_set is None:
        return {}
    table = svc.artifacts.read_table(svc.artifacts.rel_of(chunk_set.uri))
    wanted = [c for c in ("chunk_id", "doc_id", "source", "text") if c in table.column_names]
    return {r["chunk_id"]: r for r in table.select(wanted).to_pylist()}


def _report_rel(target: EvalTarget, name: str) -> str:
    return f"evaluations/{target.alias}/{short(hash_object(target.run.run_key), 16)}/{name}.json"


# -- 2. retrieval ------------------------------------------------------------------------------
def evaluate_retrieval(svc: Services, params: EvaluateParams, target: EvalTarget) -> RetrievalResult:
    """nDCG@10, MRR@10 and Recall@k of every set through the live query path, per set and per source."""
    from ragops.evaluation.metrics import set_metrics, source_lookup
    from ragops.evaluation.sets import load_set
    from ragops.retrieval_eval import retrieve_run

    path = query_path(svc, target)
    source_of = source_lookup(chunk_rows(svc, target.collection_id))
    rerank = bool(params.rerank and target.reranker_id)
    sets: dict[str, dict[str, Any]] = {}
    for ref in target.sets:
        labelled = load_set(svc, ref, params.max_queries, params.seed)
        run = retrieve_run(None, "", labelled, params.mode.value, None, k=params.k, path=path, rerank=rerank)
        sets[ref.name] = set_metrics(labelled.qrels, run, params.k, source_of)
        log.info("%s (%d queries): %s", ref.name, sets[ref.name]["queries"],
                 {m: v for m, v in sets[ref.name].items() if m != "by_source"})
    report = {"versions": target.versions(), "mode": params.mode.value, "rerank": rerank, "k": params.k,
              "sets": {ref.name: {"kind": ref.kind, "uri": ref.uri, "split": ref.split, "level": ref.level,
                                  "content_hash": ref.content_hash, **sets[ref.name]} for ref in target.sets}}
    return RetrievalResult(svc.artifacts.write_json(_report_rel(target, "retrieval"), report), sets)


# -- 3. generation -----------------------------------------------------------------------------
def evaluate_generation(svc: Services, params: EvaluateParams, target: EvalTarget) -> GenerationResult:
    """A fixed sample answered as the service answers; non-LLM checks always, the judge with an LLM."""
    from ragops.answers import MAX_PASSAGES, UNKNOWN, answer, chat_client
    from ragops.evaluation.generation import (
        CachedChat,
        GenerationTally,
        Ledger,
        answer_checks,
        judge,
        judge_prompt_version,
        sample_items,
    )
    from ragops.evaluation.sets import load_set

    if params.sample_size == 0:
        return GenerationResult("", {}, False, "sample_size is 0")
    items = sample_items([(ref.name, load_set(svc, ref, params.max_queries, params.seed)) for ref in target.sets],
                         params.sample_size, params.seed)
    path = query_path(svc, target)
    rows = chunk_rows(svc, target.collection_id)
    rerank = bool(params.rerank and target.reranker_id)
    ledger = answer_chat = judge_chat = client = None
    fallback = None
    if svc.llm is not None:
        client = chat_client(svc.llm, **({"model": params.llm_model} if params.llm_model else {}))
        ledger = Ledger(params.cost_cap_usd)
        answer_chat = CachedChat(client, client.settings, svc.registry, ledger, "answer")
        judge_chat = CachedChat(client, client.settings, svc.registry, ledger, judge_prompt_version())
    else:
        fallback = "no ragops_llm connection: the LLM judge's metrics are skipped"
    tally = GenerationTally()
    try:
        for item in items:
            if ledger is not None and ledger.exhausted:
                tally.capped = True
                log.warning("cost cap %.4f USD reached after %d of %d questions", ledger.cap_usd, len(tally.items),
                            len(items))
                break
            hits = path.search(item.question, k=MAX_PASSAGES, mode=params.mode.value, rerank=rerank).hits
            reply = answer(item.question, hits, answer_chat, llm_problem=fallback)
            gold = " ".join(str(r.get("text") or "") for r in rows.values()
                            if (r.get("doc_id") if item.level == "doc" else r.get("chunk_id")) in item.gold)
            verdict = None
            if judge_chat is not None and reply.kind != UNKNOWN:
                verdict = judge(judge_chat, reply)
                tally.malformed += verdict is None
            tally.add(item, reply, answer_checks(reply, item, gold), verdict)
    finally:
        if client is not None:
            client.close()
    metrics = tally.metrics(len(items), ledger)
    report = {"versions": target.versions(), "metrics": metrics, "items": tally.items}
    uri = svc.artifacts.write_json(_report_rel(target, "generation"), report)
    log.info("generation on %d questions: %s", len(items), metrics)
    return GenerationResult(uri, metrics, ledger is not None, fallback)


# -- 4. record and compare ---------------------------------------------------------------------
def record_evaluation(svc: Services, params: EvaluateParams, target: EvalTarget, retrieval: RetrievalResult,
                      generation: GenerationResult | None) -> EvaluationOutcome:
    """One evaluation artifact (a point of the trend) with lineage to what it evaluated; a drop
    beyond the tolerance against the rolling baseline is alerted, then the task fails."""
    from ragops.evaluation.trends import EvaluationRegression, alert_text, baseline, changed_versions, regressions

    metrics: dict[str, Any] = {"sets": retrieval.sets, "fallbacks": list(target.run.fallbacks)}
    if generation is not None and generation.metrics:
        metrics["generation"] = generation.metrics
    content_hash = hash_object({"run": target.run.run_key, "metrics": metrics})
    history = [a for a in svc.registry.list_artifacts(ArtifactKind.EVALUATION, CONTINUOUS_EVAL_NAME)
               if a.params.get("alias") == target.alias and a.content_hash != content_hash
               and a.status in (Status.DONE, Status.FAILED)]
    window = history[-params.baseline_window:]
    base = baseline([a.metrics for a in window], params.baseline_window)
    found = regressions(retrieval.sets, base, params.tolerance)
    changed = changed_versions(target.versions(), window[-1].params if window else None)
    report = {"versions": target.versions(), "metrics": metrics, "skipped_sets": target.skipped_sets,
              "baseline": {"runs": [a.run_key for a in window], "median": base, "window": params.baseline_window,
                           "tolerance": params.tolerance},
              "regressions": found, "changed": changed, "retrieval_report": retrieval.report_uri,
              "generation_report": generation.report_uri if generation else None}
    uri = svc.artifacts.write_json(_report_rel(target, "evaluation"), report)
    parents = [(i, Relation.EVALUATES) for i in (target.collection_id, target.model_artifact_id,
                                                  target.reranker_artifact_id) if i]
    parents += [(i, Relation.EVALUATED_ON) for i in dict.fromkeys(s.artifact_id for s in target.sets) if i]
    art = svc.registry.record_artifact(
        ArtifactKind.EVALUATION, CONTINUOUS_EVAL_NAME, content_hash, uri,
        params={**target.versions(), "run_key": target.run.run_key, "mode": params.mode.value, "k": params.k,
                "sets": [s.name for s in target.sets]},
        metrics=metrics, status=Status.FAILED if found else Status.DONE, run_key=target.run.run_key,
        parents=parents)
    if found:
        title, message = alert_text(target.alias, found, changed, params.baseline_window, params.tolerance)
        svc.notifier.alert(title, message, run_key=target.run.run_key,
                           context={"regressions": found, "changed": changed, "evaluation_id": art.id,
                                    "report": uri})
        raise EvaluationRegression(message)
    return EvaluationOutcome(art.id, art.version, uri, str(art.status), len(window), (), tuple(changed))
