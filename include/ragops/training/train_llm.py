"""Finetune a causal language model with LoRA (or QLoRA on a CUDA GPU) on instruction rows.

The LLM training entrypoint: like ``train_embeddings.py`` it imports nothing from ragops, so a GPU
image runs this file alone, and a local process runs the very same file with the same arguments::

    python train_llm.py --base-model /models/base --dataset /data/sft/train.jsonl \\
        --output-dir /work/run --checkpoint-uri s3://bucket/llm-runs/abc123 \\
        --max-steps 500 --lr 2e-4 --max-seq-length 1024 --batch-size 4 --grad-accum 4 \\
        --lora-r 16 --lora-alpha 32 --lora-dropout 0.05 --target-modules all-linear \\
        --save-steps 50 --seed 42 [--load-in-4bit]

TRL's ``SFTTrainer`` with a peft ``LoraConfig``; the loss is taken on the completion tokens only.
``--load-in-4bit`` is QLoRA (bitsandbytes NF4, double quantisation, bf16 compute): it needs a
CUDA GPU and is refused, before anything is loaded, where there is none.

The dataset (a .jsonl file, a folder of .jsonl files, or a ``datasets.save_to_disk`` folder) holds
instruction rows in one of these shapes; all are brought to TRL's prompt-completion form:

    {"prompt": "...", "completion": "..."}                            plain text
    {"messages": [{"role": "user", ...}, ..., {"role": "assistant", ...}]}   chat: the last message
                                                                      (the assistant's) is the completion
    {"prompt": [messages...], "completion": [messages...] or "..."}   chat prompt-completion

Chat rows are rendered with the tokenizer's chat template (a tokenizer without one is refused).

Output folder (--output-dir, local)::

    training_config.json   the arguments, the inputs hash, library versions
    checkpoints/           checkpoint-<step>/ every --save-steps steps; each is complete only once
                           its marker (checkpoint_complete.json, file names and sizes) is written last
    training_log.jsonl     one line per optimisation step: step, loss, learning rate
    adapter/               the final LoRA adapter (adapter_config.json, adapter_model.safetensors),
                           the tokenizer, and ragops_adapter.json (base model hash, LoRA settings)
    metrics.json           written LAST, the completion marker: steps, resumed_from_step, train loss,
                           seconds, steps/s, peak memory, device

Warm start: a rerun with the same arguments resumes from the newest COMPLETE checkpoint (its marker
present and every file it lists at the listed size); checkpoints cut short by a kill are removed.
With ``--checkpoint-uri`` (a path or an fsspec URI) every checkpoint is mirrored there atomically
(copied under a temporary name, renamed, then the marker copied last), as are the final adapter and
metrics.json; a fresh machine with an empty --output-dir resumes from the mirror's newest complete
checkpoint. A run whose metrics.json names the same inputs exits at once (idempotent).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import resource
import shutil
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("train_llm")

MARKER = "checkpoint_complete.json"
ADAPTER_INFO = "ragops_adapter.json"
# What changes the trajectory of training: checkpoints are reused only under the same values.
_TRAJECTORY_KEYS = ("dataset", "base_model", "lora", "load_in_4bit", "dtype", "lr", "lr_scheduler", "warmup_steps",
                    "max_steps", "max_seq_length", "batch_size", "grad_accum", "seed", "optim", "weight_decay",
                    "gradient_checkpointing")


# -- arguments --------------------------------------------------------------------------------

# fsspec storage options reach a trainer through this environment variable (JSON), never its command
# line: a command line is visible to every process on the node, in the pod spec and in task logs.
STORAGE_OPTIONS_ENV = "RAGOPS_STORAGE_OPTIONS"


def storage_options_from_env() -> dict[str, Any]:
    text = os.environ.get(STORAGE_OPTIONS_ENV, "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise SystemExit(f"{STORAGE_OPTIONS_ENV} is not valid JSON (its value is not shown: it may hold "
                         "credentials)") from None
    if not isinstance(value, dict):
        raise SystemExit(f"{STORAGE_OPTIONS_ENV} must be a JSON object")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-model", required=True,
                   help="a transformers causal-LM folder (config.json, weights, tokenizer), or an fsspec URI of one "
                        "(copied into --output-dir first)")
    p.add_argument("--dataset", required=True,
                   help="a .jsonl file, a folder of .jsonl files, or a datasets.save_to_disk folder (path or fsspec URI)")
    p.add_argument("--split", default="train", help="the split of a DatasetDict, or <split>.jsonl in a folder")
    p.add_argument("--output-dir", required=True, help="local folder for checkpoints, the adapter and metrics")
    p.add_argument("--checkpoint-uri", default="",
                   help="mirror of checkpoints, adapter and metrics (path or fsspec URI); a rerun resumes from it")
    p.add_argument("--max-steps", type=int, required=True, help="optimisation steps to train")
    p.add_argument("--lr", type=float, default=2e-4, help="learning rate")
    p.add_argument("--lr-scheduler", default="cosine", help="transformers scheduler name (cosine, linear, constant...)")
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--optim", default="adamw_torch", help="transformers optimizer name (paged_adamw_8bit with QLoRA...)")
    p.add_argument("--max-seq-length", type=int, default=1024, help="tokens per row (prompt + completion), cut at the end")
    p.add_argument("--batch-size", type=int, default=4, help="rows per device per micro-batch")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimisation step")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=float, default=32)
    p.add_argument("--lora-dropout", type=float, default=0.05)
    p.add_argument("--target-modules", default="all-linear",
                   help="comma-separated module names (q_proj,v_proj...) or all-linear (every linear layer but the head)")
    p.add_argument("--use-rslora", action="store_true", help="rank-stabilised scaling alpha/sqrt(r) instead of alpha/r")
    p.add_argument("--load-in-4bit", action="store_true", help="QLoRA: the base in 4-bit (bitsandbytes); CUDA only")
    p.add_argument("--bnb-4bit-quant-type", choices=("nf4", "fp4"), default="nf4")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                   help="dtype of the (non-quantised) base weights; auto: bfloat16 on a GPU that has it, else float32")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--save-steps", type=int, default=50, help="a checkpoint every this many steps")
    p.add_argument("--save-total-limit", type=int, default=2, help="checkpoints kept (locally and in the mirror)")
    p.add_argument("--seed", type=int, default=42)
    return p


def cli_args(**values: Any) -> list[str]:
    """This entrypoint's command line for ``values`` (the parser's names: base_model=..., load_in_4bit=True),
    checked against the parser: the ``arguments`` of a pod, or a local subprocess's. A flag given True
    is passed, False or None left out."""
    if values.get("storage_options"):
        raise ValueError(f"storage options never travel on the command line: put them in the trainer's "
                         f"environment as {STORAGE_OPTIONS_ENV} (JSON)")
    values.pop("storage_options", None)
    args: list[str] = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not False and value is not None:
            args += [flag, str(value)]
    build_parser().parse_args(args)  # an unknown or missing argument exits here, not in the pod
    return args


# -- hashing ----------------------------------------------------------------------------------
def dir_hash(path: Path) -> str:
    """Identity of a folder (or a file): names and bytes of its files, model cards excluded."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    for file in files:
        if file.suffix == ".md":
            continue
        digest.update((file.name if file == path else file.relative_to(path).as_posix()).encode())
        with file.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def hash_of(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# -- dataset ----------------------------------------------------------------------------------
def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)


