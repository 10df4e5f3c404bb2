"""dag.test() harness: the real Airflow metadata DB, the real lineage Postgres, local files.

Each test gets its own lineage schema, artifact root and vector directory (through Airflow's
environment-variable Connections and Variables), so tests never see each other's state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> Path:
    """Airflow's metadata DB, migrated once per session (idempotent; the scripts set AIRFLOW_HOME)."""
    home = Path(os.environ.get("AIRFLOW_HOME") or tmp_path_factory.mktemp("airflow_home"))
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    home.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ)
    if result.returncode:
        pytest.exit(f"airflow db migrate failed: {result.stderr[-2000:]}", 3)
    return home


@dataclass
class RagopsEnv:
    schema: str
    artifact_root: Path
    vector_dir: Path
    registry: Any

    def store(self) -> Any:
        from ragops.stores import LanceDBStore

        return LanceDBStore(self.vector_dir)

    def artifacts(self) -> Any:
        from ragops.artifacts import ArtifactStore

        return ArtifactStore(self.artifact_root)


@pytest.fixture
def ragops_env(airflow_home, pg_dsn, tmp_path, monkeypatch) -> RagopsEnv:
    from ragops.lineage import Registry

    url = urlparse(pg_dsn)
    conn = {"conn_type": "postgres", "host": url.hostname, "port": url.port, "login": url.username,
            "password": url.password, "schema": url.path.lstrip("/")}
    schema = f"t_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_POSTGRES", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_VAR_RAGOPS_LINEAGE_SCHEMA", schema)
    monkeypatch.setenv("AIRFLOW_VAR_RAGOPS_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("AIRFLOW_VAR_RAGOPS_VECTOR_DIR", str(tmp_path / "vectors"))
    monkeypatch.setenv("AIRFLOW_VAR_RAGOPS_TRAINING", json.dumps({"compute": "local"}))
    # What a run's params may read (issue 9, defect 6): this test's folder and the shared fixtures.
    monkeypatch.setenv("AIRFLOW_VAR_RAGOPS_ALLOWED_ROOTS", json.dumps(
        [str(tmp_path), str(REPO / "tests" / "fixtures"), str(REPO.parent / "shared" / "data")]))
    for name in ("WEAVIATE_URL", "RAGOPS_VECTOR_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    registry = Registry(pg_dsn, schema)
    registry.migrate()
    yield RagopsEnv(schema, tmp_path / "artifacts", tmp_path / "vectors", registry)
    registry.drop()


@pytest.fixture(scope="session")
def weaviate_server(pytestconfig) -> dict[str, str]:
    """The session's real Weaviate: WEAVIATE_URL's, or one scripts/services.sh starts (skipped loudly without Go)."""
    from tests.services import ServiceUnavailable, ensure_service, skip_loudly

    env = dict(os.environ)
    if not env.get("WEAVIATE_URL"):
        try:
            env = ensure_service(pytestconfig, "weaviate")
        except ServiceUnavailable as exc:
            skip_loudly(pytestconfig, "Weaviate", str(exc), "or set WEAVIATE_URL to a running server")
    return env


@dataclass
class IndexEnv:
    """A rag_index test's world on one backend: the alias is unique on a shared Weaviate."""

    backend: str
    alias: str
    ragops: RagopsEnv
    open_store: Any

    @property
    def registry(self) -> Any:
        return self.ragops.registry

    def store(self) -> Any:
        return self.open_store()


@pytest.fixture(params=["lancedb", pytest.param("weaviate", marks=pytest.mark.weaviate)])
def index_env(request, ragops_env, monkeypatch) -> Any:
    """rag_index's tests run on the embedded store and on the real Weaviate, through the Weaviate
    provider's connection type (as a deployment configures it)."""
    if request.param == "lancedb":
        yield IndexEnv("lancedb", "TestDocs", ragops_env, ragops_env.store)
        return
    from urllib.parse import urlparse

    from ragops.stores.weaviate_store import WeaviateStore

    server = request.getfixturevalue("weaviate_server")
    url = urlparse(server["WEAVIATE_URL"])
    grpc = int(server.get("WEAVIATE_GRPC_PORT") or 50051)
    key = server.get("WEAVIATE_API_KEY") or None
    monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_WEAVIATE", json.dumps({
        "conn_type": "weaviate", "host": url.hostname, "port": url.port,
        "extra": {"grpc_port": grpc, **({"api_key": key} if key else {})}}))
    alias = f"Ti{uuid.uuid4().hex[:10]}"
    handles: list[Any] = []

    def open_store() -> Any:
        handles.append(WeaviateStore(server["WEAVIATE_URL"], grpc_port=grpc, api_key=key))
        return handles[-1]

    yield IndexEnv("weaviate", alias, ragops_env, open_store)
    cleanup = open_store()
    try:
        cleanup.delete_alias(alias)
        for name in cleanup.list_collections(prefix=f"{alias}_"):
            cleanup.delete_collection(name)
    finally:
        for handle in handles:
            handle.close()


def get_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / f"{dag_id}.py"))  # that DAG's file only: quicker
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def run_dag(dag_id: str, conf: dict[str, Any] | None = None) -> Any:
    """Runs a whole DAG in process with dag.test(); returns the DagRun."""
    return get_dag(dag_id).test(run_conf=conf or {})


def task_states(dag_run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id: str(ti.state)
                for ti in dag_run.get_task_instances(session=session)}


def xcom(dag_run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id,
                                                  task_id=task_id, key="return_value").first())
        return None if row is None else XComModel.deserialize_value(row)
