"""
# rag_model_rollback

Puts an earlier embedding-model version back into production in one trigger: choose the version
(`SELECT version, stage, status FROM artifacts WHERE kind = 'model'` in the lineage schema, or the
stage history in the run summary). Allowed: a version that was production before, or the base
model. The switch is one registry transaction (the current production version is archived),
recorded in the stage history with the reason, and it emits the model asset
`ragops://model/embeddings`, so `rag_index` re-embeds the collection with the restored model.
A version that is production already changes nothing and emits nothing.

**Connections**: `ragops_postgres` (lineage registry).

**Params** (`ragops.training.params.ModelRollbackParams`): `to_version`, `reason`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Asset, dag

from ragops.models import Promotion
from ragops.orchestration import DEFAULT_ARGS, TaskRuntime, airflow_params, ragops_task, run_closer, run_opener
from ragops.runs import RunRef
from ragops.training.params import ModelRollbackParams
from ragops.training.summary import summarize_rollback
from ragops.vocabulary import MODEL_ASSET_URI


@dag(
    dag_id="rag_model_rollback",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ragops", "training", "rollback"],
    default_args={**DEFAULT_ARGS, "retries": 1},
    params=airflow_params(ModelRollbackParams),
)
def rag_model_rollback():
    @ragops_task(outlets=[Asset(MODEL_ASSET_URI)])
    def rollback(rt: TaskRuntime, run: RunRef, params: ModelRollbackParams) -> Promotion:
        from ragops.training import promotion

        return promotion.rollback_model(rt, params, run)

    run = run_opener(ModelRollbackParams)()
    rollback(run) >> run_closer(summarize_rollback)(run)


rag_model_rollback()
