"""Our query path beside an off-the-shelf retriever (LlamaIndex), same documents, model and queries, one run.

The collection must be indexed from the same BEIR folder first::

    python -m ragops index-beir --path ../shared/data/scifact-dev --collection SciFact --split dev-eval
    python bench/bench_offtheshelf.py --path ../shared/data/scifact-dev --collection SciFact

Scored on ``qrels/dev-eval.tsv`` (nDCG@10, MRR@10, Recall@100; a document scores its best chunk),
every query sent one at a time through each retriever (p50/p95 latency, query encoding included):

- ours: ``ragops.retrieval.QueryPath`` of the alias, dense, keyword and hybrid (the collection's
  recorded fusion), no reranker;
- LlamaIndex (``llama-index-core``, ``llama-index-retrievers-bm25``): ``VectorStoreIndex`` (its
  default in-memory ``SimpleVectorStore``), ``BM25Retriever`` (bm25s, English stemming) and
  ``QueryFusionRetriever`` of both (reciprocal rank fusion, one query, no LLM), with our query
  encoder (the collection's model) behind a custom ``BaseEmbedding``. Two chunkings:
  - ``same chunks``: our collection's chunks (text = title + newline + chunk text, as our BM25
    index sees it) and their stored vectors: only the retrievers differ;
  - ``its defaults``: whole documents (title + text) through LlamaIndex's default
    ``SentenceSplitter`` (1024 tokens, so nearly every abstract stays whole; MiniLM reads its
    first 256 tokens), embedded by the same model: what a user following its quick start gets
    (the nodes' link to their source document is dropped: see ``default_nodes``).

Only the documents present in the collection are used (so ``--path`` may be bigger than a
sample collection). Writes ``bench/out/offtheshelf.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEPTH = 300   # chunks fetched per query: several chunks may belong to one document; 100 documents scored


def encoder_embedding(encode: Callable[[list[str]], np.ndarray]) -> Any:
    """A LlamaIndex ``BaseEmbedding`` over our query encoder (the collection's own model)."""
    from llama_index.core.embeddings import BaseEmbedding
    from pydantic import PrivateAttr

    class RagopsEmbedding(BaseEmbedding):
        _encode: Any = PrivateAttr()

        def __init__(self, fn: Callable[[list[str]], np.ndarray], **kwargs: Any):
            super().__init__(model_name="ragops-collection-model", embed_batch_size=32, **kwargs)
            self._encode = fn

        def _get_query_embedding(self, query: str) -> list[float]:
            return np.asarray(self._encode([query]))[0].tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return np.asarray(self._encode([text]))[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return np.asarray(self._encode(list(texts))).tolist()

    return RagopsEmbedding(encode)


def same_chunk_nodes(store: Any, collection: str) -> list[Any]:
    from llama_index.core.schema import TextNode

    nodes = []
    for obj in store.iter_objects(collection, include_vectors=True):
        p = obj.properties
        meta = {"doc_id": str(p.get("doc_id")), "title": str(p.get("title") or "")}
        nodes.append(TextNode(id_=obj.id, text=f"{meta['title']}\n{p.get('text') or ''}", metadata=meta,
                              embedding=list(map(float, obj.vector)), excluded_embed_metadata_keys=list(meta),
                              excluded_llm_metadata_keys=list(meta)))
    return nodes


def default_nodes(corpus: Path, doc_ids: set[str]) -> list[Any]:
    from llama_index.core import Document
    from llama_index.core.node_parser import SentenceSplitter

    documents = []
    for line in corpus.read_text().splitlines():
        row = json.loads(line) if line.strip() else None
        if row and str(row["_id"]) in doc_ids:
            documents.append(Document(text=f"{row.get('title') or ''}\n\n{row.get('text') or ''}",
                                      metadata={"doc_id": str(row["_id"])}, excluded_embed_metadata_keys=["doc_id"],
                                      excluded_llm_metadata_keys=["doc_id"]))
    nodes = SentenceSplitter().get_nodes_from_documents(documents)
    for node in nodes:
        # The source-document link is dropped: recording it (docstore ref-doc info) needs a newer
        # dataclasses-json than resolves beside our marshmallow 4 pin. Retrieval does not use it.
        node.relationships = {}
    return nodes


def llama_retrievers(nodes: list[Any], embed: Any) -> dict[str, Any]:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.retrievers.bm25 import BM25Retriever

    index = VectorStoreIndex(nodes, embed_model=embed, show_progress=False)
    dense = index.as_retriever(similarity_top_k=DEPTH)
    keyword = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=DEPTH)
    hybrid = QueryFusionRetriever([dense, keyword], llm=MockLLM(), mode="reciprocal_rerank", num_queries=1,
                                  similarity_top_k=DEPTH, use_async=False)
    return {"dense (VectorStoreIndex)": dense, "keyword (BM25Retriever)": keyword,
            "hybrid (QueryFusionRetriever, RRF)": hybrid}


def score_run(search: Callable[[str], list[tuple[str, float]]], queries: dict[str, str],
              qrels: dict[str, dict[str, int]], warmup: int) -> dict[str, Any]:
    """Metrics and per-query latency of ``search(query) -> [(doc_id, score)]``, one query at a time."""
    from ragops.retrieval_eval import metrics_from_run

    for text in list(queries.values())[:warmup]:
        search(text)
    run: dict[str, dict[str, float]] = {}
    latencies = []
    for qid, text in queries.items():
        t0 = time.perf_counter()
        hits = search(text)
        latencies.append((time.perf_counter() - t0) * 1000)
        docs: dict[str, float] = {}
        for rank, (doc, _) in enumerate(hits):
            docs.setdefault(doc, float(len(hits) - rank))   # best chunk's rank decides
        run[qid] = dict(sorted(docs.items(), key=lambda kv: -kv[1])[:100])
    return {**metrics_from_run(qrels, run), "p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "p95_ms": round(float(np.percentile(latencies, 95)), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default=str(ROOT.parent / "shared" / "data" / "scifact-dev"))
    parser.add_argument("--collection", default="SciFact")
    parser.add_argument("--split", default="dev-eval")
    parser.add_argument("--chunkings", default="same,default", help="LlamaIndex chunkings: same, default")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "offtheshelf.json"))
    args = parser.parse_args()

    import llama_index.core
    import torch

    from ragops.cli.common import services
    from ragops.retrieval import Retriever
    from ragops.retrieval.retriever import identity_reranker
    from ragops.retrieval_eval import beir_labelled

    torch.set_num_threads(int(os.environ.get("RAGOPS_SERVICE_TORCH_THREADS") or 1))   # as the service runs
    svc = services()
    path = Retriever(svc, args.collection, reranker_for=identity_reranker, cite=False).current()
    labelled = beir_labelled(args.path, args.split)
    queries = {q: labelled.queries[q] for q in sorted(labelled.queries)}
    table: dict[str, dict[str, Any]] = {}
    timings: dict[str, float] = {}

    def ours(mode: str) -> Callable[[str], list[tuple[str, float]]]:
        def search(text: str) -> list[tuple[str, float]]:
            result = path.search(text, k=DEPTH, mode=mode, similarity=False, cite=False)
            return [(str(h.properties.get("doc_id")), h.score) for h in result.hits]
        return search

    for mode in ("dense", "keyword", "hybrid"):
        label = f"ours: {mode}" + (f" ({path.fusion.label})" if mode == "hybrid" else "")
        table[label] = score_run(ours(mode), queries, labelled.qrels, args.warmup)
        print(f"  {label}: {table[label]}", flush=True)

    embed = encoder_embedding(path.encode)
    t0 = time.perf_counter()
    same = same_chunk_nodes(svc.store, path.collection)
    doc_ids = {n.metadata["doc_id"] for n in same}
    timings["read_chunks_s"] = round(time.perf_counter() - t0, 1)
    counts = {"chunks_in_collection": len(same), "documents": len(doc_ids)}
    for chunking in args.chunkings.split(","):
        t0 = time.perf_counter()
        nodes = same if chunking == "same" else default_nodes(Path(args.path) / "corpus.jsonl", doc_ids)
        retrievers = llama_retrievers(nodes, embed)
        timings[f"llamaindex_build_{chunking}_s"] = round(time.perf_counter() - t0, 1)
        counts[f"llamaindex_nodes_{chunking}"] = len(nodes)
        for name, retriever in retrievers.items():
            label = f"LlamaIndex {llama_index.core.__version__}: {name}, " + (
                "same chunks and vectors" if chunking == "same" else "its default chunking")
            table[label] = score_run(lambda text, r=retriever: [(n.node.metadata["doc_id"], float(n.score or 0.0))
                                                                for n in r.retrieve(text)],
                                     queries, labelled.qrels, args.warmup)
            print(f"  {label}: {table[label]}", flush=True)

    out = {"collection": path.collection, "model": path.version.model_id, "split": args.split,
           "queries": len(queries), "counts": counts, "table": table, "timings": timings,
           "torch_threads": torch.get_num_threads(),
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"\n### {path.collection} ({counts['documents']} documents, {counts['chunks_in_collection']} chunks), "
          f"{len(queries)} {args.split} queries, one at a time")
    print("| retriever | nDCG@10 | MRR@10 | Recall@100 | p50 ms | p95 ms |\n|---|---|---|---|---|---|")
    for name, m in table.items():
        print(f"| {name} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} | {m['recall@100']:.4f} | {m['p50_ms']} | "
              f"{m['p95_ms']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
