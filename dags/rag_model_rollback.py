"""
# rag_model_rollback

Puts an earlier embedding-model version back into production in one trigger: choose the version
(`SELECT version, stage, status FROM artifacts WHERE kind = 'model'` in the lineage schema, or the
stage history in the run summary). Allowed: a version that was production before, or the base
model. The switch is one registry transaction (the current production version is archived),
recorded in the stage history with the reason, and it emits the model asset
`ragops://model/embeddings`, so `rag_index` re-embeds the collection with the restored model.

**Connections**: `ragops_postgres` (lineage registry).

**Params**: `to_version`, `reason`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Asset, Param, dag, task

from ragops.assets import MODEL_ASSET_URI
from ragops.orchestration import DEFAULT_ARGS, alert_on_failure


@dag(
    dag_id="rag_model_rollback",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ragops", "training", "rollback"],
    default_args={**DEFAULT_ARGS, "retries": 1, "on_failure_callback": alert_on_failure},
    params={
        "to_version": Param(1, type="integer", minimum=1,
                            description="The model version (of 'embeddings') to make production again."),
        "reason": Param("", type="string", description="Why (recorded in the stage history)."),
    },
)
def rag_model_rollback():
    @task(multiple_outputs=False, outlets=[Asset(MODEL_ASSET_URI)])
    def rollback(**context) -> dict:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from ragops import orchestration
        from ragops.models import production_history, rollback

        settings = orchestration.runtime_settings()
        registry = orchestration.open_registry(settings)
        params = context["params"]
        run_key = registry.start_run(context["dag"].dag_id, context["run_id"], dict(params),
                                     orchestration.fallbacks_of(settings))
        version = int(params["to_version"])
        try:
            result = rollback(registry, version, run_key=run_key,
                              reason=params["reason"] or f"rollback to v{version} ({context['run_id']})")
        except ValueError as exc:
            registry.finish_run(run_key, "failed", {"error": str(exc)})
            raise AirflowFailException(str(exc)) from exc
        result["history"] = production_history(registry)[-10:]
        registry.finish_run(run_key, "success", result)
        if not result["promoted"]:
            raise AirflowSkipException(f"{result['model_id']} is already production: nothing to re-embed")
        context["outlet_events"][Asset(MODEL_ASSET_URI)].extra = {
            "model_id": result["model_id"], "artifact_id": result["artifact_id"], "rollback": True}
        return result

    rollback()


rag_model_rollback()
