"""rag_index's building steps: prepare -> load -> validate -> chunk -> validate -> plan -> embed.

Every step is a plain function of the services, the params and the records before it, and
returns a record: the DAG maps them onto tasks, the CLI and benchmarks call them in sequence
(``indexing.pipeline``). Each is idempotent:
- artifacts are content-addressed and recorded by upsert;
- the target collection is named by the hash of (chunk set, model), so a retry or re-run writes
  into the same collection, with deterministic object ids, and never duplicates;
- the alias moves only after the gate passed (``indexing.gate``, ``indexing.versions``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragops.errors import DataQualityError, InvalidInput
from ragops.hashing import hash_many, hash_object, sha256_bytes, short
from ragops.indexing.params import IndexParams
from ragops.indexing.records import ChunkSet, CorpusSnapshot, IndexRun, Plan, Quality, Shard, ShardResult
from ragops.progress import Progress
from ragops.runs import RunRef
from ragops.services import Services
from ragops.vocabulary import ArtifactKind, EmbedCompute, Relation, Status

if TYPE_CHECKING:
    from ragops.embedding import Embedder
    from ragops.quality import DQResult, DQThresholds

log = logging.getLogger(__name__)


def collection_name(alias: str, content_hash: str) -> str:
    return f"{alias}_{short(content_hash, 12)}"


# -- 1. prepare ---------------------------------------------------------------------------------
def prepare(svc: Services, params: IndexParams, run: RunRef) -> IndexRun:
    """Resolves the embedding model (a reference, not a path) and its token limit."""
    from ragops.embedding import model_max_seq_length
    from ragops.models import resolve_embedding_model

    check_paths(svc, params)
    model = resolve_embedding_model(params.embedding_model, svc.registry)
    log.info("run %s: embedding model %s", run.run_key, model.model_id)
    return IndexRun(run, params.alias, model, model_max_seq_length(svc.model_path(model)), svc.settings.vector_backend)


# -- 2. documents -------------------------------------------------------------------------------
def _source_specs(params: IndexParams) -> list[dict[str, Any]]:
    specs = []
    for spec in params.sources:
        if spec.get("type") == "demo":  # the packaged PostgreSQL manual, optionally a subset
            from ragops.demo_corpus import demo_source_spec

            spec = demo_source_spec(spec.get("subset", 120))
        specs.append(spec)
    return specs


def check_paths(svc: Services, params: IndexParams, specs: list[dict[str, Any]] | None = None) -> None:
    """Every path the params name lies inside the allowed roots (``Services.allowed_path``), checked
    before anything is read or listed: sources' path and root, golden queries, a model folder."""
    for i, spec in enumerate(params.sources if specs is None else specs):
        for key in ("path", "root"):
            if isinstance(spec, dict) and spec.get(key):
                svc.allowed_path(f"sources[{i}].{key}", str(spec[key]))
    if params.golden_queries:
        svc.allowed_path("golden_queries", params.golden_queries)
    svc.allowed_model("embedding_model", params.embedding_model)


def files_fingerprint(specs: list[dict[str, Any]], params: IndexParams) -> str:
    """What the loaders would read, by name, size and mtime, plus the loaders' own code and the
    load options: equal fingerprints mean an unchanged snapshot, so its files need no parsing.
    A superset of the files a source reads is stat'ed (the whole folder), which errs on re-parsing."""
    import ragops.sources as sources_pkg

    code = sorted((p.name, sha256_bytes(p.read_bytes())) for p in Path(sources_pkg.__file__).parent.glob("*.py"))
    stats = []
    for spec in specs:
        path = Path(str(spec.get("path", "")))
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
        for file in files:
            st = file.stat()
            stats.append((str(file), st.st_size, st.st_mtime_ns))
    return hash_object({"specs": specs, "files": stats, "code": code, "on_bad_input": params.on_bad_input,
                        "max_file_bytes": params.max_file_bytes, "max_files": params.max_files,
                        "max_total_bytes": params.max_total_bytes})


