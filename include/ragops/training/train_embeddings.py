"""Finetune a sentence-transformers embedding model on (query, positive[, negative]) pairs.

The one training entrypoint: the GPU pod runs this file alone (it imports nothing from ragops),
and local compute runs the very same file in a subprocess with the same arguments::

    python train_embeddings.py --dataset-uri s3://bucket/datasets/synthetic-queries/v3 \\
        --base-model /models/base --output-uri s3://bucket/models/candidates/abc123 \\
        --epochs 1 --batch-size 32 --lr 2e-5 --matryoshka-dims 384,256,128,64 \\
        --checkpoint-steps 200 --seed 42

Shaped like sentence-transformers' training examples: MultipleNegativesRankingLoss (the cached
variant above a batch-size threshold, so large batches fit in memory) inside MatryoshkaLoss,
the NO_DUPLICATES batch sampler (a duplicate text in a batch would be a false in-batch negative),
hard negatives when the dataset's ``negative`` column is filled.

Output location (a local folder or an fsspec URI)::

    training_config.json   the arguments, the inputs hash, library versions
    checkpoints/           checkpoint-<step>/ every --checkpoint-steps steps (a restart resumes here)
    training_log.jsonl     one line per optimisation step: step, epoch, loss, learning rate
    model/                 the final model (save_pretrained)
    metrics.json           written last: steps, epochs, train loss, runtime, peak memory, device

It is idempotent: when metrics.json already names the same inputs hash, it exits 0 at once.
Credentials for object storage come from the environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS...)
or RAGOPS_STORAGE_OPTIONS (JSON fsspec options; never a command-line argument); they are never written
to the outputs.
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
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("train_embeddings")

# Above this batch size the cached (GradCache) MNRL keeps memory flat: embeddings are computed
# in mini-batches and the loss still sees every in-batch negative.
CACHED_LOSS_BATCH_THRESHOLD = 64
# Matryoshka dims below the full size; the full size is always trained.
STANDARD_DIMS = (1024, 768, 512, 256, 128, 64)
# The hyperparameters that change the trajectory of training: a checkpoint is reusable only
# under the same ones (training length, epochs and max steps, may differ: a longer run resumes).
_TRAJECTORY_KEYS = ("dataset", "base_model", "batch_size", "lr", "matryoshka_dims", "seed", "loss",
                    "mini_batch_size", "warmup_ratio", "negatives")


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
    p.add_argument("--dataset-uri", required=True,
                   help="a datasets.save_to_disk folder (DatasetDict with a train split, or a Dataset): path or fsspec URI")
    p.add_argument("--base-model", required=True,
                   help="a sentence-transformers model folder: a path, an fsspec URI, or package://<module>/<folder>")
    p.add_argument("--output-uri", required=True, help="where checkpoints, the model and metrics go: path or fsspec URI")
    # The hyperparameters have no defaults here: rag_finetune_embeddings' params own them, and the
    # pod and the local process are given every one (the same arguments either way).
    p.add_argument("--epochs", type=float, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--matryoshka-dims", default="",
                   help="comma-separated dims, e.g. 384,256,128,64 (default: the model's size down to 64)")
    p.add_argument("--checkpoint-steps", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (-1: run all epochs)")
    p.add_argument("--loss", choices=("auto", "mnrl", "cached-mnrl"), default="auto",
                   help=f"auto: cached MNRL above batch size {CACHED_LOSS_BATCH_THRESHOLD}")
    p.add_argument("--mini-batch-size", type=int, default=32, help="cached MNRL's mini-batch size")
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--split", default="train", help="the split of a DatasetDict to train on")
    p.add_argument("--work-dir", default="",
                   help="local scratch for a remote --output-uri (default: a temp folder keyed by the inputs)")
    return p


def parse_dims(text: str, full_dim: int) -> list[int]:
    """The Matryoshka dims, largest first, always including the model's full size."""
    if text.strip():
        try:
            dims = {int(d) for d in text.split(",") if d.strip()}
        except ValueError as exc:
            raise SystemExit(f"--matryoshka-dims {text!r} is not a comma-separated list of integers") from exc
    else:
        dims = {d for d in STANDARD_DIMS if d < full_dim}
    bad = sorted(d for d in dims if d <= 0 or d > full_dim)
    if bad:
        raise SystemExit(f"--matryoshka-dims {text!r}: {bad} outside 1..{full_dim} (the model's dimension)")
    return sorted(dims | {full_dim}, reverse=True)


