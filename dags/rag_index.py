"""
# rag_index

Keeps a vector collection in step with its documents, every night, safely.

Each run loads the sources, checks them (great-expectations), chunks them along their structure
within the embedding model's token limit, checks the chunks, and writes a **new versioned
collection**: unchanged chunks keep their vectors (copied from the live collection), new and
changed ones are embedded in shards mapped over Airflow workers (param `embed_compute`: in the
task on the worker's CPU by default, or `include/ragops/indexing/embed_shard.py` in a local process
or in one GPU pod per shard, with the trainers' image and settings), deleted ones are left out. A gate
(object count, vector dimension, retrieval smoke test, golden-query nDCG@10 against the live
collection) decides; only then is the alias swapped (blue/green), under the alias' lock and only
if no rollback moved it meanwhile. The last `keep_versions` usable versions are kept for
comparison and rollback (`rag_collection_rollback`). Sources whose files are unchanged since the
last snapshot are not parsed again.

**Approval (opt-in)**: with the param `require_approval` true for a run, or the Variable
`ragops_require_approval` listing `rag_index` (e.g. `["rag_index"]`; a run's `false` still wins),
`approve_swap` waits after a passing gate for a person to approve or reject the swap in the run's
**Required actions**, showing the gate's checks. Unanswered after `approval_timeout_hours`, it is
rejected. A rejection skips the swap (what is live stays live) and records who, when and why on
the gate's evaluation artifact and in the run summary. Off (the default), the step passes at once.

A data-quality or gate failure stops the run before anything goes live, is recorded in the
lineage registry and raises an alert. `close_run` records the outcome and pushes the run's
lineage summary to XCom.

**Schedule**: nightly at 02:00 UTC (environment variable `RAGOPS_INDEX_CRON` overrides), and whenever
a new embedding model is promoted (`ragops://model/embeddings`): it then re-embeds into a new
collection with that model. Emits `ragops://collection/<alias>` (through an asset alias) when the
alias moves.

**Connections**: `ragops_postgres` (lineage registry, required); `ragops_weaviate` (optional: without
it the embedded LanceDB store is used, a named fallback); `ragops_slack`, `ragops_smtp` (optional alerts).

**Connections for GPU shards** (`embed_compute=kubernetes`): `kubernetes_default` (or the `kubernetes_conn_id`
of `ragops_training`); the artifact root must then be object storage.

**Variables**: `ragops_training` (for `embed_compute` local|kubernetes: image, namespace, gpus, node_selector,
tolerations, secret_env...), `ragops_lineage_schema`, `ragops_artifact_root` (a local path or an object-storage URI such
as `s3://aws_default@bucket/ragops`), `ragops_vector_dir` (embedded store only).

**Pools**: `vector_store` bounds concurrent writers.

**Params** (`ragops.indexing.params.IndexParams`): `sources`, `chunk_strategy`, `chunk_size`,
`chunk_overlap`, `embedding_model`, `alias`, `mode` (full | incremental), `keep_versions`,
`on_bad_input`, `shard_size`, `batch_size`, `embed_compute` (worker | local | kubernetes), `golden_queries`,
gate thresholds, `require_approval`, `approval_timeout_hours`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from airflow.sdk import Asset, AssetAlias, AssetOrTimeSchedule, CronTriggerTimetable, dag

from ragops.indexing.params import IndexParams
from ragops.indexing.records import ChunkSet, CorpusSnapshot, GateReport, IndexRun, Plan, Quality, Shard, Swap
from ragops.indexing.summary import summarize
from ragops.orchestration import DEFAULT_ARGS, TaskRuntime, airflow_params, ragops_task, run_closer, run_opener
from ragops.orchestration.hitl import gate_approval
from ragops.runs import RunRef
from ragops.vocabulary import COLLECTION_ASSET_ALIAS, MODEL_ASSET_URI, VECTOR_STORE_POOL

# The nightly schedule is deployment configuration (an environment variable is read at parse time
# without a metadata-DB round trip, unlike Variable.get): e.g. RAGOPS_INDEX_CRON="30 1 * * *".
INDEX_CRON = os.environ.get("RAGOPS_INDEX_CRON", "0 2 * * *")
COLLECTIONS = AssetAlias(COLLECTION_ASSET_ALIAS)


@dag(
    dag_id="rag_index",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(INDEX_CRON, timezone="UTC"),
                                 assets=Asset(MODEL_ASSET_URI)),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ragops", "indexing"],
    default_args=DEFAULT_ARGS,
    params=airflow_params(IndexParams),
)
def rag_index():
    @ragops_task
    def prepare(rt: TaskRuntime, run: RunRef, params: IndexParams) -> IndexRun:
        from ragops.indexing import steps

        return steps.prepare(rt, params, run)

    @ragops_task
    def load_documents(rt: TaskRuntime, run: IndexRun, params: IndexParams) -> CorpusSnapshot:
        from ragops.indexing import steps

        return steps.load_documents(rt, params, run)

    @ragops_task
    def validate_documents(rt: TaskRuntime, run: IndexRun, corpus: CorpusSnapshot, params: IndexParams) -> Quality:
        from ragops.indexing import steps

        return steps.validate_documents(rt, params, run, corpus)

    @ragops_task
    def chunk(rt: TaskRuntime, run: IndexRun, corpus: CorpusSnapshot, _valid: Quality, params: IndexParams) -> ChunkSet:
        from ragops.indexing import steps

        return steps.chunk_corpus(rt, params, run, corpus)

    @ragops_task
    def validate_chunks(rt: TaskRuntime, run: IndexRun, chunks: ChunkSet, params: IndexParams) -> Quality:
        from ragops.indexing import steps

        return steps.validate_chunks(rt, params, run, chunks)

    @ragops_task(pool=VECTOR_STORE_POOL)
    def plan(rt: TaskRuntime, run: IndexRun, chunks: ChunkSet, _valid: Quality, params: IndexParams) -> Plan:
        from ragops.indexing import steps

        return steps.plan_collection(rt, params, run, chunks)

    @ragops_task
    def shards(rt: TaskRuntime, planned: Plan) -> list[Shard]:
        """The plan's shards, as a list to map over (an empty list skips embedding)."""
        return list(planned.shards)

    @ragops_task(pool=VECTOR_STORE_POOL, map_index_template="{{ shard_label }}")
    def embed_shard(rt: TaskRuntime, run: IndexRun, shard: Shard, params: IndexParams):
        from ragops.indexing import steps

        rt.context["shard_label"] = shard.label
        return steps.embed_shard(rt, params, run, shard)

    @ragops_task(trigger_rule="none_failed")
    def gate(rt: TaskRuntime, run: IndexRun, planned: Plan, chunks: ChunkSet, _embedded: list,
             params: IndexParams) -> GateReport:
        from ragops.indexing.gate import gate_collection

        return gate_collection(rt, params, run, planned, chunks)

    @ragops_task(outlets=[COLLECTIONS])
    def swap_alias(rt: TaskRuntime, run: IndexRun, planned: Plan, _gate: GateReport) -> Swap:
        from ragops.indexing import versions

        return versions.swap_alias(rt, run.alias, run.run, planned)

    @ragops_task(trigger_rule="none_failed")
    def cleanup(rt: TaskRuntime, _swap: Swap | None, params: IndexParams):
        from ragops.indexing import versions

        return versions.cleanup_versions(rt, params.alias, params.keep_versions)

    run = run_opener(IndexParams)()
    index_run = prepare(run)
    corpus = load_documents(index_run)
    chunks = chunk(index_run, corpus, validate_documents(index_run, corpus))
    planned = plan(index_run, chunks, validate_chunks(index_run, chunks))
    embedded = embed_shard.partial(run=index_run).expand(shard=shards(planned))
    gated = gate(index_run, planned, chunks, embedded)
    approval = gate_approval("approve_swap", gate_task="gate", plan_task="plan", spec=IndexParams,
                             what="the alias swap")
    swapped = swap_alias(index_run, planned, gated)
    gated >> approval >> swapped
    cleanup(swapped) >> run_closer(summarize)(run)


rag_index()
