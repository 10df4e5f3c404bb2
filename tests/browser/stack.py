"""Airflow as a user runs it on one machine, for the browser tier: the API server (UI, REST API,
plugins), scheduler, dag-processor and triggerer with the LocalExecutor, on loopback.

The bundle's dags/ and plugins/ are loaded as they are; SimpleAuthManager signs in two users
from a passwords file this tier writes: ``admin`` (role admin) and ``viewer`` (role viewer).
Airflow's metadata DB is a database of its own in the private Postgres, the lineage registry a
fresh schema, the embedded vector store (LanceDB) and the artifact root folders under the
session's tmp dir. The process, log and REST helpers are the e2e tier's (tests/e2e/cluster.py).
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tests.e2e.cluster import AirflowApi, Cluster, describe_run, free_port, scrubbed_environ, wait_for
from tests.e2e.topology import POOLS

REPO = Path(__file__).resolve().parents[2]
METADATA_DB = "airflow_browser"
STARTUP_TIMEOUT = 300            # every component up and the DAGs parsed, on a loaded 2-core machine
RUN_TIMEOUT = 900                # one DAG run, triggered and polled to its end (a ceiling, on a loaded machine)
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
USERS = {"admin": "admin", "viewer": "viewer"}   # user -> SimpleAuthManager role
# the DAGs this tier runs (unpaused; the scheduler makes no cron or asset runs, see below)
DAG_IDS = ("rag_index", "rag_synthetic_data", "rag_collection_rollback", "rag_model_rollback",
           *(["rag_evaluate"] if (REPO / "dags" / "rag_evaluate.py").exists() else []))


@dataclass
class Airflow:
    """A running Airflow with the bundle: its URL, users, registry and REST client (as admin)."""

    base_url: str
    passwords: dict[str, str]
    pg_dsn: str
    schema: str
    root: Path
    cluster: Cluster
    api: AirflowApi
    dag_ids: set[str]
    triggered: list[tuple[str, str]] = field(default_factory=list)

    def registry(self) -> Any:
        from ragops.lineage import Registry

        return Registry(self.pg_dsn, self.schema)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        run_id = f"browser__{len(self.triggered) + 1:02d}_{dag_id}_{uuid.uuid4().hex[:6]}"
        self.api.trigger(dag_id, run_id, conf)
        self.triggered.append((dag_id, run_id))
        return run_id

    def wait(self, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        """Polls a run to its end, as the UI does; a failed run fails with its task states and logs."""
        run = wait_for(f"{dag_id} run {run_id}", lambda: self._finished(dag_id, run_id), timeout, interval=2,
                       diagnose=lambda: self.describe(dag_id, run_id))
        assert run["state"] == "success", self.describe(dag_id, run_id)
        return run

    def run_dag(self, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        return self.wait(dag_id, self.trigger(dag_id, conf))

    def _finished(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        self.cluster.check_alive()
        run = self.api.dag_run(dag_id, run_id)
        return run if run["state"] in {"success", "failed"} else None

    def describe(self, dag_id: str, run_id: str) -> str:
        return describe_run(self.api, dag_id, run_id, [self.root / "airflow" / "logs"])


def component_env(root: Path, pg_dsn: str, schema: str, api_port: int, passwords_file: Path) -> dict[str, str]:
    """Every component's environment: the bundle, LocalExecutor, SimpleAuthManager with two
    users, and the ragops connection and variables (registry schema, embedded store, local artifacts)."""
    pg = urlparse(pg_dsn)
    api = f"http://127.0.0.1:{api_port}"
    env = scrubbed_environ()
    env.update({
        "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
        "PYTHONPATH": f"{REPO / 'include'}:{REPO}",
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
        "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":
            f"postgresql+psycopg2://{pg.username}:{pg.password}@{pg.hostname}:{pg.port}/{METADATA_DB}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(root / "airflow" / "logs"),
        # The tier triggers every run itself: no cron runs once a DAG is unpaused, and no
        # asset-triggered runs (the events are still emitted and recorded).
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # the bundle does not change during a session: parse it once, not every 30 s (2 shared cores)
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
        "AIRFLOW_CONN_RAGOPS_POSTGRES": json.dumps({
            "conn_type": "postgres", "host": pg.hostname, "port": pg.port, "login": pg.username,
            "password": pg.password, "schema": pg.path.lstrip("/")}),
        "AIRFLOW_VAR_RAGOPS_LINEAGE_SCHEMA": schema,
        "AIRFLOW_VAR_RAGOPS_ARTIFACT_ROOT": str(root / "artifacts"),
        "AIRFLOW_VAR_RAGOPS_VECTOR_DIR": str(root / "vectors"),
        "AIRFLOW_VAR_RAGOPS_ALLOWED_ROOTS": json.dumps([str(root / "data")]),
        "AIRFLOW_VAR_RAGOPS_TRAINING": json.dumps({"compute": "local"}),
        "RAGOPS_MODEL_CACHE": str(root / "model-cache"),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
    })
    return env


@contextmanager
def running_airflow(root: Path, pg_dsn: str) -> Generator[Airflow, None, None]:
    """Starts Airflow with the bundle under ``root``; stops every component and drops the metadata
    DB and the registry schema afterwards, whatever happened (logs stay in ``root/logs``)."""
    from ragops.lineage import Registry

    schema = f"browser_{uuid.uuid4().hex[:8]}"
    api_port = free_port()
    for folder in ("airflow", "artifacts", "vectors", "data", "model-cache"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    passwords = {user: secrets.token_urlsafe(12) for user in USERS}
    passwords_file = root / "airflow" / "simple_auth_passwords.json"
    passwords_file.write_text(json.dumps(passwords))
    env = component_env(root, pg_dsn, schema, api_port, passwords_file)
    cluster = Cluster(root)
    registry = Registry(pg_dsn, schema)
    api: AirflowApi | None = None
    # a SIGTERM (CI's timeout, a Ctrl-C'd wrapper) still stops the components: they run in
    # process groups of their own and would outlive this process otherwise
    previous_handler = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        _admin_sql(pg_dsn, f"DROP DATABASE IF EXISTS {METADATA_DB} WITH (FORCE)",
                   f"CREATE DATABASE {METADATA_DB} OWNER {urlparse(pg_dsn).username}")
        _run(["airflow", "db", "migrate"], env, "airflow db migrate")
        registry.migrate()          # the init job's `python -m ragops migrate`: tasks never migrate
        for component in COMPONENTS:
            cluster.start(component, ["airflow", component], env, REPO)
        base_url = f"http://127.0.0.1:{api_port}"

        def api_up() -> AirflowApi:
            cluster.check_alive()
            return AirflowApi(base_url, "admin", passwords["admin"])

        api = wait_for("the API server", api_up, STARTUP_TIMEOUT, interval=2)

        def healthy() -> bool:
            cluster.check_alive()
            health = api.http.get("/api/v2/monitor/health").json()
            return all(health.get(part, {}).get("status") == "healthy"
                       for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"))

        wait_for("scheduler, triggerer and dag-processor heartbeats", healthy, STARTUP_TIMEOUT, interval=2)
        for name, spec in POOLS.items():   # the deployment's pools (airflow_settings.yaml's, as tests/e2e loads them)
            api.call("POST", "/pools", json={"name": name, **spec, "include_deferred": False}).raise_for_status()

        def parsed() -> set[str] | None:
            cluster.check_alive()
            errors = api.get("/importErrors")["import_errors"]
            assert not errors, errors
            dags = {d["dag_id"] for d in api.get("/dags", limit=100)["dags"]}
            return dags if set(DAG_IDS) <= dags else None

        dags = wait_for("the DAGs, parsed by the dag-processor", parsed, STARTUP_TIMEOUT, interval=3)
        for dag_id in DAG_IDS:
            api.set_paused(dag_id, False)
        yield Airflow(base_url, passwords, pg_dsn, schema, root, cluster, api, dags)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if api is not None:
            api.close()
        leftovers = cluster.stop()
        if leftovers:
            sys.stderr.write(f"[browser] needed SIGKILL: {leftovers}\n")
        for cleanup in (registry.drop, lambda: _admin_sql(pg_dsn, f"DROP DATABASE IF EXISTS {METADATA_DB} WITH (FORCE)")):
            try:
                cleanup()
            except Exception as exc:  # noqa: BLE001 - best effort; the next session starts fresh anyway
                sys.stderr.write(f"[browser] cleanup failed: {exc!r}\n")


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(f"the browser tier got signal {signum}: stopping Airflow")


def _run(args: list[str], env: dict[str, str], what: str, timeout: float = 300) -> None:
    result = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{(result.stdout + result.stderr)[-4000:]}")


def _admin_sql(pg_dsn: str, *statements: str) -> None:
    import psycopg2

    pg = urlparse(pg_dsn)
    conn = psycopg2.connect(host=pg.hostname, port=pg.port, user="postgres", dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
