"""LLM finetuning: the LoRA entrypoint (train, kill and resume), adapter merges, and the gate's metrics.

Everything runs on a tiny Llama (2 layers, hidden 64, random weights from a fixed seed) with a BPE
tokenizer trained on the fixture corpus, both built here by tests/llm_tiny.py: no model hub.
"""

from __future__ import annotations

import ast
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.llm_tiny import build_tiny_llm, sft_rows, write_jsonl

from ragops.training import llm_eval, merge_adapters, train_llm

ENTRYPOINT = Path(train_llm.__file__)
MERGE = Path(merge_adapters.__file__)
MAX_STEPS = 40


def rows(**kwargs) -> list[dict]:
    """The fixture's instruction rows, with short passages (~130 tokens a row) to keep CPU steps quick."""
    return sft_rows(passage_chars=60, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: this model's matrices are tiny, and on a busy 2-core machine two threads
    spin-waiting on each other made the steps up to 9 times slower (measured: 32 steps in 3.7 s on one
    thread, 32 s on two)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {"model": build_tiny_llm(root / "model", seed=0),
            "rows": write_jsonl(rows(), root / "sft.jsonl"),
            "chat": write_jsonl(rows(conversational=True), root / "sft_chat.jsonl")}


def entry_args(tiny: dict[str, Path], out: Path, *extra: str, dataset: str = "rows", **values) -> list[str]:
    values = {"max_steps": 24, "save_steps": 12, "lr": 1e-2, "batch_size": 4, "max_seq_length": 256,
              "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "seed": 7} | values
    return train_llm.cli_args(base_model=tiny["model"], dataset=tiny[dataset], output_dir=out, **values) + list(extra)


def train_in_process(args: list[str]) -> dict:
    return train_llm.train(train_llm.build_parser().parse_args(args))


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    train_in_process(entry_args(tiny, out))
    return out


def logged_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "training_log.jsonl").read_text().splitlines()]


# -- the entrypoint -----------------------------------------------------------------------------
def test_entrypoints_run_alone_without_ragops(tmp_path):
    """As in docker/Dockerfile.llm-trainer: the three files in one folder, ragops off the path."""
    for path in (ENTRYPOINT, MERGE, Path(llm_eval.__file__)):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert "ragops" not in imported or path.name == "llm_eval.py", path  # llm_eval falls back to train_llm
        alone = tmp_path / path.name
        alone.write_text(path.read_text())
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.run([sys.executable, str(alone), "--help"], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=120)
        assert proc.returncode == 0 and ("--base-model" in proc.stdout or "perplexity" in proc.stdout), proc.stderr


def test_trains_a_few_steps_and_saves_the_adapter(trained, tiny):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["global_step"] == 24 and metrics["resumed_from_step"] == 0 and metrics["steps_this_run"] == 24
    assert math.isfinite(metrics["train_loss"]) and metrics["final_loss"] < metrics["first_loss"]
    assert metrics["device"] and metrics["load_in_4bit"] is False and metrics["steps_per_s"] > 0
    assert 0 < metrics["trainable_params"] < metrics["total_params"]
    adapter = trained / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16
    targets = {name.rsplit(".", 1)[-1] for name in config["target_modules"]}  # all-linear, expanded by peft
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert (adapter / "adapter_model.safetensors").stat().st_size > 0 and (adapter / "tokenizer.json").exists()
    info = json.loads((adapter / "ragops_adapter.json").read_text())
    assert info["base_model"]["sha256"] == train_llm.dir_hash(tiny["model"]) and info["global_step"] == 24
    assert metrics["adapter_sha256"] == train_llm.dir_hash(adapter)
    assert logged_steps(trained) == list(range(1, 25))
    steps = [s for s, _ in train_llm.complete_checkpoints(trained / "checkpoints")]
    assert steps == [12, 24]
    # metrics.json is the completion marker: nothing was written after it
    newest = max(p.stat().st_mtime_ns for p in trained.rglob("*") if p.is_file() and p.name != "metrics.json")
    assert (trained / "metrics.json").stat().st_mtime_ns >= newest


