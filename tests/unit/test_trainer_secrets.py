"""Issue 9, defect 7: a trainer gets secrets only through Secret refs (a pod) or its environment (a
local process); storage options never appear in its arguments, its logs or XCom."""

from __future__ import annotations

import json
import logging
import subprocess

import pytest

from ragops.errors import InvalidInput
from ragops.training import compute
from ragops.training.compute import (
    STORAGE_OPTIONS_ENV,
    TrainingConfig,
    TrainingRequest,
    entrypoint_args,
    pod_spec,
    trainer_env,
)

SECRET = "Sto-ACCOUNT-KEY-9f3a1c77e2b64d0f"
POD = {"compute": "kubernetes", "image": "r/ragops-trainer:1", "namespace": "ml"}
REQUEST = TrainingRequest(dataset_uri="s3://b/datasets/a", base_model="s3://b/models/m", output_uri="s3://b/out")


def test_storage_options_are_never_an_argument():
    assert "storage_options" not in TrainingRequest.__dataclass_fields__
    assert not any("storage" in a for a in entrypoint_args(REQUEST))
    from ragops.training.train_embeddings import build_parser as embeddings_parser
    from ragops.training.train_llm import build_parser as llm_parser
    from ragops.training.train_llm import cli_args

    for parser in (embeddings_parser(), llm_parser()):
        assert "--storage-options" not in parser.format_help()
    with pytest.raises(ValueError, match=STORAGE_OPTIONS_ENV):
        cli_args(base_model="b", dataset="d", output_dir="o", max_steps=1, storage_options=json.dumps({"k": 1}))


def test_the_trainers_read_storage_options_from_their_environment(monkeypatch):
    from ragops.training import train_embeddings, train_llm

    monkeypatch.setenv(STORAGE_OPTIONS_ENV, json.dumps({"account_key": SECRET}))
    assert train_embeddings.storage_options_from_env() == {"account_key": SECRET}
    assert train_llm.storage_options_from_env() == {"account_key": SECRET}
    monkeypatch.setenv(STORAGE_OPTIONS_ENV, "{not json " + SECRET)
    with pytest.raises(SystemExit) as info:
        train_embeddings.storage_options_from_env()
    assert SECRET not in str(info.value)


def test_a_pod_gets_storage_options_as_env_and_credentials_only_from_a_secret():
    plain = TrainingConfig.from_value({**POD, "storage_options": {"client_kwargs": {"endpoint_url": "https://m:9000"}}})
    spec = pod_spec(plain, entrypoint_args(REQUEST))
    assert json.loads(spec.env[STORAGE_OPTIONS_ENV]) == {"client_kwargs": {"endpoint_url": "https://m:9000"}}
    assert not any("storage" in a or "m:9000" in a for a in spec.arguments)
    for options in ({"account_key": SECRET}, {"sas_token": SECRET}, {"connection_string": f"AccountKey={SECRET}"},
                    {"key": "AKIA", "secret": SECRET}, {"client_kwargs": {"aws_secret_access_key": SECRET}}):
        with pytest.raises(InvalidInput, match="must not hold credentials") as info:
            TrainingConfig.from_value({**POD, "storage_options": options})
        assert SECRET not in str(info.value)
    ref = {"env": STORAGE_OPTIONS_ENV, "secret": "ragops-storage", "key": "options.json"}
    spec = pod_spec(TrainingConfig.from_value({**POD, "secret_env": [ref]}), entrypoint_args(REQUEST))
    assert spec.secret_env == (ref,) and STORAGE_OPTIONS_ENV not in spec.env
    with pytest.raises(InvalidInput, match="never travel as a trainer argument"):
        pod_spec(plain, [*entrypoint_args(REQUEST), "--storage-options", "{}"])


@pytest.mark.parametrize("name", ["OPENAI_KEY", "OPENAI_API_KEY", "AZURE_STORAGE_ACCOUNT_KEY", "HF_TOKEN",
                                  "AZURE_STORAGE_SAS_TOKEN", "DB_PASSWORD", "AZURE_STORAGE_CONNECTION_STRING"])
def test_a_secret_in_the_training_config_never_becomes_plain_pod_env(name):
    with pytest.raises(InvalidInput, match="look like secrets") as info:
        TrainingConfig.from_value({**POD, "env": {name: SECRET}})
    assert SECRET not in str(info.value)
    config = TrainingConfig(compute=compute.Compute.KUBERNETES, env={name: SECRET})  # built around from_value
    with pytest.raises(InvalidInput):
        pod_spec(config, entrypoint_args(REQUEST))


def test_a_local_process_gets_storage_options_in_its_environment_only(monkeypatch, caplog):
    config = TrainingConfig.from_value({"compute": "local", "storage_options": {"account_key": SECRET}})
    assert SECRET not in repr(config)
    seen: dict = {}

    class FakeProcess:
        def __init__(self, cmd, **kwargs):
            seen.update(cmd=cmd, env=kwargs["env"])
            self.stdout = iter(['{"train_embeddings": {"steps": 1}}\n'])

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeProcess)
    with caplog.at_level(logging.DEBUG):
        assert compute.run_local(entrypoint_args(REQUEST), env=trainer_env(config)) == {"steps": 1}
    assert json.loads(seen["env"][STORAGE_OPTIONS_ENV]) == {"account_key": SECRET}
    assert not any(SECRET in str(part) for part in seen["cmd"])
    assert SECRET not in caplog.text