# -- storage ----------------------------------------------------------------------------------
def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


# The completeness record of a published folder: ragops.artifacts.MANIFEST, which the task's
# ArtifactStore verifies (this file imports nothing from ragops).
MANIFEST = ".ragops-manifest.json"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


class Output:
    """The output location: a local folder, or a remote prefix mirrored from a local work dir."""

    def __init__(self, uri: str, work_dir: Path, storage_options: dict[str, Any]):
        self.uri = uri.rstrip("/")
        self.remote = is_remote(uri)
        self.dir = work_dir if self.remote else local_path(uri)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fs: Any = None
        if self.remote:
            import fsspec

            self.fs, self.root = fsspec.core.url_to_fs(self.uri, **storage_options)

    def read_json(self, rel: str) -> dict[str, Any] | None:
        if self.remote:
            target = f"{self.root}/{rel}"
            if not self.fs.exists(target):
                return None
            with self.fs.open(target, "rb") as fh:
                return json.loads(fh.read())
        path = self.dir / rel
        return json.loads(path.read_text()) if path.exists() else None

    def write_json(self, rel: str, obj: Any) -> None:
        path = self.dir / rel
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
        os.replace(tmp, path)  # a crash never leaves half a marker file
        self.push(rel)

    def push(self, rel: str) -> None:
        """Uploads a file or folder of the work dir to the remote location (no-op when local)."""
        if not self.remote:
            return
        src = self.dir / rel
        if src.is_dir():
            # A trailing slash copies the folder's contents, so a re-upload never nests (model/model).
            self.fs.put(f"{src}/", f"{self.root}/{rel}", recursive=True)
        elif src.exists():
            self.fs.put_file(str(src), f"{self.root}/{rel}")

    def publish_dir(self, rel: str) -> None:
        """Publishes a folder of the work dir whole, as ragops' ArtifactStore does (its readers check
        it with ``dir_complete``): a manifest of every file's size and SHA-256, said "incomplete"
        before the files go up and "complete" after them, so a kill mid-upload never leaves a folder
        that looks finished. The manifest's name and shape are ragops.artifacts' MANIFEST."""
        folder = self.dir / rel
        files = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": _sha256_file(p)}
                 for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
        self.write_json(f"{rel}/{MANIFEST}", {"version": 1, "files": files, "complete": False})
        self.push(rel)
        self.write_json(f"{rel}/{MANIFEST}", {"version": 1, "files": files, "complete": True})

    def pull_last_checkpoint(self) -> None:
        """Brings the remote's last checkpoint into the work dir (a fresh pod after preemption)."""
        if not self.remote:
            return
        remote_ckpts = f"{self.root}/checkpoints"
        if not self.fs.exists(remote_ckpts):
            return
        steps = [(int(p.rstrip("/").rsplit("-", 1)[1]), p.rstrip("/")) for p in self.fs.ls(remote_ckpts, detail=False)
                 if p.rstrip("/").rsplit("/", 1)[-1].startswith("checkpoint-")
                 and self.fs.exists(f"{p.rstrip('/')}/trainer_state.json")]
        if not steps:
            return
        step, path = max(steps)
        target = self.dir / "checkpoints" / f"checkpoint-{step}"
        if not target.exists():
            log.info("pulling checkpoint-%d from %s", step, self.uri)
            self.fs.get(path, str(target), recursive=True)
        for rel in ("training_log.jsonl",):
            if self.fs.exists(f"{self.root}/{rel}"):
                self.fs.get_file(f"{self.root}/{rel}", str(self.dir / rel))


