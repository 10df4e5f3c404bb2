"""The deployment-shaped tier: Airflow's real components on loopback, with the CeleryExecutor.

One session fixture, ``cluster``, starts what docker/compose.yaml runs (tests/e2e/topology.py
holds both to one description): Redis (Debian's redis-server) as the broker, a metadata DB of its
own (``airflow_e2e``, results backend included) and an AIRFLOW_HOME under
``.local/e2e``; then ``airflow scheduler``, ``dag-processor``, ``api-server`` (127.0.0.1, a free
port) and ``triggerer``, and two ``airflow celery worker`` processes, each with its own HOME,
TMPDIR, model cache, log folder and host name, as two hosts would have. Lineage goes to a schema
unique to the session, artifacts to a unique prefix on the real MinIO, vectors to a unique alias
on the real Weaviate. The Postgres, Weaviate and MinIO are the tier's own (fixture ``backing``,
tests/e2e/backing.py: free loopback ports, data in ``.local/e2e-backing``), so the fault tests
(tests/e2e/test_faults.py, run last) may restart them; an OpenAI-compatible test server
(tests/llm_server.py) stands behind ``ragops_llm``. Everything is stopped and removed at the end,
whatever happened; the components' logs stay in ``.local/e2e/logs`` (and each worker's task logs
in its home) for a post-mortem until the next session.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import topology
from tests.e2e.cluster import AirflowApi, Cluster, describe_run, free_port, scrubbed_environ, wait_for

REPO = Path(__file__).resolve().parents[2]
E2E_ROOT = REPO / ".local" / "e2e"
METADATA_DB = "airflow_e2e"
STARTUP_TIMEOUT = 300  # all components, on a loaded 2-core machine
DAG_IDS = ("rag_index", "rag_synthetic_data", "rag_finetune_embeddings", "rag_collection_rollback",
           "rag_model_rollback")

pytestmark = pytest.mark.e2e


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fault tests run last on the session's cluster: the lifecycle tests expect it fresh."""
    items.sort(key=lambda item: item.path.name == "test_faults.py")


@dataclass
class Host:
    """One worker's private state, as a separate machine would have it."""

    name: str
    home: Path
    tmp: Path
    model_cache: Path
    logs: Path

    @property
    def roots(self) -> list[str]:
        return [str(self.home), str(self.tmp), str(self.model_cache)]


