"""The DAG side: Airflow Connections and Variables turned into ragops objects.

Only DAG tasks import this module, and it imports Airflow lazily, inside functions, so the rest of
``ragops`` stays importable and testable without Airflow. Secrets come only from Connections and
never leave the objects built here.

Connections (``airflow_settings.yaml`` defines the local ones):
- ``ragops_postgres`` (required): the lineage registry's Postgres; schema from the Variable
  ``ragops_lineage_schema`` (default ``ragops``). Never Airflow's metadata DB.
- ``ragops_weaviate`` (optional): host = Weaviate URL, password = API key, extra ``{"grpc_port": 50051}``.
  Without it, the embedded LanceDB store is used (a named fallback).
- ``ragops_llm`` (optional): an OpenAI-compatible endpoint; host = base URL, password = API key.
- ``ragops_slack`` (optional, Slack incoming webhook) and ``ragops_smtp`` (optional, extra ``{"to": ...}``)
  for alerts. Alerts are always logged and recorded whether or not these exist.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from ragops.config import DEFAULT_SCHEMA, Fallback, RagopsSettings, redact

log = logging.getLogger(__name__)

POSTGRES_CONN_ID = "ragops_postgres"
WEAVIATE_CONN_ID = "ragops_weaviate"
LLM_CONN_ID = "ragops_llm"
SLACK_CONN_ID = "ragops_slack"
SMTP_CONN_ID = "ragops_smtp"

# Pools that protect shared services (created from airflow_settings.yaml).
VECTOR_STORE_POOL = "vector_store"
LLM_POOL = "llm_api"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "ragops",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


def _connection(conn_id: str) -> Any | None:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _variable(key: str, default: str | None = None) -> str | None:
    from airflow.sdk import Variable

    return Variable.get(key, default=default)


def postgres_dsn() -> str:
    conn = _connection(POSTGRES_CONN_ID)
    if conn is None:
        raise RuntimeError(f"the Airflow connection {POSTGRES_CONN_ID!r} (the lineage registry's Postgres) is missing")
    from urllib.parse import quote

    user = quote(conn.login or "", safe="")
    password = f":{quote(conn.password, safe='')}" if conn.password else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgresql://{auth}{conn.host or '127.0.0.1'}:{conn.port or 5432}/{conn.schema or 'ragops'}"


def runtime_settings() -> RagopsSettings:
    """Settings for a running task, from Connections and Variables, with every fallback named."""
    import os

    env = dict(os.environ)
    env["RAGOPS_PG_DSN"] = postgres_dsn()
    env["RAGOPS_SCHEMA"] = _variable("ragops_lineage_schema", env.get("RAGOPS_SCHEMA", DEFAULT_SCHEMA)) or DEFAULT_SCHEMA
    artifact_root = _variable("ragops_artifact_root", env.get("RAGOPS_ARTIFACT_ROOT"))
    if artifact_root:
        env["RAGOPS_ARTIFACT_ROOT"] = artifact_root
    vector_dir = _variable("ragops_vector_dir", env.get("RAGOPS_VECTOR_DIR"))
    if vector_dir:
        env["RAGOPS_VECTOR_DIR"] = vector_dir
    weaviate = _connection(WEAVIATE_CONN_ID)
    if weaviate is not None and weaviate.host:
        host = weaviate.host if "://" in weaviate.host else f"{weaviate.schema or 'http'}://{weaviate.host}"
        env["WEAVIATE_URL"] = f"{host}:{weaviate.port}" if weaviate.port else host
        env["RAGOPS_VECTOR_BACKEND"] = "weaviate"
        extra = weaviate.extra_dejson or {}
        if extra.get("grpc_port"):
            env["WEAVIATE_GRPC_PORT"] = str(extra["grpc_port"])
        if weaviate.password:
            env["WEAVIATE_API_KEY"] = weaviate.password
    else:
        env.pop("WEAVIATE_URL", None)
        env["RAGOPS_VECTOR_BACKEND"] = "lancedb"
    settings = RagopsSettings.from_env(env)
    settings.log_fallbacks()
    return settings


def open_registry(settings: RagopsSettings | None = None) -> Any:
    from ragops.lineage import Registry

    settings = settings or runtime_settings()
    registry = Registry(settings.pg_dsn, settings.schema)
    registry.migrate()
    return registry


def open_artifacts(settings: RagopsSettings | None = None) -> Any:
    from ragops.artifacts import ArtifactStore

    return ArtifactStore((settings or runtime_settings()).artifact_root)


def open_vector_store(settings: RagopsSettings | None = None) -> Any:
    from ragops.stores import open_store

    return open_store(settings or runtime_settings())


def llm_endpoint() -> dict[str, Any] | None:
    """The OpenAI-compatible endpoint, or None (then the offline generator runs, a named fallback)."""
    conn = _connection(LLM_CONN_ID)
    if conn is None or not conn.host:
        return None
    base_url = conn.host if "://" in conn.host else f"https://{conn.host}"
    if conn.port:
        base_url = f"{base_url}:{conn.port}"
    if conn.schema:
        base_url = f"{base_url.rstrip('/')}/{conn.schema.strip('/')}"
    return {"base_url": base_url, "api_key": conn.password or "not-needed", "extra": conn.extra_dejson or {}}


def notifier(registry: Any = None) -> Any:
    """Log + registry always; Slack and email when their connections exist."""
    from ragops.notify import Notifier

    channels: dict[str, Any] = {}
    if _connection(SLACK_CONN_ID) is not None:
        def post_to_slack(title: str, message: str) -> None:
            from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

            SlackWebhookHook(slack_webhook_conn_id=SLACK_CONN_ID).send_text(f"*{title}*\n{message}")

        channels["slack"] = post_to_slack
    smtp = _connection(SMTP_CONN_ID)
    if smtp is not None:
        recipients = (smtp.extra_dejson or {}).get("to")

        def send_email(title: str, message: str) -> None:
            from airflow.providers.smtp.hooks.smtp import SmtpHook

            with SmtpHook(smtp_conn_id=SMTP_CONN_ID) as hook:
                hook.send_email_smtp(to=recipients, subject=f"[ragops] {title}", html_content=f"<pre>{message}</pre>")

        if recipients:
            channels["email"] = send_email
    return Notifier(registry=registry, channels=channels)


def run_key(context: dict[str, Any]) -> str:
    from ragops.lineage import run_key_for

    return run_key_for(context["dag"].dag_id, context["run_id"])


def fallbacks_of(settings: RagopsSettings) -> list[dict[str, str]]:
    return [fb.as_dict() for fb in settings.fallbacks]


def alert_on_failure(context: dict[str, Any]) -> None:
    """on_failure_callback: any failed task raises an alert through the notifier."""
    ti = context.get("task_instance") or context.get("ti")
    title = f"{context['dag'].dag_id}.{getattr(ti, 'task_id', '?')} failed"
    try:
        registry = open_registry()
        key = run_key(context)
        if registry.get_run(key) is None:
            registry.start_run(context["dag"].dag_id, context["run_id"])
        error = str(context.get("exception") or "task failed")
        notifier(registry).alert(title, error, run_key=key, context={"try_number": getattr(ti, "try_number", None)})
        # No run stays "running" in lineage because its summary task never ran; a summary task
        # that does run later records the full picture over this.
        registry.finish_run(key, "failed", {"failed_task": getattr(ti, "task_id", None), "error": error[:2000]})
    except Exception:  # a broken alert path must not mask the task's own failure
        log.exception("could not record the failure alert for %s", title)


def failed_tasks(context: dict[str, Any]) -> list[str]:
    """The tasks of this DAG run that failed (not those merely upstream_failed), for the summary
    task that always runs last: it records them and fails itself, so the run's state tells the truth."""
    ti = context["ti"]
    states = ti.get_task_states(dag_id=context["dag"].dag_id, run_ids=[context["run_id"]])
    return sorted(t for t, state in states.get(context["run_id"], {}).items()
                  if state == "failed" and t != ti.task_id)


def safe_params(params: dict[str, Any]) -> dict[str, Any]:
    """Params as recorded in lineage and XCom: plain JSON, secrets masked."""
    return redact({k: v for k, v in dict(params).items()})


__all__ = [
    "DEFAULT_ARGS", "LLM_POOL", "VECTOR_STORE_POOL", "Fallback", "alert_on_failure", "failed_tasks", "fallbacks_of",
    "llm_endpoint", "notifier", "open_artifacts", "open_registry", "open_vector_store", "postgres_dsn",
    "run_key", "runtime_settings", "safe_params",
]
