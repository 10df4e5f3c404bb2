"""
# rag_index

Keeps a vector collection in step with its documents, every night, safely.

Each run loads the sources, checks them (great-expectations), chunks them along their structure
within the embedding model's token limit, checks the chunks, and writes a **new versioned
collection**: unchanged chunks keep their vectors (copied from the live collection), new and
changed ones are embedded in shards mapped over Airflow workers, deleted ones are left out. A gate
(object count, vector dimension, retrieval smoke test, golden-query nDCG@10 against the live
collection) decides; only then is the alias swapped (blue/green). The last `keep_versions`
versions are kept for comparison and rollback (`rag_collection_rollback`).

A data-quality or gate failure stops the run before anything goes live, is recorded in the
lineage registry and raises an alert. Each run pushes a compact lineage summary to XCom.

**Schedule**: nightly at 02:00 UTC (environment variable `RAGOPS_INDEX_CRON` overrides), and whenever a new embedding model is promoted
(`ragops://model/embeddings`): it then re-embeds into a new collection with that model.

**Connections**: `ragops_postgres` (lineage registry, required); `ragops_weaviate` (optional: without
it the embedded LanceDB store is used, a named fallback); `ragops_slack`, `ragops_smtp` (optional alerts).

**Variables**: `ragops_lineage_schema`, `ragops_artifact_root` (a local path or an object-storage URI such
as `s3://aws_default@bucket/ragops`), `ragops_vector_dir` (embedded store only).

**Pools**: `vector_store` bounds concurrent writers.

**Params**: `sources`, `chunk_strategy`, `chunk_size`, `chunk_overlap`, `embedding_model`, `alias`, `mode`
(full | incremental), `keep_versions`, `on_bad_input`, `golden_queries`, gate thresholds.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from ragops.assets import MODEL_ASSET_URI, collection_asset_uri
from ragops.orchestration import DEFAULT_ARGS, VECTOR_STORE_POOL, alert_on_failure

ALIAS = "RagDocs"
# The nightly schedule is deployment configuration (an environment variable is read at parse time
# without a metadata-DB round trip, unlike Variable.get): e.g. RAGOPS_INDEX_CRON="30 1 * * *".
INDEX_CRON = os.environ.get("RAGOPS_INDEX_CRON", "0 2 * * *")


@dag(
    dag_id="rag_index",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(INDEX_CRON, timezone="UTC"),
                                 assets=Asset(MODEL_ASSET_URI)),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ragops", "indexing"],
    default_args={**DEFAULT_ARGS, "on_failure_callback": alert_on_failure},
    params={
        "sources": Param([{"type": "demo", "subset": 60}], type="array",
                         description="Source specs: {type: folder, path, name, root?, include?} for Markdown, "
                                     "reStructuredText, HTML and text (a git checkout is a folder); {type: beir, "
                                     "path, name} for a BEIR corpus.jsonl; {type: demo, subset: N|null} for the "
                                     "PostgreSQL manual (null = all ~1,200 pages)."),
        "alias": Param(ALIAS, type="string", pattern=r"^[A-Z][A-Za-z0-9_]*$",
                       description="The collection alias readers query; versions are named <alias>_<hash>."),
        "mode": Param("incremental", enum=["incremental", "full"],
                      description="incremental copies vectors of unchanged chunks from the live collection; "
                                  "full re-embeds everything."),
        "chunk_strategy": Param("structure", enum=["structure", "fixed"],
                                description="structure: headings, paragraphs and code blocks; fixed: token windows."),
        "chunk_size": Param(200, type="integer", minimum=16, maximum=512, description="Target chunk size in tokens."),
        "chunk_overlap": Param(32, type="integer", minimum=0, maximum=256, description="Overlap in tokens."),
        "embedding_model": Param("production", type="string",
                                 description="production (the registry's production model, else the base model), "
                                             "base, v<N> (a registered version) or a model folder path."),
        "keep_versions": Param(3, type="integer", minimum=1, description="Collection versions kept for rollback."),
        "on_bad_input": Param("skip", enum=["skip", "fail"],
                              description="skip: record bad files and go on; fail: stop at the first bad file."),
        "max_file_bytes": Param(5_000_000, type="integer", minimum=1, description="Files above this are rejected."),
        "shard_size": Param(1024, type="integer", minimum=1, description="Chunks per mapped embedding task."),
        "batch_size": Param(64, type="integer", minimum=1, description="Texts per encode/upsert batch."),
        "smoke_sample": Param(50, type="integer", minimum=1, description="Chunks sampled for the retrieval smoke check."),
        "smoke_k": Param(10, type="integer", minimum=1, description="Top k of the smoke check."),
        "smoke_min_hit_rate": Param(0.7, type="number", minimum=0, maximum=1,
                                    description="Share of sampled chunks their first sentence must find in the top k."),
        "golden_queries": Param(None, type=["null", "string"],
                                description="JSONL of golden queries {query, doc_id|chunk_id}: gates nDCG@10 vs live."),
        "golden_mode": Param("hybrid", enum=["dense", "keyword", "hybrid"], description="Retrieval mode of the golden check."),
        "ndcg_tolerance": Param(0.02, type="number", minimum=0, description="Allowed nDCG@10 drop against live."),
        "max_duplicate_ratio": Param(0.2, type="number", minimum=0, maximum=1,
                                     description="Data quality: the largest share of duplicate documents or chunks."),
    },
)
def rag_index():
    @task(multiple_outputs=False)
    def prepare(**context) -> dict:
        from ragops import indexing, orchestration

        settings = orchestration.runtime_settings()
        params = indexing.IndexParams.from_mapping(dict(context["params"]))
        return indexing.prepare(orchestration.open_registry(settings), settings, params,
                                context["dag"].dag_id, context["run_id"])

    @task(multiple_outputs=False)
    def load_documents(ctx: dict) -> dict:
        from ragops import indexing, orchestration

        settings = orchestration.runtime_settings()
        return indexing.load_documents(ctx, orchestration.open_registry(settings), orchestration.open_artifacts(settings))

    @task(multiple_outputs=False)
    def validate_documents(ctx: dict, corpus: dict) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from ragops import indexing, orchestration

        settings = orchestration.runtime_settings()
        registry = orchestration.open_registry(settings)
        try:
            return indexing.validate_documents(ctx, corpus, registry, orchestration.open_artifacts(settings),
                                               orchestration.notifier(registry))
        except indexing.DataQualityError as exc:
            raise AirflowFailException(str(exc)) from exc  # retrying cannot fix the data

    @task(multiple_outputs=False)
    def chunk(ctx: dict, corpus: dict, _validated: dict) -> dict:
        from ragops import indexing, orchestration

        settings = orchestration.runtime_settings()
        return indexing.chunk_corpus(ctx, corpus, orchestration.open_registry(settings),
                                     orchestration.open_artifacts(settings))

    @task(multiple_outputs=False)
    def validate_chunks(ctx: dict, chunks: dict) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from ragops import indexing, orchestration

        settings = orchestration.runtime_settings()
        registry = orchestration.open_registry(settings)
        try:
            return indexing.validate_chunks(ctx, chunks, registry, orchestration.open_artifacts(settings),
                                            orchestration.notifier(registry))
        except indexing.DataQualityError as exc:
            raise AirflowFailException(str(exc)) from exc

    @task(multiple_outputs=False, pool=VECTOR_STORE_POOL)
    def plan(ctx: dict, chunks: dict, _validated: dict) -> dict:
        from ragops import indexing, orchestration

        settings = orchestration.runtime_settings()
        return indexing.plan_collection(ctx, chunks, orchestration.open_registry(settings),
                                        orchestration.open_artifacts(settings), orchestration.open_vector_store(settings))

    @task
    def shards(plan_info: dict) -> list[dict]:
        """The plan's shards, as a list to map over (an empty list skips embedding)."""
        return plan_info["shards"]

    @task(multiple_outputs=False, pool=VECTOR_STORE_POOL, map_index_template="{{ shard_label }}")
    def embed_shard(ctx: dict, shard: dict) -> dict:
        from airflow.sdk import get_current_context

        from ragops import indexing, orchestration

        get_current_context()["shard_label"] = f"shard {shard['index']} of {shard['collection']}"

        settings = orchestration.runtime_settings()
        return indexing.embed_shard(ctx, shard, orchestration.open_artifacts(settings),
                                    orchestration.open_vector_store(settings))

    @task(multiple_outputs=False, trigger_rule="none_failed")
    def gate(ctx: dict, plan_info: dict, chunks: dict, _embedded: list) -> dict:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from ragops import indexing, orchestration

        if plan_info["action"] == "noop":
            raise AirflowSkipException(f"{plan_info['collection']} is already live: nothing to gate")
        settings = orchestration.runtime_settings()
        registry = orchestration.open_registry(settings)
        try:
            return indexing.gate_collection(ctx, plan_info, chunks, registry, orchestration.open_artifacts(settings),
                                            orchestration.open_vector_store(settings), orchestration.notifier(registry))
        except indexing.GateFailed as exc:
            raise AirflowFailException(str(exc)) from exc

    @task(multiple_outputs=False, outlets=[Asset(collection_asset_uri(ALIAS))])
    def swap_alias(ctx: dict, plan_info: dict, _gate: dict) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from ragops import indexing, orchestration

        settings = orchestration.runtime_settings()
        result = indexing.swap_alias(ctx, plan_info, orchestration.open_registry(settings),
                                     orchestration.open_vector_store(settings))
        if not result["moved"]:
            # A retry after the switch: nothing new went live, so no asset event.
            raise AirflowSkipException(f"alias already points at {result['collection']}")
        return result

    @task(multiple_outputs=False, trigger_rule="none_failed")
    def cleanup(ctx: dict, _swap: dict) -> dict:
        from ragops import indexing, orchestration

        settings = orchestration.runtime_settings()
        return indexing.cleanup_versions(ctx["params"]["alias"], ctx["params"]["keep_versions"],
                                         orchestration.open_registry(settings), orchestration.open_vector_store(settings))

    @task(multiple_outputs=False, trigger_rule="all_done")
    def lineage_summary(ctx: dict | None, **context) -> dict:
        """Records the run's outcome and returns the lineage summary (XCom). Fails if any step failed,
        so the DAG run's state tells the truth even though this leaf always runs."""
        from airflow.sdk.exceptions import AirflowFailException

        from ragops import indexing, orchestration

        ti = context["ti"]
        failed = orchestration.failed_tasks(context)
        if ctx is None:
            raise AirflowFailException(f"rag_index failed before it started its lineage record: {failed}")
        settings = orchestration.runtime_settings()
        registry = orchestration.open_registry(settings)

        def pulled(task_id: str) -> Any:
            return ti.xcom_pull(task_ids=task_id)

        embedded = pulled("embed_shard")
        summary = indexing.lineage_summary(
            ctx, registry, corpus=pulled("load_documents"), chunks=pulled("chunk"), plan=pulled("plan"),
            shards=[embedded] if isinstance(embedded, dict) else list(embedded or []) or None,
            gate=pulled("gate"), swap=pulled("swap_alias"), cleanup=pulled("cleanup"), failed_tasks=failed or None)
        registry.finish_run(ctx["run_key"], "failed" if failed else "success", summary)
        if failed:
            raise AirflowFailException(f"rag_index failed at {failed}; the alias was left as it was")
        return summary

    ctx = prepare()
    corpus = load_documents(ctx)
    docs_ok = validate_documents(ctx, corpus)
    chunks = chunk(ctx, corpus, docs_ok)
    chunks_ok = validate_chunks(ctx, chunks)
    plan_info = plan(ctx, chunks, chunks_ok)
    embedded = embed_shard.partial(ctx=ctx).expand(shard=shards(plan_info))
    gated = gate(ctx, plan_info, chunks, embedded)
    swapped = swap_alias(ctx, plan_info, gated)
    cleanup(ctx, swapped) >> lineage_summary(ctx)


rag_index()
