"""Single-query latency per stage through the one query path (``ragops.retrieval.QueryPath``), on CPU.

On a live collection (an alias, e.g. all of SciFact indexed with
``python -m ragops index-beir --path ../shared/data/scifact-dev --collection SciFact``)::

    python bench/bench_query_latency.py --collection SciFact --queries-from ../shared/data/scifact-dev --queries 200
    python bench/bench_query_latency.py --collection SciFact --pad-to 50000 --cross-encoder registry

One query at a time (``QueryPath.search``, as the service runs it), after warm-up queries; the
stages are the path's own timings: query encoding, first stage (dense, keyword or hybrid with the
collection's fusion), rerank of the top N (the LTR reranker and, when given, the cross-encoder,
each at depths 10/20/30/40), and the whole (encode + first stage + rerank + citations). Each
depth's rerank p50 minus the previous one's is the cost of 10 more candidates.

``--pad-to N`` measures a latency collection of N chunks instead, built from the collection's
real chunks (texts and vectors read from the store) padded with perturbed copies: each copy's
vector is its source's plus Gaussian noise, renormalised (cosine ~0.9 to the source, measured
and reported), its text the source's, its id new. Built on embedded LanceDB (measured with exact
search, then again after building an ANN index, ``--lance-index``) and, when ``WEAVIATE_URL`` is
set, on Weaviate (HNSW, its default index). Keep the source on LanceDB with
``RAGOPS_VECTOR_BACKEND=lancedb`` when WEAVIATE_URL is set. The padded collections are deleted
at the end. Rerankers: ``--ltr`` / ``--cross-encoder`` take a model folder or ``registry`` (the
newest registered reranker of that kind, e.g. trained by bench/bench_rerank.py).

Writes ``bench/out/query_latency.json`` and prints Markdown tables. Targets: dense <= 20 ms p50 at
50k chunks; hybrid + rerank of the top 20 <= 150 ms p50 and <= 300 ms p95, encoding included.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

STAGES = ("encode", "first_stage", "rerank", "total")
NOISE_COSINE = 0.9
TARGETS = {"dense p50 ms at 50k": 20.0, "hybrid + rerank top 20 p50 ms": 150.0,
           "hybrid + rerank top 20 p95 ms": 300.0}


def pct(samples: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(samples), q)), 2) if samples else float("nan")


def load_queries(folder: str, split: str | None, limit: int) -> list[str]:
    """Query texts of a BEIR folder (those judged in ``split`` when given), in file order."""
    judged = None
    if split:
        rows = (Path(folder) / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]
        judged = {r.split("\t")[0] for r in rows if r.strip()}
    out = []
    for line in (Path(folder) / "queries.jsonl").read_text().splitlines():
        row = json.loads(line) if line.strip() else None
        if row and (judged is None or str(row["_id"]) in judged):
            out.append(str(row["text"]))
    return out[:limit]


def reranker_from(svc: Any, spec: str | None, kind: str) -> Any:
    """A folder, or ``registry``: the newest registered reranker of ``kind``; None when not given."""
    if not spec or spec == "none":
        return None
    from ragops.models import artifact_model_path
    from ragops.reranking.registry import load_reranker, reranker_id, reranker_kind
    from ragops.vocabulary import RERANKER_NAME

    if spec != "registry":
        return load_reranker(spec, f"{kind}:{Path(spec).name}")
    for art in reversed(svc.registry.list_artifacts("model", RERANKER_NAME)):
        folder = artifact_model_path(art, svc.artifacts, svc.model_cache)
        if reranker_kind(folder).value == kind:
            return load_reranker(folder, reranker_id(art))
    raise SystemExit(f"no {kind} reranker is registered (train one with bench/bench_rerank.py)")


def configs(rerankers: dict[str, Any], depths: list[int]) -> list[tuple[str, str, Any, int]]:
    """(label, mode, reranker or None, depth) for every measured path."""
    out: list[tuple[str, str, Any, int]] = [("dense", "dense", None, 0), ("keyword", "keyword", None, 0),
                                            ("hybrid", "hybrid", None, 0)]
    for kind, reranker in rerankers.items():
        out += [(f"hybrid + {kind} top {d}", "hybrid", reranker, d) for d in depths]
    return out


def measure(path: Any, queries: list[str], rerankers: dict[str, Any], depths: list[int], *, k: int,
            warmup: int) -> list[dict[str, Any]]:
    """Every config's per-stage p50/p95 (ms), one query at a time, the path's own stage timings."""
    from ragops.retrieval import QueryPath

    rows = []
    for label, mode, reranker, depth in configs(rerankers, depths):
        run = path if reranker is None else QueryPath(path.store, path.collection, encode=path.encode,
                                                      fusion=path.fusion, reranker=reranker,
                                                      citations=path.citations, version=path.version)
        options = {"k": k, "mode": mode, "rerank": reranker is not None, "rerank_top_n": max(depth, k)}
        for query in queries[:warmup]:
            run.search(query, **options)
        samples: dict[str, list[float]] = {s: [] for s in STAGES}
        wall: list[float] = []
        for query in queries:
            t0 = time.perf_counter()
            result = run.search(query, **options)
            wall.append((time.perf_counter() - t0) * 1000)
            for stage in STAGES:
                if stage in result.timings:
                    samples[stage].append(result.timings[stage] * 1000)
        row = {"config": label, "mode": mode, "reranker": getattr(reranker, "name", None), "depth": depth,
               "n": len(queries), "wall_p50_ms": pct(wall, 50), "wall_p95_ms": pct(wall, 95)}
        for stage in STAGES:
            row[f"{stage}_p50_ms"], row[f"{stage}_p95_ms"] = pct(samples[stage], 50), pct(samples[stage], 95)
        rows.append(row)
        print(f"  {label}: total p50 {row['total_p50_ms']} ms, p95 {row['total_p95_ms']} ms", flush=True)
    return rows


def marginal_costs(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per reranker: rerank p50 at each depth and the increase over the previous depth (+10 candidates)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["reranker"] is None:
            continue
        kind = row["config"].split(" + ")[1].split(" top ")[0]
        steps = out.setdefault(kind, [])
        previous = steps[-1]["rerank_p50_ms"] if steps else None
        steps.append({"depth": row["depth"], "rerank_p50_ms": row["rerank_p50_ms"],
                      "plus_10_ms": None if previous is None else round(row["rerank_p50_ms"] - previous, 2)})
    return out


def padded_objects(store: Any, collection: str, n: int, seed: int) -> tuple[list[Any], float]:
    """The collection's chunks plus perturbed copies up to ``n``; the copies' mean cosine to their source."""
    from ragops.hashing import deterministic_uuid
    from ragops.stores import VectorObject

    source = list(store.iter_objects(collection, include_vectors=True))
    if not source:
        raise SystemExit(f"collection {collection!r} is empty")
    rng = np.random.default_rng(seed)
    vectors = np.asarray([o.vector for o in source], dtype=np.float32)
    dim = vectors.shape[1]
    # For unit v and noise e ~ N(0, s^2 I): cos(v, v + e) ~ 1 / sqrt(1 + dim s^2).
    sigma = float(np.sqrt((1 / NOISE_COSINE**2 - 1) / dim))
    out = [VectorObject(o.id, dict(o.properties), list(map(float, o.vector))) for o in source]
    cosines = []
    for i in range(max(n - len(source), 0)):
        src = source[i % len(source)]
        noisy = vectors[i % len(source)] + rng.normal(0.0, sigma, dim).astype(np.float32)
        noisy /= np.linalg.norm(noisy)
        cosines.append(float(noisy @ vectors[i % len(source)]))
        new_id = deterministic_uuid("latency-pad", src.id, i)
        out.append(VectorObject(new_id, {**src.properties, "chunk_id": new_id}, noisy.tolist()))
    return out[:n], round(float(np.mean(cosines)), 4) if cosines else 1.0


def build_padded(store: Any, name: str, objects: list[Any], dimension: int) -> float:
    t0 = time.perf_counter()
    store.create_collection(name, dimension, {"purpose": "latency benchmark (padded copies)"})
    for start in range(0, len(objects), 5000):
        store.upsert(name, objects[start:start + 5000])
    if hasattr(store, "ensure_search_index"):
        store.ensure_search_index(name)
    return round(time.perf_counter() - t0, 1)


def build_lance_ann(store: Any, name: str, kind: str) -> float:
    """An ANN index on the LanceDB table (cosine): IVF-HNSW-SQ (one partition) or IVF-PQ."""
    from lancedb.index import HnswSq, IvfPq

    table = store._open(name)   # the store has no ANN-index call: this is the table it queries
    rows = table.count_rows()
    config = (HnswSq(distance_type="cosine", num_partitions=1) if kind == "ivf_hnsw_sq" else
              IvfPq(distance_type="cosine", num_partitions=max(1, int(np.sqrt(rows))), num_sub_vectors=48))
    t0 = time.perf_counter()
    table.create_index("vector", config=config, replace=True)
    return round(time.perf_counter() - t0, 1)


def recall_vs(path_exact: dict[str, list[str]], store: Any, name: str, vectors: np.ndarray, k: int) -> float:
    hits = [{h.id for h in store.vector_search(name, v, k=k)} for v in vectors]
    return round(float(np.mean([len(h & set(e)) / k for h, e in zip(hits, path_exact.values(), strict=True)])), 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", default="SciFact", help="alias (or collection version) to measure")
    parser.add_argument("--queries-from", default=str(ROOT.parent / "shared" / "data" / "scifact-dev"),
                        help="BEIR folder whose queries.jsonl gives the query texts")
    parser.add_argument("--split", default=None, help="only queries judged in qrels/<split>.tsv")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--depths", default="10,20,30,40", help="rerank depths (top N)")
    parser.add_argument("--ltr", default="registry", help="LTR model folder, 'registry' (newest), or 'none'")
    parser.add_argument("--cross-encoder", default="none", help="cross-encoder folder, 'registry', or 'none'")
    parser.add_argument("--pad-to", type=int, default=0, help="measure an N-chunk padded collection instead")
    parser.add_argument("--lance-index", choices=["ivf_hnsw_sq", "ivf_pq"], default="ivf_hnsw_sq")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "query_latency.json"))
    args = parser.parse_args()

    import torch

    from ragops.cli.common import services
    from ragops.retrieval import QueryPath, Retriever
    from ragops.retrieval.retriever import identity_reranker

    torch.set_num_threads(int(os.environ.get("RAGOPS_SERVICE_TORCH_THREADS") or 1))   # as the service runs
    svc = services()
    depths = [int(d) for d in args.depths.split(",")]
    queries = load_queries(args.queries_from, args.split, args.queries + args.warmup)
    warm, queries = queries[:args.warmup], queries[args.warmup:]
    rerankers = {kind: r for kind, r in (("LTR", reranker_from(svc, args.ltr, "ltr")),
                                         ("cross-encoder", reranker_from(svc, args.cross_encoder, "cross-encoder")))
                 if r is not None}
    live = Retriever(svc, args.collection, reranker_for=identity_reranker).current()
    out: dict[str, Any] = {"collection": args.collection, "version": live.version.as_dict(),
                           "fusion": live.fusion.label, "queries": len(queries), "k": args.k,
                           "torch_threads": torch.get_num_threads(), "targets": TARGETS,
                           "rerankers": {k: r.name for k, r in rerankers.items()}, "runs": []}
    targets: list[tuple[str, Any, dict[str, Any]]] = []
    cleanup: list[tuple[Any, str]] = []
    cleanup_dirs: list[str] = []
    if not args.pad_to:
        targets.append((f"{svc.store.backend} {live.collection} ({svc.store.count(live.collection)} chunks)", live, {}))
    else:
        objects, cosine = padded_objects(svc.store, live.collection, args.pad_to, args.seed)
        dim = len(objects[0].vector)
        real = svc.store.count(live.collection)
        out["padding"] = {"chunks": len(objects), "real_chunks": min(real, len(objects)),
                          "copies": max(len(objects) - real, 0), "copy_cosine_to_source_mean": cosine,
                          "how": "copies: the source chunk's vector + Gaussian noise, renormalised; its text; a new id"}
        name = f"LatencyPad{len(objects)}_{uuid.uuid4().hex[:6]}"
        from ragops.stores.lancedb_store import LanceDBStore

        lance_dir = tempfile.mkdtemp(prefix="ragops-latency-")
        cleanup_dirs.append(lance_dir)
        lance = LanceDBStore(lance_dir)
        build_s = build_padded(lance, name, objects, dim)
        cleanup.append((lance, name))
        label = f"lancedb {len(objects)} chunks ({out['padding']['copies']} padded copies)"
        targets.append((f"{label}, exact search", QueryPath(lance, name, encode=live.encode, fusion=live.fusion),
                        {"build_s": build_s}))
        targets.append((f"{label}, {args.lance_index}", None, {"index": args.lance_index}))
        if os.environ.get("WEAVIATE_URL"):
            from ragops.stores.weaviate_store import WeaviateStore

            weaviate = WeaviateStore(os.environ["WEAVIATE_URL"], grpc_port=int(os.environ.get("WEAVIATE_GRPC_PORT") or 0)
                                     or None, api_key=os.environ.get("WEAVIATE_API_KEY") or None)
            build_s = build_padded(weaviate, name, objects, dim)
            cleanup.append((weaviate, name))
            targets.append((f"weaviate {len(objects)} chunks (HNSW)",
                            QueryPath(weaviate, name, encode=live.encode, fusion=live.fusion), {"build_s": build_s}))
    try:
        exact_ids: dict[str, list[str]] = {}
        vectors = np.asarray(live.encode(queries), dtype=np.float32) if live.encode else None
        for label, path, extra in targets:
            if path is None:   # the LanceDB ANN pass: the same table, indexed now
                lance_path = targets[0][1]
                extra["index_build_s"] = build_lance_ann(lance_path.store, lance_path.collection, extra["index"])
                extra["recall@10_vs_exact"] = recall_vs(exact_ids, lance_path.store, lance_path.collection,
                                                        vectors, args.k)
                path = lance_path
            elif not exact_ids and vectors is not None:
                exact_ids = {str(i): [h.id for h in path.store.vector_search(path.collection, v, k=args.k)]
                             for i, v in enumerate(vectors)}
            print(f"## {label}", flush=True)
            rows = measure(path, warm + queries, rerankers, depths, k=args.k, warmup=len(warm))
            out["runs"].append({"target": label, **extra, "rows": rows, "rerank_cost": marginal_costs(rows)})
    finally:
        for store, name in cleanup:
            store.delete_collection(name)
            if hasattr(store, "close"):
                store.close()
        for folder in cleanup_dirs:
            shutil.rmtree(folder, ignore_errors=True)
        svc.close()
    out["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    print_tables(out)
    return 0


def print_tables(out: dict[str, Any]) -> None:
    pad = out.get("padding")
    if pad:
        print(f"\nPadded latency collection: {pad['real_chunks']} real chunks of {out['collection']} + "
              f"{pad['copies']} perturbed copies (mean cosine to source {pad['copy_cosine_to_source_mean']}).")
    for run in out["runs"]:
        extra = ", ".join(f"{k} {v}" for k, v in run.items() if k not in ("target", "rows", "rerank_cost", "index"))
        print(f"\n### {run['target']}: {out['queries']} queries, k={out['k']}, one at a time"
              + (f" ({extra})" if extra else ""))
        print("| path | encode p50/p95 ms | first stage p50/p95 ms | rerank p50/p95 ms | whole p50/p95 ms |")
        print("|---|---|---|---|---|")
        for r in run["rows"]:
            rerank = f"{r['rerank_p50_ms']} / {r['rerank_p95_ms']}" if r["reranker"] else "-"
            print(f"| {r['config']} | {r['encode_p50_ms']} / {r['encode_p95_ms']} | {r['first_stage_p50_ms']} / "
                  f"{r['first_stage_p95_ms']} | {rerank} | {r['total_p50_ms']} / {r['total_p95_ms']} |")
        for line in target_lines(run["rows"]):
            print(line)
        for kind, steps in run["rerank_cost"].items():
            print(f"{kind} rerank p50 by depth: " + "; ".join(
                f"top {s['depth']}: {s['rerank_p50_ms']} ms" + (f" (+{s['plus_10_ms']} for 10 more)"
                                                                 if s["plus_10_ms"] is not None else "")
                for s in steps))


def target_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's targets against this run (dense: the search alone; hybrid + rerank: the whole)."""
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    out = []
    for r in rows:
        if r["config"] == "dense":
            out.append(f"target dense first stage p50 <= {TARGETS['dense p50 ms at 50k']:g} ms (at 50k): "
                       f"{r['first_stage_p50_ms']} ms, {verdict(r['first_stage_p50_ms'] <= TARGETS['dense p50 ms at 50k'])}")
        if r["reranker"] and r["depth"] == 20:
            ok = r["total_p50_ms"] <= TARGETS["hybrid + rerank top 20 p50 ms"] and \
                r["total_p95_ms"] <= TARGETS["hybrid + rerank top 20 p95 ms"]
            out.append(f"target {r['config']} whole (encoding included) p50 <= 150 / p95 <= 300 ms: "
                       f"{r['total_p50_ms']} / {r['total_p95_ms']} ms, {verdict(ok)}")
    return out


if __name__ == "__main__":
    sys.exit(main())