@dataclass
class E2E:
    api: AirflowApi | None
    cluster: Cluster
    run_id: str
    alias: str
    schema: str
    pg_dsn: str
    bucket: str
    prefix: str
    artifact_root: str
    minio: dict[str, str]
    weaviate: dict[str, str]
    hosts: dict[str, Host]
    corpus: Path
    triggered: list[tuple[str, str]] = field(default_factory=list)
    backing: Any = None     # tests.e2e.backing.Backing: the servers the fault tests restart
    llm: Any = None         # tests.llm_server.LLMTestServer behind the ragops_llm connection
    upload_gate: Any = None  # tests.e2e.upload_gate.UploadGate: the workers' way to MinIO

    def registry(self) -> Any:
        from ragops.lineage import Registry

        return Registry(self.pg_dsn, self.schema)

    def s3(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.minio["MINIO_ENDPOINT_URL"],
                            aws_access_key_id=self.minio["MINIO_ACCESS_KEY"],
                            aws_secret_access_key=self.minio["MINIO_SECRET_KEY"], region_name="us-east-1")

    def s3_keys(self) -> list[str]:
        keys: list[str] = []
        for page in self.s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/"):
            keys.extend(obj["Key"].removeprefix(f"{self.prefix}/") for obj in page.get("Contents", []))
        return keys

    def store(self) -> Any:
        from urllib.parse import urlparse

        from ragops.stores.weaviate_store import WeaviateStore

        url = self.weaviate["WEAVIATE_URL"]
        assert urlparse(url).hostname
        return WeaviateStore(url, grpc_port=int(self.weaviate["WEAVIATE_GRPC_PORT"]),
                             api_key=self.weaviate.get("WEAVIATE_API_KEY") or None)

    def artifacts(self) -> Any:
        """The run's artifact store from the test process: the same s3://conn@bucket/prefix URIs the
        tasks write, read through fsspec with the credentials given here directly."""
        from upath import UPath

        from ragops.artifacts import ArtifactStore

        root = UPath(f"s3://{self.bucket}/{self.prefix}", key=self.minio["MINIO_ACCESS_KEY"],
                     secret=self.minio["MINIO_SECRET_KEY"],
                     client_kwargs={"endpoint_url": self.minio["MINIO_ENDPOINT_URL"], "region_name": "us-east-1"})
        return ArtifactStore(self.artifact_root, root_path=root)

    def run_dag(self, dag_id: str, conf: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
        """Triggers ``dag_id`` through the REST API with ``conf`` and polls its run to the end, as the
        UI's Trigger button does. (The scheduler creates no scheduled or asset-triggered runs
        here, see ``use_job_schedule`` below, so only the runs triggered here run.)"""
        run_id = f"e2e__{len(self.triggered) + 1:02d}_{dag_id}_{self.run_id}"
        self.api.trigger(dag_id, run_id, conf)
        self.triggered.append((dag_id, run_id))
        run = wait_for(f"{dag_id} run {run_id}", lambda: self._finished(dag_id, run_id), timeout, interval=3,
                       diagnose=lambda: self.describe(dag_id, run_id))
        assert run["state"] == "success", self.describe(dag_id, run_id)
        return run

    def _finished(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        self.cluster.check_alive()
        run = self.api.dag_run(dag_id, run_id)
        return run if run["state"] in {"success", "failed"} else None

    def describe(self, dag_id: str, run_id: str) -> str:
        """Task states, hosts, and the task logs of whatever failed (read from the workers' log folders)."""
        return describe_run(self.api, dag_id, run_id, [host.logs for host in self.hosts.values()])


def _base_env(home: Path) -> dict[str, str]:
    env = scrubbed_environ()
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONPATH"] = f"{REPO / 'include'}:{REPO}"
    env["AIRFLOW_HOME"] = str(home)
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
    env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
    env["AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"] = "4"
    env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = "tests.e2e.hostname.from_env"
    env["AIRFLOW__API__HOST"] = "127.0.0.1"
    env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(home / "logs")
    env["RAGOPS_E2E_HOSTNAME"] = "control-plane"
    # The tier triggers every run itself: the scheduler creates no cron runs (the DAGs' nightly and
    # weekly crons would start a run with default params as soon as a DAG is unpaused) and no
    # asset-triggered runs (asset events are still emitted and recorded, and asserted).
    env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"
    # credentials reach the tasks only through the connections
    env.update(AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
               AWS_EC2_METADATA_DISABLED="true")
    return env


def _run(args: list[str], env: dict[str, str], what: str, timeout: float = 300) -> None:
    result = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{(result.stdout + result.stderr)[-4000:]}")


def _psql_admin(pg_dsn: str, *statements: str) -> None:
    import psycopg2
    from psycopg2.extensions import parse_dsn

    params = parse_dsn(pg_dsn)
    conn = psycopg2.connect(host=params.get("host"), port=params.get("port"), user="postgres", dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def backing(pytestconfig) -> Iterator[Any]:
    """The tier's own Postgres, Weaviate and MinIO (tests/e2e/backing.py): the fault tests restart
    them, so they are never the shared servers of other sessions."""
    from tests.e2e.backing import Backing
    from tests.services import GO_MISSING, skip_loudly

    servers = Backing()
    if servers.build() == GO_MISSING:
        skip_loudly(pytestconfig, "Weaviate/MinIO", "Go is not installed, so scripts/services.sh cannot build them")
    try:
        yield servers.start()
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def cluster(pytestconfig, backing) -> Iterator[E2E]:
    from urllib.parse import urlparse

    from tests.e2e.upload_gate import UploadGate
    from tests.llm_server import LLMTestServer
    from tests.services import skip_loudly

    if shutil.which("redis-server") is None:
        skip_loudly(pytestconfig, "Redis", "redis-server is not installed", "scripts/setup.sh installs it")
    pg_dsn = backing.pg_dsn
    weaviate, minio = backing.service_env("weaviate"), backing.service_env("minio")

    started = time.monotonic()
    run_id = uuid.uuid4().hex[:8]
    shutil.rmtree(E2E_ROOT, ignore_errors=True)
    home = E2E_ROOT / "airflow"
    home.mkdir(parents=True)
    corpus = E2E_ROOT / "corpus" / "docs"
    shutil.copytree(REPO / "tests" / "fixtures" / "corpus", corpus)

    pg = urlparse(pg_dsn)
    wv = urlparse(weaviate["WEAVIATE_URL"])
    mn = urlparse(minio["MINIO_ENDPOINT_URL"])
    api_port, redis_port = free_port(), free_port()
    # the workers reach MinIO through a relay the fault tests can hold mid-upload (tests/e2e/upload_gate.py)
    gate = UploadGate((mn.hostname, mn.port)).start()
    endpoints = topology.Endpoints(
        postgres=(pg.hostname, pg.port), redis=("127.0.0.1", redis_port), weaviate=(wv.hostname, wv.port),
        weaviate_grpc=int(weaviate.get("WEAVIATE_GRPC_PORT") or 50051), minio=gate.address,
        api=("127.0.0.1", api_port), metadata_db=METADATA_DB, lineage_db=pg.path.lstrip("/"),
        bucket=minio.get("MINIO_BUCKET") or "ragops")
    password = secrets.token_urlsafe(16)
    sec = topology.Secrets(pg.username, pg.password, _fernet_key(), secrets.token_urlsafe(32),
                           secrets.token_urlsafe(32), weaviate.get("WEAVIATE_API_KEY") or "",
                           minio["MINIO_ACCESS_KEY"], minio["MINIO_SECRET_KEY"])
    schema, prefix = f"e2e_{run_id}", f"e2e-{run_id}"
    passwords = home / "simple_auth_passwords.json"
    passwords.write_text(json.dumps({topology.ADMIN_USER: password}))
    env = _base_env(home) | topology.airflow_env(endpoints, sec, lineage_schema=schema, artifact_prefix=prefix,
                                                 passwords_file=str(passwords))
    # the folders a run's params may read (the corpus stands for a volume both workers mount)
    env["AIRFLOW_VAR_RAGOPS_ALLOWED_ROOTS"] = json.dumps([str(corpus.parent)])
    # a killed worker's task is found by its missing heartbeat (default 300 s), and retried soon
    # (the deployment's task policy, _FAST_RETRIES): the fault tests wait for both
    env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] = "30"
    env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL"] = "3"
    (home / "config").mkdir()
    (home / "config" / "airflow_local_settings.py").write_text(_FAST_RETRIES)
    llm = LLMTestServer(api_key=secrets.token_urlsafe(16)).start()
    env["AIRFLOW_CONN_RAGOPS_LLM"] = json.dumps({
        "conn_type": "http", "host": llm.base_url, "password": llm.api_key,
        "extra": {"model": "e2e-model", "timeout_s": 2, "max_attempts": 6}})
    e2e_cluster = Cluster(E2E_ROOT)
    hosts: dict[str, Host] = {}
    api: AirflowApi | None = None
    e2e: E2E | None = None
    try:
        _psql_admin(pg_dsn, f"DROP DATABASE IF EXISTS {METADATA_DB} WITH (FORCE)",
                    f"CREATE DATABASE {METADATA_DB} OWNER {pg.username}")
        e2e_cluster.start("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
                                    "--appendonly", "no", "--dir", str(E2E_ROOT)], env, REPO)
        # the init job: Airflow's metadata DB, the lineage schema (tasks never migrate), the pools
        _run(["airflow", "db", "migrate"], env, "airflow db migrate")
        _run([sys.executable, "-m", "ragops", "migrate"], env | topology.migrate_env(endpoints, sec, schema),
             "python -m ragops migrate")
        pools = home / "pools.json"
        pools.write_text(topology.pools_json())
        _run(["airflow", "pools", "import", str(pools)], env, "airflow pools import")

        for service, args in topology.AIRFLOW_COMPONENTS.items():
            e2e_cluster.start(service, ["airflow", *args], env, REPO)
        for service, hostname in topology.WORKERS.items():
            root = E2E_ROOT / "hosts" / hostname
            host = Host(hostname, root / "home", root / "tmp", root / "model-cache", root / "home" / "logs")
            for folder in (host.home, host.tmp, host.model_cache):
                folder.mkdir(parents=True)
            hosts[hostname] = host
            worker_env = env | {"HOME": str(host.home), "TMPDIR": str(host.tmp),
                                "RAGOPS_MODEL_CACHE": str(host.model_cache), "RAGOPS_E2E_HOSTNAME": hostname,
                                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(host.logs),
                                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
            e2e_cluster.start(service, ["airflow", *topology.worker_command(service)], worker_env, REPO)

        base_url = f"http://127.0.0.1:{api_port}"

        def api_up() -> AirflowApi:
            e2e_cluster.check_alive()
            return AirflowApi(base_url, topology.ADMIN_USER, password)

        api = wait_for("the API server", api_up, STARTUP_TIMEOUT, interval=2)

        def healthy() -> bool:
            e2e_cluster.check_alive()
            health = api.http.get("/api/v2/monitor/health").json()
            return all(health.get(part, {}).get("status") == "healthy"
                       for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"))

        wait_for("scheduler, triggerer and dag-processor heartbeats", healthy, STARTUP_TIMEOUT, interval=2)

        def dags_parsed() -> bool:
            e2e_cluster.check_alive()
            errors = api.get("/importErrors")["import_errors"]
            assert not errors, errors
            return set(DAG_IDS) <= {d["dag_id"] for d in api.get("/dags", limit=100)["dags"]}

        wait_for("the DAGs, parsed by the dag-processor", dags_parsed, STARTUP_TIMEOUT, interval=3)

        def workers_ready() -> bool:
            e2e_cluster.check_alive()
            return all(" ready." in p.tail(200_000) for p in e2e_cluster.processes if p.name in topology.WORKERS)

        wait_for("both Celery workers", workers_ready, STARTUP_TIMEOUT, interval=2)
        for dag_id in DAG_IDS:
            api.set_paused(dag_id, False)
        e2e = E2E(api, e2e_cluster, run_id, f"E2e{run_id}", schema, pg_dsn, endpoints.bucket, prefix,
                  env["AIRFLOW_VAR_RAGOPS_ARTIFACT_ROOT"], minio, weaviate, hosts, corpus, backing=backing, llm=llm,
                  upload_gate=gate)
        sys.stderr.write(f"\n[e2e] cluster up in {time.monotonic() - started:.0f}s (API {base_url})\n")
        yield e2e
    finally:
        if api is not None:
            api.close()
        llm.stop()
        gate.stop()
        leftovers = e2e_cluster.stop()
        if leftovers:
            sys.stderr.write(f"[e2e] needed SIGKILL: {leftovers}\n")
        _cleanup(e2e or E2E(None, e2e_cluster, run_id, f"E2e{run_id}", schema, pg_dsn, endpoints.bucket, prefix,
                            env["AIRFLOW_VAR_RAGOPS_ARTIFACT_ROOT"], minio, weaviate, hosts, corpus))
        try:
            _psql_admin(pg_dsn, f"DROP DATABASE IF EXISTS {METADATA_DB} WITH (FORCE)")
        except Exception as exc:  # noqa: BLE001 - best effort; the next session drops it anyway
            sys.stderr.write(f"[e2e] could not drop {METADATA_DB}: {exc!r}\n")


# The deployment's task policy ($AIRFLOW_HOME/config/airflow_local_settings.py): the tier keeps the
# DAGs' retries but waits seconds, not DEFAULT_ARGS' 30 s doubling, between them.
_FAST_RETRIES = """
from datetime import timedelta


def task_policy(task):
    if task.retries:
        task.retry_delay = timedelta(seconds=5)
        task.retry_exponential_backoff = 0
"""


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _cleanup(e2e: E2E) -> None:
    """Removes what the session wrote to the shared servers: its alias and collections, its
    MinIO prefix, its lineage schema."""
    try:
        store = e2e.store()
        try:
            store.delete_alias(e2e.alias)
            for name in store.list_collections(prefix=f"{e2e.alias}_"):
                store.delete_collection(name)
        finally:
            store.close()
    except Exception as exc:  # noqa: BLE001
        sys.stderr.write(f"[e2e] Weaviate cleanup failed: {exc!r}\n")
    try:
        s3 = e2e.s3()
        for key in e2e.s3_keys():
            s3.delete_object(Bucket=e2e.bucket, Key=f"{e2e.prefix}/{key}")
    except Exception as exc:  # noqa: BLE001
        sys.stderr.write(f"[e2e] MinIO cleanup failed: {exc!r}\n")
    try:
        e2e.registry().drop()
    except Exception as exc:  # noqa: BLE001
        sys.stderr.write(f"[e2e] lineage schema cleanup failed: {exc!r}\n")
