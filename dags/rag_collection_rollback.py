"""
# rag_collection_rollback

Rolls a collection alias back to an earlier version in one trigger: choose the alias and the
version number (see `python -m ragops lineage versions --alias RagDocs`, or the registry's
`v_live` view). The version must still exist in the vector store and hold all its objects; the
switch is atomic and recorded in the alias history with the reason `rollback to v<N>`.

**Connections**: `ragops_postgres` (lineage registry); `ragops_weaviate` (optional, else the embedded store).

**Params**: `alias`, `version`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Asset, Param, dag, task

from ragops.assets import collection_asset_uri
from ragops.orchestration import DEFAULT_ARGS, alert_on_failure

ALIAS = "RagDocs"


@dag(
    dag_id="rag_collection_rollback",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ragops", "indexing", "rollback"],
    default_args={**DEFAULT_ARGS, "retries": 1, "on_failure_callback": alert_on_failure},
    params={
        "alias": Param(ALIAS, type="string", pattern=r"^[A-Z][A-Za-z0-9_]*$", description="The alias to move."),
        "version": Param(1, type="integer", minimum=1, description="The collection version to make live again."),
    },
)
def rag_collection_rollback():
    @task(multiple_outputs=False, outlets=[Asset(collection_asset_uri(ALIAS))])
    def rollback(**context) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from ragops import indexing, orchestration

        settings = orchestration.runtime_settings()
        registry = orchestration.open_registry(settings)
        params = context["params"]
        run_key = registry.start_run(context["dag"].dag_id, context["run_id"], dict(params),
                                     orchestration.fallbacks_of(settings))
        try:
            result = indexing.rollback(params["alias"], int(params["version"]), registry,
                                       orchestration.open_vector_store(settings), run_key)
        except ValueError as exc:
            registry.finish_run(run_key, "failed", {"error": str(exc)})
            raise AirflowFailException(str(exc)) from exc
        registry.finish_run(run_key, "success", result)
        return result

    rollback()


rag_collection_rollback()