def test_rerun_with_the_same_inputs_is_a_no_op(trained, tiny):
    before = (trained / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns
    again = train_in_process(entry_args(tiny, trained))
    assert again["skipped"] is True and again["global_step"] == 24
    assert (trained / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns == before


def test_other_hyperparameters_are_refused_in_the_same_output(trained, tiny):
    with pytest.raises(SystemExit, match="other data or hyperparameters"):
        train_in_process(entry_args(tiny, trained, lr=1e-3))


def test_chat_rows_train_on_the_assistant_answer(tiny, tmp_path):
    metrics = train_in_process(entry_args(tiny, tmp_path / "chat", dataset="chat", max_steps=2, save_steps=2))
    assert metrics["conversational"] is True and metrics["global_step"] == 2 and math.isfinite(metrics["train_loss"])


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a CUDA GPU is present")
def test_qlora_is_refused_without_cuda(tiny, tmp_path):
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        train_in_process(entry_args(tiny, tmp_path / "q", "--load-in-4bit"))
    assert not (tmp_path / "q").exists()  # refused before anything was written


def test_cli_args_are_checked_against_the_parser():
    args = train_llm.cli_args(base_model="/m", dataset="/d.jsonl", output_dir="/o", max_steps=5, load_in_4bit=True,
                              use_rslora=False, checkpoint_uri=None)
    assert args == ["--base-model", "/m", "--dataset", "/d.jsonl", "--output-dir", "/o", "--max-steps", "5",
                    "--load-in-4bit"]
    with pytest.raises(SystemExit):
        train_llm.cli_args(base_model="/m", dataset="/d", output_dir="/o", max_steps=5, epochs=3)
    with pytest.raises(SystemExit):
        train_llm.cli_args(base_model="/m", dataset="/d", output_dir="/o")  # --max-steps is required


def test_rows_are_normalised_or_refused():
    assert train_llm.normalize_row({"prompt": "p", "completion": "c"}) == {"prompt": "p", "completion": "c"}
    chat = train_llm.normalize_row({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    assert chat == {"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "a"}]}
    mixed = train_llm.normalize_rows([{"prompt": "p", "completion": "c"},
                                      {"prompt": [{"role": "user", "content": "q"}], "completion": "a"}])
    assert mixed[0]["prompt"] == [{"role": "user", "content": "p"}]
    assert mixed[1]["completion"] == [{"role": "assistant", "content": "a"}]
    with pytest.raises(ValueError, match="last message must be the assistant"):
        train_llm.normalize_row({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]})
    with pytest.raises(ValueError, match="needs prompt"):
        train_llm.normalize_row({"text": "x"})


def _wait_for_complete_checkpoint(proc: subprocess.Popen, mirror: Path, log_file: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(train_llm.is_complete(p) for p in (mirror / "checkpoints").glob("checkpoint-*")):
            return
        if proc.poll() is not None:
            pytest.fail("the trainer ended before it could be killed:\n" + log_file.read_text()[-3000:])
        time.sleep(0.005)
    proc.kill()
    pytest.fail("no complete checkpoint within 120 s:\n" + log_file.read_text()[-3000:])


def test_killed_run_resumes_from_its_newest_complete_checkpoint(tiny, tmp_path):
    out, mirror = tmp_path / "run", tmp_path / "mirror"
    args = entry_args(tiny, out, "--checkpoint-uri", str(mirror), max_steps=MAX_STEPS, save_steps=4,
                      batch_size=2, save_total_limit=3)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    log_file = tmp_path / "first.log"
    with log_file.open("w") as fh:
        proc = subprocess.Popen([sys.executable, str(ENTRYPOINT), *args], stdout=fh, stderr=subprocess.STDOUT,
                                env=env)
        _wait_for_complete_checkpoint(proc, mirror, log_file)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and not (out / "metrics.json").exists()
    local = train_llm.complete_checkpoints(out / "checkpoints")
    assert local, "killed before its first local checkpoint"
    newest = local[-1][0]
    assert 0 < newest < MAX_STEPS
    snapshot = tmp_path / "mirror-at-kill"
    shutil.copytree(mirror, snapshot)
    # A half-written checkpoint (no marker) and a truncated one (marker, a file shorter than listed)
    # past the newest complete one: both must be skipped, not resumed from.
    newest_dir = out / "checkpoints" / f"checkpoint-{newest}"
    half = out / "checkpoints" / f"checkpoint-{newest + 1}"
    shutil.copytree(newest_dir, half)
    (half / train_llm.MARKER).unlink()
    truncated = out / "checkpoints" / f"checkpoint-{newest + 2}"
    shutil.copytree(newest_dir, truncated)
    optimizer = truncated / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])

    # The rerun: the same arguments (in this process: the same code path as the entrypoint's main, minus
    # another 10 s of imports).
    second = train_in_process(args)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == {k: v for k, v in second.items() if k != "skipped"}
    assert metrics["resumed_from_step"] == newest > 0
    assert metrics["global_step"] == MAX_STEPS and metrics["steps_this_run"] == MAX_STEPS - newest
    assert logged_steps(out) == list(range(1, MAX_STEPS + 1))  # each step logged once: no restart, no gap
    assert not half.exists() and not truncated.exists()
    # The mirror holds the finished run too, metrics.json last, and no more than save_total_limit checkpoints.
    assert json.loads((mirror / "metrics.json").read_text())["global_step"] == MAX_STEPS
    assert (mirror / "adapter" / "adapter_model.safetensors").exists()
    kept = sorted(train_llm.checkpoint_step(p.name) for p in (mirror / "checkpoints").glob("checkpoint-*"))
    assert kept[-1] == MAX_STEPS and len(kept) <= 3
    assert all(train_llm.is_complete(mirror / "checkpoints" / f"checkpoint-{s}") for s in kept)

    # A fresh machine (empty output dir) resumes from the mirror as it was at the kill, skipping a
    # half-copied checkpoint there too.
    at_kill = train_llm.Mirror(str(snapshot), {}).steps()
    assert at_kill and at_kill[-1] > 0
    half_remote = snapshot / "checkpoints" / "checkpoint-999"
    shutil.copytree(snapshot / "checkpoints" / f"checkpoint-{at_kill[-1]}", half_remote)
    (half_remote / train_llm.MARKER).unlink()
    fresh = tmp_path / "fresh"
    resumed = train_in_process(entry_args(tiny, fresh, "--checkpoint-uri", str(snapshot), max_steps=MAX_STEPS,
                                          save_steps=4, batch_size=2, save_total_limit=3))
    assert resumed["resumed_from_step"] == at_kill[-1] and resumed["global_step"] == MAX_STEPS
    assert logged_steps(fresh) == list(range(1, MAX_STEPS + 1))


def test_object_store_mirror(tiny, tmp_path):
    """The fsspec path of the mirror (no rename: copy, delete, marker last) on fsspec's memory:// store."""
    import fsspec

    uri = f"memory://ragops-test/{tmp_path.name}"
    args = dict(max_steps=8, save_steps=4, batch_size=2, save_total_limit=3)
    first = train_in_process(entry_args(tiny, tmp_path / "a", "--checkpoint-uri", uri, **args))
    fs = fsspec.filesystem("memory")
    root = uri.removeprefix("memory://")
    assert train_llm.Mirror(uri, {}).steps() == [4, 8]
    assert json.loads(fs.cat_file(f"{root}/metrics.json"))["adapter_sha256"] == first["adapter_sha256"]
    assert not [p for p in fs.ls(f"{root}/checkpoints", detail=False) if ".tmp-" in p]
    # checkpoint-8 loses its marker (as if the copy had been cut short): a fresh machine resumes from 4
    fs.rm(f"{root}/checkpoints/checkpoint-8/{train_llm.MARKER}")
    resumed = train_in_process(entry_args(tiny, tmp_path / "b", "--checkpoint-uri", uri, **args))
    assert resumed["resumed_from_step"] == 4 and resumed["global_step"] == 8 and resumed["steps_this_run"] == 4
    assert logged_steps(tmp_path / "b") == list(range(1, 9))
    assert train_llm.Mirror(uri, {}).steps() == [4, 8]  # checkpoint-8 written again, complete this time
    fs.rm(root, recursive=True)


# -- merging ------------------------------------------------------------------------------------
def _tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def _lora_pairs(adapter: Path) -> dict[str, tuple]:
    """module name in the base model -> (A, B) of an adapter's safetensors."""
    tensors = _tensors(adapter / "adapter_model.safetensors")
    pairs = {}
    for key, a in tensors.items():
        if ".lora_A." in key:
            module = key.split(".lora_A.")[0].removeprefix("base_model.model.")
            pairs[module] = (a.double(), tensors[key.replace(".lora_A.", ".lora_B.")].double())
    return pairs


def _scaling(adapter: Path) -> float:
    config = json.loads((adapter / "adapter_config.json").read_text())
    return config["lora_alpha"] / config["r"]


def _random_adapter(base: Path, out: Path, seed: int, r: int = 4, alpha: int = 8) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False, task_type="CAUSAL_LM"))
    peft_model.save_pretrained(str(out))
    return out


def test_merge_one_adapter_is_w_plus_scaled_b_a(trained, tiny, tmp_path):
    import torch

    base, adapter, out = tiny["model"], trained / "adapter", tmp_path / "merged"
    manifest = merge_adapters.merge_adapter(base, adapter, out)
    merged, original = _tensors(out / "model.safetensors"), _tensors(base / "model.safetensors")
    pairs = _lora_pairs(adapter)
    assert "model.layers.0.self_attn.q_proj" in pairs and len(pairs) == 14  # 7 linear layers x 2 blocks
    scale = _scaling(adapter)
    for module, (a, b) in pairs.items():
        key = f"{module}.weight"
        expected = original[key].double() + scale * (b @ a)
        assert torch.allclose(merged[key].double(), expected, atol=1e-5), module
        assert not torch.equal(merged[key], original[key])  # the trained B is not zero
    untouched = set(original) - {f"{m}.weight" for m in pairs}
    assert untouched and all(torch.equal(merged[k], original[k]) for k in untouched)
    assert manifest["base_model"] == {"path": str(base), "sha256": merge_adapters.dir_hash(base)}
    assert [(a["path"], a["sha256"], a["weight"]) for a in manifest["adapters"]] == [
        (str(adapter), merge_adapters.dir_hash(adapter), 1.0)]
    assert manifest["method"] == "merge_and_unload" and manifest["merged"]["sha256"] == merge_adapters.dir_hash(out)
    assert json.loads((out / "merge_manifest.json").read_text())["inputs_hash"] == manifest["inputs_hash"]
    assert (out / "tokenizer.json").exists()
    assert merge_adapters.merge_adapter(base, adapter, out)["skipped"] is True
    # The merged model scores exactly like base + adapter.
    sample = rows()[:8]
    with_adapter = llm_eval.perplexity_of(base, sample, adapter=adapter, device="cpu")
    merged_ppl = llm_eval.perplexity_of(out, sample, device="cpu")
    assert merged_ppl["perplexity"] == pytest.approx(with_adapter["perplexity"], rel=1e-4)


@pytest.mark.parametrize("combination_type", ["cat", "linear"])
def test_weighted_combination_of_two_adapters(tiny, tmp_path, combination_type):
    import torch

    base = tiny["model"]
    first = _random_adapter(base, tmp_path / "a", seed=1)
    second = _random_adapter(base, tmp_path / "b", seed=2)
    weights = [0.7, 0.3]
    out = tmp_path / "merged"
    manifest = merge_adapters.merge_adapters(base, [first, second], out, weights=weights,
                                             combination_type=combination_type)
    merged, original = _tensors(out / "model.safetensors"), _tensors(base / "model.safetensors")
    pa, pb = _lora_pairs(first), _lora_pairs(second)
    sa, sb = _scaling(first), _scaling(second)
    assert set(pa) == set(pb) and len(pa) == 4  # q_proj and v_proj in 2 blocks
    for module in pa:
        (a1, b1), (a2, b2) = pa[module], pb[module]
        exact = weights[0] * sa * (b1 @ a1) + weights[1] * sb * (b2 @ a2)
        if combination_type == "cat":  # the exact weighted sum of the two updates
            delta = exact
        else:  # factors averaged: (sum sqrt(w s) B) @ (sum sqrt(w s) A), cross terms included
            c1, c2 = math.sqrt(weights[0] * sa), math.sqrt(weights[1] * sb)
            delta = (c1 * b1 + c2 * b2) @ (c1 * a1 + c2 * a2)
            assert not torch.allclose(delta, exact, atol=1e-3)
        key = f"{module}.weight"
        assert torch.allclose(merged[key].double(), original[key].double() + delta, atol=1e-5), module
    assert manifest["combination_type"] == combination_type and manifest["weights"] == weights
    assert [a["sha256"] for a in manifest["adapters"]] == [merge_adapters.dir_hash(first),
                                                           merge_adapters.dir_hash(second)]


def test_merge_refuses_an_adapter_of_another_base(trained, tiny, tmp_path):
    adapter = tmp_path / "adapter"
    shutil.copytree(trained / "adapter", adapter)
    info = json.loads((adapter / "ragops_adapter.json").read_text())
    info["base_model"]["sha256"] = "0" * 64
    (adapter / "ragops_adapter.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="another base model"):
        merge_adapters.merge_adapter(tiny["model"], adapter, tmp_path / "merged")
    with pytest.raises(ValueError, match="2 adapters but 1 weights"):
        merge_adapters.merge_adapters(tiny["model"], [adapter, adapter], tmp_path / "m2", weights=[1.0])


# -- evaluation ---------------------------------------------------------------------------------
def test_perplexity_drops_after_training_on_the_same_rows(trained, tiny):
    data = rows()
    before = llm_eval.perplexity_of(tiny["model"], data, device="cpu")
    after = llm_eval.perplexity_of(tiny["model"], str(tiny["rows"]), adapter=trained / "adapter", device="cpu")
    assert math.isfinite(before["perplexity"]) and math.isfinite(after["perplexity"])
    assert 1 < after["perplexity"] < before["perplexity"]
    assert before["tokens"] == after["tokens"] > len(data)  # completion tokens only, the same ones


def test_perplexity_scores_the_tokens_trl_trains_on(tiny, tmp_path):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny["model"]))
    model = AutoModelForCausalLM.from_pretrained(str(tiny["model"]))
    for conversational in (False, True):
        data = train_llm.normalize_rows(rows(conversational=conversational)[:4])
        trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=datasets.Dataset.from_list(data),
                             args=SFTConfig(output_dir=str(tmp_path), max_length=256, completion_only_loss=True,
                                            report_to="none", bf16=False, use_cpu=True))
        for row, example in zip(data, trainer.train_dataset):
            ids, labels = llm_eval.encode_example(tokenizer, row, max_length=256)
            assert ids == example["input_ids"] and labels == example["labels"]
            assert -100 in labels and labels[-1] == tokenizer.eos_token_id


