"""rag_index's steps: load -> validate -> chunk -> validate -> plan -> embed shards -> gate -> swap.

Every step is a plain function of explicit inputs (registry, artifact store, vector store) that
returns a small JSON-able summary: the DAG maps them onto tasks and XCom, the CLI and benchmarks
call them in sequence through ``run_pipeline``. Each step is idempotent:
- artifacts are content-addressed and recorded by upsert;
- the target collection is named by the hash of (chunk set, model), so a retry or re-run writes
  into the same collection, with deterministic object ids, and never duplicates;
- the alias moves only after the gate passed, so no half-written collection goes live.
"""

from __future__ import annotations

import logging
import random
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ragops.hashing import hash_many, hash_object, short
from ragops.stores.base import VectorObject

log = logging.getLogger(__name__)

COLLECTION_KIND = "collection"


class DataQualityError(RuntimeError):
    """Data-quality checks failed: the run stops before anything goes live."""


class GateFailed(RuntimeError):
    """The collection gate failed: the alias stays where it was."""


@dataclass
class IndexParams:
    """rag_index's per-run choices (the DAG's Params, the CLI's flags). Validated on creation."""

    alias: str = "RagDocs"
    sources: list[dict[str, Any]] = field(default_factory=list)
    chunk_strategy: str = "structure"
    chunk_size: int = 200
    chunk_overlap: int = 32
    embedding_model: str = "production"
    mode: str = "incremental"
    keep_versions: int = 3
    on_bad_input: str = "skip"
    max_file_bytes: int = 5_000_000
    shard_size: int = 1024
    batch_size: int = 64
    # The smoke check catches a broken collection (vectors not matching their objects, a wrong
    # model), which scores near 0; real collections score 0.85-0.95 (bench/README.md). 50 samples
    # keep the sampling noise well below the gap. Quality regressions are the golden check's job.
    smoke_sample: int = 50
    smoke_k: int = 10
    smoke_min_hit_rate: float = 0.7
    golden_queries: str | None = None
    golden_mode: str = "hybrid"
    ndcg_tolerance: float = 0.02
    min_doc_chars: int = 1
    max_doc_chars: int = 2_000_000
    max_duplicate_ratio: float = 0.2

    def __post_init__(self) -> None:
        from ragops.stores.base import check_collection_name

        check_collection_name(self.alias)
        checks = {
            "mode": self.mode in ("full", "incremental"),
            "on_bad_input": self.on_bad_input in ("skip", "fail"),
            "chunk_strategy": self.chunk_strategy in ("structure", "fixed"),
            "chunk_size": self.chunk_size > 0,
            "chunk_overlap": 0 <= self.chunk_overlap < self.chunk_size,
            "keep_versions": self.keep_versions >= 1,
            "shard_size": self.shard_size > 0,
            "batch_size": self.batch_size > 0,
            "smoke_min_hit_rate": 0.0 <= self.smoke_min_hit_rate <= 1.0,
            "golden_mode": self.golden_mode in ("dense", "keyword", "hybrid"),
            "sources": bool(self.sources),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid rag_index params: {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> IndexParams:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown rag_index params: {unknown}")
        return cls(**{k: v for k, v in values.items() if v is not None or k == "golden_queries"})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def collection_name(alias: str, content_hash: str) -> str:
    return f"{alias}_{short(content_hash, 12)}"


# -- 1. prepare ---------------------------------------------------------------------------------
def prepare(registry: Any, settings: Any, params: IndexParams, dag_id: str, run_id: str,
            model_cache_dir: str = "/tmp/ragops-models") -> dict[str, Any]:
    """Starts the run in lineage and resolves the embedding model."""
    from ragops.artifacts import ArtifactStore
    from ragops.embedding import model_max_seq_length
    from ragops.models import resolve_embedding_model

    fallbacks = [fb.as_dict() for fb in settings.fallbacks]
    run_key = registry.start_run(dag_id, run_id, params.as_dict(), fallbacks)
    model = resolve_embedding_model(params.embedding_model, registry=registry,
                                    artifacts=ArtifactStore(settings.artifact_root), cache_dir=model_cache_dir)
    log.info("run %s: embedding model %s (%s)", run_key, model.model_id, model.path)
    return {"run_key": run_key, "params": params.as_dict(), "fallbacks": fallbacks,
            "backend": settings.vector_backend,
            "model": {"path": model.path, "model_id": model.model_id, "hash": model.content_hash,
                      "artifact_id": model.artifact_id},
            "max_tokens": model_max_seq_length(model.path)}


# -- 2. documents -------------------------------------------------------------------------------
def load_documents(ctx: dict[str, Any], registry: Any, artifacts: Any) -> dict[str, Any]:
    import pandas as pd

    from ragops.sources import load_source

    params = IndexParams(**ctx["params"])
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    owners: dict[str, str] = {}
    for spec in params.sources:
        if spec.get("type") == "demo":  # the packaged PostgreSQL manual, optionally a subset
            from ragops.demo_corpus import demo_source_spec

            spec = demo_source_spec(spec.get("subset", 120))
        result = load_source(spec, on_error=params.on_bad_input, max_bytes=params.max_file_bytes)
        for err in result.errors:
            log.warning("skipped bad input: %s", err)
            errors.append({"path": str(getattr(err, "path", "")), "reason": str(getattr(err, "reason", err))})
        for doc in result.documents:
            if doc.doc_id in owners:
                raise ValueError(f"document id {doc.doc_id!r} comes from two sources ({owners[doc.doc_id]!r} and "
                                 f"{doc.source!r}); give the sources distinct roots")
            owners[doc.doc_id] = doc.source
            rows.append(doc.to_row())
    if not rows:
        raise ValueError(f"no documents could be loaded from the sources {params.sources}"
                         f" ({len(errors)} bad inputs, e.g. {errors[:3]})")
    rows.sort(key=lambda r: r["doc_id"])
    snapshot = hash_many(f"{r['doc_id']}:{r['content_hash']}" for r in rows)
    rel = f"corpus/{params.alias}/{snapshot}.parquet"
    uri = artifacts.write_table(rel, pd.DataFrame(rows))
    metrics = {"documents": len(rows), "bad_inputs": len(errors), "chars": sum(r["n_chars"] for r in rows)}
    art = registry.record_artifact("corpus", params.alias, snapshot, uri, params={"sources": params.sources},
                                   metrics=metrics | {"bad_input_samples": errors[:20]}, status="loaded",
                                   run_key=ctx["run_key"])
    return {"corpus_id": art.id, "version": art.version, "rel": rel, "hash": snapshot, **metrics,
            "bad_input_samples": errors[:5], "seconds": round(time.perf_counter() - started, 3)}


def _fail_quality(registry: Any, notifier: Any, ctx: dict[str, Any], artifact_id: int, what: str,
                  result: Any) -> None:
    registry.update_artifact(artifact_id, status="failed_dq", metrics={"dq_failures": result.failures[:20]})
    summary = "; ".join(f.get("message", str(f)) for f in result.failures[:5])
    notifier.alert(f"data quality failed: {what}", f"{what} failed {len(result.failures)} checks: {summary}",
                   run_key=ctx["run_key"], context={"artifact_id": artifact_id, "alias": ctx["params"]["alias"]})
    raise DataQualityError(f"{what} failed data-quality checks ({summary}); nothing went live")


def _thresholds(params: IndexParams) -> Any:
    from ragops.quality import DQThresholds

    return DQThresholds(min_doc_chars=params.min_doc_chars, max_doc_chars=params.max_doc_chars,
                        max_duplicate_ratio=params.max_duplicate_ratio)


def validate_documents(ctx: dict[str, Any], corpus: dict[str, Any], registry: Any, artifacts: Any,
                       notifier: Any) -> dict[str, Any]:
    from ragops.quality import validate_documents as check

    params = IndexParams(**ctx["params"])
    df = artifacts.read_table(corpus["rel"]).to_pandas()
    result = check(df, _thresholds(params))
    registry.record_dq(ctx["run_key"], "documents", f"corpus:{corpus['corpus_id']}", result.success,
                       result.statistics, result.failures)
    if not result.success:
        _fail_quality(registry, notifier, ctx, corpus["corpus_id"], f"documents of corpus v{corpus['version']}",
                      result)
    registry.update_artifact(corpus["corpus_id"], status="validated")
    return {"success": True, "statistics": result.statistics}


# -- 3. chunks ----------------------------------------------------------------------------------
def tokenizer_hash(model_path: str) -> str:
    """Identity of a model's tokenizer files: chunk boundaries depend on it, the weights do not."""
    from pathlib import Path

    from ragops.hashing import sha256_bytes

    files = sorted(p for p in Path(model_path).iterdir()
                   if p.is_file() and (p.name.startswith(("tokenizer", "special_tokens")) or p.name == "vocab.txt"))
    return hash_object([(p.name, sha256_bytes(p.read_bytes())) for p in files])


def chunk_corpus(ctx: dict[str, Any], corpus: dict[str, Any], registry: Any, artifacts: Any) -> dict[str, Any]:
    """Chunks the corpus snapshot, or reuses the chunk set already made from this very snapshot with
    the same settings and tokenizer (a nightly run with nothing changed does no chunking)."""
    import pandas as pd

    from ragops.chunking import ChunkingConfig, chunk_documents
    from ragops.documents import Document
    from ragops.embedding import load_tokenizer

    params = IndexParams(**ctx["params"])
    started = time.perf_counter()
    config_dict = {"strategy": params.chunk_strategy, "chunk_size": params.chunk_size,
                   "chunk_overlap": params.chunk_overlap, "max_tokens": ctx["max_tokens"]}
    tokenizer_id = tokenizer_hash(ctx["model"]["path"])
    for child, relation in registry.children(corpus["corpus_id"]):
        if (child.kind == "chunks" and relation == "chunked_from" and child.status in ("chunked", "validated")
                and child.params.get("tokenizer") == tokenizer_id
                and all(child.params.get(k) == v for k, v in config_dict.items())):
            rel = f"chunks/{params.alias}/{child.content_hash}.parquet"
            if artifacts.exists(rel):
                log.info("corpus v%s was chunked the same way before: reusing chunk set v%s",
                         corpus["version"], child.version)
                return {"chunk_set_id": child.id, "version": child.version, "rel": rel, "hash": child.content_hash,
                        **{k: child.metrics[k] for k in ("chunks", "documents", "mean_tokens", "max_tokens")},
                        "reused": True, "seconds": round(time.perf_counter() - started, 3)}
    config = ChunkingConfig(strategy=params.chunk_strategy, chunk_size=params.chunk_size,
                            chunk_overlap=params.chunk_overlap, max_tokens=ctx["max_tokens"])
    docs = [Document.from_row(r) for r in artifacts.read_table(corpus["rel"]).to_pylist()]
    chunks = chunk_documents(docs, config, load_tokenizer(ctx["model"]["path"]))
    rows = [c.to_row() for c in chunks]
    # The tokenizer is recorded but kept out of the hash: the same chunks under a new model stay
    # the same chunk set, so downstream datasets do not churn on every model promotion.
    chunk_hash = hash_object({"chunks": hash_many(r["chunk_id"] for r in rows), "config": config_dict})
    rel = f"chunks/{params.alias}/{chunk_hash}.parquet"
    uri = artifacts.write_table(rel, pd.DataFrame(rows))
    metrics = {"chunks": len(rows), "documents": len({r["doc_id"] for r in rows}),
               "mean_tokens": round(sum(r["token_count"] for r in rows) / max(len(rows), 1), 1),
               "max_tokens": max((r["token_count"] for r in rows), default=0)}
    art = registry.record_artifact("chunks", params.alias, chunk_hash, uri,
                                   params=config_dict | {"tokenizer": tokenizer_id}, metrics=metrics,
                                   status="chunked", run_key=ctx["run_key"],
                                   parents=[(corpus["corpus_id"], "chunked_from")])
    return {"chunk_set_id": art.id, "version": art.version, "rel": rel, "hash": chunk_hash, **metrics,
            "reused": False, "seconds": round(time.perf_counter() - started, 3)}


def validate_chunks(ctx: dict[str, Any], chunk_info: dict[str, Any], registry: Any, artifacts: Any,
                    notifier: Any) -> dict[str, Any]:
    from ragops.quality import validate_chunks as check

    params = IndexParams(**ctx["params"])
    df = artifacts.read_table(chunk_info["rel"]).to_pandas()
    result = check(df, ctx["max_tokens"], _thresholds(params))
    registry.record_dq(ctx["run_key"], "chunks", f"chunks:{chunk_info['chunk_set_id']}", result.success,
                       result.statistics, result.failures)
    if not result.success:
        _fail_quality(registry, notifier, ctx, chunk_info["chunk_set_id"],
                      f"chunks of chunk set v{chunk_info['version']}", result)
    registry.update_artifact(chunk_info["chunk_set_id"], status="validated")
    return {"success": True, "statistics": result.statistics}


# -- 4. plan the target collection --------------------------------------------------------------
def plan_collection(ctx: dict[str, Any], chunk_info: dict[str, Any], registry: Any, artifacts: Any,
                    store: Any) -> dict[str, Any]:
    """Creates (or finds) the target collection, copies reusable vectors, and shards the rest.

    Incremental: chunks whose id (document, position, content hash) is in the live collection,
    embedded by the same model, are copied with their vectors; new and changed chunks are
    embedded; chunks of deleted documents are simply not carried over.
    """
    params = IndexParams(**ctx["params"])
    started = time.perf_counter()
    model = ctx["model"]
    target_hash = hash_object({"chunk_set": chunk_info["hash"], "model": model["hash"]})
    target = collection_name(params.alias, target_hash)
    live = store.get_alias(params.alias)
    art = registry.find_artifact(COLLECTION_KIND, params.alias, content_hash=target_hash)
    if live == target and art is not None and art.status == "live":
        log.info("collection %s is already live for this chunk set and model: nothing to do", target)
        return {"action": "noop", "collection": target, "artifact_id": art.id, "version": art.version,
                "shards": [], "stats": {"to_embed": 0}}
    art = registry.record_artifact(
        COLLECTION_KIND, params.alias, target_hash, target,
        params={"model_id": model["model_id"], "model_hash": model["hash"], "chunk_set_id": chunk_info["chunk_set_id"],
                "backend": ctx["backend"], "mode": params.mode},
        status="building", run_key=ctx["run_key"],
        parents=[(chunk_info["chunk_set_id"], "embedded_from")]
        + ([(model["artifact_id"], "embedded_with")] if model.get("artifact_id") else []))
    dimension = _model_dimension(model["path"])
    store.create_collection(target, dimension, {"alias": params.alias, "model_id": model["model_id"],
                                                "model_hash": model["hash"], "chunk_set_hash": chunk_info["hash"],
                                                "artifact_id": art.id})
    needed = [r["chunk_id"] for r in artifacts.read_table(chunk_info["rel"]).select(["chunk_id"]).to_pylist()]
    needed_set = set(needed)
    present = {o.id for o in store.iter_objects(target)} & needed_set
    copied = 0
    if params.mode == "incremental" and live and live != target and store.collection_exists(live):
        if store.collection_metadata(live).get("model_hash") == model["hash"]:
            live_ids = {o.id for o in store.iter_objects(live)}
            reusable = sorted((live_ids & needed_set) - present)
            for i in range(0, len(reusable), 2000):
                copied += store.copy_objects(live, target, reusable[i:i + 2000])
            present |= set(reusable)
        else:
            log.info("live collection %s was embedded by another model: re-embedding everything", live)
    to_embed = sorted(needed_set - present)
    plan_rel = f"plans/{target}/{hash_many(to_embed)}.json"
    artifacts.write_json(plan_rel, {"collection": target, "chunks_rel": chunk_info["rel"], "to_embed": to_embed})
    shards = [{"collection": target, "plan_rel": plan_rel, "index": i, "size": params.shard_size}
              for i in range(0, (len(to_embed) + params.shard_size - 1) // params.shard_size)]
    stats = {"chunks": len(needed), "already_present": len(present) - copied, "copied": copied,
             "to_embed": len(to_embed), "shards": len(shards), "plan_seconds": round(time.perf_counter() - started, 3)}
    registry.update_artifact(art.id, metrics=stats)
    return {"action": "build", "collection": target, "artifact_id": art.id, "version": art.version,
            "live_before": live, "shards": shards, "stats": stats, "dimension": dimension}


def _model_dimension(path: str) -> int:
    """The model's output dimension, read from its pooling config when it says (no weights loaded).

    sentence-transformers < 6 writes ``word_embedding_dimension``, 6.x ``embedding_dimension``; a
    model with a Dense or other final layer is loaded to ask it."""
    import json
    from pathlib import Path

    modules = Path(path) / "modules.json"
    layers = json.loads(modules.read_text()) if modules.exists() else []
    if layers and str(layers[-1].get("type", "")).endswith("Normalize"):
        layers = layers[:-1]
    if layers and str(layers[-1].get("type", "")).endswith("Pooling"):
        config = Path(path) / layers[-1]["path"] / "config.json"
        if config.exists():
            values = json.loads(config.read_text())
            for key in ("embedding_dimension", "word_embedding_dimension"):
                if key in values:
                    return int(values[key])
    from ragops.embedding import Embedder

    return Embedder(path).dimension


# -- 5. embed one shard -------------------------------------------------------------------------
def embed_shard(ctx: dict[str, Any], shard: dict[str, Any], artifacts: Any, store: Any,
                embedder: Any = None) -> dict[str, Any]:
    """Embeds one shard of the plan and upserts it batch by batch (progress survives a crash)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from ragops.documents import embedding_text_of
    from ragops.embedding import Embedder

    params = IndexParams(**ctx["params"])
    plan = artifacts.read_json(shard["plan_rel"])
    ids = plan["to_embed"][shard["index"] * shard["size"]:(shard["index"] + 1) * shard["size"]]
    table = artifacts.read_table(plan["chunks_rel"])
    rows = table.filter(pc.is_in(table["chunk_id"], value_set=pa.array(ids))).to_pylist()
    embedder = embedder or Embedder(ctx["model"]["path"], batch_size=params.batch_size)  # loaded once per task
    encode_s = write_s = 0.0
    written = 0
    for i in range(0, len(rows), params.batch_size):
        batch = rows[i:i + params.batch_size]
        t0 = time.perf_counter()
        vectors = embedder.encode([embedding_text_of(r) for r in batch])
        t1 = time.perf_counter()
        written += store.upsert(shard["collection"], [
            VectorObject(id=r["chunk_id"], properties=r, vector=v) for r, v in zip(batch, vectors)])
        write_s += time.perf_counter() - t1
        encode_s += t1 - t0
    return {"shard": shard["index"], "embedded": written, "encode_seconds": round(encode_s, 3),
            "write_seconds": round(write_s, 3)}


# -- 6. gate ------------------------------------------------------------------------------------
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


def _smoke_hit(row: dict[str, Any], hits: list[Any]) -> bool:
    """The chunk is found, or a chunk with the very same text is (exact duplicates are
    indistinguishable to any retriever, and the duplicate-ratio check bounds how many there are)."""
    return any(h.id == row["chunk_id"] or h.properties.get("text") == row["text"] for h in hits)


def gate_collection(ctx: dict[str, Any], plan: dict[str, Any], chunk_info: dict[str, Any], registry: Any,
                    artifacts: Any, store: Any, notifier: Any, embedder: Any = None) -> dict[str, Any]:
    """Checks the target before it may go live; records the report; raises GateFailed on failure."""
    from ragops.embedding import Embedder

    params = IndexParams(**ctx["params"])
    target = plan["collection"]
    embedder = embedder or Embedder(ctx["model"]["path"])
    checks: dict[str, dict[str, Any]] = {}
    count = store.count(target)
    checks["object_count"] = {"passed": count == chunk_info["chunks"], "observed": count,
                              "expected": chunk_info["chunks"]}
    rows = artifacts.read_table(chunk_info["rel"]).to_pylist()
    rng = random.Random(chunk_info["hash"])  # the same sample on every retry
    sample = rng.sample(rows, min(params.smoke_sample, len(rows)))
    fetched = store.fetch(target, [r["chunk_id"] for r in sample[:5]], include_vectors=True)
    dims = sorted({len(o.vector) for o in fetched if o.vector is not None})
    checks["vector_dimension"] = {"passed": dims == [embedder.dimension] and
                                  store.collection_metadata(target).get("dimension") == embedder.dimension,
                                  "observed": dims, "expected": embedder.dimension}
    queries = [smoke_query(r) for r in sample]
    vectors = embedder.encode(queries)
    hits = sum(1 for r, v in zip(sample, vectors) if _smoke_hit(r, store.vector_search(target, v, k=params.smoke_k)))
    rate = hits / max(len(sample), 1)
    checks["retrieval_smoke"] = {"passed": rate >= params.smoke_min_hit_rate, "observed": round(rate, 3),
                                 "expected": f">= {params.smoke_min_hit_rate} in top {params.smoke_k}"}
    if params.golden_queries:
        checks["golden_ndcg"] = _golden_check(ctx, params, target, plan.get("live_before"), registry, artifacts,
                                              store, embedder)
    passed = all(c["passed"] for c in checks.values())
    report = {"collection": target, "passed": passed, "checks": checks}
    report_rel = f"reports/gate/{target}/{hash_object(report)}.json"
    uri = artifacts.write_json(report_rel, report)
    evaluation = registry.record_artifact(
        "evaluation", f"{params.alias}-gate", hash_object(report), uri,
        metrics={k: v["observed"] for k, v in checks.items()} | {"passed": passed},
        status="passed" if passed else "failed", run_key=ctx["run_key"],
        parents=[(plan["artifact_id"], "evaluates")])
    registry.update_artifact(plan["artifact_id"], status="ready" if passed else "failed_gate",
                             metrics={"gate": {k: v["observed"] for k, v in checks.items()}})
    if not passed:
        failed = {k: v for k, v in checks.items() if not v["passed"]}
        notifier.alert(f"gate failed: {target}", f"collection {target} failed {sorted(failed)}; alias "
                       f"{params.alias} stays on {plan.get('live_before')}", run_key=ctx["run_key"],
                       context={"checks": failed})
        raise GateFailed(f"collection {target} failed the gate: {failed}")
    return {"passed": True, "evaluation_id": evaluation.id, "report": report_rel,
            "checks": {k: v["observed"] for k, v in checks.items()}}


def _golden_check(ctx: dict[str, Any], params: IndexParams, target: str, live: str | None, registry: Any,
                  artifacts: Any, store: Any, embedder: Any) -> dict[str, Any]:
    from ragops.embedding import Embedder
    from ragops.models import artifact_model_path
    from ragops.retrieval_eval import evaluate_collection, load_golden_queries

    labelled = load_golden_queries(params.golden_queries)
    mode = params.golden_mode
    new = evaluate_collection(store, target, labelled, embedder.encode, modes=[mode])[mode]["ndcg@10"]
    if not live or live == target or not store.collection_exists(live):
        return {"passed": True, "observed": {"candidate": new, "live": None}, "expected": "no live collection"}
    live_meta = store.collection_metadata(live)
    live_encoder = embedder
    if live_meta.get("model_hash") != ctx["model"]["hash"]:
        live_art = registry.get_artifact(int(live_meta["artifact_id"])) if live_meta.get("artifact_id") else None
        model_art = None
        if live_art is not None:
            model_ids = [p.id for p, rel in registry.parents(live_art.id) if rel == "embedded_with"]
            model_art = registry.get_artifact(model_ids[0]) if model_ids else None
        if model_art is None:
            return {"passed": True, "observed": {"candidate": new, "live": None},
                    "expected": "live model unknown: comparison skipped"}
        live_encoder = Embedder(artifact_model_path(model_art, artifacts, "/tmp/ragops-models"))
    old = evaluate_collection(store, live, labelled, live_encoder.encode, modes=[mode])[mode]["ndcg@10"]
    return {"passed": new >= old - params.ndcg_tolerance, "observed": {"candidate": new, "live": old},
            "expected": f"candidate >= live - {params.ndcg_tolerance} ({mode})"}


# -- 7. swap, clean up, roll back ---------------------------------------------------------------
def swap_alias(ctx: dict[str, Any], plan: dict[str, Any], registry: Any, store: Any,
               reason: str = "gate passed") -> dict[str, Any]:
    """Points the alias at the gated collection: one atomic switch in the store, then the record."""
    alias = ctx["params"]["alias"]
    previous = store.set_alias(alias, plan["collection"])
    before = registry.get_alias(COLLECTION_KIND, alias)
    registry.set_alias(COLLECTION_KIND, alias, plan["artifact_id"], reason=reason, run_key=ctx["run_key"])
    registry.update_artifact(plan["artifact_id"], status="live")
    if before is not None and before.id != plan["artifact_id"]:
        registry.update_artifact(before.id, status="superseded")
    return {"alias": alias, "collection": plan["collection"], "previous": previous,
            "moved": previous != plan["collection"]}


def cleanup_versions(alias: str, keep: int, registry: Any, store: Any) -> dict[str, Any]:
    """Keeps the newest ``keep`` versions (and always the live one); records deletions."""
    live = store.get_alias(alias)
    versions = sorted(registry.list_artifacts(COLLECTION_KIND, alias), key=lambda a: -a.version)
    existing = set(store.list_collections(prefix=f"{alias}_"))
    kept, deleted = [], []
    for art in versions:
        if art.uri not in existing:
            continue
        if art.uri == live or len(kept) < keep:
            kept.append(art.uri)
            continue
        store.delete_collection(art.uri)
        registry.update_artifact(art.id, status="deleted")
        deleted.append(art.uri)
    return {"kept": kept, "deleted": deleted}


def rollback(alias: str, version: int, registry: Any, store: Any, run_key: str | None = None) -> dict[str, Any]:
    """Points the alias back at an earlier version, after checking it is still whole."""
    art = registry.find_artifact(COLLECTION_KIND, alias, version=version)
    if art is None:
        raise ValueError(f"collection alias {alias!r} has no version {version} in the lineage registry")
    if art.status in ("deleted", "failed_gate", "building", "failed_dq"):
        raise ValueError(f"collection {art.uri} (v{version}) has status {art.status!r} and cannot go live")
    if not store.collection_exists(art.uri):
        raise ValueError(f"collection {art.uri} (v{version}) no longer exists in the vector store")
    expected = (art.metrics or {}).get("chunks")
    if expected is not None and store.count(art.uri) != expected:
        raise ValueError(f"collection {art.uri} holds {store.count(art.uri)} objects, expected {expected}")
    ctx = {"params": {"alias": alias}, "run_key": run_key}
    return swap_alias(ctx, {"collection": art.uri, "artifact_id": art.id}, registry, store,
                      reason=f"rollback to v{version}")


def lineage_summary(ctx: dict[str, Any], registry: Any, *, corpus: dict | None = None,
                    chunks: dict | None = None, plan: dict | None = None, shards: list | None = None,
                    gate: dict | None = None, swap: dict | None = None, cleanup: dict | None = None,
                    **extra: Any) -> dict[str, Any]:
    """The compact record each run pushes to XCom (and stores with the run): ids, versions,
    metrics; never data. The DAG and ``run_pipeline`` build it the same way."""
    alias = ctx["params"]["alias"]
    live = registry.get_alias(COLLECTION_KIND, alias)
    steps = {
        "corpus": corpus and _brief(corpus),
        "chunks": chunks and _brief(chunks),
        "plan": plan and {"action": plan["action"], "collection": plan["collection"], **plan["stats"]},
        "embedded": shards and {"shards": len(shards), "chunks": sum(s["embedded"] for s in shards),
                                "encode_seconds": round(sum(s["encode_seconds"] for s in shards), 3),
                                "write_seconds": round(sum(s["write_seconds"] for s in shards), 3)},
        "gate": gate and gate["checks"], "swap": swap, "cleanup": cleanup, **extra,
    }
    return {"run_key": ctx["run_key"], "alias": alias, "model": ctx["model"]["model_id"],
            "fallbacks": [f["service"] + " -> " + f["using"] for f in ctx.get("fallbacks", [])],
            "live": live.summary() if live else None,
            **{k: v for k, v in steps.items() if v is not None}}


# -- the whole pipeline, in process (CLI, benchmarks) -------------------------------------------
def run_pipeline(settings: Any, params: IndexParams, run_id: str, *, registry: Any = None, store: Any = None,
                 artifacts: Any = None, notifier: Any = None, embedder: Any = None,
                 dag_id: str = "ragops_cli") -> dict[str, Any]:
    """Runs every step in sequence, as the DAG does, and returns the lineage summary with timings."""
    from ragops.artifacts import ArtifactStore
    from ragops.lineage import Registry
    from ragops.notify import Notifier
    from ragops.stores import open_store

    registry = registry or Registry(settings.pg_dsn, settings.schema)
    registry.migrate()
    artifacts = artifacts or ArtifactStore(settings.artifact_root)
    store = store or open_store(settings)
    notifier = notifier or Notifier(registry)
    timings: dict[str, float] = {}
    ctx = prepare(registry, settings, params, dag_id, run_id)
    try:
        corpus = load_documents(ctx, registry, artifacts)
        timings["load"] = corpus["seconds"]
        validate_documents(ctx, corpus, registry, artifacts, notifier)
        chunk_info = chunk_corpus(ctx, corpus, registry, artifacts)
        timings["chunk"] = chunk_info["seconds"]
        validate_chunks(ctx, chunk_info, registry, artifacts, notifier)
        plan = plan_collection(ctx, chunk_info, registry, artifacts, store)
        timings["plan"] = plan["stats"].get("plan_seconds", 0.0)
        swap = gate = None
        shards: list[dict[str, Any]] = []
        if plan["action"] == "build":
            if embedder is None and plan["shards"]:
                from ragops.embedding import Embedder

                embedder = Embedder(ctx["model"]["path"], batch_size=params.batch_size)
            shards = [embed_shard(ctx, s, artifacts, store, embedder) for s in plan["shards"]]
            timings["embed"] = round(sum(s["encode_seconds"] for s in shards), 3)
            timings["write"] = round(sum(s["write_seconds"] for s in shards), 3)
            t0 = time.perf_counter()
            gate = gate_collection(ctx, plan, chunk_info, registry, artifacts, store, notifier, embedder)
            swap = swap_alias(ctx, plan, registry, store)
            timings["gate_and_swap"] = round(time.perf_counter() - t0, 3)
        cleanup = cleanup_versions(params.alias, params.keep_versions, registry, store)
        summary = lineage_summary(ctx, registry, corpus=corpus, chunks=chunk_info, plan=plan, shards=shards,
                                  gate=gate, swap=swap, cleanup=cleanup, timings=timings)
        registry.finish_run(ctx["run_key"], "success", summary)
        return summary
    except Exception as exc:
        registry.finish_run(ctx["run_key"], "failed", {"error": str(exc)[:2000], "timings": timings})
        raise


def _brief(step: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in step.items() if k not in ("rel", "bad_input_samples") and not isinstance(v, list | dict)}
