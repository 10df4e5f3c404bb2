"""Airflow Connections and Variables turned into ragops settings, read once per task.

Secrets come only from Connections and never leave the objects built here.

Connections (``airflow_settings.yaml`` defines the local ones):
- ``ragops_postgres`` (required): the lineage registry's Postgres; extras such as ``sslmode``
  become libpq parameters. Never Airflow's metadata DB.
- ``ragops_weaviate`` (optional, the Weaviate provider's ``weaviate`` type: host, port, extra
  ``api_key``, ``grpc_host``/``grpc_port``/``grpc_secure``, ``http_secure``): without it the
  embedded LanceDB store is used (a named fallback).
- ``ragops_llm`` (optional): an OpenAI-compatible endpoint; host = base URL, password = API key.
- ``ragops_slack`` (optional, Slack incoming webhook) and ``ragops_smtp`` (optional, extra
  ``{"to": ...}``) for alerts. Alerts are always logged and recorded whether or not these exist.

Variables: ``ragops_lineage_schema``, ``ragops_artifact_root``, ``ragops_vector_dir``,
``ragops_allowed_roots`` (JSON list of the folders a run's params may read; unset: the worker's
RAGOPS_ALLOWED_ROOTS, else /opt/airflow/data; the demo corpus and a local artifact root always).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from ragops.config import RagopsSettings
from ragops.services import LLMEndpoint
from ragops.vocabulary import (
    ALLOWED_ROOTS_VARIABLE,
    ARTIFACT_ROOT_VARIABLE,
    DEFAULT_DATA_ROOT,
    DEFAULT_SCHEMA,
    LLM_CONN_ID,
    POSTGRES_CONN_ID,
    SCHEMA_VARIABLE,
    SLACK_CONN_ID,
    SMTP_CONN_ID,
    VECTOR_DIR_VARIABLE,
    WEAVIATE_CONN_ID,
)

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from ragops.notify import Channel

# libpq parameters a Postgres connection's extras may carry (anything else is not libpq's).
_LIBPQ_EXTRAS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name",
                 "target_session_attrs", "options")


def connection(conn_id: str) -> Connection | None:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def variable(key: str, default: str | None = None) -> str | None:
    from airflow.sdk import Variable

    return Variable.get(key, default=default)


def postgres_dsn() -> str:
    conn = connection(POSTGRES_CONN_ID)
    if conn is None:
        raise RuntimeError(f"the Airflow connection {POSTGRES_CONN_ID!r} (the lineage registry's Postgres) is missing")
    user = quote(conn.login or "", safe="")
    password = f":{quote(conn.password, safe='')}" if conn.password else ""
    auth = f"{user}{password}@" if user else ""
    extras = {k: v for k, v in (conn.extra_dejson or {}).items() if k in _LIBPQ_EXTRAS}
    query = f"?{urlencode(extras)}" if extras else ""
    return f"postgresql://{auth}{conn.host or '127.0.0.1'}:{conn.port or 5432}/{conn.schema or 'ragops'}{query}"


def settings_from_airflow() -> RagopsSettings:
    """Settings for a running task, from Connections and Variables, with every fallback named."""
    env = dict(os.environ)
    env["RAGOPS_PG_DSN"] = postgres_dsn()
    env["RAGOPS_SCHEMA"] = variable(SCHEMA_VARIABLE, env.get("RAGOPS_SCHEMA", DEFAULT_SCHEMA)) or DEFAULT_SCHEMA
    for var, name in ((ARTIFACT_ROOT_VARIABLE, "RAGOPS_ARTIFACT_ROOT"), (VECTOR_DIR_VARIABLE, "RAGOPS_VECTOR_DIR")):
        value = variable(var, env.get(name))
        if value:
            env[name] = value
    # Params may read only inside these folders (issue 9, defect 6): a task is never unrestricted.
    env["RAGOPS_ALLOWED_ROOTS"] = (variable(ALLOWED_ROOTS_VARIABLE, env.get("RAGOPS_ALLOWED_ROOTS"))
                                   or json.dumps([DEFAULT_DATA_ROOT]))
    weaviate = connection(WEAVIATE_CONN_ID)
    options: dict[str, Any] = {}
    if weaviate is not None and weaviate.host:
        # The Weaviate provider's connection type (host, port, extra api_key/grpc_*/http_secure),
        # read the way its WeaviateHook reads it; aliases need the client, so no hook here.
        from ragops.stores.weaviate_store import weaviate_settings_from_connection

        mapped = weaviate_settings_from_connection(weaviate.host, weaviate.port, weaviate.password,
                                                   weaviate.extra_dejson, login=weaviate.login,
                                                   schema=weaviate.schema)
        env.update(WEAVIATE_URL=mapped["url"], WEAVIATE_GRPC_PORT=str(mapped["grpc_port"]),
                   RAGOPS_VECTOR_BACKEND="weaviate")
        if mapped["api_key"]:
            env["WEAVIATE_API_KEY"] = mapped["api_key"]
        options = {"grpc_host": mapped["grpc_host"], "grpc_secure": mapped["grpc_secure"],
                   "headers": mapped["headers"]}
    else:
        env.pop("WEAVIATE_URL", None)
        env["RAGOPS_VECTOR_BACKEND"] = "lancedb"
    settings = RagopsSettings.from_env(env)
    settings.weaviate_options = options
    return settings


def artifact_root_path(settings: RagopsSettings) -> Any:
    """A remote artifact root as Airflow's ObjectStoragePath (it reads the connection named in the
    URI, ``s3://aws_default@bucket/prefix``); None for a local root."""
    root = settings.artifact_root
    if "://" not in root or root.startswith("file://"):
        return None
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(root)