def load_documents(svc: Services, params: IndexParams, run: IndexRun) -> CorpusSnapshot:
    """Loads every source into one corpus snapshot (a parquet table), content-hashed.

    A snapshot whose files are unchanged since it was made (``files_fingerprint``) is reused
    without reading them: a quiet nightly run parses nothing."""
    import pandas as pd

    from ragops.sources import load_source
    from ragops.sources.errors import SourceError

    started = time.perf_counter()
    specs = _source_specs(params)
    check_paths(svc, params, specs)
    fingerprint = files_fingerprint(specs, params)
    for art in reversed(svc.registry.list_artifacts(ArtifactKind.CORPUS, params.alias)):
        if art.params.get("files_fingerprint") == fingerprint and svc.artifacts.exists(svc.artifacts.rel_of(art.uri)):
            log.info("sources unchanged since corpus v%s: reusing it without parsing", art.version)
            m = art.metrics
            return CorpusSnapshot(art.id, art.version, art.content_hash, art.uri, m["documents"], m["bad_inputs"],
                                  m["chars"], reused=True, seconds=round(time.perf_counter() - started, 3))
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    owners: dict[str, str] = {}
    files_used = bytes_used = 0   # the run's limits hold over all its sources together
    with Progress("load", unit="documents") as progress:
        for spec in specs:
            if files_used >= params.max_files or bytes_used >= params.max_total_bytes:
                raise InvalidInput(f"the sources hold more than param max_files={params.max_files} files or "
                                   f"param max_total_bytes={params.max_total_bytes} bytes (stopped before source "
                                   f"{spec.get('name') or spec.get('path')!r}); raise them on purpose")
            try:
                result = load_source(spec, on_error=params.on_bad_input, max_bytes=params.max_file_bytes,
                                     max_files=params.max_files - files_used,
                                     max_total_bytes=params.max_total_bytes - bytes_used)
            except SourceError as exc:
                raise InvalidInput(str(exc)) from exc  # the loader's message names the source and file
            files_used += len(result.documents) + len(result.errors)
            bytes_used += int(result.stats.get("bytes") or sum(len(d.text) for d in result.documents))
            for err in result.errors:
                log.warning("skipped bad input: %s", err)
                errors.append({"path": str(getattr(err, "path", "")), "reason": str(getattr(err, "reason", err))})
            for doc in result.documents:
                if doc.doc_id in owners:
                    raise InvalidInput(f"document id {doc.doc_id!r} comes from two sources ({owners[doc.doc_id]!r} "
                                       f"and {doc.source!r}); give the sources distinct roots")
                owners[doc.doc_id] = doc.source
                rows.append(doc.to_row())
            progress.update(len(result.documents))
    if not rows:
        raise InvalidInput(f"no documents could be loaded from the sources {params.sources}"
                           f" ({len(errors)} bad inputs, e.g. {errors[:3]})")
    rows.sort(key=lambda r: r["doc_id"])
    snapshot = hash_many(f"{r['doc_id']}:{r['content_hash']}" for r in rows)
    uri = svc.artifacts.write_table(f"corpus/{params.alias}/{snapshot}.parquet", pd.DataFrame(rows))
    metrics = {"documents": len(rows), "bad_inputs": len(errors), "chars": sum(r["n_chars"] for r in rows)}
    art = svc.registry.record_artifact(
        ArtifactKind.CORPUS, params.alias, snapshot, uri,
        params={"sources": params.sources, "files_fingerprint": fingerprint},
        metrics=metrics | {"bad_input_samples": errors[:20]}, status=Status.LOADED, run_key=run.run_key)
    return CorpusSnapshot(art.id, art.version, snapshot, uri, **metrics,
                          seconds=round(time.perf_counter() - started, 3))


def _thresholds(params: IndexParams) -> DQThresholds:
    from ragops.quality import DQThresholds

    return DQThresholds(max_duplicate_ratio=params.max_duplicate_ratio, min_doc_chars=1)


