"""
# rag_reranker_rollback

Puts an earlier version of the reranker (`reranker` in the registry) back into production in one
trigger. Without `to_version` it restores the previous production version (the stage history's
last production version other than the current one); or choose one (`SELECT version, stage, status
FROM artifacts WHERE kind = 'model' AND name = 'reranker'` in the lineage schema, or the history in
this run's summary). Allowed: a version that was production before; one that never passed the gate
fails at once, without retries. The switch is one registry transaction (the current production
version is archived), recorded in the stage history with the reason, and it emits the reranker
asset `ragops://model/reranker`, so the query path (`Retriever`, the service) loads the restored
reranker. A version that is production already changes nothing and emits nothing (the task skips).

**Schedule**: none (a manual trigger).

**Connections**: `ragops_postgres` (lineage registry); `ragops_slack`, `ragops_smtp` (optional alerts).

**Variables**: `ragops_lineage_schema`.

**Params** (`ragops.reranking.rollback.RerankerRollbackParams`): `to_version` (empty: the previous
production version), `reason`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Asset, dag

from ragops.orchestration import DEFAULT_ARGS, TaskRuntime, airflow_params, ragops_task, run_closer, run_opener
from ragops.reranking.records import RerankerPromotion
from ragops.reranking.rollback import RerankerRollbackParams, summarize_rollback
from ragops.runs import RunRef
from ragops.vocabulary import RERANKER_ASSET_URI


@dag(
    dag_id="rag_reranker_rollback",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ragops", "reranking", "rollback"],
    default_args={**DEFAULT_ARGS, "retries": 1},
    params=airflow_params(RerankerRollbackParams),
)
def rag_reranker_rollback():
    @ragops_task(outlets=[Asset(RERANKER_ASSET_URI)])
    def rollback(rt: TaskRuntime, run: RunRef, params: RerankerRollbackParams) -> RerankerPromotion:
        from ragops.reranking import rollback

        return rollback.rollback(rt, params, run)

    run = run_opener(RerankerRollbackParams)()
    rollback(run) >> run_closer(summarize_rollback)(run)


rag_reranker_rollback()
