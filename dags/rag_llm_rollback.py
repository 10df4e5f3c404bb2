"""
# rag_llm_rollback

Puts an earlier version of the finetuned LLM (`llm` in the registry) back into production in one
trigger: choose the version (`SELECT version, stage, status FROM artifacts WHERE kind = 'model' AND
name = 'llm'` in the lineage schema, or the stage history in the run summary). Allowed: a version
that was production before. The switch is one registry transaction (the current production version
is archived), recorded in the stage history with the reason, and it emits the LLM asset
`ragops://model/llm`, so whatever serves the LLM can reload the restored model. A version that is
production already changes nothing and emits nothing.

**Connections**: `ragops_postgres` (lineage registry).

**Params** (`ragops.llm.params.LLMRollbackParams`): `to_version`, `reason`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Asset, dag

from ragops.llm.params import LLMRollbackParams
from ragops.llm.records import LLMPromotion
from ragops.llm.summary import summarize_rollback
from ragops.orchestration import DEFAULT_ARGS, TaskRuntime, airflow_params, ragops_task, run_closer, run_opener
from ragops.runs import RunRef
from ragops.vocabulary import LLM_ASSET_URI


@dag(
    dag_id="rag_llm_rollback",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ragops", "training", "llm", "rollback"],
    default_args={**DEFAULT_ARGS, "retries": 1},
    params=airflow_params(LLMRollbackParams),
)
def rag_llm_rollback():
    @ragops_task(outlets=[Asset(LLM_ASSET_URI)])
    def rollback(rt: TaskRuntime, run: RunRef, params: LLMRollbackParams) -> LLMPromotion:
        from ragops.llm import promotion

        return promotion.rollback_llm(rt, params, run)

    run = run_opener(LLMRollbackParams)()
    rollback(run) >> run_closer(summarize_rollback)(run)


rag_llm_rollback()
