"""rag_synthetic_data's steps: sample -> generate -> filter -> negatives -> split -> validate -> register.

Each step is a plain function of explicit inputs that returns a small JSON-able summary (ids,
store paths, counts): the DAG maps them onto tasks and XCom, tests and the benchmark call them
through ``run_pipeline``. Each is idempotent: intermediate tables are content-addressed in the
artifact store (``synthetic/<step>/<hash>.parquet``), LLM answers come from the cache on a retry,
and the dataset is registered by upsert on the hash of its rows.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Any

from ragops.hashing import hash_object, short

log = logging.getLogger(__name__)

CHUNKS_KIND = "chunks"
COLLECTION_KIND = "collection"
PROMPT_KIND = "prompt"
REVIEW_KIND = "review"
GENERATOR_KIND = "llm"
GENERATORS = ("auto", "llm", "offline")


@dataclass
class SyntheticParams:
    """rag_synthetic_data's per-run choices (the DAG's Params). Validated on creation."""

    alias: str = "RagDocs"                 # collection alias whose live chunk set is used
    chunk_set: str = ""                    # "" = the live collection's chunk set; "v3" = that chunk-set version
    sample_size: int = 200
    sample_strategy: str = "stratified"    # stratified (spread across documents) | uniform
    min_chunk_words: int = 8
    questions_per_chunk: int = 2
    generator: str = "auto"                # auto (llm if the connection exists, else offline) | llm | offline
    llm_model: str = ""                    # "" = the connection extra's "model"
    temperature: float = 0.7
    max_tokens: int = 512
    concurrency: int = 4
    json_attempts: int = 3
    budget_max_tokens: int = 0             # 0 = no cap
    budget_max_usd: float = 0.0            # 0 = no cap
    price_prompt_per_1m: float | None = None       # None = connection extra, else 0
    price_completion_per_1m: float | None = None
    prompt: str = "query_generation.v1"
    min_query_words: int = 3
    max_query_words: int = 64
    near_duplicate_jaccard: float = 0.9
    round_trip: bool = False
    round_trip_k: int = 5
    hard_negatives: bool = False
    negatives_k: int = 10
    test_ratio: float = 0.2
    seed: int = 13
    max_doc_share: float = 0.2
    review_sample_size: int = 50
    review_format: str = "jsonl"

    def __post_init__(self) -> None:
        from ragops.stores.base import check_collection_name
        from ragops.synthetic.review import FORMATS
        from ragops.synthetic.sampling import STRATEGIES

        check_collection_name(self.alias)
        checks = {
            "chunk_set": self.chunk_set == "" or self.chunk_set.lstrip("v").isdigit(),
            "sample_size": self.sample_size > 0,
            "sample_strategy": self.sample_strategy in STRATEGIES,
            "questions_per_chunk": 1 <= self.questions_per_chunk <= 20,
            "generator": self.generator in GENERATORS,
            "temperature": 0.0 <= self.temperature <= 2.0,
            "concurrency": 1 <= self.concurrency <= 256,
            "json_attempts": self.json_attempts >= 1,
            "budget_max_tokens": self.budget_max_tokens >= 0,
            "budget_max_usd": self.budget_max_usd >= 0,
            "prompt": "." in self.prompt,
            "min_query_words": 1 <= self.min_query_words <= self.max_query_words,
            "near_duplicate_jaccard": 0.0 < self.near_duplicate_jaccard <= 1.0,
            "round_trip_k": self.round_trip_k >= 1,
            "negatives_k": self.negatives_k >= 1,
            "test_ratio": 0.0 <= self.test_ratio < 1.0,
            "max_doc_share": 0.0 < self.max_doc_share <= 1.0,
            "review_sample_size": self.review_sample_size >= 0,
            "review_format": self.review_format in FORMATS,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid rag_synthetic_data params: {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> SyntheticParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown rag_synthetic_data params: {unknown}")
        return cls(**{k: v for k, v in values.items() if v is not None})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def prompt_name_version(self) -> tuple[str, str]:
        name, _, version = self.prompt.rpartition(".")
        return name, version


def _params(ctx: dict[str, Any]) -> SyntheticParams:
    return SyntheticParams(**ctx["params"])


def _rows(artifacts: Any, rel: str) -> list[dict[str, Any]]:
    return artifacts.read_table(rel).to_pylist()


def _write_rows(artifacts: Any, rel: str, rows: list[dict[str, Any]]) -> str:
    import pyarrow as pa

    artifacts.write_table(rel, pa.Table.from_pylist(rows) if rows else pa.table({"chunk_id": pa.array([], pa.string())}))
    return rel


# -- 1. prepare ---------------------------------------------------------------------------------
def prepare(registry: Any, params: SyntheticParams, dag_id: str, run_id: str, *, artifacts: Any,
            fallbacks: list[dict[str, str]] | None = None, model_cache_dir: str = "/tmp/ragops-models") -> dict[str, Any]:
    """Starts the run in lineage and resolves the chunk set and the embedding model to use."""
    run_key = registry.start_run(dag_id, run_id, params.as_dict(), fallbacks or [])
    collection = registry.get_alias(COLLECTION_KIND, params.alias)
    if params.chunk_set:
        version = int(params.chunk_set.lstrip("v"))
        chunk_set = registry.find_artifact(CHUNKS_KIND, params.alias, version=version)
        if chunk_set is None:
            raise ValueError(f"param chunk_set={params.chunk_set!r}: the lineage registry has no chunk set "
                             f"{params.alias!r} v{version}")
    elif collection is not None and collection.params.get("chunk_set_id"):
        chunk_set = registry.get_artifact(int(collection.params["chunk_set_id"]))
    else:
        chunk_set = registry.find_artifact(CHUNKS_KIND, params.alias)
    if chunk_set is None:
        raise ValueError(f"no chunk set for alias {params.alias!r}: run rag_index first or pass param chunk_set")
    model = _embedding_model(registry, artifacts, collection, model_cache_dir)
    from ragops.synthetic.dataset import rel_of_uri

    source = {"chunk_set_id": chunk_set.id, "chunk_set_version": chunk_set.version,
              "chunk_set_hash": chunk_set.content_hash, "chunks_rel": rel_of_uri(artifacts, chunk_set.uri),
              "collection": collection.uri if collection else None,
              "collection_id": collection.id if collection else None,
              # the live collection holds the chunks of this set only when it was built from it
              "collection_matches": bool(collection and collection.params.get("chunk_set_id") == chunk_set.id)}
    log.info("run %s: chunk set %s v%s, collection %s, model %s", run_key, params.alias, chunk_set.version,
             source["collection"], model["model_id"])
    return {"run_key": run_key, "params": params.as_dict(), "fallbacks": fallbacks or [], "source": source,
            "model": model}


def _embedding_model(registry: Any, artifacts: Any, collection: Any, cache_dir: str) -> dict[str, Any]:
    """The model that embedded the live collection (queries must be embedded alike), else the
    production model."""
    from ragops.models import artifact_model_path, resolve_embedding_model

    if collection is not None:
        for parent, relation in registry.parents(collection.id):
            if relation == "embedded_with":
                return {"path": artifact_model_path(parent, artifacts, cache_dir),
                        "model_id": collection.params.get("model_id") or f"{parent.name}:v{parent.version}",
                        "artifact_id": parent.id}
    model = resolve_embedding_model("production", registry=registry, artifacts=artifacts, cache_dir=cache_dir)
    return {"path": model.path, "model_id": model.model_id, "artifact_id": model.artifact_id}


# -- 2. sample ----------------------------------------------------------------------------------
def sample(ctx: dict[str, Any], artifacts: Any) -> dict[str, Any]:
    from ragops.synthetic.sampling import sample_chunks

    p = _params(ctx)
    choice = {"chunk_set": ctx["source"]["chunk_set_hash"], "size": p.sample_size, "strategy": p.sample_strategy,
              "seed": p.seed, "min_words": p.min_chunk_words}
    rel = f"synthetic/samples/{hash_object(choice)}.parquet"
    if not artifacts.exists(rel):
        picked = sample_chunks(_rows(artifacts, ctx["source"]["chunks_rel"]), size=p.sample_size,
                               strategy=p.sample_strategy, seed=p.seed, min_words=p.min_chunk_words)
        _write_rows(artifacts, rel, picked)
    rows = _rows(artifacts, rel)
    return {"rel": rel, "chunks": len(rows), "docs": len({r["doc_id"] for r in rows})}


# -- 3. generate --------------------------------------------------------------------------------
def register_prompt(registry: Any, prompt: Any, run_key: str | None) -> Any:
    from pathlib import Path

    return registry.record_artifact(PROMPT_KIND, prompt.name, prompt.content_hash,
                                    f"package://ragops/prompts/{Path(prompt.path).name}",
                                    params={"version": prompt.version, "version_id": prompt.version_id},
                                    status="usable", run_key=run_key)


def generate(ctx: dict[str, Any], sampled: dict[str, Any], registry: Any, artifacts: Any, *,
             llm: Any = None, client: Any = None, on_answer: Any = None) -> dict[str, Any]:
    """Queries for the sampled chunks, by the LLM (``llm``: ``LLMSettings``) or offline.

    ``llm`` carries the endpoint and key: it is built inside the task and never returned."""
    from ragops.documents import embedding_text_of
    from ragops.prompts import load_prompt
    from ragops.synthetic.generation import Budget, generate_with_llm
    from ragops.synthetic.offline import offline_queries

    p = _params(ctx)
    chunks = _rows(artifacts, sampled["rel"])
    if p.generator == "llm" and llm is None:
        raise ValueError("param generator='llm' needs the Airflow connection 'ragops_llm' (an OpenAI-compatible "
                         "endpoint); use generator='offline' or 'auto' to run without it")
    use_llm = llm is not None and p.generator != "offline"
    summary: dict[str, Any] = {"generator": "llm" if use_llm else "offline", "chunks": len(chunks)}
    if use_llm:
        name, version = p.prompt_name_version
        prompt = load_prompt(name, version)
        prompt_art = register_prompt(registry, prompt, ctx["run_key"])
        model_art = registry.record_artifact(
            GENERATOR_KIND, llm.model, hash_object({"model": llm.model}), f"llm://{llm.model}",
            params={"model": llm.model}, status="usable", run_key=ctx["run_key"])
        budget = Budget(max_tokens=p.budget_max_tokens or None, max_cost_usd=p.budget_max_usd or None)
        records, stats = generate_with_llm(chunks, settings=llm, prompt=prompt, registry=registry,
                                           questions_per_chunk=p.questions_per_chunk, seed=p.seed,
                                           concurrency=p.concurrency, budget=budget, client=client,
                                           on_answer=on_answer)
        by_id = {c["chunk_id"]: c for c in chunks}
        records = [{**r, "positive": embedding_text_of(by_id[r["chunk_id"]])} for r in records]
        if not records and stats.dropped_api_error:
            raise RuntimeError(f"the LLM produced nothing: {stats.dropped_api_error} of {len(chunks)} chunks failed "
                               "after all retries (answers paid so far are cached; a retry resumes)")
        summary.update(stats=stats.as_dict(), prompt={"id": prompt_art.id, "version_id": prompt.version_id},
                       llm={"id": model_art.id, **llm.public()})
    else:
        records = offline_queries(chunks, questions_per_chunk=p.questions_per_chunk, seed=p.seed)
        summary["stats"] = {"kinds": {k: sum(r["kind"] == k for r in records) for k in ("heading", "ict")}}
    rel = f"synthetic/generated/{hash_object([sampled['rel'], records])}.parquet"
    _write_rows(artifacts, rel, records)
    summary.update(rel=rel, queries=len(records))
    return summary


# -- 4. filter ----------------------------------------------------------------------------------
def _embedder(ctx: dict[str, Any], embedder: Any) -> Any:
    if embedder is not None:
        return embedder
    from ragops.embedding import Embedder

    return Embedder(ctx["model"]["path"])


def _use_store(ctx: dict[str, Any], store: Any) -> bool:
    src = ctx["source"]
    return bool(store is not None and src["collection"] and src["collection_matches"]
                and store.collection_exists(src["collection"]))


def filter_queries(ctx: dict[str, Any], generated: dict[str, Any], sampled: dict[str, Any], artifacts: Any, *,
                   store: Any = None, embedder: Any = None) -> dict[str, Any]:
    from ragops.synthetic.filters import (
        FilterConfig,
        apply_filters,
        local_retriever,
        round_trip_filter,
        store_retriever,
    )

    p = _params(ctx)
    config = FilterConfig(min_words=p.min_query_words, max_words=p.max_query_words,
                          near_duplicate_jaccard=p.near_duplicate_jaccard)
    choice = {"in": generated["rel"], "config": config.as_dict(), "round_trip": p.round_trip, "k": p.round_trip_k,
              "model": ctx["model"]["model_id"], "store": _use_store(ctx, store) and ctx["source"]["collection"]}
    rel = f"synthetic/filtered/{hash_object(choice)}.parquet"
    meta_rel = rel.replace(".parquet", ".json")
    if artifacts.exists(meta_rel):
        return artifacts.read_json(meta_rel)
    records = _rows(artifacts, generated["rel"])
    kept, counts = apply_filters(records, config)
    round_trip_corpus = None
    if p.round_trip and kept:
        enc = _embedder(ctx, embedder)
        if _use_store(ctx, store):
            retrieve, round_trip_corpus = store_retriever(enc, store, ctx["source"]["collection"]), "live collection"
        else:
            retrieve, round_trip_corpus = local_retriever(enc, _rows(artifacts, sampled["rel"])), "sampled chunks"
        kept, counts["round_trip"] = round_trip_filter(kept, retrieve, p.round_trip_k)
    _write_rows(artifacts, rel, kept)
    summary = {"rel": rel, "input": len(records), "kept": len(kept), "filter_counts": counts,
               "round_trip_corpus": round_trip_corpus}
    artifacts.write_json(meta_rel, summary)
    return summary


# -- 5. hard negatives --------------------------------------------------------------------------
def mine_negatives(ctx: dict[str, Any], filtered: dict[str, Any], sampled: dict[str, Any], artifacts: Any, *,
                   store: Any = None, embedder: Any = None) -> dict[str, Any]:
    from ragops.synthetic.negatives import local_searcher, mine_hard_negatives, store_searcher

    p = _params(ctx)
    if not p.hard_negatives:
        return {"rel": filtered["rel"], "enabled": False, "mined": 0}
    use_store = _use_store(ctx, store)
    choice = {"in": filtered["rel"], "k": p.negatives_k, "model": ctx["model"]["model_id"],
              "store": use_store and ctx["source"]["collection"]}
    rel = f"synthetic/negatives/{hash_object(choice)}.parquet"
    meta_rel = rel.replace(".parquet", ".json")
    if artifacts.exists(meta_rel):
        return artifacts.read_json(meta_rel)
    records = _rows(artifacts, filtered["rel"])
    enc = _embedder(ctx, embedder)
    if use_store:
        search, corpus = store_searcher(store, ctx["source"]["collection"]), "live collection"
    else:
        search, corpus = local_searcher(enc, _rows(artifacts, sampled["rel"])), "sampled chunks"
    records, mined = mine_hard_negatives(records, enc, search, k=p.negatives_k)
    _write_rows(artifacts, rel, records)
    summary = {"rel": rel, "enabled": True, "mined": mined, "without_negative": len(records) - mined,
               "corpus": corpus}
    artifacts.write_json(meta_rel, summary)
    return summary


# -- 6. split -----------------------------------------------------------------------------------
def split(ctx: dict[str, Any], upstream: dict[str, Any], artifacts: Any) -> dict[str, Any]:
    from ragops.synthetic.dataset import dataset_hash, split_stats, to_rows
    from ragops.synthetic.split import split_by_document

    p = _params(ctx)
    records = _rows(artifacts, upstream["rel"])
    train, test = split_by_document(records, test_ratio=p.test_ratio, seed=p.seed)
    splits = {"train": to_rows(train), "test": to_rows(test)}
    content_hash = dataset_hash(splits)
    rel = f"synthetic/splits/{content_hash}.parquet"
    _write_rows(artifacts, rel, [{**r, "split": name} for name, rows in splits.items() for r in rows])
    return {"rel": rel, "hash": content_hash, **split_stats(splits)}


def _splits_of(artifacts: Any, rel: str) -> dict[str, list[dict[str, Any]]]:
    from ragops.synthetic.dataset import COLUMNS, SPLITS

    table = artifacts.read_table(rel)
    rows = table.to_pylist() if "split" in table.column_names else []
    return {name: [{c: r.get(c) for c in COLUMNS} for r in rows if r["split"] == name] for name in SPLITS}


# -- 7. validate --------------------------------------------------------------------------------
def validate(ctx: dict[str, Any], split_info: dict[str, Any], registry: Any, artifacts: Any) -> dict[str, Any]:
    from ragops.synthetic.quality import SUITE_NAME, validate_dataset

    p = _params(ctx)
    result = validate_dataset(_splits_of(artifacts, split_info["rel"]), min_words=p.min_query_words,
                              max_words=p.max_query_words, max_doc_share=p.max_doc_share)
    registry.record_dq(ctx["run_key"], SUITE_NAME, f"dataset:{short(split_info['hash'])}", result.success,
                       result.statistics, result.failures)
    return {"success": bool(result.success), "failures": result.failures, "statistics": result.statistics}


# -- 8. save and register -----------------------------------------------------------------------
def register(ctx: dict[str, Any], split_info: dict[str, Any], dq: dict[str, Any], registry: Any, artifacts: Any,
             notifier: Any, *, generated: dict[str, Any], filtered: dict[str, Any],
             negatives: dict[str, Any] | None = None, sampled: dict[str, Any] | None = None) -> dict[str, Any]:
    """Saves the DatasetDict and records it: ``usable`` when the suite passed, else ``failed_dq``
    (recorded, alerted, never used). ``new_version`` is true only the first time this content is
    registered as usable: the DAG emits the dataset asset on that alone."""
    from ragops.synthetic.dataset import DATASET_KIND, DATASET_NAME, save_dataset

    p = _params(ctx)
    rel = save_dataset(_splits_of(artifacts, split_info["rel"]), artifacts, split_info["hash"])
    before = registry.find_artifact(DATASET_KIND, DATASET_NAME, content_hash=split_info["hash"])
    status = "usable" if dq["success"] else "failed_dq"
    stats = generated.get("stats") or {}
    metrics = {
        **{k: v for k, v in split_info.items() if k.startswith(("rows_", "docs_", "negatives_"))},
        "generator": generated["generator"], "sampled_chunks": generated["chunks"],
        "generated_queries": generated["queries"], "filter_counts": filtered["filter_counts"],
        "kept_queries": filtered["kept"], "negatives_mined": (negatives or {}).get("mined", 0),
        "prompt_tokens": stats.get("prompt_tokens", 0), "completion_tokens": stats.get("completion_tokens", 0),
        "total_tokens": stats.get("prompt_tokens", 0) + stats.get("completion_tokens", 0),
        "cost_usd": stats.get("cost_usd", 0.0), "llm_calls": stats.get("calls", 0),
        "llm_cache_hits": stats.get("cache_hits", 0), "dropped": {k: stats[k] for k in stats if k.startswith("dropped_")},
        "dq_success": dq["success"],
    }
    parents = [(ctx["source"]["chunk_set_id"], "generated_from")]
    if generated.get("prompt"):
        parents.append((generated["prompt"]["id"], "prompt"))
    if generated.get("llm"):
        parents.append((generated["llm"]["id"], "generated_by"))
    if ctx["model"].get("artifact_id") and (p.round_trip or p.hard_negatives):
        parents.append((ctx["model"]["artifact_id"], "filtered_with"))
    params = {"generator": generated["generator"], "prompt_version": (generated.get("prompt") or {}).get("version_id"),
              "llm_model": (generated.get("llm") or {}).get("model"),
              "temperature": (generated.get("llm") or {}).get("temperature"), "seed": p.seed,
              "sample_size": p.sample_size, "sample_strategy": p.sample_strategy,
              "questions_per_chunk": p.questions_per_chunk, "test_ratio": p.test_ratio,
              "round_trip": p.round_trip, "round_trip_k": p.round_trip_k, "hard_negatives": p.hard_negatives,
              "chunk_set_id": ctx["source"]["chunk_set_id"], "embedding_model": ctx["model"]["model_id"],
              "columns": ["query_id", "query", "positive", "negative", "doc_id", "chunk_id", "kind"]}
    art = registry.record_artifact(DATASET_KIND, DATASET_NAME, split_info["hash"], artifacts.uri(rel), params=params,
                                   metrics=metrics, status=status, run_key=ctx["run_key"], parents=parents)
    if not dq["success"]:
        notifier.alert(f"synthetic dataset v{art.version} failed data quality",
                       f"dataset {DATASET_NAME} v{art.version} is recorded as failed_dq and will not be used: "
                       + "; ".join(str(f) for f in dq["failures"])[:1500],
                       severity="error", run_key=ctx["run_key"], context={"dataset_id": art.id})
    new_usable = dq["success"] and (before is None or before.status != "usable")
    return {"dataset_id": art.id, "version": art.version, "hash": short(art.content_hash), "uri": art.uri,
            "rel": rel, "status": status, "usable": bool(dq["success"]), "new_version": bool(new_usable),
            "rows_train": metrics.get("rows_train", 0), "rows_test": metrics.get("rows_test", 0)}


# -- 9. human review ----------------------------------------------------------------------------
def export_review(dataset_id: int, registry: Any, artifacts: Any, *, size: int, seed: int = 0,
                  fmt: str = "jsonl") -> dict[str, Any]:
    """Writes a review sample of a dataset version to ``reviews/`` in the artifact store."""
    from ragops.synthetic.dataset import dataset_rows, rel_of_uri
    from ragops.synthetic.review import render_review_file, review_sample

    art = registry.get_artifact(dataset_id)
    if art is None:
        raise ValueError(f"dataset artifact {dataset_id} does not exist")
    rows = review_sample(dataset_rows(artifacts, rel_of_uri(artifacts, art.uri)), size, seed)
    rel = f"reviews/{art.name}/v{art.version}-{short(art.content_hash)}/sample-n{size}-s{seed}.{fmt}"
    artifacts.write_bytes(rel, render_review_file(rows, fmt))
    return {"rel": rel, "uri": artifacts.uri(rel), "rows": len(rows), "dataset_id": art.id, "version": art.version}


def import_review(dataset_id: int, labels_rel: str, registry: Any, artifacts: Any, notifier: Any, *,
                  run_key: str | None = None, min_words: int = 3, max_words: int = 64,
                  max_doc_share: float = 0.2) -> dict[str, Any]:
    """Applies a filled-in review file (store-relative path) to a dataset version and records the
    result as a new version, parented by the dataset and the label file."""
    from ragops.hashing import sha256_bytes
    from ragops.synthetic.dataset import (
        DATASET_KIND,
        SPLITS,
        dataset_hash,
        dataset_rows,
        rel_of_uri,
        save_dataset,
        split_stats,
        to_rows,
    )
    from ragops.synthetic.quality import SUITE_NAME, validate_dataset
    from ragops.synthetic.review import apply_labels, parse_labels

    parent = registry.get_artifact(dataset_id)
    if parent is None:
        raise ValueError(f"dataset artifact {dataset_id} does not exist")
    data = artifacts.read_bytes(labels_rel)
    splits = dataset_rows(artifacts, rel_of_uri(artifacts, parent.uri))
    labels = parse_labels(data, labels_rel, {r["query_id"] for name in SPLITS for r in splits[name]})
    reviewed, counts = apply_labels(splits, labels)
    reviewed = {name: to_rows(rows) for name, rows in reviewed.items()}
    content_hash = dataset_hash(reviewed)
    review_art = registry.record_artifact(REVIEW_KIND, parent.name, sha256_bytes(data), artifacts.uri(labels_rel),
                                          params={"dataset_id": parent.id, "dataset_version": parent.version},
                                          metrics=counts, status="applied", run_key=run_key)
    dq = validate_dataset(reviewed, min_words=min_words, max_words=max_words, max_doc_share=max_doc_share)
    if run_key:
        registry.record_dq(run_key, SUITE_NAME, f"dataset:{short(content_hash)}", dq.success, dq.statistics,
                           dq.failures)
    rel = save_dataset(reviewed, artifacts, content_hash)
    status = "usable" if dq.success else "failed_dq"
    art = registry.record_artifact(
        DATASET_KIND, parent.name, content_hash, artifacts.uri(rel),
        params={**parent.params, "reviewed_from": parent.id, "review_id": review_art.id},
        metrics={**{k: v for k, v in parent.metrics.items() if not k.startswith(("rows_", "docs_", "negatives_"))},
                 **split_stats(reviewed), "review": counts, "dq_success": dq.success},
        status=status, run_key=run_key, parents=[(parent.id, "reviewed_from"), (review_art.id, "labels")])
    if not dq.success:
        notifier.alert(f"reviewed dataset v{art.version} failed data quality",
                       "; ".join(str(f) for f in dq.failures)[:1500], run_key=run_key,
                       context={"dataset_id": art.id})
    return {"dataset_id": art.id, "version": art.version, "status": status, "review_id": review_art.id,
            "counts": counts, "rows_train": len(reviewed["train"]), "rows_test": len(reviewed["test"]),
            "uri": art.uri}


# -- the whole pipeline, in process (tests, benchmark) ------------------------------------------
def run_pipeline(params: SyntheticParams, run_id: str, *, registry: Any, artifacts: Any, notifier: Any = None,
                 store: Any = None, embedder: Any = None, llm: Any = None, client: Any = None,
                 dag_id: str = "ragops_cli", fallbacks: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """Runs every step in sequence, as the DAG does, and returns the summaries of all steps."""
    from ragops.notify import Notifier

    notifier = notifier or Notifier(registry)
    ctx = prepare(registry, params, dag_id, run_id, artifacts=artifacts, fallbacks=fallbacks)
    try:
        sampled = sample(ctx, artifacts)
        generated = generate(ctx, sampled, registry, artifacts, llm=llm, client=client)
        filtered = filter_queries(ctx, generated, sampled, artifacts, store=store, embedder=embedder)
        negatives = mine_negatives(ctx, filtered, sampled, artifacts, store=store, embedder=embedder)
        split_info = split(ctx, negatives, artifacts)
        dq = validate(ctx, split_info, registry, artifacts)
        dataset = register(ctx, split_info, dq, registry, artifacts, notifier, generated=generated,
                           filtered=filtered, negatives=negatives, sampled=sampled)
        summary = {"run_key": ctx["run_key"], "source": ctx["source"], "sample": sampled,
                   "generate": {k: v for k, v in generated.items() if k != "rel"}, "filter": filtered,
                   "negatives": negatives, "split": split_info, "dq": dq, "dataset": dataset}
        registry.finish_run(ctx["run_key"], "success", {"dataset": dataset, "generator": generated["generator"]})
        return summary
    except Exception as exc:
        registry.finish_run(ctx["run_key"], "failed", {"error": str(exc)[:2000]})
        raise
