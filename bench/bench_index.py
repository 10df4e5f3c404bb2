"""rag_index's cost: full, no-change and 5%-changed runs, split into load, chunk, embed and write.

Runs the same step functions as the DAG (``ragops.indexing.run_pipeline``) against the real
Postgres (a throwaway schema), LanceDB and local artifact files in a temporary folder. The
model's own ``encode`` time over the same chunk texts, batch for batch, is measured separately so
that the indexing overhead beside it can be stated.

    python bench/bench_index.py --corpus demo --pages all
    python bench/bench_index.py --corpus beir --path ../shared/data/scifact-dev
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ragops.config import RagopsSettings, base_model_path  # noqa: E402
from ragops.documents import embedding_text_of  # noqa: E402
from ragops.embedding import Embedder  # noqa: E402
from ragops.indexing.params import IndexParams  # noqa: E402
from ragops.indexing.pipeline import run_pipeline  # noqa: E402
from ragops.services import Services  # noqa: E402


def change_folder(folder: Path, share: float, seed: int = 7) -> int:
    """Edits a seeded sample of the pages in place."""
    files = sorted(p for p in folder.rglob("*.html"))
    chosen = random.Random(seed).sample(files, max(1, int(len(files) * share)))
    for path in chosen:
        text = path.read_text(encoding="utf-8", errors="replace")
        path.write_text(text.replace("</body>", "<p>Benchmark edit: this page changed tonight.</p></body>"))
    return len(chosen)


def change_beir(folder: Path, share: float, seed: int = 7) -> int:
    """Edits a seeded sample of the abstracts in place."""
    lines = (folder / "corpus.jsonl").read_text().splitlines()
    chosen = set(random.Random(seed).sample(range(len(lines)), max(1, int(len(lines) * share))))
    out = []
    for i, line in enumerate(lines):
        if i in chosen:
            row = json.loads(line)
            row["text"] += " Benchmark edit: this abstract changed tonight."
            line = json.dumps(row)
        out.append(line)
    (folder / "corpus.jsonl").write_text("\n".join(out) + "\n")
    return len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=["demo", "beir"], required=True)
    parser.add_argument("--path", default=str(ROOT.parent / "shared" / "data" / "scifact-dev"))
    parser.add_argument("--pages", default="all", help="demo pages: a number or 'all'")
    parser.add_argument("--change", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ragops-bench-"))
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, RAGOPS_ARTIFACT_ROOT=str(work / "artifacts"), RAGOPS_VECTOR_DIR=str(work / "vectors"),
               RAGOPS_SCHEMA=schema, RAGOPS_VECTOR_BACKEND="lancedb")
    svc = Services(RagopsSettings.from_env(env), migrate=True)
    registry, artifacts = svc.registry, svc.artifacts
    if args.corpus == "demo":
        from ragops.demo_corpus import demo_source_spec

        spec = demo_source_spec(None if args.pages == "all" else int(args.pages))
        src = work / "docs"
        shutil.copytree(spec["path"], src)
        spec = spec | {"path": str(src), "root": str(src)}
        alias = "BenchDocs"
    else:
        src = work / "beir"
        shutil.copytree(args.path, src)
        spec = {"type": "beir", "path": str(src), "name": "beir"}
        alias = "BenchBeir"
    params = IndexParams(alias=alias, sources=[spec], batch_size=args.batch_size, shard_size=10**9)
    params_model = base_model_path()
    embedder = Embedder(params_model, batch_size=args.batch_size)
    embedder.encode(["warm up"])  # load the weights outside every timing
    _ = svc.store, svc.registry  # open the store and the registry outside the timings too, as before
    results: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
                               "corpus": args.corpus, "pages": args.pages, "model": params_model}
    try:
        def timed_run(name: str, mode: str) -> dict[str, Any]:
            p = params.replace(mode=mode)
            t0 = time.perf_counter()
            summary = run_pipeline(svc, p, f"bench-{name}", embedder=embedder, dag_id="bench")
            wall = time.perf_counter() - t0
            out = {"wall_seconds": round(wall, 2), "timings": summary["timings"], "plan": summary["plan"],
                   "chunks": summary["chunks"]["chunks"], "documents": summary["corpus"]["documents"]}
            print(f"{name}: {json.dumps(out)}", flush=True)
            return out

        full = timed_run("full", "full")
        # The model alone over the same texts, in the same batches: the floor for embedding.
        chunk_art = registry.find_artifact("chunks", alias)
        rows = artifacts.read_table(artifacts.rel_of(chunk_art.uri)).to_pylist()
        texts = [embedding_text_of(r) for r in rows]
        t0 = time.perf_counter()
        for i in range(0, len(texts), args.batch_size):
            embedder.encode(texts[i:i + args.batch_size])
        encode_only = time.perf_counter() - t0
        full["encode_only_seconds"] = round(encode_only, 2)
        full["chunks_per_second"] = round(full["chunks"] / full["wall_seconds"], 1)
        full["overhead_vs_encode"] = round(full["wall_seconds"] / encode_only - 1, 4)
        results["full"] = full
        results["no_change"] = timed_run("no-change", "incremental")
        results["no_change"]["share_of_full"] = round(results["no_change"]["wall_seconds"] / full["wall_seconds"], 4)
        changed = (change_folder if args.corpus == "demo" else change_beir)(src, args.change)
        results["changed"] = timed_run(f"changed-{int(args.change * 100)}pct", "incremental")
        results["changed"]["documents_changed"] = changed
        results["changed"]["share_of_full"] = round(results["changed"]["wall_seconds"] / full["wall_seconds"], 4)
    finally:
        registry.drop()
        shutil.rmtree(work, ignore_errors=True)
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"index_{args.corpus}.json").write_text(json.dumps(results, indent=2))
    f, n, c = results["full"], results["no_change"], results["changed"]
    print("\n| run | wall s | load | chunk | embed | write | chunks | notes |\n|---|---|---|---|---|---|---|---|")
    for name, r in (("full", f), ("no change", n), (f"{int(args.change * 100)}% changed", c)):
        t = r["timings"]
        print(f"| {name} | {r['wall_seconds']} | {t.get('load', 0)} | {t.get('chunk', 0)} | {t.get('embed', 0)} | "
              f"{t.get('write', 0)} | {r['chunks']} | to_embed={r['plan'].get('to_embed')} copied={r['plan'].get('copied')} |")
    print(f"\nmodel encode alone: {f['encode_only_seconds']} s; overhead of the whole full run beside it: "
          f"{f['overhead_vs_encode']:.1%}; chunks/s: {f['chunks_per_second']}; no-change run = "
          f"{n['share_of_full']:.1%} of full; 5% changed = {c['share_of_full']:.1%} of full")


if __name__ == "__main__":
    main()
