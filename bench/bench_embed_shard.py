"""rag_index's GPU embedding shard: embed_shard.py's chunks/s on the device it finds, and its vectors
against the worker path's (ragops.embedding.Embedder on CPU), in one run.

The entrypoint runs exactly as rag_index's ``embed_compute=local`` runs it (``shard_compute.local_command``,
the arguments a pod gets), over one shard of a BEIR corpus written as a chunk set + plan in a
temporary folder. No Postgres, no store: only the encoder's cost is measured. Meant for a session
with a lent GPU (not run on this 2-core machine's CPU beyond a smoke check):

    python bench/bench_embed_shard.py --corpus ../shared/data/scifact-dev/corpus.jsonl --chunks 5000
    python bench/bench_embed_shard.py --chunks 50000 --batch-size 256     # synthetic texts if no corpus

Writes bench/out/embed_shard_<device>.json: chunks, seconds, chunks/s (the entrypoint's own
timing of ``encode``, model load excluded), wall seconds of the process, min cosine to CPU vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ragops.indexing.shard_compute import local_command  # noqa: E402
from ragops.vocabulary import BASE_MODEL_URI  # noqa: E402


def load_texts(corpus: Path | None, n: int) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    if corpus and corpus.exists():
        with corpus.open() as fh:
            for line in fh:
                doc = json.loads(line)
                rows.append({"chunk_id": f"beir:{doc['_id']}", "heading_path": doc.get("title") or "",
                             "text": doc.get("text") or doc.get("title") or ""})
    while len(rows) < n:   # repeat (or synthesise) to reach n chunks: ids stay unique
        i = len(rows)
        base = rows[i % max(len(rows), 1)] if rows else {"heading_path": "Section", "text": "word " * 120}
        rows.append({"chunk_id": f"rep:{i}", "heading_path": base["heading_path"], "text": base["text"]})
    return rows[:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "data" / "scifact-dev" / "corpus.jsonl")
    ap.add_argument("--chunks", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--compare", type=int, default=256, help="chunks also encoded on CPU by the worker path")
    args = ap.parse_args()

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ragops.config import base_model_path
    from ragops.documents import embedding_text_of
    from ragops.embedding import Embedder
    from ragops.models import model_dir_hash

    rows = load_texts(args.corpus, args.chunks)
    with tempfile.TemporaryDirectory(prefix="bench-embed-shard-") as tmp:
        chunks_uri, plan_uri, out = Path(tmp) / "chunks.parquet", Path(tmp) / "plan.json", Path(tmp) / "out"
        pq.write_table(pa.Table.from_pylist(rows), chunks_uri)
        plan_uri.write_text(json.dumps({"to_embed": [r["chunk_id"] for r in rows], "chunks_uri": str(chunks_uri)}))
        shard_args = ["--plan-uri", str(plan_uri), "--chunks-uri", str(chunks_uri), "--start", "0",
                      "--end", str(len(rows)), "--model-uri", BASE_MODEL_URI,
                      "--model-hash", model_dir_hash(base_model_path()), "--output-uri", str(out),
                      "--batch-size", str(args.batch_size)]
        started = time.perf_counter()
        proc = subprocess.run(local_command(shard_args), capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if proc.returncode:
            sys.stderr.write(proc.stdout[-4000:])
            return proc.returncode
        done = json.loads((out / "done.json").read_text())
        table = pq.read_table(out / "vectors.parquet")
        vectors = np.asarray(table["vector"].combine_chunks().flatten()).reshape(table.num_rows, -1)
    sample = rows[:args.compare]
    cpu = Embedder(base_model_path(), batch_size=64, device="cpu").encode([embedding_text_of(r) for r in sample])
    cosine = float(np.min(np.sum(cpu * vectors[:len(sample)], axis=1)))
    result = {"device": done["device"], "chunks": done["chunks"], "encode_seconds": done["seconds"],
              "chunks_per_s": done["chunks_per_s"], "process_wall_seconds": round(wall, 2),
              "batch_size": args.batch_size, "min_cosine_vs_cpu": round(cosine, 7), "compared": len(sample),
              "corpus": str(args.corpus) if args.corpus.exists() else "synthetic", "host": platform.node()}
    target = ROOT / "bench" / "out" / f"embed_shard_{done['device']}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
