"""airflow_settings.yaml is configuration the DAGs read: it must parse the way they parse it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ragops.training.compute import TrainingConfig

SETTINGS = Path(__file__).resolve().parents[2] / "airflow_settings.yaml"


def load() -> dict:
    return yaml.safe_load(SETTINGS.read_text())["airflow"]


def test_training_variable_is_a_valid_training_config():
    variables = {v["variable_name"]: v["variable_value"] for v in load()["variables"]}
    config = TrainingConfig.from_value(variables["ragops_training"])
    assert config.compute == "local" and config.gpus == 1 and config.secret_env_from
    assert TrainingConfig.from_value(variables["ragops_training"], compute_override="kubernetes").compute == "kubernetes"


def test_pools_and_connections_the_dags_use_exist():
    from ragops.vocabulary import LLM_POOL, POSTGRES_CONN_ID, VECTOR_STORE_POOL

    settings = load()
    assert {LLM_POOL, VECTOR_STORE_POOL} <= {p["pool_name"] for p in settings["pools"]}
    assert POSTGRES_CONN_ID in {c["conn_id"] for c in settings["connections"]}
    json.dumps(settings)  # plain data only
