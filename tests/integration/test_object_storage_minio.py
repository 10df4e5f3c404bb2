"""The artifact store on real object storage: MinIO's S3 API through Airflow's ObjectStoragePath.

The root is ``s3://ragops_minio@<bucket>/<prefix>``: ObjectStoragePath finds the connection named
in the URI's userinfo, and the Amazon provider builds an s3fs filesystem from it (login, password,
extra ``endpoint_url``). The credentials exist only in that connection (AIRFLOW_CONN_RAGOPS_MINIO).
What the store wrote is checked with a separate boto3 client, so nothing here passes through a
local file by mistake.
"""

from __future__ import annotations

import inspect
import json
import os

import pyarrow as pa
import pytest

from ragops.artifacts import ArtifactStore

pytestmark = pytest.mark.minio


def open_store(root: str) -> ArtifactStore:
    """The store on ``root`` as the task runtime opens it: through Airflow's ObjectStoragePath."""
    from airflow.sdk import ObjectStoragePath

    if "root_path" in inspect.signature(ArtifactStore).parameters:
        return ArtifactStore(root, root_path=ObjectStoragePath(root))
    return ArtifactStore(root)


def object_key(root: str, rel: str) -> str:
    return f"{root.split('/', 3)[3]}/{rel}"


def test_the_root_is_remote_and_uris_keep_the_connection(minio_root):
    store = open_store(minio_root)
    assert not store.is_local
    assert store.uri("documents/abc.parquet") == f"{minio_root}/documents/abc.parquet"
    with pytest.raises(ValueError, match="remote"):
        store.local_path("x.json")


def test_bytes_round_trip_lands_in_the_bucket(minio_root, minio_server, s3_client):
    store = open_store(minio_root)
    payload = bytes(range(256)) * 1000  # binary, 256 kB
    uri = store.write_bytes("blobs/one.bin", payload)
    assert uri == f"{minio_root}/blobs/one.bin"
    assert store.exists("blobs/one.bin")
    assert store.read_bytes("blobs/one.bin") == payload
    stored = s3_client.get_object(Bucket=minio_server.bucket, Key=object_key(minio_root, "blobs/one.bin"))
    assert stored["Body"].read() == payload
    store.write_bytes("blobs/one.bin", b"rewritten")  # same path again: the last write wins, whole
    assert open_store(minio_root).read_bytes("blobs/one.bin") == b"rewritten"


def test_a_missing_artifact_is_named(minio_root):
    store = open_store(minio_root)
    assert not store.exists("nothing/here.json")
    with pytest.raises(FileNotFoundError, match="nothing/here.json"):
        store.read_bytes("nothing/here.json")


def test_json_round_trip(minio_root, minio_server, s3_client):
    store = open_store(minio_root)
    record = {"model": "minilm", "metrics": {"ndcg@10": 0.71}, "shards": [1, 2, 3], "note": "ünïcode"}
    store.write_json("runs/r1/summary.json", record)
    assert store.read_json("runs/r1/summary.json") == record
    raw = s3_client.get_object(Bucket=minio_server.bucket, Key=object_key(minio_root, "runs/r1/summary.json"))
    assert json.loads(raw["Body"].read()) == record


def test_parquet_table_round_trip(minio_root):
    store = open_store(minio_root)
    table = pa.table({"chunk_id": [f"c{i}" for i in range(500)], "position": list(range(500)),
                      "vector": [[float(i), float(-i)] for i in range(500)]})
    store.write_table("chunks/set.parquet", table)
    assert store.read_table("chunks/set.parquet").equals(table)
    frame = table.to_pandas()
    store.write_table("chunks/frame.parquet", frame)
    assert store.read_table("chunks/frame.parquet").to_pandas().equals(frame)


def test_folder_round_trip(minio_root, minio_server, s3_client, tmp_path):
    source = tmp_path / "model"
    (source / "1_Pooling").mkdir(parents=True)
    files = {"config.json": b'{"dim": 384}', "model.safetensors": os.urandom(300_000),
             "1_Pooling/config.json": b'{"mode": "mean"}', "tokenizer.json": b"{}"}
    for name, data in files.items():
        (source / name).write_bytes(data)
    store = open_store(minio_root)
    uri = store.upload_dir(source, "models/embeddings/v1")
    assert uri == f"{minio_root}/models/embeddings/v1"
    keys = {obj["Key"] for obj in s3_client.list_objects_v2(
        Bucket=minio_server.bucket, Prefix=object_key(minio_root, "models/embeddings/v1/"))["Contents"]}
    assert {object_key(minio_root, f"models/embeddings/v1/{name}") for name in files} <= keys
    if hasattr(store, "dir_complete"):  # the folder's manifest: complete, every file present with its size
        assert store.dir_complete("models/embeddings/v1")
    target = store.download_dir("models/embeddings/v1", tmp_path / "downloaded")
    for name, data in files.items():
        assert (target / name).read_bytes() == data, name
    assert store.upload_dir(source, "models/embeddings/v1") == uri  # again: idempotent
    again = open_store(minio_root).download_dir("models/embeddings/v1", tmp_path / "again")
    assert sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file()
                  and not p.name.startswith(".")) == sorted(files)


def test_credentials_come_from_the_connection(minio_root, minio_server, monkeypatch):
    """A wrong secret in the connection and nothing works: no other credential source is in play."""
    store = open_store(minio_root)
    store.write_bytes("probe.txt", b"ok")
    monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_MINIO_BAD", minio_server.connection(secret_key="wrong-secret"))
    bad = open_store(minio_root.replace("ragops_minio@", "ragops_minio_bad@"))
    # s3fs maps a refused signature to PermissionError/OSError; where the bad connection resolves to
    # no usable credentials at all, botocore refuses to sign (NoCredentialsError). Either way: no read.
    from botocore.exceptions import NoCredentialsError

    with pytest.raises((PermissionError, OSError, NoCredentialsError)):
        bad.read_bytes("probe.txt")