def _check_quality(svc: Services, run: IndexRun, artifact_id: int, suite: str, what: str, settings: dict[str, Any],
                   check: Any) -> Quality:
    """Runs a data-quality suite over an artifact, or reuses its earlier pass under the very same
    settings (the suite is deterministic in the artifact's content and the settings). Either
    way the run gets its own DQ row; a failure marks the artifact, alerts and raises."""
    target = f"{suite}:{artifact_id}"
    art = svc.registry.get_artifact(artifact_id)
    assert art is not None
    key = hash_object(settings)
    passed = art.metrics.get("dq_passed") or {}
    if key in passed:
        svc.registry.record_dq(run.run_key, suite, target, True, passed[key] | {"reused": True}, [])
        return Quality(suite, target, passed[key], reused=True)
    result: DQResult = check()
    svc.registry.record_dq(run.run_key, suite, target, result.success, result.statistics, result.failures)
    if not result.success:
        svc.registry.update_artifact(artifact_id, status=Status.FAILED_DQ, metrics={"dq_failures": result.failures[:20]})
        summary = "; ".join(f.get("message", str(f)) for f in result.failures[:5])
        svc.notifier.alert(f"data quality failed: {what}", f"{what} failed {len(result.failures)} checks: {summary}",
                           run_key=run.run_key, context={"artifact_id": artifact_id, "suite": suite})
        raise DataQualityError(f"{what} failed data-quality checks ({summary}); nothing went live")
    svc.registry.update_artifact(artifact_id, status=Status.VALIDATED,
                                 metrics={"dq_passed": passed | {key: result.statistics}})
    return Quality(suite, target, result.statistics)


def validate_documents(svc: Services, params: IndexParams, run: IndexRun, corpus: CorpusSnapshot) -> Quality:
    from ragops.quality import validate_documents as check

    thresholds = _thresholds(params)
    return _check_quality(
        svc, run, corpus.corpus_id, "documents", f"documents of corpus v{corpus.version}",
        {"suite": "documents", "thresholds": thresholds.__dict__},
        lambda: check(svc.artifacts.read_table(svc.artifacts.rel_of(corpus.uri)).to_pandas(), thresholds))


# -- 3. chunks ----------------------------------------------------------------------------------
def tokenizer_hash(model_path: str) -> str:
    """Identity of a model's tokenizer files: chunk boundaries depend on it, the weights do not."""
    files = sorted(p for p in Path(model_path).iterdir()
                   if p.is_file() and (p.name.startswith(("tokenizer", "special_tokens")) or p.name == "vocab.txt"))
    return hash_object([(p.name, sha256_bytes(p.read_bytes())) for p in files])


def chunk_corpus(svc: Services, params: IndexParams, run: IndexRun, corpus: CorpusSnapshot) -> ChunkSet:
    """Chunks the corpus snapshot, or reuses the chunk set already made from this very snapshot with
    the same settings and tokenizer (a nightly run with nothing changed does no chunking)."""
    import pandas as pd

    from ragops.chunking import ChunkingConfig, chunk_documents
    from ragops.documents import Document
    from ragops.embedding import load_tokenizer

    started = time.perf_counter()
    config = {"strategy": params.chunk_strategy, "chunk_size": params.chunk_size,
              "chunk_overlap": params.chunk_overlap, "max_tokens": run.max_tokens}
    model_path = svc.model_path(run.model)
    tokenizer_id = tokenizer_hash(model_path)
    for child, relation in svc.registry.children(corpus.corpus_id):
        if (child.kind == ArtifactKind.CHUNKS and relation == Relation.CHUNKED_FROM
                and child.status in (Status.CHUNKED, Status.VALIDATED) and child.params.get("tokenizer") == tokenizer_id
                and all(child.params.get(k) == v for k, v in config.items())
                and svc.artifacts.exists(svc.artifacts.rel_of(child.uri))):
            log.info("corpus v%s was chunked the same way before: reusing chunk set v%s", corpus.version, child.version)
            m = child.metrics
            return ChunkSet(child.id, child.version, child.content_hash, child.uri, m["chunks"], m["documents"],
                            m["mean_tokens"], m["max_tokens"], reused=True,
                            seconds=round(time.perf_counter() - started, 3))
    docs = [Document.from_row(r) for r in svc.artifacts.read_table(svc.artifacts.rel_of(corpus.uri)).to_pylist()]
    tokenizer = load_tokenizer(model_path)
    chunking = ChunkingConfig(strategy=params.chunk_strategy, chunk_size=params.chunk_size,
                              chunk_overlap=params.chunk_overlap, max_tokens=run.max_tokens)
    with Progress("chunk", len(docs), "documents") as progress:
        rows = [c.to_row() for c in chunk_documents(docs, chunking, tokenizer)]  # one call: its setup is shared
        progress.update(len(docs))
    # The tokenizer is recorded but kept out of the hash: the same chunks under a new model stay
    # the same chunk set, so downstream datasets do not churn on every model promotion.
    chunk_hash = hash_object({"chunks": hash_many(r["chunk_id"] for r in rows), "config": config})
    uri = svc.artifacts.write_table(f"chunks/{params.alias}/{chunk_hash}.parquet", pd.DataFrame(rows))
    metrics = {"chunks": len(rows), "documents": len({r["doc_id"] for r in rows}),
               "mean_tokens": round(sum(r["token_count"] for r in rows) / max(len(rows), 1), 1),
               "max_tokens": max((r["token_count"] for r in rows), default=0)}
    art = svc.registry.record_artifact(ArtifactKind.CHUNKS, params.alias, chunk_hash, uri,
                                       params=config | {"tokenizer": tokenizer_id}, metrics=metrics,
                                       status=Status.CHUNKED, run_key=run.run_key,
                                       parents=[(corpus.corpus_id, Relation.CHUNKED_FROM)])
    return ChunkSet(art.id, art.version, chunk_hash, uri, **metrics, seconds=round(time.perf_counter() - started, 3))


