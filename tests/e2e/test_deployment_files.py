"""The deployment files describe the topology the e2e tier runs: docker/compose.yaml's services,
ports, commands and environment against tests/e2e/topology.py (which the tier's fixture starts),
and the Helm values' essentials. No Docker engine or cluster is needed: YAML only."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import topology

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker" / "compose.yaml"
HELM_VALUES = REPO / "deploy" / "helm" / "values.yaml"
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _defaults(value: Any) -> Any:
    """Compose's `${VAR:-default}` interpolation with nothing set: the defaults."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)
    if isinstance(value, list):
        return [_defaults(v) for v in value]
    if isinstance(value, dict):
        return {k: _defaults(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _defaults(yaml.safe_load(COMPOSE.read_text()))


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}


def test_compose_has_the_tested_services(compose):
    services = set(compose["services"])
    expected = (set(topology.AIRFLOW_COMPONENTS) | set(topology.WORKERS) | set(topology.BACKING_PORTS)
                | {topology.INIT_SERVICE, topology.TRAINER_SERVICE})
    assert expected <= services, expected - services
    assert services - expected <= {"minio-bucket"}, services - expected  # nothing the tier does not run


def test_compose_commands_and_hosts_match(compose):
    services = compose["services"]
    for name, args in topology.AIRFLOW_COMPONENTS.items():
        assert services[name]["command"] == args, name
    for name, hostname in topology.WORKERS.items():
        assert services[name]["command"] == topology.worker_command(name), name
        assert services[name]["hostname"] == hostname, name
    init = " ".join(services[topology.INIT_SERVICE]["command"])
    positions = [init.find(cmd) for cmd in topology.INIT_COMMANDS]
    assert -1 not in positions and positions == sorted(positions), (init, topology.INIT_COMMANDS)
    assert json.loads(compose["configs"]["pools"]["content"]) == json.loads(topology.pools_json())
    trainer = services[topology.TRAINER_SERVICE]
    assert trainer["build"]["dockerfile"] == "docker/Dockerfile.trainer"


def test_compose_ports_match(compose):
    services = compose["services"]
    for name, ports in topology.BACKING_PORTS.items():
        assert set(ports.values()) <= _container_ports(services[name]), (name, ports)
    assert topology.API_PORT in _container_ports(services["airflow-api-server"])
    assert services["weaviate"]["environment"]["GRPC_PORT"] == str(topology.BACKING_PORTS["weaviate"]["grpc"])


def test_compose_environment_is_the_tiers(compose):
    """Every Airflow component gets exactly the environment the e2e tier gives its processes
    (topology.airflow_env), with the compose services' hosts and ports and its dev defaults."""
    expected = topology.airflow_env(topology.Endpoints.compose(), topology.Secrets.compose_defaults())
    services = compose["services"]
    for name in [*topology.AIRFLOW_COMPONENTS, *topology.WORKERS, topology.INIT_SERVICE]:
        env = _env(services[name])
        missing = set(expected) - set(env)
        assert not missing, (name, missing)
        for key, value in expected.items():
            if key.startswith("AIRFLOW_CONN_"):
                assert json.loads(env[key]) == json.loads(value), (name, key)
            else:
                assert env[key] == value, (name, key, env[key], value)
        extra = set(env) - set(expected) - set(topology.WORKER_ENV_KEYS) - {"RAGOPS_PG_DSN", "RAGOPS_SCHEMA"}
        assert not extra, (name, extra)
    for name in topology.WORKERS:
        env = _env(services[name])
        assert set(topology.WORKER_ENV_KEYS) <= set(env), name
        mounts = [str(v).split(":")[1] for v in services[name].get("volumes", [])]
        assert env["RAGOPS_MODEL_CACHE"] in mounts, (name, mounts)  # a cache volume per worker
    caches = {str(services[n]["volumes"][0]).split(":")[0] for n in topology.WORKERS}
    assert len(caches) == len(topology.WORKERS), "the workers must not share a model cache"
    init_env = _env(services[topology.INIT_SERVICE])
    assert {k: init_env[k] for k in ("RAGOPS_PG_DSN", "RAGOPS_SCHEMA")} == topology.migrate_env(
        topology.Endpoints.compose(), topology.Secrets.compose_defaults())
    passwords = json.loads(compose["configs"]["simple_auth_passwords"]["content"])
    assert set(passwords) == {topology.ADMIN_USER}


def test_compose_client_config_when_available():
    """`docker compose config` validates the file against the Compose spec; it needs no engine,
    but it needs the compose plugin (absent here: then this says so and skips)."""
    docker = shutil.which("docker")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True) if docker else None
    if probe is None or probe.returncode != 0:
        pytest.skip("no `docker compose` client here (docker CLI without the compose plugin): "
                    "compose.yaml was checked by YAML parsing and against tests/e2e/topology.py only")
    result = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def test_helm_values_match_the_topology():
    values = yaml.safe_load(HELM_VALUES.read_text())
    assert values["executor"] == "CeleryExecutor" and values["config"]["core"]["executor"] == "CeleryExecutor"
    assert values["workers"]["replicas"] == len(topology.WORKERS)
    assert values["postgresql"]["enabled"] is False and values["redis"]["enabled"] is True
    env = {e["name"]: e["value"] for e in values["env"]}
    for var in ("AIRFLOW_VAR_RAGOPS_LINEAGE_SCHEMA", "AIRFLOW_VAR_RAGOPS_ARTIFACT_ROOT", "AIRFLOW_VAR_RAGOPS_TRAINING"):
        assert var in env, var
    assert env["AIRFLOW_VAR_RAGOPS_ARTIFACT_ROOT"].startswith(f"s3://{topology.CONN_OBJECT_STORE}@")
    # credentials only from Kubernetes Secrets: no connection in plain values
    assert not [e for e in values["env"] if e["name"].startswith("AIRFLOW_CONN_")]
    assert "secretRef" in values["extraEnvFrom"] and "ragops-connections" in values["extraEnvFrom"]
    comments = HELM_VALUES.read_text()
    for conn in (topology.CONN_POSTGRES, topology.CONN_WEAVIATE, topology.CONN_OBJECT_STORE):
        assert f"AIRFLOW_CONN_{conn.upper()}=" in comments, conn  # documented Secret keys
    migrate = values["scheduler"]["extraInitContainers"][0]
    assert migrate["command"] == ["python", "-m", "ragops", "migrate"]
    assert values["migrateDatabaseJob"]["enabled"] is True
    assert {e["name"] for e in values["workers"]["env"]} >= set(topology.WORKER_ENV_KEYS)