def normalize_row(row: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """One instruction row in TRL's prompt-completion form: strings, or lists of chat messages."""
    if "messages" in row and row["messages"] is not None and "completion" not in row:
        messages = row["messages"]
        if not _is_messages(messages) or len(messages) < 2:
            raise ValueError(f"row {index}: 'messages' must be a list of >= 2 {{role, content}} messages")
        if messages[-1]["role"] != "assistant":
            raise ValueError(f"row {index}: the last message must be the assistant's answer (got {messages[-1]['role']!r})")
        return {"prompt": [dict(m) for m in messages[:-1]], "completion": [dict(messages[-1])]}
    prompt = row.get("prompt", row.get("messages"))
    completion = row.get("completion")
    if prompt is None or completion is None:
        raise ValueError(f"row {index}: needs prompt + completion, or messages (has {sorted(row)})")
    if isinstance(prompt, str) and isinstance(completion, str):
        return {"prompt": prompt, "completion": completion}
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if isinstance(completion, str):
        completion = [{"role": "assistant", "content": completion}]
    if not _is_messages(prompt) or not _is_messages(completion):
        raise ValueError(f"row {index}: prompt and completion must be strings or lists of {{role, content}} messages")
    return {"prompt": [dict(m) for m in prompt], "completion": [dict(m) for m in completion]}


def normalize_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row in one form: if any row is a chat, plain rows become user/assistant chats too."""
    out = [normalize_row(r, i) for i, r in enumerate(rows)]
    if any(isinstance(r["prompt"], list) for r in out):
        out = [r if isinstance(r["prompt"], list) else
               {"prompt": [{"role": "user", "content": r["prompt"]}],
                "completion": [{"role": "assistant", "content": r["completion"]}]} for r in out]
    return out


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def _read_jsonl(text: str, source: str) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SystemExit(f"--dataset: {source} line {n} is not JSON ({exc})") from exc
    return rows


def load_rows(dataset: str, split: str = "train", storage_options: dict[str, Any] | None = None
              ) -> tuple[list[dict[str, Any]], str]:
    """The raw rows of --dataset, and a content hash of what they were read from."""
    storage_options = storage_options or {}
    if is_remote(dataset):
        import fsspec

        fs, root = fsspec.core.url_to_fs(dataset, **storage_options)
        if fs.isfile(root):
            data = fs.cat_file(root)
            return _read_jsonl(data.decode(), dataset), hashlib.sha256(data).hexdigest()
        if not fs.exists(f"{root}/dataset_dict.json") and not fs.exists(f"{root}/state.json"):
            files = sorted(p for p in fs.ls(root, detail=False) if p.endswith(".jsonl"))
            if any(p.rsplit("/", 1)[-1] == f"{split}.jsonl" for p in files):
                files = [p for p in files if p.rsplit("/", 1)[-1] == f"{split}.jsonl"]
            if not files:
                raise SystemExit(f"--dataset {dataset!r}: no .jsonl file or saved dataset there")
            blobs = [fs.cat_file(p) for p in files]
            rows = [r for p, b in zip(files, blobs) for r in _read_jsonl(b.decode(), p)]
            return rows, hashlib.sha256(b"".join(hashlib.sha256(b).digest() for b in blobs)).hexdigest()
        return _load_saved(dataset, split, storage_options)
    path = Path(dataset.removeprefix("file://"))
    if path.is_file():
        return _read_jsonl(path.read_text(), str(path)), dir_hash(path)
    if not path.is_dir():
        raise SystemExit(f"--dataset {dataset!r}: no such file or folder")
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return _load_saved(str(path), split, {})
    files = sorted(path.glob("*.jsonl"))
    if (path / f"{split}.jsonl").exists():
        files = [path / f"{split}.jsonl"]
    if not files:
        raise SystemExit(f"--dataset {dataset!r}: no .jsonl file or saved dataset there")
    rows = [r for f in files for r in _read_jsonl(f.read_text(), str(f))]
    return rows, hash_of([dir_hash(f) for f in files])


def _load_saved(dataset: str, split: str, storage_options: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    import datasets

    kwargs = {"storage_options": storage_options} if storage_options else {}
    loaded = datasets.load_from_disk(dataset, **kwargs)
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise SystemExit(f"--dataset {dataset!r} has splits {sorted(loaded)}, not {split!r}")
        loaded = loaded[split]
    return loaded.to_list(), loaded._fingerprint


# -- checkpoints and their mirror ---------------------------------------------------------------
def checkpoint_step(name: str) -> int | None:
    prefix, _, step = name.rpartition("-")
    return int(step) if prefix == "checkpoint" and step.isdigit() else None


def write_marker(folder: Path, step: int) -> None:
    """Marks a checkpoint complete: its files and sizes, written last (atomically) into it."""
    files = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != MARKER and not p.name.startswith(".")}
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text(json.dumps({"step": step, "files": files}, indent=1, sort_keys=True))
    os.replace(tmp, folder / MARKER)


def is_complete(folder: Path) -> bool:
    """A checkpoint folder whose marker is there and whose every listed file has the listed size."""
    try:
        marker = json.loads((folder / MARKER).read_text())
        return "trainer_state.json" in marker["files"] and all(
            (folder / rel).is_file() and (folder / rel).stat().st_size == size for rel, size in marker["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def complete_checkpoints(folder: Path, remove_incomplete: bool = False) -> list[tuple[int, Path]]:
    """(step, folder) of the complete checkpoints under ``folder``, oldest first.

    With ``remove_incomplete``, the folders cut short (a killed process, a preempted pod) are deleted,
    so the trainer's own rotation never counts them."""
    if not folder.exists():
        return []
    found = []
    for path in folder.iterdir():
        step = checkpoint_step(path.name)
        if step is None or not path.is_dir():
            if remove_incomplete and path.name.startswith(".tmp-"):
                shutil.rmtree(path, ignore_errors=True)
            continue
        if is_complete(path):
            found.append((step, path))
        elif remove_incomplete:
            log.warning("removing the incomplete checkpoint %s (no complete marker)", path)
            shutil.rmtree(path, ignore_errors=True)
    return sorted(found)


def fetch_base_model(uri: str, dest: Path, storage_options: dict[str, Any]) -> Path:
    """A base model at an fsspec URI (e.g. the artifact store), copied once into ``dest`` (a temporary
    name, then a rename: a kill never leaves half a model there)."""
    if (dest / "config.json").exists():
        return dest
    import fsspec

    fs, root = fsspec.core.url_to_fs(uri, **storage_options)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    for path in fs.find(root):
        rel = path[len(root.rstrip("/")) + 1:]
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(path, str(tmp / rel))
    if not (tmp / "config.json").exists():
        shutil.rmtree(tmp, ignore_errors=True)
        raise SystemExit(f"--base-model {uri!r} holds no transformers model (no config.json)")
    os.rename(tmp, dest)
    return dest


class Mirror:
    """A copy of the run under --checkpoint-uri (a folder or an fsspec URI), written atomically."""

    def __init__(self, uri: str, storage_options: dict[str, Any]):
        import fsspec

        self.uri = uri.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.uri, **storage_options)
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        self.fs.makedirs(f"{self.root}/checkpoints", exist_ok=True)

    def _put_dir(self, src: Path, dest: str) -> None:
        """src's files under ``dest``, via a temporary name and a rename (the marker left out)."""
        tmp = f"{dest.rsplit('/', 1)[0]}/.tmp-{dest.rsplit('/', 1)[1]}-{uuid.uuid4().hex[:8]}"
        if self.local:
            shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(MARKER, ".*"))
            if os.path.exists(dest):
                shutil.rmtree(dest)
            os.rename(tmp, dest)  # atomic on one filesystem
            return
        for file in sorted(p for p in src.rglob("*") if p.is_file() and p.name != MARKER and not p.name.startswith(".")):
            self.fs.put_file(str(file), f"{tmp}/{file.relative_to(src).as_posix()}")
        if self.fs.exists(dest):
            self.fs.rm(dest, recursive=True)
        self.fs.mv(tmp, dest, recursive=True)  # object stores copy and delete: the marker still comes last

    def put_file(self, src: Path, rel: str) -> None:
        dest = f"{self.root}/{rel}"
        if self.local:
            tmp = f"{dest}.tmp-{uuid.uuid4().hex[:8]}"
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        else:
            self.fs.put_file(str(src), dest)

    def put_checkpoint(self, folder: Path) -> None:
        dest = f"{self.root}/checkpoints/{folder.name}"
        self._put_dir(folder, dest)
        self.put_file(folder / MARKER, f"checkpoints/{folder.name}/{MARKER}")  # last: now it is complete

    def put_adapter(self, folder: Path) -> None:
        self._put_dir(folder, f"{self.root}/adapter")

    def _listing(self) -> list[str]:
        self.fs.invalidate_cache()  # object stores' listings are cached by fsspec
        try:
            return self.fs.ls(f"{self.root}/checkpoints", detail=False)
        except FileNotFoundError:  # an object store has no empty folders
            return []

    def steps(self) -> list[int]:
        """Steps of the mirror's complete checkpoints, oldest first."""
        out = []
        for path in self._listing():
            step = checkpoint_step(path.rstrip("/").rsplit("/", 1)[-1])
            if step is not None and self._complete(f"{self.root}/checkpoints/checkpoint-{step}"):
                out.append(step)
        return sorted(out)

    def _complete(self, path: str) -> bool:
        try:
            marker = json.loads(self.fs.cat_file(f"{path}/{MARKER}"))
            return all(self.fs.size(f"{path}/{rel}") == size for rel, size in marker["files"].items())
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def fetch_checkpoint(self, step: int, into: Path) -> Path:
        """The mirror's checkpoint-<step> copied into the folder ``into`` (temp name, then rename)."""
        target = into / f"checkpoint-{step}"
        tmp = into / f".tmp-checkpoint-{step}-{uuid.uuid4().hex[:8]}"
        src = f"{self.root}/checkpoints/checkpoint-{step}"
        for path in self.fs.find(src):
            rel = path[len(src.rstrip("/")) + 1:] if path.startswith(src) else path.rsplit("/", 1)[-1]
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(path, str(tmp / rel))
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
        return target

    def read_json(self, rel: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.fs.cat_file(f"{self.root}/{rel}"))
        except (FileNotFoundError, ValueError):
            return None

    def get_file(self, rel: str, dest: Path) -> bool:
        if not self.fs.exists(f"{self.root}/{rel}"):
            return False
        self.fs.get_file(f"{self.root}/{rel}", str(dest))
        return True

    def prune(self, keep: int) -> None:
        steps = self.steps()
        for step in steps[:-keep] if keep > 0 else []:
            self.fs.rm(f"{self.root}/checkpoints/checkpoint-{step}", recursive=True)
        for path in self._listing():
            name = path.rstrip("/").rsplit("/", 1)[-1]
            step = checkpoint_step(name)
            if step is not None and step not in steps and (not steps or step < steps[-1]):
                self.fs.rm(path, recursive=True)  # a half-copied older one


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)  # a crash never leaves half a file


