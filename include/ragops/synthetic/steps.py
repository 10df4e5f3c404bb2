"""rag_synthetic_data's generating steps: prepare -> sample -> generate -> filter -> negatives -> split.

Every step is a plain function of the services, the params and the records before it, and
returns a record: the DAG maps them onto tasks, the CLI and benchmarks call them in sequence
(``synthetic.pipeline``). Each is idempotent: intermediate tables are content-addressed in the
artifact store (``synthetic/<step>/<hash>.parquet``) and LLM answers come from the cache on a
retry. The dataset is checked and registered by ``synthetic.publish``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragops.errors import InvalidInput
from ragops.hashing import hash_object
from ragops.progress import Progress
from ragops.runs import RunRef
from ragops.services import Services
from ragops.synthetic.dataset import read_rows, write_rows
from ragops.synthetic.params import SyntheticParams
from ragops.synthetic.records import ChunkSource, Filtered, Generated, Negatives, Sample, Split, SyntheticRun
from ragops.vocabulary import LLM_CONN_ID, AliasKind, ArtifactKind, Generator, Relation, Status

if TYPE_CHECKING:
    from ragops.embedding import Embedder
    from ragops.lineage import Artifact
    from ragops.models import ModelRef
    from ragops.synthetic.llm import LLMSettings

log = logging.getLogger(__name__)

LIVE_COLLECTION = "live collection"
SAMPLED_CHUNKS = "sampled chunks"
BATCH = 256   # queries per round-trip or mining batch (a progress line each)


# -- 1. prepare ---------------------------------------------------------------------------------
def prepare(svc: Services, params: SyntheticParams, run: RunRef) -> SyntheticRun:
    """Resolves the chunk set, the live collection and the embedding model to use."""
    if params.generator == Generator.LLM and svc.llm is None:
        raise InvalidInput(f"param generator='llm' needs the Airflow connection {LLM_CONN_ID!r} (an OpenAI-compatible "
                           "endpoint); use generator='offline' or 'auto' to run without it")
    registry = svc.registry
    collection = registry.get_alias(AliasKind.COLLECTION, params.alias)
    if params.chunk_set:
        version = int(params.chunk_set.lstrip("v"))
        chunk_set = registry.find_artifact(ArtifactKind.CHUNKS, params.alias, version=version)
        if chunk_set is None:
            raise InvalidInput(f"param chunk_set={params.chunk_set!r}: the lineage registry has no chunk set "
                               f"{params.alias!r} v{version}")
    elif collection is not None and collection.params.get("chunk_set_id"):
        chunk_set = registry.get_artifact(int(collection.params["chunk_set_id"]))
    else:
        chunk_set = registry.find_artifact(ArtifactKind.CHUNKS, params.alias)
    if chunk_set is None:
        raise InvalidInput(f"no chunk set for alias {params.alias!r}: run rag_index first or pass param chunk_set")
    source = ChunkSource(chunk_set.id, chunk_set.version, chunk_set.content_hash, chunk_set.uri,
                         collection.uri if collection else None, collection.id if collection else None,
                         bool(collection and collection.params.get("chunk_set_id") == chunk_set.id))
    model = _embedding_model(svc, collection)
    llm_available = params.generator != Generator.OFFLINE and svc.llm is not None
    if llm_available:
        priced_budget(svc, params)   # a USD cap without prices is refused before anything is sampled
    log.info("run %s: chunk set %s v%s, collection %s, model %s, generator %s", run.run_key, params.alias,
             chunk_set.version, source.collection, model.model_id, "llm" if llm_available else "offline")
    return SyntheticRun(run, params.alias, source, model, llm_available)


def _embedding_model(svc: Services, collection: Artifact | None) -> ModelRef:
    """The model that embedded the live collection (queries must be embedded alike), else the
    production model."""
    from ragops.models import ModelRef, resolve_embedding_model

    if collection is not None:
        model = svc.registry.parent(collection.id, Relation.EMBEDDED_WITH)
        if model is not None:
            return ModelRef.of(model, collection.params.get("model_id"))
    return resolve_embedding_model("production", svc.registry)


# -- 2. sample ----------------------------------------------------------------------------------
def sample(svc: Services, params: SyntheticParams, run: SyntheticRun) -> Sample:
    from ragops.synthetic.sampling import sample_chunks

    choice = {"chunk_set": run.source.content_hash, "size": params.sample_size, "strategy": params.sample_strategy,
              "seed": params.seed, "min_words": params.min_chunk_words}
    rel = f"synthetic/samples/{hash_object(choice)}.parquet"
    if not svc.artifacts.exists(rel):
        picked = sample_chunks(read_rows(svc.artifacts, run.source.uri), size=params.sample_size,
                               strategy=params.sample_strategy, seed=params.seed, min_words=params.min_chunk_words)
        write_rows(svc.artifacts, rel, picked)
    uri = svc.artifacts.uri(rel)
    rows = read_rows(svc.artifacts, uri)
    return Sample(uri, len(rows), len({r["doc_id"] for r in rows}))


# -- 3. generate --------------------------------------------------------------------------------
def llm_settings(svc: Services, params: SyntheticParams) -> LLMSettings:
    """The LLM's settings: the endpoint (and key) from the services, the choices from the params."""
    from ragops.synthetic.llm import LLMSettings

    if svc.llm is None:
        raise InvalidInput(f"this run was opened with an LLM, but the connection {LLM_CONN_ID!r} is gone")
    return LLMSettings.from_endpoint(
        svc.llm, model=params.llm_model, temperature=params.temperature, max_tokens=params.max_tokens,
        json_attempts=params.json_attempts, price_prompt_per_1m=params.price_prompt_per_1m,
        price_completion_per_1m=params.price_completion_per_1m)