# -- inputs -----------------------------------------------------------------------------------
def load_pairs(dataset_uri: str, split: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    """The training split as anchor/positive[/negative] columns, and its fingerprint."""
    import datasets

    kwargs = {"storage_options": storage_options} if is_remote(dataset_uri) else {}
    try:
        loaded = datasets.load_from_disk(dataset_uri if is_remote(dataset_uri) else str(local_path(dataset_uri)),
                                         **kwargs)
    except FileNotFoundError as exc:
        raise SystemExit(f"--dataset-uri {dataset_uri!r}: no dataset saved with save_to_disk there ({exc})") from exc
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise SystemExit(f"--dataset-uri {dataset_uri!r} has splits {sorted(loaded)}, not {split!r}")
        loaded = loaded[split]
    missing = {"query", "positive"} - set(loaded.column_names)
    if missing:
        raise SystemExit(f"--dataset-uri {dataset_uri!r}: columns {sorted(missing)} missing "
                         f"(has {loaded.column_names})")
    if len(loaded) == 0:
        raise SystemExit(f"--dataset-uri {dataset_uri!r}: the {split!r} split is empty")
    columns = ["query", "positive"]
    if "negative" in loaded.column_names:
        negatives = loaded["negative"]
        filled = sum(1 for n in negatives if n)
        if filled == len(loaded):
            columns.append("negative")
        elif filled:
            log.warning("only %d of %d rows have a hard negative: training on pairs (in-batch negatives)",
                        filled, len(loaded))
    pairs = loaded.select_columns(columns).rename_column("query", "anchor")
    return pairs, loaded._fingerprint


def resolve_model_dir(ref: str, scratch: Path, storage_options: dict[str, Any]) -> Path:
    """A local folder for the base model: as given, from a Python package, or downloaded."""
    if ref.startswith("package://"):
        import importlib.util

        module, _, sub = ref.removeprefix("package://").partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"--base-model {ref!r}: the package {module!r} is not installed")
        path = Path(next(iter(spec.submodule_search_locations))) / sub
    elif is_remote(ref):
        import fsspec

        fs, root = fsspec.core.url_to_fs(ref, **storage_options)
        path = scratch / "base-model"
        if not (path / "config.json").exists():
            fs.get(root.rstrip("/") + "/", str(path), recursive=True)
    else:
        path = local_path(ref)
    if not (path / "config.json").exists():
        raise SystemExit(f"--base-model {ref!r} is not a sentence-transformers model folder (no config.json)")
    return path


def dir_hash(path: Path) -> str:
    """Identity of a model folder: names and bytes of its files (model cards excluded)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if file.suffix == ".md":
            continue
        digest.update(file.relative_to(path).as_posix().encode())
        with file.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def hash_of(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# -- training ---------------------------------------------------------------------------------
def _jsonl_log_callback(path: Path, output: Output) -> Any:
    from transformers import TrainerCallback

    class JsonlLossLog(TrainerCallback):
        """One line per logged step; checkpoints are mirrored to a remote output when saved."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                with path.open("a") as fh:
                    fh.write(json.dumps({"step": state.global_step, "epoch": round(state.epoch or 0, 4),
                                         "loss": logs["loss"], "learning_rate": logs.get("learning_rate")}) + "\n")

        def on_save(self, args, state, control, **kwargs):
            output.push(f"checkpoints/checkpoint-{state.global_step}")
            output.push(path.name)

    return JsonlLossLog()


