"""Tier 3: whole rag_finetune_llm runs through dag.test(): a tiny LLM, local compute, real Postgres.

The base LLM is the tests' tiny Llama (tests/llm_tiny.py: 2 layers, hidden 64, random weights, a BPE
trained on the fixture corpus), given as a folder; the query dataset is built from the fixture corpus
and registered as a usable ``synthetic-queries`` version. No LLM endpoint: extractive answers and no
judge (both named fallbacks).

The first run's ``train`` task is killed mid-training (its trainer process SIGKILLed once the store
holds a complete checkpoint, by the compute module's test hook) and Airflow's retry resumes from that
checkpoint; the run then merges, evaluates, and the gate promotes (perplexity on held-out answers
drops). The second run, with the same training inputs, trains nothing and merges this adapter with a
second one by weight (``cat``); the merged weights are checked numerically; the gate rejects it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.llm_tiny import build_tiny_llm, corpus_paragraphs

from .conftest import get_dag, run_dag, task_states, xcom

pytestmark = pytest.mark.dagrun

CONF = {"max_steps": 16, "save_steps": 4, "batch_size": 2, "lr": 0.01, "max_seq_length": 768, "lora_r": 8,
        "lora_alpha": 16, "lora_dropout": 0.0, "seed": 7, "passage_chars": 100, "eval_sample_size": 6,
        "max_new_tokens": 12, "margin": 0.01, "guard_tolerance": 0.5}


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch):
    """One thread in this process (merge, evaluation) and in the trainer's (OMP_NUM_THREADS is
    inherited): the tiny model's matrices are small, and two threads on two busy cores spin-wait."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(threads)


def query_dataset(artifacts, registry) -> object:
    """A synthetic-queries version from the fixture corpus: one question per paragraph, by document."""
    from ragops.synthetic.dataset import dataset_hash, save_dataset, to_rows
    from ragops.synthetic.split import split_by_document

    records = []
    for i, para in enumerate(corpus_paragraphs()):
        words = para.split()
        records.append({"query": f"What is said about {' '.join(words[:4])}?", "positive": para[:300],
                        "negative": None, "doc_id": f"doc-{i // 2}", "chunk_id": f"doc-{i // 2}#{i % 2}",
                        "kind": "heading"})
    train, test = split_by_document(records, test_ratio=0.25, seed=3)
    splits = {"train": to_rows(train), "test": to_rows(test)}
    content_hash = dataset_hash(splits)
    save_dataset(splits, artifacts, content_hash)
    art = registry.record_artifact("dataset", "synthetic-queries", content_hash,
                                   artifacts.uri(f"datasets/{content_hash}"), status="usable")
    return art


def llm_asset_events(run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    from ragops.vocabulary import LLM_ASSET_URI

    with create_session() as session:
        rows = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.uri == LLM_ASSET_URI, AssetEvent.source_run_id == run_id).all())
        return [dict(r.extra or {}) for r in rows]


def run_with_quick_retries(conf: dict) -> object:
    """dag.test() waits out a retry's delay (30 s by default): a second is enough here."""
    from datetime import timedelta

    dag = get_dag("rag_finetune_llm")
    dag.task_dict["train"].retry_delay = timedelta(seconds=1)
    return dag.test(run_conf=conf)


def try_number(dag_run, task_id: str) -> int:
    from airflow.utils.session import create_session

    with create_session() as session:
        return next(ti.try_number for ti in dag_run.get_task_instances(session=session) if ti.task_id == task_id)