def fsspec_options(uri: str) -> dict[str, Any]:
    """fsspec options for an ``s3://conn_id@bucket/...`` URI, from the aws connection it names
    (key, secret, session token, endpoint URL, region), so that a trainer process without Airflow
    reaches the same store. They go into that process's environment only (never its arguments,
    a log or XCom). Other schemes: configure ``ragops_training.storage_options`` instead."""
    scheme, _, rest = uri.partition("://")
    conn_id = rest.partition("/")[0].rpartition("@")[0]
    if not conn_id:
        return {}
    conn = connection(conn_id)
    if conn is None:
        raise RuntimeError(f"the artifact root names the Airflow connection {conn_id!r}, which does not exist")
    if scheme not in ("s3", "s3a"):
        return {}
    extra = conn.extra_dejson or {}
    options: dict[str, Any] = {}
    if conn.login:
        options["key"] = conn.login
    if conn.password:
        options["secret"] = conn.password
    if extra.get("aws_session_token"):
        options["token"] = extra["aws_session_token"]
    endpoint = extra.get("endpoint_url") or (extra.get("service_config") or {}).get("s3", {}).get("endpoint_url")
    if endpoint:
        options["endpoint_url"] = endpoint
    if extra.get("region_name"):
        options["client_kwargs"] = {"region_name": extra["region_name"]}
    return options


def llm_endpoint() -> LLMEndpoint | None:
    """The OpenAI-compatible endpoint, or None (then the offline generator runs, a named fallback)."""
    conn = connection(LLM_CONN_ID)
    if conn is None or not conn.host:
        return None
    base_url = conn.host if "://" in conn.host else f"https://{conn.host}"
    if conn.port:
        base_url = f"{base_url}:{conn.port}"
    if conn.schema:
        base_url = f"{base_url.rstrip('/')}/{conn.schema.strip('/')}"
    return LLMEndpoint(base_url, conn.password or "not-needed", dict(conn.extra_dejson or {}))


def alert_channels() -> dict[str, Channel]:
    """Slack and email, where their connections exist (log and registry are always on).

    The channels are ragops' own (``ragops.notify``), built from the connections' fields, so that
    the CLI alerts the same way without Airflow and each channel escapes for its medium."""
    from ragops.notify import SlackWebhookChannel, SmtpChannel

    channels: dict[str, Channel] = {}
    slack = connection(SLACK_CONN_ID)
    if slack is not None and (slack.password or slack.host):
        # The Slack provider's slackwebhook type: password = the webhook token (or its whole URL).
        token = slack.password or ""
        base = slack.host if slack.host and "://" in slack.host else "https://hooks.slack.com/services"
        channels["slack"] = SlackWebhookChannel(token if token.startswith("http") else f"{base.rstrip('/')}/{token}")
    smtp = connection(SMTP_CONN_ID)
    extra = (smtp.extra_dejson or {}) if smtp is not None else {}
    if smtp is not None and extra.get("to"):
        # The SMTP provider's semantics: SSL unless disable_ssl, else STARTTLS unless disable_tls.
        use_ssl = not extra.get("disable_ssl", False)
        channels["email"] = SmtpChannel(
            smtp.host or "localhost", int(smtp.port or (465 if use_ssl else 25)),
            sender=extra.get("from_email") or f"ragops@{smtp.host or 'localhost'}", recipients=extra["to"],
            username=smtp.login or None, password=smtp.password or None, use_ssl=use_ssl,
            starttls=not use_ssl and not extra.get("disable_tls", False), timeout=float(extra.get("timeout", 10)))
    return channels
