"""Query latency of the embedded vector store (LanceDB) on a BEIR corpus.

Embeds the corpus with the base model (text = title + newline + text), writes one collection, then
times vector, keyword (BM25) and hybrid queries with the benchmark's query texts. Query vectors are
encoded before the timing loop so vector latency excludes the model; the model's single-query
encode latency is measured on its own. Prints a Markdown table and writes JSON to bench/out/.

    python bench/bench_store_latency.py --beir ../shared/data/scifact-dev --limit 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ragops.config import base_model_path  # noqa: E402
from ragops.embedding import Embedder  # noqa: E402
from ragops.hashing import chunk_object_id, sha256_text  # noqa: E402
from ragops.stores import VectorObject  # noqa: E402
from ragops.stores.lancedb_store import LanceDBStore  # noqa: E402

COLLECTION = "BenchScifact_v1"


def read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    if not path.exists():
        raise SystemExit(f"BEIR file {path} does not exist")
    rows = []
    with path.open() as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
                if limit is not None and len(rows) >= limit:
                    break
    return rows


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def summary(name: str, samples_ms: list[float]) -> dict[str, Any]:
    return {"operation": name, "n": len(samples_ms), "p50_ms": percentile(samples_ms, 50),
            "p95_ms": percentile(samples_ms, 95), "mean_ms": statistics.fmean(samples_ms)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beir", type=Path, required=True, help="BEIR folder with corpus.jsonl and queries.jsonl")
    parser.add_argument("--limit", type=int, default=None, help="corpus documents to index (default: all)")
    parser.add_argument("--queries", type=int, default=200, help="queries to time (default 200)")
    parser.add_argument("--encode-queries", type=int, default=50,
                        help="queries whose single-query model encode latency is timed (default 50)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--store-dir", type=Path, default=None, help="where the collection is written (default: temp)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args(argv)

    corpus = read_jsonl(args.beir / "corpus.jsonl", args.limit)
    queries = read_jsonl(args.beir / "queries.jsonl", args.queries)
    embedder = Embedder(base_model_path())
    tokenizer = embedder.tokenizer

    texts = [f"{doc.get('title', '')}\n{doc['text']}" for doc in corpus]
    start = time.perf_counter()
    vectors = embedder.encode(texts)
    embed_s = time.perf_counter() - start

    objects = []
    for doc, text, vector in zip(corpus, texts, vectors):
        content_hash = sha256_text(text)
        object_id = chunk_object_id(str(doc["_id"]), 0, content_hash)
        objects.append(VectorObject(id=object_id, vector=vector, properties={
            "chunk_id": object_id, "doc_id": str(doc["_id"]), "doc_hash": content_hash,
            "source": f"beir:{doc['_id']}", "title": doc.get("title", ""), "heading_path": "",
            "position": 0, "text": doc["text"], "content_hash": content_hash,
            "token_count": len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]),
        }))

    with tempfile.TemporaryDirectory(prefix="ragops-bench-") as tmp:
        store = LanceDBStore(args.store_dir or tmp)
        store.delete_collection(COLLECTION)
        store.create_collection(COLLECTION, embedder.dimension, {"model": "all-MiniLM-L6-v2"})
        upsert_s = timed(lambda: store.upsert(COLLECTION, objects)) / 1000.0
        index_s = timed(lambda: store.ensure_search_index(COLLECTION)) / 1000.0

        query_texts = [q["text"] for q in queries]
        encode_ms = [timed(lambda text=text: embedder.encode([text]))
                     for text in query_texts[:args.encode_queries]]
        query_vectors = embedder.encode(query_texts)

        operations: dict[str, Callable[[int], Any]] = {
            "vector": lambda i: store.vector_search(COLLECTION, query_vectors[i], k=args.k),
            "keyword": lambda i: store.keyword_search(COLLECTION, query_texts[i], k=args.k),
            "hybrid": lambda i: store.hybrid_search(COLLECTION, query_texts[i], query_vectors[i], k=args.k,
                                                    alpha=args.alpha),
        }
        rows = [summary("model query encode (1 query)", encode_ms)]
        for name, run in operations.items():
            for i in range(min(args.warmup, len(query_texts))):
                run(i)
            rows.append(summary(f"{name} search (k={args.k})", [timed(lambda i=i, run=run: run(i))
                                                               for i in range(len(query_texts))]))

    report = {
        "store": "lancedb", "corpus": str(args.beir), "documents": len(corpus), "queries": len(query_texts),
        "dimension": embedder.dimension, "k": args.k, "alpha": args.alpha,
        "embed_docs_per_s": len(corpus) / embed_s if embed_s else None, "upsert_s": upsert_s,
        "fts_index_s": index_s, "latency": rows,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    print(f"\nLanceDB store, {len(corpus)} documents (dim {embedder.dimension}), {len(query_texts)} queries\n")
    print("| operation | n | p50 ms | p95 ms | mean ms |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['operation']} | {row['n']} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | {row['mean_ms']:.2f} |")
    print(f"\nembedding {report['embed_docs_per_s']:.1f} docs/s, upsert {upsert_s:.2f} s, "
          f"full-text index {index_s:.2f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"store_latency_lancedb_{len(corpus)}docs.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