# -- training ---------------------------------------------------------------------------------
def _callbacks(log_path: Path, mirror: Mirror | None, keep: int) -> Any:
    from transformers import TrainerCallback

    class CheckpointsAndLog(TrainerCallback):
        """One log line per step; each saved checkpoint is marked complete, then mirrored."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs and "loss" in logs:
                with log_path.open("a") as fh:
                    fh.write(json.dumps({"step": state.global_step, "loss": logs["loss"],
                                         "learning_rate": logs.get("learning_rate"),
                                         "grad_norm": logs.get("grad_norm")}) + "\n")

        def on_save(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            write_marker(folder, state.global_step)  # the trainer wrote trainer_state.json last: now complete
            if mirror is not None:
                mirror.put_file(log_path, "training_log.jsonl")
                mirror.put_checkpoint(folder)
                mirror.prune(keep)

    return CheckpointsAndLog()


def _truncate_log(path: Path, step: int) -> None:
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(f"{line}\n" for line in kept))


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "unknown"


def target_modules(text: str) -> str | list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise SystemExit("--target-modules is empty")
    return "all-linear" if names == ["all-linear"] else names


def train(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    if args.load_in_4bit and not cuda:
        raise SystemExit("--load-in-4bit (QLoRA) needs a CUDA GPU for bitsandbytes' 4-bit kernels, and none is visible "
                         "here; train without --load-in-4bit (LoRA on the full-precision base) or run on a GPU node")
    if args.max_steps <= 0 or args.save_steps <= 0:
        raise SystemExit("--max-steps and --save-steps must be positive")
    storage_options = storage_options_from_env()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = fetch_base_model(args.base_model, out / "base-model", storage_options) if is_remote(args.base_model) \
        else Path(args.base_model)
    if not (base / "config.json").exists():
        raise SystemExit(f"--base-model {args.base_model!r} is not a transformers model folder (no config.json)")

    raw, dataset_hash = load_rows(args.dataset, args.split, storage_options)
    if not raw:
        raise SystemExit(f"--dataset {args.dataset!r} holds no rows")
    try:
        rows = normalize_rows(raw)
    except ValueError as exc:
        raise SystemExit(f"--dataset {args.dataset!r}: {exc}") from exc
    conversational = isinstance(rows[0]["prompt"], list)

    dtype_name = args.dtype if args.dtype != "auto" else (
        "bfloat16" if cuda and torch.cuda.is_bf16_supported() else "float32")
    lora = {"r": args.lora_r, "alpha": args.lora_alpha, "dropout": args.lora_dropout,
            "target_modules": target_modules(args.target_modules), "use_rslora": args.use_rslora}
    inputs = {
        "dataset": {"uri": args.dataset, "hash": dataset_hash, "split": args.split, "rows": len(rows),
                    "conversational": conversational},
        "base_model": dir_hash(base), "lora": lora,
        "load_in_4bit": args.load_in_4bit and args.bnb_4bit_quant_type, "dtype": dtype_name,
        "lr": args.lr, "lr_scheduler": args.lr_scheduler, "warmup_steps": args.warmup_steps,
        "max_steps": args.max_steps, "max_seq_length": args.max_seq_length, "batch_size": args.batch_size,
        "grad_accum": args.grad_accum, "seed": args.seed, "optim": args.optim, "weight_decay": args.weight_decay,
        "gradient_checkpointing": args.gradient_checkpointing,
    }
    inputs_hash = hash_of(inputs)
    trajectory_hash = hash_of({k: inputs[k] for k in _TRAJECTORY_KEYS})

    mirror = Mirror(args.checkpoint_uri, storage_options) if args.checkpoint_uri else None

    done = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else None
    if done and done.get("inputs_hash") == inputs_hash and (out / "adapter" / "adapter_config.json").exists():
        log.info("%s already holds an adapter trained from these inputs (%s): nothing to do", out, inputs_hash[:12])
        return {**done, "skipped": True}
    for previous in (json.loads((out / "training_config.json").read_text()) if (out / "training_config.json").exists()
                     else None, mirror.read_json("training_config.json") if mirror else None):
        if previous and previous.get("trajectory_hash") != trajectory_hash:
            raise SystemExit(f"{args.output_dir!r} or {args.checkpoint_uri!r} holds checkpoints of a run with other "
                             "data or hyperparameters; give this run an output location of its own")
    config = {"inputs": inputs, "inputs_hash": inputs_hash, "trajectory_hash": trajectory_hash,
              "args": vars(args),
              "versions": {m: _version(m) for m in ("torch", "transformers", "trl", "peft", "datasets", "bitsandbytes")}}
    write_json(out / "training_config.json", config)
    if mirror:
        mirror.put_file(out / "training_config.json", "training_config.json")

    # Warm start: the newest complete checkpoint, here or (a fresh machine) in the mirror.
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    log_path = out / "training_log.jsonl"
    local = complete_checkpoints(ckpt_dir, remove_incomplete=True)
    if mirror:
        remote = mirror.steps()
        if remote and (not local or remote[-1] > local[-1][0]):
            log.info("pulling checkpoint-%d from %s", remote[-1], mirror.uri)
            mirror.fetch_checkpoint(remote[-1], ckpt_dir)
            mirror.get_file("training_log.jsonl", log_path)
            local = complete_checkpoints(ckpt_dir, remove_incomplete=True)
    resume = str(local[-1][1]) if local else None
    resumed_from = local[-1][0] if local else 0
    if resume:
        log.info("warm start: resuming from %s (step %d)", resume, resumed_from)
        _truncate_log(log_path, resumed_from)  # steps after the checkpoint are trained again
    elif log_path.exists():
        log_path.unlink()

    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    if conversational and not tokenizer.chat_template:
        raise SystemExit(f"--dataset {args.dataset!r} has chat rows but the tokenizer of {args.base_model!r} has no "
                         "chat_template")
    model_kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype_name), "local_files_only": True}
    if args.load_in_4bit:
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        model_kwargs |= {"quantization_config": BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=args.bnb_4bit_quant_type, bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute),
            "dtype": compute, "device_map": {"": torch.cuda.current_device()}}
    model = AutoModelForCausalLM.from_pretrained(str(base), **model_kwargs)
    peft_config = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                             target_modules=lora["target_modules"], use_rslora=args.use_rslora,
                             bias="none", task_type="CAUSAL_LM")
    half = dtype_name in ("bfloat16", "float16") or args.load_in_4bit
    sft_args = SFTConfig(
        output_dir=str(ckpt_dir),
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.lr,
        lr_scheduler_type=args.lr_scheduler,
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        optim=args.optim,
        max_length=args.max_seq_length,
        completion_only_loss=True,
        packing=False,
        bf16=cuda and half and torch.cuda.is_bf16_supported(),
        fp16=cuda and half and not torch.cuda.is_bf16_supported(),
        seed=args.seed,
        data_seed=args.seed,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        save_only_model=False,  # optimizer, scheduler and RNG states: a resume continues the same trajectory
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=cuda,
        # renamed activation_checkpointing in transformers 5.2x; the old name warns there
        **{("activation_checkpointing" if "activation_checkpointing" in SFTConfig.__dataclass_fields__
            else "gradient_checkpointing"): args.gradient_checkpointing},
    )
    trainer = SFTTrainer(model=model, args=sft_args, train_dataset=datasets.Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=peft_config,
                         callbacks=[_callbacks(log_path, mirror, args.save_total_limit)])
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    runtime = time.perf_counter() - started

    adapter = out / "adapter"
    tmp = out / f".adapter.tmp-{uuid.uuid4().hex[:8]}"
    trainer.model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    write_json(tmp / ADAPTER_INFO, {"base_model": {"path": str(base), "sha256": inputs["base_model"]},
                                     "inputs_hash": inputs_hash, "lora": lora, "load_in_4bit": inputs["load_in_4bit"],
                                     "global_step": trainer.state.global_step})
    if adapter.exists():
        shutil.rmtree(adapter)
    os.rename(tmp, adapter)

    losses = [json.loads(line)["loss"] for line in log_path.read_text().splitlines() if line] if log_path.exists() else []
    steps_run = trainer.state.global_step - resumed_from
    metrics = {
        "inputs_hash": inputs_hash,
        "global_step": trainer.state.global_step,
        "max_steps": args.max_steps,
        "resumed_from_step": resumed_from,
        "steps_this_run": steps_run,
        "train_loss": sum(losses) / len(losses) if losses else None,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "runtime_s": round(runtime, 3),
        "steps_per_s": round(steps_run / runtime, 3) if runtime > 0 else None,
        "train_rows": len(rows),
        "conversational": conversational,
        "trainable_params": trainable,
        "total_params": total,
        "load_in_4bit": bool(args.load_in_4bit),
        "dtype": dtype_name,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "adapter_dir": str(adapter),
        "adapter_sha256": dir_hash(adapter),
    }
    if mirror:
        mirror.put_file(log_path, "training_log.jsonl")
        mirror.put_adapter(adapter)
        metrics["adapter_uri"] = f"{mirror.uri}/adapter"
    write_json(out / "metrics.json", metrics)  # last: its presence means "finished"
    if mirror:
        mirror.put_file(out / "metrics.json", "metrics.json")
    return metrics


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    args = build_parser().parse_args(argv)
    metrics = train(args)
    sys.stdout.write(json.dumps({"train_llm": metrics}, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