def test_finetune_llm_kill_resume_merge_gate_promote_then_reject(ragops_env, tmp_path, monkeypatch):
    import torch

    from ragops.training import train_llm
    from tests.unit.test_train_llm import _lora_pairs, _random_adapter, _scaling, _tensors

    registry, artifacts = ragops_env.registry, ragops_env.artifacts()
    base = build_tiny_llm(tmp_path / "tiny-base", seed=0)
    source = query_dataset(artifacts, registry)
    flag = tmp_path / "trainer-killed"
    monkeypatch.setenv("RAGOPS_TEST_KILL_LLM_TRAINER_ONCE", str(flag))

    first = run_with_quick_retries(CONF | {"base_model": str(base)})
    assert first.state == "success", task_states(first)
    states = task_states(first)
    assert states["promote"] == "success" and states["close_run"] == "success", states
    summary = xcom(first, "close_run")

    # The instruction data: built from the query dataset, extractive (named), validated, registered.
    assert "LLM (ragops_llm) -> extractive reference answers (the passage's best sentences, cited)" in \
        summary["fallbacks"]
    assert any(f.startswith("Kubernetes GPU pod -> a local process running train_llm.py") for f in summary["fallbacks"])
    instructions = registry.find_artifact("dataset", "llm-instructions")
    assert instructions.status == "usable" and instructions.metrics["dq_success"] is True
    assert instructions.metrics["answers"] == "extractive" and summary["instructions"]["id"] == instructions.id
    assert [(p.id, rel) for p, rel in registry.parents(instructions.id)] == [(source.id, "derived_from")]
    assert [r["suite"] for r in registry.dq_results(f"rag_finetune_llm/{first.run_id}")] == ["llm_instructions"]
    rel = artifacts.rel_of(instructions.uri)
    rows = [json.loads(line) for line in artifacts.read_bytes(f"{rel}/train.jsonl").decode().splitlines()]
    test_rows = [json.loads(line) for line in artifacts.read_bytes(f"{rel}/test.jsonl").decode().splitlines()]
    assert len(rows) == summary["instructions"]["rows_train"] > 0 and len(test_rows) > 0
    assert not {r["doc_id"] for r in rows} & {r["doc_id"] for r in test_rows}  # split by document
    answer = json.loads(rows[0]["completion"][0]["content"])["answer"]
    assert f"[{rows[0]['positive_index']}]" in answer and rows[0]["n_passages"] == 3

    # Training: killed after a mirrored checkpoint, retried by Airflow, resumed (not restarted).
    assert flag.exists(), "the test hook never killed the trainer"
    assert try_number(first, "train") == 2
    trained = xcom(first, "train")
    metrics = trained["metrics"]
    assert metrics["global_step"] == 16 and 0 < metrics["resumed_from_step"] < 16
    assert metrics["steps_this_run"] == 16 - metrics["resumed_from_step"] and trained["skipped"] is False
    mirror = Path(xcom(first, "resolve_inputs")["output_uri"])
    logged = [json.loads(line)["step"] for line in (mirror / "training_log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 17))  # each step once: no restart, no gap
    assert json.loads((mirror / "metrics.json").read_text())["resumed_from_step"] == metrics["resumed_from_step"]
    adapter = registry.get_artifact(trained["adapter"]["artifact_id"])
    assert adapter.kind == "adapter" and adapter.uri == str(mirror / "adapter")
    assert {rel for _, rel in registry.parents(adapter.id)} == {"trained_on", "finetuned_from"}

    # The merged model: the candidate, now production, with lineage to the adapter, the base and the data.
    live = registry.in_stage("model", "llm", "production")
    merged = xcom(first, "merge")
    assert merged["method"] == "merge_and_unload" and live.id == merged["candidate"]["artifact_id"]
    base_art = registry.find_artifact("model", "llm", version=1)
    assert base_art.uri == str(base) and base_art.params["role"] == "base" and base_art.stage is None
    assert sorted((p.id, rel) for p, rel in registry.parents(live.id)) == sorted(
        [(adapter.id, "merged_from"), (base_art.id, "finetuned_from"), (instructions.id, "trained_on")])
    merged_dir = Path(live.uri)
    merged_w, base_w = _tensors(merged_dir / "model.safetensors"), _tensors(base / "model.safetensors")
    pairs, scale = _lora_pairs(Path(adapter.uri)), _scaling(Path(adapter.uri))
    assert len(pairs) == 14
    for module, (a, b) in pairs.items():
        expected = base_w[f"{module}.weight"].double() + scale * (b @ a)
        assert torch.allclose(merged_w[f"{module}.weight"].double(), expected, atol=1e-5), module

    # Evaluation, gate, promotion.
    evaluation = xcom(first, "evaluate")
    assert evaluation["rows"] == 6 and evaluation["judge"] is None and "ragops_llm" in evaluation["judge_skipped"]
    assert evaluation["model_ids"]["live"] == evaluation["model_ids"]["base"] == f"path:{base.name}"
    assert math.isfinite(evaluation["perplexity"]["candidate"])
    assert evaluation["perplexity"]["candidate"] < evaluation["perplexity"]["base"]
    assert summary["decision"] == "promoted", summary["reasons"]
    assert summary["reasons"][0].startswith("perplexity of the held-out reference answers")
    assert any(r.startswith("judge skipped") for r in summary["reasons"])
    gate_eval = registry.get_artifact(summary["evaluation_id"])
    assert gate_eval.kind == "evaluation" and gate_eval.name == "llm-gate" and gate_eval.status == "promoted"
    report = artifacts.read_json(artifacts.rel_of(gate_eval.uri))
    assert set(report["models"]) == {"base", "live", "candidate"}
    assert live.metrics["gate"]["decision"] == "promoted"
    assert llm_asset_events(first.run_id) == [{"model_id": f"llm:v{live.version}", "artifact_id": live.id,
                                              "hash": live.content_hash[:12], "uri": live.uri, "rollback": False}]
    for task_id in ("build_instructions", "resolve_inputs", "train", "merge", "evaluate", "gate", "promote"):
        assert "ragops-models" not in json.dumps(xcom(first, task_id)), task_id   # no worker cache paths

    # Second run: the same training inputs (nothing trained), this adapter combined with a second one.
    other = _random_adapter(base, tmp_path / "other-adapter", seed=5, r=4, alpha=8)
    from ragops.models import model_dir_hash

    other_art = registry.record_artifact("adapter", "llm", model_dir_hash(other), str(other), status="usable",
                                         params={"base_hash": base_art.content_hash})
    conf = CONF | {"base_model": f"v{base_art.version}", "adapter_weight": 0.7,
                   "merge_adapters": [{"version": other_art.version, "weight": 0.3}], "margin": 0.5}
    monkeypatch.delenv("RAGOPS_TEST_KILL_LLM_TRAINER_ONCE")
    second = run_dag("rag_finetune_llm", conf)
    assert second.state == "success", task_states(second)
    assert task_states(second)["promote"] == "skipped"
    assert xcom(second, "train")["skipped"] is True and try_number(second, "train") == 1
    combined = xcom(second, "merge")
    assert combined["method"] == "cat" and combined["weights"] == [0.7, 0.3]
    candidate = registry.get_artifact(combined["candidate"]["artifact_id"])
    assert {(p.id, rel) for p, rel in registry.parents(candidate.id)} >= {
        (adapter.id, "merged_from"), (other_art.id, "merged_from"), (base_art.id, "finetuned_from")}
    merged_w = _tensors(Path(candidate.uri) / "model.safetensors")
    pa, pb = _lora_pairs(Path(adapter.uri)), _lora_pairs(other)
    sa, sb = _scaling(Path(adapter.uri)), _scaling(other)
    checked = 0
    for module, (a1, b1) in pa.items():
        delta = 0.7 * sa * (b1 @ a1)
        if module in pb:
            a2, b2 = pb[module]
            delta = delta + 0.3 * sb * (b2 @ a2)
            checked += 1
        key = f"{module}.weight"
        assert torch.allclose(merged_w[key].double(), base_w[key].double() + delta, atol=1e-5), module
    assert checked == 4  # q_proj and v_proj of both blocks carry both adapters
    summary = xcom(second, "close_run")
    assert summary["decision"] == "rejected" and summary["status"] == "success"
    assert "does not reach margin" in summary["reasons"][0]
    assert xcom(second, "promote")["refused"].startswith("gate rejected")
    assert registry.in_stage("model", "llm", "production").id == live.id
    assert candidate.stage == "candidate" and registry.get_artifact(candidate.id).status == "rejected"
    assert llm_asset_events(second.run_id) == []
    assert train_llm.Mirror(str(mirror), {}).steps()[-1] == 16


def test_llm_rollback_dag_restores_an_earlier_production_version(ragops_env, tmp_path):
    from ragops.models import promote, register_candidate

    registry = ragops_env.registry
    versions = []
    for name in ("good", "bad", "unvetted"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        versions.append(register_candidate(registry, str(folder), name.ljust(64, "0"), name="llm"))
    good, bad, unvetted = versions
    promote(registry, good.id, None, "gate approved")
    promote(registry, bad.id, None, "gate approved")

    run = run_dag("rag_llm_rollback", {"to_version": good.version, "reason": "bad cites wrongly"})
    assert run.state == "success", task_states(run)
    assert registry.in_stage("model", "llm", "production").id == good.id
    assert registry.get_artifact(bad.id).stage == "archived"
    summary = xcom(run, "close_run")
    assert summary["history"][-1]["reason"] == "bad cites wrongly" and summary["previous_version"] == bad.version
    assert llm_asset_events(run.run_id) == [{"model_id": f"llm:v{good.version}", "artifact_id": good.id,
                                            "hash": good.content_hash[:12], "uri": good.uri, "rollback": True}]
    again = run_dag("rag_llm_rollback", {"to_version": good.version})
    assert again.state == "success" and task_states(again)["rollback"] == "skipped"
    assert xcom(again, "close_run")["status"] == "noop" and llm_asset_events(again.run_id) == []
    refused = run_dag("rag_llm_rollback", {"to_version": unvetted.version})
    assert refused.state == "failed" and task_states(refused)["rollback"] == "failed"
    assert registry.in_stage("model", "llm", "production").id == good.id
