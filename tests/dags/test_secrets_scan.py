"""Issue 9, the secrets scan: plant a distinctive secret in every connection and Variable that can
hold one, run the lifecycle through dag.test() (rag_index -> rag_synthetic_data with the LLM ->
rag_finetune_embeddings in a local process, and a failing rag_index that alerts by Slack and email),
then look for the secrets everywhere they could leak: the task logs (captured logging, stdout/stderr
and Airflow's log folder), every XCom and rendered field of the runs, every lineage row, the artifact
and vector files, the rendered trainer pod and the local trainer's command line. Zero hits.

The ragops_weaviate connection carries an api_key but no host, so the runs read it and fall back to
LanceDB (the real Weaviate is the contract tier's; this scan is about what the runs write)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest

from .conftest import run_dag, task_states, xcom

FIXTURE_CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
pytestmark = pytest.mark.dagrun

TAG = uuid.uuid4().hex[:10]
SECRETS = {   # distinctive, and shaped so that no pattern-based redaction would happen to catch them
    "ragops_postgres password": f"PgPlanted{TAG}Pw",
    "ragops_llm api key": f"LlmPlanted{TAG}Key",
    "ragops_slack token": f"SlackPlanted{TAG}Tok",
    "ragops_smtp password": f"SmtpPlanted{TAG}Pw",
    "ragops_weaviate api_key": f"WvPlanted{TAG}Key",
    "ragops_training storage_options": f"StoPlanted{TAG}Key",
}


def hits(text: str | bytes, where: str) -> list[str]:
    data = text if isinstance(text, bytes) else str(text).encode("utf-8", "backslashreplace")
    return [f"{name} in {where}" for name, secret in SECRETS.items() if secret.encode() in data]


@pytest.fixture
def planted_role(ragops_env, pg_dsn):
    """A lineage role whose password is a planted secret, with the tasks' privileges on this schema
    (created by the cluster's superuser, as tests/unit/test_lineage.py's least-privilege test does)."""
    from urllib.parse import urlunparse

    import psycopg2

    url = urlparse(pg_dsn)
    try:
        admin = psycopg2.connect(urlunparse(url._replace(netloc=f"postgres@{url.hostname}:{url.port}")))
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no superuser on this Postgres to create a role: {exc}")
    admin.autocommit = True
    role, schema = f"scan_{TAG}", ragops_env.schema
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s NOCREATEDB NOCREATEROLE",
                    (SECRETS["ragops_postgres password"],))
        cur.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}")
        cur.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}")
    yield role
    with admin.cursor() as cur:
        cur.execute(f"DROP OWNED BY {role}")
        cur.execute(f"DROP ROLE {role}")
    admin.close()


@pytest.fixture
def channels():
    """A Slack incoming-webhook server and a real SMTP server (AUTH on loopback) for the alerts."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from tests.unit.test_notify_channels import SlackWebhook, free_port

    class Inbox:
        def __init__(self):
            self.envelopes: list = []

        async def handle_DATA(self, server, session, envelope):
            self.envelopes.append(envelope)
            return "250 Message accepted for delivery"

    inbox, logins = Inbox(), []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append(auth_data.password == SECRETS["ragops_smtp password"].encode())
        return AuthResult(success=True)

    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, auth_require_tls=False,
                            authenticator=authenticator)
    controller.start()
    slack = SlackWebhook()
    yield SimpleNamespace(slack=slack, smtp_port=port, inbox=inbox, logins=logins)
    slack.close()
    controller.stop()


