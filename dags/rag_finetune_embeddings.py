"""
# rag_finetune_embeddings

Finetunes the embedding model on the synthetic query dataset and promotes it only if it wins.

1. **resolve_inputs**: the dataset version (latest usable by default), the base model, the
   hyperparameters and a content-addressed output location; builds the trainer's arguments.
2. **train**: `include/ragops/training/train_embeddings.py` (MNRL in MatryoshkaLoss, checkpoints,
   warm restart) on a GPU pod (KubernetesPodOperator, image from `docker/Dockerfile.trainer`) or in
   a local process: the same arguments either way, chosen by configuration.
3. **register_candidate**: the model becomes a `candidate` version in the lineage registry.
4. **evaluate**: base, live (production) and candidate through one evaluator (nDCG@10, MRR@10,
   Recall@k at every Matryoshka dim) on the dataset's test split and the optional guard sets; the
   report and a chart are saved as artifacts (the task log prints the chart's URL; the UI's
   "RAG artifacts" menu lists them).
5. **gate**: promote only if the candidate beats the live model by `margin` on nDCG@10 at full
   dim and regresses nowhere beyond `guard_tolerance`. A rejection is a successful run, recorded
   with its reasons.
6. **promote**: one registry transaction (the old production version is archived), and the model
   asset `ragops://model/embeddings` is emitted, which re-embeds the collection (`rag_index`).
   Skipped when the gate rejected, so nothing downstream runs.
7. **lineage_summary**: the run's summary to XCom and the registry.

Roll back with `rag_model_rollback`.

**Schedule**: on each new usable dataset (`ragops://dataset/synthetic-queries`), or manually.

**Connections**: `ragops_postgres` (lineage registry, required); `kubernetes_default` (or the
`kubernetes_conn_id` of `ragops_training`) for GPU pods; `ragops_slack`/`ragops_smtp` (optional alerts).

**Variables**: `ragops_training` (JSON: `compute` local|kubernetes, `image`, `namespace`, `gpus`,
`node_selector`, `tolerations`, `secret_env`, `secret_env_from`, ... see `ragops/training/pod.py`;
default local), `ragops_artifact_root` (object storage for pods), `ragops_lineage_schema`.

**Params**: `dataset_version`, `base_model`, `epochs`, `batch_size`, `lr`, `matryoshka_dims`,
`max_steps`, `checkpoint_steps`, `seed`, `margin`, `guard_tolerance`, `ks`, `compute`,
`golden_queries`, `beir_folder`, `beir_split`, `beir_max_queries`, `beir_distractors`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

from ragops.assets import DATASET_ASSET_URI, MODEL_ASSET_URI
from ragops.orchestration import DEFAULT_ARGS, alert_on_failure

log = logging.getLogger(__name__)


@dag(
    dag_id="rag_finetune_embeddings",
    doc_md=__doc__,
    schedule=[Asset(DATASET_ASSET_URI)],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ragops", "training", "embeddings"],
    default_args={**DEFAULT_ARGS, "on_failure_callback": alert_on_failure},
    params={
        "dataset_version": Param(None, type=["null", "integer"], minimum=1,
                                 description="Version of the synthetic-queries dataset; empty = the latest usable one."),
        "base_model": Param("base", type="string",
                            description="Model to finetune: base (all-MiniLM-L6-v2), production, v<N> or a model folder."),
        "epochs": Param(1.0, type="number", exclusiveMinimum=0, description="Training epochs."),
        "batch_size": Param(32, type="integer", minimum=2,
                            description="Batch size (in-batch negatives grow with it; above 64 the cached loss is used)."),
        "lr": Param(2e-5, type="number", exclusiveMinimum=0, description="Learning rate."),
        "matryoshka_dims": Param([384, 256, 128, 64], type="array", items={"type": "integer", "minimum": 8},
                                 description="Matryoshka dims trained and evaluated (the full size is always included)."),
        "max_steps": Param(-1, type="integer", minimum=-1, description="Stop after this many steps (-1: all epochs)."),
        "checkpoint_steps": Param(100, type="integer", minimum=1,
                                  description="Checkpoint every N steps; a restarted trainer resumes from the last one."),
        "seed": Param(42, type="integer", description="Seed for data order and initialisation."),
        "margin": Param(0.005, type="number", minimum=0,
                        description="Required nDCG@10 gain over the live model (full dim, test split) to promote."),
        "guard_tolerance": Param(0.01, type="number", minimum=0,
                                 description="Largest nDCG@10 loss allowed on any other dim or guard set."),
        "ks": Param([10, 100], type="array", items={"type": "integer", "minimum": 1}, description="Recall@k cut-offs."),
        "compute": Param(None, type=["null", "string"], enum=[None, "local", "kubernetes"],
                         description="Override the Variable ragops_training's compute for this run."),
        "golden_queries": Param(None, type=["null", "string"],
                                description="JSONL of human-written queries {query, chunk_id|doc_id}: a guard set."),
        "beir_folder": Param(None, type=["null", "string"],
                             description="A BEIR folder (corpus.jsonl, queries.jsonl, qrels/): a doc-level guard set."),
        "beir_split": Param("test", type="string", description="The BEIR qrels split."),
        "beir_max_queries": Param(None, type=["null", "integer"], minimum=1,
                                  description="Evaluate only the first N BEIR queries (with their documents)."),
        "beir_distractors": Param(1000, type="integer", minimum=0,
                                  description="With beir_max_queries: how many other BEIR documents join the corpus."),
    },
)
def rag_finetune_embeddings():
    @task(multiple_outputs=False)
    def resolve_inputs(**context) -> dict:
        from ragops import orchestration
        from ragops.training import pipeline, pod

        settings = orchestration.runtime_settings()
        registry = orchestration.open_registry(settings)
        params = dict(context["params"])
        config = pod.load_config(params.get("compute"))
        fallbacks = orchestration.fallbacks_of(settings)
        if config.compute == "local":
            fallbacks.append({"service": "Kubernetes GPU pod", "using": "a local process running train_embeddings.py",
                              "reason": "ragops_training's compute is 'local'"})
            log.warning("fallback: Kubernetes GPU pod -> a local process running train_embeddings.py")
        run_key = registry.start_run(context["dag"].dag_id, context["run_id"], orchestration.safe_params(params),
                                     fallbacks)
        inputs = pipeline.resolve_inputs(params, registry, orchestration.open_artifacts(settings), config, run_key)
        log.info("training %s from %s on dataset v%s (%s) -> %s", inputs["compute"], inputs["base_model"]["model_id"],
                 inputs["dataset"]["version"], inputs["dataset"]["uri"], inputs["output_uri"])
        return inputs

    @task(multiple_outputs=False, execution_timeout=timedelta(hours=12))
    def train(inputs: dict, **context) -> dict:
        """Local process or GPU pod, the same entrypoint and arguments; a retry resumes from the last checkpoint."""
        from ragops import orchestration
        from ragops.training import pod

        artifacts = orchestration.open_artifacts()
        finished = f"{inputs['output_rel']}/metrics.json"
        if artifacts.exists(finished) and artifacts.exists(f"{inputs['output_rel']}/model/config.json"):
            # The output location is keyed by the inputs: a finished model there is this run's model.
            log.info("already trained at %s: no pod, no process", inputs["output_uri"])
            return {**artifacts.read_json(finished), "skipped": True}
        if inputs["compute"] == "local":
            pod.run_local(inputs["args"], logger=log)
        else:
            operator = pod.pod_operator("train_pod", pod.load_config(inputs["compute"]), inputs["args"])
            operator.execute(context)
        metrics = artifacts.read_json(finished)
        log.info("trained: %s", metrics)
        return {**metrics, "skipped": False}

    @task(multiple_outputs=False)
    def register_candidate(inputs: dict, metrics: dict) -> dict:
        from ragops import orchestration
        from ragops.training import pipeline

        settings = orchestration.runtime_settings()
        return pipeline.register_trained(inputs, metrics, orchestration.open_registry(settings),
                                         orchestration.open_artifacts(settings), inputs["run_key"])

    @task(multiple_outputs=False)
    def evaluate(inputs: dict, candidate: dict) -> dict:
        from ragops import orchestration
        from ragops.training import pipeline
        from ragops.training.links import artifact_url

        settings = orchestration.runtime_settings()
        artifacts = orchestration.open_artifacts(settings)
        result = pipeline.evaluate_run(inputs, candidate, orchestration.open_registry(settings), artifacts)
        if artifacts.is_local:
            log.info("evaluation chart: %s", artifact_url(result["chart_rel"]))
            log.info("evaluation report: %s", artifact_url(result["report_rel"]))
        else:
            log.info("evaluation chart: %s", result["chart_uri"])
        return result

    @task(multiple_outputs=False)
    def gate(inputs: dict, candidate: dict, evaluation: dict) -> dict:
        from ragops import orchestration
        from ragops.training import pipeline

        decision = pipeline.gate_run(inputs, candidate, evaluation, orchestration.open_registry(), inputs["run_key"])
        log.info("gate %s: %s", decision["verdict"], "; ".join(decision["reasons"]))
        return decision

    @task(multiple_outputs=False, outlets=[Asset(MODEL_ASSET_URI)])
    def promote(inputs: dict, candidate: dict, decision: dict, **context) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from ragops import orchestration
        from ragops.training import pipeline

        if not decision["promote"]:
            raise AirflowSkipException(f"gate rejected {candidate['model_id']}: nothing to promote")
        result = pipeline.promote_run(candidate, decision, orchestration.open_registry(), inputs["run_key"])
        context["outlet_events"][Asset(MODEL_ASSET_URI)].extra = {
            "model_id": result["model_id"], "artifact_id": result["artifact_id"], "hash": result["content_hash"][:12]}
        return result

    @task(multiple_outputs=False, trigger_rule="none_failed")
    def lineage_summary(inputs: dict, candidate: dict, decision: dict, evaluation: dict) -> dict:
        from ragops import orchestration

        registry = orchestration.open_registry()
        model = registry.get_artifact(candidate["id"])
        summary = {
            "dataset": inputs["dataset"], "base_model": inputs["base_model"]["model_id"],
            "hyperparameters": inputs["hyperparameters"], "compute": inputs["compute"],
            "candidate": {"model_id": candidate["model_id"], "hash": candidate["hash"][:12], "stage": model.stage,
                          "status": model.status},
            "live_before": decision["live_model"], "decision": decision["verdict"], "reasons": decision["reasons"],
            "evaluation_id": decision["evaluation_id"], "report_uri": evaluation["report_uri"],
            "chart_uri": evaluation["chart_uri"],
            "ndcg@10": {label: evaluation[label]["metrics"][evaluation[label]["primary_set"]]
                        [str(evaluation[label]["dims"][0])]["ndcg@10"] for label in ("base", "live", "candidate")},
        }
        registry.finish_run(inputs["run_key"], "success", summary)
        return summary

    inputs = resolve_inputs()
    metrics = train(inputs)
    candidate = register_candidate(inputs, metrics)
    evaluation = evaluate(inputs, candidate)
    decision = gate(inputs, candidate, evaluation)
    promoted = promote(inputs, candidate, decision)
    promoted >> lineage_summary(inputs, candidate, decision, evaluation)


rag_finetune_embeddings()
