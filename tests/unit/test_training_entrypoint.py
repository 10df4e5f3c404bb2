"""The training entrypoint, run the way the pod and the local runner run it: a separate process.

Tiny real data (SciFact claims and their abstracts), batch size 8, a handful of CPU steps.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.unit.training_data import SCIFACT, save_pairs_dataset

from ragops.artifacts import MANIFEST, ArtifactStore
from ragops.training.compute import ENTRYPOINT, TrainingRequest, entrypoint_args

pytestmark = pytest.mark.skipif(not SCIFACT.exists(), reason="needs ../shared/data/scifact-dev")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return save_pairs_dataset(tmp_path_factory.mktemp("data") / "pairs", train_rows=40, test_rows=8, negatives=True)


def args_for(dataset: Path, base_model_path: str, out: Path, **overrides) -> list[str]:
    values = {"epochs": 3, "batch_size": 8, "lr": 2e-5, "checkpoint_steps": 2, "seed": 7,
              "matryoshka_dims": (384, 256, 128, 64)} | overrides
    return entrypoint_args(TrainingRequest(str(dataset), base_model_path, str(out), **values))


def child_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def run(args: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ENTRYPOINT), *args], capture_output=True, text=True, env=child_env(),
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def logged_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "training_log.jsonl").read_text().splitlines()]


def test_entrypoint_runs_alone_without_ragops(tmp_path):
    imported = set()
    for node in ast.walk(ast.parse(ENTRYPOINT.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "ragops" not in imported
    # The file alone, copied away from the package, with ragops off the path (as in the GPU image).
    alone = tmp_path / "train_embeddings.py"
    alone.write_text(ENTRYPOINT.read_text())
    env = {k: v for k, v in child_env().items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(alone), "--help"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and "--matryoshka-dims" in proc.stdout


def test_trains_checkpoints_resumes_and_is_idempotent(dataset, base_model_path, tmp_path):
    out = tmp_path / "run"
    first = run(args_for(dataset, base_model_path, out, max_steps=2))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 2 and metrics["resumed_from_step"] == 0
    assert metrics["matryoshka_dims"] == [384, 256, 128, 64] and metrics["loss"] == "mnrl"
    assert metrics["device"] == "cpu" and metrics["peak_rss_mb"] > 0 and metrics["train_loss"] > 0
    assert (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists()
    assert (out / "model" / "model.safetensors").exists() and (out / "model" / "modules.json").exists()
    assert ArtifactStore(out).dir_complete("model"), "the model folder is not published whole (manifest)"
    config = json.loads((out / "training_config.json").read_text())
    assert config["inputs"]["negatives"] is True and config["inputs"]["batch_size"] == 8
    assert logged_steps(out) == [1, 2]
    assert json.loads(first.stdout.strip().splitlines()[-1])["train_embeddings"]["global_step"] == 2

    # A longer run with the same data and hyperparameters is a warm start from checkpoint-2.
    second = run(args_for(dataset, base_model_path, out, max_steps=4))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 2 and metrics["global_step"] == 4
    assert "resuming from" in second.stdout and "checkpoint-2" in second.stdout
    state = json.loads((out / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert logged_steps(out) == [1, 2, 3, 4]

    # The same inputs again: nothing to do, the model is not touched.
    mtime = (out / "model" / "model.safetensors").stat().st_mtime_ns
    third = run(args_for(dataset, base_model_path, out, max_steps=4))
    assert "nothing to do" in third.stdout
    assert json.loads(third.stdout.strip().splitlines()[-1])["train_embeddings"]["skipped"] is True
    assert (out / "model" / "model.safetensors").stat().st_mtime_ns == mtime


def test_killed_run_resumes_from_its_last_checkpoint(dataset, base_model_path, tmp_path):
    out = tmp_path / "killed"
    args = args_for(dataset, base_model_path, out, max_steps=10, checkpoint_steps=3)
    proc = subprocess.Popen([sys.executable, str(ENTRYPOINT), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=child_env(), start_new_session=True)
    state = out / "checkpoints" / "checkpoint-3" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # a preempted pod: no chance to clean up
    proc.wait(timeout=60)
    assert state.exists(), "the trainer never wrote its first checkpoint"
    assert not (out / "metrics.json").exists(), "the run finished before it could be killed"

    resumed = run(args)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from_step"] >= 3 and metrics["global_step"] == 10
    assert f"checkpoint-{metrics['resumed_from_step']}" in resumed.stdout
    steps = logged_steps(out)
    assert steps == list(range(1, 11))  # steps after the checkpoint were dropped from the log and redone


def test_bad_inputs_are_named(dataset, base_model_path, tmp_path):
    proc = subprocess.run([sys.executable, str(ENTRYPOINT), *args_for(tmp_path / "missing", base_model_path,
                                                                       tmp_path / "o")],
                          capture_output=True, text=True, env=child_env(), timeout=300)
    assert proc.returncode != 0 and "--dataset-uri" in proc.stderr
    proc = subprocess.run([sys.executable, str(ENTRYPOINT),
                           *args_for(dataset, base_model_path, tmp_path / "o2", matryoshka_dims=(512, 64))],
                          capture_output=True, text=True, env=child_env(), timeout=300)
    assert proc.returncode != 0 and "--matryoshka-dims" in proc.stderr


def test_remote_output_is_mirrored_and_a_fresh_pod_resumes_from_it(dataset, base_model_path, tmp_path):
    """Object storage (fsspec's in-memory filesystem, in process): checkpoints, log and model are
    uploaded; a second run in an empty work dir (a new pod) pulls the last checkpoint and resumes."""
    import fsspec

    from ragops.training import train_embeddings

    uri = f"memory://ragops-test/{tmp_path.name}/run"
    fs = fsspec.filesystem("memory")
    common = ["--dataset-uri", str(dataset), "--base-model", base_model_path, "--output-uri", uri,
              "--batch-size", "8", "--checkpoint-steps", "2", "--seed", "7", "--epochs", "1", "--lr", "2e-5"]
    assert train_embeddings.main([*common, "--max-steps", "2", "--work-dir", str(tmp_path / "pod1")]) == 0
    root = f"/ragops-test/{tmp_path.name}/run"
    files = {p.removeprefix(root + "/") for p in fs.find(root)}
    assert {"metrics.json", "training_config.json", "training_log.jsonl", "model/model.safetensors",
            "checkpoints/checkpoint-2/trainer_state.json"} <= files
    assert not any(f.startswith("model/model/") for f in files)
    assert ArtifactStore(uri).dir_complete("model"), "the uploaded model has no final manifest"

    assert train_embeddings.main([*common, "--max-steps", "4", "--work-dir", str(tmp_path / "pod2")]) == 0
    metrics = json.loads(fs.cat(f"{root}/metrics.json"))
    assert metrics["resumed_from_step"] == 2 and metrics["global_step"] == 4
    assert metrics["model_uri"] == f"{uri}/model"
    steps = [json.loads(line)["step"] for line in fs.cat(f"{root}/training_log.jsonl").decode().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert not any(f.startswith("model/model/") for f in (p.removeprefix(root + "/") for p in fs.find(root)))


def test_a_model_upload_cut_short_never_looks_finished(tmp_path, monkeypatch):
    """The pod killed or the store gone mid-upload: the model folder's manifest still says
    "incomplete", so the task's store refuses it and a retry publishes it again, whole."""
    from ragops.training import train_embeddings

    uri = f"memory://ragops-test/{tmp_path.name}/cut"
    output = train_embeddings.Output(uri, tmp_path / "work", {})
    (output.dir / "model").mkdir()
    (output.dir / "model" / "config.json").write_text("{}")
    (output.dir / "model" / "model.safetensors").write_bytes(b"w" * 4096)

    def cut(*args, **kwargs):
        raise ConnectionResetError("object store went away mid-upload")

    monkeypatch.setattr(output.fs, "put", cut)
    with pytest.raises(ConnectionResetError):
        output.publish_dir("model")
    store = ArtifactStore(uri)
    assert json.loads(output.fs.cat(f"{output.root}/model/{MANIFEST}"))["complete"] is False
    assert not store.dir_complete("model")

    monkeypatch.undo()
    output.publish_dir("model")  # the retry
    assert store.dir_complete("model")
    assert sorted(store.read_json(f"model/{MANIFEST}")["files"]) == ["config.json", "model.safetensors"]
