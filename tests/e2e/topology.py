"""The deployment's topology, written once: what the e2e tier starts on loopback and what
docker/compose.yaml runs in containers (tests/e2e/test_deployment_files.py holds them to it).

One function, :func:`airflow_env`, gives the environment every Airflow component gets (executor,
metadata DB, broker, result backend, API, auth, the ragops connections and variables); the
tier calls it with loopback endpoints and fresh secrets, the compose test with the compose
services' names, container ports and the compose file's local-development defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# compose service -> the `airflow` sub-command it runs (the e2e tier starts the same ones)
AIRFLOW_COMPONENTS: dict[str, list[str]] = {
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-api-server": ["api-server"],
    "airflow-triggerer": ["triggerer"],
}
# compose service -> the worker's host name (container hostname; the tier's task-instance hostname)
WORKERS: dict[str, str] = {"airflow-worker-a": "worker-a", "airflow-worker-b": "worker-b"}
WORKER_CONCURRENCY = 1          # task slots per worker: two workers, two slots (a 2-core machine here)
INIT_SERVICE = "airflow-init"   # migrates Airflow's DB and the lineage schema, loads the pools
TRAINER_SERVICE = "ragops-trainer"  # the GPU training image (docker/Dockerfile.trainer), built, not run
# backing services and their container ports (the tier runs the same servers on free loopback ports)
BACKING_PORTS: dict[str, dict[str, int]] = {
    "postgres": {"sql": 5432},
    "redis": {"broker": 6379},
    "weaviate": {"http": 8080, "grpc": 50051},
    "minio": {"s3": 9000},
}
API_PORT = 8080                 # the API server (UI, REST API, execution API)
ADMIN_USER = "admin"            # SimpleAuthManager's user (role admin)

CONN_POSTGRES, CONN_WEAVIATE, CONN_OBJECT_STORE = "ragops_postgres", "ragops_weaviate", "ragops_minio"
POOLS: dict[str, dict[str, object]] = {
    "vector_store": {"slots": 4, "description": "Concurrent writers and heavy readers of the vector store"},
    "llm_api": {"slots": 2, "description": "Concurrent callers of the LLM endpoint"},
    "gpu_training": {"slots": 1, "description": "Concurrent embedding finetuning jobs"},
}
# per worker, as two hosts would have them: the e2e tier gives each its own HOME and TMPDIR too
WORKER_ENV_KEYS = ("RAGOPS_MODEL_CACHE",)
INIT_COMMANDS = ("airflow db migrate", "python -m ragops migrate", "airflow pools import")


@dataclass(frozen=True)
class Endpoints:
    postgres: tuple[str, int]
    redis: tuple[str, int]
    weaviate: tuple[str, int]
    weaviate_grpc: int
    minio: tuple[str, int]
    api: tuple[str, int]
    metadata_db: str = "airflow"
    lineage_db: str = "ragops"
    bucket: str = "ragops"

    @classmethod
    def compose(cls) -> Endpoints:
        p = BACKING_PORTS
        return cls(("postgres", p["postgres"]["sql"]), ("redis", p["redis"]["broker"]),
                   ("weaviate", p["weaviate"]["http"]), p["weaviate"]["grpc"], ("minio", p["minio"]["s3"]),
                   ("airflow-api-server", API_PORT))


@dataclass(frozen=True)
class Secrets:
    """Everything secret; compose's `${VAR:-default}` defaults are local-development values only."""

    pg_user: str
    pg_password: str
    fernet_key: str
    jwt_secret: str
    api_secret_key: str
    weaviate_api_key: str
    s3_access_key: str
    s3_secret_key: str

    @classmethod
    def compose_defaults(cls) -> Secrets:
        return cls("ragops", "ragops", "p4io5hniCtDxRL2Mdh4ZKV1EzzNfKIqtZxxszk7voEY=", "ragops-local-dev-jwt-secret",
                   "ragops-local-dev-api-secret", "ragops-local-dev-key", "ragops", "ragops-local-dev-secret")


def airflow_env(ep: Endpoints, sec: Secrets, *, lineage_schema: str = "ragops", artifact_prefix: str = "ragops",
                passwords_file: str = "/opt/airflow/simple_auth_passwords.json") -> dict[str, str]:
    """The environment of every Airflow component (scheduler, dag-processor, API server,
    triggerer, workers, init): CeleryExecutor on Redis, results on the metadata Postgres, and the
    ragops connections/variables as AIRFLOW_CONN_*/AIRFLOW_VAR_* (credentials only in connections)."""
    pg_host, pg_port = ep.postgres
    pg = f"{sec.pg_user}:{sec.pg_password}@{pg_host}:{pg_port}"
    api = f"http://{ep.api[0]}:{ep.api[1]}"
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__FERNET_KEY": sec.fernet_key,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": passwords_file,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__PORT": str(ep.api[1]),
        "AIRFLOW__API__SECRET_KEY": sec.api_secret_key,
        "AIRFLOW__API_AUTH__JWT_SECRET": sec.jwt_secret,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/{ep.metadata_db}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{ep.redis[0]}:{ep.redis[1]}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{pg}/{ep.metadata_db}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        "AIRFLOW_CONN_RAGOPS_POSTGRES": json.dumps({
            "conn_type": "postgres", "host": pg_host, "port": pg_port, "login": sec.pg_user,
            "password": sec.pg_password, "schema": ep.lineage_db}),
        "AIRFLOW_CONN_RAGOPS_WEAVIATE": json.dumps({
            "conn_type": "weaviate", "host": ep.weaviate[0], "port": ep.weaviate[1],
            "extra": {"grpc_host": ep.weaviate[0], "grpc_port": ep.weaviate_grpc, "api_key": sec.weaviate_api_key}}),
        "AIRFLOW_CONN_RAGOPS_MINIO": json.dumps({
            "conn_type": "aws", "login": sec.s3_access_key, "password": sec.s3_secret_key,
            "extra": {"endpoint_url": f"http://{ep.minio[0]}:{ep.minio[1]}", "region_name": "us-east-1"}}),
        "AIRFLOW_VAR_RAGOPS_LINEAGE_SCHEMA": lineage_schema,
        "AIRFLOW_VAR_RAGOPS_ARTIFACT_ROOT": f"s3://{CONN_OBJECT_STORE}@{ep.bucket}/{artifact_prefix}",
        "AIRFLOW_VAR_RAGOPS_TRAINING": json.dumps({"compute": "local"}),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def migrate_env(ep: Endpoints, sec: Secrets, lineage_schema: str = "ragops") -> dict[str, str]:
    """What `python -m ragops migrate` (the init job) reads: the lineage DSN and schema."""
    host, port = ep.postgres
    return {"RAGOPS_PG_DSN": f"postgresql://{sec.pg_user}:{sec.pg_password}@{host}:{port}/{ep.lineage_db}",
            "RAGOPS_SCHEMA": lineage_schema}


def pools_json() -> str:
    """`airflow pools import`'s file format."""
    return json.dumps({name: {**spec, "include_deferred": False} for name, spec in POOLS.items()}, indent=1)


def worker_command(service: str) -> list[str]:
    return ["celery", "worker", "--celery-hostname", f"{WORKERS[service]}@%h",
            "--concurrency", str(WORKER_CONCURRENCY)]