def test_citation_check_catches_passages_that_were_not_given():
    assert llm_eval.cited_passages("per [2] and [1, 3]; see [4-5] and [2]") == [2, 1, 3, 4, 5]
    bad = llm_eval.check_citations("WAL segments are recycled [1], then archived [7].", n_passages=3)
    assert bad["valid"] is False and bad["invalid"] == [7] and bad["cited"] == [1, 7]
    assert llm_eval.check_citations("Compaction reclaims space [3].", 3)["valid"] is True
    assert llm_eval.check_citations("No sources.", 3) == {"valid": True, "cited": [], "invalid": [],
                                                         "has_citation": False, "n_passages": 3}
    assert llm_eval.check_citations("index [0]", 3)["invalid"] == [0]
    summary = llm_eval.citation_validity(["a [1]", "b [7]", "c"], [3, 3, 3])
    assert summary["valid_rate"] == pytest.approx(2 / 3) and summary["citation_rate"] == pytest.approx(2 / 3)
    assert summary["invalid"] == [{"index": 1, "cited": [7], "invalid": [7], "n_passages": 3}]
    # the fixture's reference answers cite only the passages they were given
    data = rows()
    assert llm_eval.citation_validity([r["completion"] for r in data], [r["n_passages"] for r in data])["valid_rate"] == 1


def test_command_lines_of_merge_and_eval(trained, tiny, tmp_path, capsys):
    out = tmp_path / "merged"
    assert merge_adapters.main(["--base-model", str(tiny["model"]), "--adapter", str(trained / "adapter"),
                                "--adapter", str(trained / "adapter"), "--weights", "0.5,0.5",
                                "--combination-type", "cat", "--output-dir", str(out)]) == 0
    manifest = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["merge_adapters"]
    assert manifest["weights"] == [0.5, 0.5] and manifest["combination_type"] == "cat"
    assert llm_eval.main(["perplexity", "--model", str(out), "--dataset", str(tiny["rows"])]) == 0
    merged = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["perplexity"]
    # the same adapter twice at 0.5 each (cat: exact sum) is the adapter itself
    assert merged["perplexity"] == pytest.approx(
        llm_eval.perplexity_of(tiny["model"], tiny["rows"], adapter=trained / "adapter", device="cpu")["perplexity"],
        rel=1e-4)
