"""The two vector stores side by side on one BEIR corpus: batch import, quality and latency.

Embeds the corpus once (title + newline + text, the base model), writes the same objects to the
embedded LanceDB store and to a real Weaviate (WEAVIATE_URL, or the one `scripts/services.sh`
runs), then measures on the same queries:
- batch import throughput (objects/s) per store;
- quality on a qrels split (nDCG@10, MRR@10, Recall@100): dense, keyword, hybrid with our
  client-side fusion (RRF, the stores' default) and, on Weaviate, its server-side hybrid
  (`ranked` and `relative_score` fusion);
- latency p50/p95 of vector, keyword and hybrid queries at 1 and 8 concurrent clients (threads;
  query vectors encoded beforehand, so the model is not in these figures).

    python bench/bench_stores.py --beir ../shared/data/scifact-dev --split dev-eval

Nothing here learns from labels, so any split may be reported; dev-eval is used for comparability.
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
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ragops.config import base_model_path  # noqa: E402
from ragops.embedding import Embedder  # noqa: E402
from ragops.hashing import chunk_object_id, sha256_text  # noqa: E402
from ragops.retrieval_eval import beir_labelled, metrics_from_run  # noqa: E402
from ragops.stores import VectorObject  # noqa: E402


def read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    rows = []
    with path.open() as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
                if limit is not None and len(rows) >= limit:
                    break
    return rows


def pct(samples: list[float], q: int) -> float:
    ordered = sorted(samples)
    return ordered[0] if len(ordered) == 1 else statistics.quantiles(ordered, n=100, method="inclusive")[q - 1]


def latency(run: Callable[[int], Any], n: int, clients: int) -> dict[str, float]:
    def timed(i: int) -> float:
        t0 = time.perf_counter()
        run(i % n)
        return (time.perf_counter() - t0) * 1000
    for i in range(min(5, n)):
        run(i)  # warm up
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        samples = list(pool.map(timed, range(n)))
    wall = time.perf_counter() - started
    return {"p50_ms": round(pct(samples, 50), 2), "p95_ms": round(pct(samples, 95), 2),
            "qps": round(n / wall, 1)}


def doc_scores(hits: list[Any]) -> dict[str, float]:
    scores: dict[str, float] = {}
    for rank, hit in enumerate(hits):
        doc = str(hit.properties.get("doc_id") or hit.id)
        scores.setdefault(doc, float(len(hits) - rank))  # rank order: fusions' scores differ in scale
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beir", type=Path, required=True)
    parser.add_argument("--split", default="dev-eval")
    parser.add_argument("--limit", type=int, default=None, help="corpus documents (default: all)")
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args(argv)

    corpus = read_jsonl(args.beir / "corpus.jsonl", args.limit)
    labelled = beir_labelled(args.beir, args.split)
    known = {str(d["_id"]) for d in corpus}
    qrels = {q: {d: g for d, g in rel.items() if d in known} for q, rel in labelled.qrels.items()}
    qrels = {q: rel for q, rel in qrels.items() if rel}
    query_ids = sorted(qrels)
    query_texts = [labelled.queries[q] for q in query_ids]
    embedder = Embedder(base_model_path())
    texts = [f"{d.get('title', '')}\n{d['text']}" for d in corpus]
    t0 = time.perf_counter()
    vectors = embedder.encode(texts)
    embed_s = time.perf_counter() - t0
    query_vectors = embedder.encode(query_texts)
    objects = []
    for doc, text, vector in zip(corpus, texts, vectors, strict=True):
        h = sha256_text(text)
        oid = chunk_object_id(str(doc["_id"]), 0, h)
        objects.append(VectorObject(id=oid, vector=vector, properties={
            "chunk_id": oid, "doc_id": str(doc["_id"]), "doc_hash": h, "source": "beir", "title": doc.get("title", ""),
            "heading_path": "", "position": 0, "text": doc["text"], "content_hash": h, "token_count": 0}))

    from tests.services import service_env

    from ragops.stores.lancedb_store import LanceDBStore
    from ragops.stores.weaviate_store import WeaviateStore

    env = os.environ if os.environ.get("WEAVIATE_URL") else service_env("weaviate")
    name = f"Bench{uuid.uuid4().hex[:8]}"
    report: dict[str, Any] = {"corpus": str(args.beir), "documents": len(corpus), "split": args.split,
                              "queries": len(query_ids), "embed_docs_per_s": round(len(corpus) / embed_s, 1),
                              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "stores": {}}
    with tempfile.TemporaryDirectory(prefix="ragops-bench-") as tmp:
        stores = {"lancedb": LanceDBStore(tmp),
                  "weaviate": WeaviateStore(env["WEAVIATE_URL"], grpc_port=int(env.get("WEAVIATE_GRPC_PORT") or 50051),
                                            api_key=env.get("WEAVIATE_API_KEY") or None)}
        try:
            for backend, store in stores.items():
                store.create_collection(name, embedder.dimension, {})
                t0 = time.perf_counter()
                for i in range(0, len(objects), 1000):
                    store.upsert(name, objects[i:i + 1000])
                import_s = time.perf_counter() - t0
                store.ensure_search_index(name)
                modes: dict[str, Callable[[int, int], list[Any]]] = {
                    "dense": lambda i, k, s=store: s.vector_search(name, query_vectors[i], k=k),
                    "keyword": lambda i, k, s=store: s.keyword_search(name, query_texts[i], k=k),
                    "hybrid (client RRF)": lambda i, k, s=store: s.hybrid_search(name, query_texts[i], query_vectors[i],
                                                                                 k=k),
                }
                if backend == "weaviate":
                    modes["hybrid (server ranked)"] = lambda i, k, s=store: s.hybrid_search(
                        name, query_texts[i], query_vectors[i], k=k, fusion="server", fusion_type="ranked")
                    modes["hybrid (server relative_score)"] = lambda i, k, s=store: s.hybrid_search(
                        name, query_texts[i], query_vectors[i], k=k, fusion="server", fusion_type="relative_score")
                quality, speed = {}, {}
                for mode, search in modes.items():
                    run = {q: doc_scores(search(i, 100)) for i, q in enumerate(query_ids)}
                    quality[mode] = {m: round(v, 4) for m, v in metrics_from_run(qrels, run).items()}
                    n = min(args.latency_queries, len(query_ids))
                    speed[mode] = {f"{c} client{'s' if c > 1 else ''}": latency(lambda i, s=search: s(i, args.k), n, c)
                                   for c in (1, 8)}
                report["stores"][backend] = {"import_objects_per_s": round(len(objects) / import_s, 1),
                                             "quality": quality, "latency": speed}
                print(json.dumps({backend: report["stores"][backend]}, indent=1), flush=True)
        finally:
            for store in stores.values():
                try:
                    store.delete_collection(name)
                finally:
                    if hasattr(store, "close"):
                        store.close()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"stores_{len(corpus)}docs.json").write_text(json.dumps(report, indent=2))
    print(markdown(report))
    return 0


def markdown(report: dict[str, Any]) -> str:
    lines = [f"{report['documents']} documents, {report['queries']} queries ({report['split']}), "
             f"embedding {report['embed_docs_per_s']} docs/s", "",
             "| store | search | nDCG@10 | MRR@10 | Recall@100 | p50 / p95 ms, 1 client | p50 / p95 ms, 8 clients "
             "| queries/s, 8 clients |", "|---|---|---|---|---|---|---|---|"]
    for backend, data in report["stores"].items():
        for mode, q in data["quality"].items():
            one, eight = data["latency"][mode]["1 client"], data["latency"][mode]["8 clients"]
            lines.append(f"| {backend} | {mode} | {q.get('ndcg@10', 0):.4f} | {q.get('mrr@10', 0):.4f} | "
                         f"{q.get('recall@100', 0):.4f} | {one['p50_ms']} / {one['p95_ms']} | "
                         f"{eight['p50_ms']} / {eight['p95_ms']} | {eight['qps']} |")
    lines += ["", "batch import: " + ", ".join(f"{b} {d['import_objects_per_s']} objects/s"
                                              for b, d in report["stores"].items())]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