def train(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    storage_options = storage_options_from_env()
    base = resolve_model_dir(args.base_model, Path(tempfile.gettempdir()) / "ragops-train-models", storage_options)
    pairs, dataset_fingerprint = load_pairs(args.dataset_uri, args.split, storage_options)

    model = SentenceTransformer(str(base), local_files_only=True)
    full_dim = int(model.get_embedding_dimension())
    dims = parse_dims(args.matryoshka_dims, full_dim)
    loss_name = args.loss if args.loss != "auto" else (
        "cached-mnrl" if args.batch_size > CACHED_LOSS_BATCH_THRESHOLD else "mnrl")
    inputs = {
        "dataset": {"uri": args.dataset_uri, "fingerprint": dataset_fingerprint, "split": args.split,
                    "rows": len(pairs)},
        "base_model": dir_hash(base), "batch_size": args.batch_size, "lr": args.lr,
        "matryoshka_dims": dims, "seed": args.seed, "loss": loss_name,
        "mini_batch_size": args.mini_batch_size if loss_name == "cached-mnrl" else None,
        "warmup_ratio": args.warmup_ratio, "negatives": "negative" in pairs.column_names,
        "epochs": args.epochs, "max_steps": args.max_steps,
    }
    inputs_hash = hash_of(inputs)
    trajectory_hash = hash_of({k: inputs[k] for k in _TRAJECTORY_KEYS})
    work_dir = Path(args.work_dir) if args.work_dir else Path(tempfile.gettempdir()) / f"ragops-train-{trajectory_hash[:16]}"
    output = Output(args.output_uri, work_dir, storage_options)

    done = output.read_json("metrics.json")
    if done and done.get("inputs_hash") == inputs_hash:
        log.info("%s already holds a model trained from these inputs (%s): nothing to do",
                 args.output_uri, inputs_hash[:12])
        return {**done, "skipped": True}

    previous = output.read_json("training_config.json")
    if previous and previous.get("trajectory_hash") != trajectory_hash:
        raise SystemExit(f"--output-uri {args.output_uri!r} holds checkpoints of a run with other data or "
                         "hyperparameters; give this run an output location of its own")
    output.write_json("training_config.json", {
        "inputs": inputs, "inputs_hash": inputs_hash, "trajectory_hash": trajectory_hash,
        "args": vars(args),
        "versions": {"torch": torch.__version__, "sentence_transformers": _version("sentence_transformers"),
                     "transformers": _version("transformers"), "datasets": _version("datasets")},
    })
    output.pull_last_checkpoint()

    inner: Any
    if loss_name == "cached-mnrl":
        inner = losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=args.mini_batch_size)
    else:
        inner = losses.MultipleNegativesRankingLoss(model)
    loss = losses.MatryoshkaLoss(model, inner, matryoshka_dims=dims)

    cuda = torch.cuda.is_available()
    checkpoints = output.dir / "checkpoints"
    training_args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_steps=args.warmup_ratio,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        seed=args.seed,
        data_seed=args.seed,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        save_strategy="steps",
        save_steps=args.checkpoint_steps,
        save_total_limit=2,
        logging_steps=1,
        eval_strategy="no",
        report_to="none",
        dataloader_drop_last=len(pairs) > args.batch_size,  # a last batch of one has no in-batch negative
        disable_tqdm=True,
    )
    log_path = output.dir / "training_log.jsonl"
    trainer = SentenceTransformerTrainer(model=model, args=training_args, train_dataset=pairs, loss=loss,
                                         callbacks=[_jsonl_log_callback(log_path, output)])

    resume = last_complete_checkpoint(checkpoints)
    resumed_from = int(resume.rsplit("-", 1)[1]) if resume else 0
    if resume:
        log.info("warm start: resuming from %s (step %d)", resume, resumed_from)
        _truncate_log(log_path, resumed_from)  # steps after the checkpoint are trained again
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    runtime = time.perf_counter() - started

    model_dir = output.dir / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model.save_pretrained(str(model_dir))
    output.publish_dir("model")  # whole, or not at all
    output.push("training_log.jsonl")
    metrics = {
        "inputs_hash": inputs_hash,
        "global_step": trainer.state.global_step,
        "resumed_from_step": resumed_from,
        "epochs": round(float(trainer.state.epoch or 0), 4),
        "train_loss": float(result.training_loss),
        "runtime_s": round(runtime, 2),
        "train_rows": len(pairs),
        "loss": loss_name,
        "matryoshka_dims": dims,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
        "model_uri": f"{output.uri}/model",
    }
    output.write_json("metrics.json", metrics)  # last: its presence means "finished"
    return metrics


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint that was fully written, or None.

    The trainer writes ``trainer_state.json`` last, so a checkpoint without it was cut short (a
    killed process, a preempted pod): it is removed, and training resumes from the one before."""
    if not folder.exists():
        return None
    found = sorted((int(p.name.rsplit("-", 1)[1]), p) for p in folder.glob("checkpoint-*")
                   if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit())
    for _step, path in reversed(found):
        if (path / "trainer_state.json").exists():
            return str(path)
        log.warning("removing the incomplete checkpoint %s (no trainer_state.json)", path)
        shutil.rmtree(path)
    return None


def _truncate_log(path: Path, step: int) -> None:
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(f"{line}\n" for line in kept))


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module.replace("_", "-"))
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    args = build_parser().parse_args(argv)
    metrics = train(args)
    print(json.dumps({"train_embeddings": metrics}, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
