"""The task runtime: one place that turns domain errors into Airflow outcomes, and the
decorator that hides the plumbing from task bodies."""

from __future__ import annotations

import inspect
import json

import pytest


def test_domain_errors_become_airflow_outcomes():
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from ragops.errors import AliasMoved, DataQualityError, GateFailed, InvalidInput, NothingNew, SchemaBehind
    from ragops.orchestration.runtime import airflow_outcomes

    for deterministic in (InvalidInput, DataQualityError, GateFailed, SchemaBehind, AliasMoved):
        with pytest.raises(AirflowFailException, match=f"{deterministic.__name__}: bad"), airflow_outcomes():
            raise deterministic("bad")
    with pytest.raises(AirflowSkipException, match="nothing new"), airflow_outcomes():
        raise NothingNew("nothing new")
    with pytest.raises(ConnectionError), airflow_outcomes():  # transient: Airflow retries it
        raise ConnectionError("postgres restarted")


def test_ragops_task_hides_the_runtime_and_params_from_the_wiring():
    from ragops.indexing.params import IndexParams
    from ragops.indexing.records import ChunkSet, IndexRun
    from ragops.orchestration import TaskRuntime, ragops_task

    def plan(rt: TaskRuntime, run: IndexRun, chunks: ChunkSet, params: IndexParams) -> dict:
        return {}

    decorated = ragops_task(plan, pool="vector_store")
    assert list(inspect.signature(decorated.function).parameters) == ["run", "chunks"]
    assert decorated.multiple_outputs is False  # a record is one XCom value, never unrolled
    assert decorated.kwargs["pool"] == "vector_store"


def test_records_given_as_xcom_arrive_typed():
    from ragops.indexing.records import Shard
    from ragops.orchestration.runtime import _as_record
    from ragops.runs import RunRef

    shard = Shard("C_1", "/p.json", 0, 8)
    assert _as_record(Shard, shard.to_xcom()) == shard
    assert _as_record(RunRef | None, None) is None
    assert _as_record(list[Shard], [shard.to_xcom()]) == [shard]
    assert _as_record(list, [1]) == [1]  # not a record: passed on as it is


def test_postgres_connection_keeps_its_libpq_extras(monkeypatch):
    from ragops.orchestration.connections import postgres_dsn

    monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_POSTGRES", json.dumps({
        "conn_type": "postgres", "host": "db.internal", "port": 5432, "login": "ragops", "password": "p@ss",
        "schema": "lineage", "extra": {"sslmode": "require", "connect_timeout": 5, "cursor": "dict"}}))
    dsn = postgres_dsn()
    assert dsn == "postgresql://ragops:p%40ss@db.internal:5432/lineage?sslmode=require&connect_timeout=5"


def test_the_weaviate_providers_connection_configures_the_store(monkeypatch, tmp_path):
    from ragops.orchestration.connections import settings_from_airflow

    monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_POSTGRES", json.dumps({"conn_type": "postgres", "host": "h"}))
    monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_WEAVIATE", json.dumps({
        "conn_type": "weaviate", "host": "weaviate.internal", "port": 8080,
        "extra": {"api_key": "wv-secret", "grpc_port": 50051, "grpc_host": "grpc.internal"}}))
    settings = settings_from_airflow()
    assert settings.vector_backend == "weaviate" and "Weaviate" not in {f.service for f in settings.fallbacks}
    assert settings.weaviate_url == "http://weaviate.internal:8080" and settings.weaviate_grpc_port == 50051
    assert settings.weaviate_api_key == "wv-secret" and settings.weaviate_options["grpc_host"] == "grpc.internal"
    assert "wv-secret" not in repr(settings)
    monkeypatch.delenv("AIRFLOW_CONN_RAGOPS_WEAVIATE")
    assert settings_from_airflow().vector_backend == "lancedb"


def test_alert_channels_come_from_the_slack_and_smtp_connections(monkeypatch):
    from ragops.notify import SlackWebhookChannel, SmtpChannel
    from ragops.orchestration.connections import alert_channels

    assert alert_channels() == {}
    monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_SLACK", json.dumps({"conn_type": "slackwebhook",
                                                                "password": "T000/B000/XXXX"}))
    monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": 2525, "login": "u", "password": "p",
        "extra": {"to": "team@example.com", "disable_ssl": True, "disable_tls": True}}))
    channels = alert_channels()
    assert isinstance(channels["slack"], SlackWebhookChannel) and isinstance(channels["email"], SmtpChannel)
    assert channels["slack"].url == "https://hooks.slack.com/services/T000/B000/XXXX"
    assert (channels["email"].port, channels["email"].use_ssl, channels["email"].starttls) == (2525, False, False)


def test_trainer_storage_options_come_from_the_artifact_roots_connection(monkeypatch):
    from ragops.orchestration.connections import fsspec_options

    monkeypatch.setenv("AIRFLOW_CONN_STORE", json.dumps({
        "conn_type": "aws", "login": "AKID", "password": "s3cr3t",
        "extra": {"endpoint_url": "http://127.0.0.1:9010", "region_name": "eu-west-1"}}))
    assert fsspec_options("s3://store@bucket/models/x") == {
        "key": "AKID", "secret": "s3cr3t", "endpoint_url": "http://127.0.0.1:9010",
        "client_kwargs": {"region_name": "eu-west-1"}}
    assert fsspec_options("s3://bucket/models/x") == {}  # no connection named: the environment's credentials
