"""Integration tests against real servers that scripts/services.sh builds and runs (tests/services.py).

MinIO: the server MINIO_ENDPOINT_URL (MINIO_ACCESS_KEY, MINIO_SECRET_KEY, MINIO_BUCKET) names, or a
local one started for the session. Where Go is missing the tests are skipped, loudly.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

MINIO_CONN_ID = "ragops_minio"


@dataclass(frozen=True)
class MinioServer:
    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str

    def connection(self, secret_key: str | None = None) -> str:
        """An Airflow ``aws`` connection for this server, as AIRFLOW_CONN_<ID> JSON: the only place
        the credentials are given."""
        return json.dumps({"conn_type": "aws", "login": self.access_key, "password": secret_key or self.secret_key,
                           "extra": {"endpoint_url": self.endpoint_url, "region_name": "us-east-1"}})


@pytest.fixture(scope="session")
def minio_server(pytestconfig) -> MinioServer:
    from tests.services import ServiceUnavailable, ensure_service, skip_loudly

    env: dict[str, str] = dict(os.environ)
    if not env.get("MINIO_ENDPOINT_URL"):
        try:
            env = ensure_service(pytestconfig, "minio")
        except ServiceUnavailable as exc:
            skip_loudly(pytestconfig, "MinIO", str(exc), "or set MINIO_ENDPOINT_URL to a running server")
    return MinioServer(env["MINIO_ENDPOINT_URL"], env["MINIO_ACCESS_KEY"], env["MINIO_SECRET_KEY"],
                       env.get("MINIO_BUCKET") or "ragops")


@pytest.fixture
def s3_client(minio_server):
    """A plain boto3 client on the server: to look at what the code under test wrote, independently."""
    import boto3

    return boto3.client("s3", endpoint_url=minio_server.endpoint_url, aws_access_key_id=minio_server.access_key,
                        aws_secret_access_key=minio_server.secret_key, region_name="us-east-1")


@pytest.fixture
def minio_root(minio_server, s3_client, monkeypatch) -> Iterator[str]:
    """``s3://ragops_minio@<bucket>/<unique prefix>``, its credentials in AIRFLOW_CONN_RAGOPS_MINIO only
    (no AWS_* variables, no config files), removed afterwards."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv(f"AIRFLOW_CONN_{MINIO_CONN_ID.upper()}", minio_server.connection())
    prefix = f"it-{uuid.uuid4().hex[:12]}"
    yield f"s3://{MINIO_CONN_ID}@{minio_server.bucket}/{prefix}"
    listed = s3_client.list_objects_v2(Bucket=minio_server.bucket, Prefix=f"{prefix}/")
    for obj in listed.get("Contents", []):
        s3_client.delete_object(Bucket=minio_server.bucket, Key=obj["Key"])