def priced_budget(svc: Services, params: SyntheticParams) -> LLMSettings:
    """The LLM settings, refusing a USD cap that no price would ever reach (issue 9, defect 8)."""
    llm = llm_settings(svc, params)
    if params.budget_max_usd and not (llm.price_prompt_per_1m or llm.price_completion_per_1m):
        raise InvalidInput(f"param budget_max_usd={params.budget_max_usd} needs prices: set price_prompt_per_1m and "
                           f"price_completion_per_1m (params, or the {LLM_CONN_ID} connection extra); without them "
                           "every call costs 0 and the cap never stops anything")
    return llm


def generate(svc: Services, params: SyntheticParams, run: SyntheticRun, sampled: Sample) -> Generated:
    """Queries for the sampled chunks, by the LLM or offline. The LLM key stays in this call."""
    from ragops.documents import embedding_text_of
    from ragops.synthetic.offline import offline_queries

    chunks = read_rows(svc.artifacts, sampled.uri)
    if not run.llm_available:
        records = offline_queries(chunks, questions_per_chunk=params.questions_per_chunk, seed=params.seed)
        stats = {"kinds": {k: sum(r["kind"] == k for r in records) for k in ("heading", "ict")}}
        uri = write_rows(svc.artifacts, f"synthetic/generated/{hash_object([sampled.uri, records])}.parquet", records)
        return Generated(uri, Generator.OFFLINE, len(chunks), len(records), stats)
    from ragops.prompts import load_prompt
    from ragops.synthetic.generation import Budget, generate_with_llm

    llm = priced_budget(svc, params)
    prompt = load_prompt(*params.prompt_name_version)
    prompt_art = svc.registry.record_artifact(
        ArtifactKind.PROMPT, prompt.name, prompt.content_hash, f"package://ragops/prompts/{Path(prompt.path).name}",
        params={"version": prompt.version, "version_id": prompt.version_id}, status=Status.USABLE,
        run_key=run.run_key)
    llm_art = svc.registry.record_artifact(ArtifactKind.LLM, llm.model, hash_object({"model": llm.model}),
                                           f"llm://{llm.model}", params={"model": llm.model}, status=Status.USABLE,
                                           run_key=run.run_key)
    budget = Budget(max_tokens=params.budget_max_tokens, max_cost_usd=params.budget_max_usd or None)
    records, stats = generate_with_llm(chunks, settings=llm, prompt=prompt, registry=svc.registry,
                                       questions_per_chunk=params.questions_per_chunk, seed=params.seed,
                                       concurrency=params.concurrency, budget=budget)
    if not records and stats.dropped_api_error:
        raise RuntimeError(f"the LLM produced nothing: {stats.dropped_api_error} of {len(chunks)} chunks failed "
                           "after all retries (answers paid so far are cached; a retry resumes)")
    by_id = {c["chunk_id"]: c for c in chunks}
    records = [{**r, "positive": embedding_text_of(by_id[r["chunk_id"]])} for r in records]
    uri = write_rows(svc.artifacts, f"synthetic/generated/{hash_object([sampled.uri, records])}.parquet", records)
    return Generated(uri, Generator.LLM, len(chunks), len(records), stats.as_dict(), prompt_art.id,
                     prompt.version_id, llm_art.id, llm.public())


# -- 4. filter ----------------------------------------------------------------------------------
def _embedder(svc: Services, run: SyntheticRun, embedder: Embedder | None) -> Embedder:
    if embedder is not None:
        return embedder
    from ragops.embedding import Embedder

    return Embedder(svc.model_path(run.model))


def _live_collection(svc: Services, run: SyntheticRun) -> str | None:
    """The live collection to search, when it holds this run's chunk set and exists in the store."""
    name = run.source.searchable
    return name if name and svc.store.collection_exists(name) else None


def _batches(items: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(items), BATCH):
        yield items[start:start + BATCH]