def test_no_planted_secret_leaks_anywhere(ragops_env, planted_role, channels, pg_dsn, base_model_path, tmp_path,
                                          monkeypatch, capfd, caplog):
    from airflow.configuration import conf as airflow_conf

    from ragops.training import compute
    from tests.llm_server import LLMTestServer

    started = time.time()
    caplog.set_level(logging.INFO)
    url = urlparse(pg_dsn)
    monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_POSTGRES", json.dumps({
        "conn_type": "postgres", "host": url.hostname, "port": url.port, "login": planted_role,
        "password": SECRETS["ragops_postgres password"], "schema": url.path.lstrip("/")}))
    monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_SLACK", json.dumps({
        "conn_type": "slackwebhook", "host": channels.slack.url.rsplit("/services/", 1)[0] + "/services",
        "password": f"T000/B000/{SECRETS['ragops_slack token']}"}))
    monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": channels.smtp_port, "login": "ragops",
        "password": SECRETS["ragops_smtp password"],
        "extra": {"to": "team@example.com", "disable_ssl": True, "disable_tls": True}}))
    monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_WEAVIATE", json.dumps({
        "conn_type": "weaviate", "extra": {"api_key": SECRETS["ragops_weaviate api_key"]}}))
    monkeypatch.setenv("AIRFLOW_VAR_RAGOPS_TRAINING", json.dumps({
        "compute": "local", "storage_options": {"account_key": SECRETS["ragops_training storage_options"]}}))

    # The local trainer's command line, as the OS would show it to any process on the worker.
    commands: list[list[str]] = []

    def recording_popen(cmd, *args, **kwargs):
        commands.append([str(c) for c in cmd])
        return subprocess.Popen(cmd, *args, **kwargs)

    monkeypatch.setattr(compute, "subprocess", SimpleNamespace(Popen=recording_popen, PIPE=subprocess.PIPE,
                                                               STDOUT=subprocess.STDOUT))

    corpus = tmp_path / "docs"
    shutil.copytree(FIXTURE_CORPUS, corpus)
    index_conf = {"sources": [{"type": "folder", "name": "fixture", "path": str(corpus), "root": str(corpus.parent)}],
                  "alias": "RagDocs", "chunk_size": 96, "chunk_overlap": 16, "mode": "full", "smoke_sample": 10,
                  "smoke_min_hit_rate": 0.7}
    runs = []
    runs.append(run_dag("rag_index", index_conf))
    assert runs[-1].state == "success", task_states(runs[-1])

    with LLMTestServer(api_key=SECRETS["ragops_llm api key"]) as server:
        monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_LLM", json.dumps({
            "conn_type": "http", "host": server.base_url, "password": SECRETS["ragops_llm api key"],
            "extra": {"model": "test-model", "price_prompt_per_1m": 1.0, "price_completion_per_1m": 2.0}}))
        runs.append(run_dag("rag_synthetic_data", {
            "alias": "RagDocs", "sample_size": 30, "questions_per_chunk": 2, "generator": "llm", "test_ratio": 0.3,
            "max_doc_share": 0.5, "review_sample_size": 4, "budget_max_usd": 1.0}))
        assert runs[-1].state == "success", task_states(runs[-1])
        assert server.calls > 0   # the key was used, and accepted

    runs.append(run_dag("rag_finetune_embeddings", {"base_model": "base", "epochs": 1, "max_steps": 2,
                                                     "batch_size": 8, "checkpoint_steps": 2,
                                                     "matryoshka_dims": [384, 128]}))
    assert task_states(runs[-1])["train"] == "success", task_states(runs[-1])
    assert commands and any("train_embeddings.py" in part for part in commands[0])   # in process: recorded

    runs.append(run_dag("rag_index", index_conf | {"sources": [{"type": "folder", "name": "gone",
                                                                "path": str(tmp_path / "no-such-folder")}]}))
    assert runs[-1].state == "failed"
    assert channels.slack.posts and channels.inbox.envelopes and all(channels.logins)   # the alerts went out

    found: list[str] = []
    # 1. logs: captured logging, everything written to stdout/stderr, Airflow's log folder
    out, err = capfd.readouterr()
    found += hits(caplog.text, "captured logging") + hits(out, "stdout") + hits(err, "stderr")
    log_folder = Path(airflow_conf.get("logging", "base_log_folder"))
    log_files = [p for p in log_folder.rglob("*") if p.is_file() and p.stat().st_mtime >= started] \
        if log_folder.exists() else []
    for path in log_files:
        found += hits(path.read_bytes(), f"log file {path}")
    # 2. every XCom and rendered template field of the runs
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        for run in runs:
            rows = session.query(XComModel).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
            assert rows, f"no XCom for {run.dag_id}"
            for row in rows:
                found += hits(json.dumps(XComModel.deserialize_value(row), default=str),
                              f"XCom {run.dag_id}.{row.task_id}.{row.key}")
            for row in session.query(RenderedTaskInstanceFields).filter_by(dag_id=run.dag_id, run_id=run.run_id):
                found += hits(json.dumps(row.rendered_fields, default=str), f"rendered fields {row.task_id}")
            found += hits(json.dumps(run.conf or {}, default=str), f"conf of {run.dag_id}")
    # 3. every lineage row: runs, artifacts (params, metrics), lineage, aliases, DQ, alerts, LLM cache
    import psycopg2

    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (ragops_env.schema,))
        tables = [name for (name,) in cur.fetchall()]
        assert {"runs", "artifacts", "alerts"} <= set(tables)
        for table in tables:
            cur.execute(f'SELECT t::text FROM "{ragops_env.schema}"."{table}" t')
            found += hits("\n".join(text for (text,) in cur.fetchall()), f"lineage table {table}")
        cur.execute(f'SELECT count(*) FROM "{ragops_env.schema}".alerts')
        assert cur.fetchone()[0] >= 1
    # 4. the artifact and vector files, byte for byte (text, parquet, models, LanceDB)
    files = [p for root in (ragops_env.artifact_root, ragops_env.vector_dir) for p in root.rglob("*") if p.is_file()]
    assert files
    for path in files:
        found += hits(path.read_bytes(), f"file {path}")
    # 5. the alerts as delivered
    # (the token is the webhook URL's path: the server sees it there, and nowhere in a body)
    assert all(SECRETS["ragops_slack token"] in post["path"] for post in channels.slack.posts)
    found += hits(json.dumps([{k: v for k, v in post.items() if k != "path"} for post in channels.slack.posts]),
                  "Slack posts (bodies)")
    found += hits(b"".join(e.content for e in channels.inbox.envelopes), "delivered email")
    # 6. the local trainer's command line, and the pod the same run would render
    found += hits(json.dumps(commands), "the local trainer's command line")
    found += hits(json.dumps(rendered_pod(xcom(runs[2], "resolve_inputs")["args"])), "the rendered pod")
    assert found == [], found


def rendered_pod(args: list[str]) -> dict:
    """The trainer pod of this run as the KubernetesPodOperator sends it, with the storage options from
    a Kubernetes Secret (the planted value inline is refused, and the refusal does not repeat it)."""
    from kubernetes.client import ApiClient

    from ragops.errors import InvalidInput
    from ragops.orchestration.pod import pod_operator
    from ragops.training.compute import STORAGE_OPTIONS_ENV, TrainingConfig

    pod = {"compute": "kubernetes", "image": "r/ragops-trainer:1", "namespace": "ml",
           "secret_env": [{"env": STORAGE_OPTIONS_ENV, "secret": "ragops-storage", "key": "options.json"}]}
    with pytest.raises(InvalidInput) as refused:
        TrainingConfig.from_value({**pod, "secret_env": [],
                                   "storage_options": {"account_key": SECRETS["ragops_training storage_options"]}})
    assert not hits(str(refused.value), "the refusal")
    operator = pod_operator("train_pod", TrainingConfig.from_value(pod), args)
    return ApiClient().sanitize_for_serialization(operator.build_pod_request_obj(dry_run=True))