def validate_chunks(svc: Services, params: IndexParams, run: IndexRun, chunks: ChunkSet) -> Quality:
    from ragops.quality import validate_chunks as check

    thresholds = _thresholds(params)
    return _check_quality(
        svc, run, chunks.chunk_set_id, "chunks", f"chunks of chunk set v{chunks.version}",
        {"suite": "chunks", "thresholds": thresholds.__dict__, "max_tokens": run.max_tokens},
        lambda: check(svc.artifacts.read_table(svc.artifacts.rel_of(chunks.uri)).to_pandas(), run.max_tokens,
                      thresholds))


# -- 4. plan the target collection --------------------------------------------------------------
def plan_collection(svc: Services, params: IndexParams, run: IndexRun, chunks: ChunkSet) -> Plan:
    """Creates (or finds) the target collection, copies reusable vectors, and shards the rest.

    Incremental: chunks whose id (document, position, content hash) is in the live collection,
    embedded by the same model, are copied with their vectors; new and changed chunks are
    embedded; chunks of deleted documents are simply not carried over.
    """
    started = time.perf_counter()
    store, registry, model = svc.store, svc.registry, run.model
    target_hash = hash_object({"chunk_set": chunks.content_hash, "model": model.content_hash})
    target = collection_name(params.alias, target_hash)
    live = store.get_alias(params.alias)
    live_art = registry.get_alias(ArtifactKind.COLLECTION, params.alias)
    art = registry.find_artifact(ArtifactKind.COLLECTION, params.alias, content_hash=target_hash)
    if live == target and art is not None and art.status == Status.LIVE:
        log.info("collection %s is already live for this chunk set and model: nothing to do", target)
        return Plan("noop", target, art.id, art.version, live, live_art.id if live_art else None, (),
                    {"to_embed": 0})
    art = registry.record_artifact(
        ArtifactKind.COLLECTION, params.alias, target_hash, target,
        params={"model_id": model.model_id, "model_hash": model.content_hash, "chunk_set_id": chunks.chunk_set_id,
                "backend": run.backend, "mode": params.mode},
        status=Status.BUILDING, run_key=run.run_key,
        parents=[(chunks.chunk_set_id, Relation.EMBEDDED_FROM)]
        + ([(model.artifact_id, Relation.EMBEDDED_WITH)] if model.artifact_id else []))
    dimension = model_dimension(svc.model_path(model))
    store.create_collection(target, dimension, {"alias": params.alias, "model_id": model.model_id,
                                                "model_hash": model.content_hash, "chunk_set_hash": chunks.content_hash,
                                                "artifact_id": art.id})
    rel = svc.artifacts.rel_of(chunks.uri)
    needed = [r["chunk_id"] for r in svc.artifacts.read_table(rel).select(["chunk_id"]).to_pylist()]
    needed_set = set(needed)
    present = {o.id for o in store.iter_objects(target)} & needed_set
    copied = 0
    if params.mode == "incremental" and live and live != target and store.collection_exists(live):
        if store.collection_metadata(live).get("model_hash") == model.content_hash:
            live_ids = {o.id for o in store.iter_objects(live)}
            reusable = sorted((live_ids & needed_set) - present)
            with Progress("copy unchanged vectors", len(reusable), "chunks") as progress:
                for i in range(0, len(reusable), 2000):
                    copied += store.copy_objects(live, target, reusable[i:i + 2000])
                    progress.update(len(reusable[i:i + 2000]))
            present |= set(reusable)
        else:
            log.info("live collection %s was embedded by another model: re-embedding everything", live)
    to_embed = sorted(needed_set - present)
    plan_uri = svc.artifacts.write_json(f"plans/{target}/{hash_many(to_embed)}.json",
                                        {"collection": target, "chunks_uri": chunks.uri, "to_embed": to_embed})
    shards = tuple(Shard(target, plan_uri, i, params.shard_size)
                   for i in range((len(to_embed) + params.shard_size - 1) // params.shard_size))
    stats = {"chunks": len(needed), "already_present": len(present) - copied, "copied": copied,
             "to_embed": len(to_embed), "shards": len(shards), "plan_seconds": round(time.perf_counter() - started, 3)}
    registry.update_artifact(art.id, metrics=stats)
    return Plan("build", target, art.id, art.version, live, live_art.id if live_art else None, shards, stats,
                dimension)


def model_dimension(path: str) -> int:
    """The model's output dimension, read from its pooling config when it says (no weights loaded).

    sentence-transformers < 6 writes ``word_embedding_dimension``, 6.x ``embedding_dimension``; a
    model with a Dense or other final layer is loaded to ask it."""
    import json

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
def embed_shard(svc: Services, params: IndexParams, run: IndexRun, shard: Shard,
                embedder: Embedder | None = None) -> ShardResult:
    """Embeds one shard of the plan and upserts it batch by batch (progress survives a crash).
    ``embed_compute`` local or kubernetes: embed_shard.py encodes it elsewhere (``shard_compute``)."""
    if params.embed_compute != EmbedCompute.WORKER:
        from ragops.indexing.shard_compute import embed_shard_elsewhere

        return embed_shard_elsewhere(svc, params, run, shard)
    import pyarrow as pa
    import pyarrow.compute as pc

    from ragops.documents import embedding_text_of
    from ragops.embedding import Embedder
    from ragops.stores.base import VectorObject

    plan = svc.artifacts.read_json(svc.artifacts.rel_of(shard.plan_uri))
    ids = plan["to_embed"][shard.index * shard.size:(shard.index + 1) * shard.size]
    table = svc.artifacts.read_table(svc.artifacts.rel_of(plan["chunks_uri"]))
    rows = table.filter(pc.is_in(table["chunk_id"], value_set=pa.array(ids))).to_pylist()
    embedder = embedder or Embedder(svc.model_path(run.model), batch_size=params.batch_size)  # once per task
    encode_s = write_s = 0.0
    written = 0
    with Progress(f"embed {shard.label}", len(rows), "chunks") as progress:
        for i in range(0, len(rows), params.batch_size):
            batch = rows[i:i + params.batch_size]
            t0 = time.perf_counter()
            vectors = embedder.encode([embedding_text_of(r) for r in batch])
            t1 = time.perf_counter()
            written += svc.store.upsert(shard.collection, [
                VectorObject(id=r["chunk_id"], properties=r, vector=v) for r, v in zip(batch, vectors, strict=True)])
            write_s += time.perf_counter() - t1
            encode_s += t1 - t0
            progress.update(len(batch))
    return ShardResult(shard.index, written, round(encode_s, 3), round(write_s, 3))
