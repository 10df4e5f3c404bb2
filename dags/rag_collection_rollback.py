"""
# rag_collection_rollback

Rolls a collection alias back to an earlier version in one trigger: choose the alias and the
version number (see `python -m ragops lineage versions --alias RagDocs`, or the registry's
`v_live` view). The version must still exist in the vector store and hold all its objects; the
switch is atomic, made under the alias' lock (an index run cannot undo it), and recorded in the
alias history with the reason `rollback to v<N>`. It emits `ragops://collection/<alias>` only
when the alias moved.

**Connections**: `ragops_postgres` (lineage registry); `ragops_weaviate` (optional, else the embedded store).

**Params** (`ragops.indexing.params.CollectionRollbackParams`): `alias`, `version`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import AssetAlias, dag

from ragops.indexing.params import CollectionRollbackParams
from ragops.indexing.records import Swap
from ragops.indexing.summary import summarize_rollback
from ragops.orchestration import DEFAULT_ARGS, TaskRuntime, airflow_params, ragops_task, run_closer, run_opener
from ragops.runs import RunRef
from ragops.vocabulary import COLLECTION_ASSET_ALIAS

COLLECTIONS = AssetAlias(COLLECTION_ASSET_ALIAS)


@dag(
    dag_id="rag_collection_rollback",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ragops", "indexing", "rollback"],
    default_args={**DEFAULT_ARGS, "retries": 1},
    params=airflow_params(CollectionRollbackParams),
)
def rag_collection_rollback():
    @ragops_task(outlets=[COLLECTIONS])
    def rollback(rt: TaskRuntime, run: RunRef, params: CollectionRollbackParams) -> Swap:
        from ragops.indexing import versions

        return versions.rollback(rt, params.alias, params.version, run)

    run = run_opener(CollectionRollbackParams)()
    rollback(run) >> run_closer(summarize_rollback)(run)


rag_collection_rollback()