def filter_queries(svc: Services, params: SyntheticParams, run: SyntheticRun, generated: Generated, sampled: Sample,
                   *, embedder: Embedder | None = None) -> Filtered:
    """The text filters, each counted, then (``round_trip``) the round trip through the live
    collection, or through the sampled chunks when the live collection does not hold them."""
    from ragops.synthetic.filters import (
        FilterConfig,
        apply_filters,
        local_retriever,
        round_trip_filter,
        store_retriever,
    )

    config = FilterConfig(min_words=params.min_query_words, max_words=params.max_query_words,
                          near_duplicate_jaccard=params.near_duplicate_jaccard)
    collection = _live_collection(svc, run) if params.round_trip else None
    choice = {"in": generated.uri, "config": config.as_dict(), "round_trip": params.round_trip,
              "k": params.round_trip_k, "model": run.model.model_id, "store": collection or False}
    rel = f"synthetic/filtered/{hash_object(choice)}.parquet"
    meta_rel = rel.replace(".parquet", ".json")
    if svc.artifacts.exists(meta_rel):
        return Filtered.from_xcom(svc.artifacts.read_json(meta_rel))
    records = read_rows(svc.artifacts, generated.uri)
    kept, counts = apply_filters(records, config)
    corpus = None
    if params.round_trip and kept:
        enc = _embedder(svc, run, embedder)
        if collection:
            retrieve, corpus = store_retriever(enc, svc.store, collection), LIVE_COLLECTION
        else:
            retrieve, corpus = local_retriever(enc, read_rows(svc.artifacts, sampled.uri)), SAMPLED_CHUNKS
        survivors, counts["round_trip"] = [], 0
        with Progress("round-trip filter", total=len(kept), unit="queries") as progress:
            for batch in _batches(kept):
                passed, dropped = round_trip_filter(batch, retrieve, params.round_trip_k)
                survivors += passed
                counts["round_trip"] += dropped
                progress.update(len(batch))
        kept = survivors
    result = Filtered(write_rows(svc.artifacts, rel, kept), len(records), len(kept), counts, corpus)
    svc.artifacts.write_json(meta_rel, result.to_xcom())
    return result


# -- 5. hard negatives --------------------------------------------------------------------------
def mine_negatives(svc: Services, params: SyntheticParams, run: SyntheticRun, filtered: Filtered, sampled: Sample,
                   *, embedder: Embedder | None = None) -> Negatives:
    """A hard negative per query from another document: from the live collection, or from the
    sampled chunks when the live collection does not hold this chunk set."""
    from ragops.synthetic.negatives import local_searcher, mine_hard_negatives, store_searcher

    if not params.hard_negatives:
        return Negatives(filtered.uri, enabled=False)
    collection = _live_collection(svc, run)
    choice = {"in": filtered.uri, "k": params.negatives_k, "model": run.model.model_id, "store": collection or False}
    rel = f"synthetic/negatives/{hash_object(choice)}.parquet"
    meta_rel = rel.replace(".parquet", ".json")
    if svc.artifacts.exists(meta_rel):
        return Negatives.from_xcom(svc.artifacts.read_json(meta_rel))
    records = read_rows(svc.artifacts, filtered.uri)
    enc = _embedder(svc, run, embedder)
    if collection:
        search, corpus = store_searcher(svc.store, collection), LIVE_COLLECTION
    else:
        search, corpus = local_searcher(enc, read_rows(svc.artifacts, sampled.uri)), SAMPLED_CHUNKS
    out: list[dict[str, Any]] = []
    mined = 0
    with Progress("hard negatives", total=len(records), unit="queries") as progress:
        for batch in _batches(records):
            with_negatives, found = mine_hard_negatives(batch, enc, search, k=params.negatives_k)
            out += with_negatives
            mined += found
            progress.update(len(batch))
    result = Negatives(write_rows(svc.artifacts, rel, out), True, mined, len(out) - mined, corpus)
    svc.artifacts.write_json(meta_rel, result.to_xcom())
    return result


# -- 6. split -----------------------------------------------------------------------------------
def split(svc: Services, params: SyntheticParams, run: SyntheticRun, negatives: Negatives) -> Split:
    """Train and test by document; the dataset's content hash is taken here, over its rows."""
    from ragops.synthetic.dataset import dataset_hash, split_stats, to_rows
    from ragops.synthetic.split import split_by_document

    train, test = split_by_document(read_rows(svc.artifacts, negatives.uri), test_ratio=params.test_ratio,
                                    seed=params.seed)
    splits = {"train": to_rows(train), "test": to_rows(test)}
    content_hash = dataset_hash(splits)
    rows = [{**r, "split": name} for name, part in splits.items() for r in part]
    uri = write_rows(svc.artifacts, f"synthetic/splits/{content_hash}.parquet", rows)
    return Split(uri, content_hash, **split_stats(splits))
