"""rag_synthetic_data's cost: LLM generation throughput by concurrency, the cache on a re-run,
and the dataset the offline generator builds from a real corpus, with its filter statistics.

Generation runs against the local OpenAI-compatible test server (``tests/llm_server.py``) with a
fixed latency per answer, so the figures measure this code (thread pool, HTTP client, strict
parsing, one Postgres cache write per answer), not a provider. The dataset part chunks SciFact
(BEIR corpus.jsonl) as rag_index would and runs the same step functions as the DAG
(``ragops.synthetic.pipeline.run_pipeline``) against the real Postgres (a throwaway schema) and a
temporary artifact store. The round-trip filter and hard negatives (the model encodes ~33 texts/s
on this machine) run on a sample only.

    python bench/bench_synthetic.py --path ../shared/data/scifact-dev
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.llm_server import LLMTestServer  # noqa: E402

from ragops.artifacts import ArtifactStore  # noqa: E402
from ragops.config import (  # noqa: E402
    RagopsSettings,
    base_model_path,
)
from ragops.lineage import Registry  # noqa: E402
from ragops.prompts import load_prompt  # noqa: E402
from ragops.services import Services  # noqa: E402
from ragops.synthetic.generation import generate_with_llm  # noqa: E402
from ragops.synthetic.llm import LLMSettings  # noqa: E402
from ragops.synthetic.params import SyntheticParams  # noqa: E402
from ragops.synthetic.pipeline import run_pipeline  # noqa: E402


def scifact_chunks(path: Path) -> tuple[list[dict[str, Any]], float]:
    from ragops.chunking import ChunkingConfig, chunk_documents
    from ragops.embedding import load_tokenizer
    from ragops.sources import load_source

    t0 = time.perf_counter()
    docs = load_source({"type": "beir", "path": str(path), "name": "scifact", "root": str(path.parent)}).documents
    chunks = chunk_documents(docs, ChunkingConfig(), load_tokenizer(base_model_path()))
    return [c.to_row() for c in chunks], time.perf_counter() - t0


def register_chunks(registry: Registry, artifacts: ArtifactStore, rows: list[dict[str, Any]], alias: str) -> None:
    import pyarrow as pa

    from ragops.hashing import hash_many

    content_hash = hash_many(r["chunk_id"] for r in rows)
    uri = artifacts.write_table(f"chunks/{alias}/{content_hash}.parquet", pa.Table.from_pylist(rows))
    registry.record_artifact("chunks", alias, content_hash, uri, metrics={"chunks": len(rows)}, status="validated")


def throughput(chunks: list[dict[str, Any]], dsn: str, latency_s: float, levels: list[int]) -> dict[str, Any]:
    results: dict[str, Any] = {"latency_ms": latency_s * 1000, "chunks": len(chunks), "levels": {}}
    prompt = load_prompt()
    with LLMTestServer(api_key="bench-key", latency_s=latency_s) as server:
        settings = LLMSettings(base_url=server.base_url, api_key="bench-key", model="bench-model",
                               price_prompt_per_1m=0.15, price_completion_per_1m=0.6)
        for level in levels:
            registry = Registry(dsn, f"bench_{uuid.uuid4().hex[:10]}")
            registry.migrate()
            try:
                calls_before = server.calls
                t0 = time.perf_counter()
                records, stats = generate_with_llm(chunks, settings=settings, prompt=prompt, registry=registry,
                                                   questions_per_chunk=2, concurrency=level)
                seconds = time.perf_counter() - t0
                row = {"seconds": round(seconds, 3), "calls": server.calls - calls_before,
                       "calls_per_s": round((server.calls - calls_before) / seconds, 1),
                       "ideal_calls_per_s": round(level / latency_s, 1), "queries": len(records),
                       "tokens": stats.prompt_tokens + stats.completion_tokens, "cost_usd": round(stats.cost_usd, 6)}
                if level == levels[len(levels) // 2]:
                    t0 = time.perf_counter()
                    _, again = generate_with_llm(chunks, settings=settings, prompt=prompt, registry=registry,
                                                 questions_per_chunk=2, concurrency=level)
                    results["rerun"] = {"concurrency": level, "seconds": round(time.perf_counter() - t0, 3),
                                        "new_calls": again.calls, "cache_hits": again.cache_hits,
                                        "cache_hit_rate": again.as_dict()["cache_hit_rate"]}
                results["levels"][str(level)] = row
            finally:
                registry.drop()
    return results


def offline_dataset(chunks: list[dict[str, Any]], dsn: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    svc = Services(RagopsSettings.from_env({"RAGOPS_PG_DSN": dsn, "RAGOPS_SCHEMA": f"bench_{uuid.uuid4().hex[:10]}",
                                             "RAGOPS_ARTIFACT_ROOT": str(work / "artifacts"),
                                             "RAGOPS_VECTOR_DIR": str(work / "vectors")}), migrate=True)
    registry, artifacts = svc.registry, svc.artifacts
    out: dict[str, Any] = {}
    try:
        register_chunks(registry, artifacts, chunks, "SciFact")
        runs = {"full": SyntheticParams(alias="SciFact", sample_size=len(chunks), generator="offline",
                                        questions_per_chunk=2, seed=13, max_doc_share=0.2),
                "sample_round_trip_negatives": SyntheticParams(
                    alias="SciFact", sample_size=args.rt_sample, generator="offline", questions_per_chunk=2, seed=13,
                    round_trip=True, round_trip_k=5, hard_negatives=True, negatives_k=10)}
        for name, params in runs.items():
            t0 = time.perf_counter()
            summary = run_pipeline(svc, params, f"bench-{name}")
            seconds = time.perf_counter() - t0
            art = registry.get_artifact(summary["dataset"]["dataset_id"])
            out[name] = {"seconds": round(seconds, 2), "sampled_chunks": summary["sample"]["chunks"],
                         "sampled_docs": summary["sample"]["docs"], "generated": summary["generate"]["queries"],
                         "kinds": summary["generate"]["stats"]["kinds"], "filter_counts": summary["filter"]["filter_counts"],
                         "kept": summary["filter"]["kept"], "negatives_mined": summary["negatives"].get("mined", 0),
                         "rows_train": art.metrics["rows_train"], "rows_test": art.metrics["rows_test"],
                         "docs_train": art.metrics["docs_train"], "docs_test": art.metrics["docs_test"],
                         "dq_success": summary["dq"]["success"], "status": art.status,
                         "dq_failures": summary["dq"]["failures"]}
        t0 = time.perf_counter()
        again = run_pipeline(svc, runs["full"], "bench-full-again")
        out["full"]["rerun_seconds"] = round(time.perf_counter() - t0, 2)
        out["full"]["rerun_same_version"] = again["dataset"]["dataset_id"] == registry.find_artifact(
            "dataset", "synthetic-queries", version=1).id and not again["dataset"]["new_version"]
    finally:
        registry.drop()
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = ["# rag_synthetic_data benchmark", "",
             f"{report['machine']}; LLM server latency {report['generation']['latency_ms']:.0f} ms per answer, "
             f"{report['generation']['chunks']} chunks, 2 queries each", "",
             "| concurrency | seconds | calls/s | ideal calls/s | tokens | cost (USD) |", "|---|---|---|---|---|---|"]
    for level, row in report["generation"]["levels"].items():
        lines.append(f"| {level} | {row['seconds']} | {row['calls_per_s']} | {row['ideal_calls_per_s']} | "
                     f"{row['tokens']} | {row['cost_usd']} |")
    rerun = report["generation"]["rerun"]
    lines += ["", f"Re-run at concurrency {rerun['concurrency']}: {rerun['new_calls']} new calls, "
              f"{rerun['cache_hits']} cache hits (hit rate {rerun['cache_hit_rate']:.0%}) in {rerun['seconds']} s", "",
              f"SciFact: {report['corpus']['documents']} documents -> {report['corpus']['chunks']} chunks "
              f"(chunked in {report['corpus']['chunk_seconds']} s)", "",
              "| run | seconds | chunks | generated | kept | empty | short | long | copies | near-dup | round trip "
              "| negatives | train | test | docs train/test | DQ |", "|" + "---|" * 16]
    for name, r in report["offline"].items():
        c = r["filter_counts"]
        lines.append(f"| {name} | {r['seconds']} | {r['sampled_chunks']} | {r['generated']} "
                     f"(heading {r['kinds'].get('heading', 0)}, ICT {r['kinds'].get('ict', 0)}) | {r['kept']} | "
                     f"{c['empty']} | {c['too_short']} | {c['too_long']} | {c['copies_passage']} | "
                     f"{c['near_duplicate']} | {c['round_trip']} | {r['negatives_mined']} | {r['rows_train']} | "
                     f"{r['rows_test']} | {r['docs_train']}/{r['docs_test']} | {r['status']} |")
    full = report["offline"]["full"]
    lines += ["", f"Full re-run (same inputs): {full['rerun_seconds']} s, same version: {full['rerun_same_version']}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default=str(ROOT.parent / "shared" / "data" / "scifact-dev"))
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--gen-chunks", type=int, default=128, help="chunks per throughput level")
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--rt-sample", type=int, default=300, help="chunks in the round-trip/negatives run")
    args = parser.parse_args()
    dsn = os.environ.get("RAGOPS_PG_DSN", "postgresql://ragops:ragops@127.0.0.1:54329/ragops")
    chunks, chunk_seconds = scifact_chunks(Path(args.path))
    report: dict[str, Any] = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                              "corpus": {"path": args.path, "documents": len({c['doc_id'] for c in chunks}),
                                         "chunks": len(chunks), "chunk_seconds": round(chunk_seconds, 1)}}
    report["generation"] = throughput(chunks[: args.gen_chunks], dsn, args.latency_ms / 1000,
                                      [int(x) for x in args.levels.split(",")])
    with tempfile.TemporaryDirectory(prefix="bench-synthetic-") as tmp:
        report["offline"] = offline_dataset(chunks, dsn, Path(tmp), args)
    text = markdown(report)
    print(text)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_synthetic.json").write_text(json.dumps(report, indent=2))
    (out / "bench_synthetic.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
